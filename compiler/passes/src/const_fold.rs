//! Constant folding: pure ops whose operands are all *splats* (every element the same
//! known value) are evaluated at compile time.
//!
//! A splat is a `const` (a scalar) seen through any chain of `broadcast`, `reshape`,
//! `transpose` and `stop_gradient` ([`splat_value`]). A folded node becomes a `const` if
//! its result is a scalar, and `broadcast(const)` of its shape otherwise (the canonical
//! splat, which is never rewritten again). Folded:
//!
//! - unary and binary elementwise ops, `cast` and `select` of splats;
//! - `reshape`, `transpose`, `broadcast` and `slice` of a splat, and `concat` of splats of
//!   one value (so that chains of layout ops over a constant collapse to one broadcast);
//! - `pad` of a splat with its own value; `reduce_max`/`reduce_min` of a splat; and
//!   `reduce_sum` of a splat: wrapping `n·c` for integers, and for `f32` the sum of `n`
//!   copies accumulated one at a time from `0.0`, as the interpreter does (up to
//!   2^16 terms); an `iota` whose axis has length 1 (all zeros).
//!
//! Results are bit-exact with the reference interpreter: the scalar rules here
//! ([`unary`], [`binary`], [`cast`]) are the interpreter's, written out again so that the
//! compiler does not depend on it. Elements are `f32`, integers wrapped into their dtype,
//! or `bool`; a `const`'s `f64` value becomes an element as the interpreter makes it
//! (rounded to `f32`; truncated toward zero, saturated and wrapped for integers; `!= 0`
//! for `bool`). Nothing is folded that would fail or be inexact at run time: integer
//! division or remainder by zero and `0` to a negative integer power stay in the graph
//! (the run reports them), and so does a result that a `const` cannot hold exactly (an
//! `i64` beyond 2^53 that does not survive the trip through `f64`). Reductions over no
//! elements are left alone.

use dnnc_ir::scalar::{erf, fit, floor_div, floor_mod, int_pow, max_f32, min_f32, sign_f32};
use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceKind, UnaryOp};

use crate::pipeline::Pass;

/// The `const_fold` pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConstFold;

impl Pass for ConstFold {
    fn name(&self) -> &'static str {
        "const_fold"
    }

    fn run(&self, g: &mut Graph) -> Result<bool, String> {
        run(g)
    }
}

/// One element of a tensor whose value is known.
#[derive(Clone, Copy, Debug)]
pub enum Scalar {
    F32(f32),
    /// Any integer dtype, already wrapped into its range.
    Int(i64),
    Bool(bool),
}

/// Bitwise for `f32`: `0.0 != -0.0`, and a NaN equals a NaN with the same bits.
impl PartialEq for Scalar {
    fn eq(&self, other: &Scalar) -> bool {
        match (self, other) {
            (Scalar::F32(a), Scalar::F32(b)) => a.to_bits() == b.to_bits(),
            (Scalar::Int(a), Scalar::Int(b)) => a == b,
            (Scalar::Bool(a), Scalar::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl Scalar {
    /// The element a `const { value, dtype }` holds.
    pub fn from_const(value: f64, dtype: DType) -> Scalar {
        match dtype {
            DType::F32 => Scalar::F32(value as f32),
            DType::Bool => Scalar::Bool(value != 0.0),
            DType::I64 | DType::I32 | DType::U8 => Scalar::Int(fit(dtype, value as i64)),
        }
    }

    /// The `value` of a `const` of `dtype` that holds exactly this element, if any.
    pub fn to_const(self, dtype: DType) -> Option<f64> {
        let value = match self {
            Scalar::F32(x) => f64::from(x),
            Scalar::Int(x) => x as f64,
            Scalar::Bool(b) => f64::from(u8::from(b)),
        };
        (Scalar::from_const(value, dtype) == self).then_some(value)
    }

    /// `0` (of either sign for `f32`).
    pub fn is_zero(self) -> bool {
        match self {
            Scalar::F32(x) => x == 0.0,
            Scalar::Int(x) => x == 0,
            Scalar::Bool(_) => false,
        }
    }

    /// `1`.
    pub fn is_one(self) -> bool {
        match self {
            Scalar::F32(x) => x == 1.0,
            Scalar::Int(x) => x == 1,
            Scalar::Bool(_) => false,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// `op x` for an element `x` of `dtype`; `None` when the op does not apply.
pub fn unary(op: UnaryOp, x: Scalar, dtype: DType) -> Option<Scalar> {
    Some(match x {
        Scalar::F32(x) => Scalar::F32(match op {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Rsqrt => 1.0 / x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sign => sign_f32(x),
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Erf => erf(f64::from(x)) as f32,
            UnaryOp::Floor => x.floor(),
            UnaryOp::Ceil => x.ceil(),
            UnaryOp::Not => return None,
        }),
        Scalar::Int(x) => Scalar::Int(match op {
            UnaryOp::Neg => fit(dtype, x.wrapping_neg()),
            UnaryOp::Abs => fit(dtype, x.wrapping_abs()),
            UnaryOp::Sign => x.signum(),
            _ => return None,
        }),
        Scalar::Bool(b) => match op {
            UnaryOp::Not => Scalar::Bool(!b),
            _ => return None,
        },
    })
}

fn compare<T: PartialOrd>(op: BinaryOp, a: T, b: T) -> Option<bool> {
    Some(match op {
        BinaryOp::Lt => a < b,
        BinaryOp::Le => a <= b,
        BinaryOp::Gt => a > b,
        BinaryOp::Ge => a >= b,
        BinaryOp::Eq => a == b,
        BinaryOp::Ne => a != b,
        _ => return None,
    })
}

/// `x op y` for elements of `dtype` (the operands'); `None` when the op does not apply
/// or would fail at run time (integer division by zero, `0` to a negative power).
pub fn binary(op: BinaryOp, x: Scalar, y: Scalar, dtype: DType) -> Option<Scalar> {
    if op.is_comparison() {
        return Some(Scalar::Bool(match (x, y) {
            (Scalar::F32(a), Scalar::F32(b)) => compare(op, a, b)?,
            (Scalar::Int(a), Scalar::Int(b)) => compare(op, a, b)?,
            (Scalar::Bool(a), Scalar::Bool(b)) => compare(op, a, b)?,
            _ => return None,
        }));
    }
    Some(match (x, y) {
        (Scalar::F32(a), Scalar::F32(b)) => Scalar::F32(match op {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Max => max_f32(a, b),
            BinaryOp::Min => min_f32(a, b),
            BinaryOp::Rem => a - b * (a / b).floor(),
            _ => return None,
        }),
        (Scalar::Int(a), Scalar::Int(b)) => Scalar::Int(fit(
            dtype,
            match op {
                BinaryOp::Add => a.wrapping_add(b),
                BinaryOp::Sub => a.wrapping_sub(b),
                BinaryOp::Mul => a.wrapping_mul(b),
                BinaryOp::Div if b != 0 => floor_div(a, b),
                BinaryOp::Rem if b != 0 => floor_mod(a, b),
                BinaryOp::Pow if a != 0 || b >= 0 => int_pow(a, b),
                BinaryOp::Max => a.max(b),
                BinaryOp::Min => a.min(b),
                _ => return None,
            },
        )),
        (Scalar::Bool(a), Scalar::Bool(b)) => Scalar::Bool(match op {
            BinaryOp::And => a && b,
            BinaryOp::Or => a || b,
            _ => return None,
        }),
        _ => return None,
    })
}

/// `x` converted to `to`: floats to integers truncate toward zero (saturating, NaN to
/// 0) and wrap; integers to `f32` round to nearest (directly, not through `f64`);
/// anything to `bool` is `!= 0`; `bool` to numbers is 0 or 1.
pub fn cast(x: Scalar, to: DType) -> Option<Scalar> {
    Some(match (x, to) {
        (Scalar::F32(v), DType::F32) => Scalar::F32(v),
        (Scalar::F32(v), DType::Bool) => Scalar::Bool(v != 0.0),
        (Scalar::F32(v), _) => Scalar::Int(fit(to, f64::from(v) as i64)),
        (Scalar::Int(v), DType::F32) => Scalar::F32(v as f32),
        (Scalar::Int(v), DType::Bool) => Scalar::Bool(v != 0),
        (Scalar::Int(v), _) => Scalar::Int(fit(to, v)),
        (Scalar::Bool(b), DType::F32) => Scalar::F32(f32::from(u8::from(b))),
        (Scalar::Bool(b), DType::Bool) => Scalar::Bool(b),
        (Scalar::Bool(b), _) => Scalar::Int(i64::from(b)),
    })
}

/// The value of every element of `id`, if it is a splat: a `const`, seen through any
/// chain of `broadcast`, `reshape`, `transpose` and `stop_gradient`.
pub fn splat_value(g: &Graph, id: NodeId) -> Option<Scalar> {
    match g.node(splat_root(g, id)?).op {
        Op::Const { value, dtype } => Some(Scalar::from_const(value, dtype)),
        _ => None,
    }
}

/// The `const` node behind the splat `id` (see [`splat_value`]).
pub fn splat_root(g: &Graph, mut id: NodeId) -> Option<NodeId> {
    loop {
        match &g.node(id).op {
            Op::Const { .. } => return Some(id),
            Op::Broadcast(_) | Op::Reshape(_) | Op::Transpose(_) | Op::StopGradient => {
                id = *g.operands(id).first()?;
            }
            _ => return None,
        }
    }
}

/// The longest float sum folded (it is evaluated term by term, as the interpreter
/// does, so that rounding matches).
const MAX_FLOAT_SUM_TERMS: usize = 1 << 16;

/// Whether `id` is already in the folded form: a `const`, or a `broadcast` of one.
fn is_canonical(g: &Graph, id: NodeId) -> bool {
    match g.node(id).op {
        Op::Const { .. } => true,
        Op::Broadcast(_) => g
            .operands(id)
            .first()
            .is_some_and(|&o| matches!(g.node(o).op, Op::Const { .. })),
        _ => false,
    }
}

/// The value every element of `id` has, if its operands are splats and its op can be
/// evaluated here.
fn fold(g: &Graph, id: NodeId) -> Option<Scalar> {
    let node = g.node(id);
    let ops = g.operands(id);
    let splat = |i: usize| ops.get(i).and_then(|&o| splat_value(g, o));
    let dtype_of = |i: usize| g.ty(ops[i]).dtype;
    match &node.op {
        Op::Unary(u) => unary(*u, splat(0)?, dtype_of(0)),
        Op::Binary(b) => binary(*b, splat(0)?, splat(1)?, dtype_of(0)),
        Op::Select => {
            let (a, b) = (splat(1)?, splat(2)?);
            Some(if splat(0)?.as_bool()? { a } else { b })
        }
        Op::Cast(to) => cast(splat(0)?, *to),
        Op::Reshape(_) | Op::Transpose(_) | Op::Broadcast(_) | Op::Slice { .. } => splat(0),
        Op::Concat { .. } => {
            let first = splat(0)?;
            (0..ops.len())
                .all(|i| splat(i) == Some(first))
                .then_some(first)
        }
        Op::Pad { value, .. } => {
            let pad = Scalar::from_const(*value, node.ty.dtype);
            if g.ty(ops[0]).numel() == 0 {
                return Some(pad);
            }
            let x = splat(0)?;
            (x == pad).then_some(x)
        }
        Op::Reduce { kind, axes, .. } => {
            let x = splat(0)?;
            let shape = &g.ty(ops[0]).shape;
            let count: usize = axes.iter().map(|&a| shape[a]).product();
            if count == 0 {
                return None;
            }
            match (kind, x) {
                (ReduceKind::Max | ReduceKind::Min, _) => Some(x),
                (ReduceKind::Sum, Scalar::Int(v)) => {
                    let n = i64::try_from(count).ok()?;
                    Some(Scalar::Int(fit(node.ty.dtype, v.wrapping_mul(n))))
                }
                (ReduceKind::Sum, Scalar::F32(v)) if count <= MAX_FLOAT_SUM_TERMS => {
                    // The interpreter's order: from 0.0, one term at a time.
                    let mut acc = 0.0f32;
                    for _ in 0..count {
                        acc += v;
                    }
                    Some(Scalar::F32(acc))
                }
                _ => None,
            }
        }
        Op::Iota {
            dtype, shape, axis, ..
        } if shape.get(*axis) == Some(&1) => Some(Scalar::from_const(0.0, *dtype)),
        _ => None,
    }
}

/// Adds the canonical splat of `value` with type `ty` for node `id`, reusing the `const`
/// behind one of its operands if that holds the same element; `None` if a `const`
/// cannot hold `value` exactly.
fn materialize(
    g: &mut Graph,
    id: NodeId,
    value: Scalar,
    ty: &dnnc_ir::TensorType,
) -> Result<Option<NodeId>, String> {
    let reuse = g.operands(id).into_iter().find_map(|o| {
        let root = splat_root(g, o)?;
        let same = matches!(g.node(root).op, Op::Const { value: v, dtype }
            if dtype == ty.dtype && Scalar::from_const(v, dtype) == value);
        same.then_some(root)
    });
    let c = match reuse {
        Some(c) => c,
        None => {
            let Some(v) = value.to_const(ty.dtype) else {
                return Ok(None);
            };
            let op = Op::Const {
                value: v,
                dtype: ty.dtype,
            };
            g.add(op, &[])?
        }
    };
    if ty.shape.is_empty() {
        return Ok(Some(c));
    }
    g.add(Op::Broadcast(ty.shape.clone()), &[c]).map(Some)
}

/// Folds every node that can be folded; returns whether any was.
pub fn run(g: &mut Graph) -> Result<bool, String> {
    let mut changed = false;
    for id in g.topo_order()? {
        if !g.contains(id) || !g.node(id).op.is_pure() || is_canonical(g, id) {
            continue;
        }
        let Some(value) = fold(g, id) else {
            continue;
        };
        let ty = g.ty(id).clone();
        if let Some(new) = materialize(g, id, value, &ty)? {
            g.replace_uses(id, new);
            g.remove(id);
            changed = true;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnnc_ir::print::to_text;

    fn c(g: &mut Graph, value: f64, dtype: DType) -> NodeId {
        g.add(Op::Const { value, dtype }, &[]).unwrap()
    }

    #[test]
    fn scalar_rules() {
        let f = |x: f32| Scalar::F32(x);
        let i = Scalar::Int;
        assert_eq!(
            binary(BinaryOp::Add, f(1.5), f(2.0), DType::F32),
            Some(f(3.5))
        );
        assert_eq!(binary(BinaryOp::Div, i(-7), i(2), DType::I64), Some(i(-4)));
        assert_eq!(binary(BinaryOp::Rem, i(-7), i(2), DType::I64), Some(i(1)));
        assert_eq!(binary(BinaryOp::Div, i(1), i(0), DType::I64), None);
        assert_eq!(binary(BinaryOp::Rem, i(1), i(0), DType::I32), None);
        assert_eq!(binary(BinaryOp::Pow, i(0), i(-1), DType::I64), None);
        assert_eq!(binary(BinaryOp::Pow, i(2), i(-1), DType::I64), Some(i(0)));
        assert_eq!(
            binary(BinaryOp::Add, i(200), i(100), DType::U8),
            Some(i(44))
        );
        assert_eq!(
            binary(BinaryOp::Rem, f(-7.5), f(2.0), DType::F32),
            Some(f(0.5))
        );
        let nan = binary(BinaryOp::Max, f(f32::NAN), f(1.0), DType::F32).unwrap();
        assert!(matches!(nan, Scalar::F32(x) if x.is_nan()));
        assert_eq!(
            binary(BinaryOp::Lt, f(f32::NAN), f(1.0), DType::F32),
            Some(Scalar::Bool(false))
        );
        assert_eq!(
            binary(BinaryOp::Ne, f(f32::NAN), f(f32::NAN), DType::F32),
            Some(Scalar::Bool(true))
        );
        assert_eq!(unary(UnaryOp::Neg, i(-128), DType::U8), Some(i(128)));
        assert_eq!(
            unary(UnaryOp::Neg, i(i64::from(i32::MIN)), DType::I32),
            Some(i(i64::from(i32::MIN)))
        );
        assert_eq!(unary(UnaryOp::Sign, f(-0.0), DType::F32), Some(f(0.0)));
        assert_eq!(unary(UnaryOp::Exp, i(1), DType::I64), None);
        assert_eq!(cast(f(-1.7), DType::I64), Some(i(-1)));
        assert_eq!(cast(f(-1.0), DType::U8), Some(i(255)));
        assert_eq!(cast(f(f32::NAN), DType::I32), Some(i(0)));
        assert_eq!(cast(f(f32::NAN), DType::Bool), Some(Scalar::Bool(true)));
        assert_eq!(cast(i(300), DType::U8), Some(i(44)));
        assert_eq!(cast(Scalar::Bool(true), DType::F32), Some(f(1.0)));
        assert_eq!(cast(i(i64::MAX - 2), DType::F32), Some(f(9.223372e18)));
        // Directly, not through f64: that would round twice, to 2^60.
        assert_eq!(
            cast(i((1 << 60) + (1 << 36) + 1), DType::F32),
            Some(f(((1u64 << 60) + (1 << 37)) as f32))
        );
    }

    #[test]
    fn erf_matches_reference_values() {
        for (x, want) in [
            (0.5, 0.520_499_877_813_046_5),
            (-1.5, -0.966_105_146_475_310_7),
        ] {
            assert!((erf(x) - want).abs() < 1e-15);
        }
        assert_eq!(erf(7.0), 1.0);
    }

    #[test]
    fn consts_round_trip_exactly() {
        assert_eq!(Scalar::from_const(0.5, DType::I64), Scalar::Int(0));
        assert_eq!(Scalar::from_const(256.0, DType::U8), Scalar::Int(0));
        assert_eq!(
            Scalar::Int(i64::MAX).to_const(DType::I64),
            Some(i64::MAX as f64)
        );
        assert_eq!(Scalar::Int((1 << 53) + 1).to_const(DType::I64), None);
        assert_eq!(
            Scalar::F32(0.1).to_const(DType::F32),
            Some(f64::from(0.1f32))
        );
        assert_ne!(Scalar::F32(0.0), Scalar::F32(-0.0));
        assert_eq!(Scalar::F32(f32::NAN), Scalar::F32(f32::NAN));
    }

    #[test]
    fn folds_scalar_arithmetic() {
        let mut g = Graph::new("t");
        let a = c(&mut g, 2.0, DType::F32);
        let b = c(&mut g, 3.0, DType::F32);
        let s = g.add(Op::Binary(BinaryOp::Mul), &[a, b]).unwrap();
        let n = g.add(Op::Unary(UnaryOp::Neg), &[s]).unwrap();
        let k = g.add(Op::Cast(DType::I32), &[n]).unwrap();
        g.set_output("k", k);
        assert!(run(&mut g).unwrap());
        crate::dce::run(&mut g);
        assert!(dnnc_ir::verify(&g).is_ok());
        assert_eq!(
            to_text(&g),
            "graph t {\n  %0 = const -6.0 : i32[]\n  output k = %0\n}\n"
        );
        assert!(!run(&mut g).unwrap());
    }

    #[test]
    fn folds_splats_to_a_broadcast() {
        let mut g = Graph::new("t");
        let one = c(&mut g, 1.0, DType::F32);
        let ones = g.add(Op::Broadcast(vec![2, 3]), &[one]).unwrap();
        let two = c(&mut g, 2.0, DType::F32);
        let twos = g.add(Op::Broadcast(vec![2, 3]), &[two]).unwrap();
        let sum = g.add(Op::Binary(BinaryOp::Add), &[ones, twos]).unwrap();
        let t = g.add(Op::Transpose(vec![1, 0]), &[sum]).unwrap();
        g.set_output("y", t);
        assert!(run(&mut g).unwrap());
        crate::dce::run(&mut g);
        assert!(dnnc_ir::verify(&g).is_ok());
        let text = to_text(&g);
        assert!(
            text.ends_with("%0 = const 3.0 : f32[]\n  %1 = broadcast [3, 2] %0 : f32[3, 2]\n  output y = %1\n}\n"),
            "{text}"
        );
    }

    #[test]
    fn leaves_run_time_failures_and_random_alone() {
        let mut g = Graph::new("t");
        let a = c(&mut g, 1.0, DType::I64);
        let z = c(&mut g, 0.0, DType::I64);
        let d = g.add(Op::Binary(BinaryOp::Div), &[a, z]).unwrap();
        let r = g
            .add(
                Op::Random {
                    dist: dnnc_ir::Dist::Normal {
                        mean: 0.0,
                        std: 1.0,
                    },
                    shape: vec![],
                    salt: 1,
                },
                &[a],
            )
            .unwrap();
        g.set_output("d", d);
        g.set_output("r", r);
        assert!(!run(&mut g).unwrap());
    }

    #[test]
    fn folds_reductions_of_splats_but_not_of_other_values() {
        let mut g = Graph::new("t");
        let x = g
            .add(
                Op::Input {
                    name: "x".into(),
                    dtype: DType::F32,
                    shape: vec![3],
                },
                &[],
            )
            .unwrap();
        let one = c(&mut g, 1.0, DType::F32);
        let ones = g.add(Op::Broadcast(vec![3]), &[one]).unwrap();
        let y = g.add(Op::Binary(BinaryOp::Add), &[x, ones]).unwrap();
        g.set_output("y", y);
        assert!(!run(&mut g).unwrap());
        let s = g
            .add(
                Op::Reduce {
                    kind: ReduceKind::Sum,
                    axes: vec![0],
                    keepdims: false,
                },
                &[ones],
            )
            .unwrap();
        g.set_output("s", s);
        let tenth = c(&mut g, 0.1, DType::F32);
        let tenths = g.add(Op::Broadcast(vec![3]), &[tenth]).unwrap();
        let t = g
            .add(
                Op::Reduce {
                    kind: ReduceKind::Sum,
                    axes: vec![0],
                    keepdims: false,
                },
                &[tenths],
            )
            .unwrap();
        g.set_output("t", t);
        let m = g
            .add(
                Op::Reduce {
                    kind: ReduceKind::Max,
                    axes: vec![0],
                    keepdims: true,
                },
                &[ones],
            )
            .unwrap();
        g.set_output("m", m);
        assert!(run(&mut g).unwrap());
        let m = g.output("m").unwrap();
        assert_eq!(g.node(m).op, Op::Broadcast(vec![1]));
        assert_eq!(splat_value(&g, m), Some(Scalar::F32(1.0)));
        let s = g.output("s").unwrap();
        assert_eq!(splat_value(&g, s), Some(Scalar::F32(3.0)));
        // Summed term by term in f32: not 3 * 0.1 rounded once.
        let t = g.output("t").unwrap();
        let want = 0.0f32 + 0.1 + 0.1 + 0.1;
        assert_eq!(splat_value(&g, t), Some(Scalar::F32(want)));
    }
}
