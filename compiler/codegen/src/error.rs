//! The backend's errors, typed by the stage that failed: scheduling a graph, the code
//! generators (Cranelift, LLVM), writing objects, or making the instance.

use std::fmt;

use dnnc_exec::ExecError;

#[derive(Clone, Debug, PartialEq)]
pub enum CodegenError {
    /// The schedule cannot be built: a graph shape no kernel handles, or a cycle.
    Schedule(String),
    /// Cranelift refused the generated code, or the host is not supported.
    Cranelift(String),
    /// LLVM refused the generated code, or the host is not supported.
    Llvm(String),
    /// Emitting an object file or library failed.
    Object(String),
    /// Making the instance: memory, or an inconsistent program.
    Exec(ExecError),
}

impl fmt::Display for CodegenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodegenError::Schedule(why) => write!(f, "cannot schedule the graph: {why}"),
            CodegenError::Cranelift(why) => write!(f, "cranelift: {why}"),
            CodegenError::Llvm(why) => write!(f, "llvm: {why}"),
            CodegenError::Object(why) => write!(f, "cannot emit the object: {why}"),
            CodegenError::Exec(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CodegenError {}

impl From<ExecError> for CodegenError {
    fn from(e: ExecError) -> CodegenError {
        CodegenError::Exec(e)
    }
}
