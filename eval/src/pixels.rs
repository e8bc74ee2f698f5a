//! Pixel-level metrics in bounded memory: pixel AUROC, pixel AP and AUPRO from histograms.
//!
//! Storing every pixel score of thousands of 518×518 maps would take gigabytes, so each map is
//! folded into fixed histograms as it arrives: scores in [0, 1] fall into `BINS` equal bins
//! (values outside are clamped into the end bins) and per bin we keep the count of normal
//! pixels, the count of defect pixels, and the defect pixels' AUPRO weight `1 / |region|`.
//! Memory is `BINS × 24` bytes (24 MiB) whatever the dataset size.
//!
//! The only approximation is that scores sharing a bin act as ties. Its effect on pixel AUROC
//! is bounded exactly by `Σ_b pos_b·neg_b / (2·P·N)` (the most a different order inside the
//! bins could move it), which [`PixelAccumulator::auroc_bound`] reports; with 2²⁰ bins it is
//! typically below 1e-6.
//!
//! AUPRO follows the MVTec AD evaluation (`compute_pro` + `trapezoid`): regions are the
//! 8-connected components of each ground-truth mask; at each threshold the PRO is the mean, over
//! all regions of all images, of the fraction of the region above it; the curve PRO(FPR) from
//! (0, 0) to (1, 1) is integrated up to FPR = 0.3 and divided by 0.3.

use crate::metrics::{Curve, Groups};

pub const BINS: usize = 1 << 20;
pub const AUPRO_FPR_LIMIT: f64 = 0.3;

pub struct PixelAccumulator {
    neg: Vec<u64>,
    pos: Vec<u64>,
    pro: Vec<f64>,
    regions: u64,
}

impl Default for PixelAccumulator {
    fn default() -> Self {
        PixelAccumulator {
            neg: vec![0; BINS],
            pos: vec![0; BINS],
            pro: vec![0.0; BINS],
            regions: 0,
        }
    }
}

fn bin(v: f32) -> usize {
    ((v as f64 * BINS as f64).floor().max(0.0) as usize).min(BINS - 1)
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

    fn groups(&self) -> Groups {
        let mut g = Groups::default();
        for b in (0..BINS).rev() {
            if self.pos[b] + self.neg[b] > 0 {
                g.pos.push(self.pos[b] as f64);
                g.neg.push(self.neg[b] as f64);
            }
        }
        g
    }

    pub fn auroc(&self) -> Option<f64> {
        self.groups().auroc()
    }

    /// The most the pixel AUROC could differ from the exact value because of binning.
    pub fn auroc_bound(&self) -> Option<f64> {
        let (p, n) = self.pixels();
        (p > 0 && n > 0).then(|| {
            let tied: f64 = self
                .pos
                .iter()
                .zip(&self.neg)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            tied / (2.0 * p as f64 * n as f64)
        })
    }

    pub fn average_precision(&self) -> Option<f64> {
        self.groups().average_precision()
    }

    pub fn roc(&self) -> Option<Curve> {
        self.groups().roc()
    }

    /// The PRO curve (FPR, PRO) from (0, 0) to (1, 1), as the MVTec AD evaluation builds it.
    pub fn pro_curve(&self) -> Option<Curve> {
        let (_, n) = self.pixels();
        if n == 0 || self.regions == 0 {
            return None;
        }
        let mut curve = Curve {
            x: vec![0.0],
            y: vec![0.0],
        };
        let (mut fp, mut pro) = (0u64, 0.0f64);
        for b in (0..BINS).rev() {
            if self.pos[b] + self.neg[b] == 0 {
                continue;
            }
            fp += self.neg[b];
            pro += self.pro[b];
            curve.x.push((fp as f64 / n as f64).min(1.0));
            curve.y.push((pro / self.regions as f64).min(1.0));
        }
        curve.x.push(1.0);
        curve.y.push(1.0);
        Some(curve)
    }

    /// Normalised area under the PRO curve up to FPR 0.3.
    pub fn aupro(&self) -> Option<f64> {
        Some(self.pro_curve()?.area_until(AUPRO_FPR_LIMIT) / AUPRO_FPR_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(acc.auroc_bound(), Some(0.0));
        let mut flat = PixelAccumulator::default();
        flat.add(&[0.5; 64], &mask, 8, 8);
        assert_eq!(flat.auroc(), Some(0.5));
        assert_eq!(flat.auroc_bound(), Some(0.5));
        // A single threshold jumps from (0,0) to (1,1): PRO = FPR, area to 0.3 is 0.045 → 0.15.
        assert!((flat.aupro().unwrap() - 0.15).abs() < 1e-12);
    }

    #[test]
    fn no_defect_pixels_leaves_pixel_metrics_undefined() {
        let mut acc = PixelAccumulator::default();
        acc.add(&[0.2; 16], &[false; 16], 4, 4);
        assert_eq!(acc.auroc(), None);
        assert_eq!(acc.aupro(), None);
    }
}
