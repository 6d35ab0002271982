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
    walk_block(&def.body, false, &mut visit);
    out
}

/// Every name `e` reads (callees included), with its span; names bound inside `e`
/// are not told apart from outer ones (a conservative answer).
pub fn names_read(e: &Expr, f: &mut dyn FnMut(&str, Span)) {
    walk(e, true, f);
}

fn walk_block(b: &Block, all: bool, f: &mut dyn FnMut(&str, Span)) {
    for l in &b.lets {
        walk(&l.value, all, f);
    }
    walk(&b.value, all, f);
}

/// Reports the names of called functions (and piped-into names) to `f`; with `all`,
/// every other name read too.
fn walk(e: &Expr, all: bool, f: &mut dyn FnMut(&str, Span)) {
    match &e.kind {
        ExprKind::Call { callee, args } => {
            if let ExprKind::Name(n) = &callee.kind {
                f(&n.text, n.span);
            } else {
                walk(callee, all, f);
            }
            for a in args {
                walk(&a.value, all, f);
            }
        }
        ExprKind::Pipe(l, r) => {
            walk(l, all, f);
            match &r.kind {
                ExprKind::Name(n) => f(&n.text, n.span),
                _ => walk(r, all, f),
            }
        }
        ExprKind::Unary(_, x) | ExprKind::Field(x, _) => walk(x, all, f),
        ExprKind::Binary { lhs, rhs, .. } => {
            walk(lhs, all, f);
            walk(rhs, all, f);
        }
        ExprKind::Tuple(es) | ExprKind::List(es) => es.iter().for_each(|e| walk(e, all, f)),
        ExprKind::Record(fs) => fs.iter().for_each(|(_, e)| walk(e, all, f)),
        ExprKind::Index(x, items) => {
            walk(x, all, f);
            for i in items {
                match i {
                    IndexItem::Index(e) => walk(e, all, f),
                    IndexItem::Slice {
                        start, stop, step, ..
                    } => {
                        for e in [start, stop, step].into_iter().flatten() {
                            walk(e, all, f);
                        }
                    }
                    IndexItem::Ellipsis(_) => {}
                }
            }
        }
        ExprKind::If { cond, then, els } => {
            walk(cond, all, f);
            walk_block(then, all, f);
            if let Some(e) = els {
                walk(e, all, f);
            }
        }
        ExprKind::Block(b) => walk_block(b, all, f),
        ExprKind::Scan {
            over,
            carries,
            body,
            ..
        } => {
            walk(over, all, f);
            carries.iter().for_each(|(_, e)| walk(e, all, f));
            walk_block(body, all, f);
        }
        ExprKind::Name(n) => {
            if all {
                f(&n.text, n.span);
            }
        }
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
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

/// The deepest chain of layers and functions a `train` block may compile (E0108). The
/// lowering inlines every call, one level of its stack per layer or function, and
/// refuses deeper chains with the same limit, so `check` and `train` agree.
pub const MAX_NESTING: usize = 1000;

/// The layers and functions `item`'s code reaches directly: its sub-layers and the
/// functions its body (or its methods' bodies) calls by name.
fn nested_items(db: &dyn Db, item: ItemId<'_>) -> Vec<(SourceFile, u32)> {
    match &item_ast(db, item).kind {
        ItemKind::Fn(_) => fn_callees(db, item)
            .iter()
            .map(|&(f, i, _)| (f, i))
            .collect(),
        ItemKind::Layer(def) => {
            let mut out: Vec<(SourceFile, u32)> = crate::items::layer_sig(db, item)
                .iter()
                .flat_map(|sig| sig.subs.iter())
                .filter_map(|s| s.inst.as_ref())
                .map(|inst| (inst.layer.file_id, inst.layer.index))
                .collect();
            let scope = file_scope(db, item.file(db));
            let mut visit = |name: &str, _: Span| {
                if let Some(d) = scope.names.get(name) {
                    if d.kind == DefKind::Fn {
                        out.push((d.file, d.index));
                    }
                }
            };
            for m in &def.members {
                if let dnnc_syntax::ast::MemberKind::Fn(f) = &m.kind {
                    walk_block(&f.body, false, &mut visit);
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// How many levels of inlining `item` can take: 1 for a function, the number of its
/// methods for a layer (a method may call the others), plus its deepest nested item.
/// Computed without recursion (a chain may be thousands long) and in linear time;
/// cycles (reported as E0106 and E0107) are cut.
pub fn nesting_depth(db: &dyn Db, roots: &[(SourceFile, u32)]) -> usize {
    let weight = |id: ItemId<'_>| match &item_ast(db, id).kind {
        ItemKind::Layer(def) => def
            .members
            .iter()
            .filter(|m| matches!(m.kind, dnnc_syntax::ast::MemberKind::Fn(_)))
            .count()
            .max(1),
        _ => 1,
    };
    let mut depth: std::collections::HashMap<(SourceFile, u32), usize> =
        std::collections::HashMap::new();
    let mut on_stack: HashSet<(SourceFile, u32)> = HashSet::new();
    let mut best = 0;
    for &root in roots {
        // Post-order: (item, children pushed yet?).
        let mut stack = vec![(root, false)];
        while let Some((at, expanded)) = stack.pop() {
            if depth.contains_key(&at) {
                continue;
            }
            let id = ItemId::new(db, at.0, at.1);
            if expanded {
                on_stack.remove(&at);
                let deepest = nested_items(db, id)
                    .iter()
                    .filter_map(|c| depth.get(c))
                    .max()
                    .copied()
                    .unwrap_or(0);
                depth.insert(at, weight(id) + deepest);
                continue;
            }
            if !on_stack.insert(at) {
                continue; // a cycle
            }
            stack.push((at, true));
            for c in nested_items(db, id) {
                if !depth.contains_key(&c) && !on_stack.contains(&c) {
                    stack.push((c, false));
                }
            }
        }
        best = best.max(depth.get(&root).copied().unwrap_or(0));
    }
    best
}

/// The functions a `train` block calls by name (in its fields, `let`s and steps).
pub fn train_callees(
    db: &dyn Db,
    item: ItemId<'_>,
    def: &dnnc_syntax::ast::TrainDef,
) -> Vec<(SourceFile, u32)> {
    use dnnc_syntax::ast::{StepItemKind, TrainItemKind};
    let scope = file_scope(db, item.file(db));
    let mut out = Vec::new();
    let mut visit = |name: &str, _: Span| {
        if let Some(d) = scope.names.get(name) {
            if d.kind == DefKind::Fn {
                out.push((d.file, d.index));
            }
        }
    };
    for it in &def.items {
        match &it.kind {
            TrainItemKind::Let(l) => walk(&l.value, false, &mut visit),
            TrainItemKind::Field(_, e) => walk(e, false, &mut visit),
            TrainItemKind::Model(b) => walk(&b.value, false, &mut visit),
            TrainItemKind::Step { items, .. } => {
                for s in items {
                    match &s.kind {
                        StepItemKind::Let(l) => walk(&l.value, false, &mut visit),
                        StepItemKind::Field(_, e) => walk(e, false, &mut visit),
                        StepItemKind::Update { optimizer, .. } => {
                            walk(optimizer, false, &mut visit)
                        }
                    }
                }
            }
        }
    }
    out
}
