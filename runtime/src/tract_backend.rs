//! Running an exported graph on tract (CPU, pure Rust), optimised for one batch size (the
//! detector caches one plan per batch size it sees).

use ndarray::ArrayD;
use tract_onnx::prelude::*;

pub use crate::outputs::Outputs;

/// A tract failure, with the stage it happened in (tract's own error type is `anyhow`-based).
#[derive(Debug, thiserror::Error)]
#[error("tract: {stage}: {message}")]
pub struct TractError {
    pub stage: &'static str,
    pub message: String,
}

fn err(stage: &'static str) -> impl Fn(tract_onnx::prelude::TractError) -> TractError {
    move |e| TractError {
        stage,
        message: format!("{e:#}"),
    }
}

/// An optimised tract plan of a graph for one input shape.
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
}

impl TractModel {
    /// Loads ONNX bytes and optimises them for `image` of shape [batch, 3, size, size].
    pub fn load(bytes: &[u8], batch: usize, size: usize) -> Result<TractModel, TractError> {
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(err("load"))?
            .with_input_fact(0, f32::fact([batch, 3, size, size]).into())
            .map_err(err("input shape"))?
            .into_optimized()
            .map_err(err("optimise"))?
            .into_runnable()
            .map_err(err("plan"))?;
        Ok(TractModel { plan })
    }

    pub fn run(&self, image: ArrayD<f32>) -> Result<Outputs, TractError> {
        let out = self
            .plan
            .run(tvec!(Tensor::from(image).into()))
            .map_err(err("run"))?;
        if out.len() != 3 {
            return Err(TractError {
                stage: "outputs",
                message: format!("the graph has {} outputs, expected 3", out.len()),
            });
        }
        let f32_out = |i: usize| -> Result<ArrayD<f32>, TractError> {
            Ok(out[i]
                .to_plain_array_view::<f32>()
                .map_err(err("outputs"))?
                .to_owned())
        };
        Ok(Outputs {
            anomaly_score: f32_out(0)?,
            anomaly_map: f32_out(1)?,
            topk_indices: out[2]
                .to_plain_array_view::<i64>()
                .map_err(err("outputs"))?
                .to_owned(),
        })
    }
}
