//! Which dimensions of an inference graph grow with the batch: the graph lowered at
//! two batch sizes, node by node.

use std::collections::HashMap;
use std::mem::discriminant;

use dnnc_ir::{Graph, NodeId};

use crate::ExportError;

/// A dimension of a value: fixed, or `k × batch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Batch(usize),
}

impl Dim {
    /// Its size at batch `b`.
    pub fn at(self, b: usize) -> usize {
        match self {
            Dim::Fixed(n) => n,
            Dim::Batch(k) => k * b,
        }
    }
}

/// The dimensions of every node of `small` (lowered at batch `batches.0`), found by
/// comparing it with `large` (the same model at batch `batches.1`).
pub fn analyse(
    small: &Graph,
    large: &Graph,
    (b1, b2): (usize, usize),
) -> Result<HashMap<NodeId, Vec<Dim>>, ExportError> {
    let err = |e: dnnc_ir::IrError| ExportError(e.to_string());
    let (o1, o2) = (
        small.topo_order().map_err(err)?,
        large.topo_order().map_err(err)?,
    );
    let differs = || {
        ExportError(
            "the inference graph's structure depends on the batch size, so it has no ONNX form with a symbolic batch"
                .into(),
        )
    };
    if o1.len() != o2.len() {
        return Err(differs());
    }
    let position: HashMap<NodeId, usize> = o2.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut dims = HashMap::new();
    for (&a, &b) in o1.iter().zip(&o2) {
        if discriminant(&small.node(a).op) != discriminant(&large.node(b).op) {
            return Err(differs());
        }
        let (oa, ob) = (small.operands(a), large.operands(b));
        let same_operands = oa.len() == ob.len()
            && oa
                .iter()
                .zip(&ob)
                .all(|(x, y)| o1.get(position[y]) == Some(x));
        if !same_operands {
            return Err(differs());
        }
        let (sa, sb) = (&small.ty(a).shape, &large.ty(b).shape);
        if sa.len() != sb.len() {
            return Err(differs());
        }
        let mut d = Vec::with_capacity(sa.len());
        for (&x, &y) in sa.iter().zip(sb) {
            if x == y {
                d.push(Dim::Fixed(x));
            } else if x % b1 == 0 && x / b1 * b2 == y {
                d.push(Dim::Batch(x / b1));
            } else {
                return Err(ExportError(format!(
                    "a dimension of `{}` is {x} at batch {b1} and {y} at batch {b2}: not a multiple of the batch",
                    small.node(a).op.name()
                )));
            }
        }
        dims.insert(a, d);
    }
    Ok(dims)
}
