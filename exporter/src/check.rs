//! Checkpoint-against-spec check (`dlvp weights check`): reads every tensor the spec's
//! manifest names through a [`Weights`] scope, exactly as the exporter will, and reports every
//! problem at once rather than stopping at the first.

use std::sync::Arc;

use crate::manifest::{expected_tensors, Usage};
use crate::spec::Spec;
use crate::weights::{Checkpoint, WeightsError};

/// One tensor-level problem found by [`check_checkpoint`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    Missing {
        tensor: String,
        expected: String,
    },
    Shape {
        tensor: String,
        found: Vec<usize>,
        expected: String,
    },
    Unused {
        tensor: String,
        shape: Vec<usize>,
    },
    Dtype {
        tensor: String,
        dtype: String,
    },
    NonFinite {
        tensor: String,
        nan: usize,
        inf: usize,
    },
}

impl Problem {
    pub fn tensor(&self) -> &str {
        match self {
            Problem::Missing { tensor, .. }
            | Problem::Shape { tensor, .. }
            | Problem::Unused { tensor, .. }
            | Problem::Dtype { tensor, .. }
            | Problem::NonFinite { tensor, .. } => tensor,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing { tensor, expected } => {
                write!(f, "missing     {tensor}: expected shape {expected}")
            }
            Problem::Shape {
                tensor,
                found,
                expected,
            } => {
                write!(
                    f,
                    "mis-shaped  {tensor}: found {found:?}, expected {expected}"
                )
            }
            Problem::Unused { tensor, shape } => write!(
                f,
                "unused      {tensor}: {shape:?}, not part of this spec's model"
            ),
            Problem::Dtype { tensor, dtype } => write!(
                f,
                "dtype       {tensor}: {dtype}, expected F32, F16 or BF16"
            ),
            Problem::NonFinite { tensor, nan, inf } => {
                write!(f, "non-finite  {tensor}: {nan} NaN, {inf} Inf")
            }
        }
    }
}

/// The outcome of comparing a checkpoint with a spec.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// Tensors in the checkpoint.
    pub tensors: usize,
    /// Tensors the spec expects that were present, well-shaped and finite.
    pub matched: usize,
    pub problems: Vec<Problem>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Compares `ckpt` with the tensors `spec` implies. Only I/O-level failures are errors; every
/// tensor-level finding is a [`Problem`] in the report.
pub fn check_checkpoint(ckpt: Arc<Checkpoint>, spec: &Spec) -> Result<CheckReport, WeightsError> {
    let tensors = ckpt.tensors().len();
    let root = ckpt.root();
    let mut problems = Vec::new();
    let mut matched = 0;
    let mut ignored = Vec::new();
    for expected in expected_tensors(spec) {
        if expected.usage == Usage::Ignored {
            if root.contains(&expected.name) {
                ignored.push(expected.name.clone());
            }
            continue;
        }
        match root.get_expected(&expected.name, &expected.shape) {
            Ok(_) => matched += 1,
            Err(WeightsError::Missing { .. }) | Err(WeightsError::Shape { .. }) => {} // in the ledger
            Err(WeightsError::UnsupportedDtype { tensor, dtype, .. }) => {
                problems.push(Problem::Dtype {
                    tensor,
                    dtype: dtype.to_string(),
                })
            }
            Err(WeightsError::NonFinite {
                tensor, nan, inf, ..
            }) => problems.push(Problem::NonFinite { tensor, nan, inf }),
            Err(other) => return Err(other),
        }
    }
    let ledger = root.ledger();
    problems.extend(
        ledger
            .missing
            .into_iter()
            .map(|(tensor, e)| Problem::Missing {
                tensor,
                expected: e.to_string(),
            }),
    );
    problems.extend(
        ledger
            .mis_shaped
            .into_iter()
            .map(|(tensor, found, e)| Problem::Shape {
                tensor,
                found,
                expected: e.to_string(),
            }),
    );
    problems.extend(
        ledger
            .unused
            .into_iter()
            .filter(|name| !ignored.contains(name))
            .map(|tensor| {
                let shape = root.checkpoint().tensors()[&tensor].shape.clone();
                Problem::Unused { tensor, shape }
            }),
    );
    Ok(CheckReport {
        tensors,
        matched,
        problems,
    })
}
