//! Moving elements of any dtype: gathering by a flat-index map, scattering into a
//! buffer, and making elements of a dtype from `f64` values.
//!
//! Storage follows `dnnc-tensor`: `f32`, every integer dtype as `i64`, and `bool`. Values
//! of `i32` and `u8` tensors are kept in their type's range by [`fit`], which wraps
//! (two's complement), as a compiled backend storing them in 32 or 8 bits would.

use dnnc_tensor::{DType, Data};

pub use dnnc_ir::scalar::fit;

/// An element of `dtype` made from `v`: `f32` rounds, integers truncate toward zero
/// (saturating at the `i64` range, NaN to 0) and then wrap by [`fit`], `bool` is `v != 0`.
pub fn from_f64(dtype: DType, values: impl Iterator<Item = f64>) -> Data {
    match dtype {
        DType::F32 => Data::F32(values.map(|v| v as f32).collect()),
        DType::Bool => Data::Bool(values.map(|v| v != 0.0).collect()),
        DType::I64 | DType::I32 | DType::U8 => {
            Data::I64(values.map(|v| fit(dtype, v as i64)).collect())
        }
    }
}

/// `out[i] = x[src[i]]`.
pub fn take(x: &Data, src: &[usize]) -> Data {
    fn pick<T: Copy>(v: &[T], src: &[usize]) -> Vec<T> {
        src.iter().map(|&i| v[i]).collect()
    }
    match x {
        Data::F32(v) => Data::F32(pick(v, src)),
        Data::I64(v) => Data::I64(pick(v, src)),
        Data::Bool(v) => Data::Bool(pick(v, src)),
    }
}

/// `out[dst[i]] = x[i]`; `out` and `x` must hold the same element type.
pub fn put(out: &mut Data, dst: &[usize], x: &Data) -> Result<(), String> {
    fn place<T: Copy>(out: &mut [T], dst: &[usize], v: &[T]) {
        for (&d, &a) in dst.iter().zip(v) {
            out[d] = a;
        }
    }
    match (out, x) {
        (Data::F32(o), Data::F32(v)) => place(o, dst, v),
        (Data::I64(o), Data::I64(v)) => place(o, dst, v),
        (Data::Bool(o), Data::Bool(v)) => place(o, dst, v),
        _ => return Err("operands of different element types".into()),
    }
    Ok(())
}

/// `out[dst[i]] += x[i]`: `f32` addition, wrapping integer addition kept in `dtype`'s
/// range, logical or for `bool`.
pub fn accumulate(out: &mut Data, dst: &[usize], x: &Data, dtype: DType) -> Result<(), String> {
    match (out, x) {
        (Data::F32(o), Data::F32(v)) => dst.iter().zip(v).for_each(|(&d, &a)| o[d] += a),
        (Data::I64(o), Data::I64(v)) => dst
            .iter()
            .zip(v)
            .for_each(|(&d, &a)| o[d] = fit(dtype, o[d].wrapping_add(a))),
        (Data::Bool(o), Data::Bool(v)) => dst.iter().zip(v).for_each(|(&d, &a)| o[d] |= a),
        _ => return Err("operands of different element types".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_wraps_to_the_dtype() {
        assert_eq!(fit(DType::U8, 300), 44);
        assert_eq!(fit(DType::U8, -1), 255);
        assert_eq!(fit(DType::I32, 1 << 31), -(1 << 31));
        assert_eq!(fit(DType::I64, 1 << 40), 1 << 40);
    }

    #[test]
    fn conversions_from_f64() {
        let v = [-1.7, 0.0, 2.9, f64::NAN];
        assert_eq!(
            from_f64(DType::I64, v.into_iter()),
            Data::I64(vec![-1, 0, 2, 0])
        );
        assert_eq!(
            from_f64(DType::U8, v.into_iter()),
            Data::I64(vec![255, 0, 2, 0])
        );
        assert_eq!(
            from_f64(DType::Bool, v.into_iter()),
            Data::Bool(vec![true, false, true, true])
        );
    }

    #[test]
    fn take_put_and_accumulate() {
        let x = Data::I64(vec![10, 20, 30]);
        assert_eq!(take(&x, &[2, 0, 0]), Data::I64(vec![30, 10, 10]));
        let mut out = Data::I64(vec![0; 4]);
        put(&mut out, &[3, 1, 0], &x).unwrap();
        assert_eq!(out, Data::I64(vec![30, 20, 0, 10]));
        accumulate(&mut out, &[0, 0, 2], &x, DType::U8).unwrap();
        assert_eq!(out, Data::I64(vec![60, 20, 30, 10]));
        assert!(put(&mut out, &[0], &Data::F32(vec![1.0])).is_err());
    }
}
