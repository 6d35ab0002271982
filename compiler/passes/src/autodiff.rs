//! Reverse-mode automatic differentiation over the graph.
//!
//! [`gradients`] walks the nodes the loss depends on in reverse topological order,
//! applies each op's derivative rule ([`crate::vjp`]) and sums the contributions
//! reaching each node. Only nodes on a path from a requested variable to the loss get
//! gradients, so no work is spent on data inputs or frozen parameters.

use std::collections::{HashMap, HashSet};

use dnnc_ir::{BinaryOp, Graph, NodeId};

use crate::error::PassError;
use crate::vjp::{vjp, B};

/// The gradients of the scalar `loss` with respect to each of `wrt`, in order.
/// A variable the loss does not depend on gets a zero gradient.
pub fn gradients(g: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, PassError> {
    if !g.ty(loss).shape.is_empty() {
        return Err(PassError::Missing(format!(
            "the loss must be a scalar, found {}",
            g.ty(loss)
        )));
    }
    // Nodes between the variables and the loss.
    let mut reaches_loss: HashSet<NodeId> = HashSet::new();
    let mut stack = vec![loss];
    while let Some(n) = stack.pop() {
        if reaches_loss.insert(n) {
            stack.extend(g.operands(n));
        }
    }
    let mut from_vars: HashSet<NodeId> = wrt.iter().copied().collect();
    let order = g.topo_order()?;
    for &n in &order {
        if g.operands(n).iter().any(|o| from_vars.contains(o)) {
            from_vars.insert(n);
        }
    }
    let relevant: HashSet<NodeId> = reaches_loss.intersection(&from_vars).copied().collect();

    let mut b = B { g };
    let mut grad: HashMap<NodeId, NodeId> = HashMap::new();
    let one = b.splat(1.0, loss)?;
    grad.insert(loss, one);
    for &n in order.iter().rev() {
        if !relevant.contains(&n) {
            continue;
        }
        let Some(&gn) = grad.get(&n) else { continue };
        let operands = b.g.operands(n);
        let gs = vjp(&mut b, n, gn)?;
        for (o, go) in operands.into_iter().zip(gs) {
            let Some(go) = go else { continue };
            if !relevant.contains(&o) {
                continue;
            }
            let total = match grad.get(&o) {
                Some(&prev) => b.bin(BinaryOp::Add, prev, go)?,
                None => go,
            };
            grad.insert(o, total);
        }
    }
    wrt.iter()
        .map(|&w| match grad.get(&w) {
            Some(&d) => Ok(d),
            None => b.splat(0.0, w),
        })
        .collect()
}
