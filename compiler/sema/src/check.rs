//! Checking whole declarations: bodies against signatures, and the per-file list of
//! diagnostics that `dnnc check` and the language server report.

use std::collections::HashSet;
use std::sync::Arc;

use dnnc_diagnostics::{codes, Diagnostic, Span};
use dnnc_syntax::ast::{self, ItemKind, MemberKind};

use crate::checker::{Checker, LayerScope, Local};
use crate::db::{Db, SourceFile};
use crate::dim::Dim;
use crate::infer::compatible;
use crate::items::{fn_sig, item_ast, layer_hparams, layer_sig, FnSig, ItemId};
use crate::scope::{file_scope, parse, use_cycle};
use crate::ty::{LayerInst, Static, Ty};

/// What checking one declaration found.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ItemCheck {
    pub diagnostics: Vec<Diagnostic>,
    /// The type of every checked expression and binding, by span.
    pub types: Vec<(Span, Ty)>,
}

#[salsa::tracked(returns(ref))]
pub fn check_item<'db>(db: &'db dyn Db, item: ItemId<'db>) -> ItemCheck {
    let it = item_ast(db, item);
    let mut cx = Checker::new(db, item.file(db));
    let mut out = ItemCheck::default();
    match &it.kind {
        ItemKind::Layer(def) => {
            out.diagnostics
                .extend(layer_hparams(db, item).diagnostics.iter().cloned());
            if let Some(sig) = layer_sig(db, item) {
                out.diagnostics.extend(sig.diagnostics.iter().cloned());
                let mut scope = LayerScope::symbolic(&sig.hparams);
                for p in &sig.params {
                    cx.types.push((p.span, Ty::Tensor(p.ty.clone())));
                    if p.buffer {
                        scope.buffers.push(p.span);
                    }
                    scope.names.insert(
                        p.name.clone(),
                        Local {
                            ty: Ty::Tensor(p.ty.clone()),
                            span: Some(p.span),
                        },
                    );
                }
                for s in &sig.subs {
                    if let Some(inst) = &s.inst {
                        cx.check_quotients(inst, s.span);
                        cx.check_param_sizes(inst, s.span);
                    }
                    let ty = s.inst.clone().map_or(Ty::Error, Ty::Layer);
                    cx.types.push((s.span, ty.clone()));
                    scope.names.insert(
                        s.name.clone(),
                        Local {
                            ty,
                            span: Some(s.span),
                        },
                    );
                }
                for m in &sig.methods {
                    scope.methods.insert(m.name.clone(), m.clone());
                }
                let r = cx.item_ref(item.file(db), item.index(db));
                let args = sig
                    .hparams
                    .iter()
                    .map(|h| {
                        let v = match h.kind {
                            crate::items::StaticKind::Int => Static::Int(Dim::sym(&h.name)),
                            _ => Static::Param(h.name.clone()),
                        };
                        (h.name.clone(), v)
                    })
                    .collect();
                scope.self_inst = Some(LayerInst { layer: r, args });
                cx.layer = Some(scope);
                for m in &def.members {
                    if let MemberKind::Fn(f) = &m.kind {
                        if let Some(msig) = sig.method(&f.name.text) {
                            check_body(&mut cx, f, msig);
                        }
                    }
                }
                recursive_layer(&mut cx, item, sig);
            }
        }
        ItemKind::Fn(def) => {
            let res = fn_sig(db, item);
            out.diagnostics.extend(res.diagnostics.iter().cloned());
            if let Some(sig) = &res.sig {
                check_body(&mut cx, def, sig);
            }
            out.diagnostics
                .extend(crate::recursion::recursion_error(db, item));
        }
        ItemKind::Dataset(_) => {
            let ds = crate::data::dataset_sig(db, item);
            out.diagnostics.extend(ds.diagnostics.iter().cloned());
            out.types.extend(ds.types.iter().cloned());
        }
        ItemKind::Train(def) => {
            if let Some(t) = crate::train::train_sig(db, item) {
                out.diagnostics.extend(t.diagnostics.iter().cloned());
                out.types.extend(t.types.iter().cloned());
                out.diagnostics.extend(nesting_error(db, item, def, t));
            }
        }
        ItemKind::Use(_) | ItemKind::Error { .. } => {}
    }
    out.diagnostics.extend(cx.diags);
    out.types.extend(cx.types);
    out
}

fn check_body(cx: &mut Checker<'_>, def: &ast::FnDef, sig: &FnSig) {
    cx.dims = sig.dims.clone();
    cx.packs = sig.packs.clone();
    cx.push_scope();
    for p in &sig.params {
        let ty = match &p.ty {
            Ty::Int(_) => Ty::Int(Some(Dim::sym(&p.name))),
            other => other.clone(),
        };
        cx.types.push((p.span, ty.clone()));
        cx.param_spans.insert(p.span);
        cx.bind(&p.name, ty, Some(p.span));
    }
    let t = cx.block(&def.body);
    if !compatible(&sig.ret, &t) {
        let d = cx
            .err(
                codes::RETURN_MISMATCH,
                def.body.value.span,
                format!(
                    "`{}` returns `{t}` but declares `{}`",
                    def.name.text, sig.ret
                ),
            )
            .with_label(format!("this is `{t}`"))
            .with_secondary(&cx.fname.clone(), sig.ret_span, "declared return type");
        cx.error(d);
    }
    cx.pop_scope();
    cx.dims.clear();
    cx.packs.clear();
}

/// Reports a layer that contains itself through its sub-layers.
fn recursive_layer(cx: &mut Checker<'_>, item: ItemId<'_>, sig: &crate::items::LayerSig) {
    let db = cx.db;
    let start = (item.file(db), item.index(db));
    for s in &sig.subs {
        let Some(inst) = &s.inst else { continue };
        let mut stack = vec![(inst.layer.file_id, inst.layer.index)];
        let mut seen = HashSet::new();
        while let Some(at) = stack.pop() {
            if at == start {
                let d = cx
                    .err(
                        codes::RECURSIVE_LAYER,
                        s.span,
                        format!("layer `{}` contains itself through `{}`", sig.name, s.name),
                    )
                    .with_label("this sub-layer leads back to the layer")
                    .with_help(
                        "a layer cannot contain an instance of itself, directly or indirectly",
                    );
                cx.error(d);
                return;
            }
            if !seen.insert(at) {
                continue;
            }
            let id = ItemId::new(db, at.0, at.1);
            if let Some(inner) = layer_sig(db, id) {
                stack.extend(
                    inner
                        .subs
                        .iter()
                        .filter_map(|s| s.inst.as_ref())
                        .map(|i| (i.layer.file_id, i.layer.index)),
                );
            }
        }
    }
}

/// Every diagnostic for one file, in source order, without duplicates.
#[salsa::tracked(returns(ref))]
pub fn file_diagnostics(db: &dyn Db, file: SourceFile) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = parse(db, file).diagnostics.clone();
    out.extend(file_scope(db, file).diagnostics.iter().cloned());
    if let Some(d) = use_cycle(db, file) {
        out.push(d.clone());
    }
    for i in 0..parse(db, file).module.items.len() {
        let id = ItemId::new(db, file, i as u32);
        out.extend(check_item(db, id).diagnostics.iter().cloned());
    }
    let name: Arc<str> = file.name(db).clone();
    out.sort_by_key(|d| (d.primary.file != name, d.primary.span.start));
    let mut seen = HashSet::new();
    out.retain(|d| seen.insert((d.code, d.primary.span, d.message.clone())));
    out
}

/// The innermost recorded type at `offset` in `file`, for hover.
pub fn type_at(db: &dyn Db, file: SourceFile, offset: u32) -> Option<(Span, Ty)> {
    let items = &parse(db, file).module.items;
    let index = items.iter().position(|it| it.span.contains(offset))?;
    let check = check_item(db, ItemId::new(db, file, index as u32));
    check
        .types
        .iter()
        .filter(|(s, _)| s.contains(offset))
        .min_by_key(|(s, _)| s.end - s.start)
        .cloned()
}

/// E0108 when the models and functions of a `train` block nest deeper than
/// [`crate::recursion::MAX_NESTING`] levels (the lowering inlines each level).
fn nesting_error(
    db: &dyn Db,
    item: ItemId<'_>,
    def: &dnnc_syntax::ast::TrainDef,
    sig: &crate::train::TrainSig,
) -> Option<Diagnostic> {
    let mut roots: Vec<(SourceFile, u32)> = sig
        .models
        .iter()
        .map(|m| (m.inst.layer.file_id, m.inst.layer.index))
        .collect();
    roots.extend(crate::recursion::train_callees(db, item, def));
    let depth = crate::recursion::nesting_depth(db, &roots);
    let limit = crate::recursion::MAX_NESTING;
    (depth > limit).then(|| {
        Diagnostic::error(
            codes::NESTING_TOO_DEEP_ITEMS,
            item.file(db).name(db),
            def.name.span,
            format!("layers and functions are nested {depth} levels deep, more than the limit of {limit}"),
        )
        .with_label("the training step inlines this chain")
        .with_note("every call of a layer or function is inlined into one graph, one level at a time")
        .with_help("flatten the structure: apply layers in sequence inside one layer rather than nesting each in the next")
    })
}
