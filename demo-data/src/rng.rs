//! A small deterministic random source (SplitMix64) and lattice hashing for noise.
//!
//! Our own rather than the `rand` crate's: demo data must stay byte-identical for a seed across
//! dependency upgrades, and `rand` does not promise stable streams between versions.

/// One SplitMix64 step: a bijective, well-mixed hash of a 64-bit word.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stable 64-bit FNV-1a of bytes (also the embedded model's cache key).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// FNV-1a of a name, to derive independent streams from names.
pub fn hash_str(s: &str) -> u64 {
    fnv1a64(s.as_bytes())
}

#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(mix(seed))
    }

    /// A stream for one image: changing the count of one category never shifts another's images.
    pub fn for_item(seed: u64, names: &[&str], index: u64) -> Self {
        let h = names.iter().fold(mix(seed), |h, n| mix(h ^ hash_str(n)));
        Rng(mix(h ^ index))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1) with 24 bits, exactly representable in f32.
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }

    pub fn chance(&mut self, p: f32) -> bool {
        self.uniform() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::for_item(7, &["wood", "test"], 3).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::for_item(7, &["wood"], 3).next_u64(),
            Rng::for_item(7, &["wood"], 4).next_u64()
        );
        assert_ne!(
            Rng::for_item(7, &["wood"], 3).next_u64(),
            Rng::for_item(8, &["wood"], 3).next_u64()
        );
    }

    #[test]
    fn uniform_stays_in_range_and_is_spread() {
        let mut r = Rng::new(1);
        let xs: Vec<f32> = (0..10_000).map(|_| r.uniform()).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }
}
