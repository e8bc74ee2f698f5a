//! Pixel-level metrics in bounded memory: pixel AUROC, pixel AP and AUPRO from histograms.
//!
//! Storing every pixel score of thousands of 518×518 maps would take gigabytes, so each map is
//! folded into fixed histograms as it arrives. Anomaly maps are probabilities that crowd against
//! 0 and 1, so the bins are not equal in width: a score's bin is the top bits of its f32 distance
//! to 0 (below ½) or to 1 (from ½ on; `1 − v` is exact there), which gives every bin the same
//! *relative* width, 2⁻¹² of that distance. Per bin we keep the count of normal pixels, the count
//! of defect pixels, and the defect pixels' AUPRO weight `1 / |region|`. Memory is
//! `BINS × 32` bytes (about 32 MiB) whatever the dataset size.
//!
//! The only approximation is that distinct scores sharing a bin act as ties. Its effect is
//! bounded exactly: ordering every such bin's defect pixels above its normal ones gives an upper
//! bound of each metric, the reverse order a lower bound (bins whose scores are all equal — true
//! ties — stay tied: the per-bin lowest and highest scores tell them apart, 8 more bytes a bin).
//! [`PixelAccumulator::intervals`] returns those bounds; `dlvp eval` stores them.
//!
//! AUPRO follows the MVTec AD evaluation (`compute_pro` + `trapezoid`): regions are the
//! 8-connected components of each ground-truth mask; at each threshold the PRO is the mean, over
//! all regions of all images, of the fraction of the region above it; the curve PRO(FPR) from
//! (0, 0) to (1, 1) is integrated up to FPR = 0.3 and divided by 0.3.

use crate::metrics::{Curve, Groups};

/// f32 bits of 0.5: keys run from 0 (score 0) through this (score ½) to twice it (score 1).
const HALF_BITS: u64 = 0x3F00_0000;
const SHIFT: u32 = 11;
pub const BINS: usize = ((2 * HALF_BITS) >> SHIFT) as usize + 1;
pub const AUPRO_FPR_LIMIT: f64 = 0.3;

pub struct PixelAccumulator {
    neg: Vec<u64>,
    pos: Vec<u64>,
    pro: Vec<f64>,
    /// The lowest and highest score seen per bin: a bin whose scores are all equal holds true
    /// ties, which binning does not change.
    low: Vec<f32>,
    high: Vec<f32>,
    regions: u64,
}

impl Default for PixelAccumulator {
    fn default() -> Self {
        PixelAccumulator {
            neg: vec![0; BINS],
            pos: vec![0; BINS],
            pro: vec![0.0; BINS],
            low: vec![f32::INFINITY; BINS],
            high: vec![f32::NEG_INFINITY; BINS],
            regions: 0,
        }
    }
}

/// How the scores inside one bin are ordered when a metric is computed from the histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// As ties (scikit-learn's treatment of equal scores): the estimate.
    Tied,
    /// Defect pixels above normal ones in every bin with distinct scores: an upper bound.
    DefectsFirst,
    /// Normal pixels above defect ones: a lower bound.
    NormalFirst,
}

/// The bin of a score, monotonic in the score; scores outside [0, 1] go to the end bins.
fn bin(v: f32) -> usize {
    let v = if v > 0.0 { v.min(1.0) } else { 0.0 }; // also maps -0.0, whose sign bit would break the order
    let key = if v < 0.5 {
        v.to_bits() as u64
    } else {
        2 * HALF_BITS - (1.0 - v).to_bits() as u64
    };
    (key >> SHIFT) as usize
}

/// Labels the 8-connected components of `mask` (`w`×`h`, row-major): 0 = background, 1.. = region.
pub fn label_regions(mask: &[bool], w: usize, h: usize) -> (Vec<u32>, Vec<u64>) {
    let mut labels = vec![0u32; mask.len()];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32 + 1;
        let mut size = 0u64;
        labels[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask[j] && labels[j] == 0 {
                        labels[j] = id;
                        stack.push(j);
                    }
                }
            }
        }
        sizes.push(size);
    }
    (labels, sizes)
}

impl PixelAccumulator {
    /// Empties the histograms for the next category, keeping their memory.
    pub fn reset(&mut self) {
        self.neg.fill(0);
        self.pos.fill(0);
        self.pro.fill(0.0);
        self.low.fill(f32::INFINITY);
        self.high.fill(f32::NEG_INFINITY);
        self.regions = 0;
    }

    /// Adds one map and its ground truth (`w`×`h`, row-major; all false for a normal image).
    pub fn add(&mut self, map: &[f32], mask: &[bool], w: usize, h: usize) {
        assert_eq!(map.len(), w * h, "map size");
        assert_eq!(mask.len(), w * h, "mask size");
        let (labels, sizes) = label_regions(mask, w, h);
        self.regions += sizes.len() as u64;
        for (i, &v) in map.iter().enumerate() {
            let b = bin(v);
            self.low[b] = self.low[b].min(v);
            self.high[b] = self.high[b].max(v);
            match labels[i] {
                0 => self.neg[b] += 1,
                r => {
                    self.pos[b] += 1;
                    self.pro[b] += 1.0 / sizes[r as usize - 1] as f64;
                }
            }
        }
    }

    pub fn pixels(&self) -> (u64, u64) {
        (self.pos.iter().sum(), self.neg.iter().sum())
    }

    pub fn regions(&self) -> u64 {
        self.regions
    }

    /// Per non-empty bin, highest first: (defect pixels, normal pixels, AUPRO weight) steps in
    /// `order` — one step, or two for a bin of distinct scores under a bounding order.
    fn steps(&self, order: Order) -> Vec<(f64, f64, f64)> {
        let mut steps = Vec::new();
        for b in (0..BINS).rev() {
            let (p, n, w) = (self.pos[b] as f64, self.neg[b] as f64, self.pro[b]);
            if p + n == 0.0 {
                continue;
            }
            let distinct = self.low[b] < self.high[b] && p > 0.0 && n > 0.0;
            match order {
                Order::DefectsFirst if distinct => steps.extend([(p, 0.0, w), (0.0, n, 0.0)]),
                Order::NormalFirst if distinct => steps.extend([(0.0, n, 0.0), (p, 0.0, w)]),
                _ => steps.push((p, n, w)),
            }
        }
        steps
    }

    fn groups(&self, order: Order) -> Groups {
        let steps = self.steps(order);
        Groups {
            pos: steps.iter().map(|s| s.0).collect(),
            neg: steps.iter().map(|s| s.1).collect(),
        }
    }

    pub fn auroc(&self) -> Option<f64> {
        self.groups(Order::Tied).auroc()
    }

    pub fn average_precision(&self) -> Option<f64> {
        self.groups(Order::Tied).average_precision()
    }

    pub fn roc(&self) -> Option<Curve> {
        self.groups(Order::Tied).roc()
    }

    /// [lower, upper] bounds of (pixel AUROC, pixel AP, AUPRO) whatever the order of the
    /// distinct scores that share a bin: the exact values lie inside.
    pub fn intervals(&self) -> [Option<[f64; 2]>; 3] {
        let (lo, hi) = (Order::NormalFirst, Order::DefectsFirst);
        let pair = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| [a, b]);
        [
            pair(self.groups(lo).auroc(), self.groups(hi).auroc()),
            pair(
                self.groups(lo).average_precision(),
                self.groups(hi).average_precision(),
            ),
            pair(self.aupro_in(lo), self.aupro_in(hi)),
        ]
    }

    /// The PRO curve (FPR, PRO) from (0, 0) to (1, 1), as the MVTec AD evaluation builds it.
    pub fn pro_curve(&self) -> Option<Curve> {
        self.pro_curve_in(Order::Tied)
    }

    fn pro_curve_in(&self, order: Order) -> Option<Curve> {
        let (_, n) = self.pixels();
        if n == 0 || self.regions == 0 {
            return None;
        }
        let mut curve = Curve {
            x: vec![0.0],
            y: vec![0.0],
        };
        let (mut fp, mut pro) = (0.0f64, 0.0f64);
        for (_, dn, dw) in self.steps(order) {
            fp += dn;
            pro += dw;
            curve.x.push((fp / n as f64).min(1.0));
            curve.y.push((pro / self.regions as f64).min(1.0));
        }
        curve.x.push(1.0);
        curve.y.push(1.0);
        Some(curve)
    }

    fn aupro_in(&self, order: Order) -> Option<f64> {
        Some(self.pro_curve_in(order)?.area_until(AUPRO_FPR_LIMIT) / AUPRO_FPR_LIMIT)
    }

    /// Normalised area under the PRO curve up to FPR 0.3.
    pub fn aupro(&self) -> Option<f64> {
        self.aupro_in(Order::Tied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_keep_the_order_of_scores_and_resolve_both_ends() {
        let scores = [
            -1.0,
            0.0,
            1e-30,
            1e-7,
            2e-7,
            0.25,
            0.4999,
            0.5,
            0.75,
            1.0 - 1e-6,
            1.0 - 1e-7,
            1.0,
            2.0,
        ];
        let bins: Vec<usize> = scores.iter().map(|&v| bin(v)).collect();
        assert!(bins.windows(2).all(|w| w[0] <= w[1]), "{bins:?}");
        assert_eq!(bins[0], 0);
        assert_eq!(*bins.last().unwrap(), BINS - 1);
        // Distinct where a map's probabilities crowd: near 0 and near 1.
        assert!(bins[3] < bins[4] && bins[9] < bins[10] && bins[10] < bins[11]);
        assert_eq!(bin(-0.0), 0);
    }

    #[test]
    fn regions_are_eight_connected() {
        #[rustfmt::skip]
        let mask = [
            true,  false, false, true,
            false, true,  false, true,
            false, false, false, false,
            true,  true,  false, false,
        ];
        let (labels, sizes) = label_regions(&mask, 4, 4);
        assert_eq!(sizes, vec![2, 2, 2]); // the diagonal pair joins; the others are separate
        assert_eq!(labels[0], labels[5]);
        assert_ne!(labels[3], labels[0]);
    }

    #[test]
    fn a_perfect_map_scores_one_and_a_constant_map_scores_chance() {
        let mask: Vec<bool> = (0..64).map(|i| i % 8 < 2 && i / 8 < 3).collect();
        let perfect: Vec<f32> = mask.iter().map(|&m| if m { 0.9 } else { 0.1 }).collect();
        let mut acc = PixelAccumulator::default();
        acc.add(&perfect, &mask, 8, 8);
        assert_eq!(acc.auroc(), Some(1.0));
        assert!((acc.aupro().unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(acc.intervals()[0], Some([1.0, 1.0]));
        let mut flat = PixelAccumulator::default();
        flat.add(&[0.5; 64], &mask, 8, 8);
        assert_eq!(flat.auroc(), Some(0.5));
        // Equal scores are true ties: no binning uncertainty.
        assert_eq!(flat.intervals()[0], Some([0.5, 0.5]));
        // A single threshold jumps from (0,0) to (1,1): PRO = FPR, area to 0.3 is 0.045 → 0.15.
        assert!((flat.aupro().unwrap() - 0.15).abs() < 1e-12);
    }

    #[test]
    fn distinct_scores_in_one_bin_give_an_interval_around_the_exact_value() {
        // 0.3 and 0.3 + 1e-6 share a bin; exact AUROC is 1 (the defect pixel scores higher).
        let (a, b) = (0.3f32, 0.300_001f32);
        assert_eq!(bin(a), bin(b));
        let mut acc = PixelAccumulator::default();
        acc.add(&[a, b], &[false, true], 2, 1);
        assert_eq!(acc.auroc(), Some(0.5));
        let [auroc, ap, aupro] = acc.intervals();
        assert_eq!(auroc, Some([0.0, 1.0]));
        assert_eq!(ap.unwrap()[1], 1.0);
        assert!(aupro.unwrap()[0] < aupro.unwrap()[1]);
    }

    #[test]
    fn no_defect_pixels_leaves_pixel_metrics_undefined() {
        let mut acc = PixelAccumulator::default();
        acc.add(&[0.2; 16], &[false; 16], 4, 4);
        assert_eq!(acc.auroc(), None);
        assert_eq!(acc.aupro(), None);
    }
}
