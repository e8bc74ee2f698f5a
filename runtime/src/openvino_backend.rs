//! Running an exported graph on OpenVINO (feature `openvino`): the ONNX bytes read by OpenVINO's
//! ONNX frontend, compiled for a device (`CPU` by default; `GPU`, `NPU`, `AUTO` where the machine
//! has them) at an inference precision (f32 keeps the 1e-4 parity contract; bf16 and f16 are
//! opt-in: bf16 measured 3.0e-3 / 6.1e-3 on ViT-B/16 scores / maps, but 1.5e-2 on the maps of
//! the tiny random-weight golden model), optionally with OpenVINO's compiled-model cache.
//!
//! The C library (`libopenvino_c`) is loaded at run time from the path the caller gives, else
//! `DLVP_OPENVINO_LIB`, else wherever OpenVINO's own finder looks (`OPENVINO_INSTALL_DIR`,
//! `INTEL_OPENVINO_DIR`, the library path). The PyPI `openvino` wheel ships it as
//! `openvino/libs/libopenvino_c.so.<version>`, beside the device plugins it loads.
//!
//! The batch dimension stays dynamic: one compiled model serves every batch size.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use dlvp_contract::graph::{OUTPUT_MAP, OUTPUT_SCORE, OUTPUT_TOPK};
use ndarray::{ArrayD, IxDyn};
use openvino::{Core, DeviceType, ElementType, RwPropertyKey, Shape, Tensor};

use crate::backend::{Backend, BackendChoice, GraphSource};
use crate::detector::{DetectError, DetectorOptions};
use crate::input::GraphInput;
use crate::outputs::Outputs;
pub use crate::provider::{OvOptions, OvPrecision};

/// The environment variable naming the `libopenvino_c` shared library.
pub const LIBRARY_ENV: &str = "DLVP_OPENVINO_LIB";

#[derive(Debug, thiserror::Error)]
pub enum OvError {
    #[error("OpenVINO library {}: no such file", path.display())]
    NotFound { path: PathBuf },
    #[error("cannot load OpenVINO{}: {message}", path.as_ref().map(|p| format!(" from {}", p.display())).unwrap_or_default())]
    Load {
        path: Option<PathBuf>,
        message: String,
    },
    #[error("OpenVINO: device `{device}` is not on this machine (available: {})", available.join(", "))]
    NoDevice {
        device: String,
        available: Vec<String>,
    },
    #[error("OpenVINO: device `{device}` cannot compute in {precision} (it offers: {offered})")]
    Precision {
        device: String,
        precision: OvPrecision,
        offered: String,
    },
    /// OpenVINO itself failed at `stage`; its error is the source.
    #[error("OpenVINO: {stage}")]
    Ov {
        stage: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    #[error("OpenVINO: {stage}: {message}")]
    Run {
        stage: &'static str,
        message: String,
    },
}

fn err<E: std::error::Error + Send + Sync + 'static>(stage: &'static str) -> impl Fn(E) -> OvError {
    move |e| OvError::Ov {
        stage,
        source: Box::new(e),
    }
}

/// Loads `libopenvino_c` once per process: `explicit`, else [`LIBRARY_ENV`], else OpenVINO's
/// finder. A later call with another path keeps the first library (a process has one OpenVINO).
pub fn load_library(explicit: Option<&Path>) -> Result<(), OvError> {
    static LOADED: Mutex<Option<Result<(), String>>> = Mutex::new(None);
    let path = explicit.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(LIBRARY_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });
    if let Some(p) = &path {
        if !p.exists() {
            return Err(OvError::NotFound { path: p.clone() });
        }
    }
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    let result = loaded.get_or_insert_with(|| match &path {
        Some(p) => openvino_sys::library::load_from(p.clone()),
        None => openvino_sys::library::load(),
    });
    result
        .clone()
        .map_err(|message| OvError::Load { path, message })
}

/// A compiled model and its inference request (one run at a time; the detector locks it).
pub struct OvModel {
    request: openvino::InferRequest,
    // Kept alive for the request's sake.
    _compiled: openvino::CompiledModel,
    device: String,
    precision: OvPrecision,
}

impl OvModel {
    /// Reads the ONNX `bytes` (self-contained) and compiles them as `options` say, with the
    /// library from `library` (see [`load_library`]).
    pub fn load(
        bytes: &[u8],
        library: Option<&Path>,
        options: &OvOptions,
    ) -> Result<OvModel, OvError> {
        load_library(library)?;
        let mut core = Core::new().map_err(err("core"))?;
        let available: Vec<String> = core
            .available_devices()
            .map_err(err("devices"))?
            .iter()
            .map(|d| d.as_ref().to_string())
            .collect();
        let device = options.device.clone();
        let family = device.split(['.', ':']).next().unwrap_or_default();
        let virtual_device = matches!(family, "AUTO" | "MULTI" | "HETERO" | "BATCH");
        if !virtual_device
            && !available
                .iter()
                .any(|d| d == &device || d.starts_with(family))
        {
            return Err(OvError::NoDevice { device, available });
        }
        let target = DeviceType::from(device.as_str());
        if !virtual_device && options.precision != OvPrecision::F32 {
            let offered = core
                .get_property(&target, &openvino::PropertyKey::DeviceCapabilities)
                .map_err(err("device capabilities"))?;
            let wanted = options.precision.name().to_uppercase();
            if !offered
                .split([' ', ','])
                .any(|c| c.eq_ignore_ascii_case(&wanted))
            {
                return Err(OvError::Precision {
                    device,
                    precision: options.precision,
                    offered,
                });
            }
        }
        let mut properties = vec![(
            RwPropertyKey::HintInferencePrecision,
            options.precision.name().to_string(),
        )];
        if let Some(threads) = options.threads {
            properties.push((RwPropertyKey::InferenceNumThreads, threads.to_string()));
        }
        for (key, value) in &properties {
            core.set_property(&target, key, value)
                .map_err(err("device properties"))?;
        }
        if let Some(dir) = &options.cache_dir {
            std::fs::create_dir_all(dir).map_err(|e| OvError::Ov {
                stage: "cache folder",
                source: Box::new(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", dir.display()),
                )),
            })?;
            core.set_property(
                &DeviceType::from(""),
                &RwPropertyKey::CacheDir,
                &dir.display().to_string(),
            )
            .map_err(err("cache folder"))?;
        }
        let model = core
            .read_model_from_buffer(bytes, None)
            .map_err(err("load"))?;
        let mut compiled = core.compile_model(&model, target).map_err(err("compile"))?;
        let request = compiled
            .create_infer_request()
            .map_err(err("infer request"))?;
        Ok(OvModel {
            request,
            _compiled: compiled,
            device: options.device.clone(),
            precision: options.precision,
        })
    }

    /// The device the model was compiled for.
    pub fn device(&self) -> &str {
        &self.device
    }

    pub fn precision(&self) -> OvPrecision {
        self.precision
    }

    /// Runs a batch of either input kind (the graph's own; OpenVINO names a mismatch).
    pub fn run(&mut self, input: impl Into<GraphInput>) -> Result<Outputs, OvError> {
        self.infer(input.into())?;
        Ok(Outputs {
            anomaly_score: self.output::<f32>(OUTPUT_SCORE, ElementType::F32)?,
            anomaly_map: self.output::<f32>(OUTPUT_MAP, ElementType::F32)?,
            topk_indices: self.output::<i64>(OUTPUT_TOPK, ElementType::I64)?,
        })
    }

    /// Sets the input and runs the request; the outputs wait in it.
    fn infer(&mut self, input: GraphInput) -> Result<(), OvError> {
        let dims: Vec<i64> = input.shape().iter().map(|&d| d as i64).collect();
        let shape = Shape::new(&dims).map_err(err("input"))?;
        let name = input.kind().name();
        let tensor = match input {
            GraphInput::Image(x) => ov_tensor(ElementType::F32, &shape, x)?,
            GraphInput::ImageU8(x) => ov_tensor(ElementType::U8, &shape, x)?,
        };
        self.request
            .set_tensor(name, &tensor)
            .map_err(err("input"))?;
        self.request.infer().map_err(err("run"))
    }

    /// Runs a batch and returns the f32 outputs `names`, in that order.
    pub fn run_named(
        &mut self,
        input: impl Into<GraphInput>,
        names: &[String],
    ) -> Result<Vec<ArrayD<f32>>, OvError> {
        self.infer(input.into())?;
        names
            .iter()
            .map(|n| self.output::<f32>(n, ElementType::F32))
            .collect()
    }

    fn output<T: Copy>(&self, name: &str, wanted: ElementType) -> Result<ArrayD<T>, OvError> {
        let tensor = self.request.get_tensor(name).map_err(|e| OvError::Run {
            stage: "outputs",
            message: format!("the graph has no output `{name}` ({e})"),
        })?;
        let found = tensor.get_element_type().map_err(err("outputs"))?;
        if found != wanted {
            return Err(OvError::Run {
                stage: "outputs",
                message: format!("output `{name}` is {found:?}, expected {wanted:?}"),
            });
        }
        let shape: Vec<usize> = tensor
            .get_shape()
            .map_err(err("outputs"))?
            .get_dimensions()
            .iter()
            .map(|&d| d as usize)
            .collect();
        let data = tensor.get_data::<T>().map_err(err("outputs"))?.to_vec();
        ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| OvError::Run {
            stage: "outputs",
            message: format!("output `{name}`: {e}"),
        })
    }
}

/// An OpenVINO tensor of `element` type holding a copy of `x` (row-major).
fn ov_tensor<T: Copy>(
    element: ElementType,
    shape: &Shape,
    x: ArrayD<T>,
) -> Result<Tensor, OvError> {
    let mut tensor = Tensor::new(element, shape).map_err(err("input"))?;
    let x = x.as_standard_layout();
    tensor
        .get_data_mut::<T>()
        .map_err(err("input"))?
        .copy_from_slice(x.as_slice().expect("standard layout"));
    Ok(tensor)
}

/// [`OvModel`] behind the [`Backend`] trait: one run at a time on the infer request.
pub struct OvBackend(Mutex<OvModel>);

impl OvBackend {
    /// Compiles the graph from `source` as `options.openvino` says (its threads default to
    /// `options.threads`), with the library `options.openvino_lib`.
    pub fn open(source: &GraphSource, options: &DetectorOptions) -> Result<OvBackend, DetectError> {
        let bytes = source.bytes()?;
        let ov = OvOptions {
            threads: options.openvino.threads.or(options.threads),
            ..options.openvino.clone()
        };
        let model = OvModel::load(&bytes, options.openvino_lib.as_deref(), &ov)?;
        Ok(OvBackend(Mutex::new(model)))
    }

    fn model(&self) -> std::sync::MutexGuard<'_, OvModel> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Backend for OvBackend {
    fn choice(&self) -> BackendChoice {
        BackendChoice::OpenVino
    }

    fn executor(&self) -> String {
        let model = self.model();
        format!("OpenVINO {} {}", model.device(), model.precision())
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
