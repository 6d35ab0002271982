//! Random tensors of every element type, and the edge values every kernel must agree
//! on: NaN, ±0, ±infinity, subnormals, the integer extremes.

use dnnc_tensor::{Class, DType, Data, Tensor};

use crate::Rng;

/// A random tensor of `dtype`: floats in `[-2, 2)`, integers in `-3..=3` (`0..=255`
/// for `u8`), booleans at random.
pub fn random(rng: &mut Rng, dtype: DType, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let data = match dtype.class() {
        Class::Float => Data::from_f64(
            dtype,
            (0..n)
                .map(|_| f64::from(rng.float(-2.0, 2.0)))
                .collect::<Vec<_>>(),
        ),
        Class::Bool => Data::Bool((0..n).map(|_| rng.below(2) == 1).collect()),
        Class::Int if dtype == DType::U8 => Data::from_i64(
            dtype,
            (0..n).map(|_| rng.below(256) as i64).collect::<Vec<_>>(),
        ),
        Class::Int => Data::from_i64(
            dtype,
            (0..n).map(|_| rng.below(7) as i64 - 3).collect::<Vec<_>>(),
        ),
    };
    Tensor::new(dtype, shape.to_vec(), data).expect("a well-formed tensor")
}

/// The edge values of integer type `dtype`, exactly: 0, ±1, small values, the
/// extremes and their neighbours.
pub fn int_edges(dtype: DType) -> Vec<i64> {
    let (lo, hi) = dtype.int_range().expect("an integer type");
    let mut v = vec![0, 1, -1, 2, 3, 7, -7, 100, lo, lo + 1, hi, hi - 1];
    v.retain(|&x| x >= lo && x <= hi);
    v
}

/// The edge values of `dtype`, as `f64`s that convert exactly: zeros of both signs,
/// ones, infinities, NaN, the smallest subnormal and the largest finite value for
/// floats, with halves (rounding ties), a value no binary float holds exactly (0.1) and
/// a few ordinary ones; 0, ±1, small values, the extremes and their neighbours for
/// integers; both booleans.
/// (`i64`'s extremes round to the nearest `f64`: [`int_edges`] has them exactly.)
pub fn edges(dtype: DType) -> Vec<f64> {
    match dtype.class() {
        Class::Bool => vec![0.0, 1.0],
        Class::Int => int_edges(dtype).into_iter().map(|x| x as f64).collect(),
        Class::Float => {
            let (tiny, max) = match dtype {
                DType::F16 => (5.960464477539063e-8, 65504.0),
                DType::BF16 => (9.183549615799121e-41, 3.3895313892515355e38),
                DType::F32 => (f64::from(f32::from_bits(1)), f64::from(f32::MAX)),
                _ => (f64::from_bits(1), f64::MAX),
            };
            vec![
                0.0,
                -0.0,
                1.0,
                -1.0,
                0.5,
                2.5,
                -2.5,
                3.0,
                0.1,
                100.0,
                -7.25,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
                tiny,
                -tiny,
                max,
                -max,
            ]
        }
    }
}
