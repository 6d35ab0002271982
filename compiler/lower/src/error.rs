//! Lowering's errors, typed. The checker has proven the program well-typed, so what
//! fails here is a split the run asks for and the dataset lacks, a node the IR refuses
//! (a tensor too large to address), or a construct this release does not lower — a
//! gap in the check-to-run guarantee, reported with what it is.

use std::fmt;

use dnnc_ir::IrError;

#[derive(Clone, Debug, PartialEq)]
pub enum LowerError {
    /// The dataset has no split of this name (a `test` split is optional).
    NoSplit { split: String },
    /// The IR refused a node.
    Ir(IrError),
    /// Differentiating a `grad` failed (a bug: the checker proved it well-typed).
    Grad(dnnc_passes::PassError),
    /// A command's request does not fit this train block (an attack on a block
    /// without float inputs to the model); the message says why.
    NotApplicable(String),
    /// What this release does not lower, or a compiler bug; the message says which.
    Unsupported(String),
}

impl fmt::Display for LowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LowerError::NoSplit { split } => write!(f, "the dataset has no split `{split}`"),
            LowerError::Ir(e) => e.fmt(f),
            LowerError::Grad(e) => write!(f, "differentiating `grad`: {e}"),
            LowerError::NotApplicable(why) | LowerError::Unsupported(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for LowerError {}

impl From<IrError> for LowerError {
    fn from(e: IrError) -> LowerError {
        LowerError::Ir(e)
    }
}

impl From<dnnc_passes::PassError> for LowerError {
    fn from(e: dnnc_passes::PassError) -> LowerError {
        LowerError::Grad(e)
    }
}

impl From<String> for LowerError {
    fn from(why: String) -> LowerError {
        LowerError::Unsupported(why)
    }
}

impl From<&str> for LowerError {
    fn from(why: &str) -> LowerError {
        LowerError::Unsupported(why.to_string())
    }
}
