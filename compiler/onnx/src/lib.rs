//! ONNX export: an inference graph of the IR, with its weights, written as an ONNX
//! model (opset 17) whose batch dimension is symbolic.
//!
//! The exporter reads the graph lowered at two batch sizes (their structure must be
//! the same): a dimension that differs is `k × batch` ([`batch::Dim`]), and every
//! shape an op takes as data (`Reshape`, `Expand`, `Slice`) is computed from the input's
//! batch at run time where it depends on it. Each primitive op becomes its ONNX op;
//! where an ONNX op covers a whole layer, the layer's pattern of primitives becomes
//! that op: a convolution (`patches` → product with the kernel) is one `Conv`, ReLU
//! (`max(x, 0)`) one `Relu`. A broadcast that only feeds elementwise ops is left to
//! ONNX's own broadcasting. What ONNX cannot express for inference (random numbers,
//! scatters, quantized products) is an error that names the op.

mod batch;
mod ops;
mod patterns;
pub mod proto;
mod recurrent;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use dnnc_ir::Graph;
use dnnc_tensor::Tensor;

/// An exported model and what it holds.
pub struct Exported {
    /// The `ModelProto`, serialised.
    pub bytes: Vec<u8>,
    /// ONNX op types with how many nodes of each.
    pub ops: BTreeMap<String, usize>,
}

/// Why a graph could not be exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportError(pub String);

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExportError {}

impl From<String> for ExportError {
    fn from(s: String) -> ExportError {
        ExportError(s)
    }
}

/// A call of a standard-library layer in the graph: the recurrent ones (`LSTM`, `GRU`,
/// `RNN`) are written as ONNX's own op. The same as `dnnc_lower::LayerCall`, which this
/// crate does not depend on (it reads only the IR), so the session copies it over.
#[derive(Clone, Debug)]
pub struct LayerCall {
    pub layer: String,
    /// The binding path: its parameters are `PATH.weight_ih_l0`, ...
    pub path: String,
    pub inputs: Vec<dnnc_ir::NodeId>,
    /// `[seq, h]` or `[seq, h, c]`.
    pub outputs: Vec<dnnc_ir::NodeId>,
}

/// The ONNX opset the exporter writes.
pub const OPSET: i64 = 17;

/// Exports `small` and `large`, one inference graph lowered at batch sizes `batches`
/// (e.g. 2 and 3), with the parameters in `weights` (by state name), as model `name`;
/// `calls` are the layer calls of `small`.
pub fn export(
    name: &str,
    small: &Graph,
    large: &Graph,
    batches: (usize, usize),
    weights: &HashMap<String, Tensor>,
    calls: &[LayerCall],
) -> Result<Exported, ExportError> {
    let dims = batch::analyse(small, large, batches)?;
    ops::write(name, small, &dims, weights, calls)
}
