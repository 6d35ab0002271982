//! The interpreter rule of every op: [`eval`] is one `match` on [`Op`] with one arm per
//! op, in the order of the enum. Each arm is the definition of its op that backends are
//! tested against.
//!
//! Before the `match`, [`eval`] checks that the operands are well formed and that the op's
//! shape rule, applied to them, gives the node's declared type; every arm may therefore
//! rely on its shape rule (operand counts, dtypes, shapes, in-range axes).
//!
//! Conventions every backend must share:
//!
//! - Integer values of every integer dtype are `i64`s; arithmetic wraps and results are
//!   wrapped into the dtype's range ([`data::fit`]). Division and remainder round toward
//!   negative infinity (Python's `//` and `%`); division by zero is an error.
//! - `f32` `max`/`min` (binary and reductions) propagate NaN; `argmax`/`argmin` return
//!   the first index of the extreme value, a NaN counting as more extreme than any number.
//! - Sums accumulate in `f32` (or wrapping integers), in row-major order of the input.
//! - `cast` from `f32` to an integer truncates toward zero into `i64` (saturating, NaN to
//!   0) and then wraps into the target; to `bool` is `x != 0` (NaN is `true`); from
//!   `bool` is 0 or 1.

use std::collections::HashMap;

use dnnc_ir::shape::infer;
use dnnc_ir::{BinaryOp, DType, Dist, Node, NodeId, Op, ReduceKind, TensorType, UnaryOp, Window2d};
use dnnc_tensor::{Data, Tensor};

use crate::data::{self, fit};
use crate::math::{unary_f32, unary_int};
use crate::{math, matmul, rng, InterpError};
use dnnc_ir::layout::{self as index, affine, numel, split_at_axis};
use dnnc_ir::scalar::{arg_extreme, int_range};

/// The pairs `(column element, input element)` of `patches` of an `[N, C, H, W]`
/// input, in row-major order of the columns `[C, KH, KW, N, OH, OW]`; columns that
/// fall into the padding have no pair (they are zero).
fn window_pairs(win: &Window2d, x: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let (n, c, h, w) = (x[0], x[1], x[2], x[3]);
    let (oh, ow) = win.out(h, w).expect("checked by the shape rule");
    let (mut cols, mut xs) = (Vec::new(), Vec::new());
    let mut at = 0;
    for ci in 0..c {
        for i in 0..win.kh {
            for j in 0..win.kw {
                for b in 0..n {
                    for y in 0..oh {
                        for z in 0..ow {
                            let r =
                                (y * win.stride + i * win.dilation) as isize - win.pad_h.0 as isize;
                            let q =
                                (z * win.stride + j * win.dilation) as isize - win.pad_w.0 as isize;
                            if (0..h as isize).contains(&r) && (0..w as isize).contains(&q) {
                                cols.push(at);
                                xs.push(((b * c + ci) * h + r as usize) * w + q as usize);
                            }
                            at += 1;
                        }
                    }
                }
            }
        }
    }
    (cols, xs)
}

/// Where `input` and `state` ops find their values, by name.
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    pub inputs: &'a HashMap<String, Tensor>,
    pub states: &'a HashMap<String, Tensor>,
}

/// The value of node `id` (whose op and type are `node`) given its operands' values.
pub fn eval(
    id: NodeId,
    node: &Node,
    args: &[&Tensor],
    env: &Env<'_>,
) -> Result<Tensor, InterpError> {
    check_operands(id, node, args)?;
    let fail = |message: String| InterpError::Op {
        node: id.raw(),
        kind: node.op.kind(),
        message,
    };
    let bad_operands = || {
        InterpError::Graph(format!(
            "%{}: `{}` of operands it does not take",
            id.raw(),
            node.op
        ))
    };
    let ty = &node.ty;
    let data = match &node.op {
        Op::Input { name, .. } => return fetch("input", name, ty, env.inputs),
        Op::State { name, .. } => return fetch("state", name, ty, env.states),
        Op::Const { value, dtype } => data::from_f64(*dtype, std::iter::once(*value)),
        Op::Iota { dtype, shape, axis } => {
            let (_, size, after) = split_at_axis(shape, *axis);
            data::from_f64(
                *dtype,
                (0..numel(shape)).map(|i| ((i / after) % size) as f64),
            )
        }
        Op::Unary(u) => match (&args[0].data, unary_f32(*u), unary_int(*u)) {
            (Data::F32(x), Some(f), _) => Data::F32(x.iter().map(|&a| f(a)).collect()),
            (Data::I64(x), _, Some(f)) => {
                Data::I64(x.iter().map(|&a| fit(ty.dtype, f(a))).collect())
            }
            (Data::Bool(x), ..) if *u == UnaryOp::Not => {
                Data::Bool(x.iter().map(|&a| !a).collect())
            }
            _ => return Err(bad_operands()),
        },
        Op::Binary(b) => match (&args[0].data, &args[1].data) {
            (Data::F32(x), Data::F32(y)) => match binary_f32(*b) {
                Some(Rule::Arith(f)) => Data::F32(zip(x, y, f)),
                Some(Rule::Compare(f)) => Data::Bool(zip(x, y, f)),
                None => return Err(bad_operands()),
            },
            (Data::I64(x), Data::I64(y)) => {
                if matches!(b, BinaryOp::Div | BinaryOp::Rem) && y.contains(&0) {
                    return Err(fail("integer division by zero".into()));
                }
                if *b == BinaryOp::Pow && x.iter().zip(y).any(|(&a, &e)| a == 0 && e < 0) {
                    return Err(fail("integer 0 raised to a negative power".into()));
                }
                match binary_int(*b) {
                    Some(Rule::Arith(f)) => Data::I64(zip(x, y, |a, c| fit(ty.dtype, f(a, c)))),
                    Some(Rule::Compare(f)) => Data::Bool(zip(x, y, f)),
                    None => return Err(bad_operands()),
                }
            }
            (Data::Bool(x), Data::Bool(y)) => match binary_bool(*b) {
                Some(Rule::Arith(f)) => Data::Bool(zip(x, y, f)),
                Some(Rule::Compare(f)) => Data::Bool(zip(x, y, f)),
                None => return Err(bad_operands()),
            },
            _ => return Err(bad_operands()),
        },
        Op::Select => {
            let Data::Bool(c) = &args[0].data else {
                return Err(bad_operands());
            };
            match (&args[1].data, &args[2].data) {
                (Data::F32(a), Data::F32(b)) => Data::F32(select(c, a, b)),
                (Data::I64(a), Data::I64(b)) => Data::I64(select(c, a, b)),
                (Data::Bool(a), Data::Bool(b)) => Data::Bool(select(c, a, b)),
                _ => return Err(bad_operands()),
            }
        }
        Op::Cast(to) => match (&args[0].data, to) {
            (Data::F32(x), DType::F32) => Data::F32(x.clone()),
            (Data::F32(x), DType::Bool) => Data::Bool(x.iter().map(|&a| a != 0.0).collect()),
            (Data::F32(x), _) => Data::I64(x.iter().map(|&a| fit(*to, a as i64)).collect()),
            (Data::I64(x), DType::F32) => Data::F32(x.iter().map(|&a| a as f32).collect()),
            (Data::I64(x), DType::Bool) => Data::Bool(x.iter().map(|&a| a != 0).collect()),
            (Data::I64(x), _) => Data::I64(x.iter().map(|&a| fit(*to, a)).collect()),
            (Data::Bool(x), DType::F32) => {
                Data::F32(x.iter().map(|&a| f32::from(u8::from(a))).collect())
            }
            (Data::Bool(x), DType::Bool) => Data::Bool(x.clone()),
            (Data::Bool(x), _) => Data::I64(x.iter().map(|&a| i64::from(a)).collect()),
        },
        Op::Reshape(_) => args[0].data.clone(),
        Op::Transpose(perm) => {
            let x = args[0];
            data::take(
                &x.data,
                &affine(&ty.shape, &index::transpose_strides(&x.shape, perm), 0),
            )
        }
        Op::Broadcast(shape) => {
            let x = args[0];
            data::take(
                &x.data,
                &affine(shape, &index::broadcast_strides(&x.shape, shape), 0),
            )
        }
        Op::Slice { starts, steps, .. } => {
            let x = args[0];
            let (strides, offset) = index::slice_strides(&x.shape, starts, steps);
            data::take(&x.data, &affine(&ty.shape, &strides, offset))
        }
        Op::Concat { axis } => {
            let mut out = Tensor::zeros(ty.dtype, ty.shape.clone()).data;
            let out_strides = index::strides(&ty.shape);
            let mut at = 0;
            for x in args {
                let dst = affine(&x.shape, &out_strides, at * out_strides[*axis]);
                data::put(&mut out, &dst, &x.data).map_err(|_| bad_operands())?;
                at += x.shape[*axis];
            }
            out
        }
        Op::Pad { lo, value, .. } => {
            let x = args[0];
            let mut out = data::from_f64(ty.dtype, std::iter::repeat_n(*value, ty.numel()));
            let (strides, offset) = index::pad_strides(&ty.shape, lo);
            data::put(&mut out, &affine(&x.shape, &strides, offset), &x.data)
                .map_err(|_| bad_operands())?;
            out
        }
        Op::Reduce { kind, axes, .. } => {
            let x = args[0];
            let dst = affine(&x.shape, &index::reduce_strides(&x.shape, axes), 0);
            let n = ty.numel();
            match (&x.data, kind) {
                (Data::F32(v), ReduceKind::Sum) => Data::F32(fold(v, &dst, n, 0.0, |a, b| a + b)),
                (Data::F32(v), ReduceKind::Max) => {
                    Data::F32(fold(v, &dst, n, f32::NEG_INFINITY, math::max_f32))
                }
                (Data::F32(v), ReduceKind::Min) => {
                    Data::F32(fold(v, &dst, n, f32::INFINITY, math::min_f32))
                }
                (Data::I64(v), ReduceKind::Sum) => {
                    Data::I64(fold(v, &dst, n, 0, |a, b| fit(ty.dtype, a.wrapping_add(b))))
                }
                (Data::I64(v), ReduceKind::Max) => {
                    Data::I64(fold(v, &dst, n, int_range(ty.dtype).0, i64::max))
                }
                (Data::I64(v), ReduceKind::Min) => {
                    Data::I64(fold(v, &dst, n, int_range(ty.dtype).1, i64::min))
                }
                (Data::Bool(v), ReduceKind::Max) => {
                    Data::Bool(fold(v, &dst, n, false, |a, b| a | b))
                }
                (Data::Bool(v), ReduceKind::Min) => {
                    Data::Bool(fold(v, &dst, n, true, |a, b| a & b))
                }
                (Data::Bool(_), ReduceKind::Sum) => return Err(bad_operands()),
            }
        }
        Op::ArgMax { axis } => {
            let x = args[0];
            let dims = split_at_axis(&x.shape, *axis);
            Data::I64(match &x.data {
                Data::F32(v) => arg_extreme(v, dims, |a, best| {
                    !best.is_nan() && (a.is_nan() || a > best)
                }),
                Data::I64(v) => arg_extreme(v, dims, |a, best| a > best),
                Data::Bool(v) => arg_extreme(v, dims, |a, best| a & !best),
            })
        }
        Op::ArgMin { axis } => {
            let x = args[0];
            let dims = split_at_axis(&x.shape, *axis);
            Data::I64(match &x.data {
                Data::F32(v) => arg_extreme(v, dims, |a, best| {
                    !best.is_nan() && (a.is_nan() || a < best)
                }),
                Data::I64(v) => arg_extreme(v, dims, |a, best| a < best),
                Data::Bool(v) => arg_extreme(v, dims, |a, best| !a & best),
            })
        }
        Op::MatMul => {
            let (a, b) = (args[0], args[1]);
            let (Data::F32(av), Data::F32(bv)) = (&a.data, &b.data) else {
                return Err(bad_operands());
            };
            let r = a.shape.len();
            let (m, k, n) = (a.shape[r - 2], a.shape[r - 1], b.shape[r - 1]);
            Data::F32(matmul::matmul_f32(
                av,
                bv,
                numel(&a.shape[..r - 2]),
                m,
                k,
                n,
            ))
        }
        Op::Gather { axis } => {
            let x = args[0];
            let (before, size, after) = split_at_axis(&x.shape, *axis);
            let idx = indices(args[1], size).map_err(fail)?;
            let mut src = Vec::with_capacity(ty.numel());
            for b in 0..before {
                for &i in &idx {
                    let base = (b * size + i) * after;
                    src.extend(base..base + after);
                }
            }
            data::take(&x.data, &src)
        }
        Op::ScatterAdd { axis, shape } => {
            let updates = args[0];
            let (before, size, after) = split_at_axis(shape, *axis);
            let idx = indices(args[1], size).map_err(fail)?;
            let mut dst = Vec::with_capacity(updates.len());
            for b in 0..before {
                for &i in &idx {
                    let base = (b * size + i) * after;
                    dst.extend(base..base + after);
                }
            }
            let mut out = Tensor::zeros(ty.dtype, shape.clone()).data;
            data::accumulate(&mut out, &dst, &updates.data, ty.dtype)
                .map_err(|_| bad_operands())?;
            out
        }
        Op::Random { dist, shape, salt } => {
            let Data::I64(key) = &args[0].data else {
                return Err(bad_operands());
            };
            let key = key.first().copied().ok_or_else(bad_operands)?;
            let n = numel(shape) as u64;
            match dist {
                Dist::Uniform { low, high } => Data::F32(
                    (0..n)
                        .map(|i| rng::uniform(key, *salt, i, *low, *high))
                        .collect(),
                ),
                Dist::Normal { mean, std } => Data::F32(
                    (0..n)
                        .map(|i| rng::normal(key, *salt, i, *mean, *std))
                        .collect(),
                ),
                Dist::Bernoulli => {
                    let Data::F32(p) = &args[1].data else {
                        return Err(bad_operands());
                    };
                    Data::Bool(
                        p.iter()
                            .zip(0..)
                            .map(|(&p, i)| rng::bernoulli(key, *salt, i, p))
                            .collect(),
                    )
                }
            }
        }
        Op::StopGradient => args[0].data.clone(),
        Op::Patches(win) => {
            let (cols, xs) = window_pairs(win, &args[0].shape);
            let mut out = Tensor::zeros(ty.dtype, ty.shape.clone()).data;
            data::put(&mut out, &cols, &data::take(&args[0].data, &xs))
                .map_err(|_| bad_operands())?;
            out
        }
        Op::Fold { win, shape } => {
            let (cols, xs) = window_pairs(win, shape);
            let mut out = Tensor::zeros(ty.dtype, shape.clone()).data;
            data::accumulate(&mut out, &xs, &data::take(&args[0].data, &cols), ty.dtype)
                .map_err(|_| bad_operands())?;
            out
        }
    };
    if data.len() != ty.numel() {
        return Err(InterpError::Graph(format!(
            "%{}: `{}` made {} elements for {ty}",
            id.raw(),
            node.op,
            data.len()
        )));
    }
    Ok(Tensor {
        dtype: ty.dtype,
        shape: ty.shape.clone(),
        data,
    })
}

/// An elementwise binary rule: arithmetic keeps the element type, comparisons give `bool`.
enum Rule<T> {
    Arith(fn(T, T) -> T),
    Compare(fn(T, T) -> bool),
}

fn binary_f32(b: BinaryOp) -> Option<Rule<f32>> {
    Some(match b {
        BinaryOp::Add => Rule::Arith(|a, b| a + b),
        BinaryOp::Sub => Rule::Arith(|a, b| a - b),
        BinaryOp::Mul => Rule::Arith(|a, b| a * b),
        BinaryOp::Div => Rule::Arith(|a, b| a / b),
        BinaryOp::Pow => Rule::Arith(f32::powf),
        BinaryOp::Max => Rule::Arith(math::max_f32),
        BinaryOp::Min => Rule::Arith(math::min_f32),
        BinaryOp::Rem => Rule::Arith(math::rem_f32),
        BinaryOp::Lt => Rule::Compare(|a, b| a < b),
        BinaryOp::Le => Rule::Compare(|a, b| a <= b),
        BinaryOp::Gt => Rule::Compare(|a, b| a > b),
        BinaryOp::Ge => Rule::Compare(|a, b| a >= b),
        BinaryOp::Eq => Rule::Compare(|a, b| a == b),
        BinaryOp::Ne => Rule::Compare(|a, b| a != b),
        BinaryOp::And | BinaryOp::Or => return None,
    })
}

/// Integer rules (before wrapping into the dtype); the caller rejects zero divisors and
/// zero to a negative power first.
fn binary_int(b: BinaryOp) -> Option<Rule<i64>> {
    Some(match b {
        BinaryOp::Add => Rule::Arith(i64::wrapping_add),
        BinaryOp::Sub => Rule::Arith(i64::wrapping_sub),
        BinaryOp::Mul => Rule::Arith(i64::wrapping_mul),
        BinaryOp::Div => Rule::Arith(math::floor_div),
        BinaryOp::Pow => Rule::Arith(math::int_pow),
        BinaryOp::Max => Rule::Arith(i64::max),
        BinaryOp::Min => Rule::Arith(i64::min),
        BinaryOp::Rem => Rule::Arith(math::floor_mod),
        BinaryOp::Lt => Rule::Compare(|a, b| a < b),
        BinaryOp::Le => Rule::Compare(|a, b| a <= b),
        BinaryOp::Gt => Rule::Compare(|a, b| a > b),
        BinaryOp::Ge => Rule::Compare(|a, b| a >= b),
        BinaryOp::Eq => Rule::Compare(|a, b| a == b),
        BinaryOp::Ne => Rule::Compare(|a, b| a != b),
        BinaryOp::And | BinaryOp::Or => return None,
    })
}

/// `bool` rules: logic, and comparisons with `false < true`.
fn binary_bool(b: BinaryOp) -> Option<Rule<bool>> {
    Some(match b {
        BinaryOp::And => Rule::Arith(|a, b| a & b),
        BinaryOp::Or => Rule::Arith(|a, b| a | b),
        BinaryOp::Lt => Rule::Compare(|a, b| !a & b),
        BinaryOp::Le => Rule::Compare(|a, b| !a | b),
        BinaryOp::Gt => Rule::Compare(|a, b| a & !b),
        BinaryOp::Ge => Rule::Compare(|a, b| a | !b),
        BinaryOp::Eq => Rule::Compare(|a, b| a == b),
        BinaryOp::Ne => Rule::Compare(|a, b| a != b),
        _ => return None,
    })
}

fn zip<T: Copy, U>(x: &[T], y: &[T], f: impl Fn(T, T) -> U) -> Vec<U> {
    x.iter().zip(y).map(|(&a, &b)| f(a, b)).collect()
}

fn select<T: Copy>(c: &[bool], a: &[T], b: &[T]) -> Vec<T> {
    c.iter()
        .zip(a.iter().zip(b))
        .map(|(&c, (&a, &b))| if c { a } else { b })
        .collect()
}

/// `out[dst[i]] = f(out[dst[i]], x[i])` over `x` in order, from `n` copies of `init`.
fn fold<T: Copy>(x: &[T], dst: &[usize], n: usize, init: T, f: impl Fn(T, T) -> T) -> Vec<T> {
    let mut out = vec![init; n];
    for (&d, &a) in dst.iter().zip(x) {
        out[d] = f(out[d], a);
    }
    out
}

/// The integer indices of `t` as positions along an axis of `size` elements.
fn indices(t: &Tensor, size: usize) -> Result<Vec<usize>, String> {
    let Data::I64(v) = &t.data else {
        return Err(format!("indices of type {}", t.dtype));
    };
    v.iter()
        .map(|&i| match usize::try_from(i) {
            Ok(u) if u < size => Ok(u),
            _ => Err(format!(
                "index {i} is out of range for an axis of size {size}"
            )),
        })
        .collect()
}

/// Whether `t`'s storage matches its dtype and shape.
fn well_formed(t: &Tensor) -> bool {
    let kind_ok = matches!(
        (t.dtype, &t.data),
        (DType::F32, Data::F32(_))
            | (DType::Bool, Data::Bool(_))
            | (DType::I64 | DType::I32 | DType::U8, Data::I64(_))
    );
    kind_ok && t.data.len() == numel(&t.shape)
}

/// Checks the operands of `node` against its op's shape rule and its declared type.
fn check_operands(id: NodeId, node: &Node, args: &[&Tensor]) -> Result<(), InterpError> {
    if let Some(i) = args.iter().position(|t| !well_formed(t)) {
        return Err(InterpError::Graph(format!(
            "%{}: operand {i} has storage that does not fit its type",
            id.raw()
        )));
    }
    let tys: Vec<TensorType> = args
        .iter()
        .map(|t| TensorType::new(t.dtype, t.shape.clone()))
        .collect();
    let refs: Vec<&TensorType> = tys.iter().collect();
    match infer(&node.op, &refs) {
        Ok(t) if t == node.ty => Ok(()),
        Ok(t) => Err(InterpError::Graph(format!(
            "%{}: `{}` is declared {} but its operands give {t}",
            id.raw(),
            node.op,
            node.ty
        ))),
        Err(e) => Err(InterpError::Graph(format!("%{}: {e}", id.raw()))),
    }
}

/// The value of an `input` or `state` called `name`, checked against its declared type.
fn fetch(
    what: &'static str,
    name: &str,
    ty: &TensorType,
    values: &HashMap<String, Tensor>,
) -> Result<Tensor, InterpError> {
    let t = values.get(name).ok_or_else(|| InterpError::Missing {
        what,
        name: name.to_string(),
    })?;
    let mismatch = |found: String| InterpError::Mismatch {
        what,
        name: name.to_string(),
        expected: ty.clone(),
        found,
    };
    if t.dtype != ty.dtype || t.shape != ty.shape {
        return Err(mismatch(
            TensorType::new(t.dtype, t.shape.clone()).to_string(),
        ));
    }
    if !well_formed(t) {
        return Err(mismatch(format!(
            "{} elements of another kind or count",
            t.data.len()
        )));
    }
    if let Data::I64(v) = &t.data {
        if let Some(bad) = v.iter().find(|&&x| fit(t.dtype, x) != x) {
            return Err(mismatch(format!(
                "the value {bad}, out of range for {}",
                t.dtype
            )));
        }
    }
    Ok(t.clone())
}
