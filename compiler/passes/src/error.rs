//! The passes' errors, typed: a node the IR refuses, a graph the verifier rejects
//! after a pass, options that do not fit, a graph without what a pass needs.

use std::fmt;

use dnnc_ir::IrError;

#[derive(Clone, Debug, PartialEq)]
pub enum PassError {
    /// A pass made a node the IR refuses (a bug in the pass or in its input graph).
    Ir(IrError),
    /// The verifier's findings on `graph` after pass `after`.
    Invalid {
        graph: String,
        after: String,
        problems: Vec<String>,
    },
    /// `--dump-after` names no pass.
    UnknownPass(String),
    /// The graph lacks what a pass needs (a `loss` output, a scalar loss, the state
    /// of an update).
    Missing(String),
}

impl fmt::Display for PassError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassError::Ir(e) => e.fmt(f),
            PassError::Invalid {
                graph,
                after,
                problems,
            } => write!(
                f,
                "the graph `{graph}` is malformed after pass `{after}`:\n  {}",
                problems.join("\n  ")
            ),
            PassError::UnknownPass(d) => write!(
                f,
                "unknown pass `{d}` to dump after; expected `all` or one of {}",
                crate::pipeline::PASS_NAMES.join(", ")
            ),
            PassError::Missing(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for PassError {}

impl From<IrError> for PassError {
    fn from(e: IrError) -> PassError {
        PassError::Ir(e)
    }
}
