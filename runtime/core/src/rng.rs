//! The runtime's pseudo-random generator: SplitMix64, small and identical on every machine.
//!
//! SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
//! OOPSLA 2014) is counter-based: the `i`-th output (counting from 1) of a generator
//! started from `state` is `mix(state + i · 0x9E3779B97F4A7C15)`, where `mix` is the
//! fixed bijection [`mix64`]. It uses only wrapping 64-bit integer arithmetic, so a seed
//! gives the same stream on every platform and in every build.

/// The increment of SplitMix64: 2^64 divided by the golden ratio, rounded to odd.
pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijection on `u64` that scrambles every input bit
/// into every output bit. `mix64(0) == 0`.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random key of optimizer step `step` of a run seeded with `seed` (dropout and
/// other draws in a training step derive from it): the same in `dnnc train` and in
/// static libraries.
pub fn step_key(seed: u64, step: u64) -> i64 {
    mix64(seed ^ mix64(step.wrapping_add(0x5eed))) as i64
}

/// A SplitMix64 generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose first output is `mix64(state + GOLDEN_GAMMA)`.
    pub fn new(state: u64) -> SplitMix64 {
        SplitMix64 { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// A uniformly distributed integer in `0..bound` (`0` when `bound` is 0).
    ///
    /// Uses Lemire's multiply-and-shift method with rejection, so there is no modulo
    /// bias; the number of outputs consumed depends only on the stream.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        let mut m = u128::from(self.next_u64()) * u128::from(bound);
        if (m as u64) < bound {
            let threshold = bound.wrapping_neg() % bound;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(bound);
            }
        }
        (m >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_stream() {
        // The first outputs of the reference C implementation seeded with 1234567.
        let mut rng = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            vec![
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423
            ]
        );
        assert_eq!(mix64(0), 0);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [0usize; 6];
        for _ in 0..6000 {
            let x = rng.below(6);
            assert!(x < 6);
            seen[x as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
        let _ = rng.below(u64::MAX);
    }
}
