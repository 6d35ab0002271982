//! Type and shape inference for expressions.
//!
//! [`Checker::expr`] returns the type of any expression and records it for hover.
//! Errors are reported once, at the smallest span, and produce [`Ty::Error`], which is
//! accepted everywhere so that one mistake does not cascade.

use std::sync::Arc;

use dnnc_diagnostics::{codes, Diagnostic, Span};
use dnnc_syntax::ast::{self, BinOp, Expr, ExprKind, IndexItem, Pattern, UnOp};

use crate::checker::{plural, Checker};
use crate::dim::Dim;
use crate::items::FnSig;
use crate::ty::{DType, DimItem, LayerInst, Shape, Static, TensorTy, Ty};
use crate::unify::{ShapeError, Unifier};

/// A checked call argument.
#[derive(Clone, Debug)]
pub struct ArgVal {
    pub name: Option<ast::Name>,
    pub ty: Ty,
    pub span: Span,
    /// Where the value's shape was fixed (a declaration), for secondary labels.
    pub origin: Option<Span>,
}

/// Broadcasts two shapes with NumPy's rules; packs must line up exactly.
pub fn broadcast(a: &Shape, b: &Shape) -> Result<Shape, String> {
    let mut out: Vec<DimItem> = Vec::new();
    let (mut i, mut j) = (a.0.len(), b.0.len());
    while i > 0 && j > 0 {
        let (x, y) = (&a.0[i - 1], &b.0[j - 1]);
        match (x, y) {
            (DimItem::Dim(x), DimItem::Dim(y)) => {
                let d = if x == y || y.as_const() == Some(1) {
                    x.clone()
                } else if x.as_const() == Some(1) {
                    y.clone()
                } else {
                    return Err(format!("dimension `{x}` does not match `{y}`"));
                };
                out.push(DimItem::Dim(d));
                i -= 1;
                j -= 1;
            }
            _ => {
                // A pack: the remaining prefixes must be identical (or one empty).
                let (ra, rb) = (&a.0[..i], &b.0[..j]);
                if ra == rb {
                    out.extend(ra.iter().rev().cloned());
                } else {
                    return Err(format!(
                        "`{}` and `{}` have unknown relative ranks",
                        Shape(ra.to_vec()),
                        Shape(rb.to_vec())
                    ));
                }
                i = 0;
                j = 0;
            }
        }
    }
    out.extend(a.0[..i].iter().rev().cloned());
    out.extend(b.0[..j].iter().rev().cloned());
    out.reverse();
    Ok(Shape(out))
}

/// Whether `actual` can stand where `expected` is declared (equal types, or a
/// static number where a scalar tensor is expected).
pub fn compatible(expected: &Ty, actual: &Ty) -> bool {
    match (expected, actual) {
        (Ty::Error, _) | (_, Ty::Error) => true,
        (Ty::Tensor(e), Ty::Tensor(a)) => e == a,
        (Ty::Tensor(e), Ty::Float(_) | Ty::Int(_)) => e.shape.rank() == Some(0),
        (Ty::Int(_), Ty::Int(_)) | (Ty::Float(_), Ty::Float(_) | Ty::Int(_)) => true,
        (Ty::Bool(_), Ty::Bool(_)) | (Ty::Str(_), Ty::Str(_)) => true,
        (Ty::Tuple(e), Ty::Tuple(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| compatible(e, a))
        }
        (e, a) => e == a,
    }
}

impl<'db> Checker<'db> {
    pub fn expr(&mut self, e: &Expr) -> Ty {
        let mut t = self.expr_inner(e);
        if let Ty::Tensor(tt) = &t {
            if self.too_large(tt, e.span, "this tensor") {
                t = Ty::Error;
            }
        }
        self.types.push((e.span, t.clone()));
        t
    }

    /// Reports E0901 at `span` when `t` is not `f32`, for computations the backends
    /// do only in `f32` yet (matrix products, convolutions, trained parameters, the
    /// loss); returns whether it did.
    pub fn needs_f32(&mut self, t: &TensorTy, span: Span, what: &str) -> bool {
        if t.dtype == DType::F32 {
            return false;
        }
        let d = self
            .err(
                codes::DTYPE_NOT_SUPPORTED,
                span,
                format!("{what} of element type `{}` is not supported yet", t.dtype.name()),
            )
            .with_label(format!("this is `{t}`"))
            .with_note("the backends compute matrix products, convolutions and losses in `f32`, and train parameters of `f32`, `bf16` and `f16`")
            .with_help("compute in `f32` and convert with `cast` where another type is wanted");
        self.error(d);
        true
    }

    /// Reports E0310 at `span` when `t`'s known size exceeds
    /// [`dnnc_tensor::memory::MAX_TENSOR_BYTES`]; returns whether it did.
    pub fn too_large(&mut self, t: &TensorTy, span: Span, what: &str) -> bool {
        let Some((elements, bytes)) = t.known_size() else {
            return false;
        };
        if bytes <= dnnc_tensor::memory::MAX_TENSOR_BYTES {
            return false;
        }
        let d = self
            .err(
                codes::TENSOR_TOO_LARGE,
                span,
                format!("{what} is too large: `{t}` would take {}", dnnc_tensor::memory::human_bytes(bytes)),
            )
            .with_label(format!("{elements} elements"))
            .with_note("a tensor may take at most 2^47 bytes (128 TiB), the address space of a 64-bit process");
        self.error(d);
        true
    }

    fn expr_inner(&mut self, e: &Expr) -> Ty {
        match &e.kind {
            ExprKind::Int(v) => Ty::Int(Some(Dim::constant(*v))),
            ExprKind::Float(v) => Ty::Float(Some(*v)),
            ExprKind::Str(s) => Ty::Str(Some(Arc::from(s.as_str()))),
            ExprKind::Bool(b) => Ty::Bool(Some(*b)),
            ExprKind::Error => Ty::Error,
            ExprKind::Name(n) => match self.lookup(&n.text) {
                Some(l) => l.ty,
                None => {
                    self.unknown_name(&n.text, n.span, "value");
                    Ty::Error
                }
            },
            ExprKind::Tuple(es) => Ty::Tuple(es.iter().map(|e| self.expr(e)).collect()),
            ExprKind::List(es) => Ty::List(es.iter().map(|e| self.expr(e)).collect()),
            ExprKind::Record(fs) => {
                let mut out: Vec<(Arc<str>, Ty)> = Vec::new();
                for (n, v) in fs {
                    let t = self.expr(v);
                    if out.iter().any(|(m, _)| **m == *n.text) {
                        let d = self
                            .err(
                                codes::DUPLICATE_ARG,
                                n.span,
                                format!("field `{}` is given twice", n.text),
                            )
                            .with_label("given again");
                        self.error(d);
                        continue;
                    }
                    out.push((Arc::from(n.text.as_str()), t));
                }
                Ty::Record(out)
            }
            ExprKind::Unary(op, x) => {
                let t = self.expr(x);
                self.unary(*op, t, e.span)
            }
            ExprKind::Binary {
                op,
                op_span,
                lhs,
                rhs,
            } => {
                let l = self.arg_of(lhs);
                let r = self.arg_of(rhs);
                self.binary(*op, *op_span, &l, &r, e.span)
            }
            ExprKind::Pipe(lhs, rhs) => {
                let first = self.arg_of(lhs);
                match &rhs.kind {
                    ExprKind::Call { callee, args } => {
                        let mut vals = vec![first];
                        vals.extend(self.args(args));
                        self.call_expr(callee, &vals, e.span)
                    }
                    _ => self.call_expr(rhs, &[first], e.span),
                }
            }
            ExprKind::Call { callee, args } => {
                if let Some(t) = self.size_of(callee, args) {
                    return t;
                }
                self.warn_zero_gradient(callee, args);
                let vals = self.args(args);
                self.call_expr(callee, &vals, e.span)
            }
            ExprKind::Field(base, name) => {
                let t = self.expr(base);
                if name.text.is_empty() {
                    // `base.` with the name still missing: the parser said so.
                    return Ty::Error;
                }
                self.field(t, name)
            }
            ExprKind::Index(base, items) => {
                let t = self.expr(base);
                self.index(t, items, base.span)
            }
            ExprKind::If { cond, then, els } => {
                let c = self.expr(cond);
                match c {
                    Ty::Bool(_) | Ty::Error => {}
                    other => {
                        let mut d = self
                            .err(
                                codes::BAD_CONDITION,
                                cond.span,
                                format!("the condition of `if` must be a compile-time `Bool`, found `{other}`"),
                            )
                            .with_label("not a static `Bool`");
                        if matches!(other, Ty::Tensor(_)) {
                            d = d.with_help(
                                "choose between tensors elementwise with `select(cond, a, b)`",
                            );
                        }
                        self.error(d);
                    }
                }
                let t = self.block(then);
                let Some(els) = els else {
                    let d = self
                        .err(
                            codes::BRANCH_MISMATCH,
                            e.span,
                            "`if` without `else` has no value",
                        )
                        .with_label("add an `else` branch")
                        .with_help("both branches of `if` produce a value of the same type");
                    self.error(d);
                    return Ty::Error;
                };
                let u = self.expr(els);
                if compatible(&t, &u) {
                    if t.is_error() {
                        u
                    } else {
                        t
                    }
                } else {
                    let d = self
                        .err(
                            codes::BRANCH_MISMATCH,
                            els.span,
                            format!("`if` and `else` have different types: `{t}` and `{u}`"),
                        )
                        .with_label(format!("this is `{u}`"))
                        .with_secondary(
                            &self.fname.clone(),
                            then.value.span,
                            format!("this is `{t}`"),
                        );
                    self.error(d);
                    Ty::Error
                }
            }
            ExprKind::Block(b) => self.block(b),
            ExprKind::Scan {
                item,
                over,
                carries,
                body,
            } => self.scan(item, over, carries, body),
        }
    }

    /// `scan(x in xs, h = h0, ...) { body }`: `x` is each `xs[t]` along the leading axis
    /// `T`; the carried `h` starts as `h0` and becomes the body's value (a tuple of the
    /// new values for several carries), which must keep its type (E0311). The result
    /// stacks the values along a new leading `T`: `[T, ..h]`, a tuple of such for
    /// several carries; without carries, the stacked body values (a map).
    fn scan(
        &mut self,
        item: &ast::Name,
        over: &Expr,
        carries: &[(ast::Name, Expr)],
        body: &ast::Block,
    ) -> Ty {
        let xs = self.expr(over);
        let inits: Vec<Ty> = carries.iter().map(|(_, e)| self.expr(e)).collect();
        let (steps, x) = match &xs {
            Ty::Tensor(t) => match t.shape.0.split_first() {
                Some((DimItem::Dim(n), rest)) => {
                    (n.clone(), Ty::tensor(t.dtype, Shape(rest.to_vec())))
                }
                _ => {
                    let d = self
                        .err(
                            codes::RANK_MISMATCH,
                            over.span,
                            format!("`scan` runs over the leading axis of a tensor, found `{t}`"),
                        )
                        .with_label("no leading dimension")
                        .with_help("give the sequence a leading time axis, e.g. `[T, B, F]`");
                    self.error(d);
                    return Ty::Error;
                }
            },
            Ty::Error => return Ty::Error,
            other => {
                let d = self
                    .err(
                        codes::TYPE_MISMATCH,
                        over.span,
                        format!("`scan` runs over a tensor, found {}", other.kind_name()),
                    )
                    .with_label("not a tensor");
                self.error(d);
                return Ty::Error;
            }
        };
        for ((name, e), t) in carries.iter().zip(&inits) {
            if !matches!(t, Ty::Tensor(_) | Ty::Error) {
                let d = self
                    .err(
                        codes::TYPE_MISMATCH,
                        e.span,
                        format!(
                            "`scan` carries tensors, and `{}` starts as {}",
                            name.text,
                            t.kind_name()
                        ),
                    )
                    .with_label("not a tensor")
                    .with_help("start it as a tensor, e.g. `zeros([B, 64])`");
                self.error(d);
                return Ty::Error;
            }
        }
        self.push_scope();
        self.types.push((item.span, x.clone()));
        self.bind(&item.text, x, Some(item.span));
        for ((name, _), t) in carries.iter().zip(&inits) {
            self.types.push((name.span, t.clone()));
            self.bind(&name.text, t.clone(), Some(name.span));
        }
        let value = self.block(body);
        self.pop_scope();
        if value.is_error() || inits.iter().any(Ty::is_error) {
            return Ty::Error;
        }
        let outputs: Vec<Ty> = match (carries.len(), &value) {
            (0, Ty::Tuple(ts)) => ts.clone(),
            (0 | 1, t) => vec![t.clone()],
            (n, Ty::Tuple(ts)) if ts.len() == n => ts.clone(),
            (n, t) => {
                let d = self
                    .err(
                        codes::SCAN_STATE,
                        body.value.span,
                        format!("the body of a `scan` with {n} carried values must give a tuple of their {n} new values, found `{t}`"),
                    )
                    .with_label(format!("this is `{t}`"));
                self.error(d);
                return Ty::Error;
            }
        };
        for (k, out) in outputs.iter().enumerate() {
            if let Some(((name, e), init)) = carries.get(k).zip(inits.get(k)) {
                if out != init {
                    let d = self
                        .err(
                            codes::SCAN_STATE,
                            body.value.span,
                            format!(
                                "the carried `{}` starts as `{init}`, but the body makes it `{out}`",
                                name.text
                            ),
                        )
                        .with_label(format!("the new `{}` is `{out}`", name.text))
                        .with_secondary(&self.fname.clone(), e.span, format!("`{}` starts as `{init}`", name.text))
                        .with_help("a carried value keeps its shape and element type from step to step");
                    self.error(d);
                    return Ty::Error;
                }
            }
            if !matches!(out, Ty::Tensor(_)) {
                let d = self
                    .err(
                        codes::TYPE_MISMATCH,
                        body.value.span,
                        format!("the body of a `scan` gives tensors to stack, found `{out}`"),
                    )
                    .with_label("not a tensor");
                self.error(d);
                return Ty::Error;
            }
        }
        let stacked: Vec<Ty> = outputs
            .into_iter()
            .map(|t| match t {
                Ty::Tensor(t) => {
                    let mut dims = vec![DimItem::Dim(steps.clone())];
                    dims.extend(t.shape.0);
                    Ty::tensor(t.dtype, Shape(dims))
                }
                other => other,
            })
            .collect();
        match stacked.as_slice() {
            [one] if carries.len() <= 1 && !matches!(value, Ty::Tuple(_)) => one.clone(),
            _ => Ty::Tuple(stacked),
        }
    }

    /// `size(S)` for a pack `..S` of the current function: the product of its dimensions.
    fn size_of(&mut self, callee: &Expr, args: &[ast::Arg]) -> Option<Ty> {
        let ExprKind::Name(f) = &callee.kind else {
            return None;
        };
        if f.text != "size" || self.lookup("size").is_some() {
            return None;
        }
        match args {
            [ast::Arg {
                name: None,
                value:
                    Expr {
                        kind: ExprKind::Name(p),
                        ..
                    },
            }] if self.packs.iter().any(|q| **q == *p.text) => Some(Ty::Int(Some(Dim::atom(
                crate::dim::Atom::PackSize(Arc::from(p.text.as_str())),
            )))),
            [ast::Arg { name: None, value }] => {
                let t = self.expr(value);
                match t {
                    Ty::Tensor(t) => Some(Ty::Int(t.shape.numel())),
                    Ty::Error => Some(Ty::Error),
                    other => {
                        let d = self
                            .err(
                                codes::TYPE_MISMATCH,
                                value.span,
                                format!("`size` takes a pack name or a tensor, found `{other}`"),
                            )
                            .with_label("not a pack or tensor");
                        self.error(d);
                        Some(Ty::Error)
                    }
                }
            }
            _ => {
                let d = self
                    .err(
                        codes::ARG_COUNT,
                        callee.span,
                        "`size` takes one argument: a pack name such as `S`, or a tensor",
                    )
                    .with_label("wrong arguments");
                self.error(d);
                Some(Ty::Error)
            }
        }
    }

    /// An argument value with its origin, for diagnostics.
    pub fn arg_of(&mut self, e: &Expr) -> ArgVal {
        let ty = self.expr(e);
        let origin = match &e.kind {
            ExprKind::Name(n) => self.lookup(&n.text).and_then(|l| l.span),
            _ => None,
        };
        ArgVal {
            name: None,
            ty,
            span: e.span,
            origin,
        }
    }

    pub fn args(&mut self, args: &[ast::Arg]) -> Vec<ArgVal> {
        args.iter()
            .map(|a| ArgVal {
                name: a.name.clone(),
                ..self.arg_of(&a.value)
            })
            .collect()
    }

    pub fn block(&mut self, b: &ast::Block) -> Ty {
        self.push_scope();
        for l in &b.lets {
            self.let_stmt(l);
        }
        let t = self.expr(&b.value);
        self.pop_scope();
        t
    }

    pub fn let_stmt(&mut self, l: &ast::Let) {
        let mut t = self.expr(&l.value);
        if let Some(ann) = &l.ty {
            let declared = self.type_expr(ann, crate::checker::DimMode::Strict);
            if !compatible(&declared, &t) {
                // The most precise code: element type, rank, or a dimension.
                let code = match (&declared, &t) {
                    (Ty::Tensor(a), Ty::Tensor(b)) if a.dtype != b.dtype => codes::DTYPE_MISMATCH,
                    (Ty::Tensor(a), Ty::Tensor(b)) if a.shape.0.len() != b.shape.0.len() => {
                        codes::RANK_MISMATCH
                    }
                    (Ty::Tensor(_), Ty::Tensor(_)) => codes::DIM_MISMATCH,
                    _ => codes::TYPE_MISMATCH,
                };
                let d = self
                    .err(
                        code,
                        l.value.span,
                        format!("expected `{declared}`, found `{t}`"),
                    )
                    .with_label(format!("this is `{t}`"))
                    .with_secondary(
                        &self.fname.clone(),
                        ann.span,
                        "expected because of this annotation",
                    );
                self.error(d);
            }
            if !declared.is_error() {
                t = declared;
            }
        }
        let reads = Arc::new(self.local_reads(&l.value));
        self.bind_pattern(&l.pattern, t);
        for n in l.pattern.names() {
            self.let_reads.insert(n.span, reads.clone());
        }
    }

    /// `grad(f, x)` where `x` is a local that `f` does not read, directly or through
    /// `let`s, and that the caller cannot relate to what `f` reads: the gradient is
    /// zero, which is rarely meant (E0212, a warning).
    fn warn_zero_gradient(&mut self, callee: &Expr, args: &[ast::Arg]) {
        let ExprKind::Name(n) = &callee.kind else {
            return;
        };
        if n.text != "grad" || !matches!(self.lookup("grad").map(|l| l.ty), Some(Ty::Builtin(_))) {
            return;
        }
        let arg = |i: usize, name: &str| {
            args.iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.text == name))
                .or_else(|| args.get(i).filter(|a| a.name.is_none()))
        };
        let (Some(f), Some(wrt)) = (arg(0, "f"), arg(1, "wrt")) else {
            return;
        };
        let ExprKind::Name(w) = &wrt.value.kind else {
            return;
        };
        let is_tensor_local = self
            .local(&w.text)
            .is_some_and(|l| matches!(&l.ty, Ty::Tensor(t) if t.dtype.is_float()));
        let reads = self.local_reads(&f.value);
        // Two parameters may be related by the caller (`saliency(score, x)` with a
        // score computed from `x`); anything else `f` reads is independent of `w`.
        let related_by_caller = self.is_param(&w.text) && reads.iter().any(|n| self.is_param(n));
        if !is_tensor_local || reads.contains(w.text.as_str()) || related_by_caller {
            return;
        }
        let d = Diagnostic::warning(
            codes::ZERO_GRADIENT,
            &self.fname,
            w.span,
            format!(
                "this gradient is zero: the expression does not depend on `{}`",
                w.text
            ),
        )
        .with_label(format!(
            "the differentiated expression never reads `{}`",
            w.text
        ))
        .with_secondary(&self.fname.clone(), f.value.span, "differentiated here")
        .with_help("differentiate an expression computed from this value, or drop the `grad`");
        self.error(d);
    }

    pub fn bind_pattern(&mut self, p: &Pattern, t: Ty) {
        match p {
            Pattern::Name(n) => {
                self.types.push((n.span, t.clone()));
                self.bind(&n.text, t, Some(n.span));
            }
            Pattern::Tuple(ps, span) => {
                let parts = match t {
                    Ty::Tuple(ts) if ts.len() == ps.len() => ts,
                    Ty::Error => vec![Ty::Error; ps.len()],
                    other => {
                        let d = self
                            .err(
                                codes::TYPE_MISMATCH,
                                *span,
                                format!("cannot destructure `{other}` into {} names", ps.len()),
                            )
                            .with_label(format!(
                                "expected a tuple of {} element{}",
                                ps.len(),
                                plural(ps.len())
                            ));
                        self.error(d);
                        vec![Ty::Error; ps.len()]
                    }
                };
                for (p, t) in ps.iter().zip(parts) {
                    self.bind_pattern(p, t);
                }
            }
        }
    }

    fn unary(&mut self, op: UnOp, t: Ty, span: Span) -> Ty {
        match (op, t) {
            (_, Ty::Error) => Ty::Error,
            (UnOp::Neg, Ty::Int(d)) => Ty::Int(d.and_then(|d| d.checked_neg())),
            (UnOp::Neg, Ty::Float(x)) => Ty::Float(x.map(|x| -x)),
            (UnOp::Neg, Ty::Tensor(t)) if t.dtype != DType::Bool => Ty::Tensor(t),
            (UnOp::Not, Ty::Bool(b)) => Ty::Bool(b.map(|b| !b)),
            (UnOp::Not, Ty::Tensor(t)) if t.dtype == DType::Bool => Ty::Tensor(t),
            (op, t) => {
                let sym = if op == UnOp::Neg { "-" } else { "!" };
                let d = self
                    .err(
                        codes::BAD_OPERAND,
                        span,
                        format!("cannot apply `{sym}` to `{t}`"),
                    )
                    .with_label(format!("this is `{t}`"));
                self.error(d);
                Ty::Error
            }
        }
    }

    /// Binary operators on statics, tensors, or a mix.
    fn binary(&mut self, op: BinOp, op_span: Span, l: &ArgVal, r: &ArgVal, span: Span) -> Ty {
        use BinOp::*;
        if l.ty.is_error() || r.ty.is_error() {
            return Ty::Error;
        }
        if op == MatMul {
            return self.matmul(l, r, op_span);
        }
        match (&l.ty, &r.ty) {
            (Ty::Int(a), Ty::Int(b)) => {
                return self.int_op(op, a.as_ref(), b.as_ref(), op_span, span)
            }
            (Ty::Int(_) | Ty::Float(_), Ty::Int(_) | Ty::Float(_)) => {
                let (a, b) = (static_f64(&l.ty), static_f64(&r.ty));
                return match op {
                    Add | Sub | Mul | Div | Pow | Rem => {
                        Ty::Float(a.zip(b).map(|(a, b)| float_op(op, a, b)))
                    }
                    Eq | Ne | Lt | Le | Gt | Ge => Ty::Bool(a.zip(b).map(|(a, b)| cmp(op, a, b))),
                    _ => self.bad_operands(op, op_span, l, r),
                };
            }
            (Ty::Str(a), Ty::Str(b)) if matches!(op, Eq | Ne) => {
                let same = a.as_ref().zip(b.as_ref()).map(|(a, b)| a == b);
                return Ty::Bool(if op == Eq { same } else { same.map(|s| !s) });
            }
            (Ty::Bool(a), Ty::Bool(b)) => {
                return match op {
                    And => Ty::Bool(a.zip(*b).map(|(a, b)| a && b)),
                    Or => Ty::Bool(a.zip(*b).map(|(a, b)| a || b)),
                    Eq => Ty::Bool(a.zip(*b).map(|(a, b)| a == b)),
                    Ne => Ty::Bool(a.zip(*b).map(|(a, b)| a != b)),
                    _ => self.bad_operands(op, op_span, l, r),
                };
            }
            _ => {}
        }
        let tensorish = |t: &Ty| matches!(t, Ty::Tensor(_) | Ty::Int(_) | Ty::Float(_));
        if !(tensorish(&l.ty) && tensorish(&r.ty)) {
            return self.bad_operands(op, op_span, l, r);
        }
        let t = self.elementwise(Some(l), Some(r), op_span, op.symbol());
        let Ty::Tensor(t) = t else { return t };
        match op {
            Eq | Ne | Lt | Le | Gt | Ge => Ty::tensor(DType::Bool, t.shape),
            And | Or if t.dtype != DType::Bool => self.bad_operands(op, op_span, l, r),
            Add | Sub | Mul | Div | Rem | Pow if t.dtype == DType::Bool => {
                self.bad_operands(op, op_span, l, r)
            }
            _ => Ty::Tensor(t),
        }
    }

    fn bad_operands(&mut self, op: BinOp, op_span: Span, l: &ArgVal, r: &ArgVal) -> Ty {
        let d = self
            .err(
                codes::BAD_OPERAND,
                op_span,
                format!(
                    "cannot apply `{}` to `{}` and `{}`",
                    op.symbol(),
                    l.ty,
                    r.ty
                ),
            )
            .with_label("no rule for these operands")
            .with_secondary(&self.fname.clone(), l.span, format!("this is `{}`", l.ty))
            .with_secondary(&self.fname.clone(), r.span, format!("this is `{}`", r.ty));
        self.error(d);
        Ty::Error
    }

    fn int_op(
        &mut self,
        op: BinOp,
        a: Option<&Dim>,
        b: Option<&Dim>,
        op_span: Span,
        span: Span,
    ) -> Ty {
        use BinOp::*;
        let (Some(a), Some(b)) = (a, b) else {
            return match op {
                Eq | Ne | Lt | Le | Gt | Ge => Ty::Bool(None),
                _ => Ty::Int(None),
            };
        };
        let consts = a.as_const().zip(b.as_const());
        let r = match op {
            Add => a.checked_add(b),
            Sub => a.checked_sub(b),
            Mul => a.checked_mul(b),
            Div => match a.checked_div(b) {
                Some(q) => Some(q),
                None => {
                    return match consts {
                        Some((_, 0)) => self.int_error(op_span, "division by zero"),
                        Some((x, y)) => Ty::Float(Some(x as f64 / y as f64)),
                        None => Ty::Float(None),
                    }
                }
            },
            Rem => match consts {
                Some((_, 0)) => return self.int_error(op_span, "division by zero"),
                // Python's `%`: the result has the sign of the divisor.
                Some((x, y)) => Some(Dim::constant(((x % y) + y) % y)),
                None => return Ty::Int(None),
            },
            Pow => match consts {
                Some((x, y)) if y >= 0 => u32::try_from(y)
                    .ok()
                    .and_then(|y| x.checked_pow(y))
                    .map(Dim::constant),
                Some((x, y)) => return Ty::Float(Some((x as f64).powf(y as f64))),
                None => return Ty::Int(None),
            },
            Eq => {
                return Ty::Bool(if a == b {
                    Some(true)
                } else {
                    consts.map(|(x, y)| x == y)
                })
            }
            Ne => {
                return Ty::Bool(if a == b {
                    Some(false)
                } else {
                    consts.map(|(x, y)| x != y)
                })
            }
            Lt | Le | Gt | Ge => return Ty::Bool(consts.map(|(x, y)| cmp(op, x as f64, y as f64))),
            And | Or | MatMul => return Ty::Error,
        };
        match r {
            Some(d) => Ty::Int(Some(d)),
            None => self.int_error(span, "integer overflow in a compile-time expression"),
        }
    }

    fn int_error(&mut self, span: Span, msg: &str) -> Ty {
        let d = self
            .err(codes::BAD_OPERAND, span, msg.to_string())
            .with_label("here");
        self.error(d);
        Ty::Error
    }

    /// The tensor view of an operand: statics become scalars of the other side's type.
    fn as_tensor(t: &Ty, other: Option<&Ty>) -> Option<TensorTy> {
        let other_dtype = match other {
            Some(Ty::Tensor(t)) => Some(t.dtype),
            _ => None,
        };
        match t {
            Ty::Tensor(t) => Some(t.clone()),
            Ty::Float(_) => Some(TensorTy {
                dtype: match other_dtype {
                    Some(d) if d.is_float() => d,
                    _ => DType::F32,
                },
                shape: Shape::scalar(),
            }),
            Ty::Int(_) => Some(TensorTy {
                dtype: other_dtype.unwrap_or(DType::I64),
                shape: Shape::scalar(),
            }),
            Ty::Bool(_) => Some(TensorTy {
                dtype: DType::Bool,
                shape: Shape::scalar(),
            }),
            _ => None,
        }
    }

    /// Elementwise combination with broadcasting and element-type rules.
    pub fn elementwise(
        &mut self,
        l: Option<&ArgVal>,
        r: Option<&ArgVal>,
        span: Span,
        what: &str,
    ) -> Ty {
        let (Some(l), Some(r)) = (l, r) else {
            return Ty::Error;
        };
        if l.ty.is_error() || r.ty.is_error() {
            return Ty::Error;
        }
        let (Some(mut a), Some(mut b)) = (
            Self::as_tensor(&l.ty, Some(&r.ty)),
            Self::as_tensor(&r.ty, Some(&l.ty)),
        ) else {
            let bad = if Self::as_tensor(&l.ty, None).is_none() {
                l
            } else {
                r
            };
            let d = self
                .err(
                    codes::TYPE_MISMATCH,
                    bad.span,
                    format!("`{what}` expects tensors, found {}", bad.ty.kind_name()),
                )
                .with_label(format!("this is `{}`", bad.ty));
            self.error(d);
            return Ty::Error;
        };
        // An integer tensor combined with a Float literal promotes to f32.
        if matches!(l.ty, Ty::Float(_)) && b.dtype.is_int() {
            b.dtype = DType::F32;
            a.dtype = DType::F32;
        }
        if matches!(r.ty, Ty::Float(_)) && a.dtype.is_int() {
            a.dtype = DType::F32;
            b.dtype = DType::F32;
        }
        if a.dtype != b.dtype {
            let d = self
                .err(
                    codes::DTYPE_MISMATCH,
                    span,
                    format!(
                        "mismatched element types in `{what}`: `{}` and `{}`",
                        a.dtype.name(),
                        b.dtype.name()
                    ),
                )
                .with_label("element types differ")
                .with_secondary(&self.fname.clone(), l.span, format!("this is `{}`", l.ty))
                .with_secondary(&self.fname.clone(), r.span, format!("this is `{}`", r.ty))
                .with_help(format!(
                    "convert one side, e.g. `cast(x, {})`",
                    a.dtype.name()
                ));
            self.error(d);
            return Ty::Error;
        }
        match broadcast(&a.shape, &b.shape) {
            Ok(s) => Ty::tensor(a.dtype, s),
            Err(msg) => self.broadcast_error(Some(l), Some(r), &l.ty, &r.ty, span, &msg),
        }
    }

    pub fn broadcast_error(
        &mut self,
        l: Option<&ArgVal>,
        r: Option<&ArgVal>,
        lt: &Ty,
        rt: &Ty,
        span: Span,
        why: &str,
    ) -> Ty {
        let fname = self.fname.clone();
        let mut d = self
            .err(
                codes::NOT_BROADCASTABLE,
                span,
                format!("shapes `{lt}` and `{rt}` cannot be broadcast together"),
            )
            .with_label(why.to_string());
        for a in [l, r].into_iter().flatten() {
            d = d.with_secondary(&fname, a.span, format!("this is `{}`", a.ty));
            if let Some(o) = a.origin {
                d = d.with_secondary(&fname, o, "shape fixed here");
            }
        }
        self.error(d.with_note(
            "broadcasting aligns shapes at the right; each pair of dimensions must be equal or 1",
        ));
        Ty::Error
    }

    /// `a @ b`.
    pub fn matmul(&mut self, l: &ArgVal, r: &ArgVal, op_span: Span) -> Ty {
        let (Ty::Tensor(a), Ty::Tensor(b)) = (&l.ty, &r.ty) else {
            if l.ty.is_error() || r.ty.is_error() {
                return Ty::Error;
            }
            let bad = if matches!(l.ty, Ty::Tensor(_)) { r } else { l };
            let d = self
                .err(
                    codes::BAD_OPERAND,
                    bad.span,
                    format!("`@` multiplies tensors, found {}", bad.ty.kind_name()),
                )
                .with_label(format!("this is `{}`", bad.ty));
            self.error(d);
            return Ty::Error;
        };
        if a.dtype != b.dtype {
            let d = self
                .err(
                    codes::DTYPE_MISMATCH,
                    op_span,
                    format!(
                        "mismatched element types in `@`: `{}` and `{}`",
                        a.dtype.name(),
                        b.dtype.name()
                    ),
                )
                .with_label("element types differ")
                .with_secondary(&self.fname.clone(), l.span, format!("this is `{a}`"))
                .with_secondary(&self.fname.clone(), r.span, format!("this is `{b}`"));
            self.error(d);
            return Ty::Error;
        }
        if self.needs_f32(a, op_span, "a matrix product") {
            return Ty::Error;
        }
        let (an, bn) = (a.shape.0.len(), b.shape.0.len());
        let last_dim = |s: &Shape, from_end: usize| -> Option<Dim> {
            match s.0.get(s.0.len().checked_sub(from_end)?) {
                Some(DimItem::Dim(d)) => Some(d.clone()),
                _ => None,
            }
        };
        // Contracted dimension of each side, plus the kept parts.
        let (ka, a_keep): (Option<Dim>, Vec<DimItem>) = if a.shape.rank() == Some(1) {
            (last_dim(&a.shape, 1), vec![])
        } else if an >= 2 {
            (last_dim(&a.shape, 1), a.shape.0[..an - 1].to_vec())
        } else {
            (None, vec![])
        };
        let (kb, b_keep): (Option<Dim>, Option<DimItem>) = if b.shape.rank() == Some(1) {
            (last_dim(&b.shape, 1), None)
        } else if bn >= 2 {
            (last_dim(&b.shape, 2), Some(b.shape.0[bn - 1].clone()))
        } else {
            (None, None)
        };
        let (Some(ka), Some(kb)) = (ka, kb) else {
            let d = self
                .err(codes::RANK_MISMATCH, op_span, format!("`@` needs tensors of rank 1 or more with known trailing dimensions, found `{a}` and `{b}`"))
                .with_label("cannot multiply these");
            self.error(d);
            return Ty::Error;
        };
        if ka != kb {
            let fname = self.fname.clone();
            let mut d = self
                .err(codes::MATMUL_MISMATCH, op_span, format!("matrix multiplication of `{a}` and `{b}`: inner dimensions `{ka}` and `{kb}` differ"))
                .with_label(format!("`{ka}` ≠ `{kb}`"))
                .with_secondary(&fname, l.span, format!("this is `{a}`"))
                .with_secondary(&fname, r.span, format!("this is `{b}`"));
            for o in [l.origin, r.origin].into_iter().flatten() {
                d = d.with_secondary(&fname, o, "shape fixed here");
            }
            self.error(d.with_note("`[.., M, K] @ [.., K, N]` needs the same `K` on both sides"));
            return Ty::Error;
        }
        // Batch dimensions broadcast; then M (if any) and N (if any).
        let (a_batch, m) = match a_keep.split_last() {
            Some((m, batch)) => (batch.to_vec(), Some(m.clone())),
            None => (vec![], None),
        };
        let b_batch: Vec<DimItem> = if bn >= 2 {
            b.shape.0[..bn - 2].to_vec()
        } else {
            vec![]
        };
        let batch = match broadcast(&Shape(a_batch), &Shape(b_batch)) {
            Ok(s) => s,
            Err(msg) => return self.broadcast_error(Some(l), Some(r), &l.ty, &r.ty, op_span, &msg),
        };
        let mut out = batch.0;
        out.extend(m);
        out.extend(b_keep);
        Ty::tensor(a.dtype, Shape(out))
    }

    /// Binds arguments to a builtin's named parameters (`(name, optional)`).
    pub fn bind_args(
        &mut self,
        callee: &str,
        params: &[(&str, bool)],
        args: &[ArgVal],
        span: Span,
    ) -> Option<Vec<Option<ArgVal>>> {
        let mut slots: Vec<Option<ArgVal>> = vec![None; params.len()];
        let mut ok = true;
        let mut positional = 0;
        for a in args {
            let i = match &a.name {
                Some(n) => match params.iter().position(|p| p.0 == n.text) {
                    Some(i) => i,
                    None => {
                        let mut d = self
                            .err(
                                codes::UNKNOWN_NAMED_ARG,
                                n.span,
                                format!("`{callee}` has no parameter `{}`", n.text),
                            )
                            .with_label("unknown name");
                        if let Some(s) =
                            crate::suggest::closest(&n.text, params.iter().map(|p| p.0))
                        {
                            d = d.with_help(format!("did you mean `{s}`?"));
                        } else {
                            let all: Vec<String> =
                                params.iter().map(|p| format!("`{}`", p.0)).collect();
                            d = d.with_note(format!("its parameters are {}", all.join(", ")));
                        }
                        self.error(d);
                        ok = false;
                        continue;
                    }
                },
                None => {
                    if args
                        .iter()
                        .take_while(|b| !std::ptr::eq(*b, a))
                        .any(|b| b.name.is_some())
                    {
                        let d = self
                            .err(
                                codes::DUPLICATE_ARG,
                                a.span,
                                "positional argument after a named one",
                            )
                            .with_label("move it before the named arguments");
                        self.error(d);
                        ok = false;
                        continue;
                    }
                    positional += 1;
                    if positional > params.len() {
                        let d = self
                            .err(
                                codes::ARG_COUNT,
                                a.span,
                                format!(
                                    "`{callee}` takes {} argument{} but {} were given",
                                    params.len(),
                                    plural(params.len()),
                                    args.len()
                                ),
                            )
                            .with_label("unexpected argument");
                        self.error(d);
                        ok = false;
                        continue;
                    }
                    positional - 1
                }
            };
            if slots[i].is_some() {
                let d = self
                    .err(
                        codes::DUPLICATE_ARG,
                        a.span,
                        format!("`{}` is given twice", params[i].0),
                    )
                    .with_label("given again");
                self.error(d);
                ok = false;
                continue;
            }
            slots[i] = Some(a.clone());
        }
        let missing: Vec<String> = params
            .iter()
            .zip(&slots)
            .filter(|((_, optional), s)| !optional && s.is_none())
            .map(|((n, _), _)| format!("`{n}`"))
            .collect();
        if ok && !missing.is_empty() {
            let d = self
                .err(
                    codes::MISSING_ARG,
                    span,
                    format!(
                        "`{callee}` is missing {} {}",
                        if missing.len() == 1 {
                            "argument"
                        } else {
                            "arguments"
                        },
                        missing.join(", ")
                    ),
                )
                .with_label(format!(
                    "`{callee}` takes {} argument{}",
                    params.len(),
                    plural(params.len())
                ));
            self.error(d);
            return None;
        }
        ok.then_some(slots)
    }

    /// A call of any callee value.
    pub fn call_expr(&mut self, callee: &Expr, args: &[ArgVal], span: Span) -> Ty {
        let cty = self.expr(callee);
        match cty {
            Ty::Error => Ty::Error,
            Ty::Builtin(name) => crate::builtins::call(self, name, args, span),
            Ty::Func(r) => {
                let id = self.item_id(&r);
                let res = crate::items::fn_sig(self.db, id);
                match &res.sig {
                    Some(sig) => self.call_sig(sig, None, args, span),
                    None => Ty::Error,
                }
            }
            Ty::Layer(inst) => {
                // Where the instance was bound explains its hyperparameters in errors.
                let bound_at = match &callee.kind {
                    ExprKind::Name(n) => self.lookup(&n.text).and_then(|l| l.span),
                    _ => None,
                };
                self.callee_note =
                    bound_at.map(|s| (s, format!("`{}` is `{inst}`", callee_text(callee))));
                let t = self.call_method(&inst, "forward", args, span, callee.span);
                self.callee_note = None;
                t
            }
            Ty::Method(inst, m) => self.call_method(&inst, &m, args, span, callee.span),
            Ty::LayerCtor(r) => {
                let d = self
                    .err(
                        codes::NOT_CALLABLE,
                        callee.span,
                        format!(
                            "layer `{}` cannot be instantiated inside an expression",
                            r.name
                        ),
                    )
                    .with_label("creates parameters")
                    .with_help(format!(
                        "bind it as a member, e.g. `{} = {}(...)`, and call the member",
                        r.name.to_lowercase(),
                        r.name
                    ));
                self.error(d);
                Ty::Error
            }
            other => {
                let d = self
                    .err(
                        codes::NOT_CALLABLE,
                        callee.span,
                        format!("{} cannot be called", other.kind_name()),
                    )
                    .with_label(format!("this is `{other}`"));
                self.error(d);
                Ty::Error
            }
        }
    }

    fn call_method(
        &mut self,
        inst: &LayerInst,
        method: &str,
        args: &[ArgVal],
        span: Span,
        callee_span: Span,
    ) -> Ty {
        let Some(sig) = self.sig_of(inst) else {
            return Ty::Error;
        };
        match sig.method(method) {
            Some(m) => self.call_sig(m, Some(inst), args, span),
            None => {
                let d = self
                    .err(
                        codes::NO_SUCH_MEMBER,
                        callee_span,
                        format!("layer `{}` has no method `{method}`", inst.layer.name),
                    )
                    .with_label("method not found");
                self.error(d);
                Ty::Error
            }
        }
    }

    /// Calls a signature: binds arguments, unifies shapes, returns the result type.
    pub fn call_sig(
        &mut self,
        sig: &FnSig,
        inst: Option<&LayerInst>,
        args: &[ArgVal],
        span: Span,
    ) -> Ty {
        let names: Vec<(&str, bool)> = sig
            .params
            .iter()
            .map(|p| (&*p.name, p.default.is_some()))
            .collect();
        let Some(bound) = self.bind_args(&sig.name, &names, args, span) else {
            return Ty::Error;
        };
        let mut u = Unifier::new(&sig.dims, &sig.packs);
        if let Some(inst) = inst {
            for (name, v) in &inst.args {
                if let Static::Int(d) = v {
                    u.fix(name, d.clone());
                }
            }
        }
        let callee_file = sig.file.name(self.db).clone();
        let mut deferred = Vec::new();
        let mut failed = false;
        for (pi, (p, a)) in sig.params.iter().zip(&bound).enumerate() {
            u.current = pi;
            let Some(a) = a else { continue };
            if a.ty.is_error() {
                failed = true;
                continue;
            }
            match (&p.ty, &a.ty) {
                (Ty::Tensor(pt), at @ (Ty::Tensor(_) | Ty::Float(_) | Ty::Int(_))) => {
                    if matches!(at, Ty::Float(_)) && !pt.dtype.is_float() {
                        let d = self
                            .err(
                                codes::DTYPE_MISMATCH,
                                a.span,
                                format!(
                                    "expected element type `{}`, found a `Float`",
                                    pt.dtype.name()
                                ),
                            )
                            .with_label("a float value")
                            .with_secondary(
                                &callee_file,
                                p.span,
                                format!("parameter `{}` of `{}` declared here", p.name, sig.name),
                            );
                        self.error(d);
                        failed = true;
                        continue;
                    }
                    let t = match at {
                        Ty::Tensor(t) => t.clone(),
                        _ => TensorTy {
                            dtype: pt.dtype,
                            shape: Shape::scalar(),
                        },
                    };
                    if !(t.dtype.widens_to(pt.dtype)
                        || matches!(at, Ty::Int(_)) && pt.dtype.is_float())
                    {
                        let d = self
                            .err(
                                codes::DTYPE_MISMATCH,
                                a.span,
                                format!(
                                    "expected element type `{}`, found `{}`",
                                    pt.dtype.name(),
                                    t.dtype.name()
                                ),
                            )
                            .with_label(format!("this is `{t}`"))
                            .with_secondary(
                                &callee_file,
                                p.span,
                                format!("parameter `{}` of `{}` declared here", p.name, sig.name),
                            )
                            .with_help(format!("convert it with `cast(x, {})`", pt.dtype.name()));
                        self.error(d);
                        failed = true;
                        continue;
                    }
                    let mut local_deferred = Vec::new();
                    if let Err(e) = u.match_shape(&pt.shape, &t.shape, &mut local_deferred) {
                        let fixed = fixed_by(&u, p, pi, &bound);
                        self.shape_arg_error(sig, p, a, &t, e, fixed);
                        failed = true;
                        continue;
                    }
                    deferred.extend(
                        local_deferred
                            .into_iter()
                            .map(|(i, c, d)| (i, c, d, a.clone(), t.clone(), p.clone())),
                    );
                }
                (Ty::Int(_), Ty::Int(v)) => {
                    if let Some(v) = v {
                        u.fix(&p.name, v.clone());
                    }
                }
                (Ty::Float(_), Ty::Float(_) | Ty::Int(_))
                | (Ty::Bool(_), Ty::Bool(_))
                | (Ty::Str(_), Ty::Str(_)) => {}
                (pt @ Ty::Tuple(_), at @ Ty::Tuple(_)) => {
                    // Element by element: tensors unify their shapes (binding the
                    // signature's dimensions) and widen their element types.
                    let mut local_deferred = Vec::new();
                    if let Err(why) = match_tuple(&mut u, pt, at, &mut local_deferred) {
                        let d = self
                            .err(
                                codes::TYPE_MISMATCH,
                                a.span,
                                format!("expected `{pt}`, found `{at}`"),
                            )
                            .with_label(why)
                            .with_secondary(
                                &callee_file,
                                p.span,
                                format!("parameter `{}` of `{}` declared here", p.name, sig.name),
                            );
                        self.error(d);
                        failed = true;
                        continue;
                    }
                    deferred.extend(
                        local_deferred
                            .into_iter()
                            .map(|(i, c, d, t)| (i, c, d, a.clone(), t, p.clone())),
                    );
                }
                (pt, at) => {
                    let d = self
                        .err(
                            codes::TYPE_MISMATCH,
                            a.span,
                            format!("expected `{pt}`, found `{at}`"),
                        )
                        .with_label(format!("this is {}", at.kind_name()))
                        .with_secondary(
                            &callee_file,
                            p.span,
                            format!("parameter `{}` of `{}` declared here", p.name, sig.name),
                        );
                    self.error(d);
                    failed = true;
                }
            }
        }
        // Retry dimensions that needed other bindings first.
        let mut progress = true;
        while progress && !deferred.is_empty() {
            progress = false;
            let mut still = Vec::new();
            for (i, c, d, a, t, p) in deferred {
                match u.match_dim(&c, &d) {
                    Ok(true) => progress = true,
                    Ok(false) => still.push((i, c, d, a, t, p)),
                    Err(expected) => {
                        let pi = sig
                            .params
                            .iter()
                            .position(|q| q.name == p.name)
                            .unwrap_or(0);
                        let fixed = fixed_by(&u, &p, pi, &bound);
                        self.shape_arg_error(
                            sig,
                            &p,
                            &a,
                            &t,
                            ShapeError::Dim {
                                index: i,
                                expected,
                                found: d,
                            },
                            fixed,
                        );
                        failed = true;
                        progress = true;
                    }
                }
            }
            deferred = still;
        }
        if let Some((_, c, _, a, _, _)) = deferred.first() {
            let d = self
                .err(
                    codes::DIM_MISMATCH,
                    a.span,
                    format!(
                        "cannot infer the dimension `{c}` of `{}` from this argument",
                        sig.name
                    ),
                )
                .with_label("too little is known about this shape");
            self.error(d);
            return Ty::Error;
        }
        if failed {
            return Ty::Error;
        }
        self.instantiate_ret(&sig.ret, &u, sig, span)
    }

    fn instantiate_ret(&mut self, ret: &Ty, u: &Unifier, sig: &FnSig, span: Span) -> Ty {
        match ret {
            Ty::Tensor(t) => match u.subst_shape(&t.shape) {
                Some(s) => Ty::tensor(t.dtype, s),
                None => {
                    let d = self
                        .err(
                            codes::DIM_MISMATCH,
                            span,
                            format!(
                                "cannot infer every dimension of the result of `{}`: `{t}`",
                                sig.name
                            ),
                        )
                        .with_label("result shape unknown")
                        .with_note("each dimension of a result must appear in a parameter's type");
                    self.error(d);
                    Ty::Error
                }
            },
            Ty::Tuple(ts) => Ty::Tuple(
                ts.iter()
                    .map(|t| self.instantiate_ret(t, u, sig, span))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn shape_arg_error(
        &mut self,
        sig: &FnSig,
        p: &crate::items::ParamSig,
        a: &ArgVal,
        t: &TensorTy,
        e: ShapeError,
        fixed: Vec<(Span, String)>,
    ) {
        let callee_file = &sig.file.name(self.db).clone();
        let declared = match &p.ty {
            Ty::Tensor(pt) => pt.to_string(),
            other => other.to_string(),
        };
        let (code, msg, label) = match e {
            ShapeError::Rank { expected, found } => (
                codes::RANK_MISMATCH,
                format!(
                    "`{}` expects `{}` of rank {expected}, found rank {found}",
                    sig.name, p.name
                ),
                format!("this is `{t}`"),
            ),
            ShapeError::UnknownRank => (
                codes::RANK_MISMATCH,
                format!(
                    "`{}` expects `{}` with a known rank, found `{t}`",
                    sig.name, p.name
                ),
                "its rank depends on a pack".to_string(),
            ),
            ShapeError::Pack { name, bound, found } => (
                codes::DIM_MISMATCH,
                format!(
                    "`{}` expects `{}` with `..{name}` = `{bound}` (fixed by an earlier argument), found `{found}`",
                    sig.name, p.name
                ),
                format!("this is `{t}`"),
            ),
            ShapeError::Dim {
                index,
                expected,
                found,
            } => (
                codes::DIM_MISMATCH,
                format!(
                    "`{}` expects dimension {index} of `{}` to be `{expected}`, found `{found}`",
                    sig.name, p.name
                ),
                format!("this is `{t}`"),
            ),
        };
        let mut d = self
            .err(code, a.span, msg)
            .with_label(label)
            .with_secondary(
                callee_file,
                p.span,
                format!("`{}` is declared `{declared}` here", p.name),
            );
        if let Some(o) = a.origin {
            d = d.with_secondary(&self.fname.clone(), o, "shape fixed here");
        }
        if let Some((s, note)) = self.callee_note.clone() {
            d = d.with_secondary(&self.fname.clone(), s, note);
        }
        for (s, note) in fixed {
            d = d.with_secondary(&self.fname.clone(), s, note);
        }
        self.error(d);
    }

    /// `value.name`: a method, sub-layer or param of a layer; a record field.
    fn field(&mut self, t: Ty, name: &ast::Name) -> Ty {
        match &t {
            Ty::Error => Ty::Error,
            Ty::Layer(inst) => {
                let Some(sig) = self.sig_of(inst) else {
                    return Ty::Error;
                };
                if sig.method(&name.text).is_some() {
                    return Ty::Method(inst.clone(), Arc::from(name.text.as_str()));
                }
                if let Some(sub) = sig.subs.iter().find(|s| *s.name == *name.text) {
                    // The sub-layer's arguments are in the parent's terms: substitute.
                    return match &sub.inst {
                        Some(si) => Ty::Layer(substitute_inst(si, inst)),
                        None => Ty::Error,
                    };
                }
                if let Some(p) = sig.params.iter().find(|p| *p.name == *name.text) {
                    let mut u = Unifier::new(&[], &[]);
                    for (n, v) in &inst.args {
                        if let Static::Int(d) = v {
                            u.fix(n, d.clone());
                        }
                    }
                    return match u.subst_shape(&p.ty.shape) {
                        Some(s) => Ty::tensor(p.ty.dtype, s),
                        None => Ty::Error,
                    };
                }
                let mut d = self
                    .err(
                        codes::NO_SUCH_MEMBER,
                        name.span,
                        format!("layer `{}` has no member `{}`", inst.layer.name, name.text),
                    )
                    .with_label("unknown member");
                let names = sig
                    .methods
                    .iter()
                    .map(|m| &*m.name)
                    .chain(sig.subs.iter().map(|s| &*s.name))
                    .chain(sig.params.iter().map(|p| &*p.name));
                if let Some(s) = crate::suggest::closest(&name.text, names) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                self.error(d);
                Ty::Error
            }
            Ty::Record(fs) => match fs.iter().find(|(n, _)| **n == *name.text) {
                Some((_, t)) => t.clone(),
                None => {
                    let d = self
                        .err(
                            codes::NO_SUCH_MEMBER,
                            name.span,
                            format!("no field `{}` in `{t}`", name.text),
                        )
                        .with_label("unknown field");
                    self.error(d);
                    Ty::Error
                }
            },
            other => {
                let d = self
                    .err(
                        codes::NO_SUCH_MEMBER,
                        name.span,
                        format!("{} has no member `{}`", other.kind_name(), name.text),
                    )
                    .with_label(format!("this is `{other}`"));
                self.error(d);
                Ty::Error
            }
        }
    }

    /// `x[...]` on a tensor or a tuple.
    fn index(&mut self, t: Ty, items: &[IndexItem], base_span: Span) -> Ty {
        if let Ty::Tuple(ts) = &t {
            if let [IndexItem::Index(e)] = items {
                let it = self.expr(e);
                if let Ty::Int(Some(d)) = &it {
                    if let Some(i) = d.as_const() {
                        let n = ts.len() as i64;
                        let j = if i < 0 { i + n } else { i };
                        if (0..n).contains(&j) {
                            return ts[j as usize].clone();
                        }
                    }
                }
                let d = self
                    .err(
                        codes::BAD_INDEX,
                        e.span,
                        format!(
                            "tuple index must be a literal between 0 and {}",
                            ts.len().saturating_sub(1)
                        ),
                    )
                    .with_label("out of range");
                self.error(d);
                return Ty::Error;
            }
        }
        let x = match t {
            Ty::Tensor(x) => x,
            Ty::Error => return Ty::Error,
            other => {
                let d = self
                    .err(
                        codes::BAD_INDEX,
                        base_span,
                        format!("{} cannot be indexed", other.kind_name()),
                    )
                    .with_label(format!("this is `{other}`"));
                self.error(d);
                return Ty::Error;
            }
        };
        let n_explicit = items
            .iter()
            .filter(|i| !matches!(i, IndexItem::Ellipsis(_)))
            .count();
        let ellipses = items.len() - n_explicit;
        if ellipses > 1 {
            let second = items
                .iter()
                .filter_map(|i| match i {
                    IndexItem::Ellipsis(s) => Some(*s),
                    _ => None,
                })
                .nth(1)
                .unwrap_or(base_span);
            let d = self
                .err(
                    codes::BAD_INDEX,
                    second,
                    "an index can hold at most one `...`",
                )
                .with_label("here");
            self.error(d);
            return Ty::Error;
        }
        let dims = &x.shape.0;
        let has_pack = x.shape.has_pack();
        if n_explicit > dims.len() || (ellipses == 0 && has_pack) {
            let item_span = |it: &IndexItem| match it {
                IndexItem::Ellipsis(s) | IndexItem::Slice { span: s, .. } => *s,
                IndexItem::Index(e) => e.span,
            };
            let extra = items
                .iter()
                .filter(|i| !matches!(i, IndexItem::Ellipsis(_)))
                .nth(dims.len())
                .map_or(base_span, item_span);
            let d = self
                .err(
                    codes::BAD_INDEX,
                    if has_pack { base_span } else { extra },
                    format!("too many indices for `{x}`: {n_explicit}"),
                )
                .with_label(if has_pack {
                    format!("this is `{x}`")
                } else {
                    format!("`{x}` has only {} axes", dims.len())
                })
                .with_help(if has_pack {
                    "index around a pack with `...`, e.g. `x[..., 0]`"
                } else {
                    "remove some indices"
                });
            self.error(d);
            return Ty::Error;
        }
        let mut out: Vec<DimItem> = Vec::new();
        let mut pos = 0usize;
        for item in items {
            match item {
                IndexItem::Ellipsis(_) => {
                    let skip = dims.len() - n_explicit;
                    out.extend(dims[pos..pos + skip].iter().cloned());
                    pos += skip;
                }
                IndexItem::Index(e) => {
                    let it = self.expr(e);
                    let dim = &dims[pos];
                    match &it {
                        Ty::Int(v) => {
                            if let (Some(c), DimItem::Dim(d)) =
                                (v.as_ref().and_then(|v| v.as_const()), dim)
                            {
                                if let Some(n) = d.as_const() {
                                    if c >= n || c < -n {
                                        let d = self
                                            .err(codes::BAD_INDEX, e.span, format!("index {c} is out of bounds for a dimension of size {n}"))
                                            .with_label("out of bounds");
                                        self.error(d);
                                        return Ty::Error;
                                    }
                                }
                            }
                        }
                        Ty::Tensor(_) => {
                            let d = self
                                .err(codes::BAD_INDEX, e.span, "indices must be static integers, found a tensor")
                                .with_label("known only at run time")
                                .with_help("select elements with a tensor of indices using `gather(x, indices, axis = ...)`");
                            self.error(d);
                            return Ty::Error;
                        }
                        Ty::Error => return Ty::Error,
                        other => {
                            let d = self
                                .err(codes::BAD_INDEX, e.span, format!("an index must be an Int or an integer tensor, found `{other}`"))
                                .with_label("not an index");
                            self.error(d);
                            return Ty::Error;
                        }
                    }
                    pos += 1;
                }
                IndexItem::Slice {
                    start,
                    stop,
                    step,
                    span,
                } => {
                    let DimItem::Dim(d) = &dims[pos] else {
                        return Ty::Error;
                    };
                    let mut part = |e: &Option<Box<Expr>>| -> Option<Option<Dim>> {
                        match e {
                            None => Some(None),
                            Some(e) => match self.expr(e) {
                                Ty::Int(Some(v)) => Some(Some(v)),
                                _ => None,
                            },
                        }
                    };
                    let (Some(a), Some(b), Some(s)) = (part(start), part(stop), part(step)) else {
                        let d = self
                            .err(
                                codes::BAD_INDEX,
                                *span,
                                "slice bounds must be static integers",
                            )
                            .with_label("not known at compile time");
                        self.error(d);
                        return Ty::Error;
                    };
                    let Some(s) = s.map_or(Some(1), |s| s.as_const()) else {
                        let d = self
                            .err(
                                codes::BAD_INDEX,
                                *span,
                                "a slice step must be an integer literal",
                            )
                            .with_label("symbolic step");
                        self.error(d);
                        return Ty::Error;
                    };
                    match slice_len(d, a, b, s) {
                        Ok(len) => out.push(DimItem::Dim(len)),
                        Err(msg) => {
                            let e = self
                                .err(codes::BAD_INDEX, *span, msg)
                                .with_label(format!("slicing a dimension of size `{d}`"));
                            self.error(e);
                            return Ty::Error;
                        }
                    }
                    pos += 1;
                }
            }
        }
        out.extend(dims[pos..].iter().cloned());
        Ty::tensor(x.dtype, Shape(out))
    }
}

/// The length of `start:stop:step` over a dimension `d`. Negative bounds count from
/// the end; bounds outside the dimension are errors when they can be decided.
fn slice_len(d: &Dim, start: Option<Dim>, stop: Option<Dim>, step: i64) -> Result<Dim, String> {
    if step <= 0 {
        return Err("slice steps must be positive".into());
    }
    let n = d.as_const();
    let norm = |v: Dim| -> Result<Dim, String> {
        match (v.as_const(), n) {
            (Some(c), Some(n)) if c < -n || c > n => Err(format!(
                "slice bound {c} is out of bounds for a dimension of size {n}"
            )),
            (Some(c), _) if c < 0 => d
                .checked_add(&v)
                .ok_or_else(|| "slice bound overflows".to_string()),
            _ => Ok(v),
        }
    };
    let a = start.map(norm).transpose()?.unwrap_or_default();
    let b = match stop {
        Some(v) => norm(v)?,
        None => d.clone(),
    };
    let len = b
        .checked_sub(&a)
        .ok_or_else(|| "slice length overflows".to_string())?;
    match len.as_const() {
        Some(l) if l < 0 => Err(format!("the slice ends before it starts ({} elements)", l)),
        Some(l) => Ok(Dim::constant((l + step - 1) / step)),
        None if step == 1 => Ok(len),
        None => len
            .checked_div(&Dim::constant(step))
            .ok_or_else(|| format!("a step of {step} over `{len}` elements has no exact length")),
    }
}

/// Re-expresses a sub-layer's instance (written in its parent's hyperparameters)
/// in terms of a concrete parent instance.
pub fn substitute_inst(sub: &LayerInst, parent: &LayerInst) -> LayerInst {
    let mut u = Unifier::new(&[], &[]);
    for (n, v) in &parent.args {
        if let Static::Int(d) = v {
            u.fix(n, d.clone());
        }
    }
    LayerInst {
        layer: sub.layer.clone(),
        args: sub
            .args
            .iter()
            .map(|(n, v)| {
                let v = match v {
                    Static::Int(d) => Static::Int(u.subst_dim(d).unwrap_or_else(|| d.clone())),
                    Static::Param(p) => parent
                        .args
                        .iter()
                        .find(|(n, _)| n == p)
                        .map_or_else(|| v.clone(), |(_, pv)| pv.clone()),
                    other => other.clone(),
                };
                (n.clone(), v)
            })
            .collect(),
    }
}

/// Labels for the callee's names in `p`'s type that an earlier argument fixed.
fn fixed_by(
    u: &Unifier,
    p: &crate::items::ParamSig,
    pi: usize,
    args: &[Option<ArgVal>],
) -> Vec<(Span, String)> {
    let Ty::Tensor(pt) = &p.ty else {
        return Vec::new();
    };
    let mut out: Vec<(Span, String)> = Vec::new();
    let mut note = |name: &Arc<str>, value: String| {
        if let Some(&j) = u.origin.get(name) {
            if j != pi {
                if let Some(Some(a)) = args.get(j) {
                    let text = format!("`{name}` = `{value}` fixed by this argument");
                    if !out.iter().any(|(_, t)| *t == text) {
                        out.push((a.span, text));
                    }
                }
            }
        }
    };
    for item in &pt.shape.0 {
        match item {
            DimItem::Dim(d) => {
                for atom in d.atoms() {
                    if let crate::dim::Atom::Sym(n) = atom {
                        if let Some(v) = u.dims.get(n) {
                            note(n, v.to_string());
                        }
                    }
                }
            }
            DimItem::Pack(n) => {
                if let Some(v) = u.packs.get(n) {
                    note(n, Shape(v.clone()).to_string());
                }
            }
        }
    }
    out
}

fn callee_text(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Name(n) => n.text.clone(),
        _ => "this layer".to_string(),
    }
}

fn static_f64(t: &Ty) -> Option<f64> {
    match t {
        Ty::Float(x) => *x,
        Ty::Int(Some(d)) => d.as_const().map(|c| c as f64),
        _ => None,
    }
}

fn float_op(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Rem => a % b,
        BinOp::Pow => a.powf(b),
        _ => f64::NAN,
    }
}

fn cmp(op: BinOp, a: f64, b: f64) -> bool {
    match op {
        BinOp::Eq => a == b,
        BinOp::Ne => a != b,
        BinOp::Lt => a < b,
        BinOp::Le => a <= b,
        BinOp::Gt => a > b,
        BinOp::Ge => a >= b,
        _ => false,
    }
}

/// Unifies a tuple parameter's type with an argument's, element by element; the
/// dimensions that need other bindings first are added to `deferred` with the tensor
/// they belong to. The error says which element differs.
#[allow(clippy::type_complexity)]
fn match_tuple(
    u: &mut Unifier,
    expected: &Ty,
    actual: &Ty,
    deferred: &mut Vec<(usize, Dim, Dim, TensorTy)>,
) -> Result<(), String> {
    match (expected, actual) {
        (Ty::Tuple(es), Ty::Tuple(xs)) if es.len() == xs.len() => {
            for (k, (e, x)) in es.iter().zip(xs).enumerate() {
                match_tuple(u, e, x, deferred).map_err(|why| format!("element {k}: {why}"))?;
            }
            Ok(())
        }
        (Ty::Tuple(es), Ty::Tuple(xs)) => Err(format!(
            "a tuple of {} elements, not {}",
            xs.len(),
            es.len()
        )),
        (Ty::Tensor(e), Ty::Tensor(x)) => {
            if !x.dtype.widens_to(e.dtype) {
                return Err(format!(
                    "element type `{}` where `{}` is expected",
                    x.dtype.name(),
                    e.dtype.name()
                ));
            }
            let mut local = Vec::new();
            u.match_shape(&e.shape, &x.shape, &mut local)
                .map_err(|_| format!("`{x}` does not have the shape `{}`", e.shape))?;
            deferred.extend(local.into_iter().map(|(i, c, d)| (i, c, d, x.clone())));
            Ok(())
        }
        (Ty::Tensor(e), Ty::Float(_) | Ty::Int(_)) if e.shape.rank() == Some(0) => Ok(()),
        (Ty::Int(_), Ty::Int(_))
        | (Ty::Float(_), Ty::Float(_) | Ty::Int(_))
        | (Ty::Bool(_), Ty::Bool(_))
        | (Ty::Str(_), Ty::Str(_)) => Ok(()),
        (e, x) => Err(format!("`{x}` where `{e}` is expected")),
    }
}
