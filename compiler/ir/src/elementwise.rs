//! The elementwise kernels of every element type, the one implementation of what
//! `unary`, `binary`, `select`, `cast`, the reductions and `argmax`/`argmin` compute:
//! the interpreter, constant folding (on one-element slices) and compiled code's Rust
//! kernels all call these. Compiled loops compute `f32` ops with native instructions
//! instead, and are tested against these.
//!
//! How each class of element type computes ([`dnnc_tensor::Class`]):
//!
//! - `f32` and `f64` in their own precision; `f16` and `bf16` in `f32`, each result
//!   rounded back (as PyTorch computes half-precision ops on CPUs). Sums of `f16` and
//!   `bf16` accumulate in `f32` and round once at the end.
//! - Integers in `i64`, wrapping, each result wrapped into the type. Division rounds
//!   toward negative infinity; division by zero and `0` to a negative power fail.
//! - `bool` has `not`, `and`, `or`, the comparisons (`false < true`), `max` (any) and
//!   `min` (all) as reductions.

use std::fmt;

use dnnc_tensor::{with_slice, Class, DType, Elem, IntoData, Slice, SliceMut};

use crate::op::{BinaryOp, ReduceKind, UnaryOp};
use crate::scalar::{self, Float, Rule};

/// Why an elementwise kernel did not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElemError {
    /// An integer division or remainder by zero, or `0` to a negative power.
    Arithmetic(&'static str),
    /// The op is not defined on the element type (the shape rule rejects it first).
    NotDefined { op: &'static str, dtype: DType },
    /// Operands and result do not have the types the op needs.
    Types,
}

impl fmt::Display for ElemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElemError::Arithmetic(why) => f.write_str(why),
            ElemError::NotDefined { op, dtype } => write!(f, "`{op}` is not defined on {dtype}"),
            ElemError::Types => f.write_str("operands of the wrong element types"),
        }
    }
}

impl std::error::Error for ElemError {}

type Res = Result<(), ElemError>;

fn not_defined(op: &'static str, dtype: DType) -> ElemError {
    ElemError::NotDefined { op, dtype }
}

/// `out[i] = f(x[i])` for elements computed in `f32` (`f16`, `bf16`).
fn via_f32<T: Elem>(out: &mut [T], x: &[T], f: fn(f32) -> f32) {
    for (o, &a) in out.iter_mut().zip(x) {
        *o = T::from_f64(f64::from(f(a.to_f64() as f32)));
    }
}

fn via_i64<T: Elem>(out: &mut [T], x: &[T], f: fn(i64) -> i64) {
    for (o, &a) in out.iter_mut().zip(x) {
        *o = T::from_i64(f(a.to_i64()));
    }
}

fn map<T: Copy>(out: &mut [T], x: &[T], f: impl Fn(T) -> T) {
    for (o, &a) in out.iter_mut().zip(x) {
        *o = f(a);
    }
}

/// `out = op(x)`; `x` and `out` have the result's element type.
pub fn unary(op: UnaryOp, x: Slice<'_>, out: SliceMut<'_>) -> Res {
    let dtype = x.dtype();
    let missing = || not_defined(op.name(), dtype);
    match (x, out) {
        (Slice::F32(x), SliceMut::F32(o)) => {
            map(o, x, scalar::unary_float(op).ok_or_else(missing)?)
        }
        (Slice::F64(x), SliceMut::F64(o)) => {
            map(o, x, scalar::unary_float(op).ok_or_else(missing)?)
        }
        (Slice::F16(x), SliceMut::F16(o)) => {
            via_f32(o, x, scalar::unary_float(op).ok_or_else(missing)?)
        }
        (Slice::BF16(x), SliceMut::BF16(o)) => {
            via_f32(o, x, scalar::unary_float(op).ok_or_else(missing)?)
        }
        (Slice::I8(x), SliceMut::I8(o)) => {
            via_i64(o, x, scalar::unary_int(op).ok_or_else(missing)?)
        }
        (Slice::U8(x), SliceMut::U8(o)) => {
            via_i64(o, x, scalar::unary_int(op).ok_or_else(missing)?)
        }
        (Slice::I16(x), SliceMut::I16(o)) => {
            via_i64(o, x, scalar::unary_int(op).ok_or_else(missing)?)
        }
        (Slice::I32(x), SliceMut::I32(o)) => {
            via_i64(o, x, scalar::unary_int(op).ok_or_else(missing)?)
        }
        (Slice::I64(x), SliceMut::I64(o)) => {
            via_i64(o, x, scalar::unary_int(op).ok_or_else(missing)?)
        }
        (Slice::Bool(x), SliceMut::Bool(o)) => {
            map(o, x, scalar::unary_bool(op).ok_or_else(missing)?)
        }
        _ => return Err(ElemError::Types),
    }
    Ok(())
}

/// Applies a binary rule computed in `C` (`f32`, `f64`, `i64` or `bool`) to elements of
/// `T`, through `to`/`from`: arithmetic into `out` (of `T`) or comparisons into `cmp`.
fn apply<T: Copy, C: Copy>(
    rule: Rule<C>,
    x: &[T],
    y: &[T],
    out: SliceMut<'_>,
    to: impl Fn(T) -> C,
    from: impl Fn(C) -> T,
    same: impl FnOnce(SliceMut<'_>) -> Option<&mut [T]>,
) -> Res {
    match rule {
        Rule::Arith(f) => {
            let o = same(out).ok_or(ElemError::Types)?;
            for ((o, &a), &b) in o.iter_mut().zip(x).zip(y) {
                *o = from(f(to(a), to(b)));
            }
        }
        Rule::Compare(f) => {
            let SliceMut::Bool(o) = out else {
                return Err(ElemError::Types);
            };
            for ((o, &a), &b) in o.iter_mut().zip(x).zip(y) {
                *o = f(to(a), to(b));
            }
        }
    }
    Ok(())
}

/// The result slice as `&mut [T]` when it holds `T`.
fn as_mut<T: IntoData>(out: SliceMut<'_>) -> Option<&mut [T]> {
    T::of_slice_mut(out)
}

fn float_binary<F: Float + IntoData>(op: BinaryOp, x: &[F], y: &[F], out: SliceMut<'_>) -> Res {
    let rule = scalar::binary_float::<F>(op).ok_or(not_defined(op.name(), F::DTYPE))?;
    apply(rule, x, y, out, |a| a, |a| a, as_mut::<F>)
}

fn half_binary<T: IntoData>(op: BinaryOp, x: &[T], y: &[T], out: SliceMut<'_>) -> Res {
    let rule = scalar::binary_float::<f32>(op).ok_or(not_defined(op.name(), T::DTYPE))?;
    apply(
        rule,
        x,
        y,
        out,
        |a| a.to_f64() as f32,
        |a| T::from_f64(f64::from(a)),
        as_mut::<T>,
    )
}

fn int_binary<T: IntoData>(op: BinaryOp, x: &[T], y: &[T], out: SliceMut<'_>) -> Res {
    let rule = scalar::binary_int(op).ok_or(not_defined(op.name(), T::DTYPE))?;
    if let Some(why) = x
        .iter()
        .zip(y)
        .find_map(|(a, b)| scalar::int_operands_fail(op, a.to_i64(), b.to_i64()))
    {
        return Err(ElemError::Arithmetic(why));
    }
    apply(rule, x, y, out, |a| a.to_i64(), T::from_i64, as_mut::<T>)
}

/// `out = x op y`; `x` and `y` have the operands' element type, `out` the result's
/// (`bool` for comparisons).
pub fn binary(op: BinaryOp, x: Slice<'_>, y: Slice<'_>, out: SliceMut<'_>) -> Res {
    match (x, y) {
        (Slice::F32(x), Slice::F32(y)) => float_binary(op, x, y, out),
        (Slice::F64(x), Slice::F64(y)) => float_binary(op, x, y, out),
        (Slice::F16(x), Slice::F16(y)) => half_binary(op, x, y, out),
        (Slice::BF16(x), Slice::BF16(y)) => half_binary(op, x, y, out),
        (Slice::I8(x), Slice::I8(y)) => int_binary(op, x, y, out),
        (Slice::U8(x), Slice::U8(y)) => int_binary(op, x, y, out),
        (Slice::I16(x), Slice::I16(y)) => int_binary(op, x, y, out),
        (Slice::I32(x), Slice::I32(y)) => int_binary(op, x, y, out),
        (Slice::I64(x), Slice::I64(y)) => int_binary(op, x, y, out),
        (Slice::Bool(x), Slice::Bool(y)) => {
            let rule = scalar::binary_bool(op).ok_or(not_defined(op.name(), DType::Bool))?;
            apply(rule, x, y, out, |a| a, |a| a, as_mut::<bool>)
        }
        _ => Err(ElemError::Types),
    }
}

/// `out[i] = c[i] ? a[i] : b[i]`.
pub fn select(c: &[bool], a: Slice<'_>, b: Slice<'_>, out: SliceMut<'_>) -> Res {
    fn pick<T: IntoData>(c: &[bool], a: &[T], b: &[T], out: SliceMut<'_>) -> Res {
        let o = as_mut::<T>(out).ok_or(ElemError::Types)?;
        for (((o, &c), &a), &b) in o.iter_mut().zip(c).zip(a).zip(b) {
            *o = if c { a } else { b };
        }
        Ok(())
    }
    dnnc_tensor::with_same!(a, b, Slice, Slice, a, b => pick(c, a, b, out), else Err(ElemError::Types))
}

/// `out = x` converted to `out`'s element type ([`dnnc_tensor::dtype`] has the rules).
pub fn cast(x: Slice<'_>, mut out: SliceMut<'_>) -> Res {
    if x.len() != out.len() {
        return Err(ElemError::Types);
    }
    out.copy_cast(x);
    Ok(())
}

/// The value a reduction starts from, in the accumulator of its element type.
fn identity<A: Accumulator>(kind: ReduceKind) -> A {
    match kind {
        ReduceKind::Sum => A::ZERO,
        ReduceKind::Max => A::LOWEST,
        ReduceKind::Min => A::HIGHEST,
    }
}

/// What a reduction accumulates in: `f32` (also for `f16` and `bf16`), `f64`, `i64`
/// (integers, wrapping) or `bool`.
trait Accumulator: Copy {
    const ZERO: Self;
    const LOWEST: Self;
    const HIGHEST: Self;
    fn combine(kind: ReduceKind, a: Self, b: Self) -> Option<Self>;
}

impl Accumulator for f32 {
    const ZERO: f32 = 0.0;
    const LOWEST: f32 = f32::NEG_INFINITY;
    const HIGHEST: f32 = f32::INFINITY;
    fn combine(kind: ReduceKind, a: f32, b: f32) -> Option<f32> {
        Some(match kind {
            ReduceKind::Sum => a + b,
            ReduceKind::Max => scalar::max(a, b),
            ReduceKind::Min => scalar::min(a, b),
        })
    }
}

impl Accumulator for f64 {
    const ZERO: f64 = 0.0;
    const LOWEST: f64 = f64::NEG_INFINITY;
    const HIGHEST: f64 = f64::INFINITY;
    fn combine(kind: ReduceKind, a: f64, b: f64) -> Option<f64> {
        Some(match kind {
            ReduceKind::Sum => a + b,
            ReduceKind::Max => scalar::max(a, b),
            ReduceKind::Min => scalar::min(a, b),
        })
    }
}

impl Accumulator for i64 {
    const ZERO: i64 = 0;
    const LOWEST: i64 = i64::MIN;
    const HIGHEST: i64 = i64::MAX;
    fn combine(kind: ReduceKind, a: i64, b: i64) -> Option<i64> {
        Some(match kind {
            ReduceKind::Sum => a.wrapping_add(b),
            ReduceKind::Max => a.max(b),
            ReduceKind::Min => a.min(b),
        })
    }
}

impl Accumulator for bool {
    const ZERO: bool = false;
    const LOWEST: bool = false;
    const HIGHEST: bool = true;
    fn combine(kind: ReduceKind, a: bool, b: bool) -> Option<bool> {
        match kind {
            ReduceKind::Sum => None,
            ReduceKind::Max => Some(a | b),
            ReduceKind::Min => Some(a & b),
        }
    }
}

/// How the elements of a reduction's input map to its result: calls `visit(src, dst)`
/// for every input element, in row-major order of the input.
pub type Positions<'a> = &'a dyn Fn(&mut dyn FnMut(usize, usize));

fn reduce_with<T: Elem, A: Accumulator>(
    kind: ReduceKind,
    x: &[T],
    positions: Positions<'_>,
    out: &mut [T],
    to: impl Fn(T) -> A,
    from: impl Fn(A) -> T,
    scratch: Option<&mut Vec<A>>,
) -> Res {
    if A::combine(kind, identity(kind), identity(kind)).is_none() {
        return Err(not_defined("reduce_sum", T::DTYPE));
    }
    match scratch {
        // Accumulate in a wider type, round once.
        Some(acc) => {
            acc.clear();
            acc.resize(out.len(), identity(kind));
            positions(&mut |s, d| acc[d] = A::combine(kind, acc[d], to(x[s])).unwrap_or(acc[d]));
            for (o, &a) in out.iter_mut().zip(acc.iter()) {
                *o = from(a);
            }
        }
        None => {
            out.fill(from(identity(kind)));
            positions(&mut |s, d| {
                out[d] = from(A::combine(kind, to(out[d]), to(x[s])).unwrap_or(to(out[d])))
            });
        }
    }
    Ok(())
}

/// `out[dst] ⊕= x[src]` for every pair `positions` gives, from the reduction's
/// identity; `x` and `out` have the same element type. Sums of `f16` and `bf16`
/// accumulate in `f32` (in a scratch vector); integer sums wrap.
pub fn reduce(kind: ReduceKind, x: Slice<'_>, positions: Positions<'_>, out: SliceMut<'_>) -> Res {
    let none_f32: Option<&mut Vec<f32>> = None;
    match (x, out) {
        (Slice::F32(x), SliceMut::F32(o)) => {
            reduce_with(kind, x, positions, o, |a| a, |a| a, none_f32)
        }
        (Slice::F64(x), SliceMut::F64(o)) => {
            reduce_with::<f64, f64>(kind, x, positions, o, |a| a, |a| a, None)
        }
        (Slice::F16(x), SliceMut::F16(o)) => reduce_with(
            kind,
            x,
            positions,
            o,
            |a| a.to_f32(),
            dnnc_tensor::f16::from_f32,
            Some(&mut Vec::new()),
        ),
        (Slice::BF16(x), SliceMut::BF16(o)) => reduce_with(
            kind,
            x,
            positions,
            o,
            |a| a.to_f32(),
            dnnc_tensor::bf16::from_f32,
            Some(&mut Vec::new()),
        ),
        (Slice::I8(x), SliceMut::I8(o)) => int_reduce(kind, x, positions, o),
        (Slice::U8(x), SliceMut::U8(o)) => int_reduce(kind, x, positions, o),
        (Slice::I16(x), SliceMut::I16(o)) => int_reduce(kind, x, positions, o),
        (Slice::I32(x), SliceMut::I32(o)) => int_reduce(kind, x, positions, o),
        (Slice::I64(x), SliceMut::I64(o)) => int_reduce(kind, x, positions, o),
        (Slice::Bool(x), SliceMut::Bool(o)) => {
            reduce_with::<bool, bool>(kind, x, positions, o, |a| a, |a| a, None)
        }
        _ => Err(ElemError::Types),
    }
}

fn int_reduce<T: Elem>(kind: ReduceKind, x: &[T], positions: Positions<'_>, out: &mut [T]) -> Res {
    // The identities of max and min are the type's own extremes.
    let (lo, hi) = T::DTYPE.int_range().ok_or(ElemError::Types)?;
    let start = match kind {
        ReduceKind::Sum => 0,
        ReduceKind::Max => lo,
        ReduceKind::Min => hi,
    };
    out.fill(T::from_i64(start));
    positions(&mut |s, d| {
        let r = i64::combine(kind, out[d].to_i64(), x[s].to_i64()).unwrap_or(0);
        out[d] = T::from_i64(r);
    });
    Ok(())
}

/// For `x` viewed as `[before, size, after]`, the index along the middle axis of the
/// first largest (`max`) or smallest element, for every `(before, after)` pair; a NaN
/// counts as more extreme than any number (as `torch.argmax` has it).
pub fn arg_extreme(max: bool, x: Slice<'_>, dims: (usize, usize, usize), out: &mut [i64]) {
    fn run<T: Elem>(max: bool, v: &[T], dims: (usize, usize, usize), out: &mut [i64]) {
        let float = T::DTYPE.class() == Class::Float;
        let better = |a: T, best: T| -> bool {
            if float {
                let (a, b) = (a.to_f64(), best.to_f64());
                !b.is_nan() && (a.is_nan() || if max { a > b } else { a < b })
            } else if max {
                a > best
            } else {
                a < best
            }
        };
        let (before, size, after) = dims;
        for b in 0..before {
            for a in 0..after {
                let at = |j: usize| v[(b * size + j) * after + a];
                let mut best = 0;
                for j in 1..size {
                    if better(at(j), at(best)) {
                        best = j;
                    }
                }
                out[b * after + a] = best as i64;
            }
        }
    }
    with_slice!(x, v => run(max, v, dims, out))
}

/// For `x` viewed as `[before, size, after]`, the indices that sort each line along
/// the middle axis, ascending or `descending`, stably (equal elements keep their
/// order); a NaN is larger than any number (as `torch.sort` has it: last ascending,
/// first descending). Integers compare exactly. Allocates nothing after a thread's
/// first call (the line's index buffer is kept per thread).
pub fn arg_sort(descending: bool, x: Slice<'_>, dims: (usize, usize, usize), out: &mut [i64]) {
    use std::cmp::Ordering;
    thread_local! {
        static LINE: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    fn run<T: Elem>(descending: bool, v: &[T], dims: (usize, usize, usize), out: &mut [i64]) {
        let float = T::DTYPE.class() == Class::Float;
        let (before, size, after) = dims;
        let order = |a: T, b: T| -> Ordering {
            if float {
                let (x, y) = (a.to_f64(), b.to_f64());
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    (false, false) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                }
            } else {
                a.partial_cmp(&b).unwrap_or(Ordering::Equal)
            }
        };
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            for b in 0..before {
                for a in 0..after {
                    let at = |j: usize| v[(b * size + j) * after + a];
                    line.clear();
                    line.extend(0..size);
                    // Unstable, with the index breaking ties: stable, and no buffer.
                    line.sort_unstable_by(|&i, &j| {
                        let o = order(at(i), at(j));
                        (if descending { o.reverse() } else { o }).then(i.cmp(&j))
                    });
                    for (j, &i) in line.iter().enumerate() {
                        out[(b * size + j) * after + a] = i as i64;
                    }
                }
            }
        });
    }
    with_slice!(x, v => run(descending, v, dims, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnnc_tensor::Data;

    #[test]
    fn arg_sort_is_stable_with_nan_as_the_largest() {
        let x = Data::F32(vec![3.0, f32::NAN, 1.0, 3.0, -2.0]);
        let mut out = vec![0i64; 5];
        arg_sort(false, x.as_slice(), (1, 5, 1), &mut out);
        assert_eq!(out, [4, 2, 0, 3, 1]);
        arg_sort(true, x.as_slice(), (1, 5, 1), &mut out);
        // Descending: NaN first, equal 3.0s in their order.
        assert_eq!(out, [1, 0, 3, 2, 4]);
        // Along the first axis of a [2, 2] matrix: each column on its own.
        let m = Data::I32(vec![5, 1, 2, 7]);
        let mut out = vec![0i64; 4];
        arg_sort(false, m.as_slice(), (1, 2, 2), &mut out);
        assert_eq!(out, [1, 0, 0, 1]);
        // Integers beyond 2^53 compare exactly (as f64 these two are equal).
        let big = Data::I64(vec![(1 << 53) + 1, 1 << 53]);
        let mut out = vec![0i64; 2];
        arg_sort(false, big.as_slice(), (1, 2, 1), &mut out);
        assert_eq!(out, [1, 0]);
        // Against a plain stable sort, on lines with many ties.
        let v: Vec<f32> = (0..300).map(|i| ((i * 7919) % 13) as f32).collect();
        let mut out = vec![0i64; 300];
        arg_sort(true, Data::F32(v.clone()).as_slice(), (1, 300, 1), &mut out);
        let mut want: Vec<usize> = (0..300).collect();
        want.sort_by(|&i, &j| v[j].partial_cmp(&v[i]).unwrap());
        assert_eq!(out, want.iter().map(|&i| i as i64).collect::<Vec<_>>());
    }

    fn un(op: UnaryOp, x: Data) -> Result<Data, ElemError> {
        let mut out = Data::zeros(x.dtype(), x.len());
        unary(op, x.as_slice(), out.as_slice_mut())?;
        Ok(out)
    }

    fn bin(op: BinaryOp, x: Data, y: Data) -> Result<Data, ElemError> {
        let dtype = if op.is_comparison() {
            DType::Bool
        } else {
            x.dtype()
        };
        let mut out = Data::zeros(dtype, x.len());
        binary(op, x.as_slice(), y.as_slice(), out.as_slice_mut())?;
        Ok(out)
    }

    #[test]
    fn integers_wrap_in_their_width() {
        let x = Data::I8(vec![100, -128]);
        assert_eq!(
            bin(BinaryOp::Add, x.clone(), x.clone()).unwrap(),
            Data::I8(vec![-56, 0])
        );
        assert_eq!(
            un(UnaryOp::Neg, x.clone()).unwrap(),
            Data::I8(vec![-100, -128])
        );
        assert_eq!(
            bin(BinaryOp::Div, Data::U8(vec![7]), Data::U8(vec![0])),
            Err(ElemError::Arithmetic("integer division by zero"))
        );
        assert_eq!(
            bin(BinaryOp::Div, Data::I16(vec![-7]), Data::I16(vec![2])).unwrap(),
            Data::I16(vec![-4])
        );
        assert!(un(UnaryOp::Exp, Data::I32(vec![1])).is_err());
    }

    #[test]
    fn halves_compute_in_f32_and_round() {
        let x = Data::from_f64(DType::F16, [1.0, 2049.0]);
        let y = Data::from_f64(DType::F16, [1.0 / 3.0, 1.0]);
        let s = bin(BinaryOp::Add, x, y).unwrap();
        // 1 + 0.333 rounds to f16; 2048 + 1 is a tie that rounds to even.
        assert_eq!(s.to_f64_vec(), vec![1.3330078125, 2048.0]);
        let b = un(UnaryOp::Exp, Data::from_f64(DType::BF16, [1.0])).unwrap();
        assert_eq!(b.to_f64_vec(), vec![2.71875]);
        let c = bin(
            BinaryOp::Lt,
            Data::from_f64(DType::BF16, [1.0, f64::NAN]),
            Data::from_f64(DType::BF16, [2.0, 0.0]),
        )
        .unwrap();
        assert_eq!(c, Data::Bool(vec![true, false]));
    }

    #[test]
    fn floats_propagate_nan_through_max_and_order_zeros() {
        let x = Data::F64(vec![f64::NAN, -0.0, 1.0]);
        let y = Data::F64(vec![1.0, 0.0, 2.0]);
        let m = bin(BinaryOp::Max, x.clone(), y.clone())
            .unwrap()
            .to_f64_vec();
        assert!(m[0].is_nan() && m[1] == 0.0 && !m[1].is_sign_negative() && m[2] == 2.0);
        let m = bin(BinaryOp::Min, x, y).unwrap().to_f64_vec();
        assert!(m[1] == 0.0 && m[1].is_sign_negative());
    }

    #[test]
    fn reductions_and_arg_extremes() {
        let x = Data::U8(vec![200, 100, 3, 4]);
        let mut out = Data::zeros(DType::U8, 2);
        let rows: Positions<'_> = &|f| (0..4).for_each(|i| f(i, i / 2));
        reduce(ReduceKind::Sum, x.as_slice(), rows, out.as_slice_mut()).unwrap();
        assert_eq!(out, Data::U8(vec![44, 7]));
        reduce(ReduceKind::Max, x.as_slice(), rows, out.as_slice_mut()).unwrap();
        assert_eq!(out, Data::U8(vec![200, 4]));
        let h = Data::from_f64(DType::F16, [2048.0, 1.0, 1.0, 0.0]);
        let mut hs = Data::zeros(DType::F16, 1);
        let all: Positions<'_> = &|f| (0..4).for_each(|i| f(i, 0));
        reduce(ReduceKind::Sum, h.as_slice(), all, hs.as_slice_mut()).unwrap();
        // In f32, 2048 + 1 + 1 = 2050, exact in f16; in f16 each +1 would tie back.
        assert_eq!(hs.to_f64_vec(), vec![2050.0]);
        let mut idx = vec![0; 1];
        let f = Data::F32(vec![1.0, f32::NAN, 3.0]);
        arg_extreme(true, f.as_slice(), (1, 3, 1), &mut idx);
        assert_eq!(idx, vec![1]);
        let b = Data::Bool(vec![false, true]);
        let mut bs = Data::zeros(DType::Bool, 1);
        assert!(reduce(ReduceKind::Sum, b.as_slice(), all, bs.as_slice_mut()).is_err());
    }
}
