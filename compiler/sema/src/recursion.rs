//! Functions that call themselves, directly or through others. A training step is
//! compiled into one static graph, so recursion cannot be expressed (E0107).

use std::collections::HashSet;

use dnnc_diagnostics::{codes, Diagnostic, Span};
use dnnc_syntax::ast::{Block, Expr, ExprKind, IndexItem, ItemKind};

use crate::db::{Db, SourceFile};
use crate::items::{item_ast, ItemId};
use crate::scope::{file_scope, DefKind};

/// The functions a function's body calls by name, with the span of each call.
#[salsa::tracked(returns(ref))]
pub fn fn_callees<'db>(db: &'db dyn Db, item: ItemId<'db>) -> Vec<(SourceFile, u32, Span)> {
    let ItemKind::Fn(def) = &item_ast(db, item).kind else {
        return Vec::new();
    };
    let scope = file_scope(db, item.file(db));
    let mut out = Vec::new();
    let mut visit = |name: &str, span: Span| {
        if let Some(d) = scope.names.get(name) {
            if d.kind == DefKind::Fn {
                out.push((d.file, d.index, span));
            }
        }
    };
    walk_block(&def.body, &mut visit);
    out
}

fn walk_block(b: &Block, f: &mut dyn FnMut(&str, Span)) {
    for l in &b.lets {
        walk(&l.value, f);
    }
    walk(&b.value, f);
}

fn walk(e: &Expr, f: &mut dyn FnMut(&str, Span)) {
    match &e.kind {
        ExprKind::Call { callee, args } => {
            if let ExprKind::Name(n) = &callee.kind {
                f(&n.text, n.span);
            } else {
                walk(callee, f);
            }
            for a in args {
                walk(&a.value, f);
            }
        }
        ExprKind::Pipe(l, r) => {
            walk(l, f);
            match &r.kind {
                ExprKind::Name(n) => f(&n.text, n.span),
                _ => walk(r, f),
            }
        }
        ExprKind::Unary(_, x) | ExprKind::Field(x, _) => walk(x, f),
        ExprKind::Binary { lhs, rhs, .. } => {
            walk(lhs, f);
            walk(rhs, f);
        }
        ExprKind::Tuple(es) | ExprKind::List(es) => es.iter().for_each(|e| walk(e, f)),
        ExprKind::Record(fs) => fs.iter().for_each(|(_, e)| walk(e, f)),
        ExprKind::Index(x, items) => {
            walk(x, f);
            for i in items {
                match i {
                    IndexItem::Index(e) => walk(e, f),
                    IndexItem::Slice {
                        start, stop, step, ..
                    } => {
                        for e in [start, stop, step].into_iter().flatten() {
                            walk(e, f);
                        }
                    }
                    IndexItem::Ellipsis(_) => {}
                }
            }
        }
        ExprKind::If { cond, then, els } => {
            walk(cond, f);
            walk_block(then, f);
            if let Some(e) = els {
                walk(e, f);
            }
        }
        ExprKind::Block(b) => walk_block(b, f),
        ExprKind::Scan {
            over,
            carries,
            body,
            ..
        } => {
            walk(over, f);
            carries.iter().for_each(|(_, e)| walk(e, f));
            walk_block(body, f);
        }
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Name(_)
        | ExprKind::Error => {}
    }
}

/// E0107 when `item` can reach itself through calls.
pub fn recursion_error(db: &dyn Db, item: ItemId<'_>) -> Option<Diagnostic> {
    let start = (item.file(db), item.index(db));
    for &(file, index, span) in fn_callees(db, item) {
        let mut stack = vec![(file, index)];
        let mut seen = HashSet::new();
        while let Some(at) = stack.pop() {
            if at == start {
                let name = item_ast(db, item)
                    .defined_name()
                    .map_or("?", |n| n.text.as_str())
                    .to_string();
                return Some(
                    Diagnostic::error(
                        codes::RECURSIVE_FN,
                        item.file(db).name(db),
                        span,
                        format!("function `{name}` calls itself"),
                    )
                    .with_label("this call leads back to the function")
                    .with_note("a model compiles to a fixed graph, so functions cannot recurse")
                    .with_help("unroll the computation, or use `scan` for loops over a sequence"),
                );
            }
            if !seen.insert(at) {
                continue;
            }
            let id = ItemId::new(db, at.0, at.1);
            stack.extend(fn_callees(db, id).iter().map(|&(f, i, _)| (f, i)));
        }
    }
    None
}
