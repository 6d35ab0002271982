//! Every `dnn explain` text is checked like rustc's error index: its first ```dnn example
//! must report its own code, and its last example (the fix) must check clean. Blocks
//! marked ```dnn,ignore are not run (e.g. examples that need several files).

use std::path::Path;

use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_testing::files::Scratch;

fn blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```dnn") => current = Some(String::new()),
            (Some(_), "```") => out.extend(current.take()),
            (Some(buf), l) => {
                buf.push_str(l);
                buf.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

fn scratch_dir() -> Scratch {
    let dir = Scratch::new("explain");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data");
    let link = dir.path("data");
    if !link.exists() {
        #[cfg(unix)]
        std::os::unix::fs::symlink(data.canonicalize().unwrap(), &link).unwrap();
    }
    dir
}

#[test]
fn explanation_examples_show_their_error_and_its_fix() {
    let dir = scratch_dir();
    let mut failures = Vec::new();
    for (i, (code, _, text)) in dnnc_diagnostics::CODES.iter().enumerate() {
        let examples = blocks(text);
        for (j, src) in examples.iter().enumerate() {
            let path = dir.path(&format!("ex_{i}_{j}.dnn"));
            std::fs::write(&path, src).unwrap();
            let db = RootDatabase::new();
            let file = db.open(&path).unwrap();
            let diags = file_diagnostics(&db, file);
            let codes: Vec<&str> = diags.iter().map(|d| d.code.0).collect();
            if j == 0 && !codes.contains(&code.0) {
                failures.push(format!(
                    "{code}: the first example reports {codes:?}, not {code}:\n{src}"
                ));
            }
            if j > 0 && j == examples.len() - 1 && diags.iter().any(|d| d.is_error()) {
                failures.push(format!(
                    "{code}: the fixed example reports {codes:?}:\n{src}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing examples:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
