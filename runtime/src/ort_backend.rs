//! Running an exported graph on ONNX Runtime's CPU execution provider.
//!
//! The first piece of the runtime's ORT backend (`dlvp export --verify` uses it); the TensorRT
//! and CUDA providers, their options and the backend trait arrive with the runtime issue.

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
    Run { stage: &'static str, message: String },
}

fn err<E: std::fmt::Display>(stage: &'static str) -> impl Fn(E) -> OrtError {
    move |e| OrtError::Run { stage, message: e.to_string() }
}

pub struct OrtModel {
    session: Session,
}

impl OrtModel {
    /// A CPU session of the ONNX bytes, with the library from `ort_lib` (explicit path, `ORT_DYLIB_PATH`, project venv).
    pub fn load(bytes: &[u8], ort_lib_path: Option<&Path>) -> Result<OrtModel, OrtError> {
        let loaded = ort_lib::load(ort_lib_path)?;
        let session = Session::builder(&loaded.environment)
            .map_err(err("session options"))?
            .commit_from_memory(bytes)
            .map_err(err("load"))?;
        Ok(OrtModel { session })
    }

    pub fn run(&mut self, image: ArrayD<f32>) -> Result<Outputs, OrtError> {
        let input = Tensor::from_array(image).map_err(err("input"))?;
        let out = self.session.run(ort::inputs!["image" => input]).map_err(err("run"))?;
        let f32_out = |name: &str| -> Result<ArrayD<f32>, OrtError> {
            Ok(out[name].try_extract_array::<f32>().map_err(err("outputs"))?.to_owned())
        };
        Ok(Outputs {
            anomaly_score: f32_out("anomaly_score")?,
            anomaly_map: f32_out("anomaly_map")?,
            topk_indices: out["topk_indices"].try_extract_array::<i64>().map_err(err("outputs"))?.to_owned(),
        })
    }
}
