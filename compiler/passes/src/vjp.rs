//! The derivative rule of every op: given a node, its operands and the gradient of the
//! loss with respect to its result, the gradients with respect to each operand
//! (vector-Jacobian products), built as new IR nodes. One `match` arm per op.
//!
//! Ops without a derivative (comparisons, integer results, random draws,
//! `stop_gradient`) return `None` for their operands.

use crate::error::PassError;
use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceKind, UnaryOp};

type Res<T> = Result<T, PassError>;

/// Small builders used by the rules.
pub struct B<'g> {
    pub g: &'g mut Graph,
}

impl B<'_> {
    pub fn op(&mut self, op: Op, xs: &[NodeId]) -> Res<NodeId> {
        Ok(self.g.add(op, xs)?)
    }

    pub(crate) fn shape(&self, x: NodeId) -> Vec<usize> {
        self.g.ty(x).shape.clone()
    }

    /// Zeros of `dtype` and `shape`.
    pub(crate) fn zeros(&mut self, dtype: DType, shape: &[usize]) -> Res<NodeId> {
        let c = self.op(Op::Const { value: 0.0, dtype }, &[])?;
        if shape.is_empty() {
            return Ok(c);
        }
        self.op(Op::Broadcast(shape.to_vec()), &[c])
    }

    pub fn splat(&mut self, v: f64, like: NodeId) -> Res<NodeId> {
        let ty = self.g.ty(like).clone();
        let c = self.op(
            Op::Const {
                value: v,
                dtype: ty.dtype,
            },
            &[],
        )?;
        if ty.shape.is_empty() {
            return Ok(c);
        }
        self.op(Op::Broadcast(ty.shape), &[c])
    }

    pub fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Res<NodeId> {
        self.op(Op::Binary(op), &[a, b])
    }

    pub fn un(&mut self, op: UnaryOp, a: NodeId) -> Res<NodeId> {
        self.op(Op::Unary(op), &[a])
    }

    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Res<NodeId> {
        self.bin(BinaryOp::Mul, a, b)
    }

    pub fn scale(&mut self, a: NodeId, k: f64) -> Res<NodeId> {
        let c = self.splat(k, a)?;
        self.mul(a, c)
    }

    fn zeros_like(&mut self, x: NodeId) -> Res<NodeId> {
        self.splat(0.0, x)
    }

    /// `select(c, a, 0)`.
    fn mask(&mut self, c: NodeId, a: NodeId) -> Res<NodeId> {
        let z = self.zeros_like(a)?;
        self.op(Op::Select, &[c, a, z])
    }

    fn swap_last(&mut self, x: NodeId) -> Res<NodeId> {
        let r = self.shape(x).len();
        let mut p: Vec<usize> = (0..r).collect();
        p.swap(r - 1, r - 2);
        self.op(Op::Transpose(p), &[x])
    }

    /// Sums `g` (of the broadcast shape) back to `shape`.
    pub fn unbroadcast(&mut self, g: NodeId, shape: &[usize]) -> Res<NodeId> {
        let gs = self.shape(g);
        if gs == shape {
            return Ok(g);
        }
        let off = gs.len() - shape.len();
        let mut axes: Vec<usize> = (0..off).collect();
        for (i, &d) in shape.iter().enumerate() {
            if d == 1 && gs[off + i] != 1 {
                axes.push(off + i);
            }
        }
        let s = self.op(
            Op::Reduce {
                kind: ReduceKind::Sum,
                axes,
                keepdims: false,
            },
            &[g],
        )?;
        if self.shape(s) == shape {
            Ok(s)
        } else {
            self.op(Op::Reshape(shape.to_vec()), &[s])
        }
    }
}

/// Gradients for the operands of `node`, given `g`, the gradient of its result.
pub fn vjp(b: &mut B<'_>, node: NodeId, g: NodeId) -> Res<Vec<Option<NodeId>>> {
    let op = b.g.node(node).op.clone();
    let xs = b.g.operands(node);
    let y = node;
    // Every float type carries gradients (a `bf16` parameter's flow in `bf16`); a
    // gradient always has its node's type.
    let float = |b: &B<'_>, x: NodeId| b.g.ty(x).dtype.is_float();
    Ok(match op {
        Op::Input { .. } | Op::State { .. } | Op::Const { .. } | Op::Iota { .. } => vec![],
        Op::Random { .. } => vec![None; xs.len()],
        Op::StopGradient => vec![None],
        Op::ArgMax { .. } | Op::ArgMin { .. } | Op::ArgSort { .. } => vec![None],
        Op::Unary(u) => {
            let x = xs[0];
            if !float(b, x) {
                return Ok(vec![None]);
            }
            let d = match u {
                UnaryOp::Neg => b.un(UnaryOp::Neg, g)?,
                UnaryOp::Exp => b.mul(g, y)?,
                UnaryOp::Log => b.bin(BinaryOp::Div, g, x)?,
                UnaryOp::Sqrt => {
                    let t = b.bin(BinaryOp::Div, g, y)?;
                    b.scale(t, 0.5)?
                }
                UnaryOp::Rsqrt => {
                    // d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 * y / x
                    let t = b.mul(g, y)?;
                    let t = b.bin(BinaryOp::Div, t, x)?;
                    b.scale(t, -0.5)?
                }
                UnaryOp::Abs => {
                    let s = b.un(UnaryOp::Sign, x)?;
                    b.mul(g, s)?
                }
                UnaryOp::Sin => {
                    let c = b.un(UnaryOp::Cos, x)?;
                    b.mul(g, c)?
                }
                UnaryOp::Cos => {
                    let s = b.un(UnaryOp::Sin, x)?;
                    let t = b.mul(g, s)?;
                    b.un(UnaryOp::Neg, t)?
                }
                UnaryOp::Tanh => {
                    let y2 = b.mul(y, y)?;
                    let one = b.splat(1.0, y)?;
                    let d = b.bin(BinaryOp::Sub, one, y2)?;
                    b.mul(g, d)?
                }
                UnaryOp::Erf => {
                    // 2/sqrt(pi) * exp(-x^2)
                    let x2 = b.mul(x, x)?;
                    let n = b.un(UnaryOp::Neg, x2)?;
                    let e = b.un(UnaryOp::Exp, n)?;
                    let e = b.scale(e, std::f64::consts::FRAC_2_SQRT_PI)?;
                    b.mul(g, e)?
                }
                UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Not => {
                    return Ok(vec![None])
                }
            };
            vec![Some(d)]
        }
        Op::Binary(op) => {
            let (x, z) = (xs[0], xs[1]);
            if op.is_comparison() || op.is_logical() || !float(b, x) {
                return Ok(vec![None, None]);
            }
            match op {
                BinaryOp::Add => vec![Some(g), Some(g)],
                BinaryOp::Sub => vec![Some(g), Some(b.un(UnaryOp::Neg, g)?)],
                BinaryOp::Mul => vec![Some(b.mul(g, z)?), Some(b.mul(g, x)?)],
                BinaryOp::Div => {
                    let dx = b.bin(BinaryOp::Div, g, z)?;
                    let t = b.mul(dx, y)?;
                    vec![Some(dx), Some(b.un(UnaryOp::Neg, t)?)]
                }
                BinaryOp::Pow => {
                    // d/dx = z * x^(z-1) = z * y / x (guarded at x = 0); d/dz = y * log x
                    let one = b.splat(1.0, z)?;
                    let zm1 = b.bin(BinaryOp::Sub, z, one)?;
                    let p = b.bin(BinaryOp::Pow, x, zm1)?;
                    let d = b.mul(z, p)?;
                    let dx = b.mul(g, d)?;
                    let zero = b.splat(0.0, x)?;
                    let pos = b.bin(BinaryOp::Gt, x, zero)?;
                    let lx = b.un(UnaryOp::Log, x)?;
                    let lx = b.mask(pos, lx)?;
                    let t = b.mul(y, lx)?;
                    vec![Some(dx), Some(b.mul(g, t)?)]
                }
                BinaryOp::Max | BinaryOp::Min => {
                    // The first operand takes the gradient where it strictly wins;
                    // ties go to the second (so relu = max(x, 0) has gradient 0 at 0).
                    let cmp = if op == BinaryOp::Max {
                        BinaryOp::Gt
                    } else {
                        BinaryOp::Lt
                    };
                    let c = b.bin(cmp, x, z)?;
                    let dx = b.mask(c, g)?;
                    let zero = b.zeros_like(g)?;
                    let dz = b.op(Op::Select, &[c, zero, g])?;
                    vec![Some(dx), Some(dz)]
                }
                BinaryOp::Rem => {
                    let q = b.bin(BinaryOp::Div, x, z)?;
                    let f = b.un(UnaryOp::Floor, q)?;
                    let t = b.mul(g, f)?;
                    vec![Some(g), Some(b.un(UnaryOp::Neg, t)?)]
                }
                // Comparisons and logic give `bool`: no gradient flows through them.
                BinaryOp::Lt
                | BinaryOp::Le
                | BinaryOp::Gt
                | BinaryOp::Ge
                | BinaryOp::Eq
                | BinaryOp::Ne
                | BinaryOp::And
                | BinaryOp::Or => vec![None, None],
            }
        }
        Op::Select => {
            let c = xs[0];
            if !float(b, xs[1]) {
                return Ok(vec![None, None, None]);
            }
            let da = b.mask(c, g)?;
            let zero = b.zeros_like(g)?;
            let db = b.op(Op::Select, &[c, zero, g])?;
            vec![None, Some(da), Some(db)]
        }
        Op::Cast(_) => {
            let x = xs[0];
            // Only float-to-float casts carry a gradient, cast back to `x`'s type.
            if float(b, x) && float(b, y) {
                let dtype = b.g.ty(x).dtype;
                if dtype == b.g.ty(g).dtype {
                    vec![Some(g)]
                } else {
                    vec![Some(b.op(Op::Cast(dtype), &[g])?)]
                }
            } else {
                vec![None]
            }
        }
        Op::Reshape(_) => {
            let s = b.shape(xs[0]);
            vec![Some(b.op(Op::Reshape(s), &[g])?)]
        }
        Op::Transpose(p) => {
            let mut inv = vec![0; p.len()];
            for (i, &a) in p.iter().enumerate() {
                inv[a] = i;
            }
            vec![Some(b.op(Op::Transpose(inv), &[g])?)]
        }
        Op::Broadcast(_) => {
            let s = b.shape(xs[0]);
            vec![Some(b.unbroadcast(g, &s)?)]
        }
        Op::Slice {
            starts,
            ends,
            steps,
        } => {
            let in_shape = b.shape(xs[0]);
            vec![Some(unslice(b, g, &in_shape, &starts, &ends, &steps)?)]
        }
        Op::Concat { axis } => {
            let mut out = Vec::new();
            let mut at = 0;
            let gs = b.shape(g);
            for &x in &xs {
                let n = b.shape(x)[axis];
                let mut starts = vec![0; gs.len()];
                let mut ends = gs.clone();
                starts[axis] = at;
                ends[axis] = at + n;
                at += n;
                out.push(Some(b.op(
                    Op::Slice {
                        starts,
                        ends,
                        steps: vec![1; gs.len()],
                    },
                    &[g],
                )?));
            }
            out
        }
        Op::Pad { lo, .. } => {
            let s = b.shape(xs[0]);
            let ends: Vec<usize> = lo.iter().zip(&s).map(|(l, d)| l + d).collect();
            vec![Some(b.op(
                Op::Slice {
                    starts: lo,
                    ends,
                    steps: vec![1; s.len()],
                },
                &[g],
            )?)]
        }
        Op::Reduce {
            kind,
            axes,
            keepdims,
        } => {
            let x = xs[0];
            let s = b.shape(x);
            let kept: Vec<usize> = s
                .iter()
                .enumerate()
                .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
                .collect();
            let gk = if keepdims {
                g
            } else {
                b.op(Op::Reshape(kept.clone()), &[g])?
            };
            let gb = b.op(Op::Broadcast(s.clone()), &[gk])?;
            match kind {
                ReduceKind::Sum => vec![Some(gb)],
                ReduceKind::Max | ReduceKind::Min => {
                    // Shared equally between the extreme elements.
                    let yk = if keepdims {
                        y
                    } else {
                        b.op(Op::Reshape(kept), &[y])?
                    };
                    let yb = b.op(Op::Broadcast(s.clone()), &[yk])?;
                    let hit = b.bin(BinaryOp::Eq, x, yb)?;
                    let m = b.op(Op::Cast(b.g.ty(x).dtype), &[hit])?;
                    let count = b.op(
                        Op::Reduce {
                            kind: ReduceKind::Sum,
                            axes: axes.clone(),
                            keepdims: true,
                        },
                        &[m],
                    )?;
                    let count = b.op(Op::Broadcast(s), &[count])?;
                    let share = b.bin(BinaryOp::Div, m, count)?;
                    vec![Some(b.mul(gb, share)?)]
                }
            }
        }
        Op::MatMul => {
            let (a, w) = (xs[0], xs[1]);
            let wt = b.swap_last(w)?;
            let da = b.op(Op::MatMul, &[g, wt])?;
            let at = b.swap_last(a)?;
            let dw = b.op(Op::MatMul, &[at, g])?;
            vec![Some(da), Some(dw)]
        }
        Op::Gather { axis } => {
            let s = b.shape(xs[0]);
            vec![
                Some(b.op(Op::ScatterAdd { axis, shape: s }, &[g, xs[1]])?),
                None,
            ]
        }
        Op::ScatterAdd { axis, .. } => vec![Some(b.op(Op::Gather { axis }, &[g, xs[1]])?), None],
        // Each is the other's transpose.
        Op::Patches(win) => {
            let shape = b.shape(xs[0]);
            vec![Some(b.op(Op::Fold { win, shape }, &[g])?)]
        }
        Op::Fold { win, .. } => vec![Some(b.op(Op::Patches(win), &[g])?)],
    })
}

/// The gradient of a strided slice, placed back into zeros of `shape`.
fn unslice(
    b: &mut B<'_>,
    g: NodeId,
    shape: &[usize],
    starts: &[usize],
    ends: &[usize],
    steps: &[usize],
) -> Res<NodeId> {
    let mut cur = g;
    // The strided axes scatter; then one `pad` restores every axis of step 1.
    for axis in 0..shape.len() {
        let cs = b.shape(cur);
        if steps[axis] != 1 {
            // Scatter the kept positions start, start + step, ... along this axis.
            let n = cs[axis];
            let idx = b.op(
                Op::Iota {
                    dtype: DType::I64,
                    shape: vec![n],
                    axis: 0,
                },
                &[],
            )?;
            let step = b.op(
                Op::Const {
                    value: steps[axis] as f64,
                    dtype: DType::I64,
                },
                &[],
            )?;
            let step = b.op(Op::Broadcast(vec![n]), &[step])?;
            let start = b.op(
                Op::Const {
                    value: starts[axis] as f64,
                    dtype: DType::I64,
                },
                &[],
            )?;
            let start = b.op(Op::Broadcast(vec![n]), &[start])?;
            let scaled = b.mul(idx, step)?;
            let pos = b.bin(BinaryOp::Add, scaled, start)?;
            let mut target = cs.clone();
            target[axis] = shape[axis];
            cur = b.op(
                Op::ScatterAdd {
                    axis,
                    shape: target,
                },
                &[cur, pos],
            )?;
        }
    }
    let cs = b.shape(cur);
    if cs != shape {
        let (mut lo, mut hi) = (vec![0; cs.len()], vec![0; cs.len()]);
        for axis in 0..shape.len() {
            if cs[axis] != shape[axis] {
                lo[axis] = starts[axis];
                hi[axis] = shape[axis] - ends[axis];
            }
        }
        cur = b.op(Op::Pad { lo, hi, value: 0.0 }, &[cur])?;
    }
    Ok(cur)
}
