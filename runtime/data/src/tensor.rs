//! Element types, headers (type + shape) and in-memory tensors shared by all the readers.

use std::fmt;

/// The largest number of elements a file header may declare (2^34).
///
/// Anything larger is treated as a corrupt header rather than a real data set.
pub const MAX_ELEMENTS: u64 = 1 << 34;

/// The type of one element of a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElemType {
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// Signed 16-bit integer.
    I16,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
}

impl ElemType {
    /// The short name used in diagnostics and the language: `"u8"`, `"i8"`, `"i16"`,
    /// `"i32"`, `"i64"`, `"f32"` or `"f64"`.
    pub fn name(self) -> &'static str {
        match self {
            ElemType::U8 => "u8",
            ElemType::I8 => "i8",
            ElemType::I16 => "i16",
            ElemType::I32 => "i32",
            ElemType::I64 => "i64",
            ElemType::F32 => "f32",
            ElemType::F64 => "f64",
        }
    }

    /// The size of one element in bytes.
    pub fn size_bytes(self) -> usize {
        match self {
            ElemType::U8 | ElemType::I8 => 1,
            ElemType::I16 => 2,
            ElemType::I32 | ElemType::F32 => 4,
            ElemType::I64 | ElemType::F64 => 8,
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a probe learns about a file: its element type and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The element type.
    pub elem: ElemType,
    /// The dimensions, outermost first. Empty for a scalar.
    pub shape: Vec<u64>,
}

impl Header {
    /// The number of elements, or `None` if the product of the dimensions overflows.
    pub fn element_count(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// The payload size in bytes, or `None` on overflow.
    pub fn byte_len(&self) -> Option<u64> {
        self.element_count()?
            .checked_mul(self.elem.size_bytes() as u64)
    }
}

/// The elements of a [`Tensor`], in row-major (C) order.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// `u8` elements.
    U8(Vec<u8>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `i16` elements.
    I16(Vec<i16>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `f32` elements.
    F32(Vec<f32>),
    /// `f64` elements.
    F64(Vec<f64>),
}

impl TensorData {
    /// The element type of the data.
    pub fn elem(&self) -> ElemType {
        match self {
            TensorData::U8(_) => ElemType::U8,
            TensorData::I8(_) => ElemType::I8,
            TensorData::I16(_) => ElemType::I16,
            TensorData::I32(_) => ElemType::I32,
            TensorData::I64(_) => ElemType::I64,
            TensorData::F32(_) => ElemType::F32,
            TensorData::F64(_) => ElemType::F64,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::U8(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::I16(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes `bytes` (whose length should be a multiple of the element size; a partial
    /// last element is ignored) as elements of type `elem` in the given byte order.
    pub(crate) fn decode(elem: ElemType, bytes: &[u8], order: ByteOrder) -> TensorData {
        let big = order == ByteOrder::Big;
        match elem {
            ElemType::U8 => TensorData::U8(bytes.to_vec()),
            ElemType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
            ElemType::I16 => TensorData::I16(decode_with(
                bytes,
                if big {
                    i16::from_be_bytes
                } else {
                    i16::from_le_bytes
                },
            )),
            ElemType::I32 => TensorData::I32(decode_with(
                bytes,
                if big {
                    i32::from_be_bytes
                } else {
                    i32::from_le_bytes
                },
            )),
            ElemType::I64 => TensorData::I64(decode_with(
                bytes,
                if big {
                    i64::from_be_bytes
                } else {
                    i64::from_le_bytes
                },
            )),
            ElemType::F32 => TensorData::F32(decode_with(
                bytes,
                if big {
                    f32::from_be_bytes
                } else {
                    f32::from_le_bytes
                },
            )),
            ElemType::F64 => TensorData::F64(decode_with(
                bytes,
                if big {
                    f64::from_be_bytes
                } else {
                    f64::from_le_bytes
                },
            )),
        }
    }
}

/// Byte order of multi-byte elements in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteOrder {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

impl ByteOrder {
    /// The byte order of the machine running this code.
    pub(crate) fn native() -> ByteOrder {
        if cfg!(target_endian = "big") {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        }
    }
}

fn decode_with<T, const N: usize>(bytes: &[u8], conv: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|chunk| {
            let mut raw = [0u8; N];
            raw.copy_from_slice(chunk);
            conv(raw)
        })
        .collect()
}

/// A fully loaded data file.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The element type (always equal to `data.elem()`).
    pub elem: ElemType,
    /// The dimensions, outermost first. Empty for a scalar.
    pub shape: Vec<u64>,
    /// The elements in row-major order; there are as many as the product of `shape`.
    pub data: TensorData,
}

impl Tensor {
    /// Builds a tensor from its parts; the element type is taken from `data`.
    pub fn new(shape: Vec<u64>, data: TensorData) -> Tensor {
        Tensor {
            elem: data.elem(),
            shape,
            data,
        }
    }

    /// The elements as `f32` when the data are floating point (`None` for integers):
    /// what a check for NaN and infinity looks at.
    pub fn to_f32_if_float(&self) -> Option<Vec<f32>> {
        match &self.data {
            TensorData::F32(_) | TensorData::F64(_) => Some(self.to_f32()),
            _ => None,
        }
    }

    /// The elements converted to `f32` (integers and `f64` are rounded to the nearest
    /// representable `f32`).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            TensorData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            TensorData::I8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            TensorData::I16(v) => v.iter().map(|&x| f32::from(x)).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::F32(v) => v.clone(),
            TensorData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The element type and shape.
    pub fn header(&self) -> Header {
        Header {
            elem: self.elem,
            shape: self.shape.clone(),
        }
    }
}

/// Validates a declared shape: returns the element count, or a message if the product of
/// the dimensions overflows or exceeds [`MAX_ELEMENTS`].
pub(crate) fn checked_element_count(shape: &[u64]) -> Result<u64, String> {
    let count = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS);
    count.ok_or_else(|| {
        format!(
            "header declares shape {} which has more than 2^34 elements; the header is probably corrupt",
            format_shape(shape)
        )
    })
}

/// Formats a shape as `[a, b, c]`.
pub(crate) fn format_shape(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes() {
        let all = [
            (ElemType::U8, "u8", 1),
            (ElemType::I8, "i8", 1),
            (ElemType::I16, "i16", 2),
            (ElemType::I32, "i32", 4),
            (ElemType::I64, "i64", 8),
            (ElemType::F32, "f32", 4),
            (ElemType::F64, "f64", 8),
        ];
        for (t, name, size) in all {
            assert_eq!(t.name(), name);
            assert_eq!(t.to_string(), name);
            assert_eq!(t.size_bytes(), size);
        }
    }

    #[test]
    fn decode_both_orders() {
        let le = TensorData::decode(ElemType::I16, &[0x01, 0x02, 0xff, 0xff], ByteOrder::Little);
        assert_eq!(le, TensorData::I16(vec![0x0201, -1]));
        let be = TensorData::decode(ElemType::I32, &[0, 0, 1, 0], ByteOrder::Big);
        assert_eq!(be, TensorData::I32(vec![256]));
        let f = TensorData::decode(ElemType::F64, &2.5f64.to_be_bytes(), ByteOrder::Big);
        assert_eq!(f, TensorData::F64(vec![2.5]));
        let i8s = TensorData::decode(ElemType::I8, &[0xff, 1], ByteOrder::Little);
        assert_eq!(i8s, TensorData::I8(vec![-1, 1]));
    }

    #[test]
    fn to_f32_len_and_header() {
        let t = Tensor::new(vec![3], TensorData::I64(vec![1, -2, 3]));
        assert_eq!(t.elem, ElemType::I64);
        assert_eq!(t.to_f32(), vec![1.0, -2.0, 3.0]);
        assert_eq!(t.len(), 3);
        assert!(!t.is_empty());
        assert_eq!(t.header().shape, vec![3]);
        let e = Tensor::new(vec![0, 4], TensorData::F32(vec![]));
        assert!(e.is_empty());
    }

    #[test]
    fn element_count_limits() {
        assert_eq!(checked_element_count(&[]), Ok(1));
        assert_eq!(checked_element_count(&[2, 3, 4]), Ok(24));
        assert_eq!(checked_element_count(&[1 << 34]), Ok(1 << 34));
        assert!(checked_element_count(&[(1 << 34) + 1]).is_err());
        assert!(checked_element_count(&[u64::MAX, 2]).is_err());
        let h = Header {
            elem: ElemType::F32,
            shape: vec![u64::MAX, 2],
        };
        assert_eq!(h.element_count(), None);
        let h = Header {
            elem: ElemType::F32,
            shape: vec![2, 3],
        };
        assert_eq!(h.byte_len(), Some(24));
    }
}
