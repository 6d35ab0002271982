//! Moving elements of any dtype: gathering by a flat-index map, scattering into a
//! buffer, and summing into one. Elements keep their real width ([`dnnc_tensor`]);
//! what an op computes lives in [`dnnc_ir::elementwise`].

use dnnc_ir::elementwise::{self, ElemError};
use dnnc_ir::ReduceKind;
use dnnc_tensor::{with_same, Data};

pub use dnnc_ir::scalar::fit;

/// `out[i] = x[src[i]]`.
pub fn take(x: &Data, src: &[usize]) -> Data {
    x.take(src)
}

/// `out[dst[i]] = x[i]`; `out` and `x` must hold the same element type.
pub fn put(out: &mut Data, dst: &[usize], x: &Data) -> Result<(), ElemError> {
    fn place<T: Copy>(out: &mut [T], dst: &[usize], v: &[T]) {
        for (&d, &a) in dst.iter().zip(v) {
            out[d] = a;
        }
    }
    with_same!(out.as_slice_mut(), x.as_slice(), SliceMut, Slice, o, v => {
        place(o, dst, v);
        Ok(())
    }, else Err(ElemError::Types))
}

/// `out[dst[i]] += x[i]` into zeros: the sum of every element that lands on a position,
/// with the sums of [`elementwise::reduce`] (wrapping integers, `f16`/`bf16` in `f32`).
pub fn sum_into(out: &mut Data, dst: &[usize], x: &Data) -> Result<(), ElemError> {
    let positions: elementwise::Positions<'_> = &|visit| {
        for (i, &d) in dst.iter().enumerate() {
            visit(i, d);
        }
    };
    elementwise::reduce(ReduceKind::Sum, x.as_slice(), positions, out.as_slice_mut())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_put_and_sum() {
        let x = Data::U8(vec![10, 20, 30]);
        assert_eq!(take(&x, &[2, 0, 0]), Data::U8(vec![30, 10, 10]));
        let mut out = Data::U8(vec![0; 4]);
        put(&mut out, &[3, 1, 0], &x).unwrap();
        assert_eq!(out, Data::U8(vec![30, 20, 0, 10]));
        let y = Data::U8(vec![200, 100, 7]);
        sum_into(&mut out, &[0, 0, 2], &y).unwrap();
        assert_eq!(out, Data::U8(vec![44, 0, 7, 0]));
        assert!(put(&mut out, &[0], &Data::F32(vec![1.0])).is_err());
    }
}
