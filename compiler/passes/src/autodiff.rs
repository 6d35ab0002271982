//! Reverse-mode automatic differentiation over the graph.
//!
//! [`gradients`] walks the nodes the loss depends on in reverse topological order,
//! applies each op's derivative rule ([`crate::vjp`]) and sums the contributions
//! reaching each node. Only nodes on a path from a requested variable to the loss get
//! gradients, so no work is spent on data inputs or frozen parameters.

use std::collections::{HashMap, HashSet};

use dnnc_ir::{BinaryOp, Graph, NodeId, Op, UnaryOp};

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
    let mut grad: HashMap<NodeId, Scaled> = HashMap::new();
    let one = b.splat(1.0, loss)?;
    grad.insert(loss, Scaled { g: one, s: 1.0 });
    for &n in order.iter().rev() {
        if !relevant.contains(&n) {
            continue;
        }
        let Some(&Scaled { g: gn, s }) = grad.get(&n) else {
            continue;
        };
        // A product with (or quotient by) a scalar constant, or a negation, only
        // scales the gradient: the factor travels on instead of becoming a node.
        if let Some((x, factor)) = scaling(b.g, n) {
            if relevant.contains(&x) {
                add(
                    &mut b,
                    &mut grad,
                    x,
                    Scaled {
                        g: gn,
                        s: s * factor,
                    },
                )?;
            }
            continue;
        }
        // Any other rule gets the gradient with its factor applied, here, where the
        // gradient is smallest (next to the loss).
        let gn = if s == 1.0 { gn } else { b.scale(gn, s)? };
        let operands = b.g.operands(n);
        let gs = vjp(&mut b, n, gn)?;
        for (o, go) in operands.into_iter().zip(gs) {
            let Some(go) = go else { continue };
            if !relevant.contains(&o) {
                continue;
            }
            add(&mut b, &mut grad, o, Scaled { g: go, s: 1.0 })?;
        }
    }
    wrt.iter()
        .map(|&w| match grad.get(&w) {
            Some(&Scaled { g, s: 1.0 }) => Ok(g),
            Some(&Scaled { g, s }) => b.scale(g, s),
            None => b.splat(0.0, w),
        })
        .collect()
}

/// A gradient `s · g`: the node `g` times a constant factor not yet applied. Products
/// with constants and negations (`mean`'s `1/n`, a loss's weights, `-`) only multiply
/// the factor; it is applied once, before the next derivative rule. So two gradients
/// of one subgraph — a `grad` in a loss and the training step's own — are the same
/// nodes (merged by CSE) when the products of the constants between each seed and the
/// subgraph agree: in adversarial training, `let clean = 0.5 * cross_entropy(...)`,
/// `fgsm(clean, x, ...)` and `loss = clean + 0.5 * ...` share the clean backward pass.
#[derive(Clone, Copy)]
struct Scaled {
    g: NodeId,
    s: f64,
}

/// Adds the contribution `c` to the gradient of `node`, keeping the factor of the
/// first contribution: `(g₁, s₁) + (g₂, s₂) = (g₁ + (s₂/s₁)·g₂, s₁)`.
fn add(
    b: &mut B<'_>,
    grad: &mut HashMap<NodeId, Scaled>,
    node: NodeId,
    c: Scaled,
) -> Result<(), PassError> {
    let total = match grad.get(&node) {
        None => c,
        Some(&prev) if prev.s == c.s => Scaled {
            g: b.bin(BinaryOp::Add, prev.g, c.g)?,
            s: prev.s,
        },
        Some(&prev) if prev.s != 0.0 && (c.s / prev.s).is_finite() => {
            let term = b.scale(c.g, c.s / prev.s)?;
            Scaled {
                g: b.bin(BinaryOp::Add, prev.g, term)?,
                s: prev.s,
            }
        }
        Some(&prev) => {
            let (a, t) = (b.scale(prev.g, prev.s)?, b.scale(c.g, c.s)?);
            Scaled {
                g: b.bin(BinaryOp::Add, a, t)?,
                s: 1.0,
            }
        }
    };
    grad.insert(node, total);
    Ok(())
}

/// `(x, k)` when `node` is `k · x` for a float `x` and a constant `k`: `x * c`,
/// `c * x`, `x / c` with `c` a scalar constant (perhaps broadcast), or `-x`.
fn scaling(g: &Graph, node: NodeId) -> Option<(NodeId, f64)> {
    let xs = g.operands(node);
    if !g.ty(node).dtype.is_float() {
        return None;
    }
    let constant = |n: NodeId| -> Option<f64> {
        match &g.node(n).op {
            Op::Const { value, .. } => Some(*value),
            Op::Broadcast(_) => match &g.node(g.operands(n)[0]).op {
                Op::Const { value, .. } => Some(*value),
                _ => None,
            },
            _ => None,
        }
    };
    let found = match g.node(node).op {
        Op::Unary(UnaryOp::Neg) => Some((xs[0], -1.0)),
        Op::Binary(BinaryOp::Mul) => match (constant(xs[0]), constant(xs[1])) {
            (None, Some(k)) => Some((xs[0], k)),
            (Some(k), None) => Some((xs[1], k)),
            _ => None,
        },
        Op::Binary(BinaryOp::Div) => constant(xs[1])
            .filter(|k| *k != 0.0)
            .map(|k| (xs[0], 1.0 / k)),
        _ => None,
    };
    found.filter(|(x, _)| g.ty(*x) == g.ty(node))
}
