//! ONNX Runtime's execution providers and their GPU settings, as plain data: they are part of
//! [`crate::DetectorOptions`] and of what a detector reports, so they exist in every build,
//! with or without the `ort` feature that runs them.

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
}
