//! The outputs of the graph contract (model-spec/README.md "Graph contract"), whichever backend ran.

use ndarray::ArrayD;

#[derive(Debug, Clone)]
pub struct Outputs {
    /// [B]
    pub anomaly_score: ArrayD<f32>,
    /// [B, 1, H, W]
    pub anomaly_map: ArrayD<f32>,
    /// [B, K]
    pub topk_indices: ArrayD<i64>,
}

impl Outputs {
    /// Largest absolute differences (score, map) and whether the Top-K indices agree exactly.
    pub fn compare(&self, other: &Outputs) -> (f32, f32, bool) {
        let max_abs = |a: &ArrayD<f32>, b: &ArrayD<f32>| {
            if a.shape() != b.shape() {
                return f32::INFINITY;
            }
            a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
        };
        (
            max_abs(&self.anomaly_score, &other.anomaly_score),
            max_abs(&self.anomaly_map, &other.anomaly_map),
            self.topk_indices == other.topk_indices,
        )
    }
}
