//! The IR's errors, typed: a shape rule refusing operands, a tensor too large to
//! address, a cycle, IR text that does not parse, an index input out of range.

use std::fmt;

use crate::shape::TensorType;

/// Why the IR refused a graph or a change to one.
#[derive(Clone, Debug, PartialEq)]
pub enum IrError {
    /// An op's shape rule refuses its operands; `why` names them.
    Refused { graph: String, why: String },
    /// A result would need more bytes than a 64-bit process can address.
    TooLarge {
        graph: String,
        ty: TensorType,
        bytes: u128,
    },
    /// The graph has a cycle.
    Cycle { graph: String },
    /// The text form does not parse: the line (1-based; 0 for the end of the text).
    Parse { line: usize, why: String },
}

impl fmt::Display for IrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrError::Refused { graph, why } => write!(f, "{why} (in `{graph}`)"),
            IrError::TooLarge { graph, ty, bytes } => write!(
                f,
                "a tensor of type {ty} would take {}, more than a 64-bit process can address (in `{graph}`)",
                dnnc_tensor::memory::human_bytes(*bytes)
            ),
            IrError::Cycle { graph } => write!(f, "graph `{graph}` has a cycle"),
            IrError::Parse { line: 0, why } => f.write_str(why),
            IrError::Parse { line, why } => write!(f, "line {line}: {why}"),
        }
    }
}

impl std::error::Error for IrError {}

/// An integer input holds a value outside the range the graph indexes with it (a class
/// label of `one_hot`, a row of an embedding): element `position` of `input`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexOutOfRange {
    pub input: String,
    pub position: usize,
    pub value: i64,
    pub limit: usize,
}

impl fmt::Display for IndexOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` holds {} at position {}, but the model takes values from 0 to {} ({} classes or rows)",
            self.input,
            self.value,
            self.position,
            self.limit.saturating_sub(1),
            self.limit
        )
    }
}

impl std::error::Error for IndexOutOfRange {}
