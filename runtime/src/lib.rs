//! dlvp-runtime: runs exported DLVP-CLIP graphs — anomaly scores, maps and the selected patches
//! for images — on ONNX Runtime (CPU, CUDA, TensorRT) or tract (pure Rust, CPU).
//!
//! ```
//! use dlvp_runtime::{BackendChoice, Detector, DetectorOptions};
//!
//! // Any exported graph: from memory (here the embedded demo model) or with Detector::load.
//! let model = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/demo/dlvp-clip-demo.onnx"));
//! // tract needs nothing installed; builds without it find ONNX Runtime by ORT_DYLIB_PATH and
//! // OpenVINO by DLVP_OPENVINO_LIB.
//! let backend = if cfg!(feature = "tract") {
//!     BackendChoice::Tract
//! } else if cfg!(feature = "ort") {
//!     BackendChoice::OrtCpu
//! } else {
//!     BackendChoice::OpenVino
//! };
//! let options = DetectorOptions { backend, ..Default::default() };
//! let detector = Detector::from_bytes(model.to_vec(), &options)?;
//!
//! let part = image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/samples/fabric_hole.png"))?;
//! let found = detector.detect(&part)?;
//! let size = detector.info().spec.image_size;
//! assert!((0.0..=1.0).contains(&found.score));
//! assert_eq!(found.map.dim(), (size, size)); // the map at the model's side; resize it to the image
//! println!("score {:.3} on {}, patches {:?}", found.score, detector.backend(), found.topk);
//!
//! // Batches take owned or borrowed images, of any size.
//! let (a, b) = (part.to_rgb8(), image::RgbImage::new(40, 30));
//! assert_eq!(detector.detect_batch(&[&a, &b])?.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`BackendChoice::Auto`] tries ONNX Runtime with TensorRT, then CUDA, then CPU, then OpenVINO
//! CPU, then tract ([`Detector::notes`] says why it skipped what it skipped, as data;
//! [`Detector::builder`] takes a preference list of one's own); ONNX Runtime's
//! library comes from [`DetectorOptions::ort_lib`] or `ORT_DYLIB_PATH`, OpenVINO's from
//! [`DetectorOptions::openvino_lib`] or `DLVP_OPENVINO_LIB`.
//!
//! Cargo features `ort` (ONNX Runtime, loaded at run time), `tract` (pure Rust) and `openvino`
//! (OpenVINO, loaded at run time) choose the backends built in; all are on by default and each
//! builds alone. A backend left out is
//! reported by name ([`DetectError::NotBuilt`]), and `auto` skips it.
//!
//! Modules:
//! - [`detector`]: the `Detector` API and its one policy, which backend runs;
//! - [`backend`]: the [`Backend`] trait every backend implements, and [`backend::open`], the one
//!   place that switches over them;
//! - [`ort_lib`]: finds and loads the ONNX Runtime shared library (`ort` with `load-dynamic`);
//! - [`tract_backend`], [`ort_backend`], [`openvino_backend`]: run an exported graph on tract /
//!   ONNX Runtime / OpenVINO (each
//!   behind its feature); [`provider`]: ONNX Runtime's providers and GPU settings, as data;
//! - [`cost`]: the multiply-adds a graph does for one input shape (tract's cost model);
//! - [`int8_kernels`]: the CPU's int8 features and a static audit of an int8 graph's weights
//!   against the 16-bit pair sums of x86 kernels without VNNI;
//! - [`input`]: the graph's input batch, `image` f32 or `image_u8`; [`outputs`]: the graph
//!   contract's outputs, compared across backends;
//! - [`preprocess`]: image decoding and PIL-exact resizing to the graph input;
//! - [`tiling`]: high-resolution images scored tile by tile, the maps blended without seams;
//! - [`pipeline`]: files → decode and resize → infer → the caller's postprocessing → results in
//!   file order, the stages overlapped on bounded queues, with per-stage times;
//! - [`onnx_head`]: a model's structure decoded without copying its weights;
//! - [`model_file`]: reading a model file within a size limit, external data checked and inlined;
//! - [`verify`]: a new graph checked on every backend at hand against tract (`export --verify`);
//! - [`decision`]: OK/NG from a score and the thresholds (stored or given), masks and the
//!   overlay scale anchored on the pixel threshold; [`threshold_range`]: what a threshold must be
//!   (a number in [0, 1)); [`tile_options`]: how an image is tiled, as the threshold records it;
//! - [`metadata`]: what the exporter wrote into the graph; [`postprocess`]: maps back to image
//!   size, overlays and masks.

pub mod backend;
#[cfg(feature = "tract")]
pub mod cost;
pub mod decision;
pub mod detector;
pub mod input;
pub mod int8_kernels;
pub mod metadata;
pub mod model_file;
pub mod onnx_head;
#[cfg(feature = "openvino")]
pub mod openvino_backend;
#[cfg(feature = "ort")]
pub mod ort_backend;
#[cfg(feature = "ort")]
pub mod ort_lib;
pub mod outputs;
pub mod pipeline;
pub mod postprocess;
pub mod preprocess;
pub mod provider;
pub mod threshold_range;
pub mod tile_options;
pub mod tiling;
#[cfg(feature = "tract")]
pub mod tract_backend;
pub mod verify;

pub use backend::{Backend, BackendChoice, GraphShape, GraphSource};
pub use decision::{Decider, Verdict};
pub use detector::{
    DetectError, Detection, Detector, DetectorBuilder, DetectorOptions, Note, SkipReason,
};
pub use dlvp_contract::{InputKind, Precision, Spec};
pub use input::GraphInput;
pub use metadata::ModelInfo;
pub use outputs::Outputs;
pub use provider::{GpuOptions, OvOptions, OvPrecision, Provider};
