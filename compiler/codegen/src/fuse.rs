//! Greedy fusion of elementwise nodes into loops.
//!
//! Walking the schedule in topological order, each elementwise node starts a group and
//! absorbs the groups of those of its operands that are elementwise, of its shape, used
//! by it alone and not an output or update: such a value never needs a buffer. Groups
//! are trees, computed by one loop at the position of their root.

use std::collections::{HashMap, HashSet};

use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, UnaryOp};

/// A fused loop: its nodes in topological order (the last is the root, whose value the
/// loop stores) and the values it reads from buffers (its leaves), in first-use order.
#[derive(Clone)]
pub(crate) struct Group {
    pub members: Vec<NodeId>,
    pub leaves: Vec<NodeId>,
}

pub(crate) fn unary_supported(u: UnaryOp) -> bool {
    u != UnaryOp::Not
}

pub(crate) fn binary_supported(b: BinaryOp) -> bool {
    matches!(
        b,
        BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Pow
            | BinaryOp::Max
            | BinaryOp::Min
            | BinaryOp::Rem
    )
}

/// Whether node `id` is computed inside a loop: an `f32` supported unary or binary op,
/// or an `f32` broadcast of a one-element tensor (a splat).
pub(crate) fn is_elementwise(g: &Graph, id: NodeId) -> bool {
    if g.ty(id).dtype != DType::F32 {
        return false;
    }
    match &g.node(id).op {
        Op::Unary(u) => unary_supported(*u),
        Op::Binary(b) => binary_supported(*b),
        Op::Broadcast(_) => g.operands(id).first().map(|&o| g.ty(o).numel()) == Some(1),
        _ => false,
    }
}

/// Whether `id` is an `f32` broadcast of a one-element tensor.
fn is_splat(g: &Graph, id: NodeId) -> bool {
    matches!(g.node(id).op, Op::Broadcast(_)) && is_elementwise(g, id)
}

/// The fused groups of the live nodes in `order`, keyed by root; nodes in `exclude`
/// (computed by matmul epilogues) are left out.
pub(crate) fn plan(
    g: &Graph,
    order: &[NodeId],
    live: &HashSet<NodeId>,
    exclude: &HashSet<NodeId>,
) -> HashMap<NodeId, Group> {
    let pinned: HashSet<NodeId> = g
        .outputs()
        .iter()
        .chain(g.updates())
        .map(|(_, id)| *id)
        .collect();
    let mut users: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for &id in order {
        let mut ops = g.operands(id);
        ops.dedup();
        for o in ops {
            let us = users.entry(o).or_default();
            if !us.contains(&id) {
                us.push(id);
            }
        }
    }
    let pos: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();

    let mut groups: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for &id in order {
        if !is_elementwise(g, id) || exclude.contains(&id) {
            continue;
        }
        let mut members = Vec::new();
        if !matches!(g.node(id).op, Op::Broadcast(_)) {
            for o in g.operands(id) {
                // A splat is free to recompute: every loop that reads one gets its own
                // copy, and it is materialised only for users outside loops.
                if is_splat(g, o) && g.ty(o).shape == g.ty(id).shape && !exclude.contains(&o) {
                    if !members.contains(&o) {
                        members.push(o);
                    }
                    continue;
                }
                let fusable = g.ty(o).shape == g.ty(id).shape
                    && !pinned.contains(&o)
                    && users.get(&o).is_some_and(|u| u.as_slice() == [id]);
                if fusable {
                    if let Some(ms) = groups.remove(&o) {
                        for m in ms {
                            if !members.contains(&m) {
                                members.push(m);
                            }
                        }
                    }
                }
            }
        }
        members.push(id);
        groups.insert(id, members);
    }

    groups
        .into_iter()
        .filter(|(root, _)| live.contains(root))
        .map(|(root, mut members)| {
            members.sort_by_key(|m| pos[m]);
            let inside: HashSet<NodeId> = members.iter().copied().collect();
            let mut leaves = Vec::new();
            for &m in &members {
                for o in g.operands(m) {
                    if !inside.contains(&o) && !leaves.contains(&o) {
                        leaves.push(o);
                    }
                }
            }
            (root, Group { members, leaves })
        })
        .collect()
}
