//! The one seeded generator of Strata: SplitMix64 (Steele, Lea and Flood, 2014). Synthetic
//! datasets, shuffles, a sweep's random trials, the test corpus and the benchmarks' data all draw
//! from it, so that a seed means the same numbers on every machine, in every version, and in
//! every program that uses it — independent of libtorch's global generator.
//!
//! It is small and fast, passes BigCrush, and is not for anything secret.

use std::f64::consts::TAU;

/// A SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

/// Mixed into a seed by [`SplitMix64::seeded`], so that seed 0 does not start from state 0.
const SEED_MIX: u64 = 0x5DEE_CE66_D1CE_4E5B;

impl SplitMix64 {
    /// The stream that starts from `state` as it is.
    pub fn new(state: u64) -> SplitMix64 {
        SplitMix64 { state }
    }

    /// The stream of a user's seed (`--seed`): the seed mixed with a constant first. Datasets and
    /// shuffles start here.
    pub fn seeded(seed: u64) -> SplitMix64 {
        SplitMix64::new(seed ^ SEED_MIX)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [-1, 1).
    pub fn signed(&mut self) -> f64 {
        self.uniform() * 2.0 - 1.0
    }

    /// Standard normal (Box–Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }

    /// Uniform in 0..n, scaled from [`uniform`](Self::uniform) (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }

    /// Uniform in 0..n (n > 0) as the remainder of a draw: the bias is below 2^-40 for any n a
    /// list of choices has. A sweep's random trials pick with it.
    pub fn pick(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A random permutation of 0..n (Fisher–Yates), as tensor indices.
    pub fn permutation(&mut self, n: usize) -> Vec<i64> {
        let mut order: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            order.swap(i, self.below(i + 1));
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference outputs of SplitMix64 from state 0 (Vigna's splitmix64.c): whatever changes
    /// here changes every seeded dataset and sweep.
    #[test]
    fn the_stream_is_splitmix64() {
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn draws_stay_in_their_ranges() {
        let mut rng = SplitMix64::seeded(7);
        for n in 1..50 {
            assert!(rng.below(n) < n);
            assert!(rng.pick(n) < n);
            let u = rng.uniform();
            assert!((0.0..1.0).contains(&u));
            assert!(rng.normal().is_finite());
        }
        assert_eq!(rng.below(0), 0);
        let mut order = rng.permutation(100);
        order.sort_unstable();
        assert_eq!(order, (0..100).collect::<Vec<i64>>());
    }
}
