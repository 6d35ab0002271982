//! Algebraic simplification: local rewrites that never make the graph bigger or slower,
//! and [`StripStopGradient`], which removes `stop_gradient` once autodiff is done.
//!
//! In the laws below `0`, `1`, `true` and `false` stand for splats of that value (a
//! `const`, seen through `broadcast`, `reshape`, `transpose` or `stop_gradient`, as
//! [`splat_value`] finds them; integer constants count by the value they hold in their
//! dtype). Every rewrite keeps the node's type: the replacement has exactly the type of
//! the node it replaces, or the rule does not fire.
//!
//! | law | note |
//! |---|---|
//! | `x + 0 = 0 + x = x`, `x - 0 = x` | floats: up to the sign of zero (`-0 + 0` is `+0`) |
//! | `x * 1 = 1 * x = x`, `x / 1 = x` | exact, NaN and infinities included |
//! | `x and true = true and x = x`, `x or false = false or x = x` | |
//! | `max(x, x) = min(x, x) = x`, `x and x = x or x = x` | |
//! | `select(c, x, x) = x`, `select(true, a, b) = a`, `select(false, a, b) = b` | |
//! | `neg(neg x) = x`, `not(not x) = x` | integers wrap, so `neg` is an involution there too |
//! | `cast(x, dtype(x)) = x` | |
//! | `reshape(x, shape(x)) = x`, `reshape(reshape(x, s), t) = reshape(x, t)` | |
//! | `transpose(x, id) = x`, `transpose(transpose(x, p), q) = transpose(x, p∘q)` | `(p∘q)[i] = p[q[i]]`; identity gives `x` |
//! | `(a·b)ᵀ = bᵀ·aᵀ` (the last two axes swapped) | when `a` or `b` is such a transpose (which cancels here; it stays if something else reads it) and the product has no other reader; floats only |
//! | `broadcast(x, shape(x)) = x`, `broadcast(broadcast(x, s), t) = broadcast(x, t)` | broadcasts compose |
//! | `slice(x, 0.., ..shape(x), 1..) = x`, `pad(x, 0, 0) = x`, `concat([x]) = x` | |
//! | `stop_gradient(stop_gradient x) = stop_gradient x` | |
//! | `gather(x, k, axis) = slice(x, k..k+1 along axis)`, `scatter_add(u, k, axis) = pad(u, k, n-1-k)` | one index `k`, a splat within the axis (an unrolled scan over `arange`); reshaped to the node's shape |
//!
//! Deliberately absent: `x * 0 = 0` and `x - x = 0` (false for NaN and infinities),
//! `x + 0` for a splat `x` (that is [`crate::const_fold`]'s job), and anything that
//! removes `stop_gradient` (autodiff needs it; [`StripStopGradient`] runs after).
//!
//! Nodes are visited in topological order; a rewritten node's users are redirected to
//! the replacement and the node is removed. The inner nodes of a composed pair
//! (`reshape(reshape x)`) stay until [`crate::dce`] finds them unused.

use crate::error::PassError;
use dnnc_ir::op::swaps_last_two;
use dnnc_ir::{BinaryOp, Graph, NodeId, Op, UnaryOp};

use crate::const_fold::{splat_value, Scalar};
use crate::pipeline::Pass;

/// The `simplify` pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Simplify;

impl Pass for Simplify {
    fn name(&self) -> &'static str {
        "simplify"
    }

    fn run(&self, g: &mut Graph) -> Result<bool, PassError> {
        run(g)
    }
}

/// The `strip_stop_gradient` pass: `stop_gradient(x) = x`. Only valid once autodiff has
/// run (the standard pipeline runs it first).
#[derive(Clone, Copy, Debug, Default)]
pub struct StripStopGradient;

impl Pass for StripStopGradient {
    fn name(&self) -> &'static str {
        "strip_stop_gradient"
    }

    fn run(&self, g: &mut Graph) -> Result<bool, PassError> {
        strip_stop_gradient(g)
    }
}

/// Replaces every `stop_gradient(x)` by `x`; returns whether there were any.
pub fn strip_stop_gradient(g: &mut Graph) -> Result<bool, PassError> {
    let mut changed = false;
    for id in g.topo_order()? {
        if g.node(id).op == Op::StopGradient {
            let x = g.operands(id)[0];
            g.replace_uses(id, x);
            g.remove(id);
            changed = true;
        }
    }
    Ok(changed)
}

/// Applies the laws of the module documentation; returns whether any fired.
pub fn run(g: &mut Graph) -> Result<bool, PassError> {
    let mut changed = false;
    for id in g.topo_order()? {
        if !g.contains(id) {
            continue;
        }
        let Some(new) = rewrite(g, id) else {
            continue;
        };
        debug_assert_eq!(g.ty(new), g.ty(id));
        g.replace_uses(id, new);
        g.remove(id);
        changed = true;
    }
    Ok(changed)
}

/// `x` with `shape` (`x` itself when it has it already).
fn reshaped(g: &mut Graph, x: NodeId, shape: &[usize]) -> Option<NodeId> {
    if g.ty(x).shape == shape {
        return Some(x);
    }
    g.add(Op::Reshape(shape.to_vec()), &[x]).ok()
}

/// `k` when the indices `idx` are one integer, a splat of `k` within `0..size` (an
/// index out of range stays, and fails at run time as it should).
fn one_index(g: &Graph, idx: NodeId, size: usize) -> Option<usize> {
    if g.ty(idx).numel() != 1 {
        return None;
    }
    let k = splat_value(g, idx)?.as_int()?;
    usize::try_from(k).ok().filter(|&k| k < size)
}

/// The operands `(a, b)` of the product `x` that `id = transpose(x, perm)` swaps the
/// last two axes of, when the law `(a·b)ᵀ = bᵀ·aᵀ` cancels a transpose: `x` is
/// read by `id` alone (and is no output), its element type is a float (integer
/// products read their operands as stored), and `a` or `b` is itself such a transpose
/// (a weight's gradient `(xᵀ·dy)ᵀ = dyᵀ·x`, written in the weight's layout at once).
fn transposed_product(
    g: &Graph,
    id: NodeId,
    x: NodeId,
    perm: &[usize],
) -> Option<(NodeId, NodeId)> {
    if g.node(x).op != Op::MatMul
        || !swaps_last_two(perm)
        || !g.ty(x).dtype.is_float()
        || g.users(x) != [id]
        || g.is_named(x)
    {
        return None;
    }
    let ops = g.operands(x);
    let (a, b) = (ops[0], ops[1]);
    let is_swap = |o: NodeId| matches!(&g.node(o).op, Op::Transpose(p) if swaps_last_two(p));
    (g.ty(a).shape.len() == perm.len()
        && g.ty(b).shape.len() == perm.len()
        && (is_swap(a) || is_swap(b)))
    .then_some((a, b))
}

/// `x` with its last two axes swapped: the operand of a transpose that swaps them, or
/// a new transpose.
fn swapped(g: &mut Graph, x: NodeId) -> Option<NodeId> {
    if let Op::Transpose(p) = &g.node(x).op {
        if swaps_last_two(p) {
            return Some(g.operands(x)[0]);
        }
    }
    let r = g.ty(x).shape.len();
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    g.add(Op::Transpose(perm), &[x]).ok()
}

fn is_identity(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(i, &p)| i == p)
}

/// The replacement for `id`, if a law applies; only ever of `id`'s own type.
fn rewrite(g: &mut Graph, id: NodeId) -> Option<NodeId> {
    let node = g.node(id).clone();
    let ops = g.operands(id);
    let splat = |g: &Graph, i: usize| splat_value(g, ops[i]);
    let new = match &node.op {
        Op::Binary(b) => {
            let (x, y) = (ops[0], ops[1]);
            let (sx, sy) = (splat(g, 0), splat(g, 1));
            let zero = |s: &Option<Scalar>| s.as_ref().is_some_and(Scalar::is_zero);
            let one = |s: &Option<Scalar>| s.as_ref().is_some_and(Scalar::is_one);
            let is = |s: &Option<Scalar>, v: bool| s.as_ref().and_then(Scalar::as_bool) == Some(v);
            match b {
                BinaryOp::Add if zero(&sy) => x,
                BinaryOp::Add if zero(&sx) => y,
                BinaryOp::Sub if zero(&sy) => x,
                BinaryOp::Mul if one(&sy) => x,
                BinaryOp::Mul if one(&sx) => y,
                BinaryOp::Div if one(&sy) => x,
                BinaryOp::And if is(&sy, true) => x,
                BinaryOp::And if is(&sx, true) => y,
                BinaryOp::Or if is(&sy, false) => x,
                BinaryOp::Or if is(&sx, false) => y,
                BinaryOp::Max | BinaryOp::Min | BinaryOp::And | BinaryOp::Or if x == y => x,
                _ => return None,
            }
        }
        Op::Unary(u @ (UnaryOp::Neg | UnaryOp::Not)) => {
            let x = ops[0];
            if g.node(x).op != Op::Unary(*u) {
                return None;
            }
            g.operands(x)[0]
        }
        Op::Select => {
            let (a, b) = (ops[1], ops[2]);
            match splat(g, 0).and_then(|s| s.as_bool()) {
                _ if a == b => a,
                Some(true) => a,
                Some(false) => b,
                None => return None,
            }
        }
        Op::Cast(to) if g.ty(ops[0]).dtype == *to => ops[0],
        Op::Reshape(shape) => {
            let x = ops[0];
            if g.ty(x).shape == *shape {
                x
            } else if let Op::Reshape(_) = g.node(x).op {
                let inner = g.operands(x)[0];
                if g.ty(inner).shape == *shape {
                    inner
                } else {
                    g.add(Op::Reshape(shape.clone()), &[inner]).ok()?
                }
            } else {
                return None;
            }
        }
        Op::Transpose(q) => {
            let x = ops[0];
            if is_identity(q) {
                x
            } else if let Op::Transpose(p) = &g.node(x).op {
                let composed: Vec<usize> = q.iter().map(|&i| p[i]).collect();
                let inner = g.operands(x)[0];
                if is_identity(&composed) {
                    inner
                } else {
                    g.add(Op::Transpose(composed), &[inner]).ok()?
                }
            } else if let Some((a, b)) = transposed_product(g, id, x, q) {
                // `(a·b)ᵀ = bᵀ·aᵀ`, the transposes composed with the operands'.
                let (bt, at) = (swapped(g, b)?, swapped(g, a)?);
                g.add(Op::MatMul, &[bt, at]).ok()?
            } else {
                return None;
            }
        }
        Op::Broadcast(shape) => {
            let x = ops[0];
            if g.ty(x).shape == *shape {
                x
            } else if let Op::Broadcast(_) = g.node(x).op {
                let inner = g.operands(x)[0];
                if g.ty(inner).shape == *shape {
                    inner
                } else {
                    g.add(Op::Broadcast(shape.clone()), &[inner]).ok()?
                }
            } else {
                return None;
            }
        }
        Op::Slice {
            starts,
            ends,
            steps,
        } => {
            let x = ops[0];
            let whole = starts.iter().all(|&s| s == 0)
                && steps.iter().all(|&s| s == 1)
                && *ends == g.ty(x).shape;
            if !whole {
                return None;
            }
            x
        }
        Op::Gather { axis } => {
            let (x, idx) = (ops[0], ops[1]);
            let shape = g.ty(x).shape.clone();
            let k = one_index(g, idx, shape[*axis])?;
            let (mut starts, mut ends) = (vec![0; shape.len()], shape.clone());
            (starts[*axis], ends[*axis]) = (k, k + 1);
            let steps = vec![1; shape.len()];
            let row = g
                .add(
                    Op::Slice {
                        starts,
                        ends,
                        steps,
                    },
                    &[x],
                )
                .ok()?;
            reshaped(g, row, &node.ty.shape)?
        }
        Op::ScatterAdd { axis, shape } => {
            let (updates, idx) = (ops[0], ops[1]);
            let k = one_index(g, idx, shape[*axis])?;
            let mut one = shape.clone();
            one[*axis] = 1;
            let row = reshaped(g, updates, &one)?;
            let (mut lo, mut hi) = (vec![0; shape.len()], vec![0; shape.len()]);
            (lo[*axis], hi[*axis]) = (k, shape[*axis] - 1 - k);
            g.add(Op::Pad { lo, hi, value: 0.0 }, &[row]).ok()?
        }
        Op::Pad { lo, hi, .. } if lo.iter().chain(hi).all(|&p| p == 0) => ops[0],
        Op::Concat { .. } if ops.len() == 1 => ops[0],
        Op::StopGradient if g.node(ops[0]).op == Op::StopGradient => ops[0],
        _ => return None,
    };
    // The laws keep types by construction; this guards the table above.
    (*g.ty(new) == node.ty && new != id).then_some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnnc_ir::text::to_text;
    use dnnc_ir::DType;

    fn input(g: &mut Graph, name: &str, dtype: DType, shape: &[usize]) -> NodeId {
        let op = Op::Input {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
        };
        g.add(op, &[]).unwrap()
    }

    fn splat(g: &mut Graph, value: f64, dtype: DType, shape: &[usize]) -> NodeId {
        let c = g.add(Op::Const { value, dtype }, &[]).unwrap();
        g.add(Op::Broadcast(shape.to_vec()), &[c]).unwrap()
    }

    fn simplified(mut g: Graph) -> Graph {
        run(&mut g).unwrap();
        crate::dce::run(&mut g);
        assert!(dnnc_ir::verify(&g).is_ok(), "{}", to_text(&g));
        assert!(!run(&mut g).unwrap(), "not idempotent:\n{}", to_text(&g));
        g
    }

    #[test]
    fn removes_arithmetic_identities() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[2, 3]);
        let zero = splat(&mut g, 0.0, DType::F32, &[2, 3]);
        let one = splat(&mut g, 1.0, DType::F32, &[2, 3]);
        let a = g.add(Op::Binary(BinaryOp::Add), &[zero, x]).unwrap();
        let m = g.add(Op::Binary(BinaryOp::Mul), &[a, one]).unwrap();
        let d = g.add(Op::Binary(BinaryOp::Div), &[m, one]).unwrap();
        let s = g.add(Op::Binary(BinaryOp::Sub), &[d, zero]).unwrap();
        g.set_output("y", s);
        let g = simplified(g);
        assert_eq!(g.output("y"), Some(x));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn integer_constants_count_by_their_value_in_the_dtype() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::U8, &[4]);
        // 257 wraps to 1 in u8; 0.5 truncates to 0 in u8.
        let one = splat(&mut g, 257.0, DType::U8, &[4]);
        let zero = splat(&mut g, 0.5, DType::U8, &[4]);
        let m = g.add(Op::Binary(BinaryOp::Mul), &[x, one]).unwrap();
        let a = g.add(Op::Binary(BinaryOp::Add), &[m, zero]).unwrap();
        let two = splat(&mut g, 2.0, DType::U8, &[4]);
        let keep = g.add(Op::Binary(BinaryOp::Mul), &[a, two]).unwrap();
        g.set_output("y", keep);
        let g = simplified(g);
        assert_eq!(g.operands(g.output("y").unwrap())[0], x);
    }

    #[test]
    fn does_not_rewrite_x_times_zero() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[2]);
        let zero = splat(&mut g, 0.0, DType::F32, &[2]);
        let m = g.add(Op::Binary(BinaryOp::Mul), &[x, zero]).unwrap();
        g.set_output("y", m);
        assert!(!run(&mut g).unwrap());
    }

    #[test]
    fn a_transposed_product_swaps_its_operands() {
        // A weight's gradient `(xᵀ·dy)ᵀ` is `dyᵀ·x`: one transpose (read in place by
        // the product) instead of two; the values are the interpreter's, exactly.
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[3, 8, 5]);
        let dy = input(&mut g, "dy", DType::F32, &[3, 8, 4]);
        let xt = g.add(Op::Transpose(vec![0, 2, 1]), &[x]).unwrap();
        let m = g.add(Op::MatMul, &[xt, dy]).unwrap();
        let w = g.add(Op::Transpose(vec![0, 2, 1]), &[m]).unwrap();
        g.set_output("dw", w);
        // A product read elsewhere too, or whose operands are no transposes, stays.
        let y = input(&mut g, "y", DType::F32, &[5, 4]);
        let z = input(&mut g, "z", DType::F32, &[4, 6]);
        let p = g.add(Op::MatMul, &[y, z]).unwrap();
        let pt = g.add(Op::Transpose(vec![1, 0]), &[p]).unwrap();
        g.set_output("pt", pt);
        let yt = g.add(Op::Transpose(vec![1, 0]), &[y]).unwrap();
        let q = g.add(Op::MatMul, &[yt, p]).unwrap();
        let qt = g.add(Op::Transpose(vec![1, 0]), &[q]).unwrap();
        g.set_output("qt", qt);
        g.set_output("q", q);
        let before = g.clone();
        let g = simplified(g);
        let dw = g.output("dw").unwrap();
        assert_eq!(g.node(dw).op, Op::MatMul);
        let ops = g.operands(dw);
        assert_eq!(ops[1], x);
        assert_eq!(g.node(ops[0]).op, Op::Transpose(vec![0, 2, 1]));
        assert_eq!(g.operands(ops[0]), vec![dy]);
        assert_eq!(
            g.node(g.output("pt").unwrap()).op,
            Op::Transpose(vec![1, 0])
        );
        assert_eq!(
            g.node(g.output("qt").unwrap()).op,
            Op::Transpose(vec![1, 0])
        );
        let mut feeds = std::collections::HashMap::new();
        let mut k = 0.0f32;
        for (name, shape) in [
            ("x", vec![3, 8, 5]),
            ("dy", vec![3, 8, 4]),
            ("y", vec![5, 4]),
            ("z", vec![4, 6]),
        ] {
            let n: usize = shape.iter().product();
            let v = (0..n)
                .map(|_| {
                    k += 0.37;
                    (k * 7.3).sin()
                })
                .collect();
            feeds.insert(
                name.to_string(),
                dnnc_tensor::Tensor::f32(shape, v).unwrap(),
            );
        }
        let none = std::collections::HashMap::new();
        let want = dnnc_interp::run(&before, &feeds, &none).unwrap();
        let got = dnnc_interp::run(&g, &feeds, &none).unwrap();
        assert_eq!(got.outputs, want.outputs);
    }

    #[test]
    fn composes_layout_ops() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[2, 3, 4]);
        let t1 = g.add(Op::Transpose(vec![1, 2, 0]), &[x]).unwrap();
        let t2 = g.add(Op::Transpose(vec![2, 0, 1]), &[t1]).unwrap();
        let r1 = g.add(Op::Reshape(vec![6, 4]), &[t2]).unwrap();
        let r2 = g.add(Op::Reshape(vec![24]), &[r1]).unwrap();
        let b1 = g.add(Op::Broadcast(vec![1, 24]), &[r2]).unwrap();
        let b2 = g.add(Op::Broadcast(vec![5, 24]), &[b1]).unwrap();
        let t3 = g.add(Op::Transpose(vec![1, 0]), &[b2]).unwrap();
        let t4 = g.add(Op::Transpose(vec![1, 0]), &[t3]).unwrap();
        g.set_output("y", t4);
        let g = simplified(g);
        assert_eq!(
            to_text(&g),
            "graph t {\n  %0 = input \"x\" : f32[2, 3, 4]\n  %1 = reshape [24] %0 : f32[24]\n  \
             %2 = broadcast [5, 24] %1 : f32[5, 24]\n  output y = %2\n}\n"
        );
    }

    #[test]
    fn removes_involutions_no_op_casts_and_trivial_selects() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::I32, &[3]);
        let b = input(&mut g, "b", DType::Bool, &[3]);
        let n1 = g.add(Op::Unary(UnaryOp::Neg), &[x]).unwrap();
        let n2 = g.add(Op::Unary(UnaryOp::Neg), &[n1]).unwrap();
        let c = g.add(Op::Cast(DType::I32), &[n2]).unwrap();
        let t = splat(&mut g, 1.0, DType::Bool, &[3]);
        let s = g.add(Op::Select, &[t, c, x]).unwrap();
        let s2 = g.add(Op::Select, &[b, s, s]).unwrap();
        let nb = g.add(Op::Unary(UnaryOp::Not), &[b]).unwrap();
        let nnb = g.add(Op::Unary(UnaryOp::Not), &[nb]).unwrap();
        let and = g.add(Op::Binary(BinaryOp::And), &[t, nnb]).unwrap();
        g.set_output("y", s2);
        g.set_output("b", and);
        let g = simplified(g);
        assert_eq!(g.output("y"), Some(x));
        assert_eq!(g.output("b"), Some(b));
    }

    #[test]
    fn keeps_stop_gradient_but_strip_removes_it() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[2]);
        let s1 = g.add(Op::StopGradient, &[x]).unwrap();
        let s2 = g.add(Op::StopGradient, &[s1]).unwrap();
        g.set_output("y", s2);
        let mut g = simplified(g);
        assert_eq!(g.len(), 2);
        assert!(strip_stop_gradient(&mut g).unwrap());
        assert_eq!(g.output("y"), Some(x));
        assert!(!strip_stop_gradient(&mut g).unwrap());
    }

    /// A gather or scatter at one constant index in range is a slice or a pad (what a
    /// scan over `arange` reads and its gradient writes); an index out of range stays.
    #[test]
    fn one_constant_index_is_a_slice_or_a_pad() {
        let index = |g: &mut Graph, k: f64| {
            let c = g
                .add(
                    Op::Const {
                        value: k,
                        dtype: DType::I64,
                    },
                    &[],
                )
                .unwrap();
            g.add(Op::Broadcast(vec![1]), &[c]).unwrap()
        };
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[3, 4, 2]);
        let k = index(&mut g, 2.0);
        let row = g.add(Op::Gather { axis: 0 }, &[x, k]).unwrap();
        let u = input(&mut g, "u", DType::F32, &[4, 1, 2]);
        let k1 = index(&mut g, 1.0);
        let shape = vec![4, 5, 2];
        let scattered = g.add(Op::ScatterAdd { axis: 1, shape }, &[u, k1]).unwrap();
        let far = index(&mut g, 3.0);
        let kept = g.add(Op::Gather { axis: 0 }, &[x, far]).unwrap();
        g.set_output("row", row);
        g.set_output("scattered", scattered);
        g.set_output("kept", kept);
        let g = simplified(g);
        let op = |name: &str| g.node(g.output(name).unwrap()).op.clone();
        assert!(
            matches!(op("row"), Op::Slice { ref starts, ref ends, .. }
            if *starts == [2, 0, 0] && *ends == [3, 4, 2]),
            "{}",
            to_text(&g)
        );
        assert!(
            matches!(op("scattered"), Op::Pad { ref lo, ref hi, .. }
            if *lo == [0, 1, 0] && *hi == [0, 3, 0]),
            "{}",
            to_text(&g)
        );
        assert!(matches!(op("kept"), Op::Gather { .. }), "{}", to_text(&g));
    }
}
