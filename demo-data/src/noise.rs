//! Value noise, gradient (Perlin) noise and fractal sums of them: the raw material of every
//! synthetic surface.

use super::rng::mix;

/// Smoothly interpolated random values on the integer lattice, in [0, 1].
#[derive(Clone, Copy, Debug)]
pub struct ValueNoise {
    seed: u64,
}

impl ValueNoise {
    pub fn new(seed: u64) -> Self {
        ValueNoise { seed }
    }

    fn lattice(&self, x: i64, y: i64) -> f32 {
        let h = mix(
            self.seed ^ mix((x as u64).wrapping_mul(0x9E37_79B9) ^ (y as u64).wrapping_shl(32))
        );
        (h >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn at(&self, x: f32, y: f32) -> f32 {
        let (fx, fy) = (x.floor(), y.floor());
        let (ix, iy) = (fx as i64, fy as i64);
        let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
        let (u, v) = (smooth(x - fx), smooth(y - fy));
        let top = self.lattice(ix, iy) * (1.0 - u) + self.lattice(ix + 1, iy) * u;
        let bottom = self.lattice(ix, iy + 1) * (1.0 - u) + self.lattice(ix + 1, iy + 1) * u;
        top * (1.0 - v) + bottom * v
    }

    /// Fractal Brownian motion: `octaves` layers, each at twice the frequency and half the
    /// amplitude, normalised back to [0, 1].
    pub fn fbm(&self, x: f32, y: f32, octaves: u32) -> f32 {
        let (mut sum, mut amp, mut freq, mut norm) = (0.0, 1.0, 1.0, 0.0);
        for o in 0..octaves {
            // Offsetting each octave keeps lattice points from lining up at the origin.
            let off = o as f32 * 17.31;
            sum += amp * self.at(x * freq + off, y * freq - off);
            norm += amp;
            amp *= 0.5;
            freq *= 2.0;
        }
        sum / norm
    }
}

/// The 8 gradient directions of [`Perlin`]: the axes and diagonals, unit length.
const GRADIENTS: [(f32, f32); 8] = [
    (1.0, 0.0),
    (-1.0, 0.0),
    (0.0, 1.0),
    (0.0, -1.0),
    (
        std::f32::consts::FRAC_1_SQRT_2,
        std::f32::consts::FRAC_1_SQRT_2,
    ),
    (
        -std::f32::consts::FRAC_1_SQRT_2,
        std::f32::consts::FRAC_1_SQRT_2,
    ),
    (
        std::f32::consts::FRAC_1_SQRT_2,
        -std::f32::consts::FRAC_1_SQRT_2,
    ),
    (
        -std::f32::consts::FRAC_1_SQRT_2,
        -std::f32::consts::FRAC_1_SQRT_2,
    ),
];

/// Gradient noise (Perlin's, quintic fade, 8 lattice gradients), mapped to [0, 1] around ½.
/// Sharper-featured than [`ValueNoise`]; the surface universe's fractal families use it.
#[derive(Clone, Copy, Debug)]
pub struct Perlin {
    seed: u64,
}

/// How the octaves of a fractal sum are shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fractal {
    /// Plain fractal Brownian motion.
    Fbm,
    /// Sum of |noise|: billowy, with creases at the zero crossings.
    Turbulence,
    /// 1 − |noise|, squared: sharp ridges.
    Ridged,
}

impl Perlin {
    pub fn new(seed: u64) -> Self {
        Perlin { seed }
    }

    fn gradient(&self, x: i64, y: i64) -> (f32, f32) {
        let h = mix(
            self.seed ^ mix((x as u64).wrapping_mul(0x9E37_79B9) ^ (y as u64).wrapping_shl(32))
        );
        GRADIENTS[(h >> 61) as usize]
    }

    /// Signed noise, about [−0.7, 0.7].
    pub fn signed(&self, x: f32, y: f32) -> f32 {
        let (fx, fy) = (x.floor(), y.floor());
        let (ix, iy) = (fx as i64, fy as i64);
        let (dx, dy) = (x - fx, y - fy);
        let fade = |t: f32| t * t * t * (t * (t * 6.0 - 15.0) + 10.0);
        let (u, v) = (fade(dx), fade(dy));
        let dot = |i: i64, j: i64| {
            let g = self.gradient(ix + i, iy + j);
            g.0 * (dx - i as f32) + g.1 * (dy - j as f32)
        };
        let top = dot(0, 0) + (dot(1, 0) - dot(0, 0)) * u;
        let bottom = dot(0, 1) + (dot(1, 1) - dot(0, 1)) * u;
        top + (bottom - top) * v
    }

    /// Noise in [0, 1], ½ on average.
    pub fn at(&self, x: f32, y: f32) -> f32 {
        (0.5 + 0.75 * self.signed(x, y)).clamp(0.0, 1.0)
    }

    /// A fractal sum of `octaves` octaves shaped by `kind`, in [0, 1].
    pub fn fractal(&self, x: f32, y: f32, octaves: u32, kind: Fractal) -> f32 {
        let (mut sum, mut amp, mut freq, mut norm) = (0.0, 1.0, 1.0, 0.0);
        for o in 0..octaves {
            let off = o as f32 * 17.31;
            let n = self.signed(x * freq + off, y * freq - off);
            sum += amp
                * match kind {
                    Fractal::Fbm => 0.5 + 0.75 * n,
                    Fractal::Turbulence => (1.5 * n.abs()).min(1.0),
                    Fractal::Ridged => (1.0 - 1.5 * n.abs()).max(0.0).powi(2),
                };
            norm += amp;
            amp *= 0.5;
            freq *= 2.0;
        }
        (sum / norm).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_bounded_continuous_and_seeded() {
        let n = ValueNoise::new(3);
        for i in 0..200 {
            let (x, y) = (i as f32 * 0.173, i as f32 * 0.291);
            let v = n.fbm(x, y, 4);
            assert!((0.0..=1.0).contains(&v));
            assert!((n.at(x, y) - n.at(x + 1e-3, y)).abs() < 0.01);
        }
        assert_ne!(n.at(0.5, 0.5), ValueNoise::new(4).at(0.5, 0.5));
    }

    #[test]
    fn perlin_is_bounded_continuous_and_not_flat() {
        let p = Perlin::new(3);
        let mut spread = (f32::MAX, f32::MIN);
        for i in 0..400 {
            let (x, y) = (i as f32 * 0.173, i as f32 * 0.291);
            for kind in [Fractal::Fbm, Fractal::Turbulence, Fractal::Ridged] {
                assert!((0.0..=1.0).contains(&p.fractal(x, y, 4, kind)));
            }
            let v = p.at(x, y);
            spread = (spread.0.min(v), spread.1.max(v));
            assert!((v - p.at(x + 1e-3, y)).abs() < 0.01);
        }
        assert!(spread.1 - spread.0 > 0.5, "{spread:?}");
    }
}
