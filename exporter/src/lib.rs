//! dlvp-exporter: everything between a trained DLVP-CLIP checkpoint and an ONNX graph.
//!
//! - [`spec`]: the model spec (YAML) that fixes every open choice of the model;
//! - [`manifest`]: the tensors a checkpoint must hold for a spec;
//! - [`weights`]: the memory-mapped safetensors reader with prefix scopes and a ledger;
//! - [`check`]: a checkpoint compared with a spec, every problem reported by tensor name;
//! - [`tokenize`]: prompt templates → CLIP token ids;
//! - [`graph`]: the typed graph builder; [`blocks`]: one builder per model block;
//!   [`onnx`]: the graph as ONNX bytes.

pub mod blocks;
pub mod check;
pub mod graph;
pub mod manifest;
pub mod model;
pub mod onnx;
pub mod pos_embed;
pub mod resample;
pub mod spec;
pub mod tokenize;
pub mod weights;

pub use check::{check_checkpoint, CheckReport, Problem};
pub use spec::{Spec, SpecError};
pub use weights::{Checkpoint, Weights, WeightsError};
