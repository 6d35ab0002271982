//! Tidy checks over the whole repository, run with the tests: module docs, trailing
//! whitespace, and documentation kept in step with the error codes and the grammar.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "target" || name == "node_modules" || name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            files(&p, ext, out);
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ext.contains(&e))
        {
            out.push(p);
        }
    }
}

#[test]
fn every_rust_module_has_a_doc_comment() {
    let mut rs = Vec::new();
    for dir in ["compiler", "runtime", "lsp"] {
        files(&root().join(dir), &["rs"], &mut rs);
    }
    let missing: Vec<String> = rs
        .iter()
        .filter(|p| {
            let text = fs::read_to_string(p).unwrap_or_default();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty() && !l.starts_with("#!"))
                .unwrap_or("");
            !first.starts_with("//!")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` module doc: {missing:#?}"
    );
}

#[test]
fn no_trailing_whitespace() {
    let mut all = Vec::new();
    for dir in ["compiler", "runtime", "lsp", "stdlib", "examples", "spec"] {
        files(
            &root().join(dir),
            &["rs", "dnn", "md", "pest", "toml"],
            &mut all,
        );
    }
    let mut bad = Vec::new();
    for p in all {
        if p.components()
            .any(|c| c.as_os_str() == "filetests" || c.as_os_str() == "bad_input")
        {
            continue; // Test inputs may hold anything.
        }
        let text = fs::read_to_string(&p).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            if line.ends_with(' ') || line.ends_with('\t') {
                bad.push(format!("{}:{}", p.display(), i + 1));
            }
        }
    }
    assert!(bad.is_empty(), "trailing whitespace: {bad:#?}");
}

#[test]
fn every_code_is_explained_and_documented() {
    let spec = fs::read_to_string(root().join("spec/errors.md")).expect("spec/errors.md exists");
    for (code, title, text) in dnnc_diagnostics::CODES {
        assert!(
            text.starts_with(&format!("# {code}")),
            "explain/{code}.md must start with `# {code}`"
        );
        assert!(!text.contains("TODO"), "explain/{code}.md is unfinished");
        assert!(text.lines().count() > 3, "explain/{code}.md is too short");
        assert!(
            spec.contains(&format!("## {code}")),
            "spec/errors.md has no `## {code}` section ({title})"
        );
    }
}

#[test]
fn spec_mentions_every_grammar_rule() {
    let grammar = fs::read_to_string(root().join("compiler/syntax/src/dnn.pest")).unwrap();
    let spec = fs::read_to_string(root().join("spec/grammar.md")).expect("spec/grammar.md exists");
    let mut missing = Vec::new();
    for line in grammar.lines() {
        let Some((name, rest)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        let rest = rest.trim_start();
        let is_rule = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !rest.starts_with("_{")
            && (rest.starts_with('{') || rest.starts_with("@{") || rest.starts_with("${"));
        let internal = name.starts_with("kw_")
            || name.ends_with("_only")
            || name == "WHITESPACE"
            || name == "COMMENT";
        if is_rule && !internal && !spec.contains(name) {
            missing.push(name.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "spec/grammar.md does not mention these grammar rules: {missing:?}"
    );
}

#[test]
fn stdlib_declarations_have_doc_comments() {
    let mut dnn = Vec::new();
    files(&root().join("stdlib"), &["dnn"], &mut dnn);
    let mut bad = Vec::new();
    for p in dnn {
        let text = fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if ["fn ", "layer ", "model "].iter().any(|k| l.starts_with(k)) {
                let prev = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
                if !prev.is_some_and(|p| p.trim_start().starts_with("///")) {
                    bad.push(format!("{}:{}", p.display(), i + 1));
                }
            }
        }
    }
    assert!(bad.is_empty(), "undocumented stdlib declarations: {bad:#?}");
}
