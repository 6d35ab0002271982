//! `dnnc check`: loads the given files, checks them and every module they import,
//! and prints the diagnostics.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use dnnc_diagnostics::{codes, Diagnostic, Span};
use dnnc_sema::scope::file_scope;
use dnnc_sema::{file_diagnostics, RootDatabase, SourceFile};

use crate::render::Renderer;
use crate::MessageFormat;

pub fn run(paths: &[PathBuf], format: MessageFormat) -> ExitCode {
    let db = RootDatabase::new();
    match load_and_check(&db, paths, format) {
        Some(_) => ExitCode::SUCCESS,
        None => ExitCode::from(1),
    }
}

/// Opens and checks `paths` with everything they import, printing diagnostics.
/// Returns the opened files when there is no error.
pub fn load_and_check(
    db: &RootDatabase,
    paths: &[PathBuf],
    format: MessageFormat,
) -> Option<Vec<SourceFile>> {
    let mut renderer = Renderer::new(format);
    let mut roots = Vec::new();
    let mut unreadable = Vec::new();
    for p in paths {
        match db.open(p) {
            Ok(f) => roots.push(f),
            Err(e) => {
                let name: Arc<str> = Arc::from(p.display().to_string());
                let d = Diagnostic::error(
                    codes::UNREADABLE_FILE,
                    &name,
                    Span::new(0, 0),
                    format!("cannot read `{name}`: {}", io_reason(&e)),
                )
                .with_label("file not found or not readable");
                unreadable.push((name, d));
            }
        }
    }
    let mut all = Vec::new();
    for (name, d) in unreadable {
        renderer.add_source(&name, "");
        all.push(d);
    }
    for f in reachable(db, &roots) {
        all.extend(file_diagnostics(db, f).iter().cloned());
    }
    for f in db.files() {
        renderer.add_source(f.name(db), f.text(db));
    }
    renderer.emit_all(&all);
    let errors = all.iter().filter(|d| d.is_error()).count();
    (errors == 0).then_some(roots)
}

/// The roots and every module they import, each once.
fn reachable(db: &RootDatabase, roots: &[SourceFile]) -> Vec<SourceFile> {
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    let mut stack: Vec<SourceFile> = roots.iter().rev().copied().collect();
    while let Some(f) = stack.pop() {
        if !seen.insert(f) {
            continue;
        }
        order.push(f);
        for (g, _) in file_scope(db, f).imports.iter().rev() {
            stack.push(*g);
        }
    }
    order
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}
