//! The scalar semantics of the ops, in one place: every elementwise kernel
//! ([`crate::elementwise`], which the interpreter, constant folding and compiled
//! code's Rust kernels all run) and the helpers compiled loops call are built from
//! these functions. Every `match` on an op here is exhaustive, so a new op cannot be
//! forgotten. Functions the standard library lacks or defines
//! differently: `erf`, floor division and Python-style modulo on integers, integer
//! powers, the float remainder `a - b·floor(a/b)`, NaN-propagating `max`/`min`, and
//! the wrapping of integers into their element type.

use dnnc_tensor::DType;

use crate::{BinaryOp, UnaryOp};

/// `x` wrapped into the range of the integer dtype `dtype` (two's complement; `i64` is
/// unchanged), as a backend storing it in 8, 16 or 32 bits does.
pub fn fit(dtype: DType, x: i64) -> i64 {
    dnnc_tensor::wrap(dtype, x)
}

/// The smallest and largest value of an integer dtype (the identities of max and min).
pub fn int_range(dtype: DType) -> (i64, i64) {
    dtype.int_range().unwrap_or((i64::MIN, i64::MAX))
}

/// For `v` viewed as `[before, size, after]`, the first index along the middle axis of
/// the element that no later one is `better` than, for every `(before, after)` pair.
pub fn arg_extreme<T: Copy>(
    v: &[T],
    dims: (usize, usize, usize),
    better: fn(T, T) -> bool,
) -> Vec<i64> {
    let mut out = vec![0; dims.0 * dims.2];
    arg_extreme_into(&mut out, v, dims, better);
    out
}

/// [`arg_extreme`] into a buffer of `before·after` elements.
pub fn arg_extreme_into<T: Copy>(
    out: &mut [i64],
    v: &[T],
    (before, size, after): (usize, usize, usize),
    better: fn(T, T) -> bool,
) {
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

/// `2/√π`.
const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

/// The error function, accurate to a few units in the last place of `f64`.
///
/// For `|x| < 6` it sums the series `erf(x) = 2/√π · e^{-x²} · Σ_{n≥0} (2x²)^n · x /
/// (1·3·5···(2n+1))` (Abramowitz and Stegun 7.1.6), whose terms are all of one sign,
/// so nothing cancels; it needs at most about 150 terms. For `|x| ≥ 6`,
/// `1 - |erf(x)| < 3·10^-17`, so the result is `±1`. The result is clamped to `[-1, 1]`.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.abs() >= 6.0 {
        return x.signum();
    }
    let x2 = 2.0 * x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term.abs() > 1e-17 * sum.abs() && n < 400.0 {
        n += 1.0;
        term *= x2 / (2.0 * n + 1.0);
        sum += term;
    }
    // Rounding in the sum can overshoot 1 by an ulp or two near |x| = 6.
    (TWO_OVER_SQRT_PI * (-x * x).exp() * sum).clamp(-1.0, 1.0)
}

/// [`erf`] of an `f32`: `vmath`'s program, as every engine computes it.
#[inline]
pub fn erf_f32(x: f32) -> f32 {
    crate::vmath::erf_f32(x)
}

/// Integer division rounding toward negative infinity (Python's `//`), wrapping on
/// `i64::MIN // -1`. Callers reject `b == 0` first; it gives 0 here.
#[inline]
pub fn floor_div(a: i64, b: i64) -> i64 {
    if b == 0 {
        return 0;
    }
    let q = a.wrapping_div(b);
    if a.wrapping_rem(b) != 0 && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }
}

/// The remainder that goes with [`floor_div`] (Python's `%`): it has the sign of `b`.
/// Callers reject `b == 0` first; it gives 0 here.
#[inline]
pub fn floor_mod(a: i64, b: i64) -> i64 {
    if b == 0 {
        return 0;
    }
    let r = a.wrapping_rem(b);
    if r != 0 && ((r < 0) != (b < 0)) {
        r + b
    } else {
        r
    }
}

/// `a` to the power `e`, wrapping. A negative exponent gives `1 / a^|e|` truncated toward
/// zero: `±1` for `a = ±1`, otherwise 0. Callers reject `0` to a negative power first.
pub fn int_pow(a: i64, e: i64) -> i64 {
    if e < 0 {
        return match a {
            1 => 1,
            -1 => {
                if e % 2 == 0 {
                    1
                } else {
                    -1
                }
            }
            _ => 0,
        };
    }
    let (mut base, mut e, mut acc) = (a, e as u64, 1i64);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        e >>= 1;
    }
    acc
}

/// The float types arithmetic is done in: `f32` (also for `f16` and `bf16`, whose
/// results are rounded back) and `f64`.
pub trait Float:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    const NAN: Self;
    const INFINITY: Self;
    fn is_nan(self) -> bool;
    fn is_sign_negative(self) -> bool;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tanh(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    fn powf(self, e: Self) -> Self;
    /// The error function ([`erf`]), rounded once to this type.
    fn erf(self) -> Self;
}

macro_rules! float_impl {
    ($t:ty, $exp:path, $ln:path, $tanh:path, $erf:path) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAN: Self = <$t>::NAN;
            const INFINITY: Self = <$t>::INFINITY;
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            fn is_sign_negative(self) -> bool {
                <$t>::is_sign_negative(self)
            }
            fn exp(self) -> Self {
                $exp(self)
            }
            fn ln(self) -> Self {
                $ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            fn tanh(self) -> Self {
                $tanh(self)
            }
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            fn ceil(self) -> Self {
                <$t>::ceil(self)
            }
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            fn erf(self) -> Self {
                $erf(self)
            }
        }
    };
}

// `f32`'s exp, log, tanh and erf are `vmath`'s programs, which compiled loops
// vectorise; `f64`'s are the platform's (and the series of [`erf`]).
float_impl!(
    f32,
    crate::vmath::exp_f32,
    crate::vmath::ln_f32,
    crate::vmath::tanh_f32,
    crate::vmath::erf_f32
);
float_impl!(f64, f64::exp, f64::ln, f64::tanh, erf);

/// The float remainder with the sign of `b`: `a - b·floor(a/b)`, evaluated as written.
pub fn rem<F: Float>(a: F, b: F) -> F {
    a - b * (a / b).floor()
}

/// The larger of `a` and `b`, NaN if either is NaN, `+0` of `±0` (IEEE 754-2019
/// `maximum`, as Cranelift's `fmax`).
pub fn max<F: Float>(a: F, b: F) -> F {
    if a.is_nan() || b.is_nan() {
        F::NAN
    } else if a > b {
        a
    } else if b > a || a.is_sign_negative() {
        b
    } else {
        a
    }
}

/// The smaller of `a` and `b`, NaN if either is NaN, `-0` of `±0` (IEEE 754-2019
/// `minimum`).
pub fn min<F: Float>(a: F, b: F) -> F {
    if a.is_nan() || b.is_nan() {
        F::NAN
    } else if a < b {
        a
    } else if b < a || !a.is_sign_negative() {
        b
    } else {
        a
    }
}

/// `-1`, `0` or `1` by the sign of `a` (`±0` gives 0, NaN gives NaN).
pub fn sign<F: Float>(a: F) -> F {
    if a.is_nan() {
        F::NAN
    } else if a > F::ZERO {
        F::ONE
    } else if a < F::ZERO {
        -F::ONE
    } else {
        F::ZERO
    }
}

/// [`rem`] in `f32` (called by compiled loops' helpers and kernels).
#[inline]
pub fn rem_f32(a: f32, b: f32) -> f32 {
    rem(a, b)
}

/// [`max`] in `f32`.
#[inline]
pub fn max_f32(a: f32, b: f32) -> f32 {
    max(a, b)
}

/// [`min`] in `f32`.
#[inline]
pub fn min_f32(a: f32, b: f32) -> f32 {
    min(a, b)
}

/// [`sign`] in `f32`.
#[inline]
pub fn sign_f32(a: f32) -> f32 {
    sign(a)
}

/// The float function of a unary op (`None` for `not`, which is `bool` only).
pub fn unary_float<F: Float>(u: UnaryOp) -> Option<fn(F) -> F> {
    Some(match u {
        UnaryOp::Neg => |a| -a,
        UnaryOp::Exp => F::exp,
        UnaryOp::Log => F::ln,
        UnaryOp::Sqrt => F::sqrt,
        UnaryOp::Rsqrt => |a| F::ONE / a.sqrt(),
        UnaryOp::Abs => F::abs,
        UnaryOp::Sign => sign,
        UnaryOp::Sin => F::sin,
        UnaryOp::Cos => F::cos,
        UnaryOp::Tanh => F::tanh,
        UnaryOp::Erf => F::erf,
        UnaryOp::Floor => F::floor,
        UnaryOp::Ceil => F::ceil,
        UnaryOp::Not => return None,
    })
}

/// [`unary_float`] in `f32`.
pub fn unary_f32(u: UnaryOp) -> Option<fn(f32) -> f32> {
    unary_float::<f32>(u)
}

/// The unary ops defined on integers (before wrapping into the dtype).
pub fn unary_int(u: UnaryOp) -> Option<fn(i64) -> i64> {
    Some(match u {
        UnaryOp::Neg => i64::wrapping_neg,
        UnaryOp::Abs => i64::wrapping_abs,
        UnaryOp::Sign => i64::signum,
        UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Sqrt
        | UnaryOp::Rsqrt
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Tanh
        | UnaryOp::Erf
        | UnaryOp::Floor
        | UnaryOp::Ceil
        | UnaryOp::Not => return None,
    })
}

/// The unary ops defined on `bool`.
pub fn unary_bool(u: UnaryOp) -> Option<fn(bool) -> bool> {
    Some(match u {
        UnaryOp::Not => |a| !a,
        UnaryOp::Neg
        | UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Sqrt
        | UnaryOp::Rsqrt
        | UnaryOp::Abs
        | UnaryOp::Sign
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Tanh
        | UnaryOp::Erf
        | UnaryOp::Floor
        | UnaryOp::Ceil => return None,
    })
}

/// An elementwise binary rule: arithmetic keeps the element type, comparisons give
/// `bool`.
#[derive(Clone, Copy)]
pub enum Rule<T> {
    Arith(fn(T, T) -> T),
    Compare(fn(T, T) -> bool),
}

/// The comparison rule of `b`, if it is one: the same for every ordered type (`false <
/// true` for `bool`; NaN compares unequal and unordered).
fn comparison<T: PartialOrd>(b: BinaryOp) -> Option<fn(T, T) -> bool> {
    Some(match b {
        BinaryOp::Lt => |a, b| a < b,
        BinaryOp::Le => |a, b| a <= b,
        BinaryOp::Gt => |a, b| a > b,
        BinaryOp::Ge => |a, b| a >= b,
        BinaryOp::Eq => |a, b| a == b,
        BinaryOp::Ne => |a, b| a != b,
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::Div
        | BinaryOp::Pow
        | BinaryOp::Max
        | BinaryOp::Min
        | BinaryOp::Rem
        | BinaryOp::And
        | BinaryOp::Or => return None,
    })
}

/// The float rule of a binary op (`None` for `and` and `or`).
pub fn binary_float<F: Float>(b: BinaryOp) -> Option<Rule<F>> {
    if let Some(c) = comparison(b) {
        return Some(Rule::Compare(c));
    }
    Some(Rule::Arith(match b {
        BinaryOp::Add => |a, b| a + b,
        BinaryOp::Sub => |a, b| a - b,
        BinaryOp::Mul => |a, b| a * b,
        BinaryOp::Div => |a, b| a / b,
        BinaryOp::Pow => F::powf,
        BinaryOp::Max => max,
        BinaryOp::Min => min,
        BinaryOp::Rem => rem,
        BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::And
        | BinaryOp::Or => return None,
    }))
}

/// The integer rule of a binary op, before wrapping into the dtype. Division and
/// remainder by zero and `0` to a negative power are errors the caller reports first
/// ([`int_operands_fail`]).
pub fn binary_int(b: BinaryOp) -> Option<Rule<i64>> {
    if let Some(c) = comparison(b) {
        return Some(Rule::Compare(c));
    }
    Some(Rule::Arith(match b {
        BinaryOp::Add => i64::wrapping_add,
        BinaryOp::Sub => i64::wrapping_sub,
        BinaryOp::Mul => i64::wrapping_mul,
        BinaryOp::Div => floor_div,
        BinaryOp::Pow => int_pow,
        BinaryOp::Max => i64::max,
        BinaryOp::Min => i64::min,
        BinaryOp::Rem => floor_mod,
        BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::And
        | BinaryOp::Or => return None,
    }))
}

/// Why an integer op fails on `a op b`, if it does: division or remainder by zero, or
/// `0` raised to a negative power.
pub fn int_operands_fail(b: BinaryOp, a: i64, c: i64) -> Option<&'static str> {
    match b {
        BinaryOp::Div | BinaryOp::Rem if c == 0 => Some("integer division by zero"),
        BinaryOp::Pow if a == 0 && c < 0 => Some("integer 0 raised to a negative power"),
        _ => None,
    }
}

/// The `bool` rule of a binary op: logic, and comparisons with `false < true`.
pub fn binary_bool(b: BinaryOp) -> Option<Rule<bool>> {
    if let Some(c) = comparison(b) {
        return Some(Rule::Compare(c));
    }
    Some(Rule::Arith(match b {
        BinaryOp::And => |a, b| a & b,
        BinaryOp::Or => |a, b| a | b,
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::Div
        | BinaryOp::Pow
        | BinaryOp::Max
        | BinaryOp::Min
        | BinaryOp::Rem
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::Eq
        | BinaryOp::Ne => return None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_reference_values() {
        // Reference values to 16 digits (mpmath).
        let cases = [
            (0.0, 0.0),
            (1e-5, 1.128_379_167_057_9e-5),
            (0.1, 0.112_462_916_018_284_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (-1.5, -0.966_105_146_475_310_7),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (4.5, 0.999_999_999_803_383_9),
            (5.9, 0.999_999_999_999_999_9),
            (7.0, 1.0),
            (-30.0, -1.0),
        ];
        for (x, want) in cases {
            let got = erf(x);
            assert!(
                (got - want).abs() <= 1e-15 * want.abs().max(1e-300) + 1e-16,
                "erf({x}) = {got}, want {want}"
            );
        }
        assert!(erf(f64::NAN).is_nan());
        assert_eq!(erf(f64::INFINITY), 1.0);
        // Odd symmetry; the f32 version (vmath's program) is within 5e-7 of the f64 one.
        for i in 0..600 {
            let x = i as f64 / 100.0;
            assert_eq!(erf(-x), -erf(x));
            assert_eq!(erf_f32(-x as f32), -erf_f32(x as f32));
            assert!((f64::from(erf_f32(x as f32)) - erf(f64::from(x as f32))).abs() < 5e-7);
        }
    }

    #[test]
    fn erf_is_bounded_and_its_f32_version_nearly_monotone() {
        let mut prev = -1.0;
        for i in -7000..=7000 {
            let x = i as f32 / 1000.0;
            let y = erf_f32(x);
            // Monotone within 4 ulps of 1 (the rational approximation wobbles near ±1).
            assert!(
                y >= prev - 4.0 * f32::EPSILON && y.abs() <= 1.0 && erf(f64::from(x)).abs() <= 1.0,
                "erf({x}) = {y}"
            );
            prev = y;
        }
    }

    #[test]
    fn integer_division_floors() {
        assert_eq!((floor_div(7, 2), floor_mod(7, 2)), (3, 1));
        assert_eq!((floor_div(-7, 2), floor_mod(-7, 2)), (-4, 1));
        assert_eq!((floor_div(7, -2), floor_mod(7, -2)), (-4, -1));
        assert_eq!((floor_div(-7, -2), floor_mod(-7, -2)), (3, -1));
        assert_eq!((floor_div(6, -3), floor_mod(6, -3)), (-2, 0));
        assert_eq!(
            (floor_div(i64::MIN, -1), floor_mod(i64::MIN, -1)),
            (i64::MIN, 0)
        );
        for a in -20..20 {
            for b in [-7, -3, -1, 1, 2, 5] {
                assert_eq!(floor_div(a, b) * b + floor_mod(a, b), a);
            }
        }
    }

    #[test]
    fn integer_powers() {
        assert_eq!(int_pow(3, 4), 81);
        assert_eq!(int_pow(-2, 3), -8);
        assert_eq!(int_pow(5, 0), 1);
        assert_eq!(int_pow(2, 64), 0);
        assert_eq!(
            (
                int_pow(-1, -3),
                int_pow(-1, -2),
                int_pow(1, -5),
                int_pow(2, -1)
            ),
            (-1, 1, 1, 0)
        );
    }

    #[test]
    fn float_helpers() {
        assert_eq!(rem_f32(7.5, 2.0), 1.5);
        assert_eq!(rem_f32(-7.5, 2.0), 0.5);
        assert_eq!(rem_f32(7.5, -2.0), -0.5);
        assert!(max_f32(f32::NAN, 1.0).is_nan() && max_f32(1.0, f32::NAN).is_nan());
        assert!(min_f32(f32::NAN, 1.0).is_nan() && min_f32(1.0, f32::NAN).is_nan());
        assert_eq!((max_f32(1.0, 2.0), min_f32(1.0, 2.0)), (2.0, 1.0));
        assert_eq!(
            [sign_f32(-3.0), sign_f32(0.0), sign_f32(-0.0), sign_f32(2.0)],
            [-1.0, 0.0, 0.0, 1.0]
        );
        assert!(sign_f32(f32::NAN).is_nan());
    }
}
