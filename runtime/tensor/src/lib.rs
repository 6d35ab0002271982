//! Host tensors: dense, row-major arrays that the interpreter, the runtime (data,
//! checkpoints) and compiled code exchange.
//!
//! Storage is deliberately small: floats are `f32`, every integer type is stored as
//! `i64`, booleans as `bool`. The [`DType`] tag keeps the declared element type, so that
//! a `u8` label tensor stays `u8` in types and checkpoints.

use std::fmt;

pub mod memory;

/// Element types a tensor can declare.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DType {
    F32,
    I64,
    I32,
    U8,
    Bool,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        [DType::F32, DType::I64, DType::I32, DType::U8, DType::Bool]
            .into_iter()
            .find(|d| d.name() == name)
    }

    pub fn is_float(self) -> bool {
        self == DType::F32
    }

    /// Bytes per element as declared (`u8` is one byte).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
            DType::U8 | DType::Bool => 1,
        }
    }

    pub fn is_int(self) -> bool {
        matches!(self, DType::I64 | DType::I32 | DType::U8)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The elements, in row-major order.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
    /// A tensor whose storage matches `dtype` and whose length matches `shape`.
    pub fn new(dtype: DType, shape: Vec<usize>, data: Data) -> Result<Tensor, ShapeError> {
        let ok_kind = matches!(
            (dtype, &data),
            (DType::F32, Data::F32(_))
                | (DType::Bool, Data::Bool(_))
                | (DType::I64 | DType::I32 | DType::U8, Data::I64(_))
        );
        if !ok_kind {
            return Err(ShapeError(format!(
                "{dtype} data stored as {:?}",
                std::mem::discriminant(&data)
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

    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Tensor {
        let n = numel(&shape);
        let data = match dtype {
            DType::F32 => Data::F32(vec![0.0; n]),
            DType::Bool => Data::Bool(vec![false; n]),
            _ => Data::I64(vec![0; n]),
        };
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

    /// The elements converted to f32 (booleans as 0/1).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
            Data::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
        }
    }

    /// Rows `[start, end)` along the first axis.
    pub fn slice_rows(&self, start: usize, end: usize) -> Tensor {
        let row: usize = self.shape.iter().skip(1).product();
        let (a, b) = (start * row, end * row);
        let data = match &self.data {
            Data::F32(v) => Data::F32(v[a..b].to_vec()),
            Data::I64(v) => Data::I64(v[a..b].to_vec()),
            Data::Bool(v) => Data::Bool(v[a..b].to_vec()),
        };
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

    /// The rows at `indices` along the first axis, in that order.
    pub fn gather_rows(&self, indices: &[usize]) -> Tensor {
        let row: usize = self.shape.iter().skip(1).product();
        fn pick<T: Copy>(v: &[T], idx: &[usize], row: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(idx.len() * row);
            for &i in idx {
                out.extend_from_slice(&v[i * row..(i + 1) * row]);
            }
            out
        }
        let data = match &self.data {
            Data::F32(v) => Data::F32(pick(v, indices, row)),
            Data::I64(v) => Data::I64(pick(v, indices, row)),
            Data::Bool(v) => Data::Bool(pick(v, indices, row)),
        };
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
    }
}
