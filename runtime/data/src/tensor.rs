//! Headers (element type + shape) shared by all the readers, and the helpers that turn a
//! file's payload into a [`dnnc_tensor::Tensor`].
//!
//! Element types are the workspace's one model, [`DType`]. Loaded elements keep their real
//! width: a `u8` file becomes [`Data::U8`], an `i16` file [`Data::I16`], an `f64` file
//! [`Data::F64`]; nothing is widened or narrowed on the way in.

use std::path::Path;

use dnnc_tensor::{DType, Data, Tensor};

use crate::DataError;

/// The largest number of elements a file header may declare (2^34).
///
/// Anything larger is treated as a corrupt header rather than a real data set.
pub const MAX_ELEMENTS: u64 = 1 << 34;

/// What a probe learns about a file: its element type and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The element type.
    pub elem: DType,
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

/// The element type and shape of a loaded tensor, as a probe of its file reports them.
pub fn header_of(t: &Tensor) -> Header {
    Header {
        elem: t.dtype,
        shape: t.shape.iter().map(|&d| d as u64).collect(),
    }
}

/// The first element of a floating-point tensor that is NaN or infinite, as its index and
/// value (converted to `f64`, which is exact for every float type), or `None` when every
/// element is finite or the tensor holds integers or booleans: what a check that training
/// data are finite looks at.
pub fn non_finite(t: &Tensor) -> Option<(usize, f64)> {
    fn first<T: Copy>(v: &[T], to_f64: impl Fn(T) -> f64) -> Option<(usize, f64)> {
        v.iter()
            .map(|&x| to_f64(x))
            .enumerate()
            .find(|(_, x)| !x.is_finite())
    }
    match &t.data {
        Data::F32(v) => first(v, f64::from),
        Data::F64(v) => first(v, |x| x),
        Data::F16(v) => first(v, |x| x.to_f64()),
        Data::BF16(v) => first(v, |x| x.to_f64()),
        Data::I8(_) | Data::U8(_) | Data::I16(_) | Data::I32(_) | Data::I64(_) | Data::Bool(_) => {
            None
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

/// Decodes `bytes` (whose length should be a multiple of the element size; a partial last
/// element is ignored) as elements of type `dtype` in the given byte order, keeping their
/// real width.
pub(crate) fn decode(dtype: DType, bytes: &[u8], order: ByteOrder) -> Data {
    let size = dtype.size_bytes();
    if order == ByteOrder::Little || size == 1 {
        return Data::from_le_bytes(dtype, bytes);
    }
    let whole = bytes.len() - bytes.len() % size;
    let mut le = bytes[..whole].to_vec();
    for element in le.chunks_exact_mut(size) {
        element.reverse();
    }
    Data::from_le_bytes(dtype, &le)
}

/// Builds the tensor a file at `path` holds from its header and decoded elements.
///
/// The readers validate the shape and the payload length before calling this, so the
/// errors here only guard against a dimension that does not fit in `usize` on this
/// platform or a bug in a reader: bad input never panics.
pub(crate) fn tensor_of(path: &Path, header: &Header, data: Data) -> Result<Tensor, DataError> {
    let shape = header
        .shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| {
            DataError::new(
                path,
                format!(
                    "shape {} does not fit in memory on this platform",
                    format_shape(&header.shape)
                ),
            )
        })?;
    Tensor::new(header.elem, shape, data).map_err(|e| DataError::new(path, e.to_string()))
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
    use dnnc_tensor::{bf16, f16};

    #[test]
    fn names_and_sizes() {
        let all = [
            (DType::U8, "u8", 1),
            (DType::I8, "i8", 1),
            (DType::I16, "i16", 2),
            (DType::I32, "i32", 4),
            (DType::I64, "i64", 8),
            (DType::F32, "f32", 4),
            (DType::F64, "f64", 8),
        ];
        for (t, name, size) in all {
            assert_eq!(t.name(), name);
            assert_eq!(t.to_string(), name);
            assert_eq!(t.size_bytes(), size);
        }
    }

    #[test]
    fn decode_both_orders() {
        let le = decode(DType::I16, &[0x01, 0x02, 0xff, 0xff], ByteOrder::Little);
        assert_eq!(le, Data::I16(vec![0x0201, -1]));
        let be = decode(DType::I32, &[0, 0, 1, 0], ByteOrder::Big);
        assert_eq!(be, Data::I32(vec![256]));
        let f = decode(DType::F64, &2.5f64.to_be_bytes(), ByteOrder::Big);
        assert_eq!(f, Data::F64(vec![2.5]));
        let i8s = decode(DType::I8, &[0xff, 1], ByteOrder::Little);
        assert_eq!(i8s, Data::I8(vec![-1, 1]));
        let u8s = decode(DType::U8, &[0xff, 1], ByteOrder::Big);
        assert_eq!(u8s, Data::U8(vec![255, 1]));
    }

    #[test]
    fn decode_ignores_a_partial_last_element() {
        let be = decode(DType::I16, &[0x01, 0x02, 0x03], ByteOrder::Big);
        assert_eq!(be, Data::I16(vec![0x0102]));
        let le = decode(DType::I32, &[1, 0, 0, 0, 9, 9], ByteOrder::Little);
        assert_eq!(le, Data::I32(vec![1]));
    }

    #[test]
    fn to_f32_len_and_header() {
        let t = Tensor::of(vec![3], Data::I64(vec![1, -2, 3])).unwrap();
        assert_eq!(t.dtype, DType::I64);
        assert_eq!(t.data.to_f32_vec(), vec![1.0, -2.0, 3.0]);
        assert_eq!(t.data.len(), 3);
        assert!(!t.data.is_empty());
        assert_eq!(header_of(&t).shape, vec![3]);
        assert_eq!(header_of(&t).elem, DType::I64);
        let e = Tensor::of(vec![0, 4], Data::F32(vec![])).unwrap();
        assert!(e.data.is_empty());
    }

    #[test]
    fn tensor_of_checks_the_length() {
        let h = Header {
            elem: DType::I16,
            shape: vec![2, 2],
        };
        let p = Path::new("x.idx");
        let t = tensor_of(p, &h, Data::I16(vec![1, 2, 3, 4])).unwrap();
        assert_eq!(t.shape, vec![2, 2]);
        assert_eq!(header_of(&t), h);
        let e = tensor_of(p, &h, Data::I16(vec![1])).unwrap_err();
        assert_eq!(e.path, p);
        let e = tensor_of(p, &h, Data::U8(vec![1, 2, 3, 4])).unwrap_err();
        assert!(e.message.contains("i16"), "{e}");
    }

    #[test]
    fn non_finite_finds_the_first_bad_float() {
        let t = Tensor::f32(vec![4], vec![1.0, f32::NAN, f32::INFINITY, 2.0]).unwrap();
        let (i, v) = non_finite(&t).unwrap();
        assert_eq!(i, 1);
        assert!(v.is_nan());
        let t = Tensor::of(vec![3], Data::F64(vec![1e300, -f64::INFINITY, f64::NAN])).unwrap();
        assert_eq!(non_finite(&t), Some((1, f64::NEG_INFINITY)));
        let t = Tensor::of(vec![2], Data::F16(vec![f16::ONE, f16::INFINITY])).unwrap();
        assert_eq!(non_finite(&t), Some((1, f64::INFINITY)));
        let t = Tensor::of(vec![1], Data::BF16(vec![bf16::NAN])).unwrap();
        assert_eq!(non_finite(&t).map(|(i, _)| i), Some(0));
        let t = Tensor::f32(vec![2], vec![0.0, -3.5]).unwrap();
        assert_eq!(non_finite(&t), None);
        let t = Tensor::of(vec![2], Data::I32(vec![i32::MAX, i32::MIN])).unwrap();
        assert_eq!(non_finite(&t), None);
        let t = Tensor::of(vec![1], Data::U8(vec![255])).unwrap();
        assert_eq!(non_finite(&t), None);
    }

    #[test]
    fn element_count_limits() {
        assert_eq!(checked_element_count(&[]), Ok(1));
        assert_eq!(checked_element_count(&[2, 3, 4]), Ok(24));
        assert_eq!(checked_element_count(&[1 << 34]), Ok(1 << 34));
        assert!(checked_element_count(&[(1 << 34) + 1]).is_err());
        assert!(checked_element_count(&[u64::MAX, 2]).is_err());
        let h = Header {
            elem: DType::F32,
            shape: vec![u64::MAX, 2],
        };
        assert_eq!(h.element_count(), None);
        let h = Header {
            elem: DType::F32,
            shape: vec![2, 3],
        };
        assert_eq!(h.byte_len(), Some(24));
    }
}
