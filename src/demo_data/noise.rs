//! Value noise and fractal sums of it: the raw material of every synthetic surface.

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
}
