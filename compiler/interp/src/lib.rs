//! The reference interpreter: plain Rust evaluation of the graph IR, the oracle that
//! every backend is tested against.
//!
//! [`run`] evaluates a [`Graph`] on named inputs and states and returns its named outputs
//! and state updates. It walks [`Graph::topo_order`], evaluates only the nodes that an
//! output or update needs ([`Graph::live`]), and frees each value after its last use.
//!
//! The rule of every op lives in one function, [`eval::eval`], with one `match` arm per
//! op. The helpers it calls are small and separate: [`index`] (strides, broadcasting and
//! transposition index maps), [`data`] (moving elements of any dtype), [`math`] (erf,
//! floor division, NaN-propagating max/min), [`matmul`] (the one loop nest worth making
//! fast) and [`rng`] (the counter-based random numbers, specified bit for bit).
//!
//! Bad inputs never panic: a missing input or state, or one whose dtype, shape or data
//! differ from what the graph declares, is an [`InterpError`] naming it, and so are
//! run-time failures such as an out-of-range gather index or an integer division by zero.

pub mod data;
pub mod eval;
pub mod matmul;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;

use dnnc_ir::{Graph, NodeId, TensorType};

/// The ops' scalar semantics, shared with constant folding and the backends.
pub use dnnc_ir::scalar as math;

/// The counter-based random numbers, shared with the compiled backends.
pub use dnnc_ir::rng;
use dnnc_tensor::Tensor;

pub use eval::{eval, Env};

/// What a run produced: the graph's outputs and its state updates, by name, in the
/// order the graph declares them.
#[derive(Clone, Debug, PartialEq)]
pub struct Outputs {
    pub outputs: Vec<(String, Tensor)>,
    pub updates: Vec<(String, Tensor)>,
}

impl Outputs {
    /// The output called `name`.
    pub fn output(&self, name: &str) -> Option<&Tensor> {
        self.outputs.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The new value of the state called `name`.
    pub fn update(&self, name: &str) -> Option<&Tensor> {
        self.updates.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// Why a run failed.
#[derive(Clone, Debug, PartialEq)]
pub enum InterpError {
    /// The graph reads an input or state (`what`) that was not supplied.
    Missing { what: &'static str, name: String },
    /// A supplied input or state does not have the declared dtype or shape, or its data
    /// does not fit them.
    Mismatch {
        what: &'static str,
        name: String,
        expected: TensorType,
        found: String,
    },
    /// An op failed at run time (an index out of range, an integer division by zero).
    Op {
        node: usize,
        kind: &'static str,
        message: String,
    },
    /// An integer input holds a value outside the range the graph indexes with it
    /// (a class label of `one_hot`, a row of an embedding).
    OutOfRange(dnnc_ir::IndexOutOfRange),
    /// The graph itself is malformed (a cycle, operands that break a shape rule, an
    /// output naming a removed node): the verifier would have rejected it.
    Graph(String),
}

impl fmt::Display for InterpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterpError::Missing { what, name } => write!(f, "missing {what} `{name}`"),
            InterpError::Mismatch {
                what,
                name,
                expected,
                found,
            } => {
                write!(f, "{what} `{name}` should be {expected}, found {found}")
            }
            InterpError::Op {
                node,
                kind,
                message,
            } => write!(f, "%{node} (`{kind}`): {message}"),
            InterpError::OutOfRange(e) => e.fmt(f),
            InterpError::Graph(message) => write!(f, "malformed graph: {message}"),
        }
    }
}

impl std::error::Error for InterpError {}

/// Evaluates `g` on `inputs` and `states` (looked up by the names of its `input` and
/// `state` ops; extra entries are ignored) and returns its outputs and state updates.
pub fn run(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    states: &HashMap<String, Tensor>,
) -> Result<Outputs, InterpError> {
    run_counting(g, inputs, states).map(|(outputs, _)| outputs)
}

/// [`run`], also returning the largest number of values held at once (for tests of
/// freeing after last use).
pub(crate) fn run_counting(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    states: &HashMap<String, Tensor>,
) -> Result<(Outputs, usize), InterpError> {
    let live = g.live();
    let order: Vec<NodeId> = g
        .topo_order()
        .map_err(|e| InterpError::Graph(e.to_string()))?
        .into_iter()
        .filter(|n| live.contains(n))
        .collect();

    // How many more times each value will be read; outputs and updates are kept to the end.
    let mut uses: HashMap<NodeId, usize> = HashMap::new();
    for &id in &order {
        for o in g.operands(id) {
            *uses.entry(o).or_default() += 1;
        }
    }
    let pinned: HashSet<NodeId> = g
        .outputs()
        .iter()
        .chain(g.updates())
        .map(|(_, id)| *id)
        .collect();

    for (name, limit) in g.index_limits() {
        if let Some(values) = inputs
            .get(name)
            .filter(|t| t.dtype.is_int())
            .map(|t| t.to_i64_vec())
        {
            dnnc_ir::check_index_limit(name, &values, *limit).map_err(InterpError::OutOfRange)?;
        }
    }
    let env = Env { inputs, states };
    let mut values: HashMap<NodeId, Tensor> = HashMap::new();
    let mut peak = 0;
    for &id in &order {
        let operands = g.operands(id);
        let result = {
            let mut args = Vec::with_capacity(operands.len());
            for o in &operands {
                let v = values.get(o).ok_or_else(|| {
                    InterpError::Graph(format!(
                        "%{} reads %{}, which has no value",
                        id.raw(),
                        o.raw()
                    ))
                })?;
                args.push(v);
            }
            eval(id, g.node(id), &args, &env)?
        };
        for o in operands {
            if let Some(n) = uses.get_mut(&o) {
                *n -= 1;
                if *n == 0 && !pinned.contains(&o) {
                    values.remove(&o);
                }
            }
        }
        values.insert(id, result);
        peak = peak.max(values.len());
    }

    let collect =
        |named: &[(String, NodeId)], what: &str| -> Result<Vec<(String, Tensor)>, InterpError> {
            named
                .iter()
                .map(|(name, id)| match values.get(id) {
                    Some(t) => Ok((name.clone(), t.clone())),
                    None => Err(InterpError::Graph(format!(
                        "{what} `{name}` names %{}, which is not in the graph",
                        id.raw()
                    ))),
                })
                .collect()
        };
    let outputs = Outputs {
        outputs: collect(g.outputs(), "output")?,
        updates: collect(g.updates(), "update of")?,
    };
    Ok((outputs, peak))
}
