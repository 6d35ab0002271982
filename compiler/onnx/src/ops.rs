//! Each node of an inference graph as ONNX nodes, in topological order: one `match`
//! over the IR's ops, so a new op is a compile error here until it has an ONNX form
//! (or an error saying it has none).

use std::collections::{BTreeMap, HashMap, HashSet};

use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceKind, UnaryOp, Window2d};
use dnnc_tensor::{Data, Tensor};

use crate::batch::Dim;
use crate::proto::{self, attr_float, attr_int, attr_ints, elem, Msg};
use crate::{ExportError, Exported, OPSET};

/// The ONNX element type of `dtype`.
fn elem_of(dtype: DType) -> i64 {
    match dtype {
        DType::F32 => elem::FLOAT,
        DType::F64 => elem::DOUBLE,
        DType::F16 => elem::FLOAT16,
        DType::BF16 => elem::BFLOAT16,
        DType::I8 => elem::INT8,
        DType::U8 => elem::UINT8,
        DType::I16 => elem::INT16,
        DType::I32 => elem::INT32,
        DType::I64 => elem::INT64,
        DType::Bool => elem::BOOL,
    }
}

/// A tensor's elements as ONNX's little-endian `raw_data`.
fn raw(t: &Tensor) -> Vec<u8> {
    match &t.data {
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        Data::BF16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        Data::I8(v) => v.iter().map(|&x| x as u8).collect(),
        Data::U8(v) => v.clone(),
        Data::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Bool(v) => v.iter().map(|&x| u8::from(x)).collect(),
    }
}

/// The model being written.
struct Writer<'a> {
    g: &'a Graph,
    dims: &'a HashMap<NodeId, Vec<Dim>>,
    nodes: Vec<Msg>,
    inits: Vec<Msg>,
    ops: BTreeMap<String, usize>,
    /// The ONNX name of each node's value.
    names: HashMap<NodeId, String>,
    fresh: usize,
    /// The input whose first dimension is the batch, and the `[batch]` tensor made
    /// from it when a shape needs it.
    batch_source: Option<String>,
    batch: Option<String>,
}

impl Writer<'_> {
    fn fresh(&mut self, hint: &str) -> String {
        self.fresh += 1;
        format!("{hint}_{}", self.fresh)
    }

    /// Appends node `op` with one output, returned.
    fn emit(&mut self, op: &str, inputs: &[String], attrs: Vec<Msg>) -> String {
        let out = self.fresh(&op.to_lowercase());
        let name = format!("{op}_{}", self.fresh);
        self.nodes.push(proto::node(
            op,
            &name,
            inputs,
            std::slice::from_ref(&out),
            attrs,
        ));
        *self.ops.entry(op.to_string()).or_default() += 1;
        out
    }

    fn initializer(&mut self, hint: &str, t: &Tensor) -> String {
        let name = self.fresh(hint);
        self.inits
            .push(proto::tensor(&name, elem_of(t.dtype), &t.shape, &raw(t)));
        name
    }

    fn ints(&mut self, vs: &[i64]) -> String {
        let t = Tensor::new(DType::I64, vec![vs.len()], Data::I64(vs.to_vec()))
            .expect("a vector of its own length");
        self.initializer("shape", &t)
    }

    /// The `[batch]` tensor (int64), read from the input at run time.
    fn batch(&mut self) -> Result<String, ExportError> {
        if let Some(b) = &self.batch {
            return Ok(b.clone());
        }
        let src = self.batch_source.clone().ok_or_else(|| {
            ExportError("a shape depends on the batch, but no input starts with the batch".into())
        })?;
        let b = self.emit(
            "Shape",
            &[src],
            vec![attr_int("start", 0), attr_int("end", 1)],
        );
        self.batch = Some(b.clone());
        Ok(b)
    }

    /// A 1-D int64 tensor of `dims` at run time: constants where fixed, `k × batch`
    /// computed from the input. With `minus_one`, a single batch dimension is `-1`
    /// (what `Reshape` infers) and no computation is needed.
    fn shape(&mut self, dims: &[Dim], minus_one: bool) -> Result<String, ExportError> {
        let batched = dims.iter().filter(|d| matches!(d, Dim::Batch(_))).count();
        if batched == 0 || (minus_one && batched == 1) {
            let vs: Vec<i64> = dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n as i64,
                    Dim::Batch(_) => -1,
                })
                .collect();
            return Ok(self.ints(&vs));
        }
        let b = self.batch()?;
        let mut parts = Vec::new();
        let mut fixed = Vec::new();
        for d in dims {
            match d {
                Dim::Fixed(n) => fixed.push(*n as i64),
                Dim::Batch(k) => {
                    if !fixed.is_empty() {
                        parts.push(self.ints(&std::mem::take(&mut fixed)));
                    }
                    if *k == 1 {
                        parts.push(b.clone());
                    } else {
                        let k = self.ints(&[*k as i64]);
                        parts.push(self.emit("Mul", &[b.clone(), k], vec![]));
                    }
                }
            }
        }
        if !fixed.is_empty() {
            parts.push(self.ints(&fixed));
        }
        Ok(self.emit("Concat", &parts, vec![attr_int("axis", 0)]))
    }

    fn name(&self, id: NodeId) -> String {
        self.names[&id].clone()
    }

    fn dims(&self, id: NodeId) -> &[Dim] {
        &self.dims[&id]
    }
}

/// The ONNX form of a value's dimension in a `ValueInfoProto`.
fn info_dim(d: Dim) -> proto::Dim {
    match d {
        Dim::Fixed(n) => proto::Dim::Size(n),
        Dim::Batch(1) => proto::Dim::Named("batch".into()),
        Dim::Batch(k) => proto::Dim::Named(format!("{k}*batch")),
    }
}

/// Nodes that the patterns below replace: a convolution's chain from `patches` to the
/// transposed product (one `Conv` at the transpose), broadcasts left to ONNX's own
/// broadcasting.
struct Plan {
    /// Transpose → (input, kernel, window, groups).
    convs: HashMap<NodeId, (NodeId, NodeId, Window2d, usize)>,
    /// Add → (input, weight, bias): a dense layer on `[B, inp]`.
    gemms: HashMap<NodeId, [NodeId; 3]>,
    /// The root of a pooling window's tree → the pooling.
    pools: HashMap<NodeId, Pool>,
    /// Add → (x, gamma, beta, running mean, running variance, eps): batch
    /// normalisation in its evaluation form.
    norms: HashMap<NodeId, ([NodeId; 5], f64)>,
    /// Add → (x, gamma, beta, eps): layer normalisation over the last axis.
    layer_norms: HashMap<NodeId, ([NodeId; 3], f64)>,
    /// Add of a bias to a convolution (a transpose in `convs`) → the bias.
    conv_bias: HashMap<NodeId, NodeId>,
    skipped: HashSet<NodeId>,
    implicit: HashSet<NodeId>,
    /// Nodes whose value an output needs (the rest are not written).
    live: HashSet<NodeId>,
}

/// `x·W + broadcast(b)` with `x: [B, inp]`, `W: [inp, out]`, `b: [out]`.
fn gemm_at(g: &Graph, add: NodeId) -> Option<([NodeId; 3], [NodeId; 2])> {
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
            return Some(([x, w, b], [mm, bc]));
        }
    }
    None
}

fn only_user(g: &Graph, id: NodeId, user: NodeId) -> bool {
    g.users(id) == [user] && !g.outputs().iter().any(|(_, o)| *o == id)
}

/// `transpose[1,0,2,3](reshape(matmul(reshape(w), reshape(patches(x)))))`, as
/// `lower::conv::conv2d` writes a convolution.
fn conv_at(g: &Graph, t: NodeId) -> Option<(NodeId, NodeId, Window2d, usize, [NodeId; 5])> {
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
    Some((x, w, *win, groups, [y, mm, wm, cols, patches]))
}

fn is_zero_splat(g: &Graph, id: NodeId) -> bool {
    match &g.node(id).op {
        Op::Const { value, .. } => *value == 0.0,
        Op::Broadcast(_) => is_zero_splat(g, g.operands(id)[0]),
        _ => false,
    }
}

fn plan(g: &Graph, order: &[NodeId], dims: &HashMap<NodeId, Vec<Dim>>) -> Plan {
    let mut p = Plan {
        convs: HashMap::new(),
        gemms: HashMap::new(),
        pools: HashMap::new(),
        norms: HashMap::new(),
        layer_norms: HashMap::new(),
        conv_bias: HashMap::new(),
        skipped: HashSet::new(),
        implicit: HashSet::new(),
        live: HashSet::new(),
    };
    for &id in order {
        if let Some((x, w, win, groups, chain)) = conv_at(g, id) {
            p.convs.insert(id, (x, w, win, groups));
            p.skipped.extend(chain);
        } else if let Some((ins, chain)) = gemm_at(g, id) {
            p.gemms.insert(id, ins);
            p.skipped.extend(chain);
        } else if let Some((pool, chain)) = pool_at(g, id) {
            p.pools.insert(id, pool);
            p.skipped.extend(chain);
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
                && matches!(g.node(b).op, Op::Broadcast(_))
                && g.ty(g.operands(b)[0]).rank() == 3
            {
                p.conv_bias.insert(id, bias);
                p.skipped.insert(t);
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
    // What the outputs need, through the patterns' own operands.
    let mut stack: Vec<NodeId> = g.outputs().iter().map(|(_, o)| *o).collect();
    while let Some(id) = stack.pop() {
        if !p.live.insert(id) {
            continue;
        }
        let needs = if let Some(&(x, w, _, _)) = p.convs.get(&id) {
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
struct Pool {
    x: NodeId,
    avg: bool,
    k: usize,
    stride: usize,
    pad: usize,
}

/// The leaves of the tree of `op` nodes under `root` (inner nodes used once).
fn tree_leaves(g: &Graph, root: NodeId, op: BinaryOp, inner: &mut Vec<NodeId>) -> Vec<NodeId> {
    let mut leaves = Vec::new();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        let is_op = matches!(g.node(n).op, Op::Binary(b) if b == op);
        if is_op && (n == root || g.users(n).len() == 1) {
            inner.push(n);
            stack.extend(g.operands(n));
        } else {
            leaves.push(n);
        }
    }
    leaves
}

fn pool_at(g: &Graph, id: NodeId) -> Option<(Pool, Vec<NodeId>)> {
    let mut chain = Vec::new();
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
            chain.push(scale);
            (sum, true)
        }
        _ => return None,
    };
    if g.ty(id).rank() != 4 || g.ty(id).dtype != DType::F32 {
        return None;
    }
    let op = if avg { BinaryOp::Add } else { BinaryOp::Max };
    let mut inner = Vec::new();
    let leaves = tree_leaves(g, root, op, &mut inner);
    let n = leaves.len();
    let k = (1..=n).find(|k| k * k == n).filter(|&k| k > 1)?;
    if avg {
        // The scale: a splat of 1/k².
        let scale = chain[0];
        let c = match &g.node(scale).op {
            Op::Broadcast(_) => g.operands(scale)[0],
            _ => scale,
        };
        match &g.node(c).op {
            Op::Const { value, .. } if (*value - 1.0 / n as f64).abs() < 1e-12 => {}
            _ => return None,
        }
        if c != scale {
            chain.push(c);
        }
    }
    chain.extend(&inner[..]);
    chain.retain(|&c| c != id);
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
            chain.extend([l, s]);
        }
        if g.users(blocks).len() != n {
            return None;
        }
        chain.push(blocks);
        let mut x = g.operands(blocks)[0];
        // `x` cut to whole windows: MaxPool drops partial windows itself.
        if let Op::Slice { starts, steps, .. } = &g.node(x).op {
            if starts.iter().all(|&s| s == 0)
                && steps.iter().all(|&s| s == 1)
                && g.users(x).len() == 1
            {
                chain.push(x);
                x = g.operands(x)[0];
            }
        }
        return Some((
            Pool {
                x,
                avg,
                k,
                stride: k,
                pad: 0,
            },
            chain,
        ));
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
        chain.push(l);
    }
    let (x, pad) = match &g.node(src).op {
        Op::Pad { lo, hi, .. } if g.users(src).len() == n => {
            let p = lo[2];
            if lo[..2] != [0, 0] || hi[..2] != [0, 0] || lo[2..] != [p, p] || hi[2..] != [p, p] {
                return None;
            }
            chain.push(src);
            (g.operands(src)[0], p)
        }
        _ => (src, 0),
    };
    if g.ty(x).rank() != 4 {
        return None;
    }
    Some((
        Pool {
            x,
            avg,
            k,
            stride,
            pad,
        },
        chain,
    ))
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
            if s2 == scale
                && states
                && g.ty(x).rank() >= 2
                && g.ty(x).shape[1] == g.ty(scale).shape[0]
            {
                return Some(([x, gamma, beta, mean, var], eps));
            }
        }
    }
    None
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
fn relu_operand(g: &Graph, id: NodeId) -> Option<NodeId> {
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

/// The one-hot kernel that makes a grouped `Conv` copy each input channel's window
/// taps to channels `c·KH·KW + i·KW + j` (what `patches` computes): exact in f32.
fn patches_kernel(c: usize, win: &Window2d) -> Tensor {
    let (kh, kw) = (win.kh, win.kw);
    let mut v = vec![0f32; c * kh * kw * kh * kw];
    for ch in 0..c {
        for i in 0..kh {
            for j in 0..kw {
                let o = ch * kh * kw + i * kw + j;
                v[(o * kh + i) * kw + j] = 1.0;
            }
        }
    }
    Tensor::f32(vec![c * kh * kw, 1, kh, kw], v).expect("sizes match")
}

fn window_attrs(win: &Window2d, groups: usize) -> Vec<Msg> {
    vec![
        attr_ints("kernel_shape", &[win.kh as i64, win.kw as i64]),
        attr_ints("strides", &[win.stride as i64; 2]),
        attr_ints("dilations", &[win.dilation as i64; 2]),
        attr_ints(
            "pads",
            &[
                win.pad_h.0 as i64,
                win.pad_w.0 as i64,
                win.pad_h.1 as i64,
                win.pad_w.1 as i64,
            ],
        ),
        attr_int("group", groups as i64),
    ]
}

fn unary_op(u: UnaryOp) -> &'static str {
    match u {
        UnaryOp::Neg => "Neg",
        UnaryOp::Exp => "Exp",
        UnaryOp::Log => "Log",
        UnaryOp::Sqrt | UnaryOp::Rsqrt => "Sqrt",
        UnaryOp::Abs => "Abs",
        UnaryOp::Sign => "Sign",
        UnaryOp::Sin => "Sin",
        UnaryOp::Cos => "Cos",
        UnaryOp::Tanh => "Tanh",
        UnaryOp::Erf => "Erf",
        UnaryOp::Floor => "Floor",
        UnaryOp::Ceil => "Ceil",
        UnaryOp::Not => "Not",
    }
}

/// The ONNX op of a binary op, when one op computes it.
fn binary_op(b: BinaryOp) -> Option<&'static str> {
    Some(match b {
        BinaryOp::Add => "Add",
        BinaryOp::Sub => "Sub",
        BinaryOp::Mul => "Mul",
        BinaryOp::Div => "Div",
        BinaryOp::Pow => "Pow",
        BinaryOp::Max => "Max",
        BinaryOp::Min => "Min",
        BinaryOp::Lt => "Less",
        BinaryOp::Le => "LessOrEqual",
        BinaryOp::Gt => "Greater",
        BinaryOp::Ge => "GreaterOrEqual",
        BinaryOp::Eq => "Equal",
        BinaryOp::And => "And",
        BinaryOp::Or => "Or",
        BinaryOp::Rem | BinaryOp::Ne => return None,
    })
}

/// Writes the model.
pub fn write(
    model: &str,
    g: &Graph,
    dims: &HashMap<NodeId, Vec<Dim>>,
    weights: &HashMap<String, Tensor>,
) -> Result<Exported, ExportError> {
    let order = g.topo_order().map_err(|e| ExportError(e.to_string()))?;
    let plan = plan(g, &order, dims);
    let mut w = Writer {
        g,
        dims,
        nodes: Vec::new(),
        inits: Vec::new(),
        ops: BTreeMap::new(),
        names: HashMap::new(),
        fresh: 0,
        batch_source: None,
        batch: None,
    };
    let mut inputs = Vec::new();
    for &id in &order {
        if let Op::Input { name, dtype, .. } = &g.node(id).op {
            let d = w.dims(id).to_vec();
            if d.first() == Some(&Dim::Batch(1)) && w.batch_source.is_none() {
                w.batch_source = Some(name.clone());
            }
            let info: Vec<proto::Dim> = d.into_iter().map(info_dim).collect();
            inputs.push(proto::value_info(name, elem_of(*dtype), &info));
            w.names.insert(id, name.clone());
        }
    }
    for &id in &order {
        if plan.skipped.contains(&id) || !plan.live.contains(&id) || w.names.contains_key(&id) {
            continue;
        }
        let out = node(&mut w, &plan, id, weights)?;
        w.names.insert(id, out);
    }
    let mut outputs = Vec::new();
    for (name, id) in g.outputs() {
        let v = w.name(*id);
        w.nodes.push(proto::node(
            "Identity",
            &format!("out_{name}"),
            &[v],
            std::slice::from_ref(name),
            vec![],
        ));
        *w.ops.entry("Identity".into()).or_default() += 1;
        let info: Vec<proto::Dim> = w.dims(*id).iter().map(|&d| info_dim(d)).collect();
        outputs.push(proto::value_info(name, elem_of(g.ty(*id).dtype), &info));
    }
    let bytes = proto::model(model, w.nodes, w.inits, inputs, outputs, OPSET);
    Ok(Exported { bytes, ops: w.ops })
}

/// The ONNX nodes of IR node `id`; returns the name of its value.
fn node(
    w: &mut Writer<'_>,
    plan: &Plan,
    id: NodeId,
    weights: &HashMap<String, Tensor>,
) -> Result<String, ExportError> {
    let g = w.g;
    // Operands replaced by a pattern (a convolution's chain) have no value of their own.
    let ins: Vec<String> = g
        .operands(id)
        .iter()
        .map(|o| w.names.get(o).cloned().unwrap_or_default())
        .collect();
    let ty = g.ty(id).clone();
    let no_form = |what: &str| {
        Err(ExportError(format!(
            "`{}` has no ONNX form{what}",
            g.node(id).op.name()
        )))
    };
    Ok(match &g.node(id).op {
        Op::Input { name, .. } => name.clone(),
        Op::State { name, dtype, shape } => {
            let t = weights.get(name).ok_or_else(|| {
                ExportError(format!("the weights have no tensor `{name}`"))
            })?;
            if t.shape != *shape {
                return Err(ExportError(format!(
                    "`{name}` is {:?} in the weights, but the model's is {shape:?}",
                    t.shape
                )));
            }
            let t = if t.dtype == *dtype { t.clone() } else { t.cast(*dtype) };
            w.inits
                .push(proto::tensor(name, elem_of(t.dtype), &t.shape, &raw(&t)));
            name.clone()
        }
        Op::Const { value, dtype } => {
            let t = if *dtype == DType::F64 {
                Tensor::new(DType::F64, vec![], Data::F64(vec![*value])).expect("a scalar")
            } else if dtype.is_float() {
                Tensor::f32(vec![], vec![*value as f32]).expect("a scalar").cast(*dtype)
            } else {
                Tensor::new(DType::I64, vec![], Data::I64(vec![*value as i64]))
                    .expect("a scalar")
                    .cast(*dtype)
            };
            w.initializer("const", &t)
        }
        Op::Iota { dtype, shape, axis } => {
            if w.dims(id).iter().any(|d| matches!(d, Dim::Batch(_))) {
                return no_form(" when its shape depends on the batch");
            }
            let inner: usize = shape[axis + 1..].iter().product();
            let n: usize = shape.iter().product();
            let v: Vec<i64> = (0..n).map(|i| ((i / inner) % shape[*axis]) as i64).collect();
            let t = Tensor::new(DType::I64, shape.clone(), Data::I64(v))
                .expect("sizes match")
                .cast(*dtype);
            w.initializer("iota", &t)
        }
        Op::Unary(UnaryOp::Rsqrt) => {
            let s = w.emit("Sqrt", &ins, vec![]);
            w.emit("Reciprocal", &[s], vec![])
        }
        Op::Unary(u) => w.emit(unary_op(*u), &ins, vec![]),
        Op::Binary(BinaryOp::Add) if plan.norms.contains_key(&id) => {
            let (ins, eps) = plan.norms[&id];
            let ins: Vec<String> = ins.iter().map(|&n| w.name(n)).collect();
            w.emit("BatchNormalization", &ins, vec![attr_float("epsilon", eps as f32)])
        }
        Op::Binary(BinaryOp::Add) if plan.layer_norms.contains_key(&id) => {
            let (ins, eps) = plan.layer_norms[&id];
            let ins: Vec<String> = ins.iter().map(|&n| w.name(n)).collect();
            let attrs = vec![attr_int("axis", -1), attr_float("epsilon", eps as f32)];
            w.emit("LayerNormalization", &ins, attrs)
        }
        Op::Binary(BinaryOp::Add) if plan.conv_bias.contains_key(&id) => {
            let t = g.operands(id).into_iter().find(|o| plan.convs.contains_key(o));
            let (x, k, win, groups) = plan.convs[&t.expect("a convolution")];
            let b = plan.conv_bias[&id];
            let ins = [w.name(x), w.name(k), w.name(b)];
            w.emit("Conv", &ins, window_attrs(&win, groups))
        }
        Op::Binary(BinaryOp::Add) if plan.gemms.contains_key(&id) => {
            let [x, k, b] = plan.gemms[&id].map(|n| w.name(n));
            w.emit("Gemm", &[x, k, b], vec![])
        }
        Op::Binary(_) if plan.pools.contains_key(&id) => {
            let p = &plan.pools[&id];
            let x = w.name(p.x);
            let mut attrs = vec![
                attr_ints("kernel_shape", &[p.k as i64; 2]),
                attr_ints("strides", &[p.stride as i64; 2]),
                attr_ints("pads", &[p.pad as i64; 4]),
            ];
            if p.avg {
                // PyTorch's default, and dnnc's: the padding counts.
                attrs.push(attr_int("count_include_pad", 1));
            }
            w.emit(if p.avg { "AveragePool" } else { "MaxPool" }, &[x], attrs)
        }
        Op::Binary(BinaryOp::Max) if relu_operand(g, id).is_some() => {
            let x = w.name(relu_operand(g, id).expect("a relu"));
            w.emit("Relu", &[x], vec![])
        }
        Op::Binary(BinaryOp::Ne) => {
            let e = w.emit("Equal", &ins, vec![]);
            w.emit("Not", &[e], vec![])
        }
        Op::Binary(BinaryOp::Rem) if ty.dtype.is_int() => {
            w.emit("Mod", &ins, vec![attr_int("fmod", 0)])
        }
        Op::Binary(BinaryOp::Rem) => {
            // `a - b·floor(a/b)`, as the interpreter computes it.
            let q = w.emit("Div", &ins, vec![]);
            let f = w.emit("Floor", &[q], vec![]);
            let m = w.emit("Mul", &[ins[1].clone(), f], vec![]);
            w.emit("Sub", &[ins[0].clone(), m], vec![])
        }
        Op::Binary(b) => w.emit(binary_op(*b).expect("handled above"), &ins, vec![]),
        Op::Select => w.emit("Where", &ins, vec![]),
        Op::Cast(dt) => w.emit("Cast", &ins, vec![attr_int("to", elem_of(*dt))]),
        Op::Reshape(_) => {
            let d = w.dims(id).to_vec();
            let s = w.shape(&d, true)?;
            w.emit("Reshape", &[ins[0].clone(), s], vec![])
        }
        Op::Transpose(perm) => {
            if let Some(&(x, k, win, groups)) = plan.convs.get(&id) {
                let (x, k) = (w.name(x), w.name(k));
                w.emit("Conv", &[x, k], window_attrs(&win, groups))
            } else {
                let p: Vec<i64> = perm.iter().map(|&a| a as i64).collect();
                w.emit("Transpose", &ins, vec![attr_ints("perm", &p)])
            }
        }
        Op::Broadcast(_) if plan.implicit.contains(&id) => ins[0].clone(),
        Op::Broadcast(_) => {
            let d = w.dims(id).to_vec();
            let s = w.shape(&d, false)?;
            w.emit("Expand", &[ins[0].clone(), s], vec![])
        }
        Op::Slice { starts, ends, steps } => {
            let x = g.operands(id)[0];
            let xd = w.dims(x).to_vec();
            let mut e: Vec<i64> = Vec::new();
            for (a, d) in xd.iter().enumerate() {
                match d {
                    Dim::Batch(_) if starts[a] == 0 && steps[a] == 1 && ends[a] == d.at(batch_of(w, x, a)) => {
                        e.push(i64::MAX)
                    }
                    Dim::Batch(_) => return no_form(" when it cuts the batch"),
                    Dim::Fixed(_) => e.push(ends[a] as i64),
                }
            }
            let s: Vec<i64> = starts.iter().map(|&v| v as i64).collect();
            let st: Vec<i64> = steps.iter().map(|&v| v as i64).collect();
            let axes: Vec<i64> = (0..starts.len() as i64).collect();
            let (s, e, a, st) = (w.ints(&s), w.ints(&e), w.ints(&axes), w.ints(&st));
            w.emit("Slice", &[ins[0].clone(), s, e, a, st], vec![])
        }
        Op::Concat { axis } => w.emit("Concat", &ins, vec![attr_int("axis", *axis as i64)]),
        Op::Pad { lo, hi, value } => {
            let pads: Vec<i64> = lo.iter().chain(hi).map(|&v| v as i64).collect();
            let p = w.ints(&pads);
            let v = Tensor::f32(vec![], vec![*value as f32])
                .expect("a scalar")
                .cast(ty.dtype);
            let v = w.initializer("pad_value", &v);
            w.emit("Pad", &[ins[0].clone(), p, v], vec![])
        }
        Op::Reduce { axes, .. } if axes.is_empty() => w.emit("Identity", &ins, vec![]),
        Op::Reduce { kind, axes, keepdims } => {
            let ax: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
            let keep = attr_int("keepdims", i64::from(*keepdims));
            match kind {
                ReduceKind::Sum => {
                    let a = w.ints(&ax);
                    w.emit("ReduceSum", &[ins[0].clone(), a], vec![keep])
                }
                ReduceKind::Max => w.emit("ReduceMax", &ins, vec![attr_ints("axes", &ax), keep]),
                ReduceKind::Min => w.emit("ReduceMin", &ins, vec![attr_ints("axes", &ax), keep]),
            }
        }
        Op::ArgMax { axis } => w.emit(
            "ArgMax",
            &ins,
            vec![attr_int("axis", *axis as i64), attr_int("keepdims", 0)],
        ),
        Op::ArgMin { axis } => w.emit(
            "ArgMin",
            &ins,
            vec![attr_int("axis", *axis as i64), attr_int("keepdims", 0)],
        ),
        Op::MatMul if ty.dtype != DType::F32 => {
            return no_form(" for quantized weights; export the f32 weights")
        }
        Op::MatMul => w.emit("MatMul", &ins, vec![]),
        Op::Gather { axis } => {
            let idx = g.operands(id)[1];
            let i = match g.ty(idx).dtype {
                DType::I32 | DType::I64 => ins[1].clone(),
                _ => w.emit("Cast", &ins[1..], vec![attr_int("to", elem::INT64)]),
            };
            w.emit("Gather", &[ins[0].clone(), i], vec![attr_int("axis", *axis as i64)])
        }
        Op::StopGradient => ins[0].clone(),
        Op::Patches(win) => {
            // A grouped convolution with a one-hot kernel, then `[C, KH, KW, N, OH, OW]`.
            let x = g.operands(id)[0];
            let c = g.ty(x).shape[1];
            let k = patches_kernel(c, win);
            let k = w.initializer("patches_kernel", &k);
            let y = w.emit("Conv", &[ins[0].clone(), k], window_attrs(win, c));
            let d = w.dims(id).to_vec();
            let grouped = [d[3], d[0], d[1], d[2], d[4], d[5]];
            let s = w.shape(&grouped, true)?;
            let y = w.emit("Reshape", &[y, s], vec![]);
            w.emit("Transpose", &[y], vec![attr_ints("perm", &[1, 2, 3, 0, 4, 5])])
        }
        Op::ScatterAdd { .. } | Op::Fold { .. } => {
            return no_form(" in an inference graph (it belongs to gradients)")
        }
        Op::Random { .. } => {
            return no_form(": ONNX's random ops do not draw dnnc's numbers, so the model would not compute the same")
        }
    })
}

/// The batch size of `small`'s graph, from a dimension `a` of `x` known to be `k × batch`.
fn batch_of(w: &Writer<'_>, x: NodeId, a: usize) -> usize {
    match w.dims(x)[a] {
        Dim::Batch(k) => w.g.ty(x).shape[a] / k,
        Dim::Fixed(_) => 1,
    }
}
