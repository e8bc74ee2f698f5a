//! dlvp-runtime: runs exported DLVP-CLIP graphs.
//!
//! - [`ort_lib`]: finds and loads the ONNX Runtime shared library (`ort` with `load-dynamic`);
//! - [`tract_backend`], [`ort_backend`]: run an exported graph on tract / ONNX Runtime (CPU);
//! - [`outputs`]: the graph contract's outputs, compared across backends;
//! - [`preprocess`]: image decoding and PIL-exact resizing to the graph input.
//!
//! The backend trait, the ONNX Runtime and tract backends, preprocessing and postprocessing
//! arrive with the runtime issue.

pub mod ort_backend;
pub mod ort_lib;
pub mod outputs;
pub mod preprocess;
pub mod tract_backend;
