//! dlvp-exporter: everything between a trained DLVP-CLIP checkpoint and an ONNX graph.
//!
//! - [`export`] ([`pipeline`]): the whole export — graph, precision pass, target rewrites, the
//!   unused-tensor account, an ONNX model checked against the target and streamed to a file;
//! - [`targets`]: export targets and their parsers' rule tables (the check behind
//!   `dlvp inspect --target`);
//! - [`manifest`]: the tensors a checkpoint must hold for a spec;
//! - [`weights`]: the memory-mapped safetensors reader with prefix scopes and a ledger;
//! - [`check`]: a checkpoint compared with a spec, every problem reported by tensor name;
//! - [`tokenize`]: prompt templates → CLIP token ids;
//! - [`graph`]: the typed graph builder; [`blocks`]: one builder per model block;
//!   [`onnx`]: the graph as ONNX bytes;
//! - [`calibration`]: int8 calibration — activation statistics and the calibration run's
//!   account (scales, metadata);
//! - [`ops`]: the one table of what dlvp knows about each ONNX operator (fp16 rule, data
//!   movement, output type);
//! - [`artifacts`]: what is deployed beside the graph — the JSON sidecar and Triton's
//!   `config.pbtxt`.

pub mod artifacts;
pub mod blocks;
pub mod calibration;
pub mod check;
pub mod graph;
pub mod manifest;
pub mod model;
pub mod onnx;
pub mod ops;
pub mod pipeline;
pub mod pos_embed;
pub mod targets;
pub mod tokenize;
pub mod weights;

// The contract crate's modules under their old paths inside this crate.
use dlvp_contract::{resample, spec};

pub use check::{check_checkpoint, CheckReport, Problem};
pub use dlvp_contract::{InputKind, Precision, Spec, SpecError};
pub use graph::int8::{Selection, WeightRange};
pub use pipeline::{
    calibration_graph, export, export_int8, Export, ExportError, ExportOptions, OnnxModel,
    Quantization,
};
pub use targets::Target;
pub use weights::{Checkpoint, Weights, WeightsError};
