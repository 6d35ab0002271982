//! What can go wrong after `check`, typed, each with its run-time error code (the
//! E1xxx range of `dnnc explain`): data that does not fit the model, weights files,
//! a loss that stops being finite, memory, outputs that cannot be written, and the
//! compiler stages (lowering, passes, code generation) failing on a program that
//! checked.

use std::fmt;
use std::path::PathBuf;

use dnnc_codegen::CodegenError;
use dnnc_data::DataError;
use dnnc_diagnostics::codes::{self, Code};
use dnnc_dist::DistError;
use dnnc_exec::ExecError;
use dnnc_interp::InterpError;
use dnnc_lower::LowerError;
use dnnc_passes::PassError;
use dnnc_runtime::checkpoint::CheckpointError;
use dnnc_tensor::memory::MemoryError;

#[derive(Debug)]
pub enum RunError {
    /// The run cannot start: no `train` block, a form that does not run yet, a
    /// backend this build lacks.
    NotRunnable(String),
    /// A data file cannot be read or is malformed.
    Data(DataError),
    /// The loaded data do not fit the model: a split's fields disagree, a value is
    /// not finite, a split is empty, a sample does not have the model's shape.
    Dataset(String),
    /// An integer field holds a class or row the model does not have.
    OutOfRange(String),
    /// A weights file (checkpoint, `--init`, `from`) cannot be read or does not fit.
    Weights(CheckpointError),
    /// A tensor of a weights file does not fit the parameter it is loaded into.
    WeightsMisfit(String),
    /// The loss stopped being finite.
    NotFinite(String),
    /// More memory than the machine has.
    Memory(MemoryError),
    /// An output (weights, predictions, logs, libraries) cannot be written.
    Write {
        path: PathBuf,
        why: String,
    },
    /// An operation failed while running (an integer division by zero).
    Op(String),
    /// The processes of a data-parallel run cannot work together: started without
    /// MPI, holding different files, data or weights, or parameters that diverged.
    Distributed(DistError),
    /// A state the session itself should have prevented (a bug in `dnnc`).
    Internal(String),
    Lower(LowerError),
    Pass(PassError),
    Codegen(CodegenError),
    Exec(ExecError),
    Interp(InterpError),
}

impl RunError {
    /// The error's code in the E1xxx range.
    pub fn code(&self) -> Code {
        match self {
            RunError::NotRunnable(_) => codes::RUN_NOT_POSSIBLE,
            RunError::Data(_) => codes::DATA_FILE_CONTENTS,
            RunError::Dataset(_) => codes::DATA_MISFIT,
            RunError::OutOfRange(_) => codes::INDEX_OUT_OF_RANGE,
            RunError::Weights(_) | RunError::WeightsMisfit(_) => codes::WEIGHTS_FILE,
            RunError::NotFinite(_) => codes::NOT_FINITE,
            RunError::Memory(_) => codes::OUT_OF_MEMORY,
            RunError::Write { .. } => codes::CANNOT_WRITE,
            RunError::Op(_) => codes::OP_FAILED,
            RunError::Distributed(_) => codes::PROCESSES_DISAGREE,
            RunError::Lower(LowerError::NotApplicable(_)) => codes::RUN_NOT_POSSIBLE,
            RunError::Lower(LowerError::Ir(dnnc_ir::IrError::TooLarge { .. })) => {
                codes::OUT_OF_MEMORY
            }
            RunError::Lower(_) | RunError::Pass(_) | RunError::Internal(_) => codes::INTERNAL,
            RunError::Codegen(CodegenError::Exec(e)) | RunError::Exec(e) => exec_code(e),
            RunError::Codegen(_) => codes::INTERNAL,
            RunError::Interp(InterpError::OutOfRange(_)) => codes::INDEX_OUT_OF_RANGE,
            RunError::Interp(InterpError::Op { .. }) => codes::OP_FAILED,
            RunError::Interp(InterpError::Mismatch { .. } | InterpError::Missing { .. }) => {
                codes::DATA_MISFIT
            }
            RunError::Interp(InterpError::Graph(_)) => codes::INTERNAL,
        }
    }

    /// An error about writing `path`.
    pub fn write(path: impl Into<PathBuf>, why: impl fmt::Display) -> RunError {
        RunError::Write {
            path: path.into(),
            why: why.to_string(),
        }
    }
}

fn exec_code(e: &ExecError) -> Code {
    match e {
        ExecError::Memory(_) => codes::OUT_OF_MEMORY,
        ExecError::OutOfRange(_) => codes::INDEX_OUT_OF_RANGE,
        ExecError::Feed { .. } => codes::DATA_MISFIT,
        ExecError::Kernel(_) => codes::OP_FAILED,
        ExecError::Program(_) => codes::INTERNAL,
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::NotRunnable(m)
            | RunError::Dataset(m)
            | RunError::OutOfRange(m)
            | RunError::NotFinite(m)
            | RunError::Op(m)
            | RunError::WeightsMisfit(m)
            | RunError::Internal(m) => f.write_str(m),
            RunError::Data(e) => e.fmt(f),
            RunError::Weights(e) => e.fmt(f),
            RunError::Memory(e) => e.fmt(f),
            RunError::Distributed(e) => e.fmt(f),
            RunError::Write { path, why } => write!(f, "{}: {why}", path.display()),
            RunError::Lower(e) => e.fmt(f),
            RunError::Pass(e) => e.fmt(f),
            RunError::Codegen(e) => e.fmt(f),
            RunError::Exec(e) => e.fmt(f),
            RunError::Interp(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RunError {}

macro_rules! from {
    ($($t:ty => $v:ident,)*) => {$(
        impl From<$t> for RunError {
            fn from(e: $t) -> RunError {
                RunError::$v(e)
            }
        }
    )*};
}

from! {
    DataError => Data,
    CheckpointError => Weights,
    MemoryError => Memory,
    LowerError => Lower,
    PassError => Pass,
    CodegenError => Codegen,
    ExecError => Exec,
    InterpError => Interp,
    DistError => Distributed,
}
