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
//! - Elementwise ops, casts, reductions and `argmax`/`argmin` are
//!   [`dnnc_ir::elementwise`]'s kernels, shared with constant folding and compiled code:
//!   integers compute in `i64` and wrap into their type, `f16`/`bf16` compute in `f32`,
//!   float `max`/`min` propagate NaN, integer division floors and fails on zero, and
//!   sums accumulate in row-major order of the input.
//! - `cast` follows [`dnnc_tensor::dtype`]: floats to integers truncate toward zero
//!   (saturating, NaN to 0) and wrap into the target; to `bool` is `x != 0` (NaN is
//!   `true`); from `bool` is 0 or 1.

use std::collections::HashMap;

use dnnc_ir::shape::infer;
use dnnc_ir::{Dist, Node, NodeId, Op, TensorType, Window2d};
use dnnc_tensor::{Data, Tensor};

use crate::data;
use crate::{matmul, rng, InterpError};
use dnnc_ir::elementwise::{self, ElemError};
use dnnc_ir::layout::{self as index, affine, numel, split_at_axis};

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
        kind: node.op.name(),
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
    let elem_error = |e: ElemError| match e {
        ElemError::Arithmetic(why) => fail(why.to_string()),
        ElemError::NotDefined { .. } | ElemError::Types => bad_operands(),
    };
    let data = match &node.op {
        Op::Input { name, .. } => return fetch("input", name, ty, env.inputs),
        Op::State { name, .. } => return fetch("state", name, ty, env.states),
        Op::Const { value, dtype } => Data::from_f64(*dtype, [*value]),
        Op::Iota { dtype, shape, axis } => {
            let (_, size, after) = split_at_axis(shape, *axis);
            Data::from_f64(
                *dtype,
                (0..numel(shape)).map(|i| ((i / after) % size) as f64),
            )
        }
        Op::Unary(u) => {
            let mut out = Data::zeros(ty.dtype, ty.numel());
            elementwise::unary(*u, args[0].data.as_slice(), out.as_slice_mut())
                .map_err(elem_error)?;
            out
        }
        Op::Binary(b) => {
            let mut out = Data::zeros(ty.dtype, ty.numel());
            elementwise::binary(
                *b,
                args[0].data.as_slice(),
                args[1].data.as_slice(),
                out.as_slice_mut(),
            )
            .map_err(elem_error)?;
            out
        }
        Op::Select => {
            let Data::Bool(c) = &args[0].data else {
                return Err(bad_operands());
            };
            let mut out = Data::zeros(ty.dtype, ty.numel());
            elementwise::select(
                c,
                args[1].data.as_slice(),
                args[2].data.as_slice(),
                out.as_slice_mut(),
            )
            .map_err(elem_error)?;
            out
        }
        Op::Cast(to) => {
            let mut out = Data::zeros(*to, ty.numel());
            elementwise::cast(args[0].data.as_slice(), out.as_slice_mut()).map_err(elem_error)?;
            out
        }
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
            let mut out = Data::from_f64(ty.dtype, std::iter::repeat_n(*value, ty.numel()));
            let (strides, offset) = index::pad_strides(&ty.shape, lo);
            data::put(&mut out, &affine(&x.shape, &strides, offset), &x.data)
                .map_err(|_| bad_operands())?;
            out
        }
        Op::Reduce { kind, axes, .. } => {
            let x = args[0];
            let dst = affine(&x.shape, &index::reduce_strides(&x.shape, axes), 0);
            let mut out = Data::zeros(ty.dtype, ty.numel());
            let positions: elementwise::Positions<'_> = &|visit| {
                for (i, &d) in dst.iter().enumerate() {
                    visit(i, d);
                }
            };
            elementwise::reduce(*kind, x.data.as_slice(), positions, out.as_slice_mut())
                .map_err(elem_error)?;
            out
        }
        Op::ArgSort { axis, descending } => {
            let x = args[0];
            let mut out = vec![0i64; x.data.len()];
            elementwise::arg_sort(
                *descending,
                x.data.as_slice(),
                split_at_axis(&x.shape, *axis),
                &mut out,
            );
            Data::I64(out)
        }
        Op::ArgMax { axis } | Op::ArgMin { axis } => {
            let x = args[0];
            let dims = split_at_axis(&x.shape, *axis);
            let mut out = vec![0i64; dims.0 * dims.2];
            let max = matches!(node.op, Op::ArgMax { .. });
            elementwise::arg_extreme(max, x.data.as_slice(), dims, &mut out);
            Data::I64(out)
        }
        Op::MatMul => {
            let (a, b) = (args[0], args[1]);
            let r = a.shape.len();
            let (m, k, n) = (a.shape[r - 2], a.shape[r - 1], b.shape[r - 1]);
            let batch = numel(&a.shape[..r - 2]);
            match (&a.data, &b.data) {
                (Data::F32(av), Data::F32(bv)) => {
                    Data::F32(matmul::matmul_f32(av, bv, batch, m, k, n))
                }
                (Data::I8(av), Data::I8(bv)) => {
                    Data::I32(matmul::matmul_i8(av, bv, batch, m, k, n))
                }
                _ => return Err(bad_operands()),
            }
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
            data::sum_into(&mut out, &dst, &updates.data).map_err(|_| bad_operands())?;
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
            data::sum_into(&mut out, &xs, &data::take(&args[0].data, &cols))
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

/// The integer indices of `t` as positions along an axis of `size` elements.
fn indices(t: &Tensor, size: usize) -> Result<Vec<usize>, String> {
    if !t.dtype.is_int() {
        return Err(format!("indices of type {}", t.dtype));
    }
    t.data
        .to_i64_vec()
        .iter()
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
    t.data.dtype() == t.dtype && t.data.len() == numel(&t.shape)
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
    Ok(t.clone())
}
