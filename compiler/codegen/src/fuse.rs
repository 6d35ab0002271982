//! Greedy fusion of elementwise nodes into loops.
//!
//! Walking the schedule in topological order, each elementwise node starts a group and
//! absorbs the groups of those of its operands that are elementwise and of its shape.
//! An operand used by it alone and not an output or update never needs a buffer; one
//! that later steps read too (a pre-activation kept for the backward pass, the running
//! maximum of a pooling window) is stored on the way, so it is computed in the same
//! pass instead of being written by one loop and read back by the next. Groups are
//! trees, computed by one loop at the position of their root.
//!
//! Loop values are `f32`, except inside: a comparison of `f32` values whose users are
//! all `select`s with `f32` branches is computed in each select's loop as a lane mask
//! (ReLU's derivative `select(x > 0, dy, 0)` is one loop; max pooling's gradient routes
//! with one comparison through two selects), and a select whose condition is a boolean
//! buffer of its shape loads it (one byte per element) as a lane mask. Splats
//! (broadcasts of one element) are copied into every loop that reads them rather than
//! materialised.

use std::collections::{HashMap, HashSet};

use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, UnaryOp};

use crate::loop_ops::{self, BinaryCode, UnaryCode};

/// A fused loop: its nodes in topological order (the last is the root, whose value the
/// loop stores), the values it reads from buffers (its leaves), in first-use order, and
/// other members whose values it also stores (outputs and updates computed on the way,
/// such as Adam's moments on the way to the parameter).
#[derive(Clone)]
pub(crate) struct Group {
    pub members: Vec<NodeId>,
    pub leaves: Vec<NodeId>,
    pub stores: Vec<NodeId>,
}

/// The fused groups of a graph.
pub(crate) struct Fusion {
    /// By root.
    pub groups: HashMap<NodeId, Group>,
    /// Nodes computed inside some loop other than as its root (never materialised,
    /// unless they are also a root themselves, as splats can be).
    pub inner: HashSet<NodeId>,
}

pub(crate) fn unary_supported(u: UnaryOp) -> bool {
    !matches!(loop_ops::unary(u), UnaryCode::NotInLoops)
}

/// Whether `b` is arithmetic a loop computes (comparisons join loops only as the
/// condition of a `select`).
pub(crate) fn binary_supported(b: BinaryOp) -> bool {
    match loop_ops::binary(b) {
        BinaryCode::Add
        | BinaryCode::Sub
        | BinaryCode::Mul
        | BinaryCode::Div
        | BinaryCode::Max
        | BinaryCode::Min
        | BinaryCode::Rem
        | BinaryCode::Call(_) => true,
        BinaryCode::Compare(_) | BinaryCode::NotInLoops => false,
    }
}

/// Whether `b` compares two values.
pub(crate) fn is_comparison(b: BinaryOp) -> bool {
    matches!(loop_ops::binary(b), BinaryCode::Compare(_))
}

/// Whether node `id` can be the root of a loop: an `f32` supported unary or binary op,
/// a `select` between `f32` values, or an `f32` broadcast of a one-element tensor (a
/// splat). A select is only fused when its condition can be too (see [`plan`]).
pub(crate) fn is_elementwise(g: &Graph, id: NodeId) -> bool {
    if g.ty(id).dtype != DType::F32 {
        return false;
    }
    match &g.node(id).op {
        Op::Unary(u) => unary_supported(*u),
        Op::Binary(b) => binary_supported(*b),
        Op::Broadcast(_) => g.operands(id).first().map(|&o| g.ty(o).numel()) == Some(1),
        // `select` joins through `plan`'s condition rule; nothing else is elementwise.
        Op::Input { .. }
        | Op::State { .. }
        | Op::Const { .. }
        | Op::Iota { .. }
        | Op::Select
        | Op::Cast(_)
        | Op::Reshape(_)
        | Op::Transpose(_)
        | Op::Slice { .. }
        | Op::Concat { .. }
        | Op::Pad { .. }
        | Op::Reduce { .. }
        | Op::ArgMax { .. }
        | Op::ArgSort { .. }
        | Op::ArgMin { .. }
        | Op::MatMul
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::Random { .. }
        | Op::StopGradient
        | Op::Patches(_)
        | Op::Fold { .. } => false,
    }
}

/// Where a fused `select` gets its condition.
#[derive(Clone, Copy)]
enum Condition {
    /// An `f32` comparison the loop computes as a lane mask.
    Computed(NodeId),
    /// A boolean buffer (one byte per element) the loop loads.
    Loaded,
}

/// Whether group `root` computes `m`.
fn groups_contain(computed_in: &HashMap<NodeId, Vec<NodeId>>, m: NodeId, root: NodeId) -> bool {
    computed_in.get(&m).is_some_and(|gs| gs.contains(&root))
}

/// The most nodes a loop recomputes of another loop's values, per value.
const RECOMPUTE_LIMIT: usize = 12;

/// Rematerialisation: a loop that reads a value another loop computes on the way (a
/// GELU's `0.5·x` and `x/√2`, kept for its derivative) recomputes it from that loop's
/// leaves instead, when the recomputation is cheap arithmetic ([`cheap`]: no `erf`,
/// `exp` or division, which would cost more than the buffer they save) and reads at
/// most one buffer the loop did not read already (per value recomputed) — so the
/// earlier loop need not store the value and the later one need not read it back.
fn recompute_cones(
    g: &Graph,
    groups: &mut HashMap<NodeId, Vec<NodeId>>,
    ops_of: &dyn Fn(NodeId) -> Vec<NodeId>,
    pos: &HashMap<NodeId, usize>,
    pinned: &HashSet<NodeId>,
) {
    let mut group_of: HashMap<NodeId, NodeId> = HashMap::new();
    for (&root, members) in groups.iter() {
        for &m in members {
            if m != root && !is_splat(g, m) {
                group_of.insert(m, root);
            }
        }
    }
    let mut roots: Vec<NodeId> = groups.keys().copied().collect();
    roots.sort_by_key(|r| pos[r]);
    for root in roots {
        let mut members = groups[&root].clone();
        let mut inside: HashSet<NodeId> = members.iter().copied().collect();
        let leaves = |members: &[NodeId], inside: &HashSet<NodeId>| -> HashSet<NodeId> {
            members
                .iter()
                .flat_map(|&m| ops_of(m))
                .filter(|o| !inside.contains(o))
                .collect()
        };
        let mut changed = true;
        while changed {
            changed = false;
            let current = leaves(&members, &inside);
            for &o in &current {
                let Some(&theirs) = group_of.get(&o) else {
                    continue;
                };
                // Only what the loop reads element by element (not a splat's operand,
                // which a loop reads as one element).
                if theirs == root
                    || pinned.contains(&o)
                    || g.ty(o).dtype != DType::F32
                    || g.ty(o).shape != g.ty(root).shape
                {
                    continue;
                }
                // `o` and what it is computed from inside its own loop.
                let mut cone = vec![o];
                let mut cone_leaves = HashSet::new();
                let mut k = 0;
                while k < cone.len() && cone.len() <= RECOMPUTE_LIMIT {
                    for p in ops_of(cone[k]) {
                        // Splats and the comparisons loops compute (a select's lane
                        // mask) are computed in every loop that reads them; a boolean
                        // buffer a select loads (in no loop) is loaded here too.
                        let member = group_of.get(&p) == Some(&theirs)
                            || is_splat(g, p)
                            || (g.ty(p).dtype != DType::F32 && group_of.contains_key(&p));
                        if member && !cone.contains(&p) {
                            cone.push(p);
                        } else if !member {
                            cone_leaves.insert(p);
                        }
                    }
                    k += 1;
                }
                // Outputs and updates on the way are stored by their own loop anyway.
                if cone.len() > RECOMPUTE_LIMIT
                    || !cone.iter().all(|&c| cheap(g, c) && !pinned.contains(&c))
                {
                    continue;
                }
                let new_reads = cone_leaves
                    .iter()
                    .filter(|&&l| {
                        // A splat's one element costs nothing to read.
                        !current.contains(&l)
                            && !inside.contains(&l)
                            && !is_splat(g, l)
                            && g.ty(l).numel() > 1
                    })
                    .count();
                if new_reads > 1 {
                    continue;
                }
                for c in cone {
                    if inside.insert(c) {
                        members.push(c);
                    }
                }
                changed = true;
                break;
            }
        }
        members.sort_by_key(|m| pos[m]);
        groups.insert(root, members);
    }
}

/// Whether node `id` is cheap to compute again: a splat, a sum, difference, product,
/// maximum or minimum, a negation or absolute value, a comparison or a `select` —
/// nothing a loop spends many instructions on (`exp`, `erf`, a division, ...).
fn cheap(g: &Graph, id: NodeId) -> bool {
    match &g.node(id).op {
        Op::Broadcast(_) => is_splat(g, id),
        Op::Unary(u) => matches!(u, UnaryOp::Neg | UnaryOp::Abs),
        Op::Binary(b) => {
            is_comparison(*b)
                || matches!(
                    b,
                    BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Max | BinaryOp::Min
                )
        }
        Op::Select => true,
        _ => false,
    }
}

/// Whether `id` is an `f32` broadcast of a one-element tensor.
fn is_splat(g: &Graph, id: NodeId) -> bool {
    matches!(g.node(id).op, Op::Broadcast(_)) && is_elementwise(g, id)
}

/// The fused groups of the live nodes in `order`; nodes in `exclude` (computed by
/// matmul epilogues) are left out.
pub(crate) fn plan(
    g: &Graph,
    order: &[NodeId],
    live: &HashSet<NodeId>,
    exclude: &HashSet<NodeId>,
) -> Fusion {
    let pinned: HashSet<NodeId> = g
        .outputs()
        .iter()
        .chain(g.updates())
        .map(|(_, id)| *id)
        .collect();
    // Every node's operands, looked up once (the graph computes them per call).
    let operands: HashMap<NodeId, Vec<NodeId>> =
        order.iter().map(|&id| (id, g.operands(id))).collect();
    let ops_of = |id: NodeId| -> Vec<NodeId> {
        operands.get(&id).cloned().unwrap_or_else(|| g.operands(id))
    };
    let mut users: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for &id in order {
        for &o in &operands[&id] {
            let us = users.entry(o).or_default();
            // Users arrive in order, each with all its operands at once.
            if us.last() != Some(&id) {
                us.push(id);
            }
        }
    }
    let pos: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    // A select fuses when its condition is an `f32` comparison of its shape that only
    // selects use (as their condition; each of their loops computes it), or a boolean
    // buffer of its shape (a causal mask broadcast over heads), which its loop loads.
    // Decided once per comparison: one comparison may guard thousands of selects.
    let mut condition_ok: HashMap<NodeId, bool> = HashMap::new();
    let mut fusable_select = |id: NodeId| -> Option<Condition> {
        if !matches!(g.node(id).op, Op::Select) || g.ty(id).dtype != DType::F32 {
            return None;
        }
        let c = operands[&id][0];
        if g.ty(c).shape != g.ty(id).shape {
            return None;
        }
        let computed = *condition_ok.entry(c).or_insert_with(|| {
            matches!(g.node(c).op, Op::Binary(b) if is_comparison(b))
                && ops_of(c).iter().all(|&o| g.ty(o).dtype == DType::F32)
                && users[&c].iter().all(|&u| {
                    let uo = ops_of(u);
                    matches!(g.node(u).op, Op::Select)
                        && uo[0] == c
                        && !uo[1..].contains(&c)
                        && g.ty(u).dtype == DType::F32
                        && g.ty(u).shape == g.ty(c).shape
                })
                && !pinned.contains(&c)
                && !exclude.contains(&c)
        });
        if computed {
            Some(Condition::Computed(c))
        } else {
            (g.ty(c).dtype == DType::Bool).then_some(Condition::Loaded)
        }
    };

    let mut groups: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for &id in order {
        if exclude.contains(&id) {
            continue;
        }
        let cond = fusable_select(id);
        if !is_elementwise(g, id) && cond.is_none() {
            continue;
        }
        let mut members: Vec<NodeId> = Vec::new();
        let add = |members: &mut Vec<NodeId>, m: NodeId| {
            if !members.contains(&m) {
                members.push(m);
            }
        };
        // The comparison's own operands are absorbed like the select's.
        let mut sources = Vec::new();
        match cond {
            Some(Condition::Computed(c)) => {
                add(&mut members, c);
                sources.extend(ops_of(c));
                sources.extend(&operands[&id][1..]);
            }
            Some(Condition::Loaded) => sources.extend(&operands[&id][1..]),
            None if !matches!(g.node(id).op, Op::Broadcast(_)) => {
                sources.extend(operands[&id].iter().copied());
            }
            None => {}
        }
        for o in sources {
            if g.ty(o).shape != g.ty(id).shape || exclude.contains(&o) {
                continue;
            }
            // A splat is free to recompute: every loop that reads one gets its own copy.
            if is_splat(g, o) {
                add(&mut members, o);
                continue;
            }
            let user = match cond {
                // A comparison several selects share is computed in each of their
                // loops, so what it compares must be in buffers.
                Some(Condition::Computed(c)) if ops_of(c).contains(&o) && users[&c].len() > 1 => {
                    continue
                }
                Some(Condition::Computed(c)) if ops_of(c).contains(&o) => c,
                _ => id,
            };
            // An operand read later by other steps too is computed here and stored on
            // the way (a pre-activation kept for the backward pass): one pass instead
            // of two. Every member of its group that is read outside must be read
            // after this loop.
            let Some(theirs) = groups.get(&o) else {
                continue;
            };
            let outside_later = theirs.iter().all(|&m| {
                // Splats and comparisons are recomputed by every loop that reads them.
                is_splat(g, m)
                    || g.ty(m).dtype != DType::F32
                    || users.get(&m).is_none_or(|us| {
                        // Outputs and updates stay read by this loop alone.
                        let after = !pinned.contains(&m);
                        us.iter().all(|&u| {
                            u == id
                                || u == user
                                || theirs.contains(&u)
                                || (after && pos[&u] > pos[&id])
                        })
                    })
            });
            if outside_later {
                for m in groups.remove(&o).expect("checked") {
                    add(&mut members, m);
                }
            }
        }
        members.push(id);
        groups.insert(id, members);
    }

    let mut groups: HashMap<NodeId, Vec<NodeId>> = groups
        .into_iter()
        .filter(|(root, _)| live.contains(root))
        .collect();
    recompute_cones(g, &mut groups, &ops_of, &pos, &pinned);
    // The groups each node is computed in (more than one when recomputed).
    let mut computed_in: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for (&root, members) in &groups {
        for &m in members {
            computed_in.entry(m).or_default().push(root);
        }
    }
    let mut inner = HashSet::new();
    let groups = groups
        .into_iter()
        .map(|(root, mut members)| {
            members.sort_by_key(|m| pos[m]);
            let inside: HashSet<NodeId> = members.iter().copied().collect();
            let mut leaves = Vec::new();
            let mut stores = Vec::new();
            for &m in &members {
                if m != root {
                    inner.insert(m);
                    // Read outside: by a step that is no loop, or by a loop that does
                    // not compute `m` itself.
                    let read_outside = users.get(&m).is_some_and(|us| {
                        us.iter().any(|u| {
                            !inside.contains(u)
                                && computed_in.get(u).is_none_or(|gs| {
                                    gs.iter().any(|r| !groups_contain(&computed_in, m, *r))
                                })
                        })
                    });
                    let recomputed = is_splat(g, m) || g.ty(m).dtype != DType::F32;
                    if (pinned.contains(&m) || read_outside) && !recomputed {
                        stores.push(m);
                    }
                }
                for o in ops_of(m) {
                    if !inside.contains(&o) && !leaves.contains(&o) {
                        leaves.push(o);
                    }
                }
            }
            (
                root,
                Group {
                    members,
                    leaves,
                    stores,
                },
            )
        })
        .collect();
    Fusion { groups, inner }
}
