//! The backends behind one trait. A graph is opened on tract, ONNX Runtime (CPU, CUDA,
//! TensorRT) or OpenVINO by [`open`] — the one place in dlvp that switches over backends — and
//! run on batches of its input ([`crate::GraphInput`]: `image` f32 [B, 3, S, S] or `image_u8` u8
//! [B, S, S, 3]), returning the graph contract's three outputs (model-spec/README.md, "Graph
//! contract") or any f32 outputs by name (the activations a calibration graph exposes). The
//! detector, the int8 calibration, `export --verify` and the conformance suite all come through
//! here; which backend to try first is the detector's policy ([`crate::detector`]), not this
//! module's.

use std::path::PathBuf;
use std::sync::Arc;

use dlvp_contract::InputKind;
use ndarray::ArrayD;

use crate::detector::{DetectError, DetectorOptions};
use crate::input::GraphInput;
use crate::outputs::Outputs;
use crate::provider::Provider;

/// Which backend runs the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum BackendChoice {
    #[default]
    Auto,
    OrtTensorrt,
    OrtCuda,
    OrtCpu,
    Tract,
    OpenVino,
}

impl BackendChoice {
    pub const ALL: [BackendChoice; 6] = [
        BackendChoice::Auto,
        BackendChoice::OrtTensorrt,
        BackendChoice::OrtCuda,
        BackendChoice::OrtCpu,
        BackendChoice::Tract,
        BackendChoice::OpenVino,
    ];

    /// What `Auto` tries, in order: ONNX Runtime with TensorRT, then CUDA, then CPU, then
    /// OpenVINO, then tract.
    pub const AUTO_ORDER: [BackendChoice; 5] = [
        BackendChoice::OrtTensorrt,
        BackendChoice::OrtCuda,
        BackendChoice::OrtCpu,
        BackendChoice::OpenVino,
        BackendChoice::Tract,
    ];

    /// `auto`, `ort-tensorrt`, `ort-cuda`, `ort-cpu`, `tract`, `openvino`.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::OrtTensorrt => "ort-tensorrt",
            BackendChoice::OrtCuda => "ort-cuda",
            BackendChoice::OrtCpu => "ort-cpu",
            BackendChoice::Tract => "tract",
            BackendChoice::OpenVino => "openvino",
        }
    }

    /// The ONNX Runtime backend of an execution provider.
    pub fn for_provider(provider: Provider) -> BackendChoice {
        match provider {
            Provider::Cpu => BackendChoice::OrtCpu,
            Provider::Cuda => BackendChoice::OrtCuda,
            Provider::TensorRt => BackendChoice::OrtTensorrt,
        }
    }

    /// ONNX Runtime's execution provider of this backend; `None` for the others.
    pub fn provider(self) -> Option<Provider> {
        match self {
            BackendChoice::OrtTensorrt => Some(Provider::TensorRt),
            BackendChoice::OrtCuda => Some(Provider::Cuda),
            BackendChoice::OrtCpu => Some(Provider::Cpu),
            _ => None,
        }
    }

    /// The cargo feature that builds this backend in (`None` for `auto`, which is always there).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            BackendChoice::Auto => None,
            BackendChoice::OrtTensorrt | BackendChoice::OrtCuda | BackendChoice::OrtCpu => {
                Some("ort")
            }
            BackendChoice::Tract => Some("tract"),
            BackendChoice::OpenVino => Some("openvino"),
        }
    }

    /// Whether this build of the crate has the backend (see [`BackendChoice::feature`]).
    pub fn is_built(self) -> bool {
        match self.feature() {
            None => true,
            Some("ort") => cfg!(feature = "ort"),
            Some("openvino") => cfg!(feature = "openvino"),
            Some(_) => cfg!(feature = "tract"),
        }
    }
}

dlvp_contract::named_enum!(BackendChoice, "backend");

/// A graph opened on one backend. Every backend is `Send + Sync`: tract's plans are shared
/// between threads, ONNX Runtime's session and OpenVINO's infer request are locked per run.
pub trait Backend: Send + Sync {
    /// Which backend this is (never `Auto`).
    fn choice(&self) -> BackendChoice;

    /// ONNX Runtime's execution provider that really runs; `None` on the other backends.
    fn provider(&self) -> Option<Provider> {
        None
    }

    /// What executes the graph, in words for reports: ONNX Runtime's provider
    /// (`CPUExecutionProvider`, ...), `tract`, or `OpenVINO <device> <precision>`.
    fn executor(&self) -> String;

    /// Runs a batch of the graph's input kind; the contract's three outputs.
    fn run(&self, batch: GraphInput) -> Result<Outputs, DetectError>;

    /// Runs a batch and returns the f32 outputs `names`, in that order (an error names one the
    /// graph lacks).
    fn run_outputs(
        &self,
        batch: GraphInput,
        names: &[String],
    ) -> Result<Vec<ArrayD<f32>>, DetectError>;
}

/// Where a backend reads the graph from.
#[derive(Debug, Clone)]
pub enum GraphSource {
    /// ONNX bytes, self-contained (external data already inlined).
    Bytes(Arc<Vec<u8>>),
    /// A self-contained model file (no external data) of at most `max_bytes`: ONNX Runtime
    /// parses it itself, so the caller need not hold a copy while ONNX Runtime builds its own
    /// (a ViT-B/16 graph is 0.5 GB); the other backends read it.
    File { path: PathBuf, max_bytes: u64 },
}

impl GraphSource {
    /// The model's bytes (read from the file when that is where it is).
    pub fn bytes(&self) -> Result<Arc<Vec<u8>>, DetectError> {
        match self {
            GraphSource::Bytes(b) => Ok(Arc::clone(b)),
            GraphSource::File { path, max_bytes } => {
                Ok(Arc::new(crate::model_file::read(path, *max_bytes)?))
            }
        }
    }
}

impl From<Vec<u8>> for GraphSource {
    fn from(bytes: Vec<u8>) -> Self {
        GraphSource::Bytes(Arc::new(bytes))
    }
}

/// The graph's input, which shapes tract's plans and TensorRT's optimisation profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphShape {
    pub input: InputKind,
    /// The side S of the square input.
    pub image_size: usize,
}

/// Opens the graph on `backend` with `options` (the ONNX Runtime and OpenVINO libraries, GPU
/// and OpenVINO settings, CPU threads; `options.backend` is not read). A backend left out of
/// this build is [`DetectError::NotBuilt`]; one that cannot start here is its own error, never a
/// fall back to another (falling back is [`crate::Detector`]'s policy).
pub fn open(
    backend: BackendChoice,
    source: &GraphSource,
    shape: GraphShape,
    options: &DetectorOptions,
) -> Result<Box<dyn Backend>, DetectError> {
    if let (false, Some(feature)) = (backend.is_built(), backend.feature()) {
        return Err(DetectError::NotBuilt { backend, feature });
    }
    let _ = (source, shape, options);
    match backend {
        BackendChoice::Auto => Err(DetectError::Contract(
            "`auto` is a policy of the detector, not a backend to open".into(),
        )),
        #[cfg(feature = "ort")]
        BackendChoice::OrtTensorrt | BackendChoice::OrtCuda | BackendChoice::OrtCpu => {
            let provider = backend.provider().expect("an ONNX Runtime backend");
            Ok(Box::new(crate::ort_backend::OrtBackend::open(
                source, provider, shape, options,
            )?))
        }
        #[cfg(feature = "tract")]
        BackendChoice::Tract => Ok(Box::new(crate::tract_backend::TractBackend::open(
            source, shape, options,
        )?)),
        #[cfg(feature = "openvino")]
        BackendChoice::OpenVino => Ok(Box::new(crate::openvino_backend::OvBackend::open(
            source, options,
        )?)),
        #[allow(unreachable_patterns)]
        _ => unreachable!("is_built() answered for {backend}"),
    }
}
