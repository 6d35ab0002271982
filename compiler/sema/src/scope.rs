//! Name resolution at module level: what each file defines and imports.
//!
//! Queries: [`parse`] (per file), [`module_items`] (the names a file defines),
//! [`file_scope`] (its own names plus its imports, with diagnostics for duplicates and
//! unresolved imports) and [`use_cycle`] (a cyclic `use` chain through this file).
//! None of them looks inside declarations, so editing a body does not invalidate
//! another file's scope.

use std::collections::HashMap;
use std::sync::Arc;

use dnnc_diagnostics::{codes, Diagnostic, Span};
use dnnc_syntax::ast::{ItemKind, UseImports};
use dnnc_syntax::Parsed;

use crate::db::{Db, SourceFile};

/// Parses one file; never fails.
#[salsa::tracked(returns(ref))]
pub fn parse(db: &dyn Db, file: SourceFile) -> Parsed {
    let name = file.name(db).clone();
    let mut parsed = dnnc_syntax::parse_cached(&name, file.text(db), db.chunk_cache());
    if let Some(at) = *file.invalid_utf8_at(db) {
        let at = at as usize;
        let end = file.text(db)[at..]
            .char_indices()
            .nth(1)
            .map_or(file.text(db).len(), |(i, _)| at + i);
        parsed.diagnostics.insert(
            0,
            Diagnostic::error(
                codes::INVALID_SOURCE_BYTES,
                &name,
                Span::new(at, end),
                "source file is not valid UTF-8",
            )
            .with_label("invalid UTF-8 byte sequence")
            .with_note(".dnn files are UTF-8 text; is this a binary file?"),
        );
    }
    parsed
}

/// What kind of declaration a name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DefKind {
    Layer,
    Fn,
    Dataset,
    /// A declaration that did not parse: uses of it are not reported again.
    Broken,
}

/// What a name in a file's scope refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Def {
    pub file: SourceFile,
    pub index: u32,
    pub kind: DefKind,
}

/// The names a file exports, without positions, so that edits which keep the set of
/// declarations do not invalidate the files importing it.
#[salsa::tracked(returns(ref))]
pub fn module_exports(db: &dyn Db, file: SourceFile) -> HashMap<Arc<str>, (u32, DefKind)> {
    let parsed = parse(db, file);
    module_items(db, file)
        .names
        .iter()
        .map(|(name, (index, _))| {
            let kind = match &parsed.module.items[*index as usize].kind {
                ItemKind::Layer(_) => DefKind::Layer,
                ItemKind::Fn(_) => DefKind::Fn,
                ItemKind::Dataset(_) => DefKind::Dataset,
                _ => DefKind::Broken,
            };
            (name.clone(), (*index, kind))
        })
        .collect()
}

/// The names a file defines itself, with the span of each definition's name.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ModuleItems {
    pub names: HashMap<Arc<str>, (u32, Span)>,
    pub diagnostics: Vec<Diagnostic>,
}

#[salsa::tracked(returns(ref))]
pub fn module_items(db: &dyn Db, file: SourceFile) -> ModuleItems {
    let parsed = parse(db, file);
    let fname = file.name(db);
    let mut out = ModuleItems::default();
    for (i, item) in parsed.module.items.iter().enumerate() {
        let Some(name) = item.defined_name() else {
            continue;
        };
        let key: Arc<str> = Arc::from(name.text.as_str());
        if let Some((_, prev)) = out.names.get(&key) {
            out.diagnostics.push(
                Diagnostic::error(
                    codes::DUPLICATE_DEFINITION,
                    fname,
                    name.span,
                    format!("`{}` is defined twice", name.text),
                )
                .with_label("defined again here")
                .with_secondary(fname, *prev, "first defined here")
                .with_help("rename one of them"),
            );
            continue;
        }
        out.names.insert(key, (i as u32, name.span));
    }
    out
}

/// A file's module-level scope: its own definitions and its imports.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FileScope {
    pub names: HashMap<Arc<str>, Def>,
    /// Every module this file imports from, in order (for cycle detection).
    pub imports: Vec<(SourceFile, Span)>,
    pub diagnostics: Vec<Diagnostic>,
}

#[salsa::tracked(returns(ref))]
pub fn file_scope(db: &dyn Db, file: SourceFile) -> FileScope {
    let parsed = parse(db, file);
    let fname = file.name(db).clone();
    let own = module_items(db, file);
    let mut scope = FileScope {
        diagnostics: own.diagnostics.clone(),
        ..FileScope::default()
    };
    for (name, (index, kind)) in module_exports(db, file) {
        scope.names.insert(
            name.clone(),
            Def {
                file,
                index: *index,
                kind: *kind,
            },
        );
    }
    // Names brought in by `use m::{name}` (a glob import never clashes: names it brings
    // are shadowed by explicit ones).
    let mut explicit: std::collections::HashSet<Arc<str>> = std::collections::HashSet::new();
    for item in &parsed.module.items {
        let ItemKind::Use(u) = &item.kind else {
            continue;
        };
        let segments: Vec<&str> = u.path.iter().map(|n| n.text.as_str()).collect();
        let path_span = match (u.path.first(), u.path.last()) {
            (Some(a), Some(b)) => a.span.to(b.span),
            _ => item.span,
        };
        let Some(target) = db.resolve_module(file, &segments) else {
            let shown = segments.join("::");
            // `use std::nn`: the whole path names a module, but nothing is imported.
            if let UseImports::Names(names) = &u.imports {
                if let [only] = names.as_slice() {
                    let mut whole = segments.clone();
                    whole.push(only.text.as_str());
                    if db.resolve_module(file, &whole).is_some() {
                        let full = whole.join("::");
                        scope.diagnostics.push(
                            Diagnostic::error(
                                codes::IMPORT_NOT_FOUND,
                                &fname,
                                path_span.to(only.span),
                                format!("`use {full}` imports nothing"),
                            )
                            .with_label("a module, not a declaration")
                            .with_help(format!("import names with `use {full}::{{Name}}` or everything with `use {full}::*`")),
                        );
                        continue;
                    }
                }
            }
            let mut d = Diagnostic::error(
                codes::MODULE_NOT_FOUND,
                &fname,
                path_span,
                format!("cannot find module `{shown}`"),
            )
            .with_label("no such module");
            d = if segments.first() == Some(&"std") {
                let known: Vec<String> = crate::stdlib::MODULES
                    .iter()
                    .map(|(m, _)| format!("std::{m}"))
                    .collect();
                d.with_help(format!("the standard modules are {}", known.join(", ")))
            } else {
                let rel = segments.join("/");
                d.with_note(format!("looked for `{rel}.dnn` next to this file"))
            };
            scope.diagnostics.push(d);
            continue;
        };
        scope.imports.push((target, path_span));
        let theirs = module_exports(db, target);
        match &u.imports {
            UseImports::Glob(_) => {
                for (name, (index, kind)) in theirs {
                    scope.names.entry(name.clone()).or_insert(Def {
                        file: target,
                        index: *index,
                        kind: *kind,
                    });
                }
            }
            UseImports::Names(names) if names.is_empty() => {
                let shown = segments.join("::");
                scope.diagnostics.push(
                    Diagnostic::error(
                        codes::IMPORT_NOT_FOUND,
                        &fname,
                        path_span,
                        format!("`use {shown}` imports nothing"),
                    )
                    .with_label("names no declaration")
                    .with_help(format!("import names with `use {shown}::{{Name}}` or everything with `use {shown}::*`")),
                );
            }
            UseImports::Names(names) => {
                for n in names {
                    match theirs.get(n.text.as_str()) {
                        Some((index, kind)) => {
                            let key: Arc<str> = Arc::from(n.text.as_str());
                            if let Some(&(_, prev)) = own.names.get(&key).filter(|_| target != file)
                            {
                                scope.diagnostics.push(
                                    Diagnostic::error(
                                        codes::DUPLICATE_DEFINITION,
                                        &fname,
                                        n.span,
                                        format!("`{}` is imported but also defined here", n.text),
                                    )
                                    .with_label("imported here")
                                    .with_secondary(
                                        &fname,
                                        prev,
                                        "defined here",
                                    ),
                                );
                                continue;
                            }
                            let def = Def {
                                file: target,
                                index: *index,
                                kind: *kind,
                            };
                            let clash = scope
                                .names
                                .get(&key)
                                .filter(|p| **p != def && explicit.contains(&key));
                            if let Some(prev) = clash {
                                let other = prev.file.name(db).clone();
                                scope.diagnostics.push(
                                    Diagnostic::error(
                                        codes::DUPLICATE_DEFINITION,
                                        &fname,
                                        n.span,
                                        format!(
                                            "`{}` is imported twice, from different modules",
                                            n.text
                                        ),
                                    )
                                    .with_label("imported again")
                                    .with_note(format!("the first import comes from `{other}`"))
                                    .with_help("import one of them, or rename a declaration"),
                                );
                                continue;
                            }
                            explicit.insert(key.clone());
                            scope.names.insert(key, def);
                        }
                        // A builtin that its std module names (e.g. `softmax` of
                        // `std::activations`) is visible everywhere; importing it is fine.
                        None if matches!(segments.as_slice(), ["std", m]
                            if crate::builtins::std_builtin(m, &n.text)) => {}
                        None => {
                            let mut d = Diagnostic::error(
                                codes::IMPORT_NOT_FOUND,
                                &fname,
                                n.span,
                                format!("module `{}` has no `{}`", segments.join("::"), n.text),
                            )
                            .with_label("not defined there");
                            let candidates = theirs.keys().map(|k| &**k);
                            if let Some(s) = crate::suggest::closest(&n.text, candidates) {
                                d = d.with_help(format!("a similar name exists: `{s}`"));
                            }
                            scope.diagnostics.push(d);
                        }
                    }
                }
            }
        }
    }
    scope
}

/// If following `use` edges from `file` leads back to it, the diagnostic for that.
#[salsa::tracked(returns(ref))]
pub fn use_cycle(db: &dyn Db, file: SourceFile) -> Option<Diagnostic> {
    // Depth-first search over import edges; only `file_scope`s are consulted, so the
    // search itself is not a query cycle.
    let start = file;
    let mut stack: Vec<(SourceFile, usize)> = vec![(start, 0)];
    let mut path: Vec<SourceFile> = vec![start];
    let mut seen = std::collections::HashSet::new();
    seen.insert(start);
    while let Some((f, i)) = stack.pop() {
        let imports = &file_scope(db, f).imports;
        if i >= imports.len() {
            path.pop();
            continue;
        }
        stack.push((f, i + 1));
        let (next, _) = imports[i];
        if next == start {
            let first_span = file_scope(db, start).imports[stack[0].1 - 1].1;
            let chain: Vec<String> = path
                .iter()
                .chain(std::iter::once(&start))
                .map(|f| format!("`{}`", f.name(db)))
                .collect();
            return Some(
                Diagnostic::error(
                    codes::CYCLIC_USE,
                    file.name(db),
                    first_span,
                    "modules import each other in a cycle",
                )
                .with_label("this import leads back to this file")
                .with_note(format!("the cycle: {}", chain.join(" → ")))
                .with_help("move the shared declarations into a module both can import"),
            );
        }
        if seen.insert(next) {
            stack.push((next, 0));
            path.push(next);
        }
    }
    None
}
