//! The shape rule of every op: operand types in, result type out (or why not).
//!
//! The frontend has already checked the program symbolically; these rules re-check the
//! concrete instance, and the verifier runs them on every node after every pass.

use std::fmt;

use dnnc_tensor::DType;

use crate::op::{BinaryOp, Dist, Op, ReduceKind};
use crate::scalar;
use dnnc_tensor::Class;

/// An element type and a concrete shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Vec<usize>) -> TensorType {
        TensorType { dtype, shape }
    }

    pub fn scalar(dtype: DType) -> TensorType {
        TensorType {
            dtype,
            shape: Vec::new(),
        }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(usize::to_string).collect();
        write!(f, "{}[{}]", self.dtype, dims.join(", "))
    }
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg())
    }
}

/// The result type of `op` applied to operands of types `ins`.
pub fn infer(op: &Op, ins: &[&TensorType]) -> Result<TensorType, String> {
    if let Some(n) = op.arity() {
        check(ins.len() == n, || {
            format!("`{}` takes {n} operands, found {}", op.kind(), ins.len())
        })?;
    }
    let same = |a: &TensorType, b: &TensorType| {
        check(a.shape == b.shape, || {
            format!(
                "`{}` operands have shapes {:?} and {:?}",
                op.kind(),
                a.shape,
                b.shape
            )
        })
    };
    match op {
        Op::Input { dtype, shape, .. } | Op::State { dtype, shape, .. } => {
            Ok(TensorType::new(*dtype, shape.clone()))
        }
        Op::Const { dtype, .. } => Ok(TensorType::scalar(*dtype)),
        Op::Iota { dtype, shape, axis } => {
            check(*axis < shape.len(), || {
                format!("iota axis {axis} out of range for {shape:?}")
            })?;
            Ok(TensorType::new(*dtype, shape.clone()))
        }
        Op::Unary(u) => {
            // Defined where `dnnc_ir::scalar` defines it, for the operand's class.
            let x = ins[0];
            let defined = match x.dtype.class() {
                Class::Float => scalar::unary_float::<f32>(*u).is_some(),
                Class::Int => scalar::unary_int(*u).is_some(),
                Class::Bool => scalar::unary_bool(*u).is_some(),
            };
            check(defined, || format!("`{}` is not defined on {x}", u.name()))?;
            Ok(x.clone())
        }
        Op::Binary(b) => {
            let (x, y) = (ins[0], ins[1]);
            same(x, y)?;
            check(x.dtype == y.dtype, || {
                format!("`{}` of {x} and {y}", b.name())
            })?;
            let defined = match x.dtype.class() {
                Class::Float => scalar::binary_float::<f32>(*b).is_some(),
                Class::Int => scalar::binary_int(*b).is_some(),
                Class::Bool => scalar::binary_bool(*b).is_some(),
            };
            check(defined, || format!("`{}` is not defined on {x}", b.name()))?;
            let dtype = if b.is_comparison() {
                DType::Bool
            } else {
                x.dtype
            };
            Ok(TensorType::new(dtype, x.shape.clone()))
        }
        Op::Select => {
            let (c, a, b) = (ins[0], ins[1], ins[2]);
            check(c.dtype == DType::Bool, || {
                format!("select condition is {c}")
            })?;
            same(c, a)?;
            same(a, b)?;
            check(a.dtype == b.dtype, || format!("select of {a} and {b}"))?;
            Ok(a.clone())
        }
        Op::Cast(d) => Ok(TensorType::new(*d, ins[0].shape.clone())),
        Op::Reshape(s) => {
            let x = ins[0];
            check(x.numel() == s.iter().product::<usize>(), || {
                format!("reshape of {x} to {s:?} changes the element count")
            })?;
            Ok(TensorType::new(x.dtype, s.clone()))
        }
        Op::Transpose(p) => {
            let x = ins[0];
            let mut sorted = p.clone();
            sorted.sort_unstable();
            check(sorted == (0..x.rank()).collect::<Vec<_>>(), || {
                format!("{p:?} is not a permutation of {x}'s axes")
            })?;
            Ok(TensorType::new(
                x.dtype,
                p.iter().map(|&i| x.shape[i]).collect(),
            ))
        }
        Op::Broadcast(s) => {
            let x = ins[0];
            check(x.rank() <= s.len(), || {
                format!("cannot broadcast {x} to fewer axes {s:?}")
            })?;
            let off = s.len() - x.rank();
            for (i, &d) in x.shape.iter().enumerate() {
                check(d == 1 || d == s[off + i], || {
                    format!("cannot broadcast {x} to {s:?}")
                })?;
            }
            Ok(TensorType::new(x.dtype, s.clone()))
        }
        Op::Slice {
            starts,
            ends,
            steps,
        } => {
            let x = ins[0];
            let r = x.rank();
            check(
                starts.len() == r && ends.len() == r && steps.len() == r,
                || format!("slice of {x} needs {r} bounds"),
            )?;
            let mut out = Vec::with_capacity(r);
            for i in 0..r {
                check(
                    steps[i] > 0 && starts[i] <= ends[i] && ends[i] <= x.shape[i],
                    || {
                        format!(
                            "slice {}..{} by {} of axis {i} of {x}",
                            starts[i], ends[i], steps[i]
                        )
                    },
                )?;
                out.push((ends[i] - starts[i]).div_ceil(steps[i]));
            }
            Ok(TensorType::new(x.dtype, out))
        }
        Op::Concat { axis } => {
            check(!ins.is_empty(), || "concat of nothing".to_string())?;
            let first = ins[0];
            check(*axis < first.rank(), || {
                format!("concat axis {axis} of {first}")
            })?;
            let mut total = 0;
            for t in ins {
                let ok = t.dtype == first.dtype
                    && t.rank() == first.rank()
                    && t.shape
                        .iter()
                        .zip(&first.shape)
                        .enumerate()
                        .all(|(i, (a, b))| i == *axis || a == b);
                check(ok, || {
                    format!("cannot concatenate {first} and {t} along axis {axis}")
                })?;
                total += t.shape[*axis];
            }
            let mut s = first.shape.clone();
            s[*axis] = total;
            Ok(TensorType::new(first.dtype, s))
        }
        Op::Pad { lo, hi, .. } => {
            let x = ins[0];
            check(lo.len() == x.rank() && hi.len() == x.rank(), || {
                format!("pad of {x} needs {} pairs", x.rank())
            })?;
            Ok(TensorType::new(
                x.dtype,
                x.shape
                    .iter()
                    .zip(lo.iter().zip(hi))
                    .map(|(d, (l, h))| d + l + h)
                    .collect(),
            ))
        }
        Op::Reduce {
            kind,
            axes,
            keepdims,
        } => {
            let x = ins[0];
            check(axes.iter().all(|&a| a < x.rank()), || {
                format!("reduce axes {axes:?} of {x}")
            })?;
            if *kind == ReduceKind::Sum {
                check(x.dtype != DType::Bool, || format!("sum of {x}"))?;
            }
            Ok(TensorType::new(x.dtype, reduced(&x.shape, axes, *keepdims)))
        }
        Op::ArgSort { axis, .. } => {
            let x = ins[0];
            check(*axis < x.rank() && x.dtype != DType::Bool, || {
                format!("argsort over axis {axis} of {x}")
            })?;
            Ok(TensorType::new(DType::I64, x.shape.clone()))
        }
        Op::ArgMax { axis } | Op::ArgMin { axis } => {
            let x = ins[0];
            check(*axis < x.rank() && x.shape[*axis] > 0, || {
                format!("arg-reduction over axis {axis} of {x}")
            })?;
            Ok(TensorType::new(
                DType::I64,
                reduced(&x.shape, &[*axis], false),
            ))
        }
        Op::MatMul => {
            let (a, b) = (ins[0], ins[1]);
            // `f32` products, and `i8` ones accumulated exactly in `i32` (quantized
            // inference: ONNX's MatMulInteger).
            check(
                a.dtype == b.dtype && matches!(a.dtype, DType::F32 | DType::I8),
                || format!("matmul of {a} and {b}"),
            )?;
            check(a.rank() >= 2 && a.rank() == b.rank(), || {
                format!("matmul needs equal ranks ≥ 2, found {a} and {b}")
            })?;
            let r = a.rank();
            check(a.shape[..r - 2] == b.shape[..r - 2], || {
                format!("matmul batch dimensions of {a} and {b} differ")
            })?;
            check(a.shape[r - 1] == b.shape[r - 2], || {
                format!("matmul of {a} and {b}: inner dimensions differ")
            })?;
            let mut s = a.shape[..r - 1].to_vec();
            s.push(b.shape[r - 1]);
            let dtype = if a.dtype == DType::I8 {
                DType::I32
            } else {
                a.dtype
            };
            Ok(TensorType::new(dtype, s))
        }
        Op::Gather { axis } => {
            let (x, idx) = (ins[0], ins[1]);
            check(*axis < x.rank() && idx.dtype.is_int(), || {
                format!("gather of {x} by {idx} on axis {axis}")
            })?;
            let mut s = x.shape[..*axis].to_vec();
            s.extend(&idx.shape);
            s.extend(&x.shape[axis + 1..]);
            Ok(TensorType::new(x.dtype, s))
        }
        Op::ScatterAdd { axis, shape } => {
            let (u, idx) = (ins[0], ins[1]);
            check(*axis < shape.len() && idx.dtype.is_int(), || {
                format!("scatter_add into {shape:?} by {idx}")
            })?;
            // A sum, like `reduce_sum`: not defined on `bool`.
            check(u.dtype != DType::Bool, || format!("scatter_add of {u}"))?;
            let mut expect = shape[..*axis].to_vec();
            expect.extend(&idx.shape);
            expect.extend(&shape[axis + 1..]);
            check(u.shape == expect, || {
                format!("scatter_add updates {u} do not match {expect:?}")
            })?;
            Ok(TensorType::new(u.dtype, shape.clone()))
        }
        Op::Random { dist, shape, .. } => {
            check(ins[0].dtype == DType::I64 && ins[0].rank() == 0, || {
                format!("random key is {}", ins[0])
            })?;
            match dist {
                Dist::Bernoulli => {
                    let p = ins[1];
                    check(p.dtype == DType::F32 && p.shape == *shape, || {
                        format!("bernoulli probabilities {p} for {shape:?}")
                    })?;
                    Ok(TensorType::new(DType::Bool, shape.clone()))
                }
                _ => Ok(TensorType::new(DType::F32, shape.clone())),
            }
        }
        Op::StopGradient => Ok(ins[0].clone()),
        Op::Patches(w) => {
            let x = ins[0];
            let s = w.patches_shape(&x.shape);
            let s = s.ok_or_else(|| format!("patches {w} of {x}"))?;
            Ok(TensorType::new(x.dtype, s))
        }
        Op::Fold { win, shape } => {
            let x = ins[0];
            let cols = win.patches_shape(shape);
            check(
                cols.as_deref() == Some(&x.shape[..]) && x.dtype == DType::F32,
                || format!("fold {win} of {x} into {shape:?} (of f32 columns)"),
            )?;
            Ok(TensorType::new(x.dtype, shape.clone()))
        }
    }
}

/// The shape after reducing `axes`.
pub fn reduced(shape: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| {
            if axes.contains(&i) {
                keepdims.then_some(1)
            } else {
                Some(d)
            }
        })
        .collect()
}

/// Unused operand kinds are rejected in one place: binary ops on mixed types.
pub fn binary_result(op: BinaryOp, dtype: DType) -> DType {
    if op.is_comparison() {
        DType::Bool
    } else {
        dtype
    }
}
