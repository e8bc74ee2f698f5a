//! Running an exported graph on ONNX Runtime: the CPU execution provider, or CUDA / TensorRT
//! when the loaded library has them (their tuning options are still to come).

use std::path::Path;

use ndarray::ArrayD;
use ort::session::Session;
use ort::value::Tensor;

use crate::ort_lib;
pub use crate::outputs::Outputs;

#[derive(Debug, thiserror::Error)]
pub enum OrtError {
    #[error(transparent)]
    Library(#[from] ort_lib::OrtLibError),
    #[error("ONNX Runtime: {stage}: {message}")]
    Run {
        stage: &'static str,
        message: String,
    },
}

fn err<E: std::fmt::Display>(stage: &'static str) -> impl Fn(E) -> OrtError {
    move |e| OrtError::Run {
        stage,
        message: e.to_string(),
    }
}

/// The execution provider a session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda,
    TensorRt,
}

impl Provider {
    pub fn ort_name(self) -> &'static str {
        match self {
            Provider::Cpu => "CPUExecutionProvider",
            Provider::Cuda => "CUDAExecutionProvider",
            Provider::TensorRt => "TensorrtExecutionProvider",
        }
    }
}

pub struct OrtModel {
    session: Session,
    provider: Provider,
}

impl OrtModel {
    /// A CPU session of the ONNX bytes, with the library from `ort_lib` (explicit path, `ORT_DYLIB_PATH`, project venv).
    pub fn load(bytes: &[u8], ort_lib_path: Option<&Path>) -> Result<OrtModel, OrtError> {
        OrtModel::load_with(bytes, ort_lib_path, Provider::Cpu)
    }

    /// A session on `provider`; a GPU provider the library lacks, or that fails to initialise, is
    /// an error naming it (never a silent fall back to CPU).
    pub fn load_with(
        bytes: &[u8],
        ort_lib_path: Option<&Path>,
        provider: Provider,
    ) -> Result<OrtModel, OrtError> {
        use ort::ep::ExecutionProvider;
        let loaded = ort_lib::load(ort_lib_path)?;
        let mut builder = Session::builder(&loaded.environment).map_err(err("session options"))?;
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
            let dispatch = match provider {
                Provider::Cuda => ort::ep::CUDA::default().build().error_on_failure(),
                _ => ort::ep::TensorRT::default().build().error_on_failure(),
            };
            builder = builder
                .with_execution_providers([dispatch])
                .map_err(|e| OrtError::Run {
                    stage: "provider",
                    message: format!("{} failed to initialise: {e}", provider.ort_name()),
                })?;
        }
        let session = builder.commit_from_memory(bytes).map_err(err("load"))?;
        Ok(OrtModel { session, provider })
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn run(&mut self, image: ArrayD<f32>) -> Result<Outputs, OrtError> {
        let input = Tensor::from_array(image).map_err(err("input"))?;
        let out = self
            .session
            .run(ort::inputs!["image" => input])
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
            anomaly_score: f32_out("anomaly_score")?,
            anomaly_map: f32_out("anomaly_map")?,
            topk_indices: get("topk_indices")?
                .try_extract_array::<i64>()
                .map_err(err("outputs"))?
                .to_owned(),
        })
    }
}
