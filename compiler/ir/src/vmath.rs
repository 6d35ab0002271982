//! `f32` `exp`, `log`, `tanh` and `erf` as straight-line programs of basic IEEE operations —
//! one definition that every engine runs: the interpreter and constant folding
//! evaluate the program ([`eval`]), the native backends translate it op by op into
//! vector instructions (Cranelift's `f32x4`, LLVM's `<16 x float>`), so compiled loops
//! stay bit-identical to the interpreter while computing four or sixteen values at a
//! time instead of calling a scalar function per element.
//!
//! The algorithms are Cephes' (`expf`, `logf`, `tanhf`): a range reduction, a short
//! polynomial, and a scaling by a power of two; their error is within 2 ulp of the
//! exact result over the whole range, with IEEE behaviour at the edges (NaN in, NaN
//! out; `exp` overflows to infinity and underflows gradually through the subnormals to
//! zero; `log` of 0 is -infinity, of a negative number NaN, of infinity infinity;
//! `tanh` keeps the sign of zero and saturates to ±1). There is no fused multiply-add:
//! every operation rounds once, in the order written.

use std::sync::OnceLock;

/// An operand: the index of an earlier operation of the program.
pub type Reg = usize;

/// How two values compare (ordered, except `Ne`, which holds for NaN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Eq,
    Ne,
}

/// One operation. Values are `f32`, except the masks made by `Cmp`, which only
/// `Select` reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MathOp {
    /// The argument.
    Input,
    Const(f32),
    Add(Reg, Reg),
    Sub(Reg, Reg),
    Mul(Reg, Reg),
    Div(Reg, Reg),
    Neg(Reg),
    Abs(Reg),
    Floor(Reg),
    /// `2^n` for an integral `n` in `[-126, 127]`, exactly: the bits of
    /// `n + 1.5·2²³ + 127` (whose low mantissa bits are `n + 127`) shifted into the
    /// exponent field — an addition and a shift, no conversion to an integer.
    Pow2(Reg),
    /// The exponent `e` of a positive normal `x = m · 2^e` with `m` in `[0.5, 1)`.
    Exponent(Reg),
    /// The mantissa `m` of a positive normal `x = m · 2^e`, in `[0.5, 1)`.
    Mantissa(Reg),
    /// A mask: whether `a` compares to `b` so.
    Cmp(Cmp, Reg, Reg),
    /// `mask ? a : b`.
    Select(Reg, Reg, Reg),
}

/// A program; its result is the value of its last operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub ops: Vec<MathOp>,
}

/// The functions defined here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MathFn {
    Exp,
    Log,
    Tanh,
    /// `scalar::sign`: -1, 0 or 1 (NaN for NaN; `±0` gives `+0`).
    Sign,
    /// The error function of `f32` (GELU's): a rational approximation.
    Erf,
}

impl MathFn {
    /// The function's program.
    pub fn program(self) -> &'static Program {
        static EXP: OnceLock<Program> = OnceLock::new();
        static LOG: OnceLock<Program> = OnceLock::new();
        static TANH: OnceLock<Program> = OnceLock::new();
        static SIGN: OnceLock<Program> = OnceLock::new();
        static ERF: OnceLock<Program> = OnceLock::new();
        match self {
            MathFn::Erf => ERF.get_or_init(|| build(erf)),
            MathFn::Exp => EXP.get_or_init(|| build(exp)),
            MathFn::Log => LOG.get_or_init(|| build(log)),
            MathFn::Tanh => TANH.get_or_init(|| build(tanh)),
            MathFn::Sign => SIGN.get_or_init(|| build(sign)),
        }
    }
}

/// Builds programs: each method appends an operation and returns its register.
pub struct Builder {
    ops: Vec<MathOp>,
}

impl Builder {
    fn push(&mut self, op: MathOp) -> Reg {
        self.ops.push(op);
        self.ops.len() - 1
    }
    fn c(&mut self, v: f32) -> Reg {
        self.push(MathOp::Const(v))
    }
    fn add(&mut self, a: Reg, b: Reg) -> Reg {
        self.push(MathOp::Add(a, b))
    }
    fn sub(&mut self, a: Reg, b: Reg) -> Reg {
        self.push(MathOp::Sub(a, b))
    }
    fn mul(&mut self, a: Reg, b: Reg) -> Reg {
        self.push(MathOp::Mul(a, b))
    }
    fn mulc(&mut self, a: Reg, v: f32) -> Reg {
        let c = self.c(v);
        self.mul(a, c)
    }
    fn addc(&mut self, a: Reg, v: f32) -> Reg {
        let c = self.c(v);
        self.add(a, c)
    }
    /// `c0·xⁿ + c1·xⁿ⁻¹ + ... + cn` by Estrin's scheme (no fused multiply-add):
    /// neighbouring coefficients are paired as `lo + hi·x`, those pairs as
    /// `lo + hi·x²`, and so on — Horner's operations and `⌈log₂ n⌉ − 1` squarings
    /// (`x²`, `x⁴`, ...), but a dependency chain of `log₂ n` steps instead of `n`, so
    /// that a vector loop's out-of-order window holds more of its iterations at once.
    fn poly(&mut self, x: Reg, coefs: &[f32]) -> Reg {
        let mut terms: Vec<Reg> = coefs.iter().rev().map(|&k| self.c(k)).collect();
        let mut power = x;
        while terms.len() > 1 {
            let paired = terms
                .chunks(2)
                .map(|pair| match *pair {
                    [lo, hi] => {
                        let t = self.mul(hi, power);
                        self.add(lo, t)
                    }
                    [lo] => lo,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
            terms = paired;
            if terms.len() > 1 {
                power = self.mul(power, power);
            }
        }
        terms[0]
    }
    fn cmp(&mut self, c: Cmp, a: Reg, b: Reg) -> Reg {
        self.push(MathOp::Cmp(c, a, b))
    }
    fn select(&mut self, m: Reg, a: Reg, b: Reg) -> Reg {
        self.push(MathOp::Select(m, a, b))
    }
    /// `x` raised to `lo` where it is below (a comparison and a select, cheaper in
    /// vector code than IEEE `maximum`; NaN and `-0` pass through unchanged).
    fn at_least(&mut self, x: Reg, lo: f32) -> Reg {
        let lo = self.c(lo);
        let below = self.cmp(Cmp::Lt, x, lo);
        self.select(below, lo, x)
    }
    /// `x` lowered to `hi` where it is above (NaN passes through).
    fn at_most(&mut self, x: Reg, hi: f32) -> Reg {
        let hi = self.c(hi);
        let above = self.cmp(Cmp::Lt, hi, x);
        self.select(above, hi, x)
    }
}

fn build(f: fn(&mut Builder, Reg) -> Reg) -> Program {
    let mut b = Builder { ops: Vec::new() };
    let x = b.push(MathOp::Input);
    let r = f(&mut b, x);
    assert_eq!(r, b.ops.len() - 1, "a program ends with its result");
    Program { ops: b.ops }
}

/// `e^x` (Cephes `expf`, with gradual underflow).
fn exp(b: &mut Builder, x0: Reg) -> Reg {
    // Below -104 the result is zero: it is computed from 0 instead and replaced at the
    // end, because the underflow of the last product costs a floating-point assist
    // per lane on x86 (softmax's masked scores, all -inf, ran 4x slower). Above 88.8
    // it is infinity; clamping keeps `n` in range.
    let lo = b.c(-104.0);
    let zero = b.c(0.0);
    let vanishes = b.cmp(Cmp::Lt, x0, lo);
    let x = b.select(vanishes, zero, x0);
    let x = b.at_most(x, 88.8);
    // x = n·ln 2 + r, |r| ≤ ln2 / 2, with ln 2 in two parts for an exact product.
    let t = b.mulc(x, std::f32::consts::LOG2_E);
    let t = b.addc(t, 0.5);
    let n = b.push(MathOp::Floor(t));
    let c1 = b.mulc(n, 0.693_359_4);
    let r = b.sub(x, c1);
    let c2 = b.mulc(n, -2.121_944_4e-4);
    let r = b.sub(r, c2);
    let z = b.mul(r, r);
    let p = b.poly(
        r,
        &[
            1.987_569_1e-4,
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            5e-1,
        ],
    );
    let p = b.mul(p, z);
    let p = b.add(p, r);
    let p = b.addc(p, 1.0);
    // p · 2^n as (p · 2^n1) · 2^n2: each factor is a normal number, and the one
    // rounding of the second product underflows gradually.
    let half = b.mulc(n, 0.5);
    let n1 = b.push(MathOp::Floor(half));
    let n2 = b.sub(n, n1);
    let s1 = b.push(MathOp::Pow2(n1));
    let s2 = b.push(MathOp::Pow2(n2));
    let y = b.mul(p, s1);
    let y = b.mul(y, s2);
    b.select(vanishes, zero, y)
}

/// The natural logarithm (Cephes `logf`; subnormals scaled up first).
fn log(b: &mut Builder, x: Reg) -> Reg {
    let min_normal = b.c(f32::MIN_POSITIVE);
    let small = b.cmp(Cmp::Lt, x, min_normal);
    let scaled = b.mulc(x, 8_388_608.0);
    let xs = b.select(small, scaled, x);
    let e0 = b.push(MathOp::Exponent(xs));
    let m23 = b.c(-23.0);
    let zero = b.c(0.0);
    let adj = b.select(small, m23, zero);
    let e = b.add(e0, adj);
    let m = b.push(MathOp::Mantissa(xs));
    // m in [√½, √2) after moving a factor 2 from e when m < √½.
    let sqrth = b.c(std::f32::consts::FRAC_1_SQRT_2);
    let low = b.cmp(Cmp::Lt, m, sqrth);
    let e_low = b.addc(e, -1.0);
    let e = b.select(low, e_low, e);
    let m2 = b.add(m, m);
    let m_low = b.addc(m2, -1.0);
    let m_high = b.addc(m, -1.0);
    let m = b.select(low, m_low, m_high);
    let z = b.mul(m, m);
    let p = b.poly(
        m,
        &[
            7.037_683_6e-2,
            -1.151_461e-1,
            1.167_699_9e-1,
            -1.242_014_1e-1,
            1.424_932_3e-1,
            -1.666_805_8e-1,
            2.000_071_4e-1,
            -2.499_999_4e-1,
            3.333_333e-1,
        ],
    );
    let y = b.mul(p, m);
    let y = b.mul(y, z);
    let t = b.mulc(e, -2.121_944_4e-4);
    let y = b.add(y, t);
    let hz = b.mulc(z, 0.5);
    let y = b.sub(y, hz);
    let r = b.add(m, y);
    let t = b.mulc(e, 0.693_359_4);
    let r = b.add(r, t);
    // The edges: log 0 = -inf, log x = NaN for x < 0, log inf = inf, NaN stays NaN.
    let inf = b.c(f32::INFINITY);
    let is_inf = b.cmp(Cmp::Eq, x, inf);
    let r = b.select(is_inf, inf, r);
    let neg_inf = b.c(f32::NEG_INFINITY);
    let is_zero = b.cmp(Cmp::Eq, x, zero);
    let r = b.select(is_zero, neg_inf, r);
    let nan = b.c(f32::NAN);
    let negative = b.cmp(Cmp::Lt, x, zero);
    let r = b.select(negative, nan, r);
    let is_nan = b.cmp(Cmp::Ne, x, x);
    b.select(is_nan, x, r)
}

/// The hyperbolic tangent (Cephes `tanhf`): a polynomial below 0.625, else
/// `1 - 2 / (e^2|x| + 1)` with the sign of `x`.
fn tanh(b: &mut Builder, x: Reg) -> Reg {
    let a = b.push(MathOp::Abs(x));
    let z = b.mul(x, x);
    let p = b.poly(
        z,
        &[
            -5.704_988_7e-3,
            2.063_909e-2,
            -5.373_971_6e-2,
            1.333_144_2e-1,
            -3.333_328e-1,
        ],
    );
    // x · (1 + z·p): the sign of zero survives (x + x·z·p would turn -0 into +0).
    let p = b.mul(p, z);
    let p = b.addc(p, 1.0);
    let small = b.mul(x, p);
    let a2 = b.add(a, a);
    let e = exp(b, a2);
    let e1 = b.addc(e, 1.0);
    let two = b.c(2.0);
    let q = b.push(MathOp::Div(two, e1));
    let one = b.c(1.0);
    let t = b.sub(one, q);
    let nt = b.push(MathOp::Neg(t));
    let zero = b.c(0.0);
    let negative = b.cmp(Cmp::Lt, x, zero);
    let large = b.select(negative, nt, t);
    let bound = b.c(0.625);
    let is_small = b.cmp(Cmp::Lt, a, bound);
    b.select(is_small, small, large)
}

/// The error function: `x` clamped to `[-4, 4]` (beyond, `erf` is ±1 in `f32`), then
/// the odd rational function `x·P(x²) / Q(x²)` of Eigen's and TensorFlow's `float`
/// `erf`, pinned near ±1 (below); within 5·10⁻⁷ of the exact value everywhere
/// (checked against the series of `scalar::erf`).
fn erf(b: &mut Builder, x0: Reg) -> Reg {
    let x = b.at_least(x0, -4.0);
    let x = b.at_most(x, 4.0);
    let x2 = b.mul(x, x);
    let p = b.poly(
        x2,
        &[
            -2.726_142_3e-10,
            2.770_681_4e-8,
            -2.101_024e-6,
            -5.692_506_4e-5,
            -7.349_906_3e-4,
            -2.954_6e-3,
            -1.609_603_3e-2,
        ],
    );
    let p = b.mul(p, x);
    let q = b.poly(
        x2,
        &[
            -1.456_607_2e-5,
            -2.133_740_6e-4,
            -1.682_827e-3,
            -7.373_329_3e-3,
            -1.426_473_9e-2,
        ],
    );
    let r = b.push(MathOp::Div(p, q));
    // Near ±1 the rational function overshoots by an ulp: it is capped at the `f32`
    // just below 1 (the exact `erf` rounds to ±1 only beyond 3.92), so the result
    // stays monotone.
    let a = b.push(MathOp::Abs(x0));
    let zero = b.c(0.0);
    let negative = b.cmp(Cmp::Lt, x0, zero);
    let r = b.at_most(r, 0.999_999_94);
    let r = b.at_least(r, -0.999_999_94);
    let one = b.c(1.0);
    let minus = b.c(-1.0);
    let unit = b.select(negative, minus, one);
    let edge = b.c(3.92);
    let saturated = b.cmp(Cmp::Lt, edge, a);
    b.select(saturated, unit, r)
}

/// The sign of `x` as `scalar::sign` defines it.
fn sign(b: &mut Builder, x: Reg) -> Reg {
    let zero = b.c(0.0);
    let one = b.c(1.0);
    let minus = b.c(-1.0);
    let negative = b.cmp(Cmp::Lt, x, zero);
    let s = b.select(negative, minus, zero);
    let positive = b.cmp(Cmp::Lt, zero, x);
    let s = b.select(positive, one, s);
    let is_nan = b.cmp(Cmp::Ne, x, x);
    b.select(is_nan, x, s)
}

/// `2^n` for an integral `n` in `[-126, 127]`, as [`MathOp::Pow2`] computes it.
fn pow2(n: f32) -> f32 {
    f32::from_bits((n + POW2_MAGIC).to_bits() << 23)
}

/// `1.5·2²³ + 127`: adding it to an integral `n` in `[-126, 127]` is exact and leaves
/// `n + 127` in the low mantissa bits (the bits above are shifted out by `<< 23`).
pub const POW2_MAGIC: f32 = 12_583_039.0;

/// Runs `p` on `x`: the reference every backend's translation matches bit for bit.
pub fn eval(p: &Program, x: f32) -> f32 {
    let mut v = [0.0f32; 96];
    let mut m = [false; 96];
    assert!(
        p.ops.len() <= v.len(),
        "a math program has at most 96 operations"
    );
    for (i, op) in p.ops.iter().enumerate() {
        v[i] = match *op {
            MathOp::Input => x,
            MathOp::Const(c) => c,
            MathOp::Add(a, b) => v[a] + v[b],
            MathOp::Sub(a, b) => v[a] - v[b],
            MathOp::Mul(a, b) => v[a] * v[b],
            MathOp::Div(a, b) => v[a] / v[b],
            MathOp::Neg(a) => -v[a],
            MathOp::Abs(a) => v[a].abs(),
            MathOp::Floor(a) => v[a].floor(),
            MathOp::Pow2(a) => pow2(v[a]),
            MathOp::Exponent(a) => ((v[a].to_bits() >> 23) & 0xff) as i32 as f32 - 126.0,
            MathOp::Mantissa(a) => f32::from_bits((v[a].to_bits() & 0x807f_ffff) | 0x3f00_0000),
            MathOp::Cmp(c, a, b) => {
                m[i] = match c {
                    Cmp::Lt => v[a] < v[b],
                    Cmp::Eq => v[a] == v[b],
                    Cmp::Ne => v[a] != v[b],
                };
                0.0
            }
            MathOp::Select(c, a, b) => {
                if m[c] {
                    v[a]
                } else {
                    v[b]
                }
            }
        };
    }
    v[p.ops.len() - 1]
}

/// `e^x` in `f32`, as every engine computes it.
pub fn exp_f32(x: f32) -> f32 {
    eval(MathFn::Exp.program(), x)
}

/// `ln x` in `f32`, as every engine computes it.
pub fn ln_f32(x: f32) -> f32 {
    eval(MathFn::Log.program(), x)
}

/// `erf x` in `f32`, as every engine computes it.
pub fn erf_f32(x: f32) -> f32 {
    eval(MathFn::Erf.program(), x)
}

/// `tanh x` in `f32`, as every engine computes it.
pub fn tanh_f32(x: f32) -> f32 {
    eval(MathFn::Tanh.program(), x)
}

#[cfg(test)]
mod tests {

    #[test]
    fn erf_is_within_5e_7_of_the_series() {
        let mut worst = 0f64;
        for i in -90_000..=90_000 {
            let x = i as f32 * 1e-4;
            let got = f64::from(super::erf_f32(x));
            let want = crate::scalar::erf(f64::from(x));
            worst = worst.max((got - want).abs());
        }
        assert!(worst < 5e-7, "largest error {worst:e}");
        assert!(super::erf_f32(f32::NAN).is_nan());
        assert_eq!(super::erf_f32(f32::INFINITY), 1.0);
        assert_eq!(super::erf_f32(f32::NEG_INFINITY), -1.0);
        assert!(super::erf_f32(-0.0).is_sign_negative());
    }
    use super::*;

    /// The distance in units of the last place between `a` and the exact `want`
    /// (rounded to `f32`).
    fn ulps(a: f32, want: f64) -> u32 {
        let w = want as f32;
        if a == w {
            return 0;
        }
        let key = |x: f32| {
            let b = x.to_bits() as i32;
            if b < 0 {
                i32::MIN - b
            } else {
                b
            }
        };
        (key(a) - key(w)).unsigned_abs()
    }

    /// Inputs across the whole range: every 9973rd bit pattern of the positive and
    /// negative floats.
    fn inputs() -> impl Iterator<Item = f32> {
        (0..u32::MAX / 9973).map(|i| f32::from_bits(i.wrapping_mul(9973)))
    }

    #[test]
    fn exp_is_within_two_ulp_and_handles_the_edges() {
        let mut worst = 0;
        for x in inputs().filter(|x| x.is_finite()) {
            let want = f64::from(x).exp();
            if !(1e-37..=3e38).contains(&want) {
                continue;
            }
            worst = worst.max(ulps(exp_f32(x), want));
        }
        assert!(worst <= 2, "exp: {worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        // Gradual underflow: e^-100 is a subnormal, within one of its units.
        let sub = exp_f32(-100.0);
        assert!(sub > 0.0 && sub < f32::MIN_POSITIVE);
        assert!(ulps(sub, (-100f64).exp()) <= 1);
        assert!(ulps(exp_f32(88.7), f64::from(88.7f32).exp()) <= 2);
    }

    #[test]
    fn log_is_within_two_ulp_and_handles_the_edges() {
        let mut worst = 0;
        for x in inputs().filter(|x| x.is_finite() && *x > 0.0) {
            worst = worst.max(ulps(ln_f32(x), f64::from(x).ln()));
        }
        assert!(worst <= 2, "log: {worst} ulp");
        assert_eq!(ln_f32(1.0), 0.0);
        assert_eq!(ln_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(ln_f32(-0.0), f32::NEG_INFINITY);
        assert!(ln_f32(-1.0).is_nan());
        assert_eq!(ln_f32(f32::INFINITY), f32::INFINITY);
        assert!(ln_f32(f32::NAN).is_nan());
        assert!(ulps(ln_f32(f32::from_bits(1)), f64::from(f32::from_bits(1)).ln()) <= 1);
    }

    #[test]
    fn sign_is_the_scalar_rule() {
        for x in inputs().chain([0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY]) {
            let (got, want) = (eval(MathFn::Sign.program(), x), crate::scalar::sign(x));
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{x}"
            );
        }
    }

    #[test]
    fn tanh_is_within_two_ulp_and_handles_the_edges() {
        let mut worst = 0;
        for x in inputs().filter(|x| x.is_finite()) {
            worst = worst.max(ulps(tanh_f32(x), f64::from(x).tanh()));
        }
        assert!(worst <= 2, "tanh: {worst} ulp");
        assert_eq!(tanh_f32(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh_f32(20.0), 1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
    }
}
