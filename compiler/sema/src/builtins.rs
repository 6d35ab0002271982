//! The primitive functions every file can call, with their shape rules.
//!
//! Each primitive has exactly one entry here: its parameter list and its rule from
//! argument types to result type. The IR (a later stage) gives each the matching
//! derivative and interpreter rules. Layers and most activations are not here: they
//! are written in `.dnn` in `stdlib/`.

use std::sync::Arc;

use dnnc_diagnostics::{codes, Diagnostic, Span};

use crate::checker::Checker;
use crate::dim::Dim;
use crate::infer::ArgVal;
use crate::ty::{DType, DimItem, Shape, TensorTy, Ty};

/// A parameter of a builtin: its name and whether it may be omitted.
struct P(&'static str, bool);

const UNARY: &[&str] = &[
    "exp", "log", "sqrt", "rsqrt", "abs", "sign", "sin", "cos", "tanh", "erf", "floor", "ceil",
];
const REDUCE: &[&str] = &["sum", "mean", "max", "min"];
const OTHER: &[&str] = &[
    "maximum",
    "minimum",
    "select",
    "where",
    "argmax",
    "argmin",
    "softmax",
    "log_softmax",
    "argsort",
    "sort",
    "topk",
    "argtopk",
    "matmul",
    "reshape",
    "transpose",
    "broadcast_to",
    "concat",
    "pad",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "gather",
    "one_hot",
    "arange",
    "flip",
    "cast",
    "shape",
    "zeros",
    "ones",
    "full",
    "uniform",
    "normal",
    "bernoulli",
    "stop_grad",
    "grad",
    "assign",
    "accuracy",
    "top_k_accuracy",
];
const LOADERS: &[&str] = &["idx", "npy", "csv", "text"];

/// Every builtin name (loaders only inside datasets).
pub fn names(in_dataset: bool) -> impl Iterator<Item = &'static str> {
    UNARY
        .iter()
        .chain(REDUCE)
        .chain(OTHER)
        .chain(if in_dataset { LOADERS } else { &[] })
        .copied()
        .chain(["training"])
        .chain(DType::ALL.iter().map(|d| d.name()))
}

/// The type of a builtin name used as a value.
pub fn lookup(name: &str, in_dataset: bool) -> Option<Ty> {
    if name == "training" {
        return Some(Ty::Bool(None));
    }
    if let Some(d) = DType::from_name(name) {
        return Some(Ty::DTypeVal(d));
    }
    names(in_dataset).find(|n| *n == name).map(Ty::Builtin)
}

/// The std module defining a well-known name, for "import it" hints.
pub fn std_module_of(name: &str) -> Option<&'static str> {
    Some(match name {
        "Dense" | "Conv2d" | "MaxPool2d" | "AvgPool2d" | "GlobalAvgPool2d" | "BatchNorm2d"
        | "BatchNorm1d" | "LayerNorm" | "Embedding" | "Dropout" | "Flatten" => "nn",
        "relu" | "leaky_relu" | "sigmoid" | "gelu" | "softplus" | "silu" | "elu" => "activations",
        "cross_entropy" | "mse" | "mae" | "bce_logits" => "losses",
        "dropout" | "l1_penalty" | "l2_penalty" => "regularization",
        "flatten" => "shape",
        _ => return None,
    })
}

/// Builtins that a std module also offers, so `use std::activations::softmax` (from
/// when it was written in `.dnn`) keeps working: a symbolic `axis` cannot be checked
/// inside a generic `.dnn` function, so these are builtins.
const STD_BUILTINS: &[(&str, &str)] = &[("activations", "softmax"), ("activations", "log_softmax")];

/// Whether std module `module` offers builtin `name`.
pub fn std_builtin(module: &str, name: &str) -> bool {
    STD_BUILTINS.contains(&(module, name))
}

/// The builtins std module `module` offers.
pub fn std_builtins_of(module: &str) -> impl Iterator<Item = &'static str> + '_ {
    STD_BUILTINS
        .iter()
        .filter(move |(m, _)| *m == module)
        .map(|(_, n)| *n)
}

/// The parameter names of builtin `name` and whether each may be omitted.
pub fn param_names(name: &str) -> Vec<(&'static str, bool)> {
    params(name).iter().map(|p| (p.0, p.1)).collect()
}

fn params(name: &str) -> &'static [P] {
    match name {
        n if UNARY.contains(&n) => &[P("x", false)],
        "stop_grad" => &[P("x", false)],
        n if REDUCE.contains(&n) => &[P("x", false), P("axis", true), P("keepdims", true)],
        "argmax" | "argmin" | "softmax" | "log_softmax" => &[P("x", false), P("axis", true)],
        "argsort" | "sort" => &[P("x", false), P("axis", true), P("descending", true)],
        "topk" | "argtopk" => &[P("x", false), P("k", false), P("axis", true)],
        "maximum" | "minimum" | "matmul" => &[P("a", false), P("b", false)],
        "select" | "where" => &[P("cond", false), P("a", false), P("b", false)],
        "reshape" | "broadcast_to" => &[P("x", false), P("shape", false)],
        "transpose" => &[P("x", false), P("perm", true)],
        "concat" => &[P("tensors", false), P("axis", true)],
        "pad" => &[P("x", false), P("pads", false), P("value", true)],
        "conv2d" => &[
            P("x", false),
            P("w", false),
            P("stride", true),
            P("padding", true),
            P("dilation", true),
            P("groups", true),
            P("same", true),
        ],
        "max_pool2d" | "avg_pool2d" => &[
            P("x", false),
            P("kernel", false),
            P("stride", true),
            P("padding", true),
        ],
        "gather" => &[P("x", false), P("indices", false), P("axis", true)],
        "one_hot" => &[P("labels", false), P("n", false)],
        "arange" => &[P("n", false)],
        "flip" => &[P("x", false), P("axis", true)],
        "cast" => &[P("x", false), P("dtype", false)],
        "shape" => &[P("x", false)],
        "zeros" | "ones" => &[P("shape", false)],
        "full" => &[P("shape", false), P("value", false)],
        "uniform" => &[P("shape", false), P("low", true), P("high", true)],
        "normal" => &[P("shape", false), P("mean", true), P("std", true)],
        "bernoulli" => &[P("p", false), P("shape", false)],
        "grad" => &[P("f", false), P("wrt", false)],
        "assign" => &[P("buffer", false), P("value", false)],
        "accuracy" => &[P("logits", false), P("labels", false)],
        "top_k_accuracy" => &[P("logits", false), P("labels", false), P("k", true)],
        "idx" | "npy" => &[P("path", false)],
        "csv" => &[P("path", false), P("header", true)],
        "text" => &[
            P("path", false),
            P("window", false),
            P("from", true),
            P("to", true),
            P("bytes", true),
        ],
        _ => &[],
    }
}

/// Checks a call to builtin `name` and returns its result type.
pub fn call(cx: &mut Checker<'_>, name: &'static str, args: &[ArgVal], span: Span) -> Ty {
    let ps = params(name);
    let names: Vec<(&str, bool)> = ps.iter().map(|p| (p.0, p.1)).collect();
    let Some(bound) = cx.bind_args(name, &names, args, span) else {
        return Ty::Error;
    };
    let get = |i: usize| bound.get(i).and_then(|a| a.as_ref());
    if bound.iter().flatten().any(|a| a.ty.is_error()) {
        return Ty::Error;
    }
    let mut r = Rules { cx, name, span };
    match name {
        n if UNARY.contains(&n) => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            let float_only = !matches!(n, "abs" | "sign");
            if float_only && !x.dtype.is_float() {
                return r.dtype_error(get(0), &x, "a floating-point tensor");
            }
            Ty::Tensor(x)
        }
        "stop_grad" => get(0).map_or(Ty::Error, |a| a.ty.clone()),
        n if REDUCE.contains(&n) => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            let keep = r.static_bool(get(2), false);
            let axes = match r.axes(get(1), &x.shape) {
                Some(a) => a,
                None => return Ty::Error,
            };
            let dtype = if n == "mean" && !x.dtype.is_float() {
                DType::F32
            } else {
                x.dtype
            };
            Ty::tensor(dtype, reduce_shape(&x.shape, axes.as_deref(), keep))
        }
        "argmax" | "argmin" => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            let axis = match get(1) {
                None => Some(vec![normalize_axis_from_end(&x.shape)]),
                some => r.axes(some, &x.shape).map(|a| a.unwrap_or_default()),
            };
            let Some(axis) = axis else { return Ty::Error };
            Ty::tensor(DType::I64, reduce_shape(&x.shape, Some(&axis), false))
        }
        // Softmax along one axis (the last by default): `x`'s type.
        "softmax" | "log_softmax" => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            if !x.dtype.is_float() {
                return r.dtype_error(get(0), &x, "a floating-point tensor");
            }
            match r.one_axis(get(1), get(0), &x) {
                Some(_) => Ty::Tensor(x),
                None => Ty::Error,
            }
        }
        // `sort` and `topk` are differentiable (their values are gathered from `x`);
        // the indices are `i64`.
        "argsort" | "sort" | "topk" | "argtopk" => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            if x.dtype == DType::Bool {
                return r.dtype_error(get(0), &x, "a tensor of numbers");
            }
            let top = matches!(name, "topk" | "argtopk");
            let Some(axis) = r.one_axis(get(if top { 2 } else { 1 }), get(0), &x) else {
                return Ty::Error;
            };
            let mut shape = x.shape.clone();
            if top {
                let Some(k) = r.static_dim(get(1)) else {
                    return Ty::Error;
                };
                let Some(DimItem::Dim(n)) = x.shape.0.get(axis) else {
                    r.fail(
                        codes::BAD_AXIS,
                        span,
                        format!("`{name}` needs an axis of known size"),
                    );
                    return Ty::Error;
                };
                let too_many = match (k.as_const(), n.as_const()) {
                    (Some(k), _) if k < 1 => Some(format!("`k` is {k}; take at least 1")),
                    (Some(k), Some(n)) if k > n => {
                        Some(format!("`k` is {k}, but the axis has {n} elements"))
                    }
                    _ => None,
                };
                if let Some(msg) = too_many {
                    let at = get(1).map_or(span, |a| a.span);
                    r.fail(codes::BAD_DIM, at, msg);
                    return Ty::Error;
                }
                shape.0[axis] = DimItem::Dim(k);
            } else {
                let _ = r.static_bool(get(2), false);
            }
            if matches!(name, "argsort" | "argtopk") {
                Ty::tensor(DType::I64, shape)
            } else {
                Ty::tensor(x.dtype, shape)
            }
        }
        "maximum" | "minimum" => r.cx.elementwise(get(0), get(1), span, name),
        "matmul" => match (get(0), get(1)) {
            (Some(a), Some(b)) => r.cx.matmul(a, b, span),
            _ => Ty::Error,
        },
        // `where` is NumPy's and PyTorch's name for `select`.
        "select" | "where" => {
            let Some(c) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            if c.dtype != DType::Bool {
                return r.dtype_error(get(0), &c, "a `bool` tensor");
            }
            let v = r.cx.elementwise(get(1), get(2), span, name);
            let Ty::Tensor(v) = v else { return v };
            match crate::infer::broadcast(&c.shape, &v.shape) {
                Ok(s) => Ty::tensor(v.dtype, s),
                Err(msg) => {
                    r.cx.broadcast_error(get(0), get(1), &Ty::Tensor(c), &Ty::Tensor(v), span, &msg)
                }
            }
        }
        "reshape" => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            let Some(target) = r.shape(get(1), true) else {
                return Ty::Error;
            };
            r.reshape(&x, target, get(1))
        }
        "broadcast_to" => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            let Some(target) = r.shape(get(1), false) else {
                return Ty::Error;
            };
            match crate::infer::broadcast(&x.shape, &target) {
                Ok(s) if s == target => Ty::tensor(x.dtype, target),
                _ => r.fail(
                    codes::NOT_BROADCASTABLE,
                    get(0).map_or(span, |a| a.span),
                    format!("cannot broadcast `{x}` to `{target}`"),
                ),
            }
        }
        "transpose" => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            r.transpose(&x, get(1))
        }
        "concat" => r.concat(get(0), get(1)),
        "pad" => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            r.pad(&x, get(1))
        }
        "conv2d" => {
            let (Some(x), Some(w)) = (r.tensor(get(0)), r.tensor(get(1))) else {
                return Ty::Error;
            };
            r.conv2d(
                &x,
                &w,
                [get(0), get(1), get(2), get(3), get(4), get(5), get(6)],
            )
        }
        "max_pool2d" | "avg_pool2d" => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            r.pool2d(&x, [get(0), get(1), get(2), get(3)])
        }
        "gather" => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            let Some(idx) = r.tensor(get(1)) else {
                return Ty::Error;
            };
            if !idx.dtype.is_int() {
                return r.dtype_error(get(1), &idx, "an integer tensor");
            }
            let Some(axes) = r.axes(get(2).or(None), &x.shape) else {
                return Ty::Error;
            };
            let axis = axes.and_then(|a| a.first().copied()).unwrap_or(0);
            let mut items = x.shape.0[..axis].to_vec();
            items.extend(idx.shape.0.iter().cloned());
            items.extend(x.shape.0[axis + 1..].iter().cloned());
            if items
                .iter()
                .filter(|d| matches!(d, DimItem::Pack(_)))
                .count()
                > 1
            {
                return r.fail(codes::BAD_DIM, span, "the result would have two packs");
            }
            Ty::tensor(x.dtype, Shape(items))
        }
        "one_hot" => {
            let Some(l) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            if !l.dtype.is_int() {
                return r.dtype_error(get(0), &l, "an integer tensor");
            }
            let Some(n) = r.static_dim(get(1)) else {
                return Ty::Error;
            };
            let mut s = l.shape.clone();
            s.0.push(DimItem::Dim(n));
            Ty::tensor(DType::F32, s)
        }
        "flip" => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            if get(1).is_some() && r.axes(get(1), &x.shape).is_none() {
                return Ty::Error;
            }
            Ty::Tensor(x)
        }
        "arange" => {
            let Some(n) = r.static_dim(get(0)) else {
                return Ty::Error;
            };
            Ty::tensor(DType::I64, Shape(vec![DimItem::Dim(n)]))
        }
        "cast" => {
            let Some(x) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            match get(1).map(|a| &a.ty) {
                Some(Ty::DTypeVal(d)) => Ty::tensor(*d, x.shape),
                _ => r.fail(
                    codes::TYPE_MISMATCH,
                    get(1).map_or(span, |a| a.span),
                    "`cast` takes an element type such as `f32`",
                ),
            }
        }
        "shape" => match r.tensor(get(0)) {
            Some(x) => Ty::ShapeVal(x.shape),
            None => Ty::Error,
        },
        "zeros" | "ones" | "full" | "uniform" | "normal" => {
            let Some(s) = r.shape(get(0), false) else {
                return Ty::Error;
            };
            for i in 1..3 {
                r.static_float(get(i));
            }
            Ty::tensor(DType::F32, s)
        }
        "bernoulli" => {
            let Some(s) = r.shape(get(1), false) else {
                return Ty::Error;
            };
            // `p` is a probability: a static number, or a float tensor that broadcasts.
            match get(0).map(|a| &a.ty) {
                Some(Ty::Tensor(p)) if p.dtype.is_float() => {
                    match crate::infer::broadcast(&p.shape, &s) {
                        Ok(b) if b == s => {}
                        _ => {
                            let msg =
                                format!("`p` of shape `{}` does not broadcast to `{s}`", p.shape);
                            return r.fail(
                                codes::NOT_BROADCASTABLE,
                                get(0).map_or(span, |a| a.span),
                                msg,
                            );
                        }
                    }
                }
                _ => r.static_float(get(0)),
            }
            Ty::tensor(DType::Bool, s)
        }
        "grad" => {
            let Some(f) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            if f.shape.rank() != Some(0) {
                return r.fail(
                    codes::LOSS_NOT_SCALAR,
                    get(0).map_or(span, |a| a.span),
                    format!("`grad` differentiates a scalar, found `{f}`"),
                );
            }
            if !f.dtype.is_float() {
                return r.dtype_error(get(0), &f, "a float scalar to differentiate");
            }
            match get(1).map(|a| a.ty.clone()) {
                Some(Ty::Tensor(w)) if !w.dtype.is_float() => r.dtype_error(
                    get(1),
                    &w,
                    "a float tensor to differentiate with respect to",
                ),
                Some(t @ Ty::Tensor(_)) => t,
                other => r.fail(
                    codes::TYPE_MISMATCH,
                    get(1).map_or(span, |a| a.span),
                    format!(
                        "`grad` is taken with respect to a tensor, found {}",
                        other.map_or("nothing", |t| t.kind_name())
                    ),
                ),
            }
        }
        "assign" => assign(&mut r, get(0), get(1)),
        "accuracy" | "top_k_accuracy" => {
            let Some(logits) = r.tensor(get(0)) else {
                return Ty::Error;
            };
            let Some(labels) = r.tensor(get(1)) else {
                return Ty::Error;
            };
            if !labels.dtype.is_int() {
                return r.dtype_error(get(1), &labels, "integer class labels");
            }
            match (logits.shape.dims(), labels.shape.dims()) {
                (Some(l), Some(y)) if l.len() >= 2 && l.len() == y.len() + 1 && l[..y.len()] == y[..] => {}
                _ => {
                    return r.fail(
                        codes::DIM_MISMATCH,
                        span,
                        format!("`{name}` takes logits `[..S, C]` and labels `[..S]` (e.g. `[B, C]` and `[B]`), found `{logits}` and `{labels}`"),
                    )
                }
            }
            if name == "top_k_accuracy" {
                r.static_dim(get(2));
            }
            Ty::scalar(DType::F32)
        }
        "idx" | "npy" | "csv" | "text" => {
            let args: Vec<Option<&ArgVal>> = (0..5).map(get).collect();
            crate::data::loader(r.cx, name, &args, span)
        }
        other => unreachable!("builtin {other}"),
    }
}

fn normalize_axis_from_end(shape: &Shape) -> usize {
    shape.0.len().saturating_sub(1)
}

/// Removes (or keeps as 1) the reduced axes; `None` reduces everything.
fn reduce_shape(shape: &Shape, axes: Option<&[usize]>, keep: bool) -> Shape {
    match axes {
        None if keep => Shape(
            shape
                .0
                .iter()
                .map(|_| DimItem::Dim(Dim::constant(1)))
                .collect(),
        ),
        None => Shape::scalar(),
        Some(axes) => Shape(
            shape
                .0
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    if axes.contains(&i) {
                        keep.then(|| DimItem::Dim(Dim::constant(1)))
                    } else {
                        Some(d.clone())
                    }
                })
                .collect(),
        ),
    }
}

/// Helpers for the rules above: argument extraction with errors.
/// `assign(buffer, value)`: `buffer` must name a buffer of the enclosing layer and
/// `value` have its type; the result is `value`.
fn assign(r: &mut Rules<'_, '_>, target: Option<&ArgVal>, value: Option<&ArgVal>) -> Ty {
    let (Some(target), Some(value)) = (target, value) else {
        return Ty::Error;
    };
    let is_buffer = match (&target.origin, &r.cx.layer) {
        (Some(o), Some(layer)) => layer.buffers.contains(o),
        _ => false,
    };
    if !is_buffer {
        let d = r
            .cx
            .err(
                codes::NOT_A_BUFFER,
                target.span,
                "`assign` must name a buffer of this layer",
            )
            .with_label("not a buffer")
            .with_help(
                "declare state that training updates as a member, e.g. `buffer running_mean: [C] = zeros`, \
                 and pass its name",
            );
        r.cx.error(d);
        return Ty::Error;
    }
    let Some(v) = r.tensor(Some(value)) else {
        return Ty::Error;
    };
    if !crate::infer::compatible(&target.ty, &Ty::Tensor(v.clone())) {
        let d =
            r.cx.err(
                codes::TYPE_MISMATCH,
                value.span,
                format!(
                    "`assign` stores `{v}` into a buffer of type `{}`",
                    target.ty
                ),
            )
            .with_label(format!("this is `{v}`"));
        let d = match target.origin {
            Some(o) => d.with_secondary(&r.cx.fname.clone(), o, "the buffer is declared here"),
            None => d,
        };
        r.cx.error(d);
        return Ty::Error;
    }
    target.ty.clone()
}

struct Rules<'c, 'db> {
    cx: &'c mut Checker<'db>,
    name: &'static str,
    span: Span,
}

/// Labels each operand with its type and, where known, where its shape was fixed.
fn operand_labels(
    mut d: Diagnostic,
    fname: &Arc<str>,
    operands: [(Option<&ArgVal>, &TensorTy); 2],
) -> Diagnostic {
    for (a, t) in operands.into_iter() {
        if let Some(a) = a {
            d = d.with_secondary(fname, a.span, format!("this is `{t}`"));
            if let Some(o) = a.origin {
                d = d.with_secondary(fname, o, "shape fixed here");
            }
        }
    }
    d
}

impl Rules<'_, '_> {
    fn fail(&mut self, code: dnnc_diagnostics::Code, span: Span, msg: impl Into<String>) -> Ty {
        let d = self
            .cx
            .err(code, span, msg.into())
            .with_label(format!("in this call to `{}`", self.name));
        self.cx.error(d);
        Ty::Error
    }

    fn dtype_error(&mut self, a: Option<&ArgVal>, t: &TensorTy, expected: &str) -> Ty {
        let span = a.map_or(self.span, |a| a.span);
        let d = self
            .cx
            .err(
                codes::DTYPE_MISMATCH,
                span,
                format!("`{}` expects {expected}, found `{t}`", self.name),
            )
            .with_label(format!("element type `{}`", t.dtype.name()))
            .with_help(if self.name == "grad" {
                "integer and `bool` values carry no gradient: differentiate a float computation"
            } else if expected.contains("bool") {
                "compare to get a `bool` tensor, e.g. `x > 0.0`"
            } else if expected.contains("integer") {
                "convert it with `cast(x, i32)`"
            } else {
                "convert it with `cast(x, f32)`"
            });
        self.cx.error(d);
        Ty::Error
    }

    /// The argument as a tensor; static numbers become scalars.
    fn tensor(&mut self, a: Option<&ArgVal>) -> Option<TensorTy> {
        let a = a?;
        match &a.ty {
            Ty::Tensor(t) => Some(t.clone()),
            Ty::Float(_) => Some(TensorTy {
                dtype: DType::F32,
                shape: Shape::scalar(),
            }),
            Ty::Int(_) => Some(TensorTy {
                dtype: DType::I64,
                shape: Shape::scalar(),
            }),
            Ty::Error => None,
            other => {
                let d = self
                    .cx
                    .err(
                        codes::TYPE_MISMATCH,
                        a.span,
                        format!(
                            "`{}` expects a tensor, found {}",
                            self.name,
                            other.kind_name()
                        ),
                    )
                    .with_label(format!("this is `{other}`"));
                self.cx.error(d);
                None
            }
        }
    }

    fn static_bool(&mut self, a: Option<&ArgVal>, default: bool) -> bool {
        match a.map(|a| (&a.ty, a.span)) {
            None => default,
            Some((Ty::Bool(Some(b)), _)) => *b,
            Some((t, span)) => {
                self.cx
                    .static_of_kind(t, crate::items::StaticKind::Bool, span, "this flag");
                default
            }
        }
    }

    fn static_float(&mut self, a: Option<&ArgVal>) {
        if let Some(a) = a {
            if !matches!(a.ty, Ty::Float(_) | Ty::Int(_) | Ty::Error) {
                let d = self
                    .cx
                    .err(
                        codes::TYPE_MISMATCH,
                        a.span,
                        format!("expected a `Float`, found {}", a.ty.kind_name()),
                    )
                    .with_label(format!("this is `{}`", a.ty));
                self.cx.error(d);
            }
        }
    }

    fn static_dim(&mut self, a: Option<&ArgVal>) -> Option<Dim> {
        let a = a?;
        match &a.ty {
            Ty::Int(Some(d)) => Some(d.clone()),
            t => {
                let t = t.clone();
                self.cx
                    .static_of_kind(&t, crate::items::StaticKind::Int, a.span, "this size");
                None
            }
        }
    }

    /// The one axis of a builtin that works along one (`softmax`, `sort`, `topk`):
    /// `arg` (an Int or a list of one), or the last axis of `x` (the argument `x_arg`)
    /// when absent. Reports E0305 and returns `None` otherwise.
    fn one_axis(
        &mut self,
        arg: Option<&ArgVal>,
        x_arg: Option<&ArgVal>,
        x: &TensorTy,
    ) -> Option<usize> {
        let axes = match arg {
            None => match resolve_axis(&x.shape, -1) {
                Ok(i) => vec![i],
                Err(msg) => {
                    self.fail(codes::BAD_AXIS, x_arg.map_or(self.span, |a| a.span), msg);
                    return None;
                }
            },
            some => self.axes(some, &x.shape)?.unwrap_or_default(),
        };
        match axes[..] {
            [axis] => Some(axis),
            _ => {
                let at = arg.map_or(self.span, |a| a.span);
                let msg = format!("`{}` works along one axis", self.name);
                self.fail(codes::BAD_AXIS, at, msg);
                None
            }
        }
    }

    /// Axis arguments: an Int, a list of Ints, or absent (`None` = all axes).
    fn axes(&mut self, a: Option<&ArgVal>, shape: &Shape) -> Option<Option<Vec<usize>>> {
        let Some(a) = a else { return Some(None) };
        let raw: Vec<i64> = match &a.ty {
            Ty::Int(Some(d)) if d.as_const().is_some() => vec![d.as_const()?],
            Ty::List(items) => {
                let mut v = Vec::new();
                for t in items {
                    match t {
                        Ty::Int(Some(d)) if d.as_const().is_some() => v.push(d.as_const()?),
                        _ => {
                            self.fail(codes::BAD_AXIS, a.span, "axes must be integer literals");
                            return None;
                        }
                    }
                }
                v
            }
            Ty::Tensor(t) => {
                let msg = format!("an axis must be known at compile time, found a tensor `{t}`");
                self.fail(codes::NOT_STATIC, a.span, msg);
                return None;
            }
            _ => {
                self.fail(
                    codes::BAD_AXIS,
                    a.span,
                    format!("expected an axis, found `{}`", a.ty),
                );
                return None;
            }
        };
        let mut out: Vec<usize> = Vec::new();
        for ax in raw {
            match resolve_axis(shape, ax) {
                Ok(i) if out.contains(&i) => {
                    self.fail(
                        codes::BAD_AXIS,
                        a.span,
                        format!("axis {ax} is listed twice"),
                    );
                    return None;
                }
                Ok(i) => out.push(i),
                Err(msg) => {
                    self.fail(codes::BAD_AXIS, a.span, msg);
                    return None;
                }
            }
        }
        Some(Some(out))
    }

    /// A shape argument: a list of Ints or a `shape(x)` value. With `allow_infer`,
    /// one entry may be `-1`, returned as `None`.
    fn shape_items(
        &mut self,
        a: Option<&ArgVal>,
        allow_infer: bool,
    ) -> Option<Vec<Option<DimItem>>> {
        let a = a?;
        match &a.ty {
            Ty::ShapeVal(s) => Some(s.0.iter().cloned().map(Some).collect()),
            Ty::List(items) => {
                if items.iter().any(Ty::is_error) {
                    return None;
                }
                let mut out = Vec::new();
                for t in items {
                    match t {
                        Ty::Int(Some(d)) if d.as_const() == Some(-1) && allow_infer => {
                            out.push(None)
                        }
                        Ty::Int(Some(d)) if d.as_const().is_none_or(|c| c >= 0) => {
                            out.push(Some(DimItem::Dim(d.clone())))
                        }
                        Ty::ShapeVal(s) => out.extend(s.0.iter().cloned().map(Some)),
                        Ty::Tensor(tt) => {
                            let msg = format!("a shape's dimensions must be known at compile time, found a tensor `{tt}`");
                            self.fail(codes::NOT_STATIC, a.span, msg);
                            return None;
                        }
                        _ => {
                            self.fail(
                                codes::BAD_DIM,
                                a.span,
                                format!("a shape lists static, non-negative Ints; found `{t}`"),
                            );
                            return None;
                        }
                    }
                }
                if out.iter().filter(|d| d.is_none()).count() > 1 {
                    self.fail(codes::BAD_DIM, a.span, "only one dimension can be `-1`");
                    return None;
                }
                Some(out)
            }
            Ty::Error => None,
            other => {
                self.fail(
                    codes::TYPE_MISMATCH,
                    a.span,
                    format!("expected a shape such as `[B, 784]`, found `{other}`"),
                );
                None
            }
        }
    }

    fn shape(&mut self, a: Option<&ArgVal>, allow_infer: bool) -> Option<Shape> {
        let items = self.shape_items(a, allow_infer)?;
        if items.iter().any(Option::is_none) {
            // Resolved by `reshape`.
            return Some(Shape(
                items
                    .into_iter()
                    .map(|d| d.unwrap_or(DimItem::Dim(Dim::constant(-1))))
                    .collect(),
            ));
        }
        Some(Shape(items.into_iter().flatten().collect()))
    }

    fn reshape(&mut self, x: &TensorTy, target: Shape, a: Option<&ArgVal>) -> Ty {
        let span = a.map_or(self.span, |a| a.span);
        let Some(n) = x.shape.numel() else {
            return Ty::Error;
        };
        let infer_at = target
            .0
            .iter()
            .position(|d| matches!(d, DimItem::Dim(d) if d.as_const() == Some(-1)));
        let mut target = target;
        if let Some(i) = infer_at {
            let mut rest = target.clone();
            rest.0.remove(i);
            let solved = rest.numel().and_then(|m| n.checked_div(&m));
            match solved {
                Some(d) => target.0[i] = DimItem::Dim(d),
                None => {
                    return self.fail(
                        codes::RESHAPE_SIZE,
                        span,
                        format!("cannot infer `-1`: `{}` elements do not divide evenly by the other dimensions", n),
                    )
                }
            }
        }
        match target.numel() {
            Some(m) if m == n => Ty::tensor(x.dtype, target),
            Some(m) => {
                let d = self
                    .cx
                    .err(
                        codes::RESHAPE_SIZE,
                        span,
                        format!("cannot reshape `{x}` ({n} elements) to `{target}` ({m} elements)"),
                    )
                    .with_label("element counts differ");
                self.cx.error(d);
                Ty::Error
            }
            None => Ty::Error,
        }
    }

    fn transpose(&mut self, x: &TensorTy, perm: Option<&ArgVal>) -> Ty {
        let Some(rank) = x.shape.rank() else {
            // Swapping the last two axes works with a leading pack.
            let n = x.shape.0.len();
            if perm.is_none()
                && n >= 3
                && !matches!(x.shape.0[n - 1], DimItem::Pack(_))
                && !matches!(x.shape.0[n - 2], DimItem::Pack(_))
            {
                let mut s = x.shape.clone();
                s.0.swap(n - 1, n - 2);
                return Ty::tensor(x.dtype, s);
            }
            return self.fail(
                codes::RANK_MISMATCH,
                self.span,
                format!("`transpose` needs a known rank here, found `{x}`"),
            );
        };
        match perm {
            None => {
                if rank < 2 {
                    return self.fail(
                        codes::RANK_MISMATCH,
                        self.span,
                        format!("`transpose` needs at least 2 axes, found `{x}`"),
                    );
                }
                let mut s = x.shape.clone();
                s.0.swap(rank - 1, rank - 2);
                Ty::tensor(x.dtype, s)
            }
            Some(p) => {
                let Some(Some(axes)) = self.axes(Some(p), &x.shape) else {
                    return Ty::Error;
                };
                let mut sorted = axes.clone();
                sorted.sort_unstable();
                if sorted != (0..rank).collect::<Vec<_>>() {
                    return self.fail(
                        codes::BAD_AXIS,
                        p.span,
                        format!("`{}` is not a permutation of the {rank} axes", p.ty),
                    );
                }
                Ty::tensor(
                    x.dtype,
                    Shape(axes.iter().map(|&i| x.shape.0[i].clone()).collect()),
                )
            }
        }
    }

    fn concat(&mut self, list: Option<&ArgVal>, axis: Option<&ArgVal>) -> Ty {
        let Some(list) = list else { return Ty::Error };
        let items = match &list.ty {
            Ty::List(ts) | Ty::Tuple(ts) if !ts.is_empty() => ts.clone(),
            _ => {
                return self.fail(
                    codes::TYPE_MISMATCH,
                    list.span,
                    "`concat` takes a non-empty list of tensors",
                )
            }
        };
        let mut tensors = Vec::new();
        for t in &items {
            match t {
                Ty::Tensor(t) => tensors.push(t.clone()),
                Ty::Error => return Ty::Error,
                other => {
                    return self.fail(
                        codes::TYPE_MISMATCH,
                        list.span,
                        format!("`concat` takes tensors, found `{other}`"),
                    )
                }
            }
        }
        let first = tensors[0].clone();
        let Some(Some(ax)) = self
            .axes(axis.or(None), &first.shape)
            .map(|a| a.or(Some(vec![0])))
        else {
            return Ty::Error;
        };
        let ax = ax[0];
        let mut total = match &first.shape.0[ax] {
            DimItem::Dim(d) => d.clone(),
            DimItem::Pack(_) => {
                return self.fail(
                    codes::BAD_AXIS,
                    list.span,
                    "cannot concatenate along a pack",
                )
            }
        };
        for t in &tensors[1..] {
            if t.shape.0.len() != first.shape.0.len() {
                let msg = format!("cannot concatenate `{first}` and `{t}`: their ranks differ");
                return self.fail(codes::RANK_MISMATCH, list.span, msg);
            }
            let same_rank = t.dtype == first.dtype;
            let others_equal = same_rank
                && t.shape
                    .0
                    .iter()
                    .zip(&first.shape.0)
                    .enumerate()
                    .all(|(i, (a, b))| i == ax || a == b);
            if !others_equal {
                return self.fail(
                    codes::DIM_MISMATCH,
                    list.span,
                    format!("cannot concatenate `{first}` and `{t}` along axis {ax}"),
                );
            }
            if let DimItem::Dim(d) = &t.shape.0[ax] {
                total = total.checked_add(d).unwrap_or_default();
            }
        }
        let mut s = first.shape.clone();
        s.0[ax] = DimItem::Dim(total);
        Ty::tensor(first.dtype, s)
    }

    /// `conv2d(x: [N, C, H, W], w: [O, C/groups, KH, KW], stride, padding, dilation,
    /// groups, same)`: `[N, O, OH, OW]`.
    fn conv2d(&mut self, x: &TensorTy, w: &TensorTy, args: [Option<&ArgVal>; 7]) -> Ty {
        let Some(xs) = self.rank4(x, args[0], "the input `x`", "[N, C, H, W]") else {
            return Ty::Error;
        };
        let Some(ws) = self.rank4(w, args[1], "the kernel `w`", "[O, C, KH, KW]") else {
            return Ty::Error;
        };
        for (a, t) in [(args[0], x), (args[1], w)] {
            if !t.dtype.is_float() {
                return self.dtype_error(a, t, "a floating-point tensor");
            }
        }
        if x.dtype == w.dtype && self.cx.needs_f32(x, self.span, "a convolution") {
            return Ty::Error;
        }
        if x.dtype != w.dtype {
            let msg = format!(
                "mismatched element types in `conv2d`: `{}` and `{}`",
                x.dtype.name(),
                w.dtype.name()
            );
            return self.fail(codes::DTYPE_MISMATCH, self.span, msg);
        }
        let Some(dilation) = self.positive(args[4], "dilation") else {
            return Ty::Error;
        };
        let Some(groups) = self.positive(args[5], "groups") else {
            return Ty::Error;
        };
        let Some(cg) = self.conv_groups(x, w, &xs, &ws, &groups, args) else {
            return Ty::Error;
        };
        if xs[1] != ws[1] && cg == xs[1] {
            let fname = self.cx.fname.clone();
            let mut d = self
                .cx
                .err(
                    codes::DIM_MISMATCH,
                    self.span,
                    format!(
                        "`conv2d` of `{x}` with kernel `{w}`: input channels `{}` and `{}` differ",
                        xs[1], ws[1]
                    ),
                )
                .with_label(format!("`{}` ≠ `{}`", xs[1], ws[1]));
            d = operand_labels(d, &fname, [(args[0], x), (args[1], w)]);
            self.cx.error(d.with_note(
                "`conv2d(x: [N, C, H, W], w: [O, C, KH, KW])` needs the same `C` in both",
            ));
            return Ty::Error;
        }
        let Ok((stride, padding)) = self.stride_padding(args[2], args[3], Dim::constant(1)) else {
            return Ty::Error;
        };
        if self.static_bool(args[6], false) {
            // PyTorch's `padding = "same"`: stride 1, `dilation*(k - 1)` zeros in all.
            let same_span = args[6].map_or(self.span, |a| a.span);
            if stride.as_const() != Some(1) {
                let d = self
                    .cx
                    .err(
                        codes::BAD_DIM,
                        args[2].map_or(self.span, |a| a.span),
                        format!("`same` padding needs stride 1, found stride `{stride}`"),
                    )
                    .with_label(format!("in this call to `{}`", self.name))
                    .with_secondary(&self.cx.fname.clone(), same_span, "`same` asked for here")
                    .with_note("like PyTorch's `padding = \"same\"`, which strided convolutions do not support");
                self.cx.error(d);
                return Ty::Error;
            }
            if let Some(p) = args[3] {
                let d = self
                    .cx
                    .err(
                        codes::BAD_DIM,
                        p.span,
                        "`same` chooses the padding itself; it cannot be combined with `padding`",
                    )
                    .with_label(format!("in this call to `{}`", self.name))
                    .with_secondary(&self.cx.fname.clone(), same_span, "`same` asked for here")
                    .with_help("remove `padding`, or `same`");
                self.cx.error(d);
                return Ty::Error;
            }
            let dims = [xs[0].clone(), ws[0].clone(), xs[2].clone(), xs[3].clone()];
            return Ty::tensor(x.dtype, Shape(dims.into_iter().map(DimItem::Dim).collect()));
        }
        let Some(kh) = self.dilated(&ws[2], &dilation) else {
            return Ty::Error;
        };
        let Some(kw) = self.dilated(&ws[3], &dilation) else {
            return Ty::Error;
        };
        let Some(oh) = self.window(&xs[2], &kh, &stride, &padding, "height") else {
            return Ty::Error;
        };
        let Some(ow) = self.window(&xs[3], &kw, &stride, &padding, "width") else {
            return Ty::Error;
        };
        let dims = [xs[0].clone(), ws[0].clone(), oh, ow];
        Ty::tensor(x.dtype, Shape(dims.into_iter().map(DimItem::Dim).collect()))
    }

    /// A static `Int` argument `what` of at least 1; 1 when absent.
    fn positive(&mut self, a: Option<&ArgVal>, what: &str) -> Option<Dim> {
        let Some(arg) = a else {
            return Some(Dim::constant(1));
        };
        let v = self.static_dim(a)?;
        if v.as_const().is_some_and(|v| v < 1) {
            let d = self
                .cx
                .err(
                    codes::BAD_DIM,
                    arg.span,
                    format!("`{what}` must be at least 1, found `{v}`"),
                )
                .with_label(format!("in this call to `{}`", self.name));
            self.cx.error(d);
            return None;
        }
        Some(v)
    }

    /// The effective window `dilation*(k - 1) + 1` of a kernel of `k`.
    fn dilated(&mut self, k: &Dim, dilation: &Dim) -> Option<Dim> {
        if dilation.as_const() == Some(1) {
            return Some(k.clone());
        }
        let one = Dim::constant(1);
        let eff = k
            .checked_sub(&one)
            .and_then(|k1| k1.checked_mul(dilation))
            .and_then(|e| e.checked_add(&one));
        if eff.is_none() {
            let msg = format!("the dilated window `{dilation}*({k} - 1) + 1` does not fit 64 bits");
            self.fail(codes::BAD_DIM, self.span, msg);
        }
        eff
    }

    /// With `groups` other than 1: checks that `groups` divides the input channels `C`
    /// and the output channels `O`, and that `w` is `[O, C/groups, KH, KW]`. Returns
    /// `C/groups` (`C` itself for one group, left to the caller's check).
    fn conv_groups(
        &mut self,
        x: &TensorTy,
        w: &TensorTy,
        xs: &[Dim],
        ws: &[Dim],
        groups: &Dim,
        args: [Option<&ArgVal>; 7],
    ) -> Option<Dim> {
        if groups.as_const() == Some(1) {
            return Some(xs[1].clone());
        }
        let fname = self.cx.fname.clone();
        let gspan = args[5].map_or(self.span, |a| a.span);
        for (what, dim, a, t) in [
            ("input", &xs[1], args[0], x),
            ("output", &ws[0], args[1], w),
        ] {
            // A symbolic division (`inp / groups` in a layer) is checked when the
            // layer is instantiated.
            if dim.quotient(groups).is_some() {
                continue;
            }
            let mut d = self
                .cx
                .err(
                    codes::DIM_MISMATCH,
                    self.span,
                    format!("the {what} channels `{dim}` are not divisible by `groups = {groups}`"),
                )
                .with_label(format!("in this call to `{}`", self.name))
                .with_secondary(&fname, gspan, format!("{groups} groups asked for here"));
            if let Some(a) = a {
                d = d.with_secondary(&fname, a.span, format!("this is `{t}`"));
            }
            self.cx.error(d.with_note(
                "`conv2d(x: [N, C, H, W], w: [O, C/groups, KH, KW], groups = G)` splits `C` and `O` into `G` equal groups",
            ));
            return None;
        }
        let cg = xs[1].quotient(groups)?;
        if ws[1] != cg {
            let mut d = self
                .cx
                .err(
                    codes::DIM_MISMATCH,
                    self.span,
                    format!(
                        "`conv2d` of `{x}` in {groups} groups needs a kernel with `{}/{groups} = {cg}` input channels, found `{w}`",
                        xs[1]
                    ),
                )
                .with_label(format!("`{}` ≠ `{cg}`", ws[1]))
                .with_secondary(&fname, gspan, format!("{groups} groups asked for here"));
            d = operand_labels(d, &fname, [(args[0], x), (args[1], w)]);
            self.cx.error(d.with_note(
                "`conv2d(x: [N, C, H, W], w: [O, C/groups, KH, KW], groups = G)`: each kernel sees one group's `C/G` channels",
            ));
            return None;
        }
        Some(cg)
    }

    /// `max_pool2d`/`avg_pool2d(x: [N, C, H, W], kernel, stride = kernel, padding)`.
    fn pool2d(&mut self, x: &TensorTy, args: [Option<&ArgVal>; 4]) -> Ty {
        let Some(xs) = self.rank4(x, args[0], "the input `x`", "[N, C, H, W]") else {
            return Ty::Error;
        };
        if !x.dtype.is_float() {
            return self.dtype_error(args[0], x, "a floating-point tensor");
        }
        let Some(k) = self.static_dim(args[1]) else {
            return Ty::Error;
        };
        if k.as_const().is_some_and(|k| k < 1) {
            let span = args[1].map_or(self.span, |a| a.span);
            return self.fail(
                codes::BAD_DIM,
                span,
                format!("the window size must be positive, found `{k}`"),
            );
        }
        let Ok((stride, padding)) = self.stride_padding(args[2], args[3], k.clone()) else {
            return Ty::Error;
        };
        if let (Some(kc), Some(pc)) = (k.as_const(), padding.as_const()) {
            if 2 * pc > kc {
                let span = args[3].map_or(self.span, |a| a.span);
                let msg = format!("padding `{pc}` is more than half the window `{kc}`");
                return self.fail(codes::BAD_DIM, span, msg);
            }
        }
        let Some(oh) = self.window(&xs[2], &k, &stride, &padding, "height") else {
            return Ty::Error;
        };
        let Some(ow) = self.window(&xs[3], &k, &stride, &padding, "width") else {
            return Ty::Error;
        };
        let dims = [xs[0].clone(), xs[1].clone(), oh, ow];
        Ty::tensor(x.dtype, Shape(dims.into_iter().map(DimItem::Dim).collect()))
    }

    /// The four dimensions of a rank-4 tensor `what` laid out as `layout`.
    fn rank4(
        &mut self,
        t: &TensorTy,
        a: Option<&ArgVal>,
        what: &str,
        layout: &str,
    ) -> Option<Vec<Dim>> {
        let dims = t.shape.dims().filter(|d| d.len() == 4);
        if dims.is_none() {
            let span = a.map_or(self.span, |a| a.span);
            let msg = format!("`{}` expects {what} as `{layout}`, found `{t}`", self.name);
            self.fail(codes::RANK_MISMATCH, span, msg);
        }
        dims.map(|d| d.into_iter().cloned().collect())
    }

    /// The stride (default `default`) and padding (default 0), static `Int`s.
    fn stride_padding(
        &mut self,
        stride: Option<&ArgVal>,
        padding: Option<&ArgVal>,
        default: Dim,
    ) -> Result<(Dim, Dim), Ty> {
        let s = match stride {
            None => default,
            some => self.static_dim(some).ok_or(Ty::Error)?,
        };
        let p = match padding {
            None => Dim::constant(0),
            some => self.static_dim(some).ok_or(Ty::Error)?,
        };
        if p.as_const().is_some_and(|p| p < 0) {
            let span = padding.map_or(self.span, |a| a.span);
            self.fail(codes::BAD_DIM, span, "padding must not be negative");
            return Err(Ty::Error);
        }
        Ok((s, p))
    }

    /// The output size along `axis` ("height" or "width"), or an error.
    fn window(&mut self, n: &Dim, k: &Dim, s: &Dim, p: &Dim, axis: &str) -> Option<Dim> {
        use crate::window::{out_dim, WindowError};
        let d = match out_dim(n, k, s, p) {
            Ok(d) => return Some(d),
            Err(WindowError::TooLarge { padded, window }) => self
                .cx
                .err(
                    codes::BAD_DIM,
                    self.span,
                    format!("the {axis} `{window}` of the window is larger than the padded input {axis} `{padded}`"),
                )
                .with_label(format!("in this call to `{}`", self.name))
                .with_help("use a smaller window, or more padding"),
            Err(WindowError::BadStride(s)) => self
                .cx
                .err(codes::BAD_DIM, self.span, format!("the stride must be positive, found `{s}`"))
                .with_label(format!("in this call to `{}`", self.name)),
            Err(WindowError::NotDivisible { span, stride }) => self
                .cx
                .err(
                    codes::BAD_DIM,
                    self.span,
                    format!("the {axis} span `{span}` is not divisible by the stride `{stride}`"),
                )
                .with_label(format!("in this call to `{}`", self.name))
                .with_help("with a symbolic size the window must step over the input exactly: use stride 1, or a size the stride divides (e.g. `2*H` for stride 2)"),
        };
        self.cx.error(d);
        None
    }

    fn pad(&mut self, x: &TensorTy, pads: Option<&ArgVal>) -> Ty {
        let Some(pads) = pads else { return Ty::Error };
        let Some(rank) = x.shape.rank() else {
            return self.fail(
                codes::RANK_MISMATCH,
                pads.span,
                format!("`pad` needs a known rank, found `{x}`"),
            );
        };
        let Ty::List(rows) = &pads.ty else {
            return self.fail(
                codes::TYPE_MISMATCH,
                pads.span,
                "`pad` takes a list of `[low, high]` pairs",
            );
        };
        if rows.len() != rank {
            return self.fail(
                codes::RANK_MISMATCH,
                pads.span,
                format!("`pad` needs {rank} pairs for `{x}`, found {}", rows.len()),
            );
        }
        let mut out = Vec::new();
        for (row, d) in rows.iter().zip(&x.shape.0) {
            let (Ty::List(pair), DimItem::Dim(d)) = (row, d) else {
                return self.fail(
                    codes::TYPE_MISMATCH,
                    pads.span,
                    "each entry of `pad` is a `[low, high]` pair",
                );
            };
            let (Some(Ty::Int(Some(lo))), Some(Ty::Int(Some(hi))), 2) =
                (pair.first(), pair.get(1), pair.len())
            else {
                return self.fail(
                    codes::TYPE_MISMATCH,
                    pads.span,
                    "each entry of `pad` is a `[low, high]` pair of Ints",
                );
            };
            if [lo, hi].iter().any(|v| v.as_const().is_some_and(|c| c < 0)) {
                return self.fail(
                    codes::BAD_DIM,
                    pads.span,
                    "padding amounts must not be negative",
                );
            }
            let Some(n) = d.checked_add(lo).and_then(|n| n.checked_add(hi)) else {
                return Ty::Error;
            };
            out.push(DimItem::Dim(n));
        }
        Ty::tensor(x.dtype, Shape(out))
    }
}

/// Resolves a possibly negative axis against a shape that may contain a pack.
pub fn resolve_axis(shape: &Shape, ax: i64) -> Result<usize, String> {
    let n = shape.0.len();
    let pack = shape.0.iter().position(|d| matches!(d, DimItem::Pack(_)));
    let i = if ax < 0 {
        let from_end = ax.unsigned_abs() as usize;
        if from_end > n {
            return Err(format!("axis {ax} is out of range for `{shape}`"));
        }
        if let Some(p) = pack {
            if n - from_end <= p {
                return Err(format!("axis {ax} falls inside the pack of `{shape}`"));
            }
        }
        n - from_end
    } else {
        let i = ax as usize;
        if i >= n {
            return Err(format!("axis {ax} is out of range for `{shape}`"));
        }
        if let Some(p) = pack {
            if i >= p {
                return Err(format!("axis {ax} falls inside or after the pack of `{shape}`; count from the end with a negative axis"));
            }
        }
        i
    };
    Ok(i)
}

pub fn is_loader(name: &str) -> bool {
    LOADERS.contains(&name)
}

pub fn arc(s: &str) -> Arc<str> {
    Arc::from(s)
}
