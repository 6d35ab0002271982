//! The `random` op: determinism, independence of keys and salts, agreement with the
//! documented formulas in [`crate::rng`], and the moments of 100 000 draws.

use dnnc_ir::{Dist, Op};
use dnnc_tensor::Tensor;

use super::{eval1, f32t, i64t};
use crate::rng;

const N: usize = 100_000;

fn draw(dist: Dist, key: i64, salt: u64, n: usize) -> Vec<f32> {
    let t = eval1(&[i64t(&[], &[key])], |g, a| {
        g.add(
            Op::Random {
                dist,
                shape: vec![n],
                salt,
            },
            a,
        )
    })
    .unwrap();
    t.as_f32().unwrap().to_vec()
}

fn bernoulli(key: i64, salt: u64, p: &Tensor) -> Vec<bool> {
    let t = eval1(&[i64t(&[], &[key]), p.clone()], |g, a| {
        g.add(
            Op::Random {
                dist: Dist::Bernoulli,
                shape: p.shape.clone(),
                salt,
            },
            a,
        )
    })
    .unwrap();
    match t.data {
        dnnc_tensor::Data::Bool(v) => v,
        other => panic!("{other:?}"),
    }
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

const UNIFORM: Dist = Dist::Uniform {
    low: 0.0,
    high: 1.0,
};
const NORMAL: Dist = Dist::Normal {
    mean: 0.0,
    std: 1.0,
};

#[test]
fn same_key_and_salt_give_the_same_values() {
    for dist in [UNIFORM, NORMAL] {
        assert_eq!(draw(dist, 5, 1, 64), draw(dist, 5, 1, 64));
    }
    let p = f32t(&[64], &[0.5; 64]);
    assert_eq!(bernoulli(5, 1, &p), bernoulli(5, 1, &p));
    // Element i does not depend on the shape: a longer draw extends a shorter one.
    assert_eq!(draw(UNIFORM, 5, 1, 100)[..64], draw(UNIFORM, 5, 1, 64)[..]);
}

#[test]
fn different_keys_or_salts_give_different_values() {
    for dist in [UNIFORM, NORMAL] {
        let base = draw(dist, 5, 1, 64);
        for other in [
            draw(dist, 6, 1, 64),
            draw(dist, 5, 2, 64),
            draw(dist, -5, 1, 64),
            draw(dist, 0, 0, 64),
        ] {
            let same = base.iter().zip(&other).filter(|(a, b)| a == b).count();
            assert!(same <= 2, "{same} of 64 equal");
        }
    }
    let p = f32t(&[256], &[0.5; 256]);
    assert_ne!(bernoulli(5, 1, &p), bernoulli(5, 2, &p));
    assert_ne!(bernoulli(5, 1, &p), bernoulli(6, 1, &p));
}

#[test]
fn values_follow_the_documented_formulas() {
    let (key, salt) = (123_456_789, 99);
    let u = draw(
        Dist::Uniform {
            low: -2.0,
            high: 6.0,
        },
        key,
        salt,
        50,
    );
    let z = draw(
        Dist::Normal {
            mean: 1.0,
            std: 3.0,
        },
        key,
        salt,
        50,
    );
    for i in 0..50u64 {
        let bits = |j: u64| {
            let stream = rng::splitmix64(key as u64 ^ rng::splitmix64(salt));
            rng::splitmix64(stream ^ j)
        };
        let unit = |j: u64| (bits(j) >> 40) as f32 / 16_777_216.0;
        assert_eq!(u[i as usize], -2.0f32 + 8.0f32 * unit(i));
        let (u1, u2) = (f64::from(unit(2 * i)), f64::from(unit(2 * i + 1)));
        let want = (1.0
            + 3.0 * (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos())
            as f32;
        assert_eq!(z[i as usize], want);
    }
    let p: Vec<f32> = (0..50).map(|i| i as f32 / 50.0).collect();
    let b = bernoulli(key, salt, &f32t(&[50], &p));
    for i in 0..50 {
        assert_eq!(b[i], rng::unit(rng::bits(key, salt, i as u64)) < p[i]);
    }
}

#[test]
fn uniform_moments_and_range() {
    let v = draw(UNIFORM, 2024, 3, N);
    assert!(v.iter().all(|&x| (0.0..1.0).contains(&x)));
    let (mean, std) = mean_std(&v);
    assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
    assert!((std - (1.0f64 / 12.0).sqrt()).abs() < 0.005, "std {std}");
    let w = draw(
        Dist::Uniform {
            low: -3.0,
            high: -1.0,
        },
        2024,
        4,
        N,
    );
    assert!(w.iter().all(|&x| (-3.0..-1.0).contains(&x)));
    let (mean, _) = mean_std(&w);
    assert!((mean + 2.0).abs() < 0.01, "mean {mean}");
}

#[test]
fn normal_moments() {
    let v = draw(NORMAL, 2024, 5, N);
    assert!(v.iter().all(|x| x.is_finite()));
    let (mean, std) = mean_std(&v);
    assert!(mean.abs() < 0.015, "mean {mean}");
    assert!((std - 1.0).abs() < 0.015, "std {std}");
    // About 68.3% within one standard deviation.
    let within = v.iter().filter(|x| x.abs() < 1.0).count() as f64 / N as f64;
    assert!((within - 0.6827).abs() < 0.01, "{within}");
    let w = draw(
        Dist::Normal {
            mean: 5.0,
            std: 0.5,
        },
        7,
        5,
        N,
    );
    let (mean, std) = mean_std(&w);
    assert!(
        (mean - 5.0).abs() < 0.01 && (std - 0.5).abs() < 0.01,
        "{mean} {std}"
    );
}

#[test]
fn bernoulli_frequency() {
    let p = f32t(&[N], &vec![0.3; N]);
    let hits = bernoulli(11, 6, &p).iter().filter(|&&b| b).count() as f64 / N as f64;
    assert!((hits - 0.3).abs() < 0.01, "{hits}");
}
