//! Host tensors: dense, row-major arrays that the interpreter, the runtime (data,
//! checkpoints) and compiled code exchange, and the one model of element types
//! ([`DType`]) that every stage shares, from the checker to the kernels.
//!
//! Elements are stored in their real width: `f32`, `f64`, `f16`, `bf16`, `i8`, `u8`,
//! `i16`, `i32`, `i64` and `bool` ([`dtype`], [`data`]).

use std::fmt;

pub mod data;
pub mod dtype;
pub mod memory;

pub use data::{Data, IntoData, Slice, SliceMut};
pub use dtype::{bf16, f16, wrap, Class, DType, Elem};

/// A dense tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Data,
}

/// Why a tensor could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// A tensor whose storage is of `dtype` and whose length matches `shape`.
    pub fn new(dtype: DType, shape: Vec<usize>, data: Data) -> Result<Tensor, ShapeError> {
        if data.dtype() != dtype {
            return Err(ShapeError(format!(
                "{dtype} tensor holding {} elements",
                data.dtype()
            )));
        }
        if data.len() != numel(&shape) {
            return Err(ShapeError(format!(
                "shape {shape:?} holds {} elements but {} were given",
                numel(&shape),
                data.len()
            )));
        }
        Ok(Tensor { dtype, shape, data })
    }

    /// A tensor of the data's own element type.
    pub fn of(shape: Vec<usize>, data: Data) -> Result<Tensor, ShapeError> {
        Tensor::new(data.dtype(), shape, data)
    }

    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, ShapeError> {
        Tensor::new(DType::F32, shape, Data::F32(data))
    }

    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor {
            dtype: DType::F32,
            shape: Vec::new(),
            data: Data::F32(vec![v]),
        }
    }

    pub fn scalar_i64(v: i64) -> Tensor {
        Tensor {
            dtype: DType::I64,
            shape: Vec::new(),
            data: Data::I64(vec![v]),
        }
    }

    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Tensor {
        let data = Data::zeros(dtype, numel(&shape));
        Tensor { dtype, shape, data }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The elements converted to `f32` (booleans as 0/1).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        self.data.to_f32_vec()
    }

    /// The elements of an integer or `bool` tensor as `i64` (floats truncate).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        self.data.to_i64_vec()
    }

    /// The tensor converted to `dtype` ([`dtype`] has the rules).
    pub fn cast(&self, dtype: DType) -> Tensor {
        Tensor {
            dtype,
            shape: self.shape.clone(),
            data: self.data.cast(dtype),
        }
    }

    /// Rows `[start, end)` along the first axis.
    pub fn slice_rows(&self, start: usize, end: usize) -> Tensor {
        let row: usize = self.shape.iter().skip(1).product();
        let data = self.data.range(start * row, end * row);
        let mut shape = self.shape.clone();
        if let Some(first) = shape.first_mut() {
            *first = end - start;
        }
        Tensor {
            dtype: self.dtype,
            shape,
            data,
        }
    }

    /// Entry `k` along the first axis, without that axis: `t[k]`.
    ///
    /// # Panics
    ///
    /// If the tensor has no axis or `k` is not below the first dimension.
    pub fn entry(&self, k: usize) -> Tensor {
        assert!(
            self.shape.first().is_some_and(|&n| k < n),
            "entry {k} of a tensor of shape {:?}",
            self.shape
        );
        let mut t = self.slice_rows(k, k + 1);
        t.shape.remove(0);
        t
    }

    /// The rows at `indices` along the first axis, in that order.
    pub fn gather_rows(&self, indices: &[usize]) -> Tensor {
        let row: usize = self.shape.iter().skip(1).product();
        let src: Vec<usize> = indices
            .iter()
            .flat_map(|&i| i * row..(i + 1) * row)
            .collect();
        let data = self.data.take(&src);
        let mut shape = self.shape.clone();
        if let Some(first) = shape.first_mut() {
            *first = indices.len();
        }
        Tensor {
            dtype: self.dtype,
            shape,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_slices() {
        let t = Tensor::f32(vec![3, 2], vec![0., 1., 2., 3., 4., 5.]).unwrap();
        assert_eq!(t.slice_rows(1, 3).as_f32().unwrap(), &[2., 3., 4., 5.]);
        assert_eq!(t.gather_rows(&[2, 0]).as_f32().unwrap(), &[4., 5., 0., 1.]);
        assert!(Tensor::f32(vec![2, 2], vec![0.0; 3]).is_err());
        assert!(Tensor::new(DType::U8, vec![1], Data::F32(vec![1.0])).is_err());
        let u = Tensor::new(DType::U8, vec![2], Data::U8(vec![7, 255])).unwrap();
        assert_eq!(u.gather_rows(&[1]).data, Data::U8(vec![255]));
        assert_eq!(u.cast(DType::I8).data, Data::I8(vec![7, -1]));
    }

    #[test]
    fn entries_drop_the_first_axis() {
        let t = Tensor::f32(vec![3, 1, 2], vec![0., 1., 2., 3., 4., 5.]).unwrap();
        let e = t.entry(2);
        assert_eq!(
            (e.shape.as_slice(), e.as_f32().unwrap()),
            (&[1, 2][..], &[4., 5.][..])
        );
        let v = Tensor::new(DType::I64, vec![2], Data::I64(vec![7, 9])).unwrap();
        assert_eq!(v.entry(1).shape, Vec::<usize>::new());
        assert_eq!(v.entry(1).data, Data::I64(vec![9]));
        assert!(std::panic::catch_unwind(|| t.entry(3)).is_err());
    }
}
