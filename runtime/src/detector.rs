//! The detector: a dlvp graph on the best backend available, scoring RGB images.
//!
//! A model is loaded from a file ([`Detector::load`], external data resolved beside it) or from
//! bytes in memory ([`Detector::from_bytes`], self-contained models). The crate's front page has
//! a worked example.
//!
//! The detector's one policy is which backend runs: `auto` tries ONNX Runtime with TensorRT,
//! then CUDA, then CPU, then OpenVINO CPU, then tract ([`BackendChoice::AUTO_ORDER`]; a list of
//! one's own with [`DetectorBuilder::backends`]), and keeps why each skipped one was skipped as
//! data ([`Note`]); naming one backend that cannot run is an error, never a fall back. Opening
//! and running a backend is [`crate::backend`]'s. The detector is `Send + Sync`.

use std::borrow::Borrow;
use std::path::{Path, PathBuf};

use dlvp_contract::{InputKind, Precision};
use image::RgbImage;
use ndarray::{Array2, Axis};

use crate::backend::{self, Backend, GraphShape, GraphSource};
use crate::input::GraphInput;
use crate::metadata::{self, ModelInfo};
use crate::model_file;
use crate::outputs::Outputs;
use crate::preprocess::graph_input;
use crate::provider::{GpuOptions, OvOptions, Provider};

#[cfg(not(any(feature = "ort", feature = "tract", feature = "openvino")))]
compile_error!(
    "dlvp-runtime needs a backend: enable the `ort`, `tract` or `openvino` feature (or several)"
);

pub use crate::backend::BackendChoice;

#[derive(Debug, Clone, Default)]
pub struct DetectorOptions {
    pub backend: BackendChoice,
    /// The ONNX Runtime library; default `ORT_DYLIB_PATH`.
    pub ort_lib: Option<PathBuf>,
    /// CUDA / TensorRT settings.
    pub gpu: GpuOptions,
    /// OpenVINO's device, precision, cache and threads (the `openvino` backend).
    pub openvino: OvOptions,
    /// The `libopenvino_c` library; default `DLVP_OPENVINO_LIB`, then OpenVINO's own search.
    pub openvino_lib: Option<PathBuf>,
    /// CPU threads of one run on every CPU backend (default: one per core): ONNX Runtime's
    /// intra-op pool, OpenVINO's inference threads, and tract's pool — tract's is one per process,
    /// so the first detector that runs on tract fixes it.
    pub threads: Option<usize>,
    /// Largest model (with its external data) to load; default [`model_file::DEFAULT_MAX_MODEL_BYTES`].
    pub max_model_bytes: Option<u64>,
}

/// One image's result: the score, the map at the model's H×W, the selected patch indices.
#[derive(Debug, Clone)]
pub struct Detection {
    pub score: f32,
    pub map: Array2<f32>,
    pub topk: Vec<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Read(#[from] model_file::ModelFileError),
    #[error(transparent)]
    Metadata(#[from] metadata::MetadataError),
    #[error("{}: {message}", path.display())]
    Unsupported { path: PathBuf, message: String },
    #[cfg(feature = "ort")]
    #[error(transparent)]
    Ort(#[from] crate::ort_backend::OrtError),
    #[cfg(feature = "tract")]
    #[error(transparent)]
    Tract(#[from] crate::tract_backend::TractError),
    #[cfg(feature = "openvino")]
    #[error(transparent)]
    OpenVino(#[from] crate::openvino_backend::OvError),
    /// The backend asked for was left out of this build.
    #[error("backend `{backend}` is not in this build of dlvp-runtime (enable its cargo feature `{feature}`)")]
    NotBuilt {
        backend: BackendChoice,
        feature: &'static str,
    },
    /// An int8 graph with full-range weights asked of a CPU backend whose int8 kernels would
    /// saturate on this CPU ([`crate::int8_kernels`]).
    #[error(
        "{backend} would compute this int8 graph wrongly on this CPU: its weights use the full \
         int8 range, and without VNNI (this CPU has: {features}) x86 int8 kernels add pairs of \
         products in 16 bits with saturation; re-export it with reduced-range weights (dlvp \
         export's default) or run it on a CPU with avx512_vnni or avx_vnni"
    )]
    Int8Inexact {
        backend: BackendChoice,
        features: String,
    },
    /// No backend of the preference list could run the model: why each was not used.
    #[error("no backend could run the model: {}", reasons.iter().map(Note::to_string).collect::<Vec<_>>().join("; "))]
    NoBackend { reasons: Vec<Note> },
    #[error("the model broke the graph contract: {0}")]
    Contract(String),
    /// A batch handed to [`Detector::run`] that is not the graph's input kind or shape.
    #[error("the graph takes `{expected}` {expected_shape:?} (B = the batch); got `{found}` {found_shape:?}")]
    Input {
        expected: InputKind,
        expected_shape: Vec<usize>,
        found: InputKind,
        found_shape: Vec<usize>,
    },
}

/// Something the detector tells its user about the backend it chose: why it passed over the
/// backends before it, or what costs the parity contract on the one it runs.
#[derive(Debug)]
pub enum Note {
    /// `backends` of the preference list were not used (ONNX Runtime's providers share one note
    /// when its library is missing or not built in).
    NotUsed {
        backends: Vec<BackendChoice>,
        reason: SkipReason,
    },
    /// TensorRT runs without TF32 allowed and without `NVIDIA_TF32_OVERRIDE=0` in the process's
    /// environment: it may compute in TF32 (about 1e-3 from f32).
    Tf32Override,
}

/// Why a backend of the preference list was not used.
#[derive(Debug)]
pub enum SkipReason {
    /// Its cargo feature was left out of this build.
    NotBuilt { feature: &'static str },
    /// Its shared library (ONNX Runtime's or OpenVINO's) was not found or did not load.
    Library(DetectError),
    /// An int8 graph: tract emulates QDQ in float, slower than the fp32 graph, so `auto` leaves
    /// it off tract.
    Int8OnTract,
    /// It could not run the model here (a provider missing, this CPU's int8 kernels, a load
    /// error): the error it gave.
    Failed(DetectError),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::NotBuilt { feature } => write!(
                f,
                "not in this build of dlvp-runtime (cargo feature `{feature}`)"
            ),
            SkipReason::Library(e) | SkipReason::Failed(e) => f.write_str(&chain(e)),
            SkipReason::Int8OnTract => f.write_str(
                "it emulates int8 QDQ in float, slower than the fp32 graph (ViT-B/16: 1.34 s vs \
                 0.80 s per image); name tract alone to run it anyway",
            ),
        }
    }
}

impl Note {
    /// What the note is about: `onnxruntime` for all of its providers at once, else the backend.
    pub fn subject(&self) -> &'static str {
        match self {
            Note::NotUsed { backends, .. } if backends.len() > 1 => "onnxruntime",
            Note::NotUsed { backends, .. } => backends.first().map_or("", |b| b.name()),
            Note::Tf32Override => "ort-tensorrt",
        }
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::NotUsed { reason, .. } => write!(f, "{} not used: {reason}", self.subject()),
            Note::Tf32Override => f.write_str(TF32_NOTE),
        }
    }
}

/// The text of [`Note::Tf32Override`].
pub const TF32_NOTE: &str = "TensorRT may compute in TF32 (about 1e-3 from f32): set \
NVIDIA_TF32_OVERRIDE=0 in the environment before the program starts threads to keep the 1e-4 parity";

/// Which backends to try, in order.
#[derive(Debug, Clone)]
enum Preference {
    /// [`BackendChoice::AUTO_ORDER`], tract left out for int8 graphs.
    Auto,
    /// One backend: its error is the detector's.
    Only(BackendChoice),
    /// The caller's list, tried in order; the first that opens runs.
    List(Vec<BackendChoice>),
}

impl Preference {
    fn of(options: &DetectorOptions) -> Preference {
        match options.backend {
            BackendChoice::Auto => Preference::Auto,
            only => Preference::Only(only),
        }
    }

    fn backends(&self) -> Vec<BackendChoice> {
        match self {
            Preference::Auto => BackendChoice::AUTO_ORDER.to_vec(),
            Preference::Only(b) => vec![*b],
            Preference::List(list) => list.clone(),
        }
    }
}

/// Builds a [`Detector`]: which backends to try and how each runs.
///
/// ```no_run
/// use dlvp_runtime::{BackendChoice, Detector};
/// let detector = Detector::builder()
///     .backends([BackendChoice::OrtCpu, BackendChoice::Tract])
///     .threads(2)
///     .build_from_file("model.onnx".as_ref())?;
/// # Ok::<(), dlvp_runtime::DetectError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct DetectorBuilder {
    options: DetectorOptions,
    list: Option<Vec<BackendChoice>>,
}

impl DetectorBuilder {
    /// One backend, or `Auto` (the default).
    pub fn backend(mut self, backend: BackendChoice) -> Self {
        self.options.backend = backend;
        self.list = None;
        self
    }

    /// Backends to try in this order; the first that opens runs, and [`Detector::notes`] says
    /// why the ones before it did not. `Auto` in the list stands for [`BackendChoice::AUTO_ORDER`].
    pub fn backends(mut self, backends: impl IntoIterator<Item = BackendChoice>) -> Self {
        let mut list = Vec::new();
        for b in backends {
            let expanded: &[BackendChoice] = match b {
                BackendChoice::Auto => &BackendChoice::AUTO_ORDER,
                _ => std::slice::from_ref(&b),
            };
            for &e in expanded {
                if !list.contains(&e) {
                    list.push(e);
                }
            }
        }
        self.list = Some(list);
        self
    }

    /// The ONNX Runtime library (default `ORT_DYLIB_PATH`).
    pub fn ort_lib(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.ort_lib = Some(path.into());
        self
    }

    /// CUDA and TensorRT settings.
    pub fn gpu(mut self, gpu: GpuOptions) -> Self {
        self.options.gpu = gpu;
        self
    }

    /// OpenVINO's device, precision, cache and threads.
    pub fn openvino(mut self, openvino: OvOptions) -> Self {
        self.options.openvino = openvino;
        self
    }

    /// The `libopenvino_c` library (default `DLVP_OPENVINO_LIB`, then OpenVINO's own search).
    pub fn openvino_lib(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.openvino_lib = Some(path.into());
        self
    }

    /// CPU threads of one run (see [`DetectorOptions::threads`]).
    pub fn threads(mut self, threads: usize) -> Self {
        self.options.threads = Some(threads);
        self
    }

    /// The largest model to load, external data included.
    pub fn max_model_bytes(mut self, bytes: u64) -> Self {
        self.options.max_model_bytes = Some(bytes);
        self
    }

    /// Every setting at once (the preference list, if one was given, stays).
    pub fn options(mut self, options: DetectorOptions) -> Self {
        self.options = options;
        self
    }

    fn preference(&self) -> Preference {
        match &self.list {
            Some(list) => Preference::List(list.clone()),
            None => Preference::of(&self.options),
        }
    }

    /// The detector for the model file at `path` (external data resolved beside it).
    pub fn build_from_file(self, path: &Path) -> Result<Detector, DetectError> {
        let bytes = model_file::read(path, self.options.max_bytes())?;
        Detector::build(bytes, Some(path), &self.options, self.preference())
    }

    /// The detector for a self-contained model in memory.
    pub fn build_from_bytes(self, bytes: Vec<u8>) -> Result<Detector, DetectError> {
        let preference = self.preference();
        Detector::check_in_memory(&bytes, &self.options)?;
        Detector::build(bytes, None, &self.options, preference)
    }
}

impl DetectorOptions {
    fn max_bytes(&self) -> u64 {
        self.max_model_bytes
            .unwrap_or(model_file::DEFAULT_MAX_MODEL_BYTES)
    }
}

pub struct Detector {
    info: ModelInfo,
    backend: Box<dyn Backend>,
    notes: Vec<Note>,
}

/// What names a model in messages when it came as bytes.
const IN_MEMORY: &str = "<model bytes>";

impl Detector {
    /// A builder: backends to try, libraries, GPU and CPU settings.
    pub fn builder() -> DetectorBuilder {
        DetectorBuilder::default()
    }

    /// Loads the model file at `path`, with its external data if it has any.
    pub fn load(path: &Path, options: &DetectorOptions) -> Result<Detector, DetectError> {
        Detector::builder()
            .options(options.clone())
            .build_from_file(path)
    }

    /// Loads a self-contained model from memory (a model with external data must come from its
    /// file, where the data lives: [`Detector::load`]).
    pub fn from_bytes(bytes: Vec<u8>, options: &DetectorOptions) -> Result<Detector, DetectError> {
        Detector::builder()
            .options(options.clone())
            .build_from_bytes(bytes)
    }

    /// Refuses model bytes over the size limit or with external data.
    fn check_in_memory(bytes: &[u8], options: &DetectorOptions) -> Result<(), DetectError> {
        let unsupported = |message: String| DetectError::Unsupported {
            path: PathBuf::from(IN_MEMORY),
            message,
        };
        let limit = options.max_bytes();
        if bytes.len() as u64 > limit {
            return Err(unsupported(format!(
                "{} bytes, more than the limit of {limit}",
                bytes.len()
            )));
        }
        if crate::onnx_head::ModelHead::decode_from(bytes).is_ok_and(|h| h.has_external_data()) {
            return Err(unsupported(
                "the model keeps its weights in external data; load it from its file".into(),
            ));
        }
        Ok(())
    }

    /// The detector for model `bytes`, read from `file` when it came from one: the first
    /// backend of `preference` that opens.
    fn build(
        bytes: Vec<u8>,
        file: Option<&Path>,
        options: &DetectorOptions,
        preference: Preference,
    ) -> Result<Detector, DetectError> {
        let path = file.unwrap_or(Path::new(IN_MEMORY));
        let info = metadata::read(&bytes, path)?;
        let backends = preference.backends();
        let strict = matches!(preference, Preference::Only(_));
        // A self-contained file is handed to ONNX Runtime by path and our copy dropped, so the
        // two never coexist (peak memory is one model less); the others reread it if it comes
        // to that.
        let source = match file {
            Some(file)
                if cfg!(feature = "ort")
                    && backends.iter().any(|b| b.provider().is_some())
                    && !crate::onnx_head::ModelHead::decode_from(&bytes)
                        .is_ok_and(|h| h.has_external_data()) =>
            {
                GraphSource::File {
                    path: file.to_path_buf(),
                    max_bytes: options.max_bytes(),
                }
            }
            _ => GraphSource::from(bytes),
        };
        let shape = GraphShape {
            input: info.input,
            image_size: info.spec.image_size,
        };
        // TensorRT takes an int8 graph's Q/DQ scales as they are (explicit quantization).
        let options = DetectorOptions {
            gpu: GpuOptions {
                int8: options.gpu.int8 || info.precision == Precision::Int8,
                ..options.gpu.clone()
            },
            ..options.clone()
        };
        let cpu = crate::int8_kernels::CpuFeatures::detect();
        let mut notes = Vec::new();
        // ONNX Runtime's providers share one library: when it is missing or not built in, one
        // note says so for all of them, and they are not tried one by one.
        let (mut ort_loaded, mut ort_unusable) = (false, false);
        let mut chosen = None;
        for (i, &choice) in backends.iter().enumerate() {
            let is_ort = choice.provider().is_some();
            if is_ort && ort_unusable {
                continue;
            }
            let reason = if let (false, Some(feature)) = (choice.is_built(), choice.feature()) {
                if strict {
                    return Err(DetectError::NotBuilt {
                        backend: choice,
                        feature,
                    });
                }
                SkipReason::NotBuilt { feature }
            } else if choice == BackendChoice::Tract
                && info.precision == Precision::Int8
                && matches!(preference, Preference::Auto)
            {
                // tract runs QuantizeLinear/DequantizeLinear in float: an int8 graph is slower
                // there than the fp32 one (docs/int8.md), so auto never picks it.
                SkipReason::Int8OnTract
            } else if let Some(e) = int8_inexact(&info, choice, &options, &cpu) {
                if strict {
                    return Err(e);
                }
                SkipReason::Failed(e)
            } else if let Some(e) = (is_ort && !strict && !ort_loaded)
                .then(|| ort_library_loads(&options).err())
                .flatten()
            {
                SkipReason::Library(e)
            } else {
                ort_loaded |= is_ort;
                match backend::open(choice, &source, shape, &options) {
                    Ok(opened) => {
                        chosen = Some(opened);
                        break;
                    }
                    Err(e) if strict => return Err(e),
                    Err(e) if is_library_error(&e) => SkipReason::Library(e),
                    Err(e) => SkipReason::Failed(e),
                }
            };
            let whole_library =
                matches!(reason, SkipReason::NotBuilt { .. } | SkipReason::Library(_));
            let skipped = if is_ort && whole_library {
                ort_unusable = true;
                backends[i..]
                    .iter()
                    .copied()
                    .filter(|b| b.provider().is_some())
                    .collect()
            } else {
                vec![choice]
            };
            notes.push(Note::NotUsed {
                backends: skipped,
                reason,
            });
        }
        let Some(backend) = chosen else {
            return Err(DetectError::NoBackend { reasons: notes });
        };
        #[cfg(feature = "ort")]
        if backend.choice() == BackendChoice::OrtTensorrt
            && crate::ort_backend::tf32_override_missing(&options.gpu)
        {
            notes.push(Note::Tf32Override);
        }
        Ok(Detector {
            info,
            backend,
            notes,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The backend that runs (never `Auto`: what `Auto` chose).
    pub fn backend(&self) -> BackendChoice {
        self.backend.choice()
    }

    /// ONNX Runtime's execution provider that really runs; `None` on tract and OpenVINO.
    pub fn provider(&self) -> Option<Provider> {
        self.backend.provider()
    }

    /// What executes the graph, in words for reports (see [`Backend::executor`]).
    pub fn executor(&self) -> String {
        self.backend.executor()
    }

    /// Why the backends before the chosen one were not used, and what costs parity on it.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// Scores one image of any mode and size (converted to RGB8, resized as §1 says).
    pub fn detect(&self, image: &image::DynamicImage) -> Result<Detection, DetectError> {
        Ok(self.detect_batch(&[image.to_rgb8()])?.remove(0))
    }

    /// Scores a batch of RGB images of any size (each is resized as §1 says), owned
    /// (`&[RgbImage]`) or borrowed (`&[&RgbImage]`).
    pub fn detect_batch<I: Borrow<RgbImage>>(
        &self,
        images: &[I],
    ) -> Result<Vec<Detection>, DetectError> {
        let size = self.info.spec.image_size;
        let input = graph_input(images, size, &self.info.spec.preprocess, self.info.input);
        self.detections(input, images.len())
    }

    /// Runs a batch of `n` images already prepared as §1 says (the graph's input kind and
    /// shape; [`crate::preprocess::stack`]) and splits the outputs into each image's result.
    pub fn detections(&self, batch: GraphInput, n: usize) -> Result<Vec<Detection>, DetectError> {
        let size = self.info.spec.image_size;
        let outputs = self.run(batch)?;
        outputs
            .check_shapes(n, size, self.info.spec.slfs.top_k)
            .map_err(DetectError::Contract)?;
        Ok((0..n)
            .map(|i| Detection {
                score: outputs.anomaly_score[[i]],
                map: outputs
                    .anomaly_map
                    .index_axis(Axis(0), i)
                    .index_axis(Axis(0), 0)
                    .to_owned()
                    .into_dimensionality()
                    .expect("[H, W]"),
                topk: outputs
                    .topk_indices
                    .index_axis(Axis(0), i)
                    .iter()
                    .copied()
                    .collect(),
            })
            .collect())
    }

    /// Runs the graph on a batch of its input kind: `image` f32 [B, 3, S, S] preprocessed as §1
    /// says, or `image_u8` u8 [B, S, S, 3] resized (`ModelInfo::input` says which).
    pub fn run(&self, batch: impl Into<GraphInput>) -> Result<Outputs, DetectError> {
        let batch = batch.into();
        let (kind, n) = (self.info.input, batch.batch());
        let expected = GraphInput::expected_shape(kind, n, self.info.spec.image_size);
        if batch.kind() != kind || batch.shape() != expected {
            return Err(DetectError::Input {
                expected: kind,
                expected_shape: expected.to_vec(),
                found: batch.kind(),
                found_shape: batch.shape().to_vec(),
            });
        }
        self.backend.run(batch)
    }
}

/// Full-range int8 weights saturate ONNX Runtime's and OpenVINO's CPU kernels on x86 without
/// VNNI: refused there rather than answered wrongly ([`crate::int8_kernels`]).
fn int8_inexact(
    info: &ModelInfo,
    backend: BackendChoice,
    options: &DetectorOptions,
    cpu: &crate::int8_kernels::CpuFeatures,
) -> Option<DetectError> {
    let on_cpu = match backend {
        BackendChoice::OrtCpu => true,
        BackendChoice::OpenVino => options.openvino.device.starts_with("CPU"),
        _ => false,
    };
    (info.int8_full_range && on_cpu && !cpu.int8_dot_product_exact()).then(|| {
        DetectError::Int8Inexact {
            backend,
            features: cpu.names().join(" "),
        }
    })
}

/// Whether ONNX Runtime's library loads (once per process; a failure is retried next time).
fn ort_library_loads(options: &DetectorOptions) -> Result<(), DetectError> {
    #[cfg(feature = "ort")]
    return crate::ort_lib::load(options.ort_lib.as_deref())
        .map(drop)
        .map_err(|e| DetectError::Ort(e.into()));
    #[cfg(not(feature = "ort"))]
    {
        let _ = options;
        Ok(())
    }
}

/// Whether opening a backend failed for want of its shared library.
fn is_library_error(e: &DetectError) -> bool {
    match e {
        #[cfg(feature = "ort")]
        DetectError::Ort(crate::ort_backend::OrtError::Library(_)) => true,
        #[cfg(feature = "openvino")]
        DetectError::OpenVino(
            crate::openvino_backend::OvError::NotFound { .. }
            | crate::openvino_backend::OvError::Load { .. },
        ) => true,
        _ => false,
    }
}

/// An error and its sources on one line ("a: b: c"), for the notes' text.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
