//! If it checks, it runs: every `ok/` filetest and every example that declares a
//! `train` block trains one step (evaluating 64 test samples), evaluates 64 samples
//! with the saved weights, and compiles to a static library, on the interpreter and on
//! native code (and on LLVM in builds with the `llvm` feature); on native code it also
//! runs its training step and its inference at batches 1 and 256 on random data of the
//! right shapes (`dnnc bench`; on the interpreter a batch of 256 through the GPT takes
//! minutes). A file without a `train` block is refused by `dnnc train` with a code, so
//! none is silently left out. Random well-typed programs over generated NPY data
//! (perceptrons with a user layer and function, pruning and layers loaded `from`
//! checkpoints; stacked and bidirectional recurrent layers and Transformer layers;
//! convolutions with augmentation; multi-model plans; every optimizer, schedule and
//! most settings — see `programs/`) must check cleanly, do the same, and predict on
//! every backend.

use std::path::{Path, PathBuf};
use std::process::Command;

use dnnc_testing::{files, Rng};

mod programs;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn backends() -> Vec<&'static str> {
    let mut b = vec!["interp", "cranelift"];
    if cfg!(feature = "llvm") {
        b.push("llvm");
    }
    b
}

/// Whether `src` declares a `train` block (a line starting with `train `).
fn declares_train(src: &str) -> bool {
    src.lines().any(|l| l.starts_with("train "))
}

/// Runs `dnnc args...` in `dir`; the failures are collected with the command.
fn dnnc(dir: &Path, args: &[&str], failures: &mut Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_dnnc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run dnnc");
    if !out.status.success() {
        failures.push(format!(
            "`dnnc {}` in {}:\n{}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
}

/// Everything a program that checks must do, for `file` (in `dir`); weights and
/// libraries go to `out`. With `input` (model inputs in `dir`), it predicts too, on
/// every backend with the same weights, and the predictions must agree.
fn runs_everywhere(
    dir: &Path,
    file: &str,
    input: Option<&str>,
    out: &Path,
    failures: &mut Vec<String>,
) {
    let stem = Path::new(file)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .replace(['-', '.'], "_");
    for backend in backends() {
        let weights = out.join(format!("{stem}_{backend}.safetensors"));
        let w = weights.to_str().unwrap();
        let steps = [
            "--steps",
            "1",
            "--epochs",
            "1",
            "--eval-samples",
            "64",
            "--no-plot",
            "--quiet",
        ];
        let train = [
            &["train", file, "--backend", backend, "--out", w][..],
            &steps,
        ]
        .concat();
        let before = failures.len();
        dnnc(dir, &train, failures);
        if failures.len() > before {
            continue;
        }
        let eval = [
            "eval",
            file,
            "--weights",
            w,
            "--backend",
            backend,
            "--samples",
            "64",
        ];
        dnnc(dir, &eval, failures);
        if backend != "interp" {
            let bench = [
                "bench",
                file,
                "--runs",
                "1",
                "--backend",
                backend,
                "--weights",
                w,
            ];
            dnnc(dir, &bench, failures);
        }
    }
    if let Some(input) = input {
        predicts_alike(dir, file, &stem, input, out, failures);
    }
    let lib = out.join(format!("lib{stem}.a"));
    dnnc(
        dir,
        &["compile", file, "-o", lib.to_str().unwrap()],
        failures,
    );
    if cfg!(feature = "llvm") {
        let lib = out.join(format!("lib{stem}_llvm.a"));
        let args = [
            "compile",
            file,
            "--backend",
            "llvm",
            "-o",
            lib.to_str().unwrap(),
        ];
        dnnc(dir, &args, failures);
    }
}

/// `dnnc predict` of `input` with the weights the interpreter trained runs on every
/// backend, and the native backends' predictions agree with the interpreter's (the
/// stated tolerance, `dnnc_testing::tolerance::close`).
fn predicts_alike(
    dir: &Path,
    file: &str,
    stem: &str,
    input: &str,
    out: &Path,
    failures: &mut Vec<String>,
) {
    let weights = out.join(format!("{stem}_interp.safetensors"));
    if !weights.exists() {
        return; // its training failed, and said so
    }
    let mut reference: Option<Vec<f32>> = None;
    for backend in backends() {
        let predictions = out.join(format!("{stem}_predict_{backend}.npy"));
        let _ = std::fs::remove_file(&predictions);
        let before = failures.len();
        let args = [
            "predict",
            file,
            "--weights",
            weights.to_str().unwrap(),
            "--backend",
            backend,
            "--input",
            input,
            "--output",
            predictions.to_str().unwrap(),
        ];
        dnnc(dir, &args, failures);
        if failures.len() > before {
            continue;
        }
        let got = files::read_npy(&predictions);
        match &reference {
            None => reference = Some(got),
            Some(want) => {
                let off = got
                    .iter()
                    .zip(want)
                    .position(|(&a, &b)| !dnnc_testing::tolerance::close(a, b));
                if got.len() != want.len() || off.is_some() {
                    failures.push(format!(
                        "`dnnc predict {file} --backend {backend}` in {}: {} predictions, {} on the interpreter; first difference at {off:?}",
                        dir.display(),
                        got.len(),
                        want.len()
                    ));
                }
            }
        }
    }
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} commands failed on programs that check:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_ok_filetest_with_a_train_block_runs_on_every_backend() {
    let dir = root().join("compiler/driver/tests/filetests/ok");
    let out = files::Scratch::new("check-to-run-ok");
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dnn"))
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let src = std::fs::read_to_string(&path).unwrap();
        if declares_train(&src) {
            runs_everywhere(&dir, &name, None, out.dir(), &mut failures);
            ran += 1;
        } else {
            // Nothing to run: `dnnc train` says so with a code.
            let o = Command::new(env!("CARGO_BIN_EXE_dnnc"))
                .args(["train", &name, "--steps", "1", "--no-plot"])
                .current_dir(&dir)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            if o.status.success() || !err.contains("error[E1000]") {
                failures.push(format!(
                    "{name}: no `train` block, yet `dnnc train` said {err}"
                ));
            }
        }
    }
    assert!(ran >= 12, "only {ran} filetests declare a train block");
    report(failures);
}

/// A scratch copy of `examples/` (the data linked), so the examples' checkpoints are
/// written there.
fn examples_copy(tag: &str) -> files::Scratch {
    let s = files::Scratch::new(tag);
    let ex = root().join("examples");
    for e in std::fs::read_dir(&ex).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_owned();
        if p.extension().is_some_and(|e| e == "dnn") {
            std::fs::copy(&p, s.dir().join(&name)).unwrap();
        }
    }
    std::os::unix::fs::symlink(ex.join("data").canonicalize().unwrap(), s.path("data")).unwrap();
    std::fs::create_dir_all(s.path("transfer")).unwrap();
    for f in ["body.dnn", "pretrain.dnn", "scratch.dnn"] {
        std::fs::copy(ex.join("transfer").join(f), s.path("transfer").join(f)).unwrap();
    }
    s
}

/// The examples, split in two groups that run in parallel; the teacher and the
/// pretrained backbone are trained first (one step) for the examples that load them.
fn examples_run(group: usize) {
    let s = examples_copy(&format!("check-to-run-examples-{group}"));
    let out = files::Scratch::new(&format!("check-to-run-examples-out-{group}"));
    let mut failures = Vec::new();
    let quick = ["--steps", "1", "--epochs", "1", "--no-plot", "--quiet"];
    dnnc(
        s.dir(),
        &[&["train", "mnist_cnn.dnn"][..], &quick].concat(),
        &mut failures,
    );
    dnnc(
        s.path("transfer").as_path(),
        &[&["train", "pretrain.dnn"][..], &quick].concat(),
        &mut failures,
    );
    report(std::mem::take(&mut failures));
    let mut names: Vec<String> = std::fs::read_dir(s.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dnn"))
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    names.sort();
    names.extend([
        "transfer/pretrain.dnn".to_string(),
        "transfer/scratch.dnn".to_string(),
    ]);
    let mut ran = 0;
    for (i, name) in names.iter().enumerate() {
        if i % 2 != group {
            continue;
        }
        let src = std::fs::read_to_string(s.dir().join(name)).unwrap();
        assert!(declares_train(&src), "{name} has no train block");
        runs_everywhere(s.dir(), name, None, out.dir(), &mut failures);
        ran += 1;
    }
    assert!(ran >= 7, "group {group} ran {ran} examples");
    report(failures);
}

#[test]
fn every_example_runs_on_every_backend_first_half() {
    examples_run(0);
}

#[test]
fn every_example_runs_on_every_backend_second_half() {
    examples_run(1);
}

/// How many random programs the test makes (seeds 1 to this), unless
/// `DNNC_RANDOM_PROGRAMS` says another number (a longer search by hand).
const PROGRAMS: u64 = 24;

/// Random well-typed programs check cleanly and then run everywhere.
#[test]
fn random_programs_that_check_run_everywhere() {
    let mut failures = Vec::new();
    let out = files::Scratch::new("check-to-run-random-out");
    let programs = match std::env::var("DNNC_RANDOM_PROGRAMS") {
        Ok(n) => match n.parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => panic!("DNNC_RANDOM_PROGRAMS must be a whole number above 0, not {n:?}"),
        },
        Err(_) => PROGRAMS,
    };
    for seed in 1..=programs {
        let dir = files::Scratch::new(&format!("check-to-run-random-{seed}"));
        let mut g = Rng(seed);
        let program = programs::random_program(&mut g, dir.dir());
        let src = program.src;
        dir.write("p.dnn", &src);
        let check = Command::new(env!("CARGO_BIN_EXE_dnnc"))
            .args(["check", "p.dnn"])
            .current_dir(dir.dir())
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        if !check.status.success() || !said.is_empty() {
            failures.push(format!(
                "seed {seed}: the generated program does not check:\n{said}\n{src}"
            ));
            continue;
        }
        let before = failures.len();
        let input = Some(program.input);
        runs_everywhere(dir.dir(), "p.dnn", input, out.dir(), &mut failures);
        if failures.len() > before {
            failures.push(format!("seed {seed}'s program:\n{src}"));
        }
    }
    report(failures);
}
