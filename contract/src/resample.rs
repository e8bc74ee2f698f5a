//! PIL's separable resampling weights (Pillow `Resample.c`, `precompute_coeffs`), which PyTorch's
//! antialiased interpolation also follows: for output index i the window is centred on
//! `(i + 0.5)·s` (s = in/out) with support `r·max(s, 1)` (r = 2 bicubic, 1 bilinear); tap j has
//! weight `k((j − centre + 0.5)·(1/max(s, 1)))`, the window is clipped to the input and the
//! weights normalised to sum 1. Used for the export-time positional-embedding resize
//! (model-spec/README.md §2) and the runtime's image resize (§1).

/// The 1-D kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Keys' cubic with a = −0.5 (PIL's `BICUBIC`, PyTorch's antialiased bicubic).
    Bicubic,
    /// The triangle (PIL's `BILINEAR`).
    Bilinear,
}

impl Kernel {
    fn support(self) -> f64 {
        match self {
            Kernel::Bicubic => 2.0,
            Kernel::Bilinear => 1.0,
        }
    }

    pub fn eval(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Kernel::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Kernel::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
        }
    }
}

/// One output sample: the first input index of its window and the normalised weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start: usize,
    pub weights: Vec<f64>,
}

/// The windows of resampling `input` samples to `output`, computed in the order PIL computes them.
pub fn windows(input: usize, output: usize, kernel: Kernel) -> Vec<Window> {
    let scale = input as f64 / output as f64;
    let filter_scale = scale.max(1.0);
    let support = kernel.support() * filter_scale;
    let inv = 1.0 / filter_scale;
    (0..output)
        .map(|i| {
            let centre = (i as f64 + 0.5) * scale;
            // C's (int) truncates; below zero it is clamped to 0 anyway.
            let start = ((centre - support + 0.5) as i64).max(0) as usize;
            let end = ((centre + support + 0.5) as i64).min(input as i64) as usize;
            let mut weights: Vec<f64> = (start..end)
                .map(|j| kernel.eval((j as f64 - centre + 0.5) * inv))
                .collect();
            let total: f64 = weights.iter().sum();
            if total != 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            Window { start, weights }
        })
        .collect()
}
