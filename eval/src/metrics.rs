//! Threshold-free detection metrics over scored samples: AUROC, average precision, F1-max, and
//! the ROC and precision–recall curves behind them.
//!
//! Everything works on *groups*: one per distinct score, in decreasing score order, holding the
//! (possibly fractional) weight of positives and negatives with that score. Ties are therefore
//! handled the way scikit-learn handles them (one threshold per distinct value), and the same
//! code serves exact image scores and the binned pixel histograms of [`crate::pixels`].
//! A metric of samples that are all of one class is undefined: `None`, never a made-up number.

/// Weights of positives and negatives per distinct score, highest score first.
#[derive(Clone, Debug, Default)]
pub struct Groups {
    pub pos: Vec<f64>,
    pub neg: Vec<f64>,
}

impl Groups {
    /// Groups exact scores (`labels[i]` true = anomalous). NaN scores are rejected by the caller.
    pub fn from_scores(scores: &[f32], labels: &[bool]) -> Groups {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut g = Groups::default();
        let mut last: Option<f32> = None;
        for i in order {
            if last != Some(scores[i]) {
                g.pos.push(0.0);
                g.neg.push(0.0);
                last = Some(scores[i]);
            }
            let k = g.pos.len() - 1;
            if labels[i] {
                g.pos[k] += 1.0;
            } else {
                g.neg[k] += 1.0;
            }
        }
        g
    }

    pub fn positives(&self) -> f64 {
        self.pos.iter().sum()
    }

    pub fn negatives(&self) -> f64 {
        self.neg.iter().sum()
    }

    fn both_classes(&self) -> Option<(f64, f64)> {
        let (p, n) = (self.positives(), self.negatives());
        (p > 0.0 && n > 0.0).then_some((p, n))
    }

    /// The ROC curve: (false-positive rate, true-positive rate), from (0, 0) to (1, 1).
    pub fn roc(&self) -> Option<Curve> {
        let (p, n) = self.both_classes()?;
        let (mut tp, mut fp) = (0.0, 0.0);
        let mut curve = Curve {
            x: vec![0.0],
            y: vec![0.0],
        };
        for (dp, dn) in self.pos.iter().zip(&self.neg) {
            tp += dp;
            fp += dn;
            curve.x.push(fp / n);
            curve.y.push(tp / p);
        }
        Some(curve)
    }

    /// The precision–recall curve: (recall, precision) per threshold, highest threshold first.
    pub fn pr(&self) -> Option<Curve> {
        let (p, _) = self.both_classes()?;
        let (mut tp, mut fp) = (0.0, 0.0);
        let mut curve = Curve::default();
        for (dp, dn) in self.pos.iter().zip(&self.neg) {
            tp += dp;
            fp += dn;
            curve.x.push(tp / p);
            curve.y.push(tp / (tp + fp));
        }
        Some(curve)
    }

    /// Area under the ROC curve (trapezoids; a tie group is one diagonal step).
    pub fn auroc(&self) -> Option<f64> {
        Some(self.roc()?.area())
    }

    /// Average precision as scikit-learn defines it: Σ (Rₖ − Rₖ₋₁) · Pₖ, no interpolation.
    pub fn average_precision(&self) -> Option<f64> {
        let pr = self.pr()?;
        let mut prev_recall = 0.0;
        let mut ap = 0.0;
        for (r, p) in pr.x.iter().zip(&pr.y) {
            ap += (r - prev_recall) * p;
            prev_recall = *r;
        }
        Some(ap)
    }

    /// The best F1 over all thresholds, and the threshold group index where it is reached.
    pub fn f1_max(&self) -> Option<f64> {
        let pr = self.pr()?;
        pr.x.iter()
            .zip(&pr.y)
            .map(|(r, p)| {
                if r + p > 0.0 {
                    2.0 * r * p / (r + p)
                } else {
                    0.0
                }
            })
            .fold(None, |best: Option<f64>, f| {
                Some(best.map_or(f, |b| b.max(f)))
            })
    }
}

/// A curve as two coordinate lists.
#[derive(Clone, Debug, Default)]
pub struct Curve {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

impl Curve {
    /// Trapezoidal area under the whole curve.
    pub fn area(&self) -> f64 {
        self.x
            .windows(2)
            .zip(self.y.windows(2))
            .map(|(x, y)| (x[1] - x[0]) * (y[1] + y[0]) / 2.0)
            .sum()
    }

    /// Trapezoidal area for x ≤ `x_max`, the last segment cut at `x_max` by linear
    /// interpolation (the MVTec AD evaluation's `trapezoid(..., x_max)`). `x` must be ascending.
    pub fn area_until(&self, x_max: f64) -> f64 {
        let mut area = 0.0;
        for i in 1..self.x.len() {
            let (x0, x1, y0, y1) = (self.x[i - 1], self.x[i], self.y[i - 1], self.y[i]);
            if x1 <= x_max {
                area += (x1 - x0) * (y0 + y1) / 2.0;
            } else {
                if x0 < x_max {
                    let y_cut = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0);
                    area += (x_max - x0) * (y0 + y_cut) / 2.0;
                }
                break;
            }
        }
        area
    }

    /// At most `n` points, evenly spread along the list, for plotting.
    pub fn thinned(&self, n: usize) -> Curve {
        if self.x.len() <= n || n < 2 {
            return self.clone();
        }
        let idx = (0..n).map(|i| i * (self.x.len() - 1) / (n - 1));
        let (x, y) = idx.map(|i| (self.x[i], self.y[i])).unzip();
        Curve { x, y }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        // scikit-learn: roc_auc_score([0,0,1,1],[.1,.4,.35,.8]) = 0.75, AP = 0.8333...
        let g = Groups::from_scores(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]);
        assert!((g.auroc().unwrap() - 0.75).abs() < 1e-12);
        assert!((g.average_precision().unwrap() - 0.833_333_333_333_333_4).abs() < 1e-12);
        // Best threshold 0.35: P = 2/3, R = 1 → F1 0.8.
        assert!((g.f1_max().unwrap() - 0.8).abs() < 1e-12);
    }

    #[test]
    fn all_tied_scores_are_chance_and_one_class_is_undefined() {
        let g = Groups::from_scores(&[0.5; 6], &[true, false, true, false, false, false]);
        assert_eq!(g.auroc(), Some(0.5));
        assert!((g.average_precision().unwrap() - 2.0 / 6.0).abs() < 1e-12);
        assert_eq!(
            Groups::from_scores(&[0.1, 0.9], &[true, true]).auroc(),
            None
        );
        assert_eq!(
            Groups::from_scores(&[0.1, 0.9], &[false, false]).average_precision(),
            None
        );
        assert_eq!(Groups::from_scores(&[], &[]).f1_max(), None);
    }

    #[test]
    fn area_until_cuts_the_last_segment() {
        let c = Curve {
            x: vec![0.0, 0.2, 0.4, 1.0],
            y: vec![0.0, 1.0, 1.0, 1.0],
        };
        assert!((c.area_until(0.3) - (0.1 + 0.1)).abs() < 1e-12);
        assert!((c.area_until(1.0) - c.area()).abs() < 1e-12);
    }

    proptest! {
        // AUROC is the probability that a random positive outscores a random negative (ties ½).
        #[test]
        fn auroc_is_the_pairwise_probability(scores in prop::collection::vec(0u8..6, 2..40), labels in prop::collection::vec(any::<bool>(), 40)) {
            let scores: Vec<f32> = scores.iter().map(|&s| s as f32).collect();
            let labels = &labels[..scores.len()];
            let g = Groups::from_scores(&scores, labels);
            let (mut wins, mut pairs) = (0.0, 0.0);
            for i in 0..scores.len() { for j in 0..scores.len() {
                if labels[i] && !labels[j] {
                    pairs += 1.0;
                    wins += if scores[i] > scores[j] { 1.0 } else if scores[i] == scores[j] { 0.5 } else { 0.0 };
                }
            }}
            match g.auroc() {
                Some(a) => prop_assert!((a - wins / pairs).abs() < 1e-12),
                None => prop_assert_eq!(pairs, 0.0),
            }
            if let Some(ap) = g.average_precision() { prop_assert!((0.0..=1.0 + 1e-12).contains(&ap)); }
        }
    }
}
