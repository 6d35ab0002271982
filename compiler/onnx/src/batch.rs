//! Which dimensions of an inference graph grow with the batch: the graph lowered at
//! two batch sizes, node by node.

use std::collections::HashMap;

use dnnc_ir::{Graph, NodeId, Op};

use crate::ExportError;

/// A dimension of a value: fixed, or `k × batch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Batch(usize),
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
        // The same op with the same attributes, shapes aside: a constant that depends
        // on the batch (`mean` over it divides by B) has no symbolic form.
        let (oa_op, ob_op) = (&small.node(a).op, &large.node(b).op);
        if without_shapes(oa_op) != without_shapes(ob_op) {
            return Err(ExportError(format!(
                "`{}` differs between batch sizes {b1} and {b2} (it depends on the batch size), so it has no ONNX form with a symbolic batch",
                oa_op.name()
            )));
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
        // A slice's end may follow the batch only along an axis that is the batch's.
        if let (Op::Slice { ends: e1, .. }, Op::Slice { ends: e2, .. }) = (oa_op, ob_op) {
            let src = small.operands(a)[0];
            let along_batch = |axis: usize| {
                matches!(
                    dims.get(&src).map(|d: &Vec<Dim>| d[axis]),
                    Some(Dim::Batch(_))
                )
            };
            if e1
                .iter()
                .zip(e2)
                .enumerate()
                .any(|(axis, (x, y))| x != y && !along_batch(axis))
            {
                return Err(ExportError(
                    "a slice's end depends on the batch size along another axis, so it has no ONNX form with a symbolic batch".into(),
                ));
            }
        }
        dims.insert(a, d);
    }
    Ok(dims)
}

/// `op` with its shape attributes emptied (they may differ with the batch), and
/// everything else kept.
fn without_shapes(op: &Op) -> Op {
    let mut op = op.clone();
    match &mut op {
        Op::Input { shape, .. }
        | Op::State { shape, .. }
        | Op::Iota { shape, .. }
        | Op::Reshape(shape)
        | Op::Broadcast(shape)
        | Op::ScatterAdd { shape, .. }
        | Op::Random { shape, .. }
        | Op::Fold { shape, .. } => shape.clear(),
        Op::Slice { ends, .. } => ends.clear(),
        _ => {}
    }
    op
}
