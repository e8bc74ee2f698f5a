//! Running an exported graph on tract (CPU, pure Rust), optimised for one batch size (the
//! detector caches one plan per batch size it sees). Runs use one thread per CPU for matrix
//! products and the larger element-wise ops (tract's `multithread-mm` executor), as ONNX
//! Runtime does; [`set_threads`] picks another count (1: tract's single-thread default) for the
//! whole process, before the first run.

use dlvp_contract::InputKind;
use ndarray::ArrayD;
use tract_onnx::prelude::*;

use crate::backend::{Backend, BackendChoice, GraphShape, GraphSource};
use crate::detector::{DetectError, DetectorOptions};
use crate::input::GraphInput;
use crate::outputs::Outputs;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use tract_linalg::multithread::{multithread_tract_scope, Executor};

static POOL: OnceLock<Executor> = OnceLock::new();

fn pool(threads: usize) -> Executor {
    if threads <= 1 {
        Executor::SingleThread
    } else {
        Executor::multithread(threads)
    }
}

/// Sets the number of threads every tract run of this process shares. It takes effect only
/// before the first tract run (the pool is built once); afterwards it returns `false`.
pub fn set_threads(threads: usize) -> bool {
    POOL.set(pool(threads)).is_ok()
}

/// The thread pool every tract run shares (built on first use: one thread per CPU).
fn executor() -> Executor {
    POOL.get_or_init(|| pool(std::thread::available_parallelism().map_or(1, |n| n.get())))
        .clone()
}

/// A tract failure at `stage`; tract's own error (an `anyhow` chain) is the source.
#[derive(Debug, thiserror::Error)]
#[error("tract: {stage}")]
pub struct TractError {
    pub stage: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl TractError {
    /// A failure our own checks found around tract, described by `message`.
    pub(crate) fn ours(stage: &'static str, message: String) -> TractError {
        TractError {
            stage,
            source: message.into(),
        }
    }
}

pub(crate) fn err(stage: &'static str) -> impl Fn(tract_onnx::prelude::TractError) -> TractError {
    move |e| TractError {
        stage,
        source: e.into(),
    }
}

/// An optimised tract plan of a graph for one input shape.
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    /// The graph's output names, in graph order (tract's optimiser may relabel outlets).
    output_names: Vec<String>,
}

impl TractModel {
    /// Loads ONNX bytes and optimises them for `batch` images of side `size` of the graph's
    /// `input` kind (`image` f32 [batch, 3, size, size] or `image_u8` u8 [batch, size, size, 3]).
    pub fn load(
        bytes: &[u8],
        input: InputKind,
        batch: usize,
        size: usize,
    ) -> Result<TractModel, TractError> {
        let shape = GraphInput::expected_shape(input, batch, size);
        let fact = match input {
            InputKind::Image => f32::fact(shape),
            InputKind::ImageU8 => u8::fact(shape),
        };
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(err("load"))?;
        let output_names = model
            .output_outlets()
            .map_err(err("outputs"))?
            .iter()
            .map(|&o| model.outlet_label(o).unwrap_or_default().to_string())
            .collect();
        let plan = model
            .with_input_fact(0, fact.into())
            .map_err(err("input shape"))?
            .into_optimized()
            .map_err(err("optimise"))?
            .into_runnable()
            .map_err(err("plan"))?;
        Ok(TractModel { plan, output_names })
    }

    /// Runs a batch and returns the f32 outputs `names` (the activations a calibration graph
    /// exposes), in that order.
    pub fn run_named(
        &self,
        input: impl Into<GraphInput>,
        names: &[String],
    ) -> Result<Vec<ArrayD<f32>>, TractError> {
        let indices = names
            .iter()
            .map(|n| {
                self.output_names
                    .iter()
                    .position(|o| o == n)
                    .ok_or_else(|| {
                        TractError::ours("outputs", format!("the graph has no output `{n}`"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tensor = match input.into() {
            GraphInput::Image(x) => Tensor::from(x),
            GraphInput::ImageU8(x) => Tensor::from(x),
        };
        let out = multithread_tract_scope(executor(), || self.plan.run(tvec!(tensor.into())))
            .map_err(err("run"))?;
        indices
            .into_iter()
            .map(|i| {
                Ok(out[i]
                    .to_plain_array_view::<f32>()
                    .map_err(err("outputs"))?
                    .to_owned())
            })
            .collect()
    }

    /// Runs a batch of the kind and shape the plan was made for.
    pub fn run(&self, input: impl Into<GraphInput>) -> Result<Outputs, TractError> {
        let tensor = match input.into() {
            GraphInput::Image(x) => Tensor::from(x),
            GraphInput::ImageU8(x) => Tensor::from(x),
        };
        let out = multithread_tract_scope(executor(), || self.plan.run(tvec!(tensor.into())))
            .map_err(err("run"))?;
        if out.len() != 3 {
            return Err(TractError::ours(
                "outputs",
                format!("the graph has {} outputs, expected 3", out.len()),
            ));
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

/// A graph on tract behind the [`Backend`] trait: one optimised plan per batch size, made on
/// the first run of that size and shared by every thread after.
pub struct TractBackend {
    bytes: Arc<Vec<u8>>,
    shape: GraphShape,
    plans: Mutex<HashMap<usize, Arc<TractModel>>>,
}

impl TractBackend {
    /// Keeps the graph's bytes for the plans to come; `options.threads` sets tract's pool (one
    /// per process: the first detector to run on tract fixes it).
    pub fn open(
        source: &GraphSource,
        shape: GraphShape,
        options: &DetectorOptions,
    ) -> Result<TractBackend, DetectError> {
        let bytes = source.bytes()?;
        if let Some(n) = options.threads {
            set_threads(n);
        }
        Ok(TractBackend {
            bytes,
            shape,
            plans: Mutex::new(HashMap::new()),
        })
    }

    fn plan(&self, batch: usize) -> Result<Arc<TractModel>, TractError> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(plan) = plans.get(&batch) {
            return Ok(Arc::clone(plan));
        }
        let plan = Arc::new(TractModel::load(
            &self.bytes,
            self.shape.input,
            batch,
            self.shape.image_size,
        )?);
        plans.insert(batch, Arc::clone(&plan));
        Ok(plan)
    }
}

impl Backend for TractBackend {
    fn choice(&self) -> BackendChoice {
        BackendChoice::Tract
    }

    fn executor(&self) -> String {
        "tract".to_string()
    }

    fn run(&self, batch: GraphInput) -> Result<Outputs, DetectError> {
        Ok(self.plan(batch.batch())?.run(batch)?)
    }

    fn run_outputs(
        &self,
        batch: GraphInput,
        names: &[String],
    ) -> Result<Vec<ArrayD<f32>>, DetectError> {
        Ok(self.plan(batch.batch())?.run_named(batch, names)?)
    }
}
