//! Data-driven tests of `dnnc check` over the files in `tests/filetests/`.
//!
//! - Every `ok/*.dnn` must check clean: exit status 0 and nothing on stderr.
//! - Every `err/*.dnn` is checked from the `filetests` directory as `err/NAME.dnn` (so the
//!   paths in diagnostics are stable) with `NO_COLOR=1`. It must exit with status 1, and
//!   its stderr must equal `err/NAME.stderr` byte for byte.
//! - The first line of every `err/*.dnn` is a comment naming the expected error codes
//!   before its first colon, e.g. `// E0300: matmul mismatch` or
//!   `// E0407, E0103: ...`. Each of those codes must appear as `error[CODE]` (or, for a
//!   warning, `warning[CODE]`) in the
//!   output, so blessing cannot silently accept the wrong error.
//!
//! Set `DNNC_BLESS=1` to (re)write the `.stderr` files from the current output instead
//! of comparing. Files in subdirectories (`ok/lib/`, `err/lib/`) are modules imported
//! by the tests and are not run on their own.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filetests")
}

/// The `.dnn` files directly inside `dir`, sorted by name.
fn dnn_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "dnn"))
        .collect();
    files.sort();
    files
}

/// Runs `dnnc check REL` in the `filetests` directory.
fn check(rel: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dnnc"))
        .arg("check")
        .arg(rel)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("cannot run dnnc")
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// The error codes (`E` and four digits) named before the first `:` of the first line.
fn expected_codes(source: &[u8]) -> Vec<String> {
    let first = source.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let head = first.split(':').next().unwrap_or_default();
    let bytes = head.as_bytes();
    let mut codes = Vec::new();
    let mut i = 0;
    while i + 5 <= bytes.len() {
        if bytes[i] == b'E' && bytes[i + 1..i + 5].iter().all(u8::is_ascii_digit) {
            codes.push(head[i..i + 5].to_string());
            i += 5;
        } else {
            i += 1;
        }
    }
    codes
}

/// A small line diff (longest common subsequence), in the style of `diff -u` without
/// hunk headers: ` ` common, `-` expected only, `+` actual only.
fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let (n, m) = (a.len(), b.len());
    // lcs[i][j] = length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::from("--- expected\n+++ actual\n");
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            let _ = writeln!(out, " {}", a[i]);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "-{}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+{}", b[j]);
            j += 1;
        }
    }
    if !expected.is_empty()
        && !actual.is_empty()
        && expected.ends_with('\n') != actual.ends_with('\n')
    {
        out.push_str("(the files differ in the final newline)\n");
    }
    out
}

fn bless() -> bool {
    std::env::var_os("DNNC_BLESS").is_some_and(|v| v == "1")
}

#[test]
fn ok_files_check_clean() {
    let files = dnn_files(&root().join("ok"));
    assert!(files.len() >= 15, "expected a corpus of ok files");
    let mut failures = String::new();
    for path in &files {
        let rel = format!("ok/{}", file_name(path));
        let out = check(&rel);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(0) || !stderr.is_empty() {
            let _ = writeln!(
                failures,
                "== {rel}: exit {:?}, expected 0 and empty stderr\n{stderr}",
                out.status.code()
            );
        }
    }
    assert!(
        failures.is_empty(),
        "files in ok/ that do not check clean:\n\n{failures}"
    );
}

#[test]
fn err_files_match_expected_stderr() {
    let files = dnn_files(&root().join("err"));
    assert!(files.len() >= 35, "expected a corpus of err files");
    let bless = bless();
    let mut failures = String::new();
    let mut blessed = 0;
    for path in &files {
        let name = file_name(path);
        let rel = format!("err/{name}");
        let source = fs::read(path).expect("read err file");
        let out = check(&rel);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let mut problems = Vec::new();

        if out.status.code() != Some(1) {
            problems.push(format!("exit status {:?}, expected 1", out.status.code()));
        }
        let codes = expected_codes(&source);
        if codes.is_empty() {
            problems.push(
                "the first line names no error code; start the file with e.g. `// E0300: ...`"
                    .to_string(),
            );
        }
        for code in &codes {
            if !stderr.contains(&format!("error[{code}]"))
                && !stderr.contains(&format!("warning[{code}]"))
            {
                problems.push(format!(
                    "the output has no `error[{code}]` or `warning[{code}]`"
                ));
            }
        }
        for bad in ["panicked", "RUST_BACKTRACE", "internal compiler error"] {
            if stderr.contains(bad) {
                problems.push(format!("the output contains `{bad}`"));
            }
        }

        let expected_path = path.with_extension("stderr");
        if bless {
            fs::write(&expected_path, &stderr).expect("write .stderr");
            blessed += 1;
        } else {
            match fs::read_to_string(&expected_path) {
                Ok(expected) if expected == stderr => {}
                Ok(expected) => problems.push(format!(
                    "stderr differs from {}:\n{}",
                    file_name(&expected_path),
                    line_diff(&expected, &stderr)
                )),
                Err(_) => problems.push(format!(
                    "{} is missing (run with DNNC_BLESS=1); the output was:\n{stderr}",
                    file_name(&expected_path)
                )),
            }
        }
        if !problems.is_empty() {
            let _ = writeln!(failures, "== {rel}");
            for p in problems {
                let _ = writeln!(failures, "{p}");
            }
            failures.push('\n');
        }
    }
    if bless {
        eprintln!("blessed {blessed} .stderr files");
    }
    // Expected outputs whose test file is gone are stale.
    if !bless {
        for entry in fs::read_dir(root().join("err")).expect("list err") {
            let p = entry.expect("entry").path();
            if p.extension().is_some_and(|x| x == "stderr") && !p.with_extension("dnn").is_file() {
                let _ = writeln!(
                    failures,
                    "== {}: no matching .dnn file; delete it\n",
                    file_name(&p)
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "mismatching files in err/ (set DNNC_BLESS=1 to accept the current output):\n\n{failures}"
    );
}

#[test]
fn expected_codes_are_read_from_the_first_line() {
    assert_eq!(expected_codes(b"// E0300: matmul E0301\n"), ["E0300"]);
    assert_eq!(
        expected_codes(b"// E0407, E0103: x\nE0999"),
        ["E0407", "E0103"]
    );
    assert!(expected_codes(b"// no code here: E0300\n").is_empty());
}

#[test]
fn line_diff_marks_changed_lines() {
    let d = line_diff("a\nb\nc\n", "a\nx\nc\n");
    assert!(d.contains("-b\n"), "{d}");
    assert!(d.contains("+x\n"), "{d}");
    assert!(d.contains(" a\n") && d.contains(" c\n"), "{d}");
}
