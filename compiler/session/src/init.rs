//! Parameter initialisation, reproducible from the seed and the parameter's name.
//!
//! Each parameter draws from its own SplitMix64 stream seeded with
//! `seed ^ mix64(fnv1a(name))`, so adding a layer does not change the others' values.
//! Fans follow the usual conventions: `[n]`: n and n; `[in, out]`: in and out;
//! `[out_c, in_c, k...]`: `in_c·∏k` and `out_c·∏k`; a scalar: 1 and 1.

use crate::error::RunError;
use dnnc_runtime::{rng::mix64, SplitMix64};
use dnnc_settings::Init;
use dnnc_tensor::Tensor;

use dnnc_lower::ParamInfo;

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn fans(shape: &[usize]) -> (f64, f64) {
    match shape {
        [] => (1.0, 1.0),
        [n] => (*n as f64, *n as f64),
        [i, o] => (*i as f64, *o as f64),
        [o, i, rest @ ..] => {
            let rf: usize = rest.iter().product();
            ((i * rf) as f64, (o * rf) as f64)
        }
    }
}

struct Draw(SplitMix64);

impl Draw {
    fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// `n` draws of `scale · U(-1, 1)` or `scale · N(0, 1)`.
    fn scaled(&mut self, n: usize, uniform: bool, scale: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let x = if uniform {
                    2.0 * self.uniform() - 1.0
                } else {
                    self.normal()
                };
                (scale * x) as f32
            })
            .collect()
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// The initial value of a parameter.
pub fn initial_value(p: &ParamInfo, seed: u64) -> Result<Tensor, RunError> {
    let n: usize = p.shape.iter().product();
    let mut d = Draw(SplitMix64::new(seed ^ mix64(fnv1a(&p.name))));
    let (fan_in, fan_out) = fans(&p.shape);
    let values: Vec<f32> = match p.init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Constant { value } => vec![value as f32; n],
        Init::Uniform { low, high } => (0..n)
            .map(|_| (low + (high - low) * d.uniform()) as f32)
            .collect(),
        Init::Normal { mean, std } => (0..n).map(|_| (mean + std * d.normal()) as f32).collect(),
        Init::GlorotUniform => d.scaled(n, true, (6.0 / (fan_in + fan_out)).sqrt()),
        Init::GlorotNormal => d.scaled(n, false, (2.0 / (fan_in + fan_out)).sqrt()),
        Init::HeUniform => d.scaled(n, true, (6.0 / fan_in).sqrt()),
        Init::HeNormal => d.scaled(n, false, (2.0 / fan_in).sqrt()),
        Init::LecunUniform => d.scaled(n, true, (3.0 / fan_in).sqrt()),
        Init::LecunNormal => d.scaled(n, false, (1.0 / fan_in).sqrt()),
        Init::UniformFan { fan } => d.scaled(n, true, (1.0 / fan).sqrt()),
    };
    let t = Tensor::f32(p.shape.clone(), values).map_err(|e| RunError::Internal(e.to_string()))?;
    // Drawn in f32, stored in the parameter's own type (rounded to nearest for
    // `bf16`/`f16`, PyTorch's conversions for integers).
    Ok(if p.dtype == dnnc_tensor::DType::F32 {
        t
    } else {
        t.cast(p.dtype)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str, shape: Vec<usize>, init: Init) -> ParamInfo {
        ParamInfo {
            name: name.into(),
            dtype: dnnc_tensor::DType::F32,
            shape,
            init,
            frozen: false,
            buffer: false,
            from: None,
            std_layer: None,
        }
    }

    #[test]
    fn glorot_is_reproducible_and_bounded() {
        let p = param("fc1.W", vec![784, 256], Init::GlorotUniform);
        let a = initial_value(&p, 42).unwrap();
        let b = initial_value(&p, 42).unwrap();
        assert_eq!(a, b);
        let limit = (6.0f32 / (784.0 + 256.0)).sqrt();
        let v = a.as_f32().unwrap();
        assert!(v.iter().all(|x| x.abs() <= limit));
        let mean: f32 = v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.01);
        assert_ne!(
            initial_value(&param("fc2.W", vec![784, 256], Init::GlorotUniform), 42).unwrap(),
            a
        );
    }
}
