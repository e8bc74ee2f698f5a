//! How `detect`, `eval`, `bench` and `serve` run a graph: the flags ([`RunArgs`]) and the
//! detector they load ([`load_detector`]), with the runtime's notes said in the binary's terms.

use std::path::PathBuf;

use dlvp_runtime::model_file::ModelFileErrorKind;

use dlvp_runtime::{
    BackendChoice, DetectError, Detector, DetectorOptions, GpuOptions, Note, OvOptions,
    OvPrecision, SkipReason,
};

use super::model::Model;
use super::parsers::named_values;
use super::{default_model, libraries};

/// How `detect`, `eval` and `bench` run a graph: backend, ONNX Runtime library, GPU settings.
#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// auto = TensorRT, then CUDA, then ONNX Runtime CPU, then OpenVINO CPU, then tract: the
    /// first that loads.
    #[arg(long, value_parser = named_values(&BackendChoice::ALL), default_value = "auto")]
    pub backend: BackendChoice,
    /// The ONNX Runtime library (default: ORT_DYLIB_PATH, then the project venv).
    #[arg(long)]
    pub ort_lib: Option<PathBuf>,
    /// CUDA device ordinal (ort-cuda, ort-tensorrt).
    #[arg(long, default_value_t = 0)]
    pub device: i32,
    /// TensorRT: allow fp16 kernels (LayerNorm stays fp32).
    #[arg(long)]
    pub trt_fp16: bool,
    /// TensorRT: engine and timing cache folder, so only the first run builds the engine.
    #[arg(long)]
    pub trt_cache: Option<PathBuf>,
    /// CUDA and TensorRT: allow TF32 matrix products (faster on Ampere/Orin, about 1e-3 from
    /// fp32). Off by default: the 1e-4 parity needs fp32.
    #[arg(long)]
    pub allow_tf32: bool,
    /// TensorRT: builder workspace in MiB.
    #[arg(long)]
    pub trt_workspace_mib: Option<usize>,
    /// Largest batch: of TensorRT's optimisation profile (default 8, or --batch if larger); for
    /// `serve`, also of the dynamic batcher and of one request, on every backend (default 8).
    #[arg(long)]
    pub max_batch: Option<u32>,
    /// CPU threads of one run on ONNX Runtime CPU, OpenVINO and tract (default: one per core;
    /// DLVP_TRACT_THREADS still sets tract's alone).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// OpenVINO: the device to compile for (CPU, GPU, NPU, AUTO, or a name such as GPU.1).
    #[arg(long, default_value = "CPU")]
    pub ov_device: String,
    /// OpenVINO: the inference precision; f32 keeps the 1e-4 parity, bf16 and f16 are faster and
    /// less exact (bf16 measured within 2e-2 of f32).
    #[arg(long, default_value = "f32", value_parser = named_values(&OvPrecision::ALL))]
    pub ov_precision: OvPrecision,
    /// OpenVINO: compiled-model cache folder, so the second load of a model is fast.
    #[arg(long)]
    pub ov_cache: Option<PathBuf>,
    /// The OpenVINO C library, libopenvino_c (default: DLVP_OPENVINO_LIB, then the project venv).
    #[arg(long)]
    pub ov_lib: Option<PathBuf>,
    /// Refuse a model larger than this, external data included (a model is inlined into one
    /// protobuf, whose limit is 2 GiB).
    #[arg(long, default_value_t = 2048, value_name = "MIB")]
    pub max_model_mib: u64,
}

/// Loads a graph for `detect`, `eval` and `bench`, printing the backend that runs it and why.
/// `batch` is the largest batch the caller will run (it widens TensorRT's profile). Which backend
/// `auto` picks is the runtime's policy; the binary adds where it looks for the libraries (the
/// project venv too) and says what to do in its own flags.
pub fn load_detector(model: &Model, run: &RunArgs, batch: u32) -> anyhow::Result<Detector> {
    let backend = run.backend;
    let ort_lib = libraries::find(run.ort_lib.as_deref());
    let openvino_lib = libraries::find_openvino(run.ov_lib.as_deref());
    if ort_lib.is_none() && backend.provider().is_some() {
        anyhow::bail!("--backend {backend}: {}", libraries::HINT);
    }
    if backend == BackendChoice::OpenVino && openvino_lib.is_none() {
        anyhow::bail!("--backend openvino: {}", libraries::OPENVINO_HINT);
    }
    let found = (ort_lib.is_some(), openvino_lib.is_some());
    let gpu = GpuOptions {
        device_id: run.device,
        fp16: run.trt_fp16,
        cache_dir: run.trt_cache.clone(),
        workspace_bytes: run.trt_workspace_mib.map(|m| m << 20),
        max_batch: Some(run.max_batch.unwrap_or(8).max(batch)),
        int8: false,
        allow_tf32: run.allow_tf32,
    };
    let options = DetectorOptions {
        backend,
        ort_lib,
        gpu,
        openvino: OvOptions {
            device: run.ov_device.clone(),
            precision: run.ov_precision,
            cache_dir: run.ov_cache.clone(),
            threads: None,
        },
        openvino_lib,
        threads: run.threads.map(|n| n as usize),
        max_model_bytes: Some(run.max_model_mib << 20),
    };
    let loaded = match model {
        Model::File(path) => Detector::load(path, &options),
        Model::Embedded => Detector::from_bytes(default_model::BYTES.to_vec(), &options),
    };
    let detector = match loaded {
        Err(DetectError::Read(e)) if matches!(e.kind, ModelFileErrorKind::TooLarge { .. }) => {
            anyhow::bail!("{e} (--max-model-mib)")
        }
        Err(DetectError::NoBackend { reasons }) => {
            let reasons: Vec<String> = reasons.iter().map(|n| note_text(n, found)).collect();
            anyhow::bail!(
                "{}: no backend could run the model: {}",
                model.label(),
                reasons.join("; ")
            )
        }
        loaded => loaded?,
    };
    for note in detector.notes() {
        eprintln!("note: {}", note_text(note, found));
    }
    eprintln!(
        "backend: {} [{}] ({})",
        detector.backend(),
        detector.executor(),
        detector.info().spec.name
    );
    Ok(detector)
}

/// A detector's note in the binary's terms: a library the binary did not find (`found`: ONNX
/// Runtime's, OpenVINO's) says where it looks; the flag that runs an int8 graph on tract.
fn note_text(note: &Note, found: (bool, bool)) -> String {
    let Note::NotUsed { backends, reason } = note else {
        return note.to_string();
    };
    let ort = backends.iter().any(|b| b.provider().is_some());
    match reason {
        SkipReason::Library(_) if ort && !found.0 => {
            format!("{} not used: {}", note.subject(), libraries::HINT)
        }
        SkipReason::Library(_) if !ort && !found.1 => {
            format!("{} not used: {}", note.subject(), libraries::OPENVINO_HINT)
        }
        SkipReason::Int8OnTract => format!("{note} (--backend tract)"),
        _ => note.to_string(),
    }
}
