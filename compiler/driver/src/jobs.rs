//! `dnnc train`, `dnnc eval`, `dnnc predict` and `dnnc compile`: check the file, then
//! hand the work to the session crate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dnnc_lower::Mode;
use dnnc_sema::RootDatabase;
use dnnc_session::{BackendKind, PassOptions, RunError, TrainOptions};

use crate::check::load_and_check;
use crate::MessageFormat;

/// Prints an error the way diagnostics are printed and returns exit status 1.
pub fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(1)
}

/// Prints a run-time error with its code (`error[E1102]: ...`; in a data-parallel run
/// with the process's rank) and returns exit status 1.
pub fn failed(e: RunError) -> ExitCode {
    use std::io::Write;
    let w = dnnc_dist::world();
    if w.size() > 1 {
        // Every process finds a disagreement at once: the first says it, and ends them
        // all; the others wait for that rather than end the run before it is said.
        let shared = matches!(e, RunError::Distributed(dnnc_dist::DistError::Mismatch(_)));
        if shared && !w.is_root() {
            std::thread::sleep(std::time::Duration::from_secs(2));
            return ExitCode::from(1);
        }
        // One write, so that other processes' output cannot cut the line.
        let line = format!(
            "error[{}]: rank {} of {}: {e}\n",
            e.code(),
            w.rank(),
            w.size()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    } else {
        eprintln!("error[{}]: {e}", e.code());
    }
    ExitCode::from(1)
}

/// `--precision`, for every job of this run.
static PRECISION: std::sync::OnceLock<Option<dnnc_settings::Precision>> =
    std::sync::OnceLock::new();

pub fn set_precision(p: Option<dnnc_settings::Precision>) {
    let _ = PRECISION.set(p);
}

fn passes(dump_after: Option<String>) -> PassOptions {
    PassOptions {
        verify: cfg!(debug_assertions) || std::env::var_os("DNNC_VERIFY").is_some(),
        dump_after,
        precision: PRECISION.get().copied().flatten(),
        int8: Vec::new(),
    }
}

fn with_job(file: &Path, f: impl FnOnce(&dnnc_session::Job<'_>) -> ExitCode) -> ExitCode {
    let db = RootDatabase::new();
    let Some(roots) = load_and_check(&db, &[file.to_path_buf()], MessageFormat::Human) else {
        return ExitCode::from(1);
    };
    match dnnc_session::job(&db, roots[0]) {
        Ok(job) => f(&job),
        Err(e) => failed(e),
    }
}

pub struct TrainArgs {
    pub file: PathBuf,
    pub backend: String,
    pub epochs: Option<usize>,
    pub steps: Option<usize>,
    pub seed: Option<u64>,
    pub init: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub log: Option<PathBuf>,
    pub quiet: bool,
    pub no_plot: bool,
    pub dump_after: Option<String>,
    pub threads: Option<usize>,
    /// Evaluate at most this many test samples after each epoch.
    pub eval_samples: Option<usize>,
    /// Under `mpirun`, the longest wait for the other processes, in seconds.
    pub mpi_timeout: f64,
}

/// `dnnc train`, as one process or (under `mpirun`, with the `mpi` feature) as one of
/// several: every process ends MPI normally after success, and an error on any of
/// them ends them all.
pub fn train(a: TrainArgs) -> ExitCode {
    let world = match dnnc_dist::init(std::time::Duration::from_secs_f64(a.mpi_timeout)) {
        Ok(w) => w,
        Err(e) => return failed(e.into()),
    };
    let code = train_job(a);
    if code != ExitCode::SUCCESS && world.size() > 1 {
        // The others may wait in a collective for this one: end them all.
        dnnc_dist::abort(1);
    }
    dnnc_dist::finalize();
    code
}

/// [`train`] in this process.
fn train_job(a: TrainArgs) -> ExitCode {
    let backend = match BackendKind::parse(&a.backend) {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    if let Err(e) = set_threads(a.threads) {
        return fail(e);
    }
    let opts = TrainOptions {
        backend,
        epochs: a.epochs,
        steps: a.steps,
        seed: a.seed,
        init: a.init,
        out: a.out,
        log: a.log,
        quiet: a.quiet,
        plot: !a.no_plot,
        passes: passes(a.dump_after),
        eval_samples: a.eval_samples,
    };
    with_job(&a.file, |job| match dnnc_session::train(job, &opts) {
        Ok(_) if !dnnc_dist::world().is_root() => ExitCode::SUCCESS,
        Ok(s) => {
            let shown: Vec<String> = s
                .metrics
                .iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect();
            println!(
                "trained {} epoch{} ({} steps): {}",
                s.epochs,
                if s.epochs == 1 { "" } else { "s" },
                s.steps,
                shown.join("  ")
            );
            if let Some(c) = &s.checkpoint {
                println!("saved weights to {}", c.display());
            }
            if let Some(c) = &s.curves {
                println!("saved curves to {}", c.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    })
}

pub fn eval(
    file: &Path,
    weights: &Path,
    log: Option<&Path>,
    backend: &str,
    attack: Option<dnnc_session::AttackSpec>,
    samples: Option<usize>,
) -> ExitCode {
    let backend = match BackendKind::parse(backend) {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    with_job(file, |job| {
        let p = passes(None);
        let result = match (attack, samples) {
            (None, None) => dnnc_session::eval(job, weights, backend, log, &p),
            (None, Some(n)) => dnnc_session::eval_first(job, weights, backend, log, &p, n),
            (Some(a), _) => dnnc_session::eval_attacked(job, weights, backend, log, &p, a),
        };
        match result {
            Ok(m) => {
                let mut shown: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                if let Some(a) = attack {
                    shown.push(format!("attack {}  eps {}", a.kind.name(), a.eps));
                    if let dnnc_lower::AttackKind::Pgd { steps, step, .. } = a.kind {
                        shown.push(format!("steps {steps}  step_size {step:.4}"));
                    }
                }
                println!("{}", shown.join("  "));
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
}

pub fn predict(
    file: &Path,
    weights: &Path,
    input: &Path,
    output: &Path,
    backend: &str,
) -> ExitCode {
    let backend = match BackendKind::parse(backend) {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    with_job(file, |job| {
        match dnnc_session::predict(job, weights, input, output, backend, &passes(None)) {
            Ok(n) => {
                println!("wrote {n} predictions to {}", output.display());
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
}

pub fn sample(
    file: &Path,
    weights: &Path,
    count: usize,
    seed: u64,
    out: &Path,
    backend: &str,
) -> ExitCode {
    let backend = match BackendKind::parse(backend) {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    with_job(file, |job| {
        match dnnc_session::sample(job, weights, count, seed, out, backend, &passes(None)) {
            Ok(shape) => {
                println!("wrote samples {shape:?} to {}", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
}

#[allow(clippy::too_many_arguments)]
pub fn attribute(
    file: &Path,
    weights: &Path,
    attribution: dnnc_lower::Attribution,
    split: String,
    count: usize,
    out: &Path,
    backend: &str,
) -> ExitCode {
    use dnnc_session::attribute::{attribute, AttributeOptions};
    let backend = match BackendKind::parse(backend) {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    let opts = AttributeOptions {
        attribution,
        split,
        count,
        out: out.to_path_buf(),
        backend,
        passes: passes(None),
    };
    with_job(file, |job| match attribute(job, weights, &opts) {
        Ok(s) => {
            let right = s
                .targets
                .iter()
                .zip(&s.predicted)
                .filter(|(t, p)| t == p)
                .count();
            let layer = s
                .layer
                .map_or(String::new(), |l| format!(" of layer `{l}`"));
            println!(
                "wrote {} maps {:?}{layer} for field `{}` of split `{}` to {} ({right} of {} samples predicted as the explained class)",
                s.shape[0],
                s.shape,
                s.field,
                opts.split,
                out.display(),
                s.targets.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    })
}

/// `dnnc sample --prompt`: prints the prompt and its continuation.
pub fn sample_text(
    file: &Path,
    weights: &Path,
    s: &dnnc_session::generate::TextSample<'_>,
    backend: &str,
    time: bool,
) -> ExitCode {
    let backend = match BackendKind::parse(backend) {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    with_job(file, |job| {
        match dnnc_session::generate::generate(job, weights, s, backend, &passes(None)) {
            Ok(g) => {
                println!("{}", g.text);
                if time {
                    eprintln!(
                        "{} characters in {:.1} ms ({:.1} µs each): {} runs of {} ({:.1} µs each)",
                        s.length,
                        g.seconds * 1e3,
                        g.seconds * 1e6 / s.length.max(1) as f64,
                        g.runs,
                        if g.incremental {
                            "`decode`"
                        } else {
                            "`forward` on the whole context"
                        },
                        g.seconds * 1e6 / g.runs.max(1) as f64,
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
}

/// `dnnc quantize`.
pub fn quantize(
    file: &Path,
    weights: PathBuf,
    calibrate: usize,
    method: dnnc_session::quantize::Calibration,
    out: PathBuf,
    backend: &str,
) -> ExitCode {
    let backend = match BackendKind::parse(backend) {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    with_job(file, |job| {
        let opts = dnnc_session::quantize::QuantizeOptions {
            weights: weights.clone(),
            calibrate,
            method,
            out: out.clone(),
            backend,
            passes: passes(None),
        };
        match dnnc_session::quantize::quantize(job, &opts) {
            Ok(q) => {
                let names: Vec<&str> = q.params.iter().map(|(n, _)| n.as_str()).collect();
                if q.samples < calibrate {
                    println!(
                        "note: calibrated on {} samples (the training split's whole batches), not {calibrate}",
                        q.samples
                    );
                }
                println!(
                    "quantized {} to int8 ({} calibration on {} samples); weights {:.1} KiB -> {:.1} KiB; wrote {}",
                    names.join(", "),
                    method.name(),
                    q.samples,
                    q.bytes.0 as f64 / 1024.0,
                    q.bytes.1 as f64 / 1024.0,
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
}

/// `dnnc convert`: a checkpoint into or out of PyTorch's names and layouts.
pub fn convert(
    file: &Path,
    from_torch: Option<PathBuf>,
    to_torch: Option<PathBuf>,
    output: &Path,
) -> ExitCode {
    use dnnc_session::torch::Direction;
    let (direction, input) = match (from_torch, to_torch) {
        (Some(i), None) => (Direction::FromTorch, i),
        (None, Some(i)) => (Direction::ToTorch, i),
        _ => return fail("say `--from-torch STATE_DICT` or `--to-torch CHECKPOINT`"),
    };
    let same_file = std::fs::canonicalize(&input)
        .ok()
        .zip(std::fs::canonicalize(output).ok())
        .is_some_and(|(a, b)| a == b);
    if same_file || input == output {
        return fail(format!(
            "{}: converting a file onto itself would lose it; write to another `-o`",
            output.display()
        ));
    }
    with_job(file, |job| {
        match dnnc_session::torch::convert(job, direction, &input, output) {
            Ok(n) => {
                let names = match direction {
                    Direction::FromTorch => "dnnc's",
                    Direction::ToTorch => "PyTorch's",
                };
                println!("wrote {n} tensors in {names} names to {}", output.display());
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
}

/// `dnnc summary`: one row per layer, then the totals.
pub fn summary(file: &Path) -> ExitCode {
    with_job(file, |job| {
        let s = match dnnc_lower::summary::summarize(job.db, job.file, job.item) {
            Ok(s) => s,
            Err(e) => return failed(dnnc_session::RunError::from(e)),
        };
        print!("{}", render_summary(&s));
        ExitCode::SUCCESS
    })
}

/// Thousands separated by commas.
fn count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table `dnnc summary` prints.
pub fn render_summary(s: &dnnc_lower::summary::ModelSummary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let rows: Vec<[String; 4]> = s
        .rows
        .iter()
        .map(|r| {
            let depth = if r.path.is_empty() {
                0
            } else {
                r.path.matches('.').count() + 1
            };
            let name = if r.path.is_empty() {
                "(model)".to_string()
            } else {
                r.path.rsplit('.').next().unwrap_or(&r.path).to_string()
            };
            let shape = r
                .output
                .as_ref()
                .map_or("-".to_string(), |o| format!("{o:?}"));
            [
                format!("{}{name} ({})", "  ".repeat(depth), r.kind),
                shape,
                count(r.trainable + r.frozen + r.buffers),
                count(r.macs),
            ]
        })
        .collect();
    let head = ["Layer (type)", "Output shape", "Params", "MACs/sample"];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String; 4]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )
    };
    let _ = writeln!(out, "input: {:?} (a batch of one)", s.input);
    let _ = writeln!(out, "{}", line(&head.map(String::from)));
    let _ = writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 6));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r));
    }
    if let Some(m) = s.rows.first() {
        let _ = writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 6));
        let _ = writeln!(
            out,
            "total parameters: {} (trainable {}, frozen {}, buffers {})",
            count(m.trainable + m.frozen + m.buffers),
            count(m.trainable),
            count(m.frozen),
            count(m.buffers)
        );
        let _ = writeln!(
            out,
            "multiply-adds per sample: {}{}",
            count(m.macs),
            if s.other_macs > 0 {
                format!(" ({} in products of activations)", count(s.other_macs))
            } else {
                String::new()
            }
        );
    }
    out
}

pub struct CompileArgs {
    pub file: PathBuf,
    /// `None`: decided by [`resolve_emit`].
    pub emit: Option<String>,
    pub graph: Option<String>,
    pub batch: Option<usize>,
    pub dump_after: Option<String>,
    pub output: Option<PathBuf>,
    pub weights: Option<PathBuf>,
    pub runtime: Option<PathBuf>,
    pub backend: String,
}

/// `dnnc compile --emit lib|obj|header`: a static library with a C API.
fn compile_library(a: &CompileArgs) -> ExitCode {
    use dnnc_session::library;
    let emit = a.emit.as_deref().unwrap_or("lib");
    with_job(&a.file, |job| {
        let name = match library::library_name(job, a.output.as_deref()) {
            Ok(n) => n,
            Err(e) => return failed(e),
        };
        let (ext, default) = match emit {
            "lib" => ("a", format!("lib{name}.a")),
            "obj" => ("o", format!("{name}.o")),
            _ => ("h", format!("{name}.h")),
        };
        let out = a.output.clone().unwrap_or_else(|| PathBuf::from(default));
        if out.extension().and_then(|e| e.to_str()) != Some(ext) {
            return fail(format!(
                "{}: `--emit {}` writes a `.{ext}` file",
                out.display(),
                emit
            ));
        }
        let loops = match library::loop_compiler(&a.backend) {
            Ok(l) => l,
            Err(e) => return failed(e),
        };
        // Find the runtime before the (longer) compilation.
        let runtime = if emit == "lib" {
            match library::find_runtime(a.runtime.as_deref(), crate::runtime_archive::embedded()) {
                Ok(r) => Some(r),
                Err(e) => return failed(e),
            }
        } else {
            None
        };
        let (lib, header) =
            match library::build(job, &name, a.weights.as_deref(), loops, &passes(None)) {
                Ok(x) => x,
                Err(e) => return failed(e),
            };
        let dir = out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return fail(format!("{}: {e}", dir.display()));
        }
        let write = |path: &Path, bytes: &[u8]| -> Result<(), RunError> {
            std::fs::write(path, bytes).map_err(|e| RunError::write(path, e))
        };
        let result = match emit {
            "header" => write(&out, header.as_bytes()),
            "obj" if lib.objects.len() == 1 => write(&out, &lib.objects[0]),
            "obj" => Err(RunError::NotRunnable(format!(
                "`--emit obj` with `--backend {}` makes {} object files; use `--emit lib`",
                a.backend,
                lib.objects.len()
            ))),
            _ => library::write_archive(&lib.objects, runtime.as_ref().expect("found above"), &out)
                .and_then(|()| write(&dir.join(format!("{name}.h")), header.as_bytes()))
                .and_then(|()| {
                    write(
                        &dir.join(format!("{name}.pc")),
                        library::pkg_config(&name, &dir).as_bytes(),
                    )
                }),
        };
        match result {
            Ok(()) => {
                println!("wrote {}", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
}

/// `dnnc compile --emit onnx` (or `-o NAME.onnx`): the inference graph with the
/// weights of `--weights` as an ONNX model.
fn compile_onnx(a: &CompileArgs) -> ExitCode {
    let Some(weights) = a.weights.as_deref() else {
        return fail("ONNX export needs the model's weights: `--weights W.safetensors`");
    };
    if a.runtime.is_some() || a.backend != "cranelift" || a.graph.is_some() || a.batch.is_some() {
        return fail("ONNX export takes `--weights` and `-o`; `--runtime`, `--backend`, `--graph` and `--batch` do not apply (the batch is symbolic)");
    }
    with_job(&a.file, |job| {
        let name = match dnnc_session::library::library_name(job, None) {
            Ok(n) => n,
            Err(e) => return failed(e),
        };
        let out = a
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{name}.onnx")));
        if out.extension().and_then(|e| e.to_str()) != Some("onnx") {
            return fail(format!(
                "{}: `--emit onnx` writes a `.onnx` file",
                out.display()
            ));
        }
        match dnnc_session::onnx::export(job, &name, weights, &out, &passes(a.dump_after.clone())) {
            Ok(ops) => {
                let n: usize = ops.values().sum();
                let kinds: Vec<String> = ops.iter().map(|(k, c)| format!("{k}×{c}")).collect();
                println!("wrote {} ({n} nodes: {})", out.display(), kinds.join(", "));
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
}

/// What `dnnc compile` writes when `--emit` does not say: what `-o`'s extension
/// promises, else IR when a graph or a dump was asked for, else the library.
fn resolve_emit(a: &CompileArgs) -> Result<String, String> {
    let ext = a
        .output
        .as_ref()
        .and_then(|o| o.extension())
        .map(|e| e.to_string_lossy().to_lowercase());
    let text = |e: &str| matches!(e, "ir" | "dot" | "schedule");
    if let Some(e) = &a.emit {
        // Text never goes into a file whose extension promises something else.
        if let (true, Some(x)) = (text(e), ext.as_deref()) {
            if matches!(x, "a" | "o" | "so" | "h" | "onnx" | "safetensors") {
                let path = a.output.as_ref().expect("has an extension").display();
                return Err(format!(
                    "{path}: refusing to write `--emit {e}` text into a `.{x}` file; write it to standard output (no `-o`) or to a `.{e}` file"
                ));
            }
        }
        return Ok(e.clone());
    }
    Ok(match ext.as_deref() {
        Some("a") => "lib",
        Some("o") => "obj",
        Some("h") => "header",
        Some("ir") | Some("txt") => "ir",
        Some("dot") => "dot",
        Some("onnx") => "onnx",
        Some(other) => {
            return Err(format!(
                "cannot tell what to write from `.{other}`; name a `.a`, `.o`, `.h`, `.onnx`, `.ir` or `.dot` file, or say `--emit`"
            ))
        }
        None if a.graph.is_some() || a.dump_after.is_some() => "ir",
        None => "lib",
    }
    .to_string())
}

pub fn compile(mut a: CompileArgs) -> ExitCode {
    let emit = match resolve_emit(&a) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    a.emit = Some(emit.clone());
    if matches!(emit.as_str(), "lib" | "obj" | "header") {
        return compile_library(&a);
    }
    if emit == "onnx" {
        return compile_onnx(&a);
    }
    if a.weights.is_some() || a.runtime.is_some() || a.backend != "cranelift" {
        return fail(
            "`--weights`, `--runtime` and `--backend` go with `--emit lib`, `obj` or `header`",
        );
    }
    let opts = PassOptions {
        verify: true,
        ..passes(a.dump_after.clone())
    };
    let graph = a.graph.clone().unwrap_or_else(|| "train".into());
    with_job(&a.file, |job| {
        let batch = a.batch.unwrap_or(job.cfg.batch);
        let step = job.cfg.steps.iter().position(|s| s.name == graph);
        let built = match graph.as_str() {
            // `train` is the first step of the plan; a multi-model block's steps go by
            // their names.
            name if name == "train" || step.is_some() => dnnc_session::steps::train_step(
                job.db,
                job.file,
                job.item,
                &job.cfg,
                step.unwrap_or(0),
                1,
                batch,
                &opts,
            ),
            "sample" if job.cfg.sample => {
                dnnc_session::steps::forward(job.db, job.file, job.item, Mode::Sample, batch, &opts)
            }
            "eval" => {
                dnnc_session::steps::forward(job.db, job.file, job.item, Mode::Eval, batch, &opts)
            }
            "predict" => dnnc_session::steps::forward(
                job.db,
                job.file,
                job.item,
                Mode::Predict,
                batch,
                &opts,
            ),
            other => {
                let mut names = vec!["train".to_string()];
                if job.cfg.multi {
                    names.extend(job.cfg.steps.iter().map(|s| s.name.clone()));
                }
                names.extend(["eval".into(), "predict".into()]);
                if job.cfg.sample {
                    names.push("sample".into());
                }
                return fail(format!(
                    "unknown graph `{other}`; choose {}",
                    names.join(", ")
                ));
            }
        };
        let g = match built {
            Ok(l) => l.graph,
            Err(e) => return failed(e),
        };
        let text = match emit.as_str() {
            "ir" => dnnc_ir::text::to_text(&g),
            "dot" => dnnc_ir::dot::to_dot(&g),
            "schedule" => match dnnc_session::backend::schedule_text(&g) {
                Ok(t) => t,
                Err(e) => return failed(e),
            },
            other => {
                return fail(format!(
                    "cannot emit `{other}`; choose ir, dot, schedule, lib, obj, header or onnx"
                ))
            }
        };
        match &a.output {
            Some(p) => match std::fs::write(p, text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format!("{}: {e}", p.display())),
            },
            None => {
                print!("{text}");
                ExitCode::SUCCESS
            }
        }
    })
}

/// What `dnnc bench` was asked to do.
pub struct BenchArgs {
    pub file: PathBuf,
    pub batch: Option<usize>,
    pub backend: String,
    pub runs: usize,
    pub json: bool,
    pub threads: Option<usize>,
    pub weights: Option<PathBuf>,
}

/// The most threads `--threads` accepts: more would only cost memory and start-up time.
const MAX_THREADS: usize = 1024;

/// Applies `--threads`: 0 and more than [`MAX_THREADS`] are refused.
fn set_threads(threads: Option<usize>) -> Result<(), String> {
    match threads {
        Some(0) => Err("`--threads` must be at least 1".into()),
        Some(n) if n > MAX_THREADS => Err(format!(
            "`--threads {n}` is more than the limit of {MAX_THREADS} (this machine has {} cores)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        )),
        Some(n) => {
            dnnc_session::backend::set_threads(n);
            Ok(())
        }
        None => Ok(()),
    }
}

pub fn bench(a: BenchArgs) -> ExitCode {
    let backend = match BackendKind::parse(&a.backend) {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    if let Err(e) = set_threads(a.threads) {
        return fail(e);
    }
    with_job(&a.file, |job| {
        match dnnc_session::bench::bench(
            job,
            backend,
            a.batch,
            a.runs.max(1),
            a.weights.as_deref(),
            &passes(None),
        ) {
            Ok(r) => {
                // A plan of several steps: each step's time, then the whole batch's.
                let each = if r.steps_ms.len() > 1 {
                    let parts: Vec<String> = r
                        .steps_ms
                        .iter()
                        .map(|(n, t)| format!("{n} {t:.3} ms"))
                        .collect();
                    format!(" ({})", parts.join(", "))
                } else {
                    String::new()
                };
                println!(
                "backend {}  threads {}  batch {}: train step {:.3} ms{each}  inference b1 {:.1} us  b256 {:.1} us  compile {:.1} ms",
                r.backend, r.threads, r.batch, r.train_step_ms, r.infer_b1_us, r.infer_b256_us, r.compile_ms
            );
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "backend": r.backend,
                            "threads": r.threads,
                            "batch": r.batch,
                            "train_step_ms": r.train_step_ms,
                            "steps_ms": r.steps_ms.iter().map(|(n, t)| (n.clone(), serde_json::json!(t))).collect::<serde_json::Map<_, _>>(),
                            "infer_b1_us": r.infer_b1_us,
                            "infer_b256_us": r.infer_b256_us,
                            "compile_ms": r.compile_ms,
                        })
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        }
    })
}
