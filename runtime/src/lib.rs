//! dlvp-runtime: runs exported DLVP-CLIP graphs.
//!
//! - [`ort_lib`]: finds and loads the ONNX Runtime shared library (`ort` with `load-dynamic`);
//! - [`tract_backend`]: runs an exported graph on tract.
//!
//! The backend trait, the ONNX Runtime and tract backends, preprocessing and postprocessing
//! arrive with the runtime issue.

pub mod ort_lib;
pub mod tract_backend;
