//! Completion: what may come next at the cursor, decided from the text before it and
//! the declaration around it.

use tower_lsp_server::ls_types::{
    CompletionItem, CompletionItemKind, Documentation, MarkupContent, MarkupKind,
};

use dnnc_sema::items::{fn_sig, item_ast, layer_hparams, layer_sig, ItemId};
use dnnc_sema::scope::{module_exports, parse, DefKind};
use dnnc_sema::{Db, SourceFile};
use dnnc_syntax::ast::ItemKind;

use crate::analysis::{self, Target};

const TOP_KEYWORDS: &[&str] = &["use", "layer", "model", "fn", "dataset", "train"];
const EARLY_STOP: &[&str] = &["monitor", "patience", "mode", "min_delta"];

/// Files with more declarations than this describe their own items lazily.
const EAGER_ITEMS: usize = 64;

/// Fills in the signature and documentation of a lazily described item.
pub fn resolve(db: &dyn Db, files: &[SourceFile], mut it: CompletionItem) -> CompletionItem {
    let Some(data) = &it.data else { return it };
    let path = data
        .get("path")
        .and_then(|p| p.as_str())
        .unwrap_or_default();
    let index = data
        .get("index")
        .and_then(|i| i.as_u64())
        .unwrap_or(u64::MAX) as u32;
    if let Some(f) = files
        .iter()
        .find(|f| f.path(db).display().to_string() == path)
    {
        if (index as usize) < parse(db, *f).module.items.len() {
            let (sig, doc) = analysis::describe_item(db, *f, index);
            it.detail = Some(one_line(sig));
            it.documentation = doc.map(|d| {
                Documentation::MarkupContent(MarkupContent {
                    kind: MarkupKind::Markdown,
                    value: d,
                })
            });
        }
    }
    it
}

/// `s` on one line: editors show a completion's detail in a single row (a newline
/// shows as `^@` in Neovim).
fn one_line(s: String) -> String {
    if !s.contains('\n') {
        return s;
    }
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    joined
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(", )", ")")
}

fn item(
    label: &str,
    kind: CompletionItemKind,
    detail: Option<String>,
    doc: Option<String>,
) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: detail.map(one_line),
        documentation: doc.map(|d| {
            Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value: d,
            })
        }),
        ..CompletionItem::default()
    }
}

/// The innermost `(` before `offset` that is still open, with the callee name before it
/// and how many top-level commas follow it.
pub fn open_call(text: &str, from: usize, offset: usize) -> Option<(String, usize, usize)> {
    let b = text.as_bytes();
    let mut depth: i32 = 0;
    let mut commas = 0;
    let mut i = offset.min(b.len());
    while i > from {
        i -= 1;
        match b[i] {
            b')' | b']' | b'}' => depth += 1,
            b'[' | b'{' if depth == 0 => return None,
            b'(' | b'[' | b'{' => depth -= 1,
            b',' if depth == 0 => commas += 1,
            _ => {}
        }
        if depth < 0 {
            let before = text[..i].trim_end();
            let (name, _) = crate::text::ident_at(before, before.len())?;
            return Some((name, i, commas));
        }
    }
    None
}

/// Parameter names (and whether each is optional) of the callable `name` at `offset`.
pub fn callee_params(
    db: &dyn Db,
    file: SourceFile,
    offset: usize,
    name: &str,
) -> Option<(String, Vec<(String, String)>)> {
    let scope = analysis::scope_at(db, file, offset);
    if let Some((_, Target::Item { file: f, index })) = scope.iter().rev().find(|(n, _)| n == name)
    {
        let id = ItemId::new(db, *f, *index);
        return match &item_ast(db, id).kind {
            ItemKind::Layer(_) => {
                let ps = layer_hparams(db, id)
                    .list
                    .iter()
                    .map(|h| {
                        let label = match &h.default {
                            Some(d) => format!("{}: {} = {d}", h.name, h.kind.name()),
                            None => format!("{}: {}", h.name, h.kind.name()),
                        };
                        (h.name.to_string(), label)
                    })
                    .collect();
                Some((name.to_string(), ps))
            }
            ItemKind::Fn(_) => {
                let sig = fn_sig(db, id).sig.as_ref()?;
                let ps = sig
                    .params
                    .iter()
                    .map(|p| {
                        let label = match &p.default {
                            Some(d) => format!("{}: {} = {d}", p.name, analysis::ty_text(&p.ty)),
                            None => format!("{}: {}", p.name, analysis::ty_text(&p.ty)),
                        };
                        (p.name.to_string(), label)
                    })
                    .collect();
                Some((name.to_string(), ps))
            }
            _ => None,
        };
    }
    // A layer instance called like a function: its `forward`.
    if let Some(inst) = analysis::layer_of(db, file, offset, name) {
        let id = ItemId::new(db, inst.layer.file_id, inst.layer.index);
        let f = layer_sig(db, id).as_ref()?.method("forward")?.clone();
        let ps = f
            .params
            .iter()
            .map(|p| {
                (
                    p.name.to_string(),
                    format!("{}: {}", p.name, analysis::ty_text(&p.ty)),
                )
            })
            .collect();
        return Some((name.to_string(), ps));
    }
    let builtin = dnnc_sema::builtins::param_names(name);
    if !builtin.is_empty() {
        let ps = builtin
            .into_iter()
            .map(|(n, opt)| {
                (
                    n.to_string(),
                    if opt { format!("{n}?") } else { n.to_string() },
                )
            })
            .collect();
        return Some((name.to_string(), ps));
    }
    None
}

/// Completions at byte `offset` of `file`.
pub fn complete(db: &dyn Db, file: SourceFile, offset: usize) -> Vec<CompletionItem> {
    let text = file.text(db);
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..offset];
    let trimmed = line.trim_start();
    let word_start = line.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
    let before_word = word_start.trim_end();
    // `optimizer  =` and `optimizer =` read the same.
    let before_norm: String = before_word.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();

    // `use std::` and `use std::nn::{`
    if let Some(rest) = trimmed.strip_prefix("use ") {
        let path_part = rest.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
        let path = path_part
            .trim_end_matches('{')
            .trim_end_matches("::")
            .trim_end_matches(['{', ' ', ',']);
        let path = path
            .split("::{")
            .next()
            .unwrap_or(path)
            .trim_end_matches("::");
        let segs: Vec<&str> = path
            .split("::")
            .filter(|s| !s.is_empty() && !s.contains(['{', ',', ' ']))
            .collect();
        if segs == ["std"] {
            for (m, _) in dnnc_sema::stdlib::MODULES {
                out.push(item(
                    m,
                    CompletionItemKind::MODULE,
                    Some(format!("std::{m}")),
                    None,
                ));
            }
            return out;
        }
        if let Some(target) = db.resolve_module(file, &segs) {
            for (name, (index, kind)) in module_exports(db, target) {
                let k = match kind {
                    DefKind::Layer => CompletionItemKind::CLASS,
                    DefKind::Fn => CompletionItemKind::FUNCTION,
                    _ => CompletionItemKind::VALUE,
                };
                let (sig, doc) = analysis::describe_item(db, target, *index);
                out.push(item(name, k, Some(sig), doc));
            }
            if let ["std", m] = segs.as_slice() {
                for b in dnnc_sema::builtins::std_builtins_of(m) {
                    out.push(item(
                        b,
                        CompletionItemKind::FUNCTION,
                        Some("builtin".into()),
                        None,
                    ));
                }
            }
            return out;
        }
        return out;
    }

    let index = analysis::item_at(db, file, offset);
    let item_kind = index.map(|i| &parse(db, file).module.items[i as usize].kind);
    // A declaration being typed often does not parse yet: read its keyword instead.
    let head = index.map_or("", |i| {
        let it = &parse(db, file).module.items[i as usize];
        declaration_keyword(&text[it.span.range()])
    });
    let in_train = matches!(item_kind, Some(ItemKind::Train(_))) || head == "train";
    let in_layer =
        matches!(item_kind, Some(ItemKind::Layer(_))) || head == "layer" || head == "model";
    let inside_braces = {
        let from = index.map_or(0, |i| {
            parse(db, file).module.items[i as usize].span.start as usize
        });
        text[from..offset].matches('{').count() > text[from..offset].matches('}').count()
    };

    // Top level: declaration keywords.
    if !inside_braces
        && (trimmed.is_empty()
            || trimmed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        for k in TOP_KEYWORDS {
            out.push(item(k, CompletionItemKind::KEYWORD, None, None));
        }
        return out;
    }

    // Train blocks: fields, optimizers, schedules, early stopping settings.
    if in_train {
        if before_norm.ends_with("optimizer =") || before_norm.ends_with(" with") {
            return settings(dnnc_sema::settings::optimizers());
        }
        if before_norm.ends_with("schedule =") {
            return settings(dnnc_sema::settings::schedules());
        }
        if before_word.trim_start().is_empty() && inside_braces {
            for f in dnnc_sema::train::FIELDS {
                out.push(item(
                    f,
                    CompletionItemKind::FIELD,
                    Some(format!("{f} = ...")),
                    None,
                ));
            }
            for k in ["let", "model", "step"] {
                out.push(item(k, CompletionItemKind::KEYWORD, None, None));
            }
            return out;
        }
        if let Some((callee, _, _)) = open_call(text, line_start.saturating_sub(2000), offset) {
            if callee == "early_stop" || line.contains("early_stop") {
                for f in EARLY_STOP {
                    out.push(item(
                        f,
                        CompletionItemKind::FIELD,
                        Some(format!("{f} = ...")),
                        None,
                    ));
                }
                return out;
            }
        }
    }

    // Layer bodies at the start of a line: member keywords.
    let in_method = index.is_some_and(|i| {
        analysis::enclosing_fn(&parse(db, file).module.items[i as usize], offset).is_some()
    });
    if in_layer && before_word.trim_start().is_empty() && !in_method {
        for k in ["param", "buffer", "fn"] {
            out.push(item(k, CompletionItemKind::KEYWORD, None, None));
        }
    }

    // `base.`: members of a layer instance.
    if before_word.ends_with('.') {
        let base_text = before_word.trim_end_matches('.');
        if let Some((base, _)) = crate::text::ident_at(base_text, base_text.len()) {
            if let Some(inst) = analysis::layer_of(db, file, offset, &base) {
                let id = ItemId::new(db, inst.layer.file_id, inst.layer.index);
                if let Some(sig) = layer_sig(db, id).as_ref() {
                    for m in &sig.methods {
                        out.push(item(
                            &m.name,
                            CompletionItemKind::METHOD,
                            Some(analysis::fn_text(m)),
                            m.doc.clone(),
                        ));
                    }
                    for s in &sig.subs {
                        out.push(item(
                            &s.name,
                            CompletionItemKind::FIELD,
                            s.inst.as_ref().map(|i| i.to_string()),
                            s.doc.clone(),
                        ));
                    }
                    for p in &sig.params {
                        out.push(item(
                            &p.name,
                            CompletionItemKind::FIELD,
                            Some(p.ty.to_string()),
                            p.doc.clone(),
                        ));
                    }
                }
            }
        }
        return out;
    }

    // Inside a call: the callee's parameter names.
    let from = index.map_or(0, |i| {
        parse(db, file).module.items[i as usize].span.start as usize
    });
    if let Some((callee, _, _)) = open_call(text, from, offset) {
        if let Some((_, params)) = callee_params(db, file, offset, &callee) {
            for (n, label) in params {
                let mut it = item(&n, CompletionItemKind::FIELD, Some(label), None);
                it.insert_text = Some(format!("{n} = "));
                it.sort_text = Some(format!("0{n}"));
                out.push(it);
            }
        }
    }

    // Expressions: names in scope, then builtins.
    let mut seen = std::collections::HashSet::new();
    for (name, target) in analysis::scope_at(db, file, offset).into_iter().rev() {
        if !seen.insert(name.clone()) {
            continue;
        }
        match target {
            Target::Item { file: f, index } => {
                let kind = match &parse(db, f).module.items[index as usize].kind {
                    ItemKind::Layer(_) => CompletionItemKind::CLASS,
                    ItemKind::Fn(_) => CompletionItemKind::FUNCTION,
                    _ => CompletionItemKind::VALUE,
                };
                // Declarations of a large file being edited get their signature from
                // `completionItem/resolve`: describing hundreds of them after every
                // keystroke would cost a re-check of all their signatures.
                let lazy = f == file && parse(db, file).module.items.len() > EAGER_ITEMS;
                if lazy {
                    let mut it = item(&name, kind, None, None);
                    it.data = Some(
                        serde_json::json!({ "path": f.path(db).display().to_string(), "index": index }),
                    );
                    out.push(it);
                } else {
                    let (sig, doc) = analysis::describe_item(db, f, index);
                    out.push(item(&name, kind, Some(sig), doc));
                }
            }
            Target::Local { file: f, span } => {
                let ty = dnnc_sema::type_at(db, f, span.start)
                    .filter(|(s, _)| *s == span)
                    .map(|(_, t)| t.to_string());
                out.push(item(&name, CompletionItemKind::VARIABLE, ty, None));
            }
        }
    }
    for b in dnnc_sema::builtins::names(matches!(item_kind, Some(ItemKind::Dataset(_)))) {
        if seen.insert(b.to_string()) {
            out.push(item(
                b,
                CompletionItemKind::FUNCTION,
                Some("builtin".into()),
                None,
            ));
        }
    }
    for k in ["let", "if", "else", "true", "false"] {
        out.push(item(k, CompletionItemKind::KEYWORD, None, None));
    }
    out
}

/// The keyword that starts a declaration's text (`train`, `layer`, ...), skipping
/// comments and blank lines.
fn declaration_keyword(text: &str) -> &str {
    for line in text.lines() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with("//") {
            continue;
        }
        return l
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("");
    }
    ""
}

/// Completions for a table of settings, each with its signature and defaults.
fn settings<T>(table: dnnc_sema::settings::Table<T>) -> Vec<CompletionItem> {
    table
        .into_iter()
        .map(|e| {
            let name = e.name;
            let ps: Vec<String> = e
                .params
                .iter()
                .map(|p| match &p.default {
                    Some(d) => format!("{} = {d}", p.name),
                    None => p.name.to_string(),
                })
                .collect();
            item(
                name,
                CompletionItemKind::FUNCTION,
                Some(format!("{name}({})", ps.join(", "))),
                None,
            )
        })
        .collect()
}
