//! Running an exported graph on ONNX Runtime: the CPU execution provider, or CUDA / TensorRT
//! when the loaded library has them, tuned by [`GpuOptions`] (device, TensorRT fp16, engine and
//! timing caches, workspace, the batch range of the optimisation profile).

use std::path::Path;

use dlvp_contract::graph::{InputKind, OUTPUT_MAP, OUTPUT_SCORE, OUTPUT_TOPK};
use ndarray::ArrayD;
use ort::session::Session;
use ort::value::Tensor;

use crate::backend::{Backend, BackendChoice, GraphShape, GraphSource};
use crate::detector::{DetectError, DetectorOptions};
use crate::input::GraphInput;
use crate::ort_lib;
use crate::outputs::Outputs;
pub use crate::provider::{GpuOptions, Provider};

#[derive(Debug, thiserror::Error)]
pub enum OrtError {
    #[error(transparent)]
    Library(#[from] ort_lib::OrtLibError),
    /// ONNX Runtime itself failed at `stage`; its error is the source.
    #[error("ONNX Runtime: {stage}")]
    Ort {
        stage: &'static str,
        #[source]
        source: ort::Error,
    },
    /// A provider the library has could not be set up (its error is the source).
    #[error("ONNX Runtime: provider: {provider} failed to initialise")]
    ProviderInit {
        provider: Provider,
        #[source]
        source: ort::Error,
    },
    /// The TensorRT cache folder could not be created.
    #[error("ONNX Runtime: provider: {}: cannot create the TensorRT cache folder", path.display())]
    CacheFolder {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// What our own checks around ONNX Runtime found (a provider missing, an output absent).
    #[error("ONNX Runtime: {stage}: {message}")]
    Run {
        stage: &'static str,
        message: String,
    },
}

fn err(stage: &'static str) -> impl Fn(ort::Error) -> OrtError {
    move |source| OrtError::Ort { stage, source }
}

/// Where ONNX Runtime reads a model from.
#[derive(Clone, Copy)]
pub enum ModelSource<'a> {
    Memory(&'a [u8]),
    /// A file with no external data, already checked by `model_file::read`.
    File(&'a Path),
}

/// The environment variable NVIDIA's libraries (TensorRT, cuBLAS, cuDNN) read to forbid TF32.
/// TensorRT builds with its kTF32 flag set and ONNX Runtime's provider offers no option to clear
/// it, so only `NVIDIA_TF32_OVERRIDE=0` in the process's environment, set before the libraries
/// initialise, keeps the 1e-4 parity. A library cannot set it soundly (another thread may be
/// reading the environment): the program does, at its start (the `dlvp` binary does), and the
/// detector notes when it is missing ([`tf32_override_missing`]).
pub const TF32_OVERRIDE: &str = "NVIDIA_TF32_OVERRIDE";

/// Whether TensorRT would compute in TF32 although `gpu` does not allow it: the process's
/// environment lacks `NVIDIA_TF32_OVERRIDE=0`.
pub fn tf32_override_missing(gpu: &GpuOptions) -> bool {
    !gpu.allow_tf32 && std::env::var_os(TF32_OVERRIDE).is_none_or(|v| v != "0")
}

pub struct OrtModel {
    session: Session,
    provider: Provider,
}

fn tensorrt(
    gpu: &GpuOptions,
    input: InputKind,
    image_size: usize,
) -> Result<ort::ep::TensorRT, OrtError> {
    let max_batch = gpu.max_batch.unwrap_or(8).max(1);
    // The profile names the graph's input and its shape: `image:Bx3xSxS` or `image_u8:BxSxSx3`.
    let shape = |b: u32| {
        let dims = GraphInput::expected_shape(input, b as usize, image_size);
        let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
        format!("{}:{}", input.name(), dims.join("x"))
    };
    let mut trt = ort::ep::TensorRT::default()
        .with_device_id(gpu.device_id)
        .with_fp16(gpu.fp16)
        .with_int8(gpu.int8)
        .with_layer_norm_fp32_fallback(true)
        .with_profile_min_shapes(shape(1))
        .with_profile_opt_shapes(shape(max_batch))
        .with_profile_max_shapes(shape(max_batch));
    if let Some(dir) = &gpu.cache_dir {
        std::fs::create_dir_all(dir).map_err(|source| OrtError::CacheFolder {
            path: dir.clone(),
            source,
        })?;
        let dir = dir.display().to_string();
        trt = trt
            .with_engine_cache(true)
            .with_engine_cache_path(&dir)
            .with_timing_cache(true)
            .with_timing_cache_path(&dir);
    }
    if let Some(bytes) = gpu.workspace_bytes {
        trt = trt.with_max_workspace_size(bytes);
    }
    Ok(trt)
}

impl OrtModel {
    /// A session of the graph on `provider`, with the library from `ort_lib_path` (explicit
    /// path, else `ORT_DYLIB_PATH`); a GPU provider the library lacks, or that fails to
    /// initialise, is an error naming it (never a silent fall back to CPU). A self-contained file
    /// is parsed by ONNX Runtime itself, so the caller need not hold the model's bytes while
    /// ONNX Runtime holds its own copy. The graph's `shape` shapes TensorRT's optimisation
    /// profile; `threads`: the CPU threads of one run (ONNX Runtime's intra-op pool; default one
    /// per core).
    pub fn load_from(
        source: ModelSource,
        ort_lib_path: Option<&Path>,
        provider: Provider,
        gpu: &GpuOptions,
        shape: GraphShape,
        threads: Option<usize>,
    ) -> Result<OrtModel, OrtError> {
        use ort::ep::ExecutionProvider;
        let loaded = ort_lib::load(ort_lib_path)?;
        let mut builder = Session::builder(&loaded.environment).map_err(err("session options"))?;
        if let Some(n) = threads {
            builder = builder.with_intra_threads(n).map_err(|e| OrtError::Ort {
                stage: "session options",
                source: e.into(),
            })?;
        }
        if provider != Provider::Cpu {
            let available = match provider {
                Provider::Cuda => ort::ep::CUDA::is_available(),
                _ => ort::ep::TensorRT::is_available(),
            }
            .map_err(err("provider query"))?;
            if !available {
                return Err(OrtError::Run {
                    stage: "provider",
                    message: format!(
                        "{} is not in the ONNX Runtime at {} (the PyPI `onnxruntime` wheel is CPU-only; use a GPU build)",
                        provider.ort_name(),
                        loaded.path.display()
                    ),
                });
            }
            let cuda = ort::ep::CUDA::default()
                .with_device_id(gpu.device_id)
                .with_tf32(gpu.allow_tf32)
                .build()
                .error_on_failure();
            let dispatch = match provider {
                Provider::Cuda => vec![cuda],
                // CUDA after TensorRT takes any node TensorRT declines.
                _ => vec![
                    tensorrt(gpu, shape.input, shape.image_size)?
                        .build()
                        .error_on_failure(),
                    cuda,
                ],
            };
            builder =
                builder
                    .with_execution_providers(dispatch)
                    .map_err(|e| OrtError::ProviderInit {
                        provider,
                        source: e.into(),
                    })?;
        }
        let session = match source {
            ModelSource::Memory(bytes) => builder.commit_from_memory(bytes),
            ModelSource::File(path) => builder.commit_from_file(path),
        }
        .map_err(err("load"))?;
        Ok(OrtModel { session, provider })
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Runs a batch and returns the f32 outputs `names` (the activations a calibration graph
    /// exposes), in that order.
    pub fn run_named(
        &mut self,
        input: impl Into<GraphInput>,
        names: &[String],
    ) -> Result<Vec<ArrayD<f32>>, OrtError> {
        let (name, tensor) = input_value(input.into())?;
        let out = self
            .session
            .run(ort::inputs![name => tensor])
            .map_err(err("run"))?;
        names
            .iter()
            .map(|n| {
                let value = out.get(n.as_str()).ok_or_else(|| OrtError::Run {
                    stage: "outputs",
                    message: format!("the graph has no output `{n}`"),
                })?;
                Ok(value
                    .try_extract_array::<f32>()
                    .map_err(err("outputs"))?
                    .to_owned())
            })
            .collect()
    }

    /// Runs a batch of either input kind (the graph's own; ONNX Runtime names a mismatch).
    pub fn run(&mut self, input: impl Into<GraphInput>) -> Result<Outputs, OrtError> {
        let (name, tensor) = input_value(input.into())?;
        let out = self
            .session
            .run(ort::inputs![name => tensor])
            .map_err(err("run"))?;
        let get = |name: &str| {
            out.get(name).ok_or_else(|| OrtError::Run {
                stage: "outputs",
                message: format!("the graph has no output `{name}`"),
            })
        };
        let f32_out = |name: &str| -> Result<ArrayD<f32>, OrtError> {
            Ok(get(name)?
                .try_extract_array::<f32>()
                .map_err(err("outputs"))?
                .to_owned())
        };
        Ok(Outputs {
            anomaly_score: f32_out(OUTPUT_SCORE)?,
            anomaly_map: f32_out(OUTPUT_MAP)?,
            topk_indices: get(OUTPUT_TOPK)?
                .try_extract_array::<i64>()
                .map_err(err("outputs"))?
                .to_owned(),
        })
    }
}

/// The graph input's name and ONNX Runtime value for a batch.
fn input_value(input: GraphInput) -> Result<(&'static str, ort::value::DynValue), OrtError> {
    let name = input.kind().name();
    let tensor = match input {
        GraphInput::Image(x) => Tensor::from_array(x).map_err(err("input"))?.into_dyn(),
        GraphInput::ImageU8(x) => Tensor::from_array(x).map_err(err("input"))?.into_dyn(),
    };
    Ok((name, tensor))
}

/// [`OrtModel`] behind the [`Backend`] trait: one run at a time on the session.
pub struct OrtBackend(std::sync::Mutex<OrtModel>);

impl OrtBackend {
    /// The graph from `source` on `provider`; `options` gives the library, GPU settings and
    /// threads.
    pub fn open(
        source: &GraphSource,
        provider: Provider,
        shape: GraphShape,
        options: &DetectorOptions,
    ) -> Result<OrtBackend, DetectError> {
        let source = match source {
            GraphSource::Bytes(b) => ModelSource::Memory(b),
            GraphSource::File { path, .. } => ModelSource::File(path),
        };
        let model = OrtModel::load_from(
            source,
            options.ort_lib.as_deref(),
            provider,
            &options.gpu,
            shape,
            options.threads,
        )?;
        Ok(OrtBackend(std::sync::Mutex::new(model)))
    }

    fn model(&self) -> std::sync::MutexGuard<'_, OrtModel> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Backend for OrtBackend {
    fn choice(&self) -> BackendChoice {
        BackendChoice::for_provider(self.model().provider())
    }

    fn provider(&self) -> Option<Provider> {
        Some(self.model().provider())
    }

    fn executor(&self) -> String {
        self.model().provider().ort_name().to_string()
    }

    fn run(&self, batch: GraphInput) -> Result<Outputs, DetectError> {
        Ok(self.model().run(batch)?)
    }

    fn run_outputs(
        &self,
        batch: GraphInput,
        names: &[String],
    ) -> Result<Vec<ArrayD<f32>>, DetectError> {
        Ok(self.model().run_named(batch, names)?)
    }
}
