//! Activation statistics for int8 calibration (model-spec/README.md, "Precision"): one
//! [`Collector`] per calibrated tensor sees every value the fp32 graph produced for it over the
//! calibration images and turns them into the symmetric range [−amax, amax] that
//! [`crate::graph::int8`] quantizes to.
//!
//! Three methods, chosen with `--calib-method`:
//! - `minmax`: the largest |x| seen — nothing is clipped, but one outlier widens every step;
//! - `percentile`: the |x| below which [`PERCENTILE`] of the values lie;
//! - `entropy`: TensorRT's method — the clipping threshold whose 128-level quantized histogram
//!   is closest (Kullback–Leibler) to the measured one.
//!
//! |x| is histogrammed into [`BINS`] equal bins over [0, range]; when a value exceeds the range,
//! the range doubles and pairs of bins merge, so one pass over the images suffices and the same
//! images in the same order give the same histogram, bit for bit.
//!
//! A [`Calibration`] is one run of it: the collectors of every calibrated activation, fed one
//! run of the calibration graph ([`crate::calibration_graph`]) at a time by whatever runtime
//! the caller has, and the digest of the image set; it ends in the scales and metadata of the
//! int8 export ([`crate::Quantization`]).

use std::collections::BTreeMap;

use dlvp_contract::graph::{
    META_INT8_CALIBRATED_ON, META_INT8_CALIBRATION_SHA256, META_INT8_IMAGES, META_INT8_LAYERS,
    META_INT8_METHOD,
};
use ndarray::ArrayD;
use sha2::{Digest, Sha256};

/// Histogram bins over [0, range].
pub const BINS: usize = 2048;
/// The share of |x| values `percentile` keeps inside the range.
pub const PERCENTILE: f64 = 99.99;
/// Quantized levels on one side of zero (int8, symmetric).
const LEVELS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    MinMax,
    #[default]
    Percentile,
    Entropy,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::MinMax, Method::Percentile, Method::Entropy];

    pub fn name(self) -> &'static str {
        match self {
            Method::MinMax => "minmax",
            Method::Percentile => "percentile",
            Method::Entropy => "entropy",
        }
    }
}

dlvp_contract::named_enum!(Method, "calibration method");

/// The |x| histogram of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Collector {
    amax: f32,
    range: f32,
    counts: Vec<u64>,
    /// Values seen that were not finite (a broken graph or input; reported, never binned).
    non_finite: u64,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            amax: 0.0,
            range: 0.0,
            counts: vec![0; BINS],
            non_finite: 0,
        }
    }
}

impl Collector {
    /// Adds every value of one batch.
    pub fn add(&mut self, values: &[f32]) {
        let batch_max = values
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f32, |m, v| m.max(v.abs()));
        self.non_finite += values.iter().filter(|v| !v.is_finite()).count() as u64;
        if batch_max > self.range {
            self.grow(batch_max);
        }
        self.amax = self.amax.max(batch_max);
        if self.range == 0.0 {
            // All zeros so far: they all fall in bin 0.
            self.counts[0] += values.iter().filter(|v| v.is_finite()).count() as u64;
            return;
        }
        let per_bin = BINS as f32 / self.range;
        for v in values.iter().filter(|v| v.is_finite()) {
            let bin = ((v.abs() * per_bin) as usize).min(BINS - 1);
            self.counts[bin] += 1;
        }
    }

    /// Widens the range to cover `max`: from nothing, exactly; else by doubling, merging bins.
    fn grow(&mut self, max: f32) {
        if self.range == 0.0 {
            // Zeros seen so far stay in bin 0 of the new range.
            self.range = max;
            return;
        }
        while self.range < max {
            let mut merged = vec![0u64; BINS];
            for (i, c) in self.counts.iter().enumerate() {
                merged[i / 2] += c;
            }
            self.counts = merged;
            self.range *= 2.0;
        }
    }

    /// The largest |x| seen.
    pub fn amax(&self) -> f32 {
        self.amax
    }

    pub fn non_finite(&self) -> u64 {
        self.non_finite
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn bin_width(&self) -> f32 {
        self.range / BINS as f32
    }

    /// The clipping threshold `method` picks (≤ [`Collector::amax`]; 0 when nothing non-zero was seen).
    pub fn threshold(&self, method: Method) -> f32 {
        if self.amax == 0.0 {
            return 0.0;
        }
        let t = match method {
            Method::MinMax => return self.amax,
            Method::Percentile => self.percentile(PERCENTILE),
            Method::Entropy => self.entropy(),
        };
        t.min(self.amax)
    }

    fn percentile(&self, p: f64) -> f32 {
        let wanted = (self.total() as f64 * p / 100.0).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= wanted {
                return (i + 1) as f32 * self.bin_width();
            }
        }
        self.range
    }

    /// TensorRT's entropy calibration: for each candidate threshold of `i` bins (128..=2048),
    /// the reference distribution P is the histogram up to `i` with everything beyond folded
    /// into its last bin, Q is P quantized into 128 levels and expanded back over the non-empty
    /// bins; the threshold minimising KL(P‖Q) wins.
    fn entropy(&self) -> f32 {
        let used = self
            .counts
            .iter()
            .rposition(|&c| c > 0)
            .map_or(0, |i| i + 1);
        if used <= LEVELS {
            return used as f32 * self.bin_width();
        }
        let mut best = (f64::INFINITY, used);
        for i in LEVELS..=used {
            let mut p: Vec<f64> = self.counts[..i].iter().map(|&c| c as f64).collect();
            let outliers: f64 = self.counts[i..].iter().map(|&c| c as f64).sum();
            p[i - 1] += outliers;
            let q = quantized(&self.counts[..i], LEVELS);
            let kl = kl_divergence(&p, &q);
            if kl < best.0 {
                best = (kl, i);
            }
        }
        best.1 as f32 * self.bin_width()
    }
}

/// `counts` merged into `levels` groups and spread back evenly over each group's non-empty bins.
fn quantized(counts: &[u64], levels: usize) -> Vec<f64> {
    let n = counts.len();
    let mut q = vec![0f64; n];
    for level in 0..levels {
        let (start, end) = (level * n / levels, (level + 1) * n / levels);
        let group = &counts[start..end];
        let sum: u64 = group.iter().sum();
        let nonzero = group.iter().filter(|&&c| c > 0).count();
        if nonzero == 0 {
            continue;
        }
        let share = sum as f64 / nonzero as f64;
        for (j, &c) in group.iter().enumerate() {
            if c > 0 {
                q[start + j] = share;
            }
        }
    }
    q
}

/// KL(P‖Q) of two unnormalised histograms; bins where P is 0 add nothing, and a bin where Q is 0
/// but P is not costs as if Q held a tiny mass there (as TensorRT smooths it).
fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if sp == 0.0 || sq == 0.0 {
        return f64::INFINITY;
    }
    p.iter()
        .zip(q)
        .filter(|(&pi, _)| pi > 0.0)
        .map(|(&pi, &qi)| {
            let (pn, qn) = (pi / sp, (qi / sq).max(1e-12));
            pn * (pn / qn).ln()
        })
        .sum()
}

/// `count` of `all`, spread evenly over it in order (all of them when there are no more): the
/// calibration images taken from a folder's sorted list.
pub fn spread<T: Clone>(all: Vec<T>, count: usize) -> Vec<T> {
    if all.len() <= count {
        return all;
    }
    (0..count)
        .map(|i| all[i * all.len() / count].clone())
        .collect()
}

/// One int8 calibration: every calibrated activation's [`Collector`], fed one run of the
/// calibration graph at a time, and the identity of the image set (SHA-256 over each image's path
/// within the calibration folder, length and bytes, in the order given). The same images in the
/// same order give the same scales and the same digest, so two exports are byte-identical.
pub struct Calibration {
    taps: Vec<String>,
    collectors: Vec<Collector>,
    hash: Sha256,
    images: usize,
}

/// Why a calibration could not give scales.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// A run returned another number of activations than the graph exposes.
    #[error("calibration graph returned {found} activations, expected {expected}")]
    Activations { found: usize, expected: usize },
    #[error("calibration: activation `{name}` had {count} NaN/Inf values; the fp32 graph is broken on these images")]
    NonFinite { name: String, count: u64 },
    #[error("calibration: no images")]
    NoImages,
}

/// How an int8 export is quantized, beside the scales the calibration measured.
#[derive(Debug, Clone, Copy)]
pub struct CalibrationSettings<'a> {
    pub method: Method,
    pub selection: crate::Selection,
    pub weight_range: crate::WeightRange,
    /// The runtime the calibration graph ran on (`dlvp.int8.calibrated_on`).
    pub runtime: &'a str,
}

impl Calibration {
    /// A calibration of the activations `taps` (the calibration graph's extra outputs).
    pub fn new(taps: Vec<String>) -> Calibration {
        Calibration {
            collectors: vec![Collector::default(); taps.len()],
            taps,
            hash: Sha256::new(),
            images: 0,
        }
    }

    /// The activations each run must return, in this order.
    pub fn taps(&self) -> &[String] {
        &self.taps
    }

    /// An image of the set, by its path within the calibration folder and its file's bytes.
    pub fn add_image(&mut self, relative: &str, bytes: &[u8]) {
        self.hash.update(relative.as_bytes());
        self.hash.update([0]);
        self.hash.update((bytes.len() as u64).to_le_bytes());
        self.hash.update(bytes);
        self.images += 1;
    }

    /// One run's activations, in [`Calibration::taps`] order.
    pub fn add_activations(&mut self, values: &[ArrayD<f32>]) -> Result<(), CalibrationError> {
        if values.len() != self.taps.len() {
            return Err(CalibrationError::Activations {
                found: values.len(),
                expected: self.taps.len(),
            });
        }
        for (c, v) in self.collectors.iter_mut().zip(values) {
            match v.as_slice() {
                Some(s) => c.add(s),
                None => c.add(&v.iter().copied().collect::<Vec<_>>()),
            }
        }
        Ok(())
    }

    /// The scales and the metadata an int8 export records ([`crate::Quantization`]).
    pub fn finish(
        self,
        settings: CalibrationSettings,
    ) -> Result<crate::Quantization, CalibrationError> {
        if self.images == 0 {
            return Err(CalibrationError::NoImages);
        }
        let mut scales = BTreeMap::new();
        for (name, c) in self.taps.iter().zip(&self.collectors) {
            if c.non_finite() > 0 {
                return Err(CalibrationError::NonFinite {
                    name: name.clone(),
                    count: c.non_finite(),
                });
            }
            let scale = crate::graph::int8::scale_for(c.threshold(settings.method));
            scales.insert(name.clone(), scale);
        }
        let digest: String = self
            .hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(crate::Quantization {
            selection: settings.selection,
            weight_range: settings.weight_range,
            scales,
            metadata: vec![
                (META_INT8_METHOD.into(), settings.method.name().into()),
                (META_INT8_IMAGES.into(), self.images.to_string()),
                (META_INT8_CALIBRATION_SHA256.into(), digest),
                (META_INT8_LAYERS.into(), settings.selection.name().into()),
                (META_INT8_CALIBRATED_ON.into(), settings.runtime.into()),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreading_keeps_order_and_reaches_the_end() {
        let all: Vec<u32> = (0..10).collect();
        assert_eq!(spread(all.clone(), 4), [0, 2, 5, 7]);
        assert_eq!(spread(all.clone(), 20), all);
    }

    fn settings() -> CalibrationSettings<'static> {
        CalibrationSettings {
            method: Method::MinMax,
            selection: crate::Selection::Blocks,
            weight_range: crate::WeightRange::Reduced,
            runtime: "tract",
        }
    }

    fn run(order: &[(&str, f32)]) -> crate::Quantization {
        let mut c = Calibration::new(vec!["a".into(), "b".into()]);
        for &(name, v) in order {
            c.add_image(name, name.as_bytes());
            let x = ArrayD::from_elem(ndarray::IxDyn(&[2, 3]), v);
            c.add_activations(&[x.clone(), -x]).unwrap();
        }
        c.finish(settings()).unwrap()
    }

    #[test]
    fn a_calibration_records_its_scales_and_the_identity_of_its_images() {
        let q = run(&[("x.png", 1.0), ("y.png", 4.0)]);
        assert_eq!(q.scales["a"], crate::graph::int8::scale_for(4.0));
        assert_eq!(q.scales["b"], q.scales["a"]);
        let meta: BTreeMap<_, _> = q.metadata.iter().cloned().collect();
        assert_eq!(meta[META_INT8_IMAGES], "2");
        assert_eq!(meta[META_INT8_METHOD], "minmax");
        assert_eq!(meta[META_INT8_CALIBRATED_ON], "tract");
        assert_eq!(meta[META_INT8_LAYERS], "blocks");
        // The same images give the same digest; another order, another set.
        let again: BTreeMap<_, _> = run(&[("x.png", 1.0), ("y.png", 4.0)])
            .metadata
            .into_iter()
            .collect();
        let swapped: BTreeMap<_, _> = run(&[("y.png", 4.0), ("x.png", 1.0)])
            .metadata
            .into_iter()
            .collect();
        assert_eq!(
            again[META_INT8_CALIBRATION_SHA256],
            meta[META_INT8_CALIBRATION_SHA256]
        );
        assert_ne!(
            swapped[META_INT8_CALIBRATION_SHA256],
            meta[META_INT8_CALIBRATION_SHA256]
        );
    }

    #[test]
    fn a_calibration_refuses_a_wrong_run_a_broken_graph_and_no_images() {
        let mut c = Calibration::new(vec!["a".into(), "b".into()]);
        let x = ArrayD::from_elem(ndarray::IxDyn(&[2]), 1.0f32);
        assert!(matches!(
            c.add_activations(std::slice::from_ref(&x)),
            Err(CalibrationError::Activations {
                found: 1,
                expected: 2
            })
        ));
        assert!(matches!(
            Calibration::new(vec!["a".into()]).finish(settings()),
            Err(CalibrationError::NoImages)
        ));
        c.add_image("x.png", b"");
        c.add_activations(&[x.clone(), x.mapv(|_| f32::NAN)])
            .unwrap();
        let err = c.finish(settings()).unwrap_err();
        assert!(
            matches!(&err, CalibrationError::NonFinite { name, count: 2 } if name == "b"),
            "{err}"
        );
    }

    fn ramp(n: usize, top: f32) -> Vec<f32> {
        (0..n).map(|i| top * i as f32 / (n - 1) as f32).collect()
    }

    #[test]
    fn minmax_is_the_largest_magnitude() {
        let mut c = Collector::default();
        c.add(&[0.5, -3.0, 2.0]);
        c.add(&[1.0, f32::NAN]);
        assert_eq!(c.threshold(Method::MinMax), 3.0);
        assert_eq!(c.non_finite(), 1);
    }

    #[test]
    fn growing_the_range_keeps_every_count() {
        let mut c = Collector::default();
        c.add(&ramp(1000, 1.0));
        c.add(&ramp(1000, 5.0));
        assert_eq!(c.total(), 2000);
        assert!(c.range >= 5.0 && c.range < 8.0 + 1e-6, "{}", c.range);
    }

    #[test]
    fn percentile_clips_a_lone_outlier() {
        let mut c = Collector::default();
        let mut values = ramp(100_000, 1.0);
        values.push(100.0);
        c.add(&values);
        let t = c.threshold(Method::Percentile);
        assert!(t > 0.99 && t < 1.1, "{t}");
        assert_eq!(c.threshold(Method::MinMax), 100.0);
    }

    #[test]
    fn entropy_clips_a_long_tail_and_keeps_a_uniform_range() {
        let mut uniform = Collector::default();
        uniform.add(&ramp(50_000, 2.0));
        let t = uniform.threshold(Method::Entropy);
        assert!(t > 1.8 && t <= 2.0, "uniform: {t}");

        // Laplace-like: most mass near 0, a thin tail to 40.
        let mut tail = Collector::default();
        let values: Vec<f32> = (1..200_000)
            .map(|i| -((i as f32) / 200_000.0).ln())
            .chain([40.0])
            .collect();
        tail.add(&values);
        let t = tail.threshold(Method::Entropy);
        assert!(t > 2.0 && t < 20.0, "tail: {t}");
    }

    #[test]
    fn the_same_values_give_the_same_thresholds() {
        let values: Vec<f32> = (0..10_000)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.01 - 3.0)
            .collect();
        let run = || {
            let mut c = Collector::default();
            for chunk in values.chunks(777) {
                c.add(chunk);
            }
            Method::ALL.map(|m| c.threshold(m).to_bits())
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn all_zero_tensors_have_threshold_zero() {
        let mut c = Collector::default();
        c.add(&[0.0; 16]);
        for m in Method::ALL {
            assert_eq!(c.threshold(m), 0.0);
        }
        assert_eq!("entropy".parse::<Method>(), Ok(Method::Entropy));
        assert!("kl".parse::<Method>().unwrap_err().contains("minmax"));
    }
}
