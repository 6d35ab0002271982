//! `dnnc`: the command-line driver. It parses arguments, runs the requested job on the
//! compiler's database and renders the results; the work itself lives in the library
//! crates.

mod check;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "dnnc",
    version,
    about = "A compiler for deep-learning models and their training"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, resolve and shape-check .dnn files; exit 1 on any error.
    Check {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
        message_format: MessageFormat,
    },
    /// Print the long explanation of an error code, e.g. `dnnc explain E0300`.
    Explain {
        /// The error code.
        code: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    Human,
    Json,
}

/// Deep but legal inputs recurse; give the compiler a generous stack.
const STACK_BYTES: usize = 256 * 1024 * 1024;

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
    match cli.command {
        Command::Check {
            files,
            message_format,
        } => check::run(&files, message_format),
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
