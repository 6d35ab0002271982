//! Moving an AST by a byte offset. Declarations are parsed (and cached) relative to
//! their own start; [`shift_item`] places a cached one at its position in the file.

use dnnc_diagnostics::Span;

use crate::ast::*;

fn s(span: &mut Span, d: u32) {
    span.start += d;
    span.end += d;
}

fn name(n: &mut Name, d: u32) {
    s(&mut n.span, d);
}

pub fn shift_item(it: &mut Item, d: u32) {
    s(&mut it.span, d);
    match &mut it.kind {
        ItemKind::Use(u) => {
            u.path.iter_mut().for_each(|n| name(n, d));
            match &mut u.imports {
                UseImports::Names(ns) => ns.iter_mut().for_each(|n| name(n, d)),
                UseImports::Glob(g) => s(g, d),
            }
        }
        ItemKind::Layer(l) => {
            name(&mut l.name, d);
            for h in &mut l.hparams {
                name(&mut h.name, d);
                name(&mut h.ty, d);
                if let Some(e) = &mut h.default {
                    expr(e, d);
                }
            }
            for m in &mut l.members {
                s(&mut m.span, d);
                match &mut m.kind {
                    MemberKind::Param {
                        name: n,
                        ty,
                        init,
                        frozen,
                        ..
                    } => {
                        name(n, d);
                        type_expr(ty, d);
                        expr(init, d);
                        if let Some(f) = frozen {
                            s(f, d);
                        }
                    }
                    MemberKind::SubLayer(b) => binding(b, d),
                    MemberKind::Fn(f) => fn_def(f, d),
                }
            }
        }
        ItemKind::Fn(f) => fn_def(f, d),
        ItemKind::Dataset(ds) => {
            name(&mut ds.name, d);
            for sp in &mut ds.splits {
                s(&mut sp.span, d);
                name(&mut sp.name, d);
                for (n, e) in &mut sp.fields {
                    name(n, d);
                    expr(e, d);
                }
            }
        }
        ItemKind::Train(t) => {
            name(&mut t.name, d);
            name(&mut t.dataset, d);
            if let Some(a) = &mut t.args {
                a.iter_mut().for_each(|a| arg(a, d));
            }
            if let Some(sp) = &mut t.args_span {
                s(sp, d);
            }
            for it in &mut t.items {
                s(&mut it.span, d);
                match &mut it.kind {
                    TrainItemKind::Model(b) => binding(b, d),
                    TrainItemKind::Let(l) => let_stmt(l, d),
                    TrainItemKind::Field(n, e) => {
                        name(n, d);
                        expr(e, d);
                    }
                    TrainItemKind::Step { name: n, items } => {
                        name(n, d);
                        for si in items {
                            s(&mut si.span, d);
                            match &mut si.kind {
                                StepItemKind::Let(l) => let_stmt(l, d),
                                StepItemKind::Field(n, e) => {
                                    name(n, d);
                                    expr(e, d);
                                }
                                StepItemKind::Update { models, optimizer } => {
                                    models.iter_mut().for_each(|n| name(n, d));
                                    expr(optimizer, d);
                                }
                            }
                        }
                    }
                }
            }
        }
        ItemKind::Error { name: n } => {
            if let Some(n) = n {
                name(n, d);
            }
        }
    }
}

fn binding(b: &mut Binding, d: u32) {
    name(&mut b.name, d);
    expr(&mut b.value, d);
    if let Some(f) = &mut b.from {
        s(&mut f.span, d);
    }
    if let Some(f) = &mut b.at {
        s(&mut f.span, d);
    }
    if let Some(f) = &mut b.frozen {
        s(f, d);
    }
}

fn fn_def(f: &mut FnDef, d: u32) {
    s(&mut f.span, d);
    name(&mut f.name, d);
    for p in &mut f.params {
        name(&mut p.name, d);
        type_expr(&mut p.ty, d);
        if let Some(e) = &mut p.default {
            expr(e, d);
        }
    }
    if let Some(r) = &mut f.ret {
        type_expr(r, d);
    }
    block(&mut f.body, d);
}

fn type_expr(t: &mut TypeExpr, d: u32) {
    s(&mut t.span, d);
    match &mut t.kind {
        TypeExprKind::Tensor { dtype, dims } => {
            if let Some(n) = dtype {
                name(n, d);
            }
            for dim in dims {
                match dim {
                    DimExpr::Pack(n) => name(n, d),
                    DimExpr::Expr(e) => expr(e, d),
                }
            }
        }
        TypeExprKind::Named(n) => name(n, d),
        TypeExprKind::Tuple(ts) => ts.iter_mut().for_each(|t| type_expr(t, d)),
    }
}

fn block(b: &mut Block, d: u32) {
    s(&mut b.span, d);
    b.lets.iter_mut().for_each(|l| let_stmt(l, d));
    expr(&mut b.value, d);
}

fn let_stmt(l: &mut Let, d: u32) {
    s(&mut l.span, d);
    pattern(&mut l.pattern, d);
    if let Some(t) = &mut l.ty {
        type_expr(t, d);
    }
    expr(&mut l.value, d);
}

fn pattern(p: &mut Pattern, d: u32) {
    match p {
        Pattern::Name(n) => name(n, d),
        Pattern::Tuple(ps, sp) => {
            s(sp, d);
            ps.iter_mut().for_each(|p| pattern(p, d));
        }
    }
}

fn arg(a: &mut Arg, d: u32) {
    if let Some(n) = &mut a.name {
        name(n, d);
    }
    expr(&mut a.value, d);
}

fn expr(e: &mut Expr, d: u32) {
    s(&mut e.span, d);
    match &mut e.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Error => {}
        ExprKind::Name(n) => name(n, d),
        ExprKind::Tuple(es) | ExprKind::List(es) => es.iter_mut().for_each(|e| expr(e, d)),
        ExprKind::Record(fs) => fs.iter_mut().for_each(|(n, e)| {
            name(n, d);
            expr(e, d);
        }),
        ExprKind::Unary(_, x) => expr(x, d),
        ExprKind::Binary {
            op_span, lhs, rhs, ..
        } => {
            s(op_span, d);
            expr(lhs, d);
            expr(rhs, d);
        }
        ExprKind::Pipe(l, r) => {
            expr(l, d);
            expr(r, d);
        }
        ExprKind::Call { callee, args } => {
            expr(callee, d);
            args.iter_mut().for_each(|a| arg(a, d));
        }
        ExprKind::Field(x, n) => {
            expr(x, d);
            name(n, d);
        }
        ExprKind::Index(x, items) => {
            expr(x, d);
            for i in items {
                match i {
                    IndexItem::Ellipsis(sp) => s(sp, d),
                    IndexItem::Slice {
                        start,
                        stop,
                        step,
                        span,
                    } => {
                        s(span, d);
                        for e in [start, stop, step].into_iter().flatten() {
                            expr(e, d);
                        }
                    }
                    IndexItem::Index(e) => expr(e, d),
                }
            }
        }
        ExprKind::If { cond, then, els } => {
            expr(cond, d);
            block(then, d);
            if let Some(e) = els {
                expr(e, d);
            }
        }
        ExprKind::Block(b) => block(b, d),
        ExprKind::Scan {
            item,
            over,
            carries,
            body,
        } => {
            name(item, d);
            expr(over, d);
            for (n, e) in carries {
                name(n, d);
                expr(e, d);
            }
            block(body, d);
        }
    }
}
