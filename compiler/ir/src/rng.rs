//! The counter-based random numbers of the `random` op, specified exactly: compiled
//! backends must reproduce them bit for bit.
//!
//! A `random` node has an `i64` scalar operand `key` (the step key), a `u64` attribute
//! `salt` that tells draws apart, and a shape; element `i` (its row-major flat index) is
//! a pure function of `(key, salt, i)`. All integer arithmetic is wrapping `u64`.
//!
//! ```text
//! mix64(z)       = z ← (z ^ (z >> 30)) · 0xBF58476D1CE4E5B9
//!                  z ← (z ^ (z >> 27)) · 0x94D049BB133111EB
//!                  z ^ (z >> 31)
//! splitmix64(x)  = mix64(x + 0x9E3779B97F4A7C15)      (the first SplitMix64 output from state x)
//! stream(k, s)   = splitmix64((k as u64) ^ splitmix64(s))
//! bits(k, s, i)  = splitmix64(stream(k, s) ^ i)
//! unit(b)        = (b >> 40) as f32 / 2^24            (exact: a multiple of 2^-24 in [0, 1))
//! ```
//!
//! The distributions, for element `i`:
//!
//! - **uniform(low, high)**: `u = unit(bits(k, s, i))`;
//!   `lo = low as f32`, `span = (high - low) as f32` (the subtraction in `f64`, then
//!   rounded); the value is `lo + span · u` in `f32`: the product rounded to `f32`, then
//!   the sum (no fused multiply-add). Values lie in `[low, high)` up to that final
//!   rounding, which can give `high` itself.
//! - **normal(mean, std)**: Box–Muller from two draws, `u1 = unit(bits(k, s, 2i))` and
//!   `u2 = unit(bits(k, s, 2i + 1))`; in `f64`,
//!   `z = sqrt(-2 · ln(1 - u1)) · cos(2π · u2)` (`1 - u1 ≥ 2^-24`, so the logarithm is
//!   finite and `|z| < 5.8`), and the value is `(mean + std · z)` rounded once to `f32`.
//!   The `f64` `ln` and `cos` come from the platform's libm; rounding to `f32` hides
//!   their last-place differences except when the `f64` result falls within a few `f64`
//!   ulps of an `f32` rounding boundary.
//! - **bernoulli(p)**: `unit(bits(k, s, i)) < p[i]` (both exact in `f32`), so `p ≤ 0`
//!   is never true and `p ≥ 1` always is.

/// The increment of SplitMix64: 2^64 over the golden ratio, rounded to odd.
pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function, a bijection on `u64`.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The first output of a SplitMix64 generator started from state `x`.
pub fn splitmix64(x: u64) -> u64 {
    mix64(x.wrapping_add(GOLDEN_GAMMA))
}

/// The stream of the draw `(key, salt)`: computed once per node, then every element's
/// bits are `splitmix64(stream ^ i)`.
pub fn stream(key: i64, salt: u64) -> u64 {
    splitmix64((key as u64) ^ splitmix64(salt))
}

/// The 64 random bits of element `i` of the draw `(key, salt)`.
pub fn bits(key: i64, salt: u64, i: u64) -> u64 {
    splitmix64(stream(key, salt) ^ i)
}

/// The top 24 bits of `b` as a float in `[0, 1)`.
pub fn unit(b: u64) -> f32 {
    (b >> 40) as f32 / (1u32 << 24) as f32
}

/// Element `i` of a uniform draw on `[low, high)` from stream `s` (see [`stream`]).
pub fn uniform_at(s: u64, i: u64, low: f64, high: f64) -> f32 {
    let u = unit(splitmix64(s ^ i));
    let lo = low as f32;
    let span = (high - low) as f32;
    lo + span * u
}

/// Element `i` of a normal draw with the given mean and standard deviation.
pub fn normal_at(s: u64, i: u64, mean: f64, std: f64) -> f32 {
    let u1 = f64::from(unit(splitmix64(s ^ i.wrapping_mul(2))));
    let u2 = f64::from(unit(splitmix64(s ^ i.wrapping_mul(2).wrapping_add(1))));
    let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (mean + std * z) as f32
}

/// Element `i` of a Bernoulli draw with probability `p` of `true`.
pub fn bernoulli_at(s: u64, i: u64, p: f32) -> bool {
    unit(splitmix64(s ^ i)) < p
}

/// [`uniform_at`] of the draw `(key, salt)`.
pub fn uniform(key: i64, salt: u64, i: u64, low: f64, high: f64) -> f32 {
    uniform_at(stream(key, salt), i, low, high)
}

/// [`normal_at`] of the draw `(key, salt)`.
pub fn normal(key: i64, salt: u64, i: u64, mean: f64, std: f64) -> f32 {
    normal_at(stream(key, salt), i, mean, std)
}

/// [`bernoulli_at`] of the draw `(key, salt)`.
pub fn bernoulli(key: i64, salt: u64, i: u64, p: f32) -> bool {
    bernoulli_at(stream(key, salt), i, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_stream() {
        // The reference SplitMix64 from state 0 outputs these first (Vigna's splitmix64.c).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(GOLDEN_GAMMA), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(mix64(0), 0);
    }

    #[test]
    fn bits_follow_the_documented_formula() {
        let (key, salt) = (-3i64, 17u64);
        let stream = splitmix64(key as u64 ^ splitmix64(salt));
        for i in 0..10 {
            assert_eq!(bits(key, salt, i), splitmix64(stream ^ i));
        }
        assert_eq!(unit(u64::MAX), 1.0 - 1.0 / 16_777_216.0);
        assert_eq!(unit(0), 0.0);
        assert_eq!(unit(1 << 63), 0.5);
    }

    #[test]
    fn degenerate_distributions_are_exact() {
        for i in 0..100 {
            assert_eq!(uniform(1, 2, i, 3.0, 3.0), 3.0);
            assert_eq!(normal(1, 2, i, -2.5, 0.0), -2.5);
            assert!(bernoulli(1, 2, i, 1.0));
            assert!(!bernoulli(1, 2, i, 0.0));
        }
    }

    #[test]
    fn uniform_is_the_scaled_unit_draw() {
        for i in 0..100 {
            let u = unit(bits(9, 4, i));
            assert_eq!(uniform(9, 4, i, 0.0, 1.0), u);
            assert_eq!(uniform(9, 4, i, -1.0, 1.0), -1.0 + 2.0 * u);
            assert_eq!(bernoulli(9, 4, i, 0.5), u < 0.5);
        }
    }
}
