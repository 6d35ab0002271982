//! The counter-based random numbers of the `random` op, exactly as the reference
//! interpreter defines them (`dnnc_interp::rng`): every element is a pure function of
//! `(key, salt, index)`, so compiled and interpreted draws agree bit for bit.

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn splitmix64(x: u64) -> u64 {
    mix64(x.wrapping_add(GOLDEN_GAMMA))
}

/// The per-draw stream of `(key, salt)`, computed once per node.
pub(crate) fn stream(key: i64, salt: u64) -> u64 {
    splitmix64((key as u64) ^ splitmix64(salt))
}

/// The top 24 bits of element `i`'s random bits, as a float in `[0, 1)`.
pub(crate) fn unit(stream: u64, i: u64) -> f32 {
    (splitmix64(stream ^ i) >> 40) as f32 / (1u32 << 24) as f32
}

pub(crate) fn uniform(stream: u64, i: u64, low: f64, high: f64) -> f32 {
    let u = unit(stream, i);
    let lo = low as f32;
    let span = (high - low) as f32;
    lo + span * u
}

pub(crate) fn normal(stream: u64, i: u64, mean: f64, std: f64) -> f32 {
    let u1 = f64::from(unit(stream, i.wrapping_mul(2)));
    let u2 = f64::from(unit(stream, i.wrapping_mul(2).wrapping_add(1)));
    let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (mean + std * z) as f32
}

pub(crate) fn bernoulli(stream: u64, i: u64, p: f32) -> bool {
    unit(stream, i) < p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_stream() {
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(GOLDEN_GAMMA), 0x6E78_9E6A_A1B9_65F4);
        let s = stream(9, 4);
        assert_eq!(uniform(s, 3, -1.0, 1.0), -1.0 + 2.0 * unit(s, 3));
        assert_eq!(bernoulli(s, 3, 0.5), unit(s, 3) < 0.5);
        assert_eq!(normal(s, 5, -2.5, 0.0), -2.5);
    }
}
