//! The element types, from the checker to the kernels: one enum, [`DType`], and one
//! trait, [`Elem`], that says how an element of each type is stored and converted.
//!
//! Conversions are those of PyTorch and NumPy (`tensor.to(dtype)`, `astype`):
//!
//! - to a float type, a value rounds to the nearest representable one (ties to even);
//!   integers convert directly, not through a narrower float;
//! - to an integer type, a float is truncated toward zero (saturating at the `i64`
//!   range, NaN to 0) and every integer wraps into the target's range (two's
//!   complement): `300 → i8` is 44, `-1 → u8` is 255;
//! - to `bool`, every value other than 0 is `true` (NaN too); `bool` converts to 0 or 1.

use std::fmt;

pub use half::{bf16, f16};

/// The element type of a tensor.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I8,
    U8,
    I16,
    I32,
    I64,
    Bool,
}

/// How values of a type compute: floats, integers (computed in `i64` and wrapped into
/// the type) or booleans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Float,
    Int,
    Bool,
}

impl DType {
    /// Every element type, in the order of the enum.
    pub const ALL: [DType; 10] = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::Bool,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn class(self) -> Class {
        match self {
            DType::F32 | DType::F64 | DType::F16 | DType::BF16 => Class::Float,
            DType::I8 | DType::U8 | DType::I16 | DType::I32 | DType::I64 => Class::Int,
            DType::Bool => Class::Bool,
        }
    }

    pub fn is_float(self) -> bool {
        self.class() == Class::Float
    }

    pub fn is_int(self) -> bool {
        self.class() == Class::Int
    }

    /// Bytes per element, as stored.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// The smallest and largest value of an integer type (`None` for the others).
    pub fn int_range(self) -> Option<(i64, i64)> {
        Some(match self {
            DType::I8 => (i8::MIN.into(), i8::MAX.into()),
            DType::U8 => (0, u8::MAX.into()),
            DType::I16 => (i16::MIN.into(), i16::MAX.into()),
            DType::I32 => (i32::MIN.into(), i32::MAX.into()),
            DType::I64 => (i64::MIN, i64::MAX),
            _ => return None,
        })
    }

    /// Whether a stored tensor of `self` loads into a parameter of `to`: the same
    /// type, or a float into a float — exactly when `to` is wider, rounded to nearest
    /// when narrower (a model that declares `bf16` parameters loads an `f32`
    /// checkpoint, as PyTorch's `load_state_dict` does).
    pub fn loads_as(self, to: DType) -> bool {
        self == to || (self.is_float() && to.is_float())
    }

    /// Whether an argument of `self` may stand for a parameter of `to` without a
    /// `cast`: integers widen to wider integers; floats never change implicitly.
    pub fn widens_to(self, to: DType) -> bool {
        use DType::*;
        self == to
            || matches!(
                (self, to),
                (U8, I16 | I32 | I64) | (I8, I16 | I32 | I64) | (I16, I32 | I64) | (I32, I64)
            )
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An element of a tensor of type [`Elem::DTYPE`]: how it converts (see the module
/// documentation) and how it is laid out in little-endian bytes.
pub trait Elem: Copy + Default + PartialOrd + Send + Sync + fmt::Debug + 'static {
    const DTYPE: DType;
    /// The value as `f64`: exact, except integers beyond 2^53, which round.
    fn to_f64(self) -> f64;
    /// The value as `i64`: floats truncate toward zero (saturating, NaN to 0).
    fn to_i64(self) -> i64;
    /// `v` converted to this type: floats round, integers truncate and wrap.
    fn from_f64(v: f64) -> Self;
    /// `v` converted to this type: integers wrap, floats round directly.
    fn from_i64(v: i64) -> Self;
    /// The value converted to `T` with the conversions of the module documentation.
    fn cast<T: Elem>(self) -> T {
        match Self::DTYPE.class() {
            Class::Float => T::from_f64(self.to_f64()),
            Class::Int | Class::Bool => T::from_i64(self.to_i64()),
        }
    }
    fn write_le(self, out: &mut Vec<u8>);
    /// The element at the start of `bytes` (which holds at least `size_bytes`).
    fn read_le(bytes: &[u8]) -> Self;
}

macro_rules! int_elem {
    ($t:ty, $d:ident) => {
        impl Elem for $t {
            const DTYPE: DType = DType::$d;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_f64(v: f64) -> Self {
                (v as i64) as $t
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(bytes: &[u8]) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(&bytes[..std::mem::size_of::<$t>()]);
                <$t>::from_le_bytes(b)
            }
        }
    };
}

int_elem!(i8, I8);
int_elem!(u8, U8);
int_elem!(i16, I16);
int_elem!(i32, I32);
int_elem!(i64, I64);

impl Elem for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn from_i64(v: i64) -> Self {
        v as f32
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read_le(bytes: &[u8]) -> Self {
        f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

impl Elem for f64 {
    const DTYPE: DType = DType::F64;
    fn to_f64(self) -> f64 {
        self
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    fn from_i64(v: i64) -> Self {
        v as f64
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read_le(bytes: &[u8]) -> Self {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[..8]);
        f64::from_le_bytes(b)
    }
}

macro_rules! half_elem {
    ($t:ty, $d:ident) => {
        impl Elem for $t {
            const DTYPE: DType = DType::$d;
            fn to_f64(self) -> f64 {
                <$t>::to_f64(self)
            }
            fn to_i64(self) -> i64 {
                <$t>::to_f32(self) as i64
            }
            fn from_f64(v: f64) -> Self {
                <$t>::from_f64(v)
            }
            // Through `f64`, whose 53 bits make the double rounding exact for these
            // 11- and 8-bit significands.
            fn from_i64(v: i64) -> Self {
                <$t>::from_f64(v as f64)
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_bits().to_le_bytes());
            }
            fn read_le(bytes: &[u8]) -> Self {
                <$t>::from_bits(u16::from_le_bytes([bytes[0], bytes[1]]))
            }
        }
    };
}

half_elem!(f16, F16);
half_elem!(bf16, BF16);

impl Elem for bool {
    const DTYPE: DType = DType::Bool;
    fn to_f64(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
    fn read_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

/// `x` wrapped into the range of the integer type `dtype` (two's complement; other
/// types leave it unchanged), as storing it in that type does.
pub fn wrap(dtype: DType, x: i64) -> i64 {
    match dtype {
        DType::I8 => i64::from(x as i8),
        DType::U8 => i64::from(x as u8),
        DType::I16 => i64::from(x as i16),
        DType::I32 => i64::from(x as i32),
        _ => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_wrap_as_pytorch_does() {
        assert_eq!(i8::from_i64(300), 44);
        assert_eq!(u8::from_i64(-1), 255);
        assert_eq!(i16::from_i64(70000), 4464);
        assert_eq!(i32::from_i64(1 << 31), i32::MIN);
        assert_eq!(wrap(DType::I8, 300), 44);
        assert_eq!(wrap(DType::I64, 1 << 40), 1 << 40);
        // Floats truncate toward zero, saturate, NaN to 0, then wrap.
        assert_eq!(i8::from_f64(300.7), 44);
        assert_eq!(i32::from_f64(-2.9), -2);
        assert_eq!(i64::from_f64(f64::NAN), 0);
        assert_eq!(i64::from_f64(1e300), i64::MAX);
        assert_eq!(300.7f32.cast::<i8>(), 44);
    }

    #[test]
    fn floats_round_to_nearest_even() {
        // 2049 lies between f16's 2048 and 2050: ties go to the even significand.
        assert_eq!(f16::from_i64(2049).to_f64(), 2048.0);
        assert_eq!(f16::from_i64(2051).to_f64(), 2052.0);
        assert_eq!(f16::from_f64(1e6).to_f64(), f64::INFINITY);
        assert_eq!(bf16::from_f64(1.0 + 1.0 / 256.0).to_f64(), 1.0);
        // Large integers convert directly: 2^24 + 1 is not an f32, it rounds to 2^24.
        assert_eq!(f32::from_i64((1 << 24) + 1), 16_777_216.0);
        assert_eq!(f32::from_i64(i64::MAX), 9.223_372e18);
        assert!(bool::from_f64(f64::NAN) && !bool::from_f64(-0.0));
        assert_eq!(true.cast::<f16>().to_f64(), 1.0);
    }

    #[test]
    fn bytes_round_trip() {
        let mut out = Vec::new();
        bf16::from_f64(-1.5).write_le(&mut out);
        (-7i16).write_le(&mut out);
        assert_eq!(bf16::read_le(&out).to_f64(), -1.5);
        assert_eq!(i16::read_le(&out[2..]), -7);
    }
}
