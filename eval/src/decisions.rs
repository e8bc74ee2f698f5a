//! What a decision threshold does on a labelled set (`dlvp eval` at the graph's stored threshold
//! or `--threshold`): the false-alarm rate on its good images and the detection rate on its
//! defective ones, each with a 95% Wilson score interval. NG is a score strictly above the
//! threshold, as everywhere in dlvp (model-spec/README.md, "Decision thresholds").
//!
//! The interval is Wilson's, not the normal approximation: it stays inside [0, 1] and is honest
//! at 0 or n successes, which is where a good line's false alarms sit.

use serde::Serialize;

/// k of n, as a rate with its 95% interval (`None` when n = 0).
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Rate {
    pub count: usize,
    pub of: usize,
    pub rate: Option<f64>,
    pub interval95: Option<[f64; 2]>,
}

impl Rate {
    pub fn new(count: usize, of: usize) -> Rate {
        Rate {
            count,
            of,
            rate: (of > 0).then(|| count as f64 / of as f64),
            interval95: wilson(count, of),
        }
    }

    /// `3/200 = 1.5% [0.5, 4.3]`, or `n/a` without images.
    pub fn show(&self) -> String {
        match (self.rate, self.interval95) {
            (Some(r), Some([lo, hi])) => format!(
                "{}/{} = {:.1}% [{:.1}, {:.1}]",
                self.count,
                self.of,
                100.0 * r,
                100.0 * lo,
                100.0 * hi
            ),
            _ => "n/a".into(),
        }
    }
}

/// The false alarms and detections of one threshold on one set.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct DecisionRates {
    /// Good images decided NG.
    pub false_alarms: Rate,
    /// Defective images decided NG.
    pub detected: Rate,
}

impl DecisionRates {
    /// The rates of `threshold` on `(score, defective)` pairs.
    pub fn at(threshold: f32, scored: impl IntoIterator<Item = (f32, bool)>) -> DecisionRates {
        let (mut good, mut false_alarms, mut defective, mut detected) = (0, 0, 0, 0);
        for (score, is_defective) in scored {
            let ng = score > threshold;
            if is_defective {
                defective += 1;
                detected += ng as usize;
            } else {
                good += 1;
                false_alarms += ng as usize;
            }
        }
        DecisionRates {
            false_alarms: Rate::new(false_alarms, good),
            detected: Rate::new(detected, defective),
        }
    }
}

/// The threshold a report decides with, and where it came from.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DecisionThreshold {
    pub threshold: f32,
    /// The false-alarm rate it was calibrated for, when it was (`dlvp threshold`).
    pub stated_false_alarm: Option<f64>,
    /// For a person: "stored in the graph (calibrated on 200 good images)", "--threshold".
    pub source: String,
}

/// The 95% Wilson score interval of k successes in n trials (z = 1.96); `None` for n = 0.
pub fn wilson(k: usize, n: usize) -> Option<[f64; 2]> {
    if n == 0 {
        return None;
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some([(centre - half).max(0.0), (centre + half).min(1.0)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    // SciPy 1.17: binomtest(k, n).proportion_ci(0.95, method="wilson"), to 6 decimals.
    #[case(0, 10, [0.0, 0.277_533])]
    #[case(5, 10, [0.236_593, 0.763_407])]
    #[case(10, 10, [0.722_467, 1.0])]
    #[case(3, 200, [0.005_114, 0.043_166])]
    fn the_wilson_interval_matches_by_hand(
        #[case] k: usize,
        #[case] n: usize,
        #[case] want: [f64; 2],
    ) {
        let got = wilson(k, n).unwrap();
        assert!(
            (got[0] - want[0]).abs() < 1e-5 && (got[1] - want[1]).abs() < 1e-5,
            "{got:?} vs {want:?}"
        );
    }

    #[test]
    fn no_trials_no_interval() {
        assert_eq!(wilson(0, 0), None);
        assert_eq!(Rate::new(0, 0).show(), "n/a");
    }

    #[test]
    fn rates_count_strictly_above_the_threshold() {
        let scored = [
            (0.1, false),
            (0.5, false),
            (0.6, false),
            (0.5, true),
            (0.9, true),
        ];
        let r = DecisionRates::at(0.5, scored);
        assert_eq!((r.false_alarms.count, r.false_alarms.of), (1, 3));
        assert_eq!((r.detected.count, r.detected.of), (1, 2));
        assert_eq!(r.detected.rate, Some(0.5));
        assert_eq!(r.false_alarms.show(), "1/3 = 33.3% [6.1, 79.2]");
    }
}
