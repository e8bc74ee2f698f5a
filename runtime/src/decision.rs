//! OK/NG from a score and a map (model-spec/README.md, "Decision thresholds"): an image is NG
//! when its `anomaly_score` is **above** the image threshold, and a map pixel belongs to the
//! mask when it is **above** the pixel threshold — the side split-conformal calibration
//! guarantees (a tie with the threshold is OK). Every front end decides here: `dlvp detect`,
//! `dlvp eval`, `dlvp serve` and, by the same rule, the C++ `dlvp::Detector`.
//!
//! The thresholds come from the graph (`dlvp threshold` stores them) unless the caller gives its
//! own ([`Decider::resolve`]); the overlay scale anchored on the pixel threshold is
//! [`OverlayScale`].
//!
//! A decision never passes silently: a threshold must be a number in [0, 1) wherever it comes
//! from ([`check_threshold`]: NaN, at or above 1 or infinite would pass every part, below 0 fail
//! every part), and a score or map value that is not a number is NG / in the mask (a graph that
//! returns NaN never passes a part).

use crate::metadata::Thresholds;
pub use crate::postprocess::OverlayScale;
pub use crate::threshold_range::{check_threshold, BadThreshold, THRESHOLD_RANGE};

/// The decision on one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Not above the image threshold.
    Ok,
    /// Above it: an anomaly.
    Ng,
}

impl Verdict {
    /// `OK`, `NG`: what every front end prints and returns.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Ng => "NG",
        }
    }

    /// The older label of `--threshold` and `/v1/detect?threshold=`: `normal`, `anomalous`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "normal",
            Verdict::Ng => "anomalous",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a decider's thresholds come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Origin {
    /// Calibrated by `dlvp threshold` and stored in the graph: at most `false_alarm` of good
    /// images like the `images` it was calibrated on are NG.
    Model { false_alarm: f64, images: usize },
    /// Given by the caller (`--threshold`): no stated false-alarm rate.
    Given,
}

/// A threshold a caller gave, refused ([`Decider::resolve`]): which one and why.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("the {which} threshold {source}")]
pub struct BadGivenThreshold {
    /// `image` or `pixel`.
    pub which: &'static str,
    pub source: BadThreshold,
}

/// The thresholds one run decides with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decider {
    /// An `anomaly_score` above it is NG.
    pub image: f32,
    /// An `anomaly_map` value above it is in the mask.
    pub pixel: f32,
    pub origin: Origin,
}

impl Decider {
    /// The thresholds of a run: `image` given by the caller overrides the stored image threshold
    /// and, unless `pixel` is given too, the pixel threshold (one number, as `--threshold` has
    /// always meant); otherwise the graph's stored thresholds, with `pixel` overriding the pixel
    /// one. `None` when neither the graph nor the caller has an image threshold: no decisions.
    /// A given threshold outside [0, 1) or NaN is refused ([`check_threshold`]); stored ones were
    /// checked when the graph's metadata was read.
    pub fn resolve(
        stored: Option<&Thresholds>,
        image: Option<f32>,
        pixel: Option<f32>,
    ) -> Result<Option<Decider>, BadGivenThreshold> {
        let check = |which, value: Option<f32>| {
            value
                .map(check_threshold)
                .transpose()
                .map_err(|source| BadGivenThreshold { which, source })
        };
        let (image, pixel) = (check("image", image)?, check("pixel", pixel)?);
        Ok(match (image, stored) {
            (Some(image), _) => Some(Decider {
                image,
                pixel: pixel.unwrap_or(image),
                origin: Origin::Given,
            }),
            (None, Some(t)) => Some(Decider {
                image: t.image,
                pixel: pixel.unwrap_or(t.pixel),
                origin: Origin::Model {
                    false_alarm: t.false_alarm,
                    images: t.images,
                },
            }),
            (None, None) => None,
        })
    }

    /// The decision on an image of this score.
    pub fn verdict(&self, score: f32) -> Verdict {
        verdict(score, self.image)
    }

    /// Whether a map value is in the mask (NaN is).
    pub fn in_mask(&self, value: f32) -> bool {
        value > self.pixel || value.is_nan()
    }

    /// The overlay's colour scale: anchored on the pixel threshold.
    pub fn overlay_scale(&self) -> OverlayScale {
        OverlayScale::Anchored { pixel: self.pixel }
    }
}

/// NG when `score` is above `threshold`; a tie is OK; a score that is not a number is NG (a
/// graph that returns NaN never passes a part).
pub fn verdict(score: f32, threshold: f32) -> Verdict {
    if score <= threshold {
        Verdict::Ok
    } else {
        Verdict::Ng
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn stored() -> Thresholds {
        Thresholds {
            image: 0.5,
            pixel: 0.6,
            false_alarm: 0.01,
            images: 200,
            tiling: None,
        }
    }

    #[rstest]
    #[case::below(0.49, Verdict::Ok)]
    #[case::tie_is_ok(0.5, Verdict::Ok)]
    #[case::above(0.5000001, Verdict::Ng)]
    #[case::nan_is_ng(f32::NAN, Verdict::Ng)]
    fn ng_is_strictly_above(#[case] score: f32, #[case] want: Verdict) {
        assert_eq!(verdict(score, 0.5), want);
    }

    #[rstest]
    #[case::stored_only(None, None, Some((0.5, 0.6, true)))]
    #[case::pixel_override(None, Some(0.7), Some((0.5, 0.7, true)))]
    #[case::given_sets_both(Some(0.3), None, Some((0.3, 0.3, false)))]
    #[case::given_both(Some(0.3), Some(0.8), Some((0.3, 0.8, false)))]
    fn resolving_with_a_stored_threshold(
        #[case] image: Option<f32>,
        #[case] pixel: Option<f32>,
        #[case] want: Option<(f32, f32, bool)>,
    ) {
        let got = Decider::resolve(Some(&stored()), image, pixel)
            .unwrap()
            .map(|d| (d.image, d.pixel, matches!(d.origin, Origin::Model { .. })));
        assert_eq!(got, want);
    }

    #[test]
    fn without_any_threshold_there_is_no_decision() {
        assert_eq!(Decider::resolve(None, None, None), Ok(None));
        assert_eq!(Decider::resolve(None, None, Some(0.4)), Ok(None));
        let given = Decider::resolve(None, Some(0.4), None).unwrap().unwrap();
        assert_eq!(
            (given.image, given.pixel, given.origin),
            (0.4, 0.4, Origin::Given)
        );
    }

    #[rstest]
    #[case::nan(f32::NAN, "not a number")]
    #[case::infinite(f32::INFINITY, "pass every part")]
    #[case::one(1.0, "pass every part")]
    #[case::above_one(1.5, "pass every part")]
    #[case::negative(-0.01, "every part NG")]
    #[case::minus_infinite(f32::NEG_INFINITY, "every part NG")]
    fn a_threshold_that_cannot_decide_is_refused(#[case] value: f32, #[case] says: &str) {
        let e = check_threshold(value).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        for (image, pixel, which) in [
            (Some(value), None, "image"),
            (Some(0.5), Some(value), "pixel"),
        ] {
            let e = Decider::resolve(Some(&stored()), image, pixel).unwrap_err();
            assert_eq!(e.which, which);
            assert!(
                e.to_string().starts_with(&format!("the {which} threshold")),
                "{e}"
            );
        }
        // Without a stored threshold, a lone --pixel-threshold is still checked.
        assert!(Decider::resolve(None, None, Some(value)).is_err());
    }

    #[rstest]
    #[case::zero(0.0)]
    #[case::just_below_one(0.99999994)]
    #[case::middle(0.5)]
    fn a_threshold_in_the_unit_interval_decides(#[case] value: f32) {
        assert_eq!(check_threshold(value), Ok(value));
    }

    #[test]
    fn a_map_value_that_is_not_a_number_is_in_the_mask() {
        let d = Decider::resolve(Some(&stored()), None, None)
            .unwrap()
            .unwrap();
        assert!(d.in_mask(f32::NAN));
        assert!(!d.in_mask(0.6));
        assert!(d.in_mask(0.61));
    }
}
