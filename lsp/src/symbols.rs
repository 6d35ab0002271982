//! Document symbols (the outline) and inlay hints (shapes after bindings).

use tower_lsp_server::ls_types::{
    DocumentSymbol, InlayHint, InlayHintKind, InlayHintLabel, SymbolKind,
};

use dnnc_diagnostics::Span;
use dnnc_sema::scope::parse;
use dnnc_sema::{Db, SourceFile};
use dnnc_syntax::ast::{self, ItemKind, MemberKind, TrainItemKind};

use crate::text;

#[allow(deprecated)]
fn symbol(
    t: &str,
    name: &str,
    detail: Option<String>,
    kind: SymbolKind,
    span: Span,
    sel: Span,
    children: Vec<DocumentSymbol>,
) -> DocumentSymbol {
    DocumentSymbol {
        name: if name.is_empty() {
            "?".into()
        } else {
            name.to_string()
        },
        detail,
        kind,
        tags: None,
        deprecated: None,
        range: text::range(t, span.to(sel)),
        selection_range: text::range(t, sel),
        children: (!children.is_empty()).then_some(children),
    }
}

/// The outline of `file`.
pub fn symbols(db: &dyn Db, file: SourceFile) -> Vec<DocumentSymbol> {
    let t = file.text(db);
    let mut out = Vec::new();
    for it in &parse(db, file).module.items {
        match &it.kind {
            ItemKind::Layer(l) => {
                let mut kids = Vec::new();
                for h in &l.hparams {
                    kids.push(symbol(
                        t,
                        &h.name.text,
                        Some(h.ty.text.clone()),
                        SymbolKind::TYPE_PARAMETER,
                        h.name.span,
                        h.name.span,
                        vec![],
                    ));
                }
                for m in &l.members {
                    let (name, kind, detail) = match &m.kind {
                        MemberKind::Param { name, buffer, .. } => {
                            let kw = if *buffer { "buffer" } else { "param" };
                            (name, SymbolKind::FIELD, Some(kw.to_string()))
                        }
                        MemberKind::SubLayer(b) => (&b.name, SymbolKind::PROPERTY, None),
                        MemberKind::Fn(f) => (&f.name, SymbolKind::METHOD, None),
                    };
                    kids.push(symbol(
                        t,
                        &name.text,
                        detail,
                        kind,
                        m.span,
                        name.span,
                        vec![],
                    ));
                }
                let kind = if l.is_model {
                    SymbolKind::CLASS
                } else {
                    SymbolKind::STRUCT
                };
                out.push(symbol(
                    t,
                    &l.name.text,
                    Some(if l.is_model { "model" } else { "layer" }.into()),
                    kind,
                    it.span,
                    l.name.span,
                    kids,
                ));
            }
            ItemKind::Fn(f) => out.push(symbol(
                t,
                &f.name.text,
                None,
                SymbolKind::FUNCTION,
                it.span,
                f.name.span,
                vec![],
            )),
            ItemKind::Dataset(d) => {
                let kids = d
                    .splits
                    .iter()
                    .map(|s| {
                        symbol(
                            t,
                            &s.name.text,
                            None,
                            SymbolKind::FIELD,
                            s.span,
                            s.name.span,
                            vec![],
                        )
                    })
                    .collect();
                out.push(symbol(
                    t,
                    &d.name.text,
                    Some("dataset".into()),
                    SymbolKind::NAMESPACE,
                    it.span,
                    d.name.span,
                    kids,
                ));
            }
            ItemKind::Train(tr) => {
                let kids = tr
                    .items
                    .iter()
                    .filter_map(|i| match &i.kind {
                        TrainItemKind::Field(n, _) => Some(symbol(
                            t,
                            &n.text,
                            None,
                            SymbolKind::PROPERTY,
                            i.span,
                            n.span,
                            vec![],
                        )),
                        TrainItemKind::Model(b) => Some(symbol(
                            t,
                            &b.name.text,
                            Some("model".into()),
                            SymbolKind::OBJECT,
                            i.span,
                            b.name.span,
                            vec![],
                        )),
                        TrainItemKind::Step { name, .. } => Some(symbol(
                            t,
                            &name.text,
                            Some("step".into()),
                            SymbolKind::EVENT,
                            i.span,
                            name.span,
                            vec![],
                        )),
                        TrainItemKind::Let(_) => None,
                    })
                    .collect();
                let label = format!("train {} on {}", tr.name.text, tr.dataset.text);
                out.push(symbol(
                    t,
                    &label,
                    None,
                    SymbolKind::EVENT,
                    it.span,
                    tr.name.span,
                    kids,
                ));
            }
            ItemKind::Use(_) => {}
            ItemKind::Error { name: Some(n) } => out.push(symbol(
                t,
                &n.text,
                Some("(does not parse)".into()),
                SymbolKind::NULL,
                it.span,
                n.span,
                vec![],
            )),
            ItemKind::Error { name: None } => {}
        }
    }
    out
}

fn collect_lets(b: &ast::Block, out: &mut Vec<Span>) {
    for l in &b.lets {
        pattern_spans(&l.pattern, out);
        expr_lets(&l.value, out);
    }
    expr_lets(&b.value, out);
}

fn expr_lets(e: &ast::Expr, out: &mut Vec<Span>) {
    match &e.kind {
        ast::ExprKind::Block(b) => collect_lets(b, out),
        ast::ExprKind::If { then, els, .. } => {
            collect_lets(then, out);
            if let Some(e) = els {
                expr_lets(e, out);
            }
        }
        _ => {}
    }
}

fn pattern_spans(p: &ast::Pattern, out: &mut Vec<Span>) {
    match p {
        ast::Pattern::Name(n) => out.push(n.span),
        ast::Pattern::Tuple(ps, _) => ps.iter().for_each(|p| pattern_spans(p, out)),
    }
}

/// `: f32[B, 256]` after every `let` name and sub-layer binding in `[from, to)`.
pub fn inlay_hints(db: &dyn Db, file: SourceFile, from: usize, to: usize) -> Vec<InlayHint> {
    let t = file.text(db);
    let mut spans = Vec::new();
    for it in &parse(db, file).module.items {
        if (it.span.end as usize) < from || (it.span.start as usize) > to {
            continue;
        }
        match &it.kind {
            ItemKind::Fn(f) => collect_lets(&f.body, &mut spans),
            ItemKind::Layer(l) => {
                for m in &l.members {
                    match &m.kind {
                        MemberKind::Fn(f) => collect_lets(&f.body, &mut spans),
                        MemberKind::SubLayer(b) => spans.push(b.name.span),
                        MemberKind::Param { .. } => {}
                    }
                }
            }
            ItemKind::Train(tr) => {
                for i in &tr.items {
                    if let TrainItemKind::Let(l) = &i.kind {
                        pattern_spans(&l.pattern, &mut spans);
                    }
                }
            }
            _ => {}
        }
    }
    spans
        .into_iter()
        .filter(|s| (s.start as usize) >= from && (s.end as usize) <= to)
        .filter_map(|s| {
            let (found, ty) = dnnc_sema::type_at(db, file, s.start)?;
            (found == s && !ty.is_error()).then(|| InlayHint {
                position: text::position(t, s.end as usize),
                label: InlayHintLabel::String(format!(": {ty}")),
                kind: Some(InlayHintKind::TYPE),
                text_edits: None,
                tooltip: None,
                padding_left: None,
                padding_right: None,
                data: None,
            })
        })
        .collect()
}
