//! `dnnc`: the command-line driver. It parses arguments, runs the requested job on the
//! compiler's database and renders the results; the work itself lives in the library
//! crates.

mod check;
mod jobs;
mod render;
mod runtime_archive;

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use dnnc_lower::{Attribution, Method, Target};

#[derive(Parser)]
#[command(
    name = "dnnc",
    version,
    about = "A compiler for deep-learning models and their training"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The precision of matrix products and convolutions for the commands that run or
    /// compile a model (`train`, `eval`, `predict`, `sample`, `bench`, `compile`, ...):
    /// `bf16` rounds their operands to bfloat16 and accumulates in f32 (mixed
    /// precision; f32 master weights), `f32` does not. Default: the train block's
    /// `precision` (f32 if it has none).
    #[arg(long, global = true, value_parser = precision)]
    precision: Option<dnnc_settings::Precision>,
}

/// `dnnc quantize --method`.
#[derive(Clone, Copy, ValueEnum)]
enum CalibrationArg {
    /// The largest magnitude seen.
    Minmax,
    /// The 99.99th percentile of the magnitudes.
    Percentile,
    /// The range with the least mean squared quantization error (clipping included).
    Mse,
}

impl From<CalibrationArg> for dnnc_session::quantize::Calibration {
    fn from(c: CalibrationArg) -> Self {
        match c {
            CalibrationArg::Minmax => dnnc_session::quantize::Calibration::MinMax,
            CalibrationArg::Percentile => dnnc_session::quantize::Calibration::Percentile,
            CalibrationArg::Mse => dnnc_session::quantize::Calibration::Mse,
        }
    }
}

fn precision(s: &str) -> Result<dnnc_settings::Precision, String> {
    dnnc_settings::Precision::parse(s).ok_or_else(|| format!("`{s}` is not `f32` or `bf16`"))
}

#[derive(Subcommand)]
enum Command {
    /// Parse, resolve and shape-check .dnn files; exit 1 on any error.
    Check {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
        message_format: MessageFormat,
    },
    /// Print the long explanation of an error code, e.g. `dnnc explain E0300`.
    Explain {
        /// The error code.
        code: String,
    },
    /// Run the file's `train` block: data, initialisation, epochs, checkpoints.
    Train {
        file: PathBuf,
        /// Which backend runs the steps.
        #[arg(long, default_value = "cranelift")]
        backend: String,
        /// Override the number of epochs (at least 1).
        #[arg(long, value_parser = at_least_one)]
        epochs: Option<usize>,
        /// Stop after this many optimizer steps (at least 1).
        #[arg(long, value_parser = at_least_one)]
        steps: Option<usize>,
        /// Override the seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Start from these weights (safetensors).
        #[arg(long)]
        init: Option<PathBuf>,
        /// Write the trained weights here (default: the block's `checkpoint`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write one JSON object per epoch to this file.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Print nothing but the final summary.
        #[arg(long)]
        quiet: bool,
        /// Do not draw the loss and metric curves (`<checkpoint stem>.svg`).
        #[arg(long)]
        no_plot: bool,
        /// Print the IR after this stage or pass to stderr: `lower`, `autodiff`,
        /// `optimizer`, `strip_stop_gradient`, `simplify`, `const_fold`, `cse`, `dce`, or
        /// `all`.
        #[arg(long, value_parser = pass_name)]
        dump_after: Option<String>,
        /// Threads for native kernels (default: the CPUs this process may use).
        #[arg(long)]
        threads: Option<usize>,
        /// Evaluate only the first N samples of the test split after each epoch (a
        /// quick run).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        eval_samples: Option<u64>,
        /// Under `mpirun`: the longest wait, in seconds, for the other processes in
        /// a collective before every process ends with an error.
        #[arg(long, default_value_t = 300.0, value_parser = positive_seconds)]
        mpi_timeout: f64,
    },
    /// Evaluate saved weights on the test split.
    Eval {
        file: PathBuf,
        /// The weights to evaluate (safetensors).
        #[arg(long)]
        weights: PathBuf,
        /// Write the results as one JSON object to this file.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Which backend runs the steps.
        #[arg(long, default_value = "cranelift")]
        backend: String,
        /// Evaluate on adversarial versions of the inputs (every float field, clamped
        /// to its range in the split), made against the block's loss by
        /// `std::adversarial`.
        #[arg(long, value_enum, requires = "eps")]
        attack: Option<AttackName>,
        /// The attack's budget per element (max-norm), e.g. 0.1 for pixels in [0, 1].
        #[arg(long, value_parser = non_negative, requires = "attack")]
        eps: Option<f64>,
        /// PGD's number of steps.
        #[arg(long, default_value_t = 10, value_parser = at_least_one)]
        steps: usize,
        /// PGD's step size (default: 2.5 · eps / steps, Madry et al.).
        #[arg(long, value_parser = non_negative)]
        step_size: Option<f64>,
        /// PGD starts from the clean input instead of a random point of the eps-ball.
        #[arg(long)]
        no_random_start: bool,
        /// Evaluate only the first N samples of the split (a quick check).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "attack")]
        samples: Option<u64>,
    },
    /// Run the model on the rows of an .npy file and save the outputs as .npy.
    Predict {
        file: PathBuf,
        /// The weights to use (safetensors).
        #[arg(long)]
        weights: PathBuf,
        /// The inputs, one sample per row (.npy).
        #[arg(long)]
        input: PathBuf,
        /// Where to write the outputs (.npy).
        #[arg(long)]
        output: PathBuf,
        /// Which backend runs the steps.
        #[arg(long, default_value = "cranelift")]
        backend: String,
    },
    /// Draw samples of the train block's `sample` expression (a GAN's generator, a
    /// VAE's decoder) and save them as .npy or as a PNG grid.
    Sample {
        file: PathBuf,
        /// The weights to use (safetensors).
        #[arg(long)]
        weights: PathBuf,
        /// How many samples.
        #[arg(long, default_value_t = 64, value_parser = batch_size)]
        count: usize,
        /// The seed of the noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where to write them: `.npy` (f32 [N, ...]) or `.png` (a grid of images).
        /// Not for text: a language model's text goes to standard output.
        #[arg(long, required_unless_present = "prompt")]
        out: Option<PathBuf>,
        /// Which backend runs the graph.
        #[arg(long, default_value = "cranelift")]
        backend: String,
        /// Text for a character-level language model to continue (its weights carry
        /// the vocabulary); the text is printed.
        #[arg(long, conflicts_with = "out")]
        prompt: Option<String>,
        /// Characters to write after the prompt.
        #[arg(long, default_value_t = 400, requires = "prompt")]
        length: usize,
        /// Divides the logits before sampling: below 1 is more conservative.
        #[arg(long, default_value_t = 1.0, value_parser = positive, requires = "prompt")]
        temperature: f64,
        /// Sample only among the K most likely characters.
        #[arg(long, value_parser = at_least_one, requires = "prompt")]
        top_k: Option<usize>,
        /// Re-run `forward` on the whole context for every character even when the
        /// model has a `decode` method (incremental decoding with a carried state).
        #[arg(long, requires = "prompt")]
        no_decode: bool,
        /// Print to standard error how long the characters after the prompt took.
        #[arg(long, requires = "prompt")]
        time: bool,
    },
    /// Attribution maps of a classifier on samples of a split: which inputs (or, with
    /// Grad-CAM, which regions of a layer's maps) its class score depends on.
    Attribute {
        file: PathBuf,
        /// The weights to explain (safetensors).
        #[arg(long)]
        weights: PathBuf,
        /// The method (functions of `std::explain`).
        #[arg(long, value_enum)]
        method: AttributionMethod,
        /// Grad-CAM's layer, by its path in the model (`conv2`, `block1.conv`); by
        /// default the last layer whose output is maps `[B, C, H, W]`.
        #[arg(long)]
        layer: Option<String>,
        /// The class whose score is explained: a class number, or `predicted` (each
        /// sample's predicted class).
        #[arg(long, default_value = "predicted", value_parser = target_class)]
        target: TargetClass,
        /// How many samples (the first ones of the split).
        #[arg(long, default_value_t = 16, value_parser = batch_size)]
        count: usize,
        /// Integrated gradients' number of points on the path from the zero baseline.
        #[arg(long, default_value_t = 50, value_parser = at_least_one)]
        steps: usize,
        /// The dataset split the samples come from.
        #[arg(long, default_value = "test")]
        split: String,
        /// Where to write the maps: `.npy` (f32 [N, ...]) or `.png` (the inputs with
        /// the maps overlaid).
        #[arg(long)]
        out: PathBuf,
        /// Which backend runs the graph.
        #[arg(long, default_value = "cranelift")]
        backend: String,
    },
    /// Time the training step and inference of the file's model (medians).
    Bench {
        file: PathBuf,
        /// Batch size of the training step (default: the train block's).
        #[arg(long, value_parser = batch_size)]
        batch: Option<usize>,
        /// Which backend runs the steps.
        #[arg(long, default_value = "cranelift")]
        backend: String,
        /// Timed repetitions of the training step.
        #[arg(long, default_value_t = 21, value_parser = at_least_one)]
        runs: usize,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
        /// Threads for native kernels (default: the CPUs this process may use).
        #[arg(long)]
        threads: Option<usize>,
        /// Use these parameters (safetensors) instead of random ones.
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Post-training int8 quantization: calibrate activation ranges on training
    /// samples and write the weights of every matrix product and convolution as int8
    /// with their scales; `eval`, `predict`, `bench` and `compile --emit lib` with the
    /// result run int8 products.
    Quantize {
        file: PathBuf,
        /// The trained f32 weights (safetensors).
        #[arg(long)]
        weights: PathBuf,
        /// Training samples to calibrate on (at most the split's).
        #[arg(long, default_value_t = 512, value_parser = at_least_one)]
        calibrate: usize,
        /// How an activation's range is calibrated.
        #[arg(long, value_enum, default_value_t = CalibrationArg::Minmax)]
        method: CalibrationArg,
        /// Where to write the quantized weights.
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
        /// Which backend runs the calibration.
        #[arg(long, default_value = "cranelift")]
        backend: String,
    },
    /// The model's layers: output shapes, parameter counts and multiply-adds per
    /// sample (like torchinfo's summary).
    Summary { file: PathBuf },
    /// Convert a checkpoint to PyTorch's names and layouts (`--to-torch`) or from them
    /// (`--from-torch`), layer by layer (`fc1.W` [inp, out] ↔ `fc1.weight` [out, inp]).
    Convert {
        file: PathBuf,
        /// A PyTorch `state_dict` saved as safetensors, to read into dnnc's names.
        #[arg(
            long,
            conflicts_with = "to_torch",
            required_unless_present = "to_torch"
        )]
        from_torch: Option<PathBuf>,
        /// A dnnc checkpoint, to write in PyTorch's names.
        #[arg(long)]
        to_torch: Option<PathBuf>,
        /// The safetensors file to write.
        #[arg(short = 'o', required = true)]
        output: PathBuf,
    },
    /// Format .dnn files in place (or check that they are formatted).
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Do not write; exit 1 if a file would change.
        #[arg(long)]
        check: bool,
    },
    /// Run the language server on standard input and output.
    Lsp,
    /// Compile the file's graphs: print them (`--emit ir`, `dot` or `schedule`), build
    /// a static library with a C API (`--emit lib`, `obj` or `header`), or export the
    /// model to ONNX (`-o model.onnx --weights W`).
    Compile {
        file: PathBuf,
        /// What to produce: `lib` (`-o DIR/libNAME.a`, with `NAME.h` and `NAME.pc`),
        /// `obj` (the model's object file), `header` (`NAME.h`), `onnx` (the inference
        /// graph with `--weights`, opset 17, symbolic batch), `ir` (text), `dot`
        /// (graphviz) or `schedule` (the native backend's steps and memory plan).
        /// Default: what `-o`'s extension says (`.a`, `.o`, `.h`, `.onnx`, `.ir`,
        /// `.dot`), else `ir` with `--graph` or `--dump-after`, else `lib`.
        #[arg(long)]
        emit: Option<String>,
        /// Which graph: `train` (the whole training step, the default), `eval` or
        /// `predict`.
        #[arg(long)]
        graph: Option<String>,
        /// The batch size to compile for (default: the train block's).
        #[arg(long, value_parser = batch_size)]
        batch: Option<usize>,
        /// Print the IR after this stage or pass to stderr: `lower`, `autodiff`,
        /// `optimizer`, `strip_stop_gradient`, `simplify`, `const_fold`, `cse`, `dce`, or
        /// `all`.
        #[arg(long, value_parser = pass_name)]
        dump_after: Option<String>,
        /// Write here instead of standard output (for `lib`: `DIR/libNAME.a`).
        #[arg(short = 'o')]
        output: Option<PathBuf>,
        /// Embed these parameters (safetensors) in the library instead of the seed's
        /// initialisation (required for ONNX export).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// The runtime archive to bundle (default: $DNNC_RUNTIME, else the one built
        /// into dnnc).
        #[arg(long)]
        runtime: Option<PathBuf>,
        /// Which compiler makes a library's loops: `cranelift` or `llvm`.
        #[arg(long, default_value = "cranelift")]
        backend: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttackName {
    Fgsm,
    Pgd,
}

/// A finite number above 0 (`--temperature`).
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!("must be a finite number above 0, found {v}")),
        Err(e) => Err(e.to_string()),
    }
}

/// A finite number at least 0 (`--eps`, `--step-size`).
fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(v) => Err(format!("must be a finite number at least 0, found {v}")),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttributionMethod {
    Saliency,
    Gradxinput,
    #[value(name = "integrated_gradients")]
    IntegratedGradients,
    Gradcam,
}

/// `--target`: a class number or `predicted`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TargetClass {
    Class(usize),
    Predicted,
}

fn target_class(s: &str) -> Result<TargetClass, String> {
    if s == "predicted" {
        return Ok(TargetClass::Predicted);
    }
    s.parse()
        .map(TargetClass::Class)
        .map_err(|_| format!("expected a class number or `predicted`, found `{s}`"))
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    Human,
    Json,
}

/// Deep but legal inputs recurse; give the compiler a generous stack.
const STACK_BYTES: usize = 256 * 1024 * 1024;

/// A pass name for `--dump-after`.
fn pass_name(s: &str) -> Result<String, String> {
    let names = dnnc_session::PASS_NAMES;
    if s == "all" || names.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("expected `all` or one of {}", names.join(", ")))
    }
}

/// A count that must be at least 1 (`--epochs`, `--steps`, `--runs`).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// The largest batch size the command line accepts (2^31 samples).
const MAX_BATCH: usize = 1 << 31;

/// A batch size: between 1 and [`MAX_BATCH`].
fn batch_size(s: &str) -> Result<usize, String> {
    match at_least_one(s)? {
        n if n > MAX_BATCH => Err(format!("must be at most {MAX_BATCH}")),
        n => Ok(n),
    }
}

/// A positive, finite number of seconds.
fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(v),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let worker = std::thread::Builder::new()
        .name("dnnc".into())
        .stack_size(STACK_BYTES)
        .spawn(move || run(cli));
    match worker.map(|h| h.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) | Err(_) => {
            eprintln!("error: internal compiler error (a bug in dnnc); please report it with the input that caused it");
            ExitCode::from(101)
        }
    }
}

fn run(cli: Cli) -> ExitCode {
    jobs::set_precision(cli.precision);
    // Only training runs as several processes; anything else started so would do
    // the same work N times.
    if let (Some(n @ 2..), false) = (
        dnnc_dist::launched_size(),
        matches!(cli.command, Command::Train { .. }),
    ) {
        return jobs::fail(format!(
            "this process is one of {n} started by a launcher (mpirun), but only `dnnc train` runs as several processes"
        ));
    }
    match cli.command {
        Command::Check {
            files,
            message_format,
        } => check::run(&files, message_format),
        Command::Train {
            file,
            backend,
            epochs,
            steps,
            seed,
            init,
            out,
            log,
            quiet,
            no_plot,
            dump_after,
            threads,
            eval_samples,
            mpi_timeout,
        } => jobs::train(jobs::TrainArgs {
            file,
            backend,
            epochs,
            steps,
            seed,
            init,
            out,
            log,
            quiet,
            no_plot,
            dump_after,
            threads,
            eval_samples: eval_samples.map(|n| n as usize),
            mpi_timeout,
        }),
        Command::Eval {
            file,
            weights,
            log,
            backend,
            attack,
            eps,
            steps,
            step_size,
            no_random_start,
            samples,
        } => {
            let attack = attack.zip(eps).map(|(a, eps)| dnnc_session::AttackSpec {
                kind: match a {
                    AttackName::Fgsm => dnnc_lower::AttackKind::Fgsm,
                    AttackName::Pgd => dnnc_lower::AttackKind::Pgd {
                        steps,
                        step: step_size.unwrap_or(2.5 * eps / steps as f64),
                        random_start: !no_random_start,
                    },
                },
                eps,
            });
            let samples = samples.map(|n| n as usize);
            jobs::eval(&file, &weights, log.as_deref(), &backend, attack, samples)
        }
        Command::Predict {
            file,
            weights,
            input,
            output,
            backend,
        } => jobs::predict(&file, &weights, &input, &output, &backend),
        Command::Sample {
            file,
            weights,
            count,
            seed,
            out,
            backend,
            prompt,
            length,
            temperature,
            top_k,
            no_decode,
            time,
        } => match (prompt, out) {
            (Some(prompt), _) => {
                let s = dnnc_session::generate::TextSample {
                    prompt: &prompt,
                    length,
                    temperature,
                    top_k,
                    seed,
                    incremental: !no_decode,
                };
                jobs::sample_text(&file, &weights, &s, &backend, time)
            }
            (None, Some(out)) => jobs::sample(&file, &weights, count, seed, &out, &backend),
            (None, None) => unreachable!("clap requires --out without --prompt"),
        },
        Command::Attribute {
            file,
            weights,
            method,
            layer,
            target,
            count,
            steps,
            split,
            out,
            backend,
        } => {
            if layer.is_some() && method != AttributionMethod::Gradcam {
                eprintln!("error: --layer is Grad-CAM's; use it with `--method gradcam`");
                return ExitCode::from(2);
            }
            let method = match method {
                AttributionMethod::Saliency => Method::Saliency,
                AttributionMethod::Gradxinput => Method::GradXInput,
                AttributionMethod::IntegratedGradients => Method::IntegratedGradients { steps },
                AttributionMethod::Gradcam => Method::GradCam { layer },
            };
            let target = match target {
                TargetClass::Class(c) => Target::Class(c),
                TargetClass::Predicted => Target::Predicted,
            };
            jobs::attribute(
                &file,
                &weights,
                Attribution { method, target },
                split,
                count,
                &out,
                &backend,
            )
        }
        Command::Compile {
            file,
            emit,
            graph,
            batch,
            dump_after,
            output,
            weights,
            runtime,
            backend,
        } => jobs::compile(jobs::CompileArgs {
            file,
            emit,
            graph,
            batch,
            dump_after,
            output,
            weights,
            runtime,
            backend,
        }),
        Command::Bench {
            file,
            batch,
            backend,
            runs,
            json,
            threads,
            weights,
        } => jobs::bench(jobs::BenchArgs {
            file,
            batch,
            backend,
            runs,
            json,
            threads,
            weights,
        }),
        Command::Quantize {
            file,
            weights,
            calibrate,
            method,
            out,
            backend,
        } => jobs::quantize(&file, weights, calibrate, method.into(), out, &backend),
        Command::Summary { file } => jobs::summary(&file),
        Command::Convert {
            file,
            from_torch,
            to_torch,
            output,
        } => jobs::convert(&file, from_torch, to_torch, &output),
        Command::Fmt { files, check } => fmt(&files, check),
        Command::Lsp => match dnnc_lsp::run_stdio() {
            Ok(true) => ExitCode::SUCCESS,
            // `exit` (or the end of the input) without `shutdown` first.
            Ok(false) => ExitCode::from(1),
            Err(e) => jobs::fail(format!("the language server stopped: {e}")),
        },
        Command::Explain { code } => {
            match dnnc_diagnostics::explanation(&code) {
                Some((_, _, text)) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("error: no error code `{code}`; codes look like `E0300` (see spec/errors.md)");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `dnnc fmt`: rewrites each file in the house style; with `--check`, only reports.
fn fmt(files: &[PathBuf], check: bool) -> ExitCode {
    let mut failed = false;
    for f in files {
        let text = match dnnc_data::files::read_regular(f, dnnc_data::files::MAX_SOURCE_BYTES)
            .and_then(|b| {
                String::from_utf8(b).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "is not UTF-8 text")
                })
            }) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", f.display());
                failed = true;
                continue;
            }
        };
        match dnnc_syntax::format::format(&text) {
            Ok(new) if new == text => {}
            Ok(_) if check => {
                eprintln!("{} is not formatted", f.display());
                failed = true;
            }
            Ok(new) => {
                if let Err(e) = dnnc_data::files::write_atomically(f, new.as_bytes()) {
                    eprintln!("error: cannot write `{}`: {e}", f.display());
                    failed = true;
                }
            }
            Err(e) => {
                let (line, col) = dnnc_syntax::line_col(&text, e.offset);
                eprintln!(
                    "error: {}:{line}:{col}: cannot format: {}; run `dnnc check` for details",
                    f.display(),
                    e.message
                );
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
