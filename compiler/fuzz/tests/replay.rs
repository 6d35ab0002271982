//! Every fuzz target over its seed corpus (the files AFL starts from) and over every
//! minimised input that once broke it (`regressions/TARGET/`), so a crash fixed stays
//! fixed: `cargo test` runs what the fuzzers found.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The files under `dir` with one of `exts` (all files when empty), recursively.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p, exts));
        } else if exts.is_empty() || p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)) {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The seed corpus of `target`, as `compiler/fuzz/afl/seeds.sh` copies it for AFL.
pub fn seeds(target: &str) -> Vec<PathBuf> {
    let r = root();
    match target {
        "check_and_format" | "lower_and_run" => [
            files(&r.join("examples"), &["dnn"]),
            files(&r.join("stdlib"), &["dnn"]),
            files(&r.join("compiler/driver/tests/filetests"), &["dnn"]),
        ]
        .concat(),
        "loaders" => [
            files(
                &r.join("compiler/driver/tests/filetests/data"),
                &["npy", "csv", "txt", "gz"],
            ),
            files(&r.join("compiler/session/tests/data"), &[]),
        ]
        .concat(),
        "safetensors" => [
            files(
                &r.join("compiler/driver/tests/filetests/data"),
                &["safetensors"],
            ),
            files(&r.join("compiler/driver/tests/data"), &["safetensors"]),
        ]
        .concat(),
        "ir_text" => [
            files(&r.join("compiler/driver/tests/golden"), &["ir"]),
            files(&r.join("compiler/passes/tests/ir"), &["ir"]),
        ]
        .concat(),
        "lsp_transport" => files(&r.join("compiler/fuzz/seeds/lsp_transport"), &[]),
        other => panic!("no target `{other}`"),
    }
}

#[test]
fn every_target_has_seeds_and_runs_them() {
    for (name, target) in dnnc_fuzz::TARGETS {
        let seeds = seeds(name);
        assert!(seeds.len() >= 2, "{name} has {} seeds", seeds.len());
        for s in seeds {
            let data = std::fs::read(&s).unwrap();
            let caught = std::panic::catch_unwind(|| target(&data));
            assert!(caught.is_ok(), "{name} fails on seed {}", s.display());
        }
    }
}

#[test]
fn every_regression_still_passes() {
    let dir = root().join("compiler/fuzz/regressions");
    let mut replayed = 0;
    for (name, target) in dnnc_fuzz::TARGETS {
        for f in files(&dir.join(name), &[]) {
            let data = std::fs::read(&f).unwrap();
            let caught = std::panic::catch_unwind(|| target(&data));
            assert!(caught.is_ok(), "{name} fails again on {}", f.display());
            replayed += 1;
        }
    }
    // Every kept input belongs to a target.
    let kept = files(&dir, &[])
        .iter()
        .filter(|f| !f.ends_with("README.md"))
        .count();
    assert_eq!(
        replayed, kept,
        "inputs under regressions/ that name no target"
    );
}
