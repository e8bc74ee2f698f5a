//! The outputs of the graph contract (model-spec/README.md "Graph contract"), whichever backend ran.

use dlvp_contract::graph::{OUTPUT_MAP, OUTPUT_SCORE, OUTPUT_TOPK};
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
    /// Checks the shapes against the contract for `batch` images of side `size` and `k` patches,
    /// so a graph that merely carries our metadata cannot make a caller index out of bounds.
    pub fn check_shapes(&self, batch: usize, size: usize, k: usize) -> Result<(), String> {
        let expect = [
            (OUTPUT_SCORE, self.anomaly_score.shape(), vec![batch]),
            (
                OUTPUT_MAP,
                self.anomaly_map.shape(),
                vec![batch, 1, size, size],
            ),
            (OUTPUT_TOPK, self.topk_indices.shape(), vec![batch, k]),
        ];
        for (name, found, wanted) in expect {
            if found != wanted.as_slice() {
                return Err(format!(
                    "output `{name}` has shape {found:?}, expected {wanted:?}"
                ));
            }
        }
        Ok(())
    }

    /// Largest absolute differences (score, map) and whether the Top-K indices agree exactly.
    pub fn compare(&self, other: &Outputs) -> (f32, f32, bool) {
        let max_abs = |a: &ArrayD<f32>, b: &ArrayD<f32>| {
            if a.shape() != b.shape() {
                return f32::INFINITY;
            }
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max)
        };
        (
            max_abs(&self.anomaly_score, &other.anomaly_score),
            max_abs(&self.anomaly_map, &other.anomaly_map),
            self.topk_indices == other.topk_indices,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn shapes_off_the_contract_are_named() {
        let outputs = Outputs {
            anomaly_score: ArrayD::zeros(IxDyn(&[2])),
            anomaly_map: ArrayD::zeros(IxDyn(&[2, 1, 8, 8])),
            topk_indices: ArrayD::zeros(IxDyn(&[2, 4])),
        };
        assert_eq!(outputs.check_shapes(2, 8, 4), Ok(()));
        assert_eq!(
            outputs.check_shapes(2, 8, 3),
            Err("output `topk_indices` has shape [2, 4], expected [2, 3]".into())
        );
        assert!(outputs
            .check_shapes(3, 8, 4)
            .unwrap_err()
            .starts_with("output `anomaly_score`"));
    }
}
