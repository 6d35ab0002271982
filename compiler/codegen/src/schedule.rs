//! From a graph to a schedule: the steps that compute its live values, in topological
//! order, over abstract values that the memory planner ([`crate::plan`]) then places.
//!
//! Decisions made here:
//! - chains of `f32` elementwise nodes fuse into loops ([`crate::fuse`]);
//! - a `transpose` of the last two axes feeding a `matmul` is read in place through
//!   swapped strides (the backward matmuls' `Wᵀ` and `xᵀ` are never materialised unless
//!   something else uses them);
//! - a `matmul` whose only user adds a bias broadcast along rows (perhaps through a
//!   reshape that keeps the last axis: a `Dense` over `[B, T, inp]`), and perhaps a
//!   ReLU after that, stores `max(A·B + b, 0)` directly (the epilogue of
//!   [`dnnc_kernels::Gemm`]);
//! - `reshape` and `stop_gradient` share their operand's value;
//! - updates and outputs that are a `state` itself are copied first, so in-place
//!   updates of other states cannot change them.

use std::collections::{HashMap, HashSet};

use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op};
use dnnc_tensor::Data;

use dnnc_exec::program::{Affine, KernelDesc as Kernel, Operand};
use dnnc_ir::layout::{
    broadcast_strides, pad_strides, reduce_strides, reshape_strides, slice_strides, split_at_axis,
    strides, transpose_strides,
};

/// A transpose that this many products read is materialised once instead of being
/// read in place by each.
const TRANSPOSE_ONCE_READERS: usize = 4;

use crate::fuse::{self, Group};

/// The affine map `offset + Σ i_k·strides[k]` over `shape`.
fn affine(shape: &[usize], strides: &[usize], offset: usize) -> Affine {
    Affine {
        shape: shape.to_vec(),
        strides: strides.to_vec(),
        offset,
    }
}

/// Where a value's storage comes from.
pub(crate) enum Role {
    /// Computed by a step; placed in the arena.
    Temp,
    Input(String),
    State(String),
    /// Filled at compile time.
    Const(Data),
}

/// A value that needs storage.
pub(crate) struct Val {
    pub dtype: DType,
    pub len: usize,
    pub role: Role,
}

/// One step of the schedule.
pub(crate) enum Work {
    /// A fused elementwise loop over `n` elements reading `leaves` and writing `out`
    /// (and `stores`, the values of the group's stored members).
    Loop {
        group: Group,
        leaves: Vec<usize>,
        stores: Vec<usize>,
        out: usize,
        n: usize,
    },
    /// A Rust kernel.
    Kernel {
        k: Kernel,
        args: Vec<usize>,
        out: usize,
    },
    /// `out = [relu](a·b [+ bias])` for `dims = [batch, m, k, n]`; with `bf16`, of
    /// the operands rounded to `bf16` as the kernel packs them.
    MatMul {
        a: Operand,
        b: Operand,
        out: usize,
        dims: [usize; 4],
        bias: Option<usize>,
        relu: bool,
        bf16: bool,
    },
    /// `dst = src`.
    Copy { src: usize, dst: usize },
}

impl Work {
    /// The values the step reads.
    pub(crate) fn reads(&self) -> Vec<usize> {
        match self {
            Work::Loop { leaves, .. } => leaves.clone(),
            Work::Kernel { args, .. } => args.clone(),
            Work::MatMul { a, b, bias, .. } => {
                let mut r = vec![a.val, b.val];
                r.extend(bias);
                r
            }
            Work::Copy { src, .. } => vec![*src],
        }
    }

    /// The values the step writes (the main result last).
    pub(crate) fn writes(&self) -> Vec<usize> {
        match self {
            Work::Loop { stores, out, .. } => {
                let mut w = stores.clone();
                w.push(*out);
                w
            }
            Work::Kernel { out, .. } | Work::MatMul { out, .. } | Work::Copy { dst: out, .. } => {
                vec![*out]
            }
        }
    }
}

/// A named value the caller reads or writes.
pub(crate) struct Port {
    pub name: String,
    pub val: usize,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// The schedule of a graph.
pub(crate) struct Schedule {
    pub vals: Vec<Val>,
    pub steps: Vec<Work>,
    pub inputs: Vec<Port>,
    pub states: Vec<Port>,
    pub outputs: Vec<Port>,
    /// `(state port index, new value)`.
    pub updates: Vec<(usize, usize)>,
}

/// Whether `axes` (sorted) are consecutive.
fn contiguous(axes: &[usize]) -> bool {
    !axes.is_empty() && axes.windows(2).all(|w| w[1] == w[0] + 1)
}

/// The `[N, C, H, W]` of a window op's image.
fn nchw(shape: &[usize]) -> Result<[usize; 4], String> {
    shape
        .try_into()
        .map_err(|_| format!("codegen: a window over {shape:?}, not `[N, C, H, W]`"))
}

/// A matmul with what its epilogue absorbs.
struct Fused {
    matmul: NodeId,
    /// A reshape between the product and the bias's `add` that keeps the last axis
    /// (a `Dense` over `[B, T, inp]`: the product is `[B·T, out]`); it shares the
    /// stored value.
    reshape: Option<NodeId>,
    /// The bias vector (the broadcast's operand) and the `add` it came with.
    bias: Option<(NodeId, NodeId)>,
    relu: Option<NodeId>,
}

impl Fused {
    /// The node whose value the matmul step stores.
    fn result(&self) -> NodeId {
        self.relu
            .or(self.bias.map(|(_, add)| add))
            .unwrap_or(self.matmul)
    }
}

struct Users {
    of: HashMap<NodeId, Vec<NodeId>>,
    pinned: HashSet<NodeId>,
}

impl Users {
    fn only(&self, id: NodeId) -> Option<NodeId> {
        match self.of.get(&id).map(Vec::as_slice) {
            Some([u]) if !self.pinned.contains(&id) => Some(*u),
            _ => None,
        }
    }
}

/// Whether `id` is a broadcast of a vector of `n` elements along every axis but the
/// last (a bias added to each row).
fn row_broadcast(g: &Graph, id: NodeId, n: usize) -> Option<NodeId> {
    let Op::Broadcast(to) = &g.node(id).op else {
        return None;
    };
    let src = g.operands(id)[0];
    let s = broadcast_strides(&g.ty(src).shape, to);
    let last = s.len().checked_sub(1)?;
    let ok = g.ty(src).numel() == n
        && to.last() == Some(&n)
        && (n == 1 || s[last] == 1)
        && s[..last].iter().all(|&x| x == 0);
    ok.then_some(src)
}

/// Whether `id` is `max(x, 0)` or `max(0, x)` with a splatted zero; returns `x`'s
/// position.
fn is_relu_of(g: &Graph, id: NodeId, x: NodeId) -> bool {
    if !matches!(g.node(id).op, Op::Binary(BinaryOp::Max)) {
        return false;
    }
    let ops = g.operands(id);
    let other = if ops[0] == x { ops[1] } else { ops[0] };
    let zero = |n: NodeId| matches!(g.node(n).op, Op::Const { value, .. } if value == 0.0);
    ops.contains(&x)
        && ops[0] != ops[1]
        && match &g.node(other).op {
            Op::Broadcast(_) => zero(g.operands(other)[0]),
            _ => zero(other) && g.ty(other).shape == g.ty(x).shape,
        }
}

/// Finds the matmuls whose bias and ReLU can be fused, keyed by the node they store.
fn epilogues(g: &Graph, order: &[NodeId], users: &Users) -> Vec<Fused> {
    let mut out = Vec::new();
    for &m in order {
        if !matches!(g.node(m).op, Op::MatMul) {
            continue;
        }
        if g.ty(m).dtype != DType::F32 {
            // `i8` products (into `i32`) have no epilogue.
            out.push(Fused {
                matmul: m,
                reshape: None,
                bias: None,
                relu: None,
            });
            continue;
        }
        let n = *g
            .ty(m)
            .shape
            .last()
            .expect("matmul results have rank 2 or more");
        let mut f = Fused {
            matmul: m,
            reshape: None,
            bias: None,
            relu: None,
        };
        // The product, or a reshape of it that keeps the last axis, read by the add.
        let through = users.only(m).filter(|&r| {
            matches!(g.node(r).op, Op::Reshape(_))
                && g.ty(r).shape.last() == Some(&n)
                && users.only(r).is_some()
        });
        let x = through.unwrap_or(m);
        if let Some(add) = users.only(x) {
            if matches!(g.node(add).op, Op::Binary(BinaryOp::Add))
                && g.ty(add).shape == g.ty(x).shape
            {
                let ops = g.operands(add);
                let other = if ops[0] == x { ops[1] } else { ops[0] };
                if ops[0] != ops[1] {
                    if let Some(bias) = row_broadcast(g, other, n) {
                        f.reshape = through;
                        f.bias = Some((bias, add));
                        if let Some(r) = users.only(add) {
                            if is_relu_of(g, r, add) {
                                f.relu = Some(r);
                            }
                        }
                    }
                }
            }
        }
        if f.bias.is_none() {
            if let Some(r) = users.only(m) {
                if is_relu_of(g, r, m) {
                    f.relu = Some(r);
                }
            }
        }
        out.push(f);
    }
    out
}

/// The zero paddings a loop of additions sums when they tile its result: every element
/// comes from exactly one of them (the gradient of non-overlapping pooling windows,
/// one padded slice per window offset). Such a sum is a concat of the paddings'
/// operands, which writes each element once instead of filling and adding four times.
fn tiling_pads(g: &Graph, group: &Group, users: &Users) -> Option<Vec<NodeId>> {
    let adds = group
        .members
        .iter()
        .all(|&m| matches!(g.node(m).op, Op::Binary(BinaryOp::Add)));
    let uses: usize = group.members.iter().map(|&m| g.operands(m).len()).sum();
    // A tree of `k - 1` additions over `k` leaves reads each leaf once.
    if !adds || !group.stores.is_empty() || uses != 2 * group.members.len() {
        return None;
    }
    if group.leaves.len() != group.members.len() + 1 || group.leaves.len() < 2 {
        return None;
    }
    let shape = &g.ty(group.members[0]).shape;
    let mut hit = vec![false; g.ty(group.members[0]).numel()];
    for &p in &group.leaves {
        let Op::Pad { lo, value, .. } = &g.node(p).op else {
            return None;
        };
        if *value != 0.0 || users.only(p).is_none() || g.ty(p).dtype != DType::F32 {
            return None;
        }
        let (st, offset) = pad_strides(shape, lo);
        for i in dnnc_ir::layout::affine(&g.ty(g.operands(p)[0]).shape, &st, offset) {
            if std::mem::replace(&mut hit[i], true) {
                return None;
            }
        }
    }
    hit.iter().all(|&h| h).then(|| group.leaves.clone())
}

/// Builds the schedule of `g`.
pub(crate) fn build(g: &Graph) -> Result<Schedule, String> {
    let live = g.live();
    let order: Vec<NodeId> = g
        .topo_order()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|n| live.contains(n))
        .collect();
    let pinned: HashSet<NodeId> = g
        .outputs()
        .iter()
        .chain(g.updates())
        .map(|(_, id)| *id)
        .collect();
    let mut of: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for &id in &order {
        let mut ops = g.operands(id);
        ops.sort_unstable();
        ops.dedup();
        for o in ops {
            of.entry(o).or_default().push(id);
        }
    }
    let users = Users { of, pinned };

    // Matmul epilogues: the absorbed nodes get no step of their own.
    let fused = epilogues(g, &order, &users);
    let mut absorbed: HashSet<NodeId> = HashSet::new();
    let mut fused_at: HashMap<NodeId, usize> = HashMap::new();
    for (i, f) in fused.iter().enumerate() {
        if f.result() != f.matmul {
            absorbed.insert(f.matmul);
        }
        absorbed.extend(f.reshape);
        if let (Some((_, add)), Some(_)) = (f.bias, f.relu) {
            absorbed.insert(add);
        }
        fused_at.insert(f.result(), i);
    }
    // Transposes read in place by every user (products), unless many products read
    // one: a recurrent weight read by every time step is transposed once, so that
    // each step packs it from rows rather than gathering it through the strides.
    let folds = |t: NodeId| match &g.node(t).op {
        Op::Transpose(perm) if dnnc_ir::op::swaps_last_two(perm) && g.ty(t).dtype == DType::F32 => {
            users.of.get(&t).is_some_and(|us| {
                us.len() < TRANSPOSE_ONCE_READERS
                    && us.iter().all(|&u| matches!(g.node(u).op, Op::MatMul))
            }) && !users.pinned.contains(&t)
        }
        _ => false,
    };
    // Products of two operands rounded to bf16 (`cast(cast(x, bf16), f32)`, perhaps
    // behind a transpose read in place) run the bf16 kernel on `x`, which rounds as it
    // packs; a rounding gets no step when every product that reads it does so.
    let behind_transpose = |o: NodeId| {
        if folds(o) {
            g.operands(o)[0]
        } else {
            o
        }
    };
    let mut bf16_products: HashSet<NodeId> = order
        .iter()
        .copied()
        .filter(|&m| {
            matches!(g.node(m).op, Op::MatMul)
                && g.operands(m)
                    .iter()
                    .all(|&o| g.bf16_rounding_of(behind_transpose(o)).is_some())
        })
        .collect();
    let roundings: HashSet<NodeId> = loop {
        let reads_only_bf16 = |r: NodeId| {
            !users.pinned.contains(&r)
                && users.of.get(&r).is_some_and(|us| {
                    us.iter().all(|&u| {
                        bf16_products.contains(&u)
                            || (folds(u)
                                && users
                                    .of
                                    .get(&u)
                                    .is_some_and(|vs| vs.iter().all(|v| bf16_products.contains(v))))
                    })
                })
        };
        let keep: HashSet<NodeId> = bf16_products
            .iter()
            .copied()
            .filter(|&m| {
                g.operands(m)
                    .iter()
                    .all(|&o| reads_only_bf16(behind_transpose(o)))
            })
            .collect();
        let settled = keep.len() == bf16_products.len();
        bf16_products = keep;
        if settled {
            break bf16_products
                .iter()
                .flat_map(|&m| g.operands(m))
                .map(behind_transpose)
                .collect();
        }
    };
    for &r in &roundings {
        absorbed.insert(r);
        let to_bf16 = g.operands(r)[0];
        if users
            .of
            .get(&to_bf16)
            .is_some_and(|us| us.iter().all(|u| roundings.contains(u)))
            && !users.pinned.contains(&to_bf16)
        {
            absorbed.insert(to_bf16);
        }
    }
    let exclude: HashSet<NodeId> = fused_at
        .keys()
        .copied()
        .chain(absorbed.iter().copied())
        .collect();
    let fusion = fuse::plan(g, &order, &live, &exclude);
    // Sums of paddings that tile their result, by root; the paddings get no step.
    let tilings: HashMap<NodeId, Vec<NodeId>> = fusion
        .groups
        .iter()
        .filter_map(|(&root, group)| Some((root, tiling_pads(g, group, &users)?)))
        .collect();
    let tiled: HashSet<NodeId> = tilings.values().flatten().copied().collect();

    let mut s = Schedule {
        vals: Vec::new(),
        steps: Vec::new(),
        inputs: Vec::new(),
        states: Vec::new(),
        outputs: Vec::new(),
        updates: Vec::new(),
    };
    let mut val_of: HashMap<NodeId, usize> = HashMap::new();
    let new_val = |s: &mut Schedule, dtype: DType, len: usize, role: Role| -> usize {
        s.vals.push(Val { dtype, len, role });
        s.vals.len() - 1
    };

    for &id in &order {
        let node = g.node(id);
        let shape = node.ty.shape.clone();
        let dtype = node.ty.dtype;
        let n = node.ty.numel();
        let operands = g.operands(id);
        let arg_shape = |i: usize| g.ty(operands[i]).shape.clone();
        if absorbed.contains(&id) || tiled.contains(&id) {
            continue;
        }
        if let Some(pads) = tilings.get(&id) {
            let st = strides(&shape);
            let index = pads
                .iter()
                .map(|&p| {
                    let Op::Pad { lo, .. } = &g.node(p).op else {
                        unreachable!("tilings are paddings")
                    };
                    let offset = lo.iter().zip(&st).map(|(a, b)| a * b).sum();
                    affine(&g.ty(g.operands(p)[0]).shape, &st, offset)
                })
                .collect();
            let out = new_val(&mut s, dtype, n, Role::Temp);
            val_of.insert(id, out);
            let args = pads.iter().map(|&p| val_of[&g.operands(p)[0]]).collect();
            s.steps.push(Work::Kernel {
                k: Kernel::Concat(index),
                args,
                out,
            });
            continue;
        }
        if let Some(&fi) = fused_at.get(&id) {
            let f = &fused[fi];
            let mops = g.operands(f.matmul);
            let bias = f.bias.map(|(bias, _)| val_of[&bias]);
            let bf16 = bf16_products.contains(&f.matmul);
            let operand = |o: NodeId| {
                let (o, transposed) = match &g.node(o).op {
                    Op::Transpose(_) if folds(o) => (g.operands(o)[0], true),
                    _ => (o, false),
                };
                let o = match g.bf16_rounding_of(o) {
                    Some(x) if bf16 => x,
                    _ => o,
                };
                // A contiguous slice is read in place, at its offset.
                let (o, offset) = match contiguous_slice(g, o) {
                    Some((x, at)) if !bf16 && val_of.contains_key(&x) => (x, at),
                    _ => (o, 0),
                };
                Operand {
                    val: val_of[&o],
                    transposed,
                    offset,
                }
            };
            let (a, b) = (g.ty(mops[0]).shape.clone(), g.ty(mops[1]).shape.clone());
            let r = a.len();
            let (ao, bo) = (operand(mops[0]), operand(mops[1]));
            let out = new_val(&mut s, dtype, n, Role::Temp);
            val_of.insert(id, out);
            s.steps.push(Work::MatMul {
                a: ao,
                b: bo,
                out,
                dims: [a[..r - 2].iter().product(), a[r - 2], a[r - 1], b[r - 1]],
                bias,
                relu: f.relu.is_some(),
                bf16,
            });
            continue;
        }
        let kernel = match &node.op {
            Op::Input { name, .. } | Op::State { name, .. } => {
                let is_input = matches!(node.op, Op::Input { .. });
                let role = if is_input {
                    Role::Input(name.clone())
                } else {
                    Role::State(name.clone())
                };
                let v = new_val(&mut s, dtype, n, role);
                val_of.insert(id, v);
                let port = Port {
                    name: name.clone(),
                    val: v,
                    dtype,
                    shape,
                };
                if is_input {
                    s.inputs.push(port);
                } else {
                    s.states.push(port);
                }
                continue;
            }
            Op::Const { value, .. } => {
                let v = new_val(
                    &mut s,
                    dtype,
                    1,
                    Role::Const(Data::from_f64(dtype, [*value])),
                );
                val_of.insert(id, v);
                continue;
            }
            Op::Iota { axis, .. } => {
                let (_, size, after) = split_at_axis(&shape, *axis);
                let data = Data::from_f64(dtype, (0..n).map(|i| ((i / after) % size) as f64));
                let v = new_val(&mut s, dtype, n, Role::Const(data));
                val_of.insert(id, v);
                continue;
            }
            Op::Reshape(_) | Op::StopGradient => {
                val_of.insert(id, val_of[&operands[0]]);
                continue;
            }
            Op::Transpose(_) if folds(id) => continue,
            _ if fusion.groups.contains_key(&id) => {
                let group = &fusion.groups[&id];
                let leaves = group.leaves.iter().map(|l| val_of[l]).collect();
                let stores = group
                    .stores
                    .iter()
                    .map(|&m| {
                        let v = new_val(&mut s, g.ty(m).dtype, g.ty(m).numel(), Role::Temp);
                        val_of.insert(m, v);
                        v
                    })
                    .collect();
                let out = new_val(&mut s, dtype, n, Role::Temp);
                val_of.insert(id, out);
                s.steps.push(Work::Loop {
                    group: group.clone(),
                    leaves,
                    stores,
                    out,
                    n,
                });
                continue;
            }
            // Computed inside the loop of the group it belongs to.
            _ if fusion.inner.contains(&id) => continue,
            Op::Unary(u) => Kernel::Unary(*u, dtype),
            Op::Binary(b) => Kernel::Binary(*b, dtype),
            Op::Select => Kernel::Select,
            Op::Cast(to) => Kernel::Cast(*to),
            Op::Transpose(perm) => {
                // A transpose of a slice (through reshapes: attention's heads of a packed
                // projection) gathers from the slice's operand: one copy, not two.
                let view = slice_view(g, operands[0]).filter(|(x, _)| val_of.contains_key(x));
                if let Some((x, view)) = view {
                    let st: Vec<usize> = perm.iter().map(|&p| view.strides[p]).collect();
                    let out = new_val(&mut s, dtype, n, Role::Temp);
                    val_of.insert(id, out);
                    s.steps.push(Work::Kernel {
                        k: Kernel::Take(affine(&shape, &st, view.offset)),
                        args: vec![val_of[&x]],
                        out,
                    });
                    continue;
                }
                Kernel::Take(affine(&shape, &transpose_strides(&arg_shape(0), perm), 0))
            }
            Op::Broadcast(to) => {
                Kernel::Take(affine(&shape, &broadcast_strides(&arg_shape(0), to), 0))
            }
            Op::Slice { .. } => Kernel::Take(slice_map(g, id).expect("a slice").1),
            Op::Concat { axis } => {
                let st = strides(&shape);
                let mut at = 0;
                let mut index = Vec::new();
                for i in 0..operands.len() {
                    let x = arg_shape(i);
                    index.push(affine(&x, &st, at * st[*axis]));
                    at += x[*axis];
                }
                // Slices are read in place through their maps (their own copies are
                // then unread and dropped).
                let read: Vec<Option<(NodeId, Affine)>> = operands
                    .iter()
                    .map(|&o| slice_map(g, o).filter(|(x, _)| val_of.contains_key(x)))
                    .collect();
                if read.iter().any(Option::is_some) {
                    let parts = index
                        .into_iter()
                        .zip(&read)
                        .map(|(dst, r)| match r {
                            Some((_, src)) => (src.clone(), dst),
                            None => (affine(&dst.shape, &strides(&dst.shape), 0), dst),
                        })
                        .collect();
                    let args = read
                        .iter()
                        .zip(&operands)
                        .map(|(r, o)| val_of[r.as_ref().map_or(o, |(x, _)| x)])
                        .collect();
                    let out = new_val(&mut s, dtype, n, Role::Temp);
                    val_of.insert(id, out);
                    s.steps.push(Work::Kernel {
                        k: Kernel::ConcatFrom(parts),
                        args,
                        out,
                    });
                    continue;
                }
                Kernel::Concat(index)
            }
            Op::Pad { lo, value, .. } => {
                let (st, offset) = pad_strides(&shape, lo);
                Kernel::Pad {
                    value: *value,
                    dtype,
                    index: affine(&arg_shape(0), &st, offset),
                }
            }
            Op::Reduce { kind, axes, .. } if dtype == DType::F32 && contiguous(axes) => {
                let x = arg_shape(0);
                let (a, b) = (axes[0], axes[axes.len() - 1] + 1);
                Kernel::ReduceBlock {
                    kind: *kind,
                    dims: (
                        x[..a].iter().product(),
                        x[a..b].iter().product(),
                        x[b..].iter().product(),
                    ),
                }
            }
            Op::Reduce { kind, axes, .. } if dtype == DType::F32 => Kernel::ReduceRuns {
                kind: *kind,
                runs: dnnc_exec::reduce::runs(&arg_shape(0), axes),
            },
            Op::Reduce { kind, axes, .. } => {
                let x = arg_shape(0);
                Kernel::Reduce {
                    kind: *kind,
                    dtype,
                    index: affine(&x, &reduce_strides(&x, axes), 0),
                }
            }
            Op::ArgMax { axis } | Op::ArgMin { axis } => Kernel::Arg {
                max: matches!(node.op, Op::ArgMax { .. }),
                dims: split_at_axis(&arg_shape(0), *axis),
            },
            Op::ArgSort { axis, descending } => Kernel::Sort {
                descending: *descending,
                dims: split_at_axis(&arg_shape(0), *axis),
            },
            Op::MatMul => unreachable!("every matmul is in `fused_at`"),
            Op::Gather { axis } => Kernel::Gather(split_at_axis(&arg_shape(0), *axis)),
            Op::ScatterAdd { axis, shape: to } => Kernel::ScatterAdd {
                dims: split_at_axis(to, *axis),
                dtype,
            },
            Op::Random { dist, salt, .. } => Kernel::Random {
                dist: *dist,
                salt: *salt,
            },
            Op::Patches(win) => Kernel::Patches {
                win: *win,
                shape: nchw(&arg_shape(0))?,
            },
            Op::Fold { win, shape } => Kernel::Fold {
                win: *win,
                shape: nchw(shape)?,
                dtype,
            },
        };
        let out = new_val(&mut s, dtype, n, Role::Temp);
        val_of.insert(id, out);
        let args = operands.iter().map(|o| val_of[o]).collect();
        s.steps.push(Work::Kernel {
            k: kernel,
            args,
            out,
        });
    }

    // Updates and outputs that are a state (or an input) are copied before anything
    // runs, so that no in-place update can reach them.
    let mut first: Vec<Work> = Vec::new();
    let snapshot = |s: &mut Schedule, first: &mut Vec<Work>, v: usize| -> usize {
        if !matches!(s.vals[v].role, Role::State(_) | Role::Input(_)) {
            return v;
        }
        let (dtype, len) = (s.vals[v].dtype, s.vals[v].len);
        s.vals.push(Val {
            dtype,
            len,
            role: Role::Temp,
        });
        let t = s.vals.len() - 1;
        first.push(Work::Copy { src: v, dst: t });
        t
    };
    for (name, id) in g.outputs() {
        let v = snapshot(&mut s, &mut first, val_of[id]);
        s.outputs.push(Port {
            name: name.clone(),
            val: v,
            dtype: g.ty(*id).dtype,
            shape: g.ty(*id).shape.clone(),
        });
    }
    let mut state_port: HashMap<String, usize> = s
        .states
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), i))
        .collect();
    for (name, id) in g.updates() {
        let v = snapshot(&mut s, &mut first, val_of[id]);
        let port = match state_port.get(name) {
            Some(&p) => p,
            None => {
                // An update of a state nothing reads: it still needs storage.
                let ty = g.ty(*id);
                s.vals.push(Val {
                    dtype: ty.dtype,
                    len: ty.numel(),
                    role: Role::State(name.clone()),
                });
                s.states.push(Port {
                    name: name.clone(),
                    val: s.vals.len() - 1,
                    dtype: ty.dtype,
                    shape: ty.shape.clone(),
                });
                state_port.insert(name.clone(), s.states.len() - 1);
                s.states.len() - 1
            }
        };
        s.updates.push((port, v));
    }
    first.append(&mut s.steps);
    s.steps = first;
    drop_unread(&mut s);
    Ok(s)
}

/// Whether `o` (behind reshapes) is a slice whose elements are consecutive in its
/// operand: its operand and where they start.
fn contiguous_slice(g: &Graph, o: NodeId) -> Option<(NodeId, usize)> {
    let (x, map) = slice_map(g, through_reshapes(g, o))?;
    // Consecutive: from the first axis of more than one element on, the steps are 1
    // and the later axes whole.
    let shape = &g.ty(x).shape;
    let contiguous = match map.shape.iter().position(|&d| d != 1) {
        None => true,
        Some(k) => map.strides[k] == strides(shape)[k] && map.shape[k + 1..] == shape[k + 1..],
    };
    (contiguous && g.ty(x).dtype == DType::F32).then_some((x, map.offset))
}

/// `o` behind reshapes and stop-gradients (which share their operand's value).
fn through_reshapes(g: &Graph, mut o: NodeId) -> NodeId {
    while matches!(g.node(o).op, Op::Reshape(_) | Op::StopGradient) {
        o = g.operands(o)[0];
    }
    o
}

/// If `o` is a slice: its operand and its map (where each of its elements lies in the
/// operand).
fn slice_map(g: &Graph, o: NodeId) -> Option<(NodeId, Affine)> {
    let Op::Slice { starts, steps, .. } = &g.node(o).op else {
        return None;
    };
    let x = g.operands(o)[0];
    let (st, offset) = slice_strides(&g.ty(x).shape, starts, steps);
    Some((x, affine(&g.ty(o).shape, &st, offset)))
}

/// If `o` (behind reshapes that need no copy) is a slice: its operand and where each
/// element of `o`, in `o`'s own shape, lies in that operand.
fn slice_view(g: &Graph, o: NodeId) -> Option<(NodeId, Affine)> {
    let (x, map) = slice_map(g, through_reshapes(g, o))?;
    let shape = &g.ty(o).shape;
    let st = reshape_strides(&map.shape, &map.strides, shape)?;
    Some((x, affine(shape, &st, map.offset)))
}

/// Removes steps whose result nothing reads (a broadcast or splat only a fused
/// epilogue used, say).
fn drop_unread(s: &mut Schedule) {
    let mut needed = vec![false; s.vals.len()];
    for o in &s.outputs {
        needed[o.val] = true;
    }
    for &(_, u) in &s.updates {
        needed[u] = true;
    }
    let mut keep = vec![false; s.steps.len()];
    for (i, w) in s.steps.iter().enumerate().rev() {
        if w.writes().iter().any(|&o| needed[o]) {
            keep[i] = true;
            for r in w.reads() {
                needed[r] = true;
            }
        }
    }
    let mut k = keep.into_iter();
    s.steps.retain(|_| k.next().unwrap_or(true));
}
