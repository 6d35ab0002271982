//! Reverse-mode automatic differentiation over the graph.
//!
//! [`gradients`] walks the nodes the loss depends on in reverse topological order,
//! applies each op's derivative rule ([`crate::vjp`]) and sums the contributions
//! reaching each node. Only nodes on a path from a requested variable to the loss get
//! gradients, so no work is spent on data inputs or frozen parameters. Contributions
//! that are disjoint parts of the node's shape — the gradients of the slices an
//! unrolled `scan` reads one per step, or of an LSTM's four gates, each zero-padded to
//! the whole — are joined by one `concat` instead of a chain of sums of padded copies
//! (whose cost grows with the square of the number of steps).

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
    let mut grad = Contributions::default();
    let one = b.splat(1.0, loss)?;
    grad.add(loss, Scaled { g: one, s: 1.0 });
    for &n in order.iter().rev() {
        if !relevant.contains(&n) {
            continue;
        }
        let Some(Scaled { g: gn, s }) = grad.total(&mut b, n)? else {
            continue;
        };
        // A product with (or quotient by) a scalar constant, or a negation, only
        // scales the gradient: the factor travels on instead of becoming a node.
        if let Some((x, factor)) = scaling(b.g, n) {
            if relevant.contains(&x) {
                grad.add(
                    x,
                    Scaled {
                        g: gn,
                        s: s * factor,
                    },
                );
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
            grad.add(o, Scaled { g: go, s: 1.0 });
        }
    }
    wrt.iter()
        .map(|&w| match grad.total(&mut b, w)? {
            Some(Scaled { g, s: 1.0 }) => Ok(g),
            Some(Scaled { g, s }) => b.scale(g, s),
            None => b.splat(0.0, w),
        })
        .collect()
}

/// The gradient contributions reaching each node, summed once all have arrived (a
/// node's users come after it in topological order).
#[derive(Default)]
struct Contributions {
    parts: HashMap<NodeId, Vec<Scaled>>,
    totals: HashMap<NodeId, Scaled>,
}

impl Contributions {
    fn add(&mut self, node: NodeId, c: Scaled) {
        self.parts.entry(node).or_default().push(c);
    }

    /// The gradient of `node`: its contributions summed (disjoint padded parts joined
    /// first), or `None` when none reached it.
    fn total(&mut self, b: &mut B<'_>, node: NodeId) -> Result<Option<Scaled>, PassError> {
        if let Some(&t) = self.totals.get(&node) {
            return Ok(Some(t));
        }
        let Some(parts) = self.parts.remove(&node) else {
            return Ok(None);
        };
        let mut parts = join_disjoint_pads(b, parts)?.into_iter();
        let Some(mut total) = parts.next() else {
            return Ok(None);
        };
        for c in parts {
            total = sum(b, total, c)?;
        }
        self.totals.insert(node, total);
        Ok(Some(total))
    }
}

/// `(axis, start, piece)` when `n` is `piece` padded with zeros along `axis` alone.
fn axis_pad(g: &Graph, n: NodeId) -> Option<(usize, usize, NodeId)> {
    let Op::Pad { lo, hi, value } = &g.node(n).op else {
        return None;
    };
    let mut padded = (0..lo.len()).filter(|&i| lo[i] != 0 || hi[i] != 0);
    let axis = padded.next()?;
    (*value == 0.0 && padded.next().is_none()).then(|| (axis, lo[axis], g.operands(n)[0]))
}

/// `parts` with every group of two or more zero pads along the same axis, of the same
/// factor, whose pieces do not overlap, replaced by one `concat` of the pieces in
/// order (zeros between them): the same sum without a padded copy per part.
fn join_disjoint_pads(b: &mut B<'_>, parts: Vec<Scaled>) -> Result<Vec<Scaled>, PassError> {
    // Every contribution has the node's shape.
    let Some(full) = parts.first().map(|c| b.shape(c.g)) else {
        return Ok(parts);
    };
    // By (axis, factor's bits): the pads' offsets along the axis, their pieces and
    // their places among the parts (the sum keeps the parts' order; joined groups
    // come last).
    type Pieces = Vec<(usize, NodeId, (usize, Scaled))>;
    let mut groups: Vec<((usize, u64), Pieces)> = Vec::new();
    let mut rest = Vec::new();
    for (i, c) in parts.into_iter().enumerate() {
        let Some((axis, start, piece)) = axis_pad(b.g, c.g) else {
            rest.push((i, c));
            continue;
        };
        let key = (axis, c.s.to_bits());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push((start, piece, (i, c))),
            None => groups.push((key, vec![(start, piece, (i, c))])),
        }
    }
    for ((axis, s), mut pieces) in groups {
        pieces.sort_by_key(|&(start, _, _)| start);
        let len = |b: &B<'_>, p: NodeId| b.g.ty(p).shape[axis];
        let disjoint = pieces.windows(2).all(|w| w[0].0 + len(b, w[0].1) <= w[1].0);
        if pieces.len() < 2 || !disjoint {
            rest.extend(pieces.into_iter().map(|(_, _, c)| c));
            continue;
        }
        let mut joined = Vec::new();
        let mut at = 0;
        for &(start, piece, _) in &pieces {
            if start > at {
                joined.push(zeros(b, piece, &full, axis, start - at)?);
            }
            joined.push(piece);
            at = start + len(b, piece);
        }
        if at < full[axis] {
            joined.push(zeros(b, pieces[0].1, &full, axis, full[axis] - at)?);
        }
        let joined = Scaled {
            g: b.op(Op::Concat { axis }, &joined)?,
            s: f64::from_bits(s),
        };
        rest.push((usize::MAX, joined));
    }
    rest.sort_by_key(|&(i, _)| i);
    Ok(rest.into_iter().map(|(_, c)| c).collect())
}

/// Zeros of `like`'s element type and of `full`'s shape with `n` along `axis`.
fn zeros(
    b: &mut B<'_>,
    like: NodeId,
    full: &[usize],
    axis: usize,
    n: usize,
) -> Result<NodeId, PassError> {
    let mut shape = full.to_vec();
    shape[axis] = n;
    b.zeros(b.g.ty(like).dtype, &shape)
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

/// `prev + c`, keeping the factor of `prev`: `(g₁, s₁) + (g₂, s₂) = (g₁ + (s₂/s₁)·g₂,
/// s₁)`.
fn sum(b: &mut B<'_>, prev: Scaled, c: Scaled) -> Result<Scaled, PassError> {
    Ok(match prev {
        prev if prev.s == c.s => Scaled {
            g: b.bin(BinaryOp::Add, prev.g, c.g)?,
            s: prev.s,
        },
        prev if prev.s != 0.0 && (c.s / prev.s).is_finite() => {
            let term = b.scale(c.g, c.s / prev.s)?;
            Scaled {
                g: b.bin(BinaryOp::Add, prev.g, term)?,
                s: prev.s,
            }
        }
        prev => {
            let (a, t) = (b.scale(prev.g, prev.s)?, b.scale(c.g, c.s)?);
            Scaled {
                g: b.bin(BinaryOp::Add, a, t)?,
                s: 1.0,
            }
        }
    })
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
