//! The executor's errors, typed: a program description that does not hold together,
//! memory the machine cannot give, a fed tensor that does not fit its port, an index
//! input out of range, a kernel that failed while running.

use std::fmt;

use dnnc_ir::IndexOutOfRange;
use dnnc_tensor::memory::MemoryError;

#[derive(Clone, Debug, PartialEq)]
pub enum ExecError {
    /// The program description is inconsistent (a corrupt library or a compiler bug).
    Program(String),
    /// Storage the machine cannot give.
    Memory(MemoryError),
    /// An input or state (`what`) that is missing, or does not fit its port.
    Feed {
        what: &'static str,
        name: String,
        why: String,
    },
    /// An integer input holds a value outside the range the graph indexes with it.
    OutOfRange(IndexOutOfRange),
    /// A kernel failed while running (an integer division by zero, an index out of
    /// range).
    Kernel(String),
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::Program(why) => write!(f, "a malformed compiled program: {why}"),
            ExecError::Memory(e) => e.fmt(f),
            ExecError::Feed { what, name, why } => write!(f, "{what} `{name}` {why}"),
            ExecError::OutOfRange(e) => e.fmt(f),
            ExecError::Kernel(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ExecError {}

impl From<MemoryError> for ExecError {
    fn from(e: MemoryError) -> ExecError {
        ExecError::Memory(e)
    }
}
