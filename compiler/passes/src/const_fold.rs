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
//!   2^16 terms); an `iota` whose axis has length 1 (all zeros), and a `slice` of an
//!   integer `iota` that keeps one position along its axis (that position: what an
//!   unrolled `scan` over `arange(n)` reads at each step).
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

use crate::error::PassError;
use dnnc_ir::elementwise;
use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceKind, UnaryOp};
use dnnc_tensor::Data;

use crate::pipeline::Pass;

/// The `const_fold` pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConstFold;

impl Pass for ConstFold {
    fn name(&self) -> &'static str {
        "const_fold"
    }

    fn run(&self, g: &mut Graph) -> Result<bool, PassError> {
        run(g)
    }
}

/// One element of a tensor whose value is known, in its element type.
#[derive(Clone, Debug)]
pub struct Scalar(Data);

/// Bitwise: `0.0 != -0.0`, and a NaN equals a NaN with the same bits.
impl PartialEq for Scalar {
    fn eq(&self, other: &Scalar) -> bool {
        self.0.dtype() == other.0.dtype() && self.0.to_le_bytes() == other.0.to_le_bytes()
    }
}

impl Scalar {
    /// The element a `const { value, dtype }` holds.
    pub fn from_const(value: f64, dtype: DType) -> Scalar {
        Scalar(Data::from_f64(dtype, [value]))
    }

    pub fn dtype(&self) -> DType {
        self.0.dtype()
    }

    fn value(&self) -> f64 {
        self.0.as_slice().f64_at(0)
    }

    /// The `value` of a `const` of `dtype` that holds exactly this element, if any.
    pub fn to_const(&self, dtype: DType) -> Option<f64> {
        let value = self.value();
        (Scalar::from_const(value, dtype) == *self).then_some(value)
    }

    /// `0` (of either sign for floats); never a `bool`.
    pub fn is_zero(&self) -> bool {
        self.dtype() != DType::Bool && self.value() == 0.0
    }

    /// `1`; never a `bool`.
    pub fn is_one(&self) -> bool {
        self.dtype() != DType::Bool && self.value() == 1.0
    }

    /// The integer, if this is one (of an integer type).
    pub fn as_int(&self) -> Option<i64> {
        self.dtype().is_int().then(|| self.0.as_slice().i64_at(0))
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.0 {
            Data::Bool(b) => b.first().copied(),
            _ => None,
        }
    }
}

/// `op x` (in `x`'s element type); `None` when the op does not apply.
pub fn unary(op: UnaryOp, x: &Scalar) -> Option<Scalar> {
    let mut out = Data::zeros(x.dtype(), 1);
    elementwise::unary(op, x.0.as_slice(), out.as_slice_mut()).ok()?;
    Some(Scalar(out))
}

/// `x op y`; `None` when the op does not apply or would fail at run time (integer
/// division by zero, `0` to a negative power).
pub fn binary(op: BinaryOp, x: &Scalar, y: &Scalar) -> Option<Scalar> {
    let dtype = if op.is_comparison() {
        DType::Bool
    } else {
        x.dtype()
    };
    let mut out = Data::zeros(dtype, 1);
    elementwise::binary(op, x.0.as_slice(), y.0.as_slice(), out.as_slice_mut()).ok()?;
    Some(Scalar(out))
}

/// `x` converted to `to` ([`dnnc_tensor::dtype`] has the rules).
pub fn cast(x: &Scalar, to: DType) -> Option<Scalar> {
    let mut out = Data::zeros(to, 1);
    elementwise::cast(x.0.as_slice(), out.as_slice_mut()).ok()?;
    Some(Scalar(out))
}

/// The sum of `count` copies of `x`, accumulated as the interpreter does (one term at a
/// time from 0, wrapping for integers, in `f32` for `f16`/`bf16`).
fn sum_of_copies(x: &Scalar, count: usize) -> Option<Scalar> {
    let mut out = Data::zeros(x.dtype(), 1);
    let positions: elementwise::Positions<'_> = &|visit| {
        for _ in 0..count {
            visit(0, 0);
        }
    };
    elementwise::reduce(
        ReduceKind::Sum,
        x.0.as_slice(),
        positions,
        out.as_slice_mut(),
    )
    .ok()?;
    Some(Scalar(out))
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

/// The longest sum folded (it is evaluated term by term, as the interpreter does, so
/// that rounding matches).
const MAX_SUM_TERMS: usize = 1 << 16;

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
    match &node.op {
        Op::Unary(u) => unary(*u, &splat(0)?),
        Op::Binary(b) => binary(*b, &splat(0)?, &splat(1)?),
        Op::Select => {
            let (a, b) = (splat(1)?, splat(2)?);
            Some(if splat(0)?.as_bool()? { a } else { b })
        }
        Op::Cast(to) => cast(&splat(0)?, *to),
        // One position along an `iota`'s axis: that position everywhere.
        Op::Slice { starts, .. } if iota_axis(g, ops[0]).is_some_and(|a| node.ty.shape[a] == 1) => {
            let a = iota_axis(g, ops[0])?;
            Some(Scalar::from_const(starts[a] as f64, node.ty.dtype))
        }
        Op::Reshape(_) | Op::Transpose(_) | Op::Broadcast(_) | Op::Slice { .. } => splat(0),
        Op::Concat { .. } => {
            let first = splat(0)?;
            (0..ops.len())
                .all(|i| splat(i).as_ref() == Some(&first))
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
            match kind {
                ReduceKind::Max | ReduceKind::Min => Some(x),
                ReduceKind::Sum if count <= MAX_SUM_TERMS => sum_of_copies(&x, count),
                ReduceKind::Sum => None,
            }
        }
        Op::Iota {
            dtype, shape, axis, ..
        } if shape.get(*axis) == Some(&1) => Some(Scalar::from_const(0.0, *dtype)),
        _ => None,
    }
}

/// The axis of `id` if it is an `iota` (of an integer type: its values are exact).
fn iota_axis(g: &Graph, id: NodeId) -> Option<usize> {
    match g.node(id).op {
        Op::Iota { dtype, axis, .. } if dtype.is_int() => Some(axis),
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
) -> Result<Option<NodeId>, PassError> {
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
    Ok(Some(g.add(Op::Broadcast(ty.shape.clone()), &[c])?))
}

/// Folds every node that can be folded; returns whether any was.
pub fn run(g: &mut Graph) -> Result<bool, PassError> {
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
    use dnnc_ir::text::to_text;

    fn c(g: &mut Graph, value: f64, dtype: DType) -> NodeId {
        g.add(Op::Const { value, dtype }, &[]).unwrap()
    }

    fn f(x: f32) -> Scalar {
        Scalar(Data::F32(vec![x]))
    }
    fn int(dtype: DType, x: i64) -> Scalar {
        Scalar(Data::from_i64(dtype, [x]))
    }
    fn i(x: i64) -> Scalar {
        int(DType::I64, x)
    }
    fn b(x: bool) -> Scalar {
        Scalar(Data::Bool(vec![x]))
    }

    #[test]
    fn scalar_rules() {
        assert_eq!(binary(BinaryOp::Add, &f(1.5), &f(2.0)), Some(f(3.5)));
        assert_eq!(binary(BinaryOp::Div, &i(-7), &i(2)), Some(i(-4)));
        assert_eq!(binary(BinaryOp::Rem, &i(-7), &i(2)), Some(i(1)));
        assert_eq!(binary(BinaryOp::Div, &i(1), &i(0)), None);
        let i32s = |x| int(DType::I32, x);
        assert_eq!(binary(BinaryOp::Rem, &i32s(1), &i32s(0)), None);
        assert_eq!(binary(BinaryOp::Pow, &i(0), &i(-1)), None);
        assert_eq!(binary(BinaryOp::Pow, &i(2), &i(-1)), Some(i(0)));
        let u8s = |x| int(DType::U8, x);
        assert_eq!(binary(BinaryOp::Add, &u8s(200), &u8s(100)), Some(u8s(44)));
        assert_eq!(binary(BinaryOp::Rem, &f(-7.5), &f(2.0)), Some(f(0.5)));
        let nan = binary(BinaryOp::Max, &f(f32::NAN), &f(1.0)).unwrap();
        assert!(nan.value().is_nan());
        assert_eq!(binary(BinaryOp::Lt, &f(f32::NAN), &f(1.0)), Some(b(false)));
        assert_eq!(
            binary(BinaryOp::Ne, &f(f32::NAN), &f(f32::NAN)),
            Some(b(true))
        );
        assert_eq!(unary(UnaryOp::Neg, &u8s(128)), Some(u8s(128)));
        assert_eq!(
            unary(UnaryOp::Neg, &i32s(i64::from(i32::MIN))),
            Some(i32s(i64::from(i32::MIN)))
        );
        assert_eq!(unary(UnaryOp::Sign, &f(-0.0)), Some(f(0.0)));
        assert_eq!(unary(UnaryOp::Exp, &i(1)), None);
        assert_eq!(cast(&f(-1.7), DType::I64), Some(i(-1)));
        assert_eq!(cast(&f(-1.0), DType::U8), Some(u8s(255)));
        assert_eq!(cast(&f(f32::NAN), DType::I32), Some(i32s(0)));
        assert_eq!(cast(&f(f32::NAN), DType::Bool), Some(b(true)));
        assert_eq!(cast(&i(300), DType::U8), Some(u8s(44)));
        // The i8 of 300 is 44 (it used to be computed in 32 bits).
        assert_eq!(cast(&i(300), DType::I8), Some(int(DType::I8, 44)));
        assert_eq!(cast(&b(true), DType::F32), Some(f(1.0)));
        assert_eq!(cast(&i(i64::MAX - 2), DType::F32), Some(f(9.223372e18)));
        // Directly, not through f64: that would round twice, to 2^60.
        assert_eq!(
            cast(&i((1 << 60) + (1 << 36) + 1), DType::F32),
            Some(f(((1u64 << 60) + (1 << 37)) as f32))
        );
    }

    #[test]
    fn consts_round_trip_exactly() {
        assert_eq!(Scalar::from_const(0.5, DType::I64), i(0));
        assert_eq!(Scalar::from_const(256.0, DType::U8), int(DType::U8, 0));
        assert_eq!(i(i64::MAX).to_const(DType::I64), Some(i64::MAX as f64));
        assert_eq!(i((1 << 53) + 1).to_const(DType::I64), None);
        assert_eq!(f(0.1).to_const(DType::F32), Some(f64::from(0.1f32)));
        assert_ne!(f(0.0), f(-0.0));
        assert_eq!(f(f32::NAN), f(f32::NAN));
        let h = Scalar::from_const(0.1, DType::F16);
        assert_eq!(h.to_const(DType::F16), Some(0.0999755859375));
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
        assert_eq!(splat_value(&g, m), Some(f(1.0)));
        let s = g.output("s").unwrap();
        assert_eq!(splat_value(&g, s), Some(f(3.0)));
        // Summed term by term in f32: not 3 * 0.1 rounded once.
        let t = g.output("t").unwrap();
        let want = 0.0f32 + 0.1 + 0.1 + 0.1;
        assert_eq!(splat_value(&g, t), Some(f(want)));
    }

    /// One position of an integer `iota` along its axis is that position everywhere;
    /// two positions, or a float `iota`, stay.
    #[test]
    fn a_slice_of_an_iota_at_one_position_folds() {
        let mut g = Graph::new("t");
        let iota = |g: &mut Graph, dtype| {
            g.add(
                Op::Iota {
                    dtype,
                    shape: vec![4, 3],
                    axis: 0,
                },
                &[],
            )
            .unwrap()
        };
        let slice = |g: &mut Graph, x, from: usize, to: usize| {
            let op = Op::Slice {
                starts: vec![from, 0],
                ends: vec![to, 3],
                steps: vec![1, 1],
            };
            g.add(op, &[x]).unwrap()
        };
        let i = iota(&mut g, DType::I64);
        let one = slice(&mut g, i, 2, 3);
        let two = slice(&mut g, i, 1, 3);
        let fi = iota(&mut g, DType::F32);
        let float = slice(&mut g, fi, 2, 3);
        for (name, n) in [("one", one), ("two", two), ("float", float)] {
            g.set_output(name, n);
        }
        run(&mut g).unwrap();
        let root = |name: &str| splat_value(&g, g.output(name).unwrap());
        assert_eq!(root("one"), Some(int(DType::I64, 2)));
        assert_eq!(root("two"), None);
        assert_eq!(root("float"), None);
    }
}
