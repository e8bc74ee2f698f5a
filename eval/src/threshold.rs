//! Decision thresholds with a stated false-alarm rate, by split-conformal calibration: with the
//! scores of n good images, t is the k-th smallest, k = ⌈(n + 1)(1 − α)⌉. A new good image
//! exchangeable with them (same line, same camera, same part) scores above t with probability
//! at most α, whatever the score distribution: its rank among the n + 1 scores is uniform, and it
//! exceeds t only when it ranks above k. The rate is also at least α − 1/(n + 1) for scores
//! without ties, so more images make it tighter, not safer. An image is NG when its score is
//! above t (a tie with t is OK: ties only make the rate smaller).
//!
//! The pixel threshold uses the same law on each good image's largest map value: at most α of
//! good images get any mask pixel above it ([`pixel_threshold`]).
//!
//! When n is too small for α — k would be n + 1, past the largest score — no threshold has the
//! guarantee, and the error says how many images are needed ([`images_needed`]).
//!
//! Scores move in their last digits with the batch an image runs in (the backends' kernels
//! block a batch differently) and between fp32 backends; an order statistic stored as it is sits
//! exactly on a calibration score, which then counts as a false alarm in one run and not in
//! another. The stored threshold is therefore placed clear of every calibration score by a
//! margin ([`Threshold::clear_of`]): it starts at the order statistic plus the margin and moves
//! up past any score within the margin of it. Raising a threshold only lowers the false-alarm
//! rate, so the guarantee holds as it was; and while scores move by less than the margin, every
//! calibration image gets the same decision in every run.

/// A threshold and what it was calibrated on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Scores above it are NG.
    pub value: f32,
    /// The false-alarm rate it guarantees at most.
    pub alpha: f64,
    /// Good images it was calibrated on.
    pub n: usize,
    /// Its rank among their scores (1 = the smallest).
    pub rank: usize,
    /// The rank-th smallest score (`value` is at least this, and above it by [`Threshold::margin`]
    /// or more once placed with [`Threshold::clear_of`]).
    pub order_statistic: f32,
    /// How far every calibration score is from `value` at least (0: not placed).
    pub margin: f32,
    /// How many calibration scores are at or below `value` (`rank`, or more with ties or once
    /// placed past scores near it).
    pub covered: usize,
}

/// The margin [`Threshold::clear_of`] keeps by default: 1e-4, the fp32 parity every backend
/// keeps with the reference (model-spec/README.md) — 10 to 100 times the batch jitter measured
/// on each backend (docs/decisions.md) — and far below the spread of good scores that matters
/// to a line.
pub const DEFAULT_MARGIN: f32 = 1e-4;

impl Threshold {
    /// Whether a score is over the threshold (NG).
    pub fn exceeded_by(&self, score: f32) -> bool {
        score > self.value
    }

    /// The threshold moved up to the first value at least `margin` from every one of `scores`
    /// (the calibration's, whose rank-th smallest it is): it starts at the order statistic plus
    /// `margin`, and while a score lies within `margin` of it, moves to that score plus
    /// `margin`. It only ever rises — so the false-alarm guarantee holds — and stops after at most
    /// n moves. The result is an f32 (the type decisions compare in), rounded up.
    pub fn clear_of(self, scores: &[f32], margin: f32) -> Threshold {
        let margin64 = margin.max(0.0) as f64;
        // The smallest f32 at or above x.
        let up = |x: f64| {
            let f = x as f32;
            if (f as f64) < x {
                f.next_up()
            } else {
                f
            }
        };
        let mut value = up(self.order_statistic as f64 + margin64);
        while let Some(near) = scores
            .iter()
            .map(|&s| s as f64)
            .filter(|&s| (s - value as f64).abs() < margin64)
            .max_by(f64::total_cmp)
        {
            value = up(near + margin64);
        }
        Threshold {
            value,
            margin: margin.max(0.0),
            covered: scores.iter().filter(|&&s| s <= value).count(),
            ..self
        }
    }

    /// The smallest false-alarm rate the calibration can have (scores without ties): the
    /// guarantee is tight to within 1/(n + 1), less each score a placed threshold moved past.
    pub fn lower_rate(&self) -> f64 {
        1.0 - self.covered.max(self.rank) as f64 / (self.n + 1) as f64
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    #[error("the false-alarm rate must be between 0 and 1 (exclusive); got {alpha}")]
    Alpha { alpha: f64 },
    #[error("no scores to calibrate on")]
    NoScores,
    #[error(
        "{n} good image(s) are too few for a false-alarm rate of {alpha}: split-conformal \
         calibration needs at least {needed} (⌈(n + 1)(1 − α)⌉ must not pass n)"
    )]
    TooFew { n: usize, needed: usize, alpha: f64 },
    #[error("score {index} is not a number ({value})")]
    NotFinite { index: usize, value: f32 },
}

/// Float slack for ⌈·⌉ of a product that is an integer in exact arithmetic ((9 + 1) × 0.9).
const SLACK: f64 = 1e-9;

fn check_alpha(alpha: f64) -> Result<(), ThresholdError> {
    if alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(ThresholdError::Alpha { alpha })
    }
}

/// The fewest good images that give a threshold for `alpha`: the smallest n with
/// ⌈(n + 1)(1 − α)⌉ ≤ n, that is n ≥ (1 − α)/α (9 for 0.1, 19 for 0.05, 99 for 0.01).
pub fn images_needed(alpha: f64) -> Result<usize, ThresholdError> {
    check_alpha(alpha)?;
    Ok(((1.0 - alpha) / alpha - SLACK).ceil().max(1.0) as usize)
}

/// The split-conformal threshold of good images' `scores` at false-alarm rate `alpha`.
pub fn conformal(scores: &[f32], alpha: f64) -> Result<Threshold, ThresholdError> {
    check_alpha(alpha)?;
    if scores.is_empty() {
        return Err(ThresholdError::NoScores);
    }
    if let Some((index, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(ThresholdError::NotFinite { index, value });
    }
    let n = scores.len();
    let rank = ((n + 1) as f64 * (1.0 - alpha) - SLACK).ceil().max(1.0) as usize;
    if rank > n {
        return Err(ThresholdError::TooFew {
            n,
            needed: images_needed(alpha)?,
            alpha,
        });
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(f32::total_cmp);
    Ok(Threshold {
        value: sorted[rank - 1],
        alpha,
        n,
        rank,
        order_statistic: sorted[rank - 1],
        margin: 0.0,
        covered: sorted.partition_point(|&s| s <= sorted[rank - 1]),
    })
}

/// The pixel threshold of good images at rate `alpha`, from each image's largest map value: a
/// new good image gets any mask pixel above it with probability at most `alpha`.
pub fn pixel_threshold(max_per_image: &[f32], alpha: f64) -> Result<Threshold, ThresholdError> {
    conformal(max_per_image, alpha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case::nine_at_a_tenth(9, 0.1, Some(9))]
    #[case::ten_at_a_tenth(10, 0.1, Some(10))] // ⌈11 × 0.9⌉ = ⌈9.9⌉ = 10
    #[case::eight_are_too_few(8, 0.1, None)]
    #[case::nineteen_at_five_percent(19, 0.05, Some(19))]
    #[case::forty_at_a_tenth(40, 0.1, Some(37))] // ⌈41 × 0.9⌉ = ⌈36.9⌉
    #[case::ninety_nine_at_one_percent(99, 0.01, Some(99))]
    #[case::half(3, 0.5, Some(2))]
    fn the_rank_is_the_order_statistic_by_hand(
        #[case] n: usize,
        #[case] alpha: f64,
        #[case] rank: Option<usize>,
    ) {
        // Scores 1..=n in reverse, so the k-th smallest is k.
        let scores: Vec<f32> = (1..=n).rev().map(|v| v as f32).collect();
        match (conformal(&scores, alpha), rank) {
            (Ok(t), Some(k)) => assert_eq!((t.rank, t.value, t.n), (k, k as f32, n)),
            (Err(ThresholdError::TooFew { needed, .. }), None) => {
                assert_eq!(needed, images_needed(alpha).unwrap());
                assert!(conformal(&vec![0.5; needed], alpha).is_ok());
            }
            (got, want) => panic!("n {n}, α {alpha}: {got:?}, expected rank {want:?}"),
        }
    }

    #[test]
    fn images_needed_for_the_usual_rates() {
        assert_eq!(images_needed(0.1), Ok(9));
        assert_eq!(images_needed(0.05), Ok(19));
        assert_eq!(images_needed(0.01), Ok(99));
        assert_eq!(images_needed(0.5), Ok(1));
    }

    #[test]
    fn ties_keep_the_threshold_on_the_tied_value_and_a_tie_is_ok() {
        let t = conformal(&[0.4; 20], 0.1).unwrap();
        assert_eq!(t.value, 0.4);
        assert!(!t.exceeded_by(0.4) && t.exceeded_by(0.400_001));
    }

    #[rstest]
    #[case(0.0)]
    #[case(1.0)]
    #[case(-0.1)]
    #[case(f64::NAN)]
    fn a_rate_outside_zero_one_is_refused(#[case] alpha: f64) {
        assert!(matches!(
            conformal(&[0.1; 50], alpha),
            Err(ThresholdError::Alpha { .. })
        ));
    }

    #[test]
    fn no_scores_and_non_finite_scores_are_refused_by_index() {
        assert_eq!(conformal(&[], 0.1), Err(ThresholdError::NoScores));
        let mut scores = vec![0.2; 30];
        scores[7] = f32::NAN;
        assert!(matches!(
            conformal(&scores, 0.1),
            Err(ThresholdError::NotFinite { index: 7, .. })
        ));
    }

    /// A small seeded generator, so the Monte-Carlo check is the same on every machine.
    struct SplitMix(u64);
    impl SplitMix {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The guarantee, measured: over many calibrations on n exchangeable good scores, the rate at
    /// which new good scores exceed the threshold is at most α (plus its sampling error) and at
    /// least α − 1/(n + 1), for a skewed distribution as much as for a uniform one.
    #[rstest]
    #[case(0.1, 40)]
    #[case(0.05, 19)]
    #[case(0.01, 199)]
    fn the_realised_false_alarm_rate_stays_within_alpha(#[case] alpha: f64, #[case] n: usize) {
        for skew in [1.0, 4.0] {
            let mut rng = SplitMix(7 + n as u64);
            let mut draw = || rng.next().powf(skew) as f32;
            let (trials, fresh) = (600, 200);
            let mut alarms = 0usize;
            for _ in 0..trials {
                let scores: Vec<f32> = (0..n).map(|_| draw()).collect();
                let t = conformal(&scores, alpha).unwrap();
                alarms += (0..fresh).filter(|_| t.exceeded_by(draw())).count();
            }
            let rate = alarms as f64 / (trials * fresh) as f64;
            // The rate averaged over calibrations is 1 − k/(n + 1) exactly; its sampling error
            // here is dominated by the calibrations' spread, below 0.01 for these sizes.
            let bound = alpha + 0.01;
            assert!(
                rate <= bound,
                "α {alpha}, n {n}, skew {skew}: realised {rate:.4} > {bound}"
            );
            assert!(
                rate >= alpha - 1.0 / (n + 1) as f64 - 0.01,
                "α {alpha}, n {n}, skew {skew}: realised {rate:.4}, needlessly conservative"
            );
        }
    }

    #[test]
    fn placed_clear_of_the_scores_it_moves_past_a_crowd() {
        // Rank 3 of 6 at α 0.6: the order statistic 0.5, with 0.50008 and 0.50016 within 1e-4
        // above it; the threshold moves past both, to 0.50016 + 1e-4.
        let scores = [0.9, 0.50016, 0.1, 0.5, 0.50008, 0.2];
        let t = conformal(&scores, 0.6).unwrap();
        assert_eq!((t.rank, t.order_statistic, t.margin), (3, 0.5, 0.0));
        let placed = t.clear_of(&scores, 1e-4);
        assert!((placed.value - 0.50026).abs() < 1e-6, "{}", placed.value);
        assert_eq!((placed.margin, placed.rank, placed.covered), (1e-4, 3, 5));
        // Nothing near: one margin above the order statistic.
        let alone = conformal(&[0.1, 0.5, 0.9], 0.5).unwrap();
        assert_eq!(alone.order_statistic, 0.5);
        assert!((alone.clear_of(&[0.1, 0.5, 0.9], 1e-4).value - 0.5001).abs() < 1e-6);
        // A margin of 0 leaves the order statistic.
        assert_eq!(t.clear_of(&scores, 0.0).value, 0.5);
    }

    proptest! {
        /// Placed with a margin, the threshold is at least the order statistic plus the margin,
        /// and every score is at least the margin from it: a score that moves by less than the
        /// margin keeps its decision.
        #[test]
        fn a_placed_threshold_stands_clear_of_every_score(
            scores in proptest::collection::vec(0.4f32..0.6, 1..200),
            alpha in 0.005f64..0.5,
            margin in 1e-6f32..1e-3,
        ) {
            if let Ok(t) = conformal(&scores, alpha) {
                let placed = t.clear_of(&scores, margin);
                prop_assert!(placed.value as f64 >= t.order_statistic as f64 + margin as f64);
                for &s in &scores {
                    let gap = (s as f64 - placed.value as f64).abs();
                    prop_assert!(gap >= margin as f64, "{s} is {gap} from {}", placed.value);
                    // Moved by up to 90% of the margin either way, it keeps its decision.
                    for d in [-0.9 * margin, 0.9 * margin] {
                        prop_assert_eq!(placed.exceeded_by(s + d), placed.exceeded_by(s));
                    }
                }
                let above = scores.iter().filter(|&&s| placed.exceeded_by(s)).count();
                prop_assert!(above <= scores.len() - t.rank);
            }
        }

        /// The threshold is one of the scores, and at most ⌊α(n + 1)⌋ of them exceed it.
        #[test]
        fn the_threshold_is_a_score_with_few_above_it(
            scores in proptest::collection::vec(0f32..1.0, 1..300),
            alpha in 0.005f64..0.5,
        ) {
            match conformal(&scores, alpha) {
                Ok(t) => {
                    prop_assert!(scores.contains(&t.value));
                    let above = scores.iter().filter(|&&s| t.exceeded_by(s)).count();
                    prop_assert!(above <= scores.len() - t.rank);
                    prop_assert!(above as f64 <= alpha * (scores.len() + 1) as f64 + 1e-9);
                }
                Err(ThresholdError::TooFew { needed, .. }) => prop_assert!(scores.len() < needed),
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
