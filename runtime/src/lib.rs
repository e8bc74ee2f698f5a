//! dlvp-runtime: runs exported DLVP-CLIP graphs.
//!
//! - [`ort_lib`]: finds and loads the ONNX Runtime shared library (`ort` with `load-dynamic`);
//! - [`tract_backend`], [`ort_backend`]: run an exported graph on tract / ONNX Runtime (CPU);
//! - [`cost`]: the multiply-adds a graph does for one input shape (tract's cost model);
//! - [`outputs`]: the graph contract's outputs, compared across backends;
//! - [`preprocess`]: image decoding and PIL-exact resizing to the graph input;
//! - [`onnx_head`]: a model's structure decoded without copying its weights;
//! - [`model_file`]: reading a model file within a size limit, external data checked and inlined;
//! - [`metadata`]: what the exporter wrote into the graph; [`detector`]: the `Detector` API;
//!   [`postprocess`]: maps back to image size, overlays and masks.

pub mod cost;
pub mod detector;
pub mod metadata;
pub mod model_file;
pub mod onnx_head;
pub mod ort_backend;
pub mod ort_lib;
pub mod outputs;
pub mod postprocess;
pub mod preprocess;
pub mod tract_backend;
