//! The layers' patterns of primitives that ONNX has one op for, found before writing:
//! a convolution (`patches` → product → transpose, plus its bias) is one `Conv`, max
//! and average pooling one `MaxPool`/`AveragePool`, batch and layer normalisation one
//! `BatchNormalization`/`LayerNormalization`, a dense layer on `[B, inp]` one `Gemm`,
//! `max(x, 0)` one `Relu`; recurrent layers' calls become their ONNX op. Then what the
//! outputs need through those: only live nodes are written.

use std::collections::{HashMap, HashSet};

use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceKind, UnaryOp, Window2d};

use crate::batch::Dim;

/// What the writer does besides one ONNX op per IR node: the roots of the patterns
/// below, each written as one ONNX op from its pattern's inputs (its interior is then
/// written only if something else reads it), broadcasts left to ONNX's own
/// broadcasting, and the nodes the outputs need.
pub(crate) struct Plan {
    /// Transpose → (input, kernel, window, groups).
    pub(crate) convs: HashMap<NodeId, (NodeId, NodeId, Window2d, usize)>,
    /// Add → (input, weight, bias): a dense layer on `[B, inp]`.
    pub(crate) gemms: HashMap<NodeId, [NodeId; 3]>,
    /// The root of a pooling window's tree → the pooling.
    pub(crate) pools: HashMap<NodeId, Pool>,
    /// Add → (x, gamma, beta, running mean, running variance, eps): batch
    /// normalisation in its evaluation form.
    pub(crate) norms: HashMap<NodeId, ([NodeId; 5], f64)>,
    /// Add → (x, gamma, beta, eps): layer normalisation over the last axis.
    pub(crate) layer_norms: HashMap<NodeId, ([NodeId; 3], f64)>,
    /// An output of a recurrent layer's call → (the call, which output).
    pub(crate) recurrent: HashMap<NodeId, (usize, usize)>,
    /// Add of a bias to a convolution (a transpose in `convs`) → the bias.
    pub(crate) conv_bias: HashMap<NodeId, NodeId>,
    /// Broadcasts that only feed elementwise ops with an operand of the full shape:
    /// not written (ONNX broadcasts the same way).
    pub(crate) implicit: HashSet<NodeId>,
    /// Nodes whose value an output needs (the rest are not written).
    pub(crate) live: HashSet<NodeId>,
}

impl Plan {
    /// Whether `id` is written as a pattern's op (from the pattern's inputs, not its
    /// own operands).
    pub(crate) fn is_root(&self, g: &Graph, id: NodeId) -> bool {
        self.convs.contains_key(&id)
            || self.conv_bias.contains_key(&id)
            || self.gemms.contains_key(&id)
            || self.pools.contains_key(&id)
            || self.norms.contains_key(&id)
            || self.layer_norms.contains_key(&id)
            || relu_operand(g, id).is_some()
    }
}

/// `x·W + broadcast(b)` with `x: [B, inp]`, `W: [inp, out]`, `b: [out]`.
fn gemm_at(g: &Graph, add: NodeId) -> Option<[NodeId; 3]> {
    if !matches!(g.node(add).op, Op::Binary(BinaryOp::Add)) || g.ty(add).dtype != DType::F32 {
        return None;
    }
    let ops = g.operands(add);
    for (mm, bc) in [(ops[0], ops[1]), (ops[1], ops[0])] {
        if !matches!(g.node(mm).op, Op::MatMul) || !matches!(g.node(bc).op, Op::Broadcast(_)) {
            continue;
        }
        let (x, w) = (g.operands(mm)[0], g.operands(mm)[1]);
        let b = g.operands(bc)[0];
        let ranks = (g.ty(x).rank(), g.ty(w).rank(), g.ty(b).rank());
        if ranks == (2, 2, 1) && only_user(g, mm, add) && only_user(g, bc, add) {
            return Some([x, w, b]);
        }
    }
    None
}

fn only_user(g: &Graph, id: NodeId, user: NodeId) -> bool {
    g.users(id) == [user] && !g.outputs().iter().any(|(_, o)| *o == id)
}

/// `transpose[1,0,2,3](reshape(matmul(reshape(w), reshape(patches(x)))))`, as
/// `lower::conv::conv2d` writes a convolution.
fn conv_at(g: &Graph, t: NodeId) -> Option<(NodeId, NodeId, Window2d, usize)> {
    let Op::Transpose(perm) = &g.node(t).op else {
        return None;
    };
    if perm != &[1, 0, 2, 3] {
        return None;
    }
    let y = g.operands(t)[0];
    let Op::Reshape(_) = g.node(y).op else {
        return None;
    };
    let mm = g.operands(y)[0];
    if !matches!(g.node(mm).op, Op::MatMul) || !only_user(g, y, t) || !only_user(g, mm, y) {
        return None;
    }
    let (wm, cols) = (g.operands(mm)[0], g.operands(mm)[1]);
    let (Op::Reshape(_), Op::Reshape(_)) = (&g.node(wm).op, &g.node(cols).op) else {
        return None;
    };
    let patches = g.operands(cols)[0];
    let Op::Patches(win) = &g.node(patches).op else {
        return None;
    };
    if !only_user(g, cols, mm) || !only_user(g, patches, cols) || !only_user(g, wm, mm) {
        return None;
    }
    let (x, w) = (g.operands(patches)[0], g.operands(wm)[0]);
    let (ws, xs) = (&g.ty(w).shape, &g.ty(x).shape);
    if ws.len() != 4 || xs.len() != 4 || ws[1] == 0 || xs[1] % ws[1] != 0 {
        return None;
    }
    let groups = xs[1] / ws[1];
    Some((x, w, *win, groups))
}

fn is_zero_splat(g: &Graph, id: NodeId) -> bool {
    match &g.node(id).op {
        Op::Const { value, .. } => *value == 0.0,
        Op::Broadcast(_) => is_zero_splat(g, g.operands(id)[0]),
        _ => false,
    }
}

pub(crate) fn plan(
    g: &Graph,
    order: &[NodeId],
    dims: &HashMap<NodeId, Vec<Dim>>,
    calls: &[crate::LayerCall],
) -> Plan {
    let mut p = Plan {
        convs: HashMap::new(),
        gemms: HashMap::new(),
        pools: HashMap::new(),
        norms: HashMap::new(),
        layer_norms: HashMap::new(),
        recurrent: HashMap::new(),
        conv_bias: HashMap::new(),
        implicit: HashSet::new(),
        live: HashSet::new(),
    };
    for &id in order {
        if let Some((x, w, win, groups)) = conv_at(g, id) {
            p.convs.insert(id, (x, w, win, groups));
        } else if let Some(ins) = gemm_at(g, id) {
            p.gemms.insert(id, ins);
        } else if let Some(pool) = pool_at(g, id) {
            p.pools.insert(id, pool);
        } else if let Some(bn) = batch_norm_at(g, id) {
            p.norms.insert(id, bn);
        } else if let Some(ln) = layer_norm_at(g, id) {
            p.layer_norms.insert(id, ln);
        }
    }
    // A bias added to a convolution's result goes into the `Conv`.
    for &id in order {
        if !matches!(g.node(id).op, Op::Binary(BinaryOp::Add)) {
            continue;
        }
        let ops = g.operands(id);
        for (t, b) in [(ops[0], ops[1]), (ops[1], ops[0])] {
            let bias = source(g, b);
            if p.convs.contains_key(&t)
                && only_user(g, t, id)
                && g.ty(bias).rank() == 1
                && g.ty(bias).shape[0] == g.ty(t).shape[1]
                && per_channel(g, b, 4)
            {
                p.conv_bias.insert(id, bias);
                break;
            }
        }
    }
    // A broadcast whose every user is elementwise with another operand of the full
    // shape (and not a broadcast itself) needs no `Expand`: ONNX broadcasts the same
    // way (right-aligned).
    for &id in order {
        if !matches!(g.node(id).op, Op::Broadcast(_)) || g.outputs().iter().any(|(_, o)| *o == id) {
            continue;
        }
        let users = g.users(id);
        let fine = !users.is_empty()
            && users.iter().all(|&u| {
                matches!(g.node(u).op, Op::Binary(_) | Op::Select)
                    && g.operands(u).iter().any(|&o| {
                        o != id
                            && !matches!(g.node(o).op, Op::Broadcast(_))
                            && dims.get(&o) == dims.get(&u)
                    })
            });
        if fine {
            p.implicit.insert(id);
        }
    }
    for (i, c) in calls.iter().enumerate() {
        if crate::recurrent::supported(c, g, dims) {
            for (k, &o) in c.outputs.iter().enumerate() {
                if dims.contains_key(&o) {
                    p.recurrent.insert(o, (i, k));
                }
            }
        }
    }
    // What the outputs need, through the patterns' own operands.
    let mut stack: Vec<NodeId> = g.outputs().iter().map(|(_, o)| *o).collect();
    while let Some(id) = stack.pop() {
        if !p.live.insert(id) {
            continue;
        }
        let needs = if let Some(&(call, _)) = p.recurrent.get(&id) {
            vec![calls[call].inputs[0]]
        } else if let Some(&(x, w, _, _)) = p.convs.get(&id) {
            vec![x, w]
        } else if let Some(&bias) = p.conv_bias.get(&id) {
            let t = g.operands(id).into_iter().find(|o| p.convs.contains_key(o));
            let (x, w, _, _) = p.convs[&t.expect("a convolution")];
            vec![x, w, bias]
        } else if let Some((ins, _)) = p.norms.get(&id) {
            ins.to_vec()
        } else if let Some((ins, _)) = p.layer_norms.get(&id) {
            ins.to_vec()
        } else if let Some(ins) = p.gemms.get(&id) {
            ins.to_vec()
        } else if let Some(pool) = p.pools.get(&id) {
            vec![pool.x]
        } else if let Some(x) = relu_operand(g, id) {
            vec![x]
        } else {
            g.operands(id)
        };
        stack.extend(needs);
    }
    p
}

/// Max or average pooling, as `lower::conv::pool2d` writes it: the maximum (or the
/// sum, times `1/k²`) of one slice per window offset, of `x` cut into blocks
/// (stride = window, no padding) or of `x` perhaps padded (strided slices).
pub(crate) struct Pool {
    pub(crate) x: NodeId,
    pub(crate) avg: bool,
    pub(crate) k: usize,
    pub(crate) stride: usize,
    pub(crate) pad: usize,
}

/// The leaves of the tree of `op` nodes under `root` (inner nodes used once).
fn tree_leaves(g: &Graph, root: NodeId, op: BinaryOp) -> Vec<NodeId> {
    let mut leaves = Vec::new();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        let is_op = matches!(g.node(n).op, Op::Binary(b) if b == op);
        if is_op && (n == root || g.users(n).len() == 1) {
            stack.extend(g.operands(n));
        } else {
            leaves.push(n);
        }
    }
    leaves
}

fn pool_at(g: &Graph, id: NodeId) -> Option<Pool> {
    let mut scale_node = None;
    let (root, avg) = match &g.node(id).op {
        Op::Binary(BinaryOp::Max) => (id, false),
        Op::Binary(BinaryOp::Mul) => {
            let ops = g.operands(id);
            let (sum, scale) = if matches!(g.node(ops[0]).op, Op::Binary(BinaryOp::Add)) {
                (ops[0], ops[1])
            } else {
                (ops[1], ops[0])
            };
            if !matches!(g.node(sum).op, Op::Binary(BinaryOp::Add)) || g.users(sum).len() != 1 {
                return None;
            }
            scale_node = Some(scale);
            (sum, true)
        }
        _ => return None,
    };
    if g.ty(id).rank() != 4 || g.ty(id).dtype != DType::F32 {
        return None;
    }
    let op = if avg { BinaryOp::Add } else { BinaryOp::Max };
    let leaves = tree_leaves(g, root, op);
    let n = leaves.len();
    let k = (1..=n).find(|k| k * k == n).filter(|&k| k > 1)?;
    if avg {
        // The scale: a splat of 1/k².
        let scale = scale_node?;
        let c = match &g.node(scale).op {
            Op::Broadcast(_) => g.operands(scale)[0],
            _ => scale,
        };
        match &g.node(c).op {
            Op::Const { value, .. } if (*value - 1.0 / n as f64).abs() < 1e-12 => {}
            _ => return None,
        }
    }
    // Blocks: reshape(slice(reshape(x', [N, C, OH, k, OW, k]))) per offset.
    let first = leaves[0];
    if let Op::Reshape(_) = g.node(first).op {
        let sl = g.operands(first)[0];
        let blocks = g.operands(sl).first().copied()?;
        let bs = &g.ty(blocks).shape;
        if bs.len() != 6 || bs[3] != k || bs[5] != k || !matches!(g.node(blocks).op, Op::Reshape(_))
        {
            return None;
        }
        for &l in &leaves {
            let s = g.operands(l).first().copied()?;
            let ok = matches!(g.node(l).op, Op::Reshape(_))
                && matches!(g.node(s).op, Op::Slice { .. })
                && g.operands(s)[0] == blocks
                && g.users(l).len() == 1
                && g.users(s).len() == 1;
            if !ok {
                return None;
            }
        }
        if g.users(blocks).len() != n {
            return None;
        }
        let mut x = g.operands(blocks)[0];
        // `x` cut to whole windows (what the lowering writes when the size is not a
        // multiple of the window): MaxPool drops partial windows itself. Any other
        // crop is the user's and stays.
        if let Op::Slice {
            starts,
            ends,
            steps,
        } = &g.node(x).op
        {
            let src = g.ty(g.operands(x)[0]).shape.clone();
            let whole =
                src.len() == 4 && ends[..] == [src[0], src[1], src[2] / k * k, src[3] / k * k];
            if whole
                && starts.iter().all(|&s| s == 0)
                && steps.iter().all(|&s| s == 1)
                && g.users(x).len() == 1
            {
                x = g.operands(x)[0];
            }
        }
        return Some(Pool {
            x,
            avg,
            k,
            stride: k,
            pad: 0,
        });
    }
    // Strided slices of `x` (padded by `pad` on each spatial side).
    let src = g.operands(first).first().copied()?;
    let mut stride = 0;
    for &l in &leaves {
        let Op::Slice { starts, steps, .. } = &g.node(l).op else {
            return None;
        };
        if g.operands(l)[0] != src || g.users(l).len() != 1 || steps[2] != steps[3] {
            return None;
        }
        if starts[..2] != [0, 0] || steps[..2] != [1, 1] || starts[2] >= k || starts[3] >= k {
            return None;
        }
        stride = steps[2];
    }
    // The lowering pads with 0 for averages and the lowest f32 for maxima (what ONNX's
    // pooling assumes); a pad of the user's with another value stays a `Pad`.
    let fill_ok = |v: f64| {
        if avg {
            v == 0.0
        } else {
            v <= f64::from(f32::MIN)
        }
    };
    let (x, pad) = match &g.node(src).op {
        Op::Pad { lo, hi, value } if g.users(src).len() == n && fill_ok(*value) => {
            let p = lo[2];
            if lo[..2] != [0, 0] || hi[..2] != [0, 0] || lo[2..] != [p, p] || hi[2..] != [p, p] {
                return None;
            }
            (g.operands(src)[0], p)
        }
        _ => (src, 0),
    };
    if g.ty(x).rank() != 4 {
        return None;
    }
    Some(Pool {
        x,
        avg,
        k,
        stride,
        pad,
    })
}

/// What `n` broadcasts or reshapes, through any number of those.
fn source(g: &Graph, mut n: NodeId) -> NodeId {
    while matches!(g.node(n).op, Op::Broadcast(_) | Op::Reshape(_)) {
        n = g.operands(n)[0];
    }
    n
}

/// The operands of `n` if it is the binary op `op`.
fn binary(g: &Graph, n: NodeId, op: BinaryOp) -> Option<(NodeId, NodeId)> {
    match g.node(n).op {
        Op::Binary(b) if b == op => {
            let o = g.operands(n);
            Some((o[0], o[1]))
        }
        _ => None,
    }
}

/// `x·scale + (beta − mean·scale)` with `scale = rsqrt(var + eps)·gamma` (per channel,
/// reshaped and broadcast), as `BatchNorm2d` and `BatchNorm1d` evaluate.
fn batch_norm_at(g: &Graph, add: NodeId) -> Option<([NodeId; 5], f64)> {
    let (l, r) = binary(g, add, BinaryOp::Add)?;
    for (m, shift) in [(l, r), (r, l)] {
        let Some((a, b)) = binary(g, m, BinaryOp::Mul) else {
            continue;
        };
        for (x, sc) in [(a, b), (b, a)] {
            let scale = source(g, sc);
            if scale == sc || g.ty(scale).rank() != 1 {
                continue;
            }
            let Some((inv, gamma)) = binary(g, scale, BinaryOp::Mul) else {
                continue;
            };
            if !matches!(g.node(inv).op, Op::Unary(UnaryOp::Rsqrt)) {
                continue;
            }
            let Some((var, e)) = binary(g, g.operands(inv)[0], BinaryOp::Add) else {
                continue;
            };
            let Op::Const { value: eps, .. } = g.node(source(g, e)).op else {
                continue;
            };
            let Some((beta, ms)) = binary(g, source(g, shift), BinaryOp::Sub) else {
                continue;
            };
            let Some((mean, s2)) = binary(g, ms, BinaryOp::Mul) else {
                continue;
            };
            let states = [gamma, beta, mean, var]
                .iter()
                .all(|&n| matches!(g.node(n).op, Op::State { .. }));
            let rank = g.ty(x).rank();
            if s2 == scale
                && states
                && rank >= 2
                && g.ty(x).shape[1] == g.ty(scale).shape[0]
                && per_channel(g, sc, rank)
                && per_channel(g, shift, rank)
            {
                return Some(([x, gamma, beta, mean, var], eps));
            }
        }
    }
    None
}

/// Whether `b` broadcasts one value per channel (axis 1) of a rank-`rank` tensor: what
/// it broadcasts is `[C]` in that rank's axis 1 (`[C, 1, 1]` for images, `[C]` for
/// `[N, C]`), not along another axis that happens to have `C` elements.
fn per_channel(g: &Graph, b: NodeId, rank: usize) -> bool {
    if !matches!(g.node(b).op, Op::Broadcast(_)) {
        return false;
    }
    let s = &g.ty(g.operands(b)[0]).shape;
    if s.len() > rank || rank < 2 {
        return false;
    }
    // Right-aligned into `rank` axes, as broadcasting aligns.
    let padded: Vec<usize> = std::iter::repeat_n(1, rank - s.len())
        .chain(s.iter().copied())
        .collect();
    padded.iter().enumerate().all(|(i, &d)| i == 1 || d == 1)
}

/// The value of a splat (a constant, perhaps broadcast).
fn splat_value(g: &Graph, n: NodeId) -> Option<f64> {
    match g.node(source(g, n)).op {
        Op::Const { value, .. } => Some(value),
        _ => None,
    }
}

/// `y` of `mean(y, axis = -1, keepdims = true)`: its sum over the last axis times
/// `1/n` (or divided by `n`).
fn mean_of(g: &Graph, n: NodeId) -> Option<NodeId> {
    let (a, b) = match g.node(n).op {
        Op::Binary(BinaryOp::Mul) | Op::Binary(BinaryOp::Div) => {
            let o = g.operands(n);
            (o[0], o[1])
        }
        _ => return None,
    };
    let div = matches!(g.node(n).op, Op::Binary(BinaryOp::Div));
    let orders = if div {
        vec![(a, b)]
    } else {
        vec![(a, b), (b, a)]
    };
    for (sum, c) in orders {
        let Op::Reduce {
            kind: ReduceKind::Sum,
            axes,
            keepdims: true,
        } = &g.node(sum).op
        else {
            continue;
        };
        let y = g.operands(sum)[0];
        let rank = g.ty(y).rank();
        let len = *g.ty(y).shape.last()? as f64;
        let want = if div { len } else { 1.0 / len };
        let scale_ok = splat_value(g, c).is_some_and(|v| ((v - want) / want).abs() < 1e-6);
        if axes == &[rank - 1] && scale_ok {
            return Some(y);
        }
    }
    None
}

/// `a` of `a·a` or `pow(a, 2)`.
fn square_of(g: &Graph, n: NodeId) -> Option<NodeId> {
    if let Some((a, b)) = binary(g, n, BinaryOp::Mul) {
        return (a == b).then_some(a);
    }
    let (a, e) = binary(g, n, BinaryOp::Pow)?;
    (splat_value(g, e) == Some(2.0)).then_some(a)
}

/// `xc·rsqrt(mean(xc²) + eps)·gamma + beta` with `xc = x − mean(x)` over the last
/// axis, as `LayerNorm` computes.
fn layer_norm_at(g: &Graph, add: NodeId) -> Option<([NodeId; 3], f64)> {
    let (l, r) = binary(g, add, BinaryOp::Add)?;
    let is_param = |n: NodeId| g.ty(n).rank() == 1 && matches!(g.node(n).op, Op::State { .. });
    for (m, bb) in [(l, r), (r, l)] {
        let beta = source(g, bb);
        let Some((p, q)) = binary(g, m, BinaryOp::Mul) else {
            continue;
        };
        if !is_param(beta) {
            continue;
        }
        for (normed, gb) in [(p, q), (q, p)] {
            let gamma = source(g, gb);
            let Some((u, v)) = binary(g, normed, BinaryOp::Mul) else {
                continue;
            };
            if !is_param(gamma) {
                continue;
            }
            for (xc, ib) in [(u, v), (v, u)] {
                let inv = source(g, ib);
                if !matches!(g.node(inv).op, Op::Unary(UnaryOp::Rsqrt)) {
                    continue;
                }
                let Some((var, e)) = binary(g, g.operands(inv)[0], BinaryOp::Add) else {
                    continue;
                };
                let Some(eps) = splat_value(g, e) else {
                    continue;
                };
                let Some((x, mb)) = binary(g, xc, BinaryOp::Sub) else {
                    continue;
                };
                let centred = mean_of(g, source(g, mb)) == Some(x);
                let var_ok = mean_of(g, var).and_then(|s| square_of(g, s)) == Some(xc);
                if centred && var_ok && g.ty(x).shape.last() == g.ty(gamma).shape.first() {
                    return Some(([x, gamma, beta], eps));
                }
            }
        }
    }
    None
}

/// `x` of `max(x, 0)` (either order): a ReLU.
pub(crate) fn relu_operand(g: &Graph, id: NodeId) -> Option<NodeId> {
    if !matches!(g.node(id).op, Op::Binary(BinaryOp::Max)) {
        return None;
    }
    let ops = g.operands(id);
    if is_zero_splat(g, ops[1]) {
        Some(ops[0])
    } else if is_zero_splat(g, ops[0]) {
        Some(ops[1])
    } else {
        None
    }
}
