//! Name resolution at a cursor, shared by definition, references, rename, hover and
//! completion. It reads the compiler's queries (parse, file scope, signatures) and adds
//! what they do not record: local `let` bindings and parameters before the cursor.

use dnnc_diagnostics::Span;
use dnnc_sema::items::{item_ast, layer_hparams, layer_sig, ItemId};
use dnnc_sema::scope::{file_scope, parse};
use dnnc_sema::ty::{LayerInst, Ty};
use dnnc_sema::{Db, SourceFile};
use dnnc_syntax::ast::{self, Block, ExprKind, ItemKind, MemberKind, Pattern, TrainItemKind};

/// What a name refers to.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A top-level declaration.
    Item { file: SourceFile, index: u32 },
    /// Any other declaration: a member, parameter or `let`, at this span.
    Local { file: SourceFile, span: Span },
}

impl Target {
    /// The file and span of the declaring name.
    pub fn location(&self, db: &dyn Db) -> (SourceFile, Span) {
        match self {
            Target::Item { file, index } => {
                let it = &parse(db, *file).module.items[*index as usize];
                (*file, it.defined_name().map_or(it.span, |n| n.span))
            }
            Target::Local { file, span } => (*file, *span),
        }
    }
}

/// The index of the top-level declaration containing `offset`.
pub fn item_at(db: &dyn Db, file: SourceFile, offset: usize) -> Option<u32> {
    parse(db, file)
        .module
        .items
        .iter()
        .position(|it| it.span.start as usize <= offset && offset <= it.span.end as usize)
        .map(|i| i as u32)
}

/// Names bound by a pattern.
fn pattern_names(p: &Pattern, out: &mut Vec<ast::Name>) {
    match p {
        Pattern::Name(n) => out.push(n.clone()),
        Pattern::Tuple(ps, _) => ps.iter().for_each(|p| pattern_names(p, out)),
    }
}

/// `let`s visible at `offset` inside `b` (and nested blocks), in order.
fn lets_in_block(b: &Block, offset: usize, out: &mut Vec<ast::Name>) {
    if !(b.span.start as usize <= offset && offset <= b.span.end as usize) {
        return;
    }
    for l in &b.lets {
        if (l.span.end as usize) <= offset {
            pattern_names(&l.pattern, out);
        }
        nested(&l.value, offset, out);
    }
    nested(&b.value, offset, out);
}

fn nested(e: &ast::Expr, offset: usize, out: &mut Vec<ast::Name>) {
    if !(e.span.start as usize <= offset && offset <= e.span.end as usize) {
        return;
    }
    match &e.kind {
        ExprKind::Block(b) => lets_in_block(b, offset, out),
        ExprKind::If { then, els, .. } => {
            lets_in_block(then, offset, out);
            if let Some(e) = els {
                nested(e, offset, out);
            }
        }
        _ => {}
    }
}

/// Parameters and `let`s of the function around `offset`.
pub fn fn_locals(f: &ast::FnDef, offset: usize) -> Vec<ast::Name> {
    let mut out: Vec<ast::Name> = f.params.iter().map(|p| p.name.clone()).collect();
    lets_in_block(&f.body, offset, &mut out);
    out
}

/// The function (top-level or method) containing `offset`.
pub fn enclosing_fn(item: &ast::Item, offset: usize) -> Option<&ast::FnDef> {
    let inside = |f: &ast::FnDef| f.span.start as usize <= offset && offset <= f.span.end as usize;
    match &item.kind {
        ItemKind::Fn(f) if inside(f) => Some(f),
        ItemKind::Layer(l) => l.members.iter().find_map(|m| match &m.kind {
            MemberKind::Fn(f) if inside(f) => Some(f),
            _ => None,
        }),
        _ => None,
    }
}

/// Every name visible at `offset` with what it refers to (innermost last).
pub fn scope_at(db: &dyn Db, file: SourceFile, offset: usize) -> Vec<(String, Target)> {
    let mut out: Vec<(String, Target)> = Vec::new();
    for (name, def) in file_scope(db, file).names.iter() {
        out.push((
            name.to_string(),
            Target::Item {
                file: def.file,
                index: def.index,
            },
        ));
    }
    let Some(index) = item_at(db, file, offset) else {
        return out;
    };
    let id = ItemId::new(db, file, index);
    let item = item_ast(db, id);
    match &item.kind {
        ItemKind::Layer(_) => {
            for h in &layer_hparams(db, id).list {
                out.push((h.name.to_string(), Target::Local { file, span: h.span }));
            }
            if let Some(sig) = layer_sig(db, id) {
                for p in &sig.params {
                    out.push((p.name.to_string(), Target::Local { file, span: p.span }));
                }
                for s in &sig.subs {
                    out.push((s.name.to_string(), Target::Local { file, span: s.span }));
                }
                for m in &sig.methods {
                    out.push((m.name.to_string(), Target::Local { file, span: m.span }));
                }
            }
        }
        ItemKind::Train(t) => {
            for it in &t.items {
                match &it.kind {
                    TrainItemKind::Let(l) if (l.span.end as usize) <= offset => {
                        let mut names = Vec::new();
                        pattern_names(&l.pattern, &mut names);
                        out.extend(
                            names
                                .into_iter()
                                .map(|n| (n.text, Target::Local { file, span: n.span })),
                        );
                    }
                    TrainItemKind::Model(b) => out.push((
                        b.name.text.clone(),
                        Target::Local {
                            file,
                            span: b.name.span,
                        },
                    )),
                    _ => {}
                }
            }
            if let Some(def) = file_scope(db, file).names.get(t.name.text.as_str()) {
                out.push((
                    "model".into(),
                    Target::Item {
                        file: def.file,
                        index: def.index,
                    },
                ));
            }
            if let Some(def) = file_scope(db, file).names.get(t.dataset.text.as_str()) {
                for (fname, span) in dataset_fields(db, def.file, def.index) {
                    out.push((
                        fname,
                        Target::Local {
                            file: def.file,
                            span,
                        },
                    ));
                }
            }
        }
        _ => {}
    }
    if let Some(f) = enclosing_fn(item, offset) {
        for n in fn_locals(f, offset) {
            out.push((n.text.clone(), Target::Local { file, span: n.span }));
        }
    }
    out
}

/// Field names of the first split of a dataset (`augment` is not a split), with their
/// spans.
pub fn dataset_fields(db: &dyn Db, file: SourceFile, index: u32) -> Vec<(String, Span)> {
    match &parse(db, file).module.items[index as usize].kind {
        ItemKind::Dataset(d) => d
            .splits
            .iter()
            .find(|s| s.name.text != dnnc_sema::augment::AUGMENT)
            .map_or(Vec::new(), |s| {
                s.fields
                    .iter()
                    .map(|(n, _)| (n.text.clone(), n.span))
                    .collect()
            }),
        _ => Vec::new(),
    }
}

/// The layer instance a name denotes at `offset` (a sub-layer, `model`, a model binding).
pub fn layer_of(db: &dyn Db, file: SourceFile, offset: usize, name: &str) -> Option<LayerInst> {
    let index = item_at(db, file, offset)?;
    let id = ItemId::new(db, file, index);
    match &item_ast(db, id).kind {
        ItemKind::Layer(_) => layer_sig(db, id)
            .as_ref()?
            .subs
            .iter()
            .find(|s| &*s.name == name)?
            .inst
            .clone(),
        ItemKind::Train(_) => {
            let sig = dnnc_sema::train::train_sig(db, id).as_ref()?;
            sig.models
                .iter()
                .find(|m| &*m.name == name)
                .map(|m| m.inst.clone())
        }
        _ => None,
    }
}

/// What the identifier at `offset` refers to, with the identifier.
pub fn definition(db: &dyn Db, file: SourceFile, offset: usize) -> Option<(String, Span, Target)> {
    let text = file.text(db);
    let (name, span) = crate::text::ident_at(text, offset)?;
    // `base.member`
    let before = text[..span.start as usize].trim_end();
    if let Some(base_end) = before.strip_suffix('.') {
        let (base, _) = crate::text::ident_at(base_end, base_end.len())?;
        let inst = layer_of(db, file, offset, &base)?;
        return member(db, &inst, &name).map(|t| (name, span, t));
    }
    // The cursor on a declaring name (`let h`, a parameter, a member) is that declaration.
    if let Some(t) = declaration_at(db, file, span) {
        return Some((name, span, t));
    }
    let scope = scope_at(db, file, offset);
    let t = scope
        .into_iter()
        .rev()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t)?;
    Some((name, span, t))
}

/// A member of a layer instance.
pub fn member(db: &dyn Db, inst: &LayerInst, name: &str) -> Option<Target> {
    let id = ItemId::new(db, inst.layer.file_id, inst.layer.index);
    let file = inst.layer.file_id;
    let sig = layer_sig(db, id).as_ref()?;
    let span = sig
        .methods
        .iter()
        .find(|m| &*m.name == name)
        .map(|m| m.span)
        .or_else(|| sig.subs.iter().find(|s| &*s.name == name).map(|s| s.span))
        .or_else(|| sig.params.iter().find(|p| &*p.name == name).map(|p| p.span))?;
    Some(Target::Local { file, span })
}

/// Every identifier in the loaded files that refers to `target` (declaration included).
pub fn references(
    db: &dyn Db,
    files: &[SourceFile],
    target: &Target,
    name: &str,
) -> Vec<(SourceFile, Span)> {
    let mut out = Vec::new();
    let (decl_file, decl_span) = target.location(db);
    out.push((decl_file, decl_span));
    for &f in files {
        let text = f.text(db);
        for (s, e) in crate::text::identifiers(text) {
            if &text[s..e] != name || (f == decl_file && s == decl_span.start as usize) {
                continue;
            }
            if let Some((_, span, t)) = definition(db, f, s) {
                if t == *target {
                    out.push((f, span));
                }
            }
        }
    }
    out
}

/// A one-line signature and the doc comment of a top-level declaration.
pub fn describe_item(db: &dyn Db, file: SourceFile, index: u32) -> (String, Option<String>) {
    let id = ItemId::new(db, file, index);
    let item = item_ast(db, id);
    let sig = match &item.kind {
        ItemKind::Layer(l) => {
            let hps: Vec<String> = layer_hparams(db, id)
                .list
                .iter()
                .map(|h| match &h.default {
                    Some(d) => format!("{}: {} = {d}", h.name, h.kind.name()),
                    None => format!("{}: {}", h.name, h.kind.name()),
                })
                .collect();
            let kw = if l.is_model { "model" } else { "layer" };
            let mut s = format!("{kw} {}({})", l.name.text, hps.join(", "));
            if let Some(f) = layer_sig(db, id).as_ref().and_then(|s| s.method("forward")) {
                s.push_str(&format!("\n    {}", fn_text(f)));
            }
            s
        }
        ItemKind::Fn(_) => match &dnnc_sema::items::fn_sig(db, id).sig {
            Some(f) => fn_text(f),
            None => String::new(),
        },
        ItemKind::Dataset(d) => format!("dataset {}", d.name.text),
        _ => String::new(),
    };
    (sig, item.doc.clone())
}

/// `fn name(a: f32[B, 784], p: Float = 0.5) -> f32[B, 10]`.
pub fn fn_text(f: &dnnc_sema::items::FnSig) -> String {
    let ps: Vec<String> = f
        .params
        .iter()
        .map(|p| match &p.default {
            Some(d) => format!("{}: {} = {d}", p.name, ty_text(&p.ty)),
            None => format!("{}: {}", p.name, ty_text(&p.ty)),
        })
        .collect();
    format!("fn {}({}) -> {}", f.name, ps.join(", "), ty_text(&f.ret))
}

/// A type as written in signatures (statics by kind only).
pub fn ty_text(t: &Ty) -> String {
    match t {
        Ty::Int(_) => "Int".into(),
        Ty::Float(_) => "Float".into(),
        Ty::Bool(_) => "Bool".into(),
        Ty::Str(_) => "Str".into(),
        other => other.to_string(),
    }
}

/// The declaration whose name is exactly at `span`, if any.
fn declaration_at(db: &dyn Db, file: SourceFile, span: Span) -> Option<Target> {
    let index = item_at(db, file, span.start as usize)?;
    let item = &parse(db, file).module.items[index as usize];
    if item.defined_name().is_some_and(|n| n.span == span) {
        return Some(Target::Item { file, index });
    }
    let mut names: Vec<ast::Name> = Vec::new();
    match &item.kind {
        ItemKind::Layer(l) => {
            names.extend(l.hparams.iter().map(|h| h.name.clone()));
            for m in &l.members {
                match &m.kind {
                    MemberKind::Param { name, .. } => names.push(name.clone()),
                    MemberKind::SubLayer(b) => names.push(b.name.clone()),
                    MemberKind::Fn(f) => names.push(f.name.clone()),
                }
            }
        }
        ItemKind::Train(t) => {
            for it in &t.items {
                match &it.kind {
                    TrainItemKind::Let(l) => pattern_names(&l.pattern, &mut names),
                    TrainItemKind::Model(b) => names.push(b.name.clone()),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    if let Some(f) = enclosing_fn(item, span.start as usize) {
        names.extend(f.params.iter().map(|p| p.name.clone()));
        all_lets(&f.body, &mut names);
    }
    names
        .into_iter()
        .find(|n| n.span == span)
        .map(|n| Target::Local { file, span: n.span })
}

/// Every name a block binds with `let`, nested blocks included.
fn all_lets(b: &Block, out: &mut Vec<ast::Name>) {
    for l in &b.lets {
        pattern_names(&l.pattern, out);
        all_lets_expr(&l.value, out);
    }
    all_lets_expr(&b.value, out);
}

fn all_lets_expr(e: &ast::Expr, out: &mut Vec<ast::Name>) {
    match &e.kind {
        ExprKind::Block(b) => all_lets(b, out),
        ExprKind::If { then, els, .. } => {
            all_lets(then, out);
            if let Some(e) = els {
                all_lets_expr(e, out);
            }
        }
        _ => {}
    }
}

/// Hover text for a hyperparameter or a named argument at `offset`: its declaration
/// (`hidden: Int = 256`) and documentation — on the declaration, on its uses in the
/// layer, and on `hidden` in a call such as `Mlp(hidden = 256)`.
pub fn parameter_hover(db: &dyn Db, file: SourceFile, offset: usize) -> Option<String> {
    let text = file.text(db);
    let (name, span) = crate::text::ident_at(text, offset)?;
    if let Some((_, _, Target::Local { file: df, span: ds })) = definition(db, file, offset) {
        let items = &parse(db, df).module.items;
        let index = items
            .iter()
            .position(|it| it.span.start <= ds.start && ds.end <= it.span.end)?;
        let id = ItemId::new(db, df, index as u32);
        let h = layer_hparams(db, id).list.iter().find(|h| h.span == ds)?;
        let decl = match &h.default {
            Some(d) => format!("{}: {} = {d}", h.name, h.kind.name()),
            None => format!("{}: {}", h.name, h.kind.name()),
        };
        return Some(with_doc(&decl, h.doc.as_deref()));
    }
    // `name = value` inside a call: the callee's parameter.
    let after = text[span.end as usize..].trim_start();
    if !after.starts_with('=') || after.starts_with("==") {
        return None;
    }
    let from = item_at(db, file, offset).map_or(0, |i| {
        parse(db, file).module.items[i as usize].span.start as usize
    });
    let (callee, _, _) = crate::completion::open_call(text, from, span.start as usize)?;
    let (_, params) = crate::completion::callee_params(db, file, offset, &callee)?;
    let (_, label) = params.into_iter().find(|(n, _)| *n == name)?;
    Some(with_doc(&format!("{callee}({label})"), None))
}

fn with_doc(decl: &str, doc: Option<&str>) -> String {
    let mut v = format!("```dnn\n{decl}\n```");
    if let Some(d) = doc {
        v.push_str(&format!("\n\n{d}"));
    }
    v
}
