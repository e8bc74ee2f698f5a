//! ONNX Runtime's execution providers and their GPU settings, and OpenVINO's device and
//! precision, as plain data: they are part of [`crate::DetectorOptions`] and of what a detector
//! reports, so they exist in every build, with or without the features that run them.

use std::path::PathBuf;

/// The execution provider a session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda,
    TensorRt,
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.ort_name())
    }
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

/// Settings of the GPU providers; the CPU provider ignores them.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// CUDA device ordinal.
    pub device_id: i32,
    /// TensorRT: allow fp16 kernels (LayerNorm is kept in fp32). An fp16 *graph* needs no flag.
    pub fp16: bool,
    /// TensorRT: folder for the engine and timing caches, so only the first run builds.
    pub cache_dir: Option<PathBuf>,
    /// TensorRT: builder workspace in bytes (ORT's default otherwise).
    pub workspace_bytes: Option<usize>,
    /// TensorRT: the optimisation profile covers batches 1..=max_batch (default 8), tuned for max_batch.
    pub max_batch: Option<u32>,
    /// CUDA and TensorRT: allow TF32 matrix products (Ampere and later, Jetson Orin included:
    /// faster, but about 1e-3 from f32, which breaks the 1e-4 parity). Off by default: CUDA gets
    /// `use_tf32=0`; TensorRT, whose provider has no option for it and enables TF32 by default,
    /// needs `NVIDIA_TF32_OVERRIDE=0` in the process's environment before it initialises — the
    /// program's to set at its start (the `dlvp` binary does); the detector notes its absence.
    pub allow_tf32: bool,
    /// TensorRT: allow int8 kernels. The detector turns it on for int8 (QDQ) graphs, whose
    /// Q/DQ scales TensorRT then uses as they are (explicit quantization: no calibration table).
    pub int8: bool,
}

/// The precision OpenVINO computes in (its `INFERENCE_PRECISION_HINT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OvPrecision {
    /// f32 throughout: the graph's own numbers (the 1e-4 contract).
    #[default]
    F32,
    /// bf16 matrix products where the CPU has them (AVX-512 BF16, AMX).
    Bf16,
    /// f16 (GPUs, NPUs, and CPUs with AVX-512 FP16 / AMX-FP16).
    F16,
}

impl OvPrecision {
    pub const ALL: [OvPrecision; 3] = [OvPrecision::F32, OvPrecision::Bf16, OvPrecision::F16];

    /// `f32`, `bf16`, `f16`: the option's value, and OpenVINO's name of the element type.
    pub fn name(self) -> &'static str {
        match self {
            OvPrecision::F32 => "f32",
            OvPrecision::Bf16 => "bf16",
            OvPrecision::F16 => "f16",
        }
    }
}

dlvp_contract::named_enum!(OvPrecision, "OpenVINO precision");

/// How OpenVINO runs the graph.
#[derive(Debug, Clone)]
pub struct OvOptions {
    /// `CPU` (default), `GPU`, `NPU`, `AUTO`, or any device name OpenVINO knows (`GPU.1`).
    pub device: String,
    pub precision: OvPrecision,
    /// OpenVINO's compiled-model cache: the second load of the same model is fast.
    pub cache_dir: Option<PathBuf>,
    /// CPU threads for inference (OpenVINO's default: every core).
    pub threads: Option<usize>,
}

impl Default for OvOptions {
    fn default() -> Self {
        OvOptions {
            device: "CPU".into(),
            precision: OvPrecision::F32,
            cache_dir: None,
            threads: None,
        }
    }
}
