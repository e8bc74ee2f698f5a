//! dlvp-contract: what the exporter, the runtime and every tool around them agree on, written
//! once.
//!
//! - [`spec`]: the model spec (YAML) that fixes every open choice of DLVP-CLIP, and its
//!   validation (model-spec/README.md, "Fields");
//! - [`graph`]: the graph contract — input kinds, output names and shapes, metadata keys,
//!   precision (model-spec/README.md, "Graph contract");
//! - [`named`]: `Display` and `FromStr` by name for option enums ([`named_enum!`]);
//! - [`resample`]: Pillow's resampling weights, shared by the export-time positional-embedding
//!   resize (§2) and the runtime's image resize (§1);
//! - [`triton`]: the graph contract in Triton's terms, for the repository the exporter writes
//!   and the protocol `dlvp serve` answers;
//! - [`atomic_write`]: writing an output file so that no reader, and no crash, sees part of it
//!   (every file dlvp writes goes through it).

pub mod atomic_write;
pub mod graph;
pub mod named;
pub mod resample;
pub mod spec;
pub mod triton;

pub use graph::{InputKind, Precision};
pub use spec::{Spec, SpecError};
