//! Elements in memory: [`Data`] owns them in their real width (an `i8` tensor is one
//! byte per element), [`Slice`] and [`SliceMut`] borrow them. Kernels of every stage —
//! the interpreter, compiled code's Rust kernels, constant folding — work on slices, so
//! that one implementation of each op serves them all.
//!
//! The macros [`with_data!`](crate::with_data), [`with_slice!`](crate::with_slice) and
//! [`with_slice_mut!`](crate::with_slice_mut) run the same generic code for whichever
//! element type a value holds.

use crate::dtype::{bf16, f16, DType, Elem};

/// Owned elements of one type, in row-major order.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

/// Borrowed elements of one type.
#[derive(Clone, Copy, Debug)]
pub enum Slice<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
    I8(&'a [i8]),
    U8(&'a [u8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    Bool(&'a [bool]),
}

/// Mutably borrowed elements of one type.
#[derive(Debug)]
pub enum SliceMut<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    F16(&'a mut [f16]),
    BF16(&'a mut [bf16]),
    I8(&'a mut [i8]),
    U8(&'a mut [u8]),
    I16(&'a mut [i16]),
    I32(&'a mut [i32]),
    I64(&'a mut [i64]),
    Bool(&'a mut [bool]),
}

/// Runs `$body` with `$v` bound to the vector inside a [`Data`] (or `&Data`, or
/// `&mut Data`), whatever its element type.
#[macro_export]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::Data::F32($v) => $body,
            $crate::Data::F64($v) => $body,
            $crate::Data::F16($v) => $body,
            $crate::Data::BF16($v) => $body,
            $crate::Data::I8($v) => $body,
            $crate::Data::U8($v) => $body,
            $crate::Data::I16($v) => $body,
            $crate::Data::I32($v) => $body,
            $crate::Data::I64($v) => $body,
            $crate::Data::Bool($v) => $body,
        }
    };
}

/// [`with_data!`] for a [`Slice`].
#[macro_export]
macro_rules! with_slice {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::Slice::F32($v) => $body,
            $crate::Slice::F64($v) => $body,
            $crate::Slice::F16($v) => $body,
            $crate::Slice::BF16($v) => $body,
            $crate::Slice::I8($v) => $body,
            $crate::Slice::U8($v) => $body,
            $crate::Slice::I16($v) => $body,
            $crate::Slice::I32($v) => $body,
            $crate::Slice::I64($v) => $body,
            $crate::Slice::Bool($v) => $body,
        }
    };
}

/// [`with_data!`] for a [`SliceMut`].
#[macro_export]
macro_rules! with_slice_mut {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::SliceMut::F32($v) => $body,
            $crate::SliceMut::F64($v) => $body,
            $crate::SliceMut::F16($v) => $body,
            $crate::SliceMut::BF16($v) => $body,
            $crate::SliceMut::I8($v) => $body,
            $crate::SliceMut::U8($v) => $body,
            $crate::SliceMut::I16($v) => $body,
            $crate::SliceMut::I32($v) => $body,
            $crate::SliceMut::I64($v) => $body,
            $crate::SliceMut::Bool($v) => $body,
        }
    };
}

/// Runs `$body` with `$a` and `$b` bound to two slices (`Slice`, `SliceMut` or a mix)
/// of the same element type, or evaluates `$else` when their types differ.
#[macro_export]
macro_rules! with_same {
    ($x:expr, $y:expr, $ka:ident, $kb:ident, $a:ident, $b:ident => $body:expr, else $else:expr) => {
        match ($x, $y) {
            ($crate::$ka::F32($a), $crate::$kb::F32($b)) => $body,
            ($crate::$ka::F64($a), $crate::$kb::F64($b)) => $body,
            ($crate::$ka::F16($a), $crate::$kb::F16($b)) => $body,
            ($crate::$ka::BF16($a), $crate::$kb::BF16($b)) => $body,
            ($crate::$ka::I8($a), $crate::$kb::I8($b)) => $body,
            ($crate::$ka::U8($a), $crate::$kb::U8($b)) => $body,
            ($crate::$ka::I16($a), $crate::$kb::I16($b)) => $body,
            ($crate::$ka::I32($a), $crate::$kb::I32($b)) => $body,
            ($crate::$ka::I64($a), $crate::$kb::I64($b)) => $body,
            ($crate::$ka::Bool($a), $crate::$kb::Bool($b)) => $body,
            _ => $else,
        }
    };
}

/// The variant of [`Data`], [`Slice`] and [`SliceMut`] that holds `T`: the inverse of
/// matching on them, for generic code.
pub trait IntoData: Elem {
    fn into_data(v: Vec<Self>) -> Data;
    /// The elements, if `s` holds `T`.
    fn of_slice(s: Slice<'_>) -> Option<&[Self]>;
    /// The elements, if `s` holds `T`.
    fn of_slice_mut(s: SliceMut<'_>) -> Option<&mut [Self]>;
}

macro_rules! into_data {
    ($($t:ty => $d:ident),*) => {$(
        impl IntoData for $t {
            fn into_data(v: Vec<Self>) -> Data {
                Data::$d(v)
            }
            fn of_slice(s: Slice<'_>) -> Option<&[Self]> {
                match s {
                    Slice::$d(v) => Some(v),
                    _ => None,
                }
            }
            fn of_slice_mut(s: SliceMut<'_>) -> Option<&mut [Self]> {
                match s {
                    SliceMut::$d(v) => Some(v),
                    _ => None,
                }
            }
        }
    )*};
}

into_data!(f32 => F32, f64 => F64, f16 => F16, bf16 => BF16, i8 => I8, u8 => U8, i16 => I16,
           i32 => I32, i64 => I64, bool => Bool);

/// Calls `$f::<T>()` (a generic function returning `Data`) for the Rust type `T` of
/// `dtype`.
#[macro_export]
macro_rules! for_dtype {
    ($dtype:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            $crate::DType::F32 => $f::<f32>($($arg),*),
            $crate::DType::F64 => $f::<f64>($($arg),*),
            $crate::DType::F16 => $f::<$crate::f16>($($arg),*),
            $crate::DType::BF16 => $f::<$crate::bf16>($($arg),*),
            $crate::DType::I8 => $f::<i8>($($arg),*),
            $crate::DType::U8 => $f::<u8>($($arg),*),
            $crate::DType::I16 => $f::<i16>($($arg),*),
            $crate::DType::I32 => $f::<i32>($($arg),*),
            $crate::DType::I64 => $f::<i64>($($arg),*),
            $crate::DType::Bool => $f::<bool>($($arg),*),
        }
    };
}

fn zeros_of<T: IntoData>(n: usize) -> Data {
    T::into_data(vec![T::default(); n])
}

fn from_f64_of<T: IntoData>(values: &mut dyn Iterator<Item = f64>) -> Data {
    T::into_data(values.map(T::from_f64).collect())
}

fn from_i64_of<T: IntoData>(values: &mut dyn Iterator<Item = i64>) -> Data {
    T::into_data(values.map(T::from_i64).collect())
}

fn cast_to<T: IntoData>(d: &Data) -> Data {
    with_data!(d, v => T::into_data(v.iter().map(|&x| x.cast::<T>()).collect()))
}

fn le_bytes_of<T: IntoData>(bytes: &[u8]) -> Data {
    let n = T::DTYPE.size_bytes();
    T::into_data(bytes.chunks_exact(n).map(T::read_le).collect())
}

impl Data {
    /// `n` zeros (`false`) of `dtype`.
    pub fn zeros(dtype: DType, n: usize) -> Data {
        for_dtype!(dtype, zeros_of(n))
    }

    /// `values` converted to `dtype` (floats round; integers truncate and wrap; `bool`
    /// is `!= 0`): what a constant of `dtype` holds.
    pub fn from_f64(dtype: DType, values: impl IntoIterator<Item = f64>) -> Data {
        let mut it = values.into_iter();
        for_dtype!(dtype, from_f64_of(&mut it))
    }

    /// `values` converted to `dtype` (integers wrap; floats round directly).
    pub fn from_i64(dtype: DType, values: impl IntoIterator<Item = i64>) -> Data {
        let mut it = values.into_iter();
        for_dtype!(dtype, from_i64_of(&mut it))
    }

    /// Elements of `dtype` from their little-endian bytes (a whole number of them).
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Data {
        for_dtype!(dtype, le_bytes_of(bytes))
    }

    pub fn dtype(&self) -> DType {
        self.as_slice().dtype()
    }

    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_slice(&self) -> Slice<'_> {
        match self {
            Data::F32(v) => Slice::F32(v),
            Data::F64(v) => Slice::F64(v),
            Data::F16(v) => Slice::F16(v),
            Data::BF16(v) => Slice::BF16(v),
            Data::I8(v) => Slice::I8(v),
            Data::U8(v) => Slice::U8(v),
            Data::I16(v) => Slice::I16(v),
            Data::I32(v) => Slice::I32(v),
            Data::I64(v) => Slice::I64(v),
            Data::Bool(v) => Slice::Bool(v),
        }
    }

    pub fn as_slice_mut(&mut self) -> SliceMut<'_> {
        match self {
            Data::F32(v) => SliceMut::F32(v),
            Data::F64(v) => SliceMut::F64(v),
            Data::F16(v) => SliceMut::F16(v),
            Data::BF16(v) => SliceMut::BF16(v),
            Data::I8(v) => SliceMut::I8(v),
            Data::U8(v) => SliceMut::U8(v),
            Data::I16(v) => SliceMut::I16(v),
            Data::I32(v) => SliceMut::I32(v),
            Data::I64(v) => SliceMut::I64(v),
            Data::Bool(v) => SliceMut::Bool(v),
        }
    }

    /// The elements converted to `dtype` (see [`crate::dtype`]).
    pub fn cast(&self, dtype: DType) -> Data {
        for_dtype!(dtype, cast_to(self))
    }

    /// The elements at positions `src`, in that order.
    pub fn take(&self, src: &[usize]) -> Data {
        fn pick<T: IntoData>(v: &[T], src: &[usize]) -> Data {
            T::into_data(src.iter().map(|&i| v[i]).collect())
        }
        with_data!(self, v => pick(v, src))
    }

    /// The elements `start..end`.
    pub fn range(&self, start: usize, end: usize) -> Data {
        fn part<T: IntoData>(v: &[T], start: usize, end: usize) -> Data {
            T::into_data(v[start..end].to_vec())
        }
        with_data!(self, v => part(v, start, end))
    }

    /// The elements as little-endian bytes.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.as_slice().to_le_bytes()
    }

    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_data!(self, v => v.iter().map(|x| x.to_f64()).collect())
    }

    /// The elements as `i64` (floats truncate toward zero).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        with_data!(self, v => v.iter().map(|x| x.to_i64()).collect())
    }

    /// The elements converted to `f32` (booleans as 0 or 1).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            Data::F32(v) => v.clone(),
            other => with_data!(other, v => v.iter().map(|x| x.cast::<f32>()).collect()),
        }
    }
}

impl Slice<'_> {
    pub fn dtype(&self) -> DType {
        match self {
            Slice::F32(_) => DType::F32,
            Slice::F64(_) => DType::F64,
            Slice::F16(_) => DType::F16,
            Slice::BF16(_) => DType::BF16,
            Slice::I8(_) => DType::I8,
            Slice::U8(_) => DType::U8,
            Slice::I16(_) => DType::I16,
            Slice::I32(_) => DType::I32,
            Slice::I64(_) => DType::I64,
            Slice::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        with_slice!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as `f64`.
    pub fn f64_at(&self, i: usize) -> f64 {
        with_slice!(self, v => v[i].to_f64())
    }

    /// Element `i` as `i64` (floats truncate toward zero).
    pub fn i64_at(&self, i: usize) -> i64 {
        with_slice!(self, v => v[i].to_i64())
    }

    /// An owned copy.
    pub fn to_data(&self) -> Data {
        fn own<T: IntoData>(v: &[T]) -> Data {
            T::into_data(v.to_vec())
        }
        with_slice!(self, v => own(v))
    }

    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * self.dtype().size_bytes());
        with_slice!(self, v => v.iter().for_each(|x| x.write_le(&mut out)));
        out
    }
}

impl SliceMut<'_> {
    pub fn dtype(&self) -> DType {
        match self {
            SliceMut::F32(_) => DType::F32,
            SliceMut::F64(_) => DType::F64,
            SliceMut::F16(_) => DType::F16,
            SliceMut::BF16(_) => DType::BF16,
            SliceMut::I8(_) => DType::I8,
            SliceMut::U8(_) => DType::U8,
            SliceMut::I16(_) => DType::I16,
            SliceMut::I32(_) => DType::I32,
            SliceMut::I64(_) => DType::I64,
            SliceMut::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        with_slice_mut!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A shorter-lived reborrow, to pass on while keeping this one.
    pub fn reborrow(&mut self) -> SliceMut<'_> {
        match self {
            SliceMut::F32(v) => SliceMut::F32(v),
            SliceMut::F64(v) => SliceMut::F64(v),
            SliceMut::F16(v) => SliceMut::F16(v),
            SliceMut::BF16(v) => SliceMut::BF16(v),
            SliceMut::I8(v) => SliceMut::I8(v),
            SliceMut::U8(v) => SliceMut::U8(v),
            SliceMut::I16(v) => SliceMut::I16(v),
            SliceMut::I32(v) => SliceMut::I32(v),
            SliceMut::I64(v) => SliceMut::I64(v),
            SliceMut::Bool(v) => SliceMut::Bool(v),
        }
    }

    /// Fills every element with `v` converted to the slice's type.
    pub fn fill_f64(&mut self, v: f64) {
        with_slice_mut!(self, o => o.fill(Elem::from_f64(v)))
    }

    /// Copies `x` in, converting each element (see [`crate::dtype`]).
    pub fn copy_cast(&mut self, x: Slice<'_>) {
        fn conv<S: Elem, T: Elem>(o: &mut [T], x: &[S]) {
            for (o, &a) in o.iter_mut().zip(x) {
                *o = a.cast::<T>();
            }
        }
        with_slice_mut!(self, o => with_slice!(x, v => conv(o, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_widths_and_conversions() {
        let d = Data::from_f64(DType::I8, [300.0, -1.5, 127.0]);
        assert_eq!(d, Data::I8(vec![44, -1, 127]));
        assert_eq!(d.to_le_bytes(), vec![44, 255, 127]);
        assert_eq!(Data::from_le_bytes(DType::I8, &[44, 255, 127]), d);
        assert_eq!(d.cast(DType::U8), Data::U8(vec![44, 255, 127]));
        assert_eq!(d.cast(DType::Bool), Data::Bool(vec![true, true, true]));
        let h = Data::from_f64(DType::F16, [0.1]);
        assert_eq!(h.to_le_bytes().len(), 2);
        assert_eq!(h.cast(DType::F32).to_f32_vec(), vec![0.099975586]);
        assert_eq!(Data::zeros(DType::BF16, 3).len(), 3);
        assert_eq!(Data::from_i64(DType::U8, [256, 257]), Data::U8(vec![0, 1]));
    }
}
