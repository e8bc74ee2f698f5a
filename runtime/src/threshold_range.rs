//! What a number must be to decide as a threshold (model-spec/README.md, "Decision
//! thresholds"): `anomaly_score` and `anomaly_map` lie in [0, 1], so a threshold is a number in
//! [0, 1) — NaN or one at or above 1 would pass every part, one below 0 fail every part. A leaf:
//! both the metadata reader (stored thresholds) and [`crate::decision`] (given ones) check here.

/// Why a number cannot be a threshold ([`check_threshold`]).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum BadThreshold {
    #[error("{value} is not a number: a NaN threshold would pass every part")]
    NotANumber { value: f32 },
    #[error(
        "{value} would pass every part: scores and map values lie in [0, 1], so a threshold \
         must be at least 0 and below 1"
    )]
    PassesAll { value: f32 },
    #[error(
        "{value} would make every part NG: scores and map values lie in [0, 1], so a threshold \
         must be at least 0 and below 1"
    )]
    FailsAll { value: f32 },
}

/// The smallest and (exclusive) largest threshold a decision accepts: `anomaly_score` and
/// `anomaly_map` lie in [0, 1] (model-spec/README.md, "Outputs"), so a threshold at or above 1
/// passes every image and one below 0 fails every image.
pub const THRESHOLD_RANGE: std::ops::Range<f32> = 0.0..1.0;

/// `value` when it can decide: a number in [0, 1). Every place a threshold enters — a flag, a
/// request, the graph's `dlvp.threshold.*` metadata, the C++ `set_threshold` — checks it so.
pub fn check_threshold(value: f32) -> Result<f32, BadThreshold> {
    if value.is_nan() {
        Err(BadThreshold::NotANumber { value })
    } else if value >= THRESHOLD_RANGE.end {
        Err(BadThreshold::PassesAll { value })
    } else if value < THRESHOLD_RANGE.start {
        Err(BadThreshold::FailsAll { value })
    } else {
        Ok(value)
    }
}
