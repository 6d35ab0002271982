//! The standard library itself must always check clean: a file importing every `std`
//! module with `use std::MODULE::*` has no diagnostics.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dnnc_testing::files::Scratch;

/// The modules the standard library must have, besides any others in `stdlib/`.
const REQUIRED: &[&str] = &["nn", "activations", "losses", "regularization", "shape"];

fn stdlib_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib")
}

/// Every module of the standard library: the required ones and every `stdlib/*.dnn`.
fn std_modules() -> Vec<String> {
    let mut modules: Vec<String> = REQUIRED.iter().map(|m| m.to_string()).collect();
    for entry in std::fs::read_dir(stdlib_dir()).expect("list stdlib/") {
        let path = entry.expect("stdlib entry").path();
        if path.extension().is_some_and(|e| e == "dnn") {
            let stem = path
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            if !modules.contains(&stem) {
                modules.push(stem);
            }
        }
    }
    modules
}

fn temp_dir(name: &str) -> Scratch {
    Scratch::new(&format!("std-clean-{name}"))
}

fn check(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dnnc"))
        .arg("check")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("cannot run dnnc")
}

fn assert_clean(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stderr.is_empty() && stdout.trim().is_empty(),
        "{what} is not clean: exit {:?}\nstderr:\n{stderr}\nstdout:\n{stdout}",
        out.status.code()
    );
}

#[test]
fn every_std_module_imports_clean() {
    let modules = std_modules();
    let dir = temp_dir("all");
    let source: String = modules
        .iter()
        .map(|m| format!("use std::{m}::*\n"))
        .collect();
    std::fs::write(dir.path("all_std.dnn"), &source).expect("write");
    assert_clean(
        &format!("a file with\n{source}"),
        &check(dir.dir(), &["all_std.dnn"]),
    );
    let json = check(dir.dir(), &["--message-format", "json", "all_std.dnn"]);
    assert_clean("the same file with --message-format json", &json);
}

#[test]
fn each_std_module_imports_clean_on_its_own() {
    let dir = temp_dir("each");
    let mut files = Vec::new();
    for m in std_modules() {
        let name = format!("use_{m}.dnn");
        std::fs::write(dir.path(&name), format!("use std::{m}::*\n")).expect("write");
        files.push(name);
    }
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    assert_clean("one file per std module", &check(dir.dir(), &args));
}

#[test]
fn std_sources_check_clean_as_files() {
    let dir = stdlib_dir();
    let mut files: Vec<String> = std_modules().iter().map(|m| format!("{m}.dnn")).collect();
    files.sort();
    for f in &files {
        assert!(dir.join(f).is_file(), "stdlib/{f} is missing");
    }
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    assert_clean("stdlib/*.dnn", &check(&dir, &args));
}
