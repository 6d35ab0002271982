//! Lowering of the builtin functions into primitive ops (one arm each).

use std::path::PathBuf;

use dnnc_ir::{BinaryOp, DType, Dist, NodeId, Op, ReduceKind, UnaryOp};

use crate::emit::Res;
use crate::eval::tensor;
use crate::lowerer::Lowerer;
use crate::value::Val;

/// The builtin called `n`: the checker's table is the one list of builtins.
pub fn name(n: &str) -> Option<&'static str> {
    dnnc_sema::builtins::names(true)
        .find(|b| *b == n && DType::from_name(b).is_none() && *b != "training")
}

pub fn dtype(n: &str) -> Option<DType> {
    DType::from_name(n)
}

/// A data file read by a dataset, fed as an input of the dataset's graph.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderUse {
    pub input: String,
    pub loader: dnnc_sema::db::Loader,
    pub path: PathBuf,
}

struct Args(Vec<(Option<String>, Val)>);

impl Args {
    /// The argument for parameter `i` named `name`.
    fn get(&self, i: usize, name: &str) -> Option<&Val> {
        if let Some((_, v)) = self.0.iter().find(|(n, _)| n.as_deref() == Some(name)) {
            return Some(v);
        }
        self.0
            .iter()
            .filter(|(n, _)| n.is_none())
            .nth(i)
            .map(|(_, v)| v)
    }

    fn need(&self, i: usize, name: &str) -> Res<&Val> {
        self.get(i, name)
            .ok_or_else(|| format!("missing argument `{name}`").into())
    }
}

fn t(v: &Val) -> Res<NodeId> {
    match v {
        Val::T(n) => Ok(*n),
        other => Err(format!("expected a tensor, found a {}", other.kind()).into()),
    }
}

/// NumPy's `take_along_axis`: `out[.., j, ..] = x[.., idx[.., j, ..], ..]` along `ax`,
/// for `idx` of `x`'s shape except (perhaps) along `ax` — one `gather` of the
/// flattened `x` by `row · n + idx`, so the gradient flows back by a scatter.
fn take_along_axis(lw: &mut Lowerer<'_, '_>, x: NodeId, idx: NodeId, ax: usize) -> Res<NodeId> {
    let rank = lw.em.shape(x).len();
    // The axis last.
    let mut perm: Vec<usize> = (0..rank).filter(|&d| d != ax).collect();
    perm.push(ax);
    let (x, idx) = if ax + 1 == rank {
        (x, idx)
    } else {
        (
            lw.em.add(Op::Transpose(perm.clone()), &[x])?,
            lw.em.add(Op::Transpose(perm.clone()), &[idx])?,
        )
    };
    let (xs, is) = (lw.em.shape(x), lw.em.shape(idx));
    let n = xs[rank - 1];
    let rows: usize = xs[..rank - 1].iter().product();
    let k = is[rank - 1];
    let flat_x = lw.em.reshape(x, &[rows * n])?;
    let idx2 = lw.em.reshape(idx, &[rows, k])?;
    let row = lw.em.add(
        Op::Iota {
            dtype: DType::I64,
            shape: vec![rows, k],
            axis: 0,
        },
        &[],
    )?;
    let n_c = lw.em.constant(n as f64, DType::I64)?;
    let base = lw.em.binary(BinaryOp::Mul, row, n_c)?;
    let flat_idx = lw.em.binary(BinaryOp::Add, base, idx2)?;
    let picked = lw.em.add(Op::Gather { axis: 0 }, &[flat_x, flat_idx])?;
    let picked = lw.em.reshape(picked, &is)?;
    if ax + 1 == rank {
        return Ok(picked);
    }
    // Back to the original order of axes.
    let mut inverse = vec![0; rank];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    lw.em.add(Op::Transpose(inverse), &[picked])
}

fn int(v: &Val) -> Res<i64> {
    match v {
        Val::Int(i) => Ok(*i),
        other => Err(format!("expected an Int, found a {}", other.kind()).into()),
    }
}

/// A non-negative static `Int`, `default` when absent.
fn count(v: Option<&Val>, default: usize) -> Res<usize> {
    match v {
        None => Ok(default),
        Some(v) => usize::try_from(int(v)?).map_err(|_| "a negative size".into()),
    }
}

fn float(v: &Val) -> Res<f64> {
    match v {
        Val::Int(i) => Ok(*i as f64),
        Val::Float(x) => Ok(*x),
        other => Err(format!("expected a Float, found a {}", other.kind()).into()),
    }
}

fn shape_of(v: &Val) -> Res<Vec<i64>> {
    match v {
        Val::Shape(s) => Ok(s.iter().map(|&d| d as i64).collect()),
        Val::List(items) => {
            let mut out = Vec::new();
            for i in items {
                match i {
                    Val::Shape(s) => out.extend(s.iter().map(|&d| d as i64)),
                    other => out.push(int(other)?),
                }
            }
            Ok(out)
        }
        other => Err(format!("expected a shape, found a {}", other.kind()).into()),
    }
}

fn concrete(s: &[i64]) -> Res<Vec<usize>> {
    s.iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("invalid dimension {d}").into()))
        .collect()
}

fn axis(v: i64, rank: usize) -> Res<usize> {
    let a = if v < 0 { v + rank as i64 } else { v };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| format!("axis {v} out of range for rank {rank}").into())
}

/// The one axis of a builtin that works along one (`softmax`, `argmax`, `sort`, ...):
/// absent (the last), an `Int`, or a list of one `Int`, as the checker accepts.
fn one_axis(v: Option<&Val>, rank: usize) -> Res<usize> {
    one_axis_or(v, rank, -1)
}

/// [`one_axis`] with another default.
fn one_axis_or(v: Option<&Val>, rank: usize, default: i64) -> Res<usize> {
    match v {
        None => axis(default, rank),
        Some(Val::List(l)) if l.len() == 1 => axis(int(&l[0])?, rank),
        Some(v) => axis(int(v)?, rank),
    }
}

fn axes(v: Option<&Val>, rank: usize) -> Res<Vec<usize>> {
    match v {
        None => Ok((0..rank).collect()),
        Some(Val::Int(a)) => Ok(vec![axis(*a, rank)?]),
        Some(Val::List(l)) => l.iter().map(|a| axis(int(a)?, rank)).collect(),
        Some(other) => Err(format!("expected an axis, found a {}", other.kind()).into()),
    }
}

pub fn call(
    lw: &mut Lowerer<'_, '_>,
    name: &'static str,
    args: Vec<(Option<String>, Val)>,
) -> Res<Val> {
    let a = Args(args);
    let unary = |n: &str| -> Option<UnaryOp> {
        Some(match n {
            "exp" => UnaryOp::Exp,
            "log" => UnaryOp::Log,
            "sqrt" => UnaryOp::Sqrt,
            "rsqrt" => UnaryOp::Rsqrt,
            "abs" => UnaryOp::Abs,
            "sign" => UnaryOp::Sign,
            "sin" => UnaryOp::Sin,
            "cos" => UnaryOp::Cos,
            "tanh" => UnaryOp::Tanh,
            "erf" => UnaryOp::Erf,
            "floor" => UnaryOp::Floor,
            "ceil" => UnaryOp::Ceil,
            _ => return None,
        })
    };
    if let Some(u) = unary(name) {
        let x = tensor(lw, a.need(0, "x")?, Some(DType::F32))?;
        return Ok(Val::T(lw.em.unary(u, x)?));
    }
    let out = match name {
        "sum" | "max" | "min" | "mean" => {
            let x = t(a.need(0, "x")?)?;
            let rank = lw.em.shape(x).len();
            let ax = axes(a.get(1, "axis"), rank)?;
            let keep = matches!(a.get(2, "keepdims"), Some(Val::Bool(true)));
            match name {
                "mean" => lw.em.mean(x, &ax, keep)?,
                "sum" => lw.em.reduce(ReduceKind::Sum, x, &ax, keep)?,
                "max" => lw.em.reduce(ReduceKind::Max, x, &ax, keep)?,
                _ => lw.em.reduce(ReduceKind::Min, x, &ax, keep)?,
            }
        }
        "argmax" | "argmin" => {
            let x = t(a.need(0, "x")?)?;
            let rank = lw.em.shape(x).len();
            let ax = one_axis(a.get(1, "axis"), rank)?;
            let op = if name == "argmax" {
                Op::ArgMax { axis: ax }
            } else {
                Op::ArgMin { axis: ax }
            };
            lw.em.add(op, &[x])?
        }
        // Stably: the maximum (held fixed) subtracted first, as PyTorch does.
        "softmax" | "log_softmax" => {
            let x = tensor(lw, a.need(0, "x")?, Some(DType::F32))?;
            let rank = lw.em.shape(x).len();
            let ax = [one_axis(a.get(1, "axis"), rank)?];
            let m = lw.em.reduce(ReduceKind::Max, x, &ax, true)?;
            let m = lw.em.add(Op::StopGradient, &[m])?;
            let z = lw.em.binary(BinaryOp::Sub, x, m)?;
            let e = lw.em.unary(UnaryOp::Exp, z)?;
            let s = lw.em.reduce(ReduceKind::Sum, e, &ax, true)?;
            if name == "softmax" {
                lw.em.binary(BinaryOp::Div, e, s)?
            } else {
                let l = lw.em.unary(UnaryOp::Log, s)?;
                lw.em.binary(BinaryOp::Sub, z, l)?
            }
        }
        "argsort" | "sort" | "topk" | "argtopk" => {
            let x = t(a.need(0, "x")?)?;
            let shape = lw.em.shape(x);
            let top = matches!(name, "topk" | "argtopk");
            let ax = one_axis(a.get(if top { 2 } else { 1 }, "axis"), shape.len())?;
            let descending = top || matches!(a.get(2, "descending"), Some(Val::Bool(true)));
            let mut idx = lw.em.add(
                Op::ArgSort {
                    axis: ax,
                    descending,
                },
                &[x],
            )?;
            if top {
                let k = usize::try_from(int(a.need(1, "k")?)?)
                    .ok()
                    .filter(|&k| k >= 1 && k <= shape[ax])
                    .ok_or_else(|| format!("`k` must be 1 to {} here", shape[ax]))?;
                let mut ends = shape.clone();
                ends[ax] = k;
                let op = Op::Slice {
                    starts: vec![0; shape.len()],
                    ends,
                    steps: vec![1; shape.len()],
                };
                idx = lw.em.add(op, &[idx])?;
            }
            if matches!(name, "argsort" | "argtopk") {
                idx
            } else {
                take_along_axis(lw, x, idx, ax)?
            }
        }
        "maximum" | "minimum" => {
            let (x, y) = (a.need(0, "a")?.clone(), a.need(1, "b")?.clone());
            return elementwise(
                lw,
                if name == "maximum" {
                    BinaryOp::Max
                } else {
                    BinaryOp::Min
                },
                x,
                y,
            );
        }
        "select" | "where" => {
            let c = t(a.need(0, "cond")?)?;
            let x = a.need(1, "a")?.clone();
            let y = a.need(2, "b")?.clone();
            let like = [&x, &y].iter().find_map(|v| {
                if let Val::T(n) = v {
                    Some(lw.em.dtype(*n))
                } else {
                    None
                }
            });
            let xt = tensor(lw, &x, like.or(Some(DType::F32)))?;
            let yt = tensor(lw, &y, like.or(Some(DType::F32)))?;
            lw.em.select(c, xt, yt)?
        }
        "matmul" => lw.em.matmul(t(a.need(0, "a")?)?, t(a.need(1, "b")?)?)?,
        "reshape" => {
            let x = t(a.need(0, "x")?)?;
            let mut s = shape_of(a.need(1, "shape")?)?;
            let n: usize = lw.em.shape(x).iter().product();
            if let Some(i) = s.iter().position(|&d| d == -1) {
                let rest: i64 = s
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, d)| *d)
                    .product();
                s[i] = if rest == 0 { 0 } else { n as i64 / rest };
            }
            lw.em.reshape(x, &concrete(&s)?)?
        }
        "transpose" => {
            let x = t(a.need(0, "x")?)?;
            let rank = lw.em.shape(x).len();
            let perm = match a.get(1, "perm") {
                Some(p) => axes(Some(p), rank)?,
                None => {
                    let mut p: Vec<usize> = (0..rank).collect();
                    p.swap(rank - 1, rank - 2);
                    p
                }
            };
            lw.em.add(Op::Transpose(perm), &[x])?
        }
        "broadcast_to" => {
            let x = t(a.need(0, "x")?)?;
            let s = concrete(&shape_of(a.need(1, "shape")?)?)?;
            lw.em.broadcast_to(x, &s)?
        }
        "concat" => {
            let items = match a.need(0, "tensors")? {
                Val::List(v) | Val::Tuple(v) => v.clone(),
                other => return Err(format!("concat of a {}", other.kind()).into()),
            };
            let nodes: Vec<NodeId> = items.iter().map(t).collect::<Res<_>>()?;
            let rank = lw.em.shape(nodes[0]).len();
            let ax = one_axis_or(a.get(1, "axis"), rank, 0)?;
            lw.em.add(Op::Concat { axis: ax }, &nodes)?
        }
        "pad" => {
            let x = t(a.need(0, "x")?)?;
            let Val::List(rows) = a.need(1, "pads")? else {
                return Err("pad needs pairs".into());
            };
            let mut lo = Vec::new();
            let mut hi = Vec::new();
            for r in rows {
                let Val::List(p) = r else {
                    return Err("pad needs pairs".into());
                };
                lo.push(usize::try_from(int(&p[0])?).map_err(|_| "negative padding")?);
                hi.push(usize::try_from(int(&p[1])?).map_err(|_| "negative padding")?);
            }
            let value = a.get(2, "value").map_or(Ok(0.0), float)?;
            lw.em.add(Op::Pad { lo, hi, value }, &[x])?
        }
        "conv2d" => {
            let x = tensor(lw, a.need(0, "x")?, Some(DType::F32))?;
            let w = tensor(lw, a.need(1, "w")?, Some(DType::F32))?;
            let opts = crate::conv::ConvOpts {
                stride: count(a.get(2, "stride"), 1)?,
                padding: count(a.get(3, "padding"), 0)?,
                dilation: count(a.get(4, "dilation"), 1)?,
                groups: count(a.get(5, "groups"), 1)?,
                same: matches!(a.get(6, "same"), Some(Val::Bool(true))),
            };
            crate::conv::conv2d(&mut lw.em, x, w, opts)?
        }
        "max_pool2d" | "avg_pool2d" => {
            let x = tensor(lw, a.need(0, "x")?, Some(DType::F32))?;
            let k = count(Some(a.need(1, "kernel")?), 0)?;
            let stride = count(a.get(2, "stride"), k)?;
            let padding = count(a.get(3, "padding"), 0)?;
            let avg = name == "avg_pool2d";
            crate::conv::pool2d(&mut lw.em, x, k, stride, padding, avg)?
        }
        "gather" => {
            let x = t(a.need(0, "x")?)?;
            let idx = t(a.need(1, "indices")?)?;
            let rank = lw.em.shape(x).len();
            let ax = one_axis_or(a.get(2, "axis"), rank, 0)?;
            let rows = lw.em.shape(x)[ax];
            lw.em.limit_index(idx, rows);
            lw.em.add(Op::Gather { axis: ax }, &[x, idx])?
        }
        "one_hot" => {
            let labels = t(a.need(0, "labels")?)?;
            let n = usize::try_from(int(a.need(1, "n")?)?).map_err(|_| "negative class count")?;
            one_hot(lw, labels, n)?
        }
        "flip" => {
            // The elements along `axis` (the first by default) in reverse order: a
            // gather of `n - 1, ..., 0`, whose derivative scatters back.
            let x = t(a.need(0, "x")?)?;
            let shape = lw.em.shape(x);
            let ax = one_axis_or(a.get(1, "axis"), shape.len(), 0)?;
            let n = shape[ax];
            let iota = lw.em.add(
                Op::Iota {
                    dtype: DType::I64,
                    shape: vec![n],
                    axis: 0,
                },
                &[],
            )?;
            let last = lw.em.full(n.saturating_sub(1) as f64, DType::I64, &[n])?;
            let idx = lw.em.binary(BinaryOp::Sub, last, iota)?;
            lw.em.add(Op::Gather { axis: ax }, &[x, idx])?
        }
        "arange" => {
            let n =
                usize::try_from(int(a.need(0, "n")?)?).map_err(|_| "negative `arange` length")?;
            lw.em.add(
                Op::Iota {
                    dtype: DType::I64,
                    shape: vec![n],
                    axis: 0,
                },
                &[],
            )?
        }
        "cast" => {
            let x = tensor(lw, a.need(0, "x")?, None)?;
            let Val::DType(d) = a.need(1, "dtype")? else {
                return Err("cast needs an element type".into());
            };
            lw.em.cast(x, *d)?
        }
        "shape" => return Ok(Val::Shape(lw.em.shape(t(a.need(0, "x")?)?))),
        "zeros" | "ones" | "full" => {
            let s = concrete(&shape_of(a.need(0, "shape")?)?)?;
            let v = match name {
                "zeros" => 0.0,
                "ones" => 1.0,
                _ => float(a.need(1, "value")?)?,
            };
            lw.em.full(v, DType::F32, &s)?
        }
        "uniform" | "normal" => {
            let s = concrete(&shape_of(a.need(0, "shape")?)?)?;
            let dist = if name == "uniform" {
                Dist::Uniform {
                    low: a.get(1, "low").map_or(Ok(0.0), float)?,
                    high: a.get(2, "high").map_or(Ok(1.0), float)?,
                }
            } else {
                Dist::Normal {
                    mean: a.get(1, "mean").map_or(Ok(0.0), float)?,
                    std: a.get(2, "std").map_or(Ok(1.0), float)?,
                }
            };
            let key = lw.rng_key()?;
            let salt = lw.em.salt();
            lw.em.add(
                Op::Random {
                    dist,
                    shape: s,
                    salt,
                },
                &[key],
            )?
        }
        "bernoulli" => {
            let s = concrete(&shape_of(a.need(1, "shape")?)?)?;
            let p = tensor(lw, a.need(0, "p")?, Some(DType::F32))?;
            let p = lw.em.broadcast_to(p, &s)?;
            let key = lw.rng_key()?;
            let salt = lw.em.salt();
            lw.em.add(
                Op::Random {
                    dist: Dist::Bernoulli,
                    shape: s,
                    salt,
                },
                &[key, p],
            )?
        }
        "stop_grad" => match a.need(0, "x")? {
            Val::T(x) => lw.em.add(Op::StopGradient, &[*x])?,
            other => return Ok(other.clone()),
        },
        "assign" => {
            let target = t(a.need(0, "buffer")?)?;
            let value = t(a.need(1, "value")?)?;
            lw.assign(target, value)?;
            value
        }
        "grad" => {
            let f = tensor(lw, a.need(0, "f")?, Some(DType::F32))?;
            let wrt = t(a.need(1, "wrt")?)?;
            // Reverse mode on the graph built so far: the gradient is ordinary nodes,
            // so an outer `grad` or the training step differentiates it again.
            dnnc_passes::autodiff::gradients(lw.em.g, f, &[wrt])?[0]
        }
        "accuracy" | "top_k_accuracy" => {
            let logits = t(a.need(0, "logits")?)?;
            let labels = t(a.need(1, "labels")?)?;
            let k = if name == "accuracy" {
                1
            } else {
                a.get(2, "k").map_or(Ok(5), int)?
            };
            accuracy(lw, logits, labels, k)?
        }
        "idx" | "npy" | "csv" | "text" => return crate::dataset::loader(lw, name, &a.0),
        other => return Err(format!("builtin `{other}` has no lowering").into()),
    };
    Ok(Val::T(out))
}

fn elementwise(lw: &mut Lowerer<'_, '_>, op: BinaryOp, x: Val, y: Val) -> Res<Val> {
    let like = [&x, &y].iter().find_map(|v| {
        if let Val::T(n) = v {
            Some(lw.em.dtype(*n))
        } else {
            None
        }
    });
    let like = like.unwrap_or(DType::F32);
    let a = tensor(lw, &x, Some(like))?;
    let b = tensor(lw, &y, Some(like))?;
    let target = if lw.em.dtype(a).is_float() || lw.em.dtype(b).is_float() {
        DType::F32
    } else {
        like
    };
    let a = lw.em.cast(a, target)?;
    let b = lw.em.cast(b, target)?;
    Ok(Val::T(lw.em.binary(op, a, b)?))
}

/// `[.., n]` floats, 1 where `iota == label`.
pub fn one_hot(lw: &mut Lowerer<'_, '_>, labels: NodeId, n: usize) -> Res<NodeId> {
    lw.em.limit_index(labels, n);
    let mut s = lw.em.shape(labels);
    let labels = lw.em.cast(labels, DType::I64)?;
    let mut expanded = s.clone();
    expanded.push(1);
    let l = lw.em.reshape(labels, &expanded)?;
    s.push(n);
    let axis = s.len() - 1;
    let iota = lw.em.add(
        Op::Iota {
            dtype: DType::I64,
            shape: s.clone(),
            axis,
        },
        &[],
    )?;
    let l = lw.em.broadcast_to(l, &s)?;
    let eq = lw.em.add(Op::Binary(BinaryOp::Eq), &[iota, l])?;
    lw.em.cast(eq, DType::F32)
}

/// The fraction of rows whose label is among the `k` largest logits, ranked as
/// `torch.topk`/`argmax` rank them: a tie goes to the lower class index, and a NaN logit
/// ranks above every number, so a row whose own logit is NaN (or that ties an earlier
/// class) is a miss — all-zero logits give an accuracy of 1/C at most, never 1.
fn accuracy(lw: &mut Lowerer<'_, '_>, logits: NodeId, labels: NodeId, k: i64) -> Res<NodeId> {
    // Written with `f32` comparisons and selects only, so that it fuses into a few
    // loops (class indices are exact in `f32` below 2^24).
    // Every leading axis is a sample: `[B, T, C]` logits count each position.
    let full = lw.em.shape(logits);
    let classes = *full.last().ok_or("`accuracy` of a scalar")?;
    let rows: usize = full[..full.len() - 1].iter().product();
    let logits = lw.em.reshape(logits, &[rows, classes])?;
    let labels = lw.em.reshape(labels, &[rows])?;
    let s = vec![rows, classes];
    lw.em.limit_index(labels, classes);
    let labels = lw.em.cast(labels, DType::F32)?;
    let labels = lw.em.reshape(labels, &[rows, 1])?;
    let class = lw.em.add(
        Op::Iota {
            dtype: DType::F32,
            shape: s.clone(),
            axis: 1,
        },
        &[],
    )?;
    let (zero, one) = (
        lw.em.constant(0.0, DType::F32)?,
        lw.em.constant(1.0, DType::F32)?,
    );
    let is_label = lw.em.binary(BinaryOp::Eq, class, labels)?;
    let picked = lw.em.select(is_label, logits, zero)?;
    // The label's own logit, exactly (the other terms are zeros).
    let label_logit = lw.em.reduce(ReduceKind::Sum, picked, &[1], true)?;
    // Class `j` ranks above the label when its logit is larger, or equal with a
    // lower index, or NaN: `!(x_j < x_l)` before the label, `!(x_j <= x_l)` from it.
    let lt = lw.em.binary(BinaryOp::Lt, logits, label_logit)?;
    let not_lt = lw.em.select(lt, zero, one)?;
    let le = lw.em.binary(BinaryOp::Le, logits, label_logit)?;
    let not_le = lw.em.select(le, zero, one)?;
    let before = lw.em.binary(BinaryOp::Lt, class, labels)?;
    let above = lw.em.select(before, not_lt, not_le)?;
    let rank = lw.em.reduce(ReduceKind::Sum, above, &[1], false)?;
    let kk = lw.em.constant(k as f64, DType::F32)?;
    let in_top = lw.em.binary(BinaryOp::Lt, rank, kk)?;
    let in_top = lw.em.select(in_top, one, zero)?;
    let label_logit = lw.em.reshape(label_logit, &[rows])?;
    let not_nan = lw.em.binary(BinaryOp::Eq, label_logit, label_logit)?;
    let hit = lw.em.select(not_nan, in_top, zero)?;
    lw.em.mean(hit, &[0], false)
}
