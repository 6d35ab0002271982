//! Conversion from the data loaders' tensors ([`dnnc_data::Tensor`]) to host tensors
//! ([`dnnc_tensor::Tensor`]).
//!
//! Data files hold seven element types; host tensors store floats as `f32` and every
//! integer as `i64`, and keep a declared [`DType`]:
//!
//! | file element | host dtype | storage |
//! |---|---|---|
//! | `u8` | `U8` | `i64` |
//! | `i8`, `i16`, `i32` | `I32` | `i64` |
//! | `i64` | `I64` | `i64` |
//! | `f32`, `f64` | `F32` | `f32` (an `f64` is rounded to the nearest `f32`) |

use dnnc_data::TensorData;
use dnnc_tensor::{DType, Data, Tensor};

/// Converts a loaded data file into a host tensor (see the [module docs](self) for the
/// element type mapping). The shape and the row-major order are kept.
pub fn from_data(t: &dnnc_data::Tensor) -> Tensor {
    fn widen<T: Copy + Into<i64>>(v: &[T]) -> Vec<i64> {
        v.iter().map(|&x| x.into()).collect()
    }
    let (dtype, data) = match &t.data {
        TensorData::U8(v) => (DType::U8, Data::I64(widen(v))),
        TensorData::I8(v) => (DType::I32, Data::I64(widen(v))),
        TensorData::I16(v) => (DType::I32, Data::I64(widen(v))),
        TensorData::I32(v) => (DType::I32, Data::I64(widen(v))),
        TensorData::I64(v) => (DType::I64, Data::I64(v.clone())),
        TensorData::F32(v) => (DType::F32, Data::F32(v.clone())),
        TensorData::F64(v) => (DType::F32, Data::F32(v.iter().map(|&x| x as f32).collect())),
    };
    // Loaders cap element counts at 2^34, so every dimension fits a 64-bit `usize`.
    let shape = t
        .shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    Tensor { dtype, shape, data }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnnc_data::Tensor as DataTensor;

    #[test]
    fn integers_widen_to_i64_storage() {
        let cases = [
            (TensorData::U8(vec![0, 255]), DType::U8, vec![0, 255]),
            (TensorData::I8(vec![-128, 127]), DType::I32, vec![-128, 127]),
            (
                TensorData::I16(vec![-300, 300]),
                DType::I32,
                vec![-300, 300],
            ),
            (
                TensorData::I32(vec![i32::MIN, 7]),
                DType::I32,
                vec![i64::from(i32::MIN), 7],
            ),
            (
                TensorData::I64(vec![i64::MAX, -1]),
                DType::I64,
                vec![i64::MAX, -1],
            ),
        ];
        for (data, dtype, want) in cases {
            let t = from_data(&DataTensor::new(vec![2], data));
            assert_eq!(t.dtype, dtype);
            assert_eq!(t.shape, vec![2]);
            assert_eq!(t.as_i64().unwrap(), want.as_slice());
        }
    }

    #[test]
    fn floats_become_f32() {
        let t = from_data(&DataTensor::new(
            vec![1, 2],
            TensorData::F64(vec![0.5, -1.25]),
        ));
        assert_eq!((t.dtype, t.shape.clone()), (DType::F32, vec![1, 2]));
        assert_eq!(t.as_f32().unwrap(), &[0.5, -1.25]);
        let t = from_data(&DataTensor::new(vec![], TensorData::F32(vec![3.0])));
        assert_eq!((t.dtype, t.shape.clone()), (DType::F32, vec![]));
        assert_eq!(t.as_f32().unwrap(), &[3.0]);
    }

    #[test]
    fn result_is_a_valid_tensor() {
        let t = from_data(&DataTensor::new(vec![2, 0, 3], TensorData::U8(vec![])));
        let checked = Tensor::new(t.dtype, t.shape.clone(), t.data.clone());
        assert_eq!(checked.as_ref(), Ok(&t));
    }
}
