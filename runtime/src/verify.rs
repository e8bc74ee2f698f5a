//! A new graph checked on the backends at hand before it is written (`dlvp export --verify`):
//! one batch run on tract, whose outputs must obey the graph contract (finite, maps within
//! [0, 1] up to the tolerance), then on each other backend given, which must agree with tract
//! within the precision's tolerance ([`Tolerance::of`]; docs/performance.md states the numerical
//! contract). Each step is reported as it finishes, so a caller can print it.

use std::time::Instant;

use dlvp_contract::Precision;

use crate::backend::{self, BackendChoice, GraphShape, GraphSource};
use crate::detector::{DetectError, DetectorOptions};
use crate::input::GraphInput;
use crate::outputs::Outputs;

/// How far backends may drift apart on an int8 graph: each runs the QDQ pairs its own way
/// (integer kernels or float emulation), so results differ by about one quantization step of
/// the activations rather than by float rounding.
pub const INT8_BACKEND_TOLERANCE: f32 = 0.1;

/// How closely two backends must agree on a graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Largest absolute difference of scores and of maps.
    pub max_abs: f32,
    /// Whether the Top-K indices must be equal (near-tied patches may swap on int8 graphs).
    pub exact_topk: bool,
}

impl Tolerance {
    /// fp32: 1e-4 with equal Top-K; fp16: 1e-2 with equal Top-K; int8: [`INT8_BACKEND_TOLERANCE`],
    /// Top-K reported, not required.
    pub fn of(precision: Precision) -> Tolerance {
        let (max_abs, exact_topk) = match precision {
            Precision::Fp32 => (1e-4, true),
            Precision::Fp16 => (1e-2, true),
            Precision::Int8 => (INT8_BACKEND_TOLERANCE, false),
        };
        Tolerance {
            max_abs,
            exact_topk,
        }
    }
}

/// One backend's run, as it finished.
#[derive(Debug, Clone)]
pub struct Step {
    /// `tract`, `onnxruntime-cpu`, `openvino-cpu`, ...
    pub label: String,
    pub seconds: f64,
    pub outputs: Outputs,
    /// Against tract (`None` for tract itself): largest score and map differences, Top-K equal.
    pub against_tract: Option<(f32, f32, bool)>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Backend(#[from] DetectError),
    #[error("verify: outputs break the contract (finite: {finite}, map range [{lo}, {hi}])")]
    Contract { finite: bool, lo: f32, hi: f32 },
    #[error(
        "verify: {label} and tract disagree (score {score:.2e}, map {map:.2e}, topk equal: {topk})"
    )]
    Disagree {
        label: String,
        score: f32,
        map: f32,
        topk: bool,
    },
}

/// The smallest and largest map value.
pub fn map_range(outputs: &Outputs) -> (f32, f32) {
    outputs
        .anomaly_map
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)))
}

/// Runs `batch` on tract, then on each of `others` (a label, the backend and its options), and
/// checks the outputs as the module header says; `on_step` hears each run as it finishes.
pub fn verify(
    source: &GraphSource,
    shape: GraphShape,
    precision: Precision,
    batch: &GraphInput,
    others: &[(&str, BackendChoice, DetectorOptions)],
    on_step: &mut dyn FnMut(&Step),
) -> Result<(), VerifyError> {
    let tolerance = Tolerance::of(precision);
    let run = |backend, options: &DetectorOptions| -> Result<(Outputs, f64), DetectError> {
        let started = Instant::now();
        let outputs = backend::open(backend, source, shape, options)?.run(batch.clone())?;
        Ok((outputs, started.elapsed().as_secs_f64()))
    };
    let (tract, seconds) = run(BackendChoice::Tract, &DetectorOptions::default())?;
    on_step(&Step {
        label: "tract".into(),
        seconds,
        outputs: tract.clone(),
        against_tract: None,
    });
    let finite = tract
        .anomaly_score
        .iter()
        .chain(tract.anomaly_map.iter())
        .all(|v| v.is_finite());
    let (lo, hi) = map_range(&tract);
    if !finite || lo < -tolerance.max_abs || hi > 1.0 + tolerance.max_abs {
        return Err(VerifyError::Contract { finite, lo, hi });
    }
    for (label, backend, options) in others {
        let (outputs, seconds) = run(*backend, options)?;
        let (score, map, topk) = outputs.compare(&tract);
        on_step(&Step {
            label: label.to_string(),
            seconds,
            outputs,
            against_tract: Some((score, map, topk)),
        });
        if (tolerance.exact_topk && !topk) || score > tolerance.max_abs || map > tolerance.max_abs {
            return Err(VerifyError::Disagree {
                label: label.to_string(),
                score,
                map,
                topk,
            });
        }
    }
    Ok(())
}
