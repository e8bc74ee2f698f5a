//! The detector: a dlvp graph on the best backend available, scoring RGB images.
//!
//! A model is loaded from a file ([`Detector::load`], external data resolved beside it) or from
//! bytes in memory ([`Detector::from_bytes`], self-contained models). The crate's front page has
//! a worked example.
//!
//! `auto` tries ONNX Runtime with TensorRT, then CUDA, then CPU, then OpenVINO CPU, then tract,
//! and says why each skipped one was skipped; naming a backend that cannot run is an error, never
//! a fall back. The detector is `Send + Sync`: tract plans are shared, the ONNX Runtime session
//! and the OpenVINO infer request are locked.

use std::borrow::Borrow;
#[cfg(feature = "tract")]
use std::collections::HashMap;
use std::path::{Path, PathBuf};
#[cfg(feature = "tract")]
use std::sync::Arc;
use std::sync::Mutex;

use dlvp_contract::{InputKind, Precision};
use image::RgbImage;
use ndarray::{Array2, Axis};

use crate::input::GraphInput;
use crate::metadata::{self, ModelInfo};
use crate::model_file;
#[cfg(feature = "ort")]
use crate::ort_backend::{ModelSource, OrtModel};
use crate::outputs::Outputs;
use crate::preprocess::graph_input;
use crate::provider::{GpuOptions, OvOptions, Provider};
#[cfg(feature = "tract")]
use crate::tract_backend::TractModel;

#[cfg(not(any(feature = "ort", feature = "tract", feature = "openvino")))]
compile_error!(
    "dlvp-runtime needs a backend: enable the `ort`, `tract` or `openvino` feature (or several)"
);

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
         export's default, --int8-weights reduced) or run it on a CPU with avx512_vnni or avx_vnni"
    )]
    Int8Inexact {
        backend: BackendChoice,
        features: String,
    },
    /// `auto` found no backend that could run the model: why each was not used.
    #[error("no backend could run the model: {}", reasons.join("; "))]
    NoBackend { reasons: Vec<String> },
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

/// Said when TensorRT runs without TF32 allowed and without `NVIDIA_TF32_OVERRIDE=0` set.
pub const TF32_NOTE: &str = "TensorRT may compute in TF32 (about 1e-3 from f32): set \
NVIDIA_TF32_OVERRIDE=0 in the environment before the program starts threads to keep the 1e-4 parity";

/// Why `auto` leaves an int8 graph off tract.
pub const TRACT_INT8_NOTE: &str = "tract not used: it emulates int8 QDQ in float, slower than the \
fp32 graph (ViT-B/16: 1.34 s vs 0.80 s per image); pass --backend tract to run it anyway";

enum Engine {
    #[cfg(feature = "tract")]
    Tract {
        bytes: Vec<u8>,
        plans: Mutex<HashMap<usize, Arc<TractModel>>>,
    },
    #[cfg(feature = "ort")]
    Ort(Mutex<OrtModel>),
    #[cfg(feature = "openvino")]
    OpenVino(Mutex<crate::openvino_backend::OvModel>),
}

pub struct Detector {
    info: ModelInfo,
    engine: Engine,
    backend: BackendChoice,
    notes: Vec<String>,
}

/// The model as the detector holds it while choosing a backend.
#[cfg_attr(not(feature = "ort"), allow(dead_code))]
enum Held<'a> {
    Bytes(Vec<u8>),
    /// A self-contained file, handed to ONNX Runtime by path.
    File(&'a Path),
}

/// What names a model in messages when it came as bytes.
const IN_MEMORY: &str = "<model bytes>";

impl Detector {
    /// Loads the model file at `path`, with its external data if it has any.
    pub fn load(path: &Path, options: &DetectorOptions) -> Result<Detector, DetectError> {
        let bytes = model_file::read(
            path,
            options
                .max_model_bytes
                .unwrap_or(model_file::DEFAULT_MAX_MODEL_BYTES),
        )?;
        Self::build(bytes, Some(path), options)
    }

    /// Loads a self-contained model from memory (a model with external data must come from its
    /// file, where the data lives: [`Detector::load`]).
    pub fn from_bytes(bytes: Vec<u8>, options: &DetectorOptions) -> Result<Detector, DetectError> {
        let label = Path::new(IN_MEMORY);
        let limit = options
            .max_model_bytes
            .unwrap_or(model_file::DEFAULT_MAX_MODEL_BYTES);
        let unsupported = |message: String| DetectError::Unsupported {
            path: label.to_path_buf(),
            message,
        };
        if bytes.len() as u64 > limit {
            return Err(unsupported(format!(
                "{} bytes, more than the limit of {limit}",
                bytes.len()
            )));
        }
        if crate::onnx_head::ModelHead::decode_from(&bytes).is_ok_and(|h| h.has_external_data()) {
            return Err(unsupported(
                "the model keeps its weights in external data; load it from its file".into(),
            ));
        }
        Self::build(bytes, None, options)
    }

    /// The detector for model `bytes`, read from `file` when it came from one.
    fn build(
        bytes: Vec<u8>,
        file: Option<&Path>,
        options: &DetectorOptions,
    ) -> Result<Detector, DetectError> {
        let path = file.unwrap_or(Path::new(IN_MEMORY));
        let info = metadata::read(&bytes, path)?;
        if let (false, Some(feature)) = (options.backend.is_built(), options.backend.feature()) {
            return Err(DetectError::NotBuilt {
                backend: options.backend,
                feature,
            });
        }
        let max_bytes = options
            .max_model_bytes
            .unwrap_or(model_file::DEFAULT_MAX_MODEL_BYTES);
        // A self-contained file is handed to ONNX Runtime by path and our copy dropped, so the
        // two never coexist (peak memory is one model less); tract rereads it if it comes to that.
        let by_path = file.filter(|_| {
            cfg!(feature = "ort")
                && !matches!(
                    options.backend,
                    BackendChoice::Tract | BackendChoice::OpenVino
                )
                && !crate::onnx_head::ModelHead::decode_from(&bytes)
                    .is_ok_and(|h| h.has_external_data())
        });
        let held = match by_path {
            Some(file) => Held::File(file),
            None => Held::Bytes(bytes),
        };
        #[cfg(feature = "ort")]
        let ort_lib = options.ort_lib.as_deref();
        #[cfg(feature = "ort")]
        let gpu = GpuOptions {
            int8: options.gpu.int8 || info.precision == Precision::Int8,
            ..options.gpu.clone()
        };
        #[cfg(feature = "ort")]
        let ort = |provider| {
            let source = match &held {
                Held::Bytes(b) => ModelSource::Memory(b),
                Held::File(file) => ModelSource::File(file),
            };
            OrtModel::load_from(
                source,
                ort_lib,
                provider,
                &gpu,
                info.input,
                info.spec.image_size,
                options.threads,
            )
            .map(|m| Engine::Ort(Mutex::new(m)))
            .map_err(DetectError::from)
        };
        #[cfg(not(feature = "ort"))]
        let ort = |provider: Provider| -> Result<Engine, DetectError> {
            Err(DetectError::NotBuilt {
                backend: BackendChoice::for_provider(provider),
                feature: "ort",
            })
        };
        #[cfg(feature = "tract")]
        let tract = |held: Held| -> Result<Engine, DetectError> {
            let bytes = match held {
                Held::Bytes(b) => b,
                Held::File(file) => model_file::read(file, max_bytes)?,
            };
            if let Some(n) = options.threads {
                // One pool per process: a second detector's count is ignored.
                crate::tract_backend::set_threads(n);
            }
            Ok(Engine::Tract {
                bytes,
                plans: Mutex::new(HashMap::new()),
            })
        };
        #[cfg(not(feature = "tract"))]
        let tract = |_: Held| -> Result<Engine, DetectError> {
            let _ = max_bytes;
            Err(DetectError::NotBuilt {
                backend: BackendChoice::Tract,
                feature: "tract",
            })
        };
        #[cfg(feature = "openvino")]
        let openvino = |held: &Held| -> Result<Engine, DetectError> {
            let read;
            let bytes = match held {
                Held::Bytes(b) => b,
                Held::File(file) => {
                    read = model_file::read(file, max_bytes)?;
                    &read
                }
            };
            let ov = OvOptions {
                threads: options.openvino.threads.or(options.threads),
                ..options.openvino.clone()
            };
            let model = crate::openvino_backend::OvModel::load(
                bytes,
                options.openvino_lib.as_deref(),
                &ov,
            )?;
            Ok(Engine::OpenVino(Mutex::new(model)))
        };
        #[cfg(not(feature = "openvino"))]
        let openvino = |_: &Held| -> Result<Engine, DetectError> {
            Err(DetectError::NotBuilt {
                backend: BackendChoice::OpenVino,
                feature: "openvino",
            })
        };
        // Full-range int8 weights saturate ONNX Runtime's and OpenVINO's CPU kernels on x86
        // without VNNI: refused there rather than answered wrongly.
        let cpu = crate::int8_kernels::CpuFeatures::detect();
        let int8_inexact = |backend: BackendChoice| {
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
        };
        if let Some(e) = int8_inexact(options.backend) {
            return Err(e);
        }
        let mut notes = Vec::new();
        let (engine, backend) = match options.backend {
            BackendChoice::OrtTensorrt => (ort(Provider::TensorRt)?, options.backend),
            BackendChoice::OrtCuda => (ort(Provider::Cuda)?, options.backend),
            BackendChoice::OrtCpu => (ort(Provider::Cpu)?, options.backend),
            BackendChoice::Tract => (tract(held)?, options.backend),
            BackendChoice::OpenVino => (openvino(&held)?, options.backend),
            BackendChoice::Auto => {
                let mut chosen = None;
                // Without the library no provider can load: one note says so, not one each.
                #[cfg(feature = "ort")]
                let library = crate::ort_lib::load(ort_lib)
                    .map(drop)
                    .map_err(|e| e.to_string());
                #[cfg(not(feature = "ort"))]
                let library: Result<(), String> =
                    Err("not in this build of dlvp-runtime (cargo feature `ort`)".into());
                let providers = match library {
                    Ok(()) => vec![
                        (Provider::TensorRt, BackendChoice::OrtTensorrt),
                        (Provider::Cuda, BackendChoice::OrtCuda),
                        (Provider::Cpu, BackendChoice::OrtCpu),
                    ],
                    Err(e) => {
                        notes.push(format!("onnxruntime not used: {e}"));
                        Vec::new()
                    }
                };
                for (provider, name) in providers {
                    if let Some(e) = int8_inexact(name) {
                        notes.push(format!("{name} not used: {e}"));
                        continue;
                    }
                    match ort(provider) {
                        Ok(engine) => {
                            chosen = Some((engine, name));
                            break;
                        }
                        Err(e) => notes.push(format!("{name} not used: {}", chain(&e))),
                    }
                }
                if let Some(e) = chosen
                    .is_none()
                    .then(|| int8_inexact(BackendChoice::OpenVino))
                    .flatten()
                {
                    notes.push(format!("openvino not used: {e}"));
                } else if chosen.is_none() && BackendChoice::OpenVino.is_built() {
                    match openvino(&held) {
                        Ok(engine) => chosen = Some((engine, BackendChoice::OpenVino)),
                        Err(e) => notes.push(format!("openvino not used: {}", chain(&e))),
                    }
                }
                match chosen {
                    Some(c) => c,
                    // tract runs QuantizeLinear/DequantizeLinear in float: an int8 graph is
                    // slower there than the fp32 one (docs/int8.md), so auto never picks it.
                    None if info.precision == Precision::Int8 => {
                        notes.push(TRACT_INT8_NOTE.to_string());
                        return Err(DetectError::NoBackend { reasons: notes });
                    }
                    None if BackendChoice::Tract.is_built() => (tract(held)?, BackendChoice::Tract),
                    None => return Err(DetectError::NoBackend { reasons: notes }),
                }
            }
        };
        #[cfg(feature = "ort")]
        if backend == BackendChoice::OrtTensorrt && crate::ort_backend::tf32_override_missing(&gpu)
        {
            notes.push(TF32_NOTE.to_string());
        }
        Ok(Detector {
            info,
            engine,
            backend,
            notes,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The backend that runs (never `Auto`: what `Auto` chose).
    pub fn backend(&self) -> BackendChoice {
        self.backend
    }

    /// ONNX Runtime's execution provider that really runs; `None` on tract.
    pub fn provider(&self) -> Option<Provider> {
        match &self.engine {
            #[cfg(feature = "ort")]
            Engine::Ort(model) => Some(model.lock().unwrap_or_else(|p| p.into_inner()).provider()),
            #[cfg(feature = "tract")]
            Engine::Tract { .. } => None,
            #[cfg(feature = "openvino")]
            Engine::OpenVino(_) => None,
        }
    }

    /// What executes the graph, in words for reports: ONNX Runtime's provider
    /// (`CPUExecutionProvider`, ...), `tract`, or `OpenVINO <device> <precision>`.
    pub fn executor(&self) -> String {
        match &self.engine {
            #[cfg(feature = "ort")]
            Engine::Ort(model) => model
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .provider()
                .ort_name()
                .to_string(),
            #[cfg(feature = "tract")]
            Engine::Tract { .. } => "tract".to_string(),
            #[cfg(feature = "openvino")]
            Engine::OpenVino(model) => {
                let model = model.lock().unwrap_or_else(|p| p.into_inner());
                format!("OpenVINO {} {}", model.device(), model.precision())
            }
        }
    }

    /// Why `auto` skipped the backends it skipped.
    pub fn notes(&self) -> &[String] {
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
        let outputs = self.run(input)?;
        outputs
            .check_shapes(images.len(), size, self.info.spec.slfs.top_k)
            .map_err(DetectError::Contract)?;
        Ok((0..images.len())
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
        match &self.engine {
            #[cfg(feature = "ort")]
            Engine::Ort(model) => Ok(model.lock().unwrap_or_else(|p| p.into_inner()).run(batch)?),
            #[cfg(feature = "openvino")]
            Engine::OpenVino(model) => {
                Ok(model.lock().unwrap_or_else(|p| p.into_inner()).run(batch)?)
            }
            #[cfg(feature = "tract")]
            Engine::Tract { bytes, plans } => {
                let plan = {
                    let mut plans = plans.lock().unwrap_or_else(|p| p.into_inner());
                    match plans.get(&n) {
                        Some(plan) => Arc::clone(plan),
                        None => {
                            let plan = Arc::new(TractModel::load(
                                bytes,
                                kind,
                                n,
                                self.info.spec.image_size,
                            )?);
                            plans.insert(n, Arc::clone(&plan));
                            plan
                        }
                    }
                };
                Ok(plan.run(batch)?)
            }
        }
    }
}

/// An error and its sources on one line ("a: b: c"), for the notes kept as text.
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
