//! Post-training int8 quantization of inference graphs (`dnnc quantize`): each matrix
//! product of an activation by a quantized weight — `x @ W` of `Dense` and `Linear`,
//! and the `W·patches` a convolution lowers to — becomes an `i8` product accumulated
//! exactly in `i32`, then scaled back to `f32`:
//!
//! ```text
//! q  = cast(clamp(floor(x · (1 / s_x) + 0.5), -127, 127), i8)  // per tensor
//! y  = cast(q @ W_q, f32) · (s_x · s_W)                       // s_W per output channel
//! ```
//!
//! The weight `W` becomes the `i8` state of the same name, its scales the states
//! `W.scale` (one per output channel: the columns of a right operand, the rows of a
//! left one) and `W.input_scale` (the activation's). The interpreter computes exactly
//! this; native code runs the `i8` kernel (`dnnc_kernels::int8`).

use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, UnaryOp};

use crate::error::PassError;

/// A product of an activation by a parameter that [`quantize_products`] can rewrite.
#[derive(Clone, Debug, PartialEq)]
pub struct Product {
    pub matmul: NodeId,
    /// The parameter's state name.
    pub param: String,
    /// Whether the weight is the left operand (a convolution's `W·patches`).
    pub weight_left: bool,
    /// The other operand.
    pub activation: NodeId,
    /// Output channels: the product's columns (right weight) or rows (left).
    pub channels: usize,
    /// Whether the channels are the parameter's first axis (`[out, ...]`: a
    /// convolution's kernel, PyTorch's `Linear.weight` read transposed) rather than its
    /// last (`Dense`'s `W: [inp, out]`).
    pub channels_first: bool,
}

/// The state name of a quantized parameter's per-channel scales.
pub fn scale_name(param: &str) -> String {
    format!("{param}.scale")
}

/// The state name of the activation scale of a quantized parameter's product.
pub fn input_scale_name(param: &str) -> String {
    format!("{param}.input_scale")
}

/// The `f32` state behind `id`, seen through a reshape or a transpose.
fn weight_state(g: &Graph, id: NodeId) -> Option<(NodeId, String)> {
    let s = match &g.node(id).op {
        Op::Reshape(_) | Op::Transpose(_) => g.operands(id)[0],
        _ => id,
    };
    match &g.node(s).op {
        Op::State { name, dtype, .. } if *dtype == DType::F32 => Some((s, name.clone())),
        _ => None,
    }
}

/// The rank-2 `f32` products of an activation by one of `params` (each parameter
/// read by products alone, each of which quantizes).
pub fn quantizable_products(g: &Graph, params: &[String]) -> Result<Vec<Product>, PassError> {
    let mut found: Vec<Product> = Vec::new();
    let mut states: Vec<(NodeId, String)> = Vec::new();
    for id in g.topo_order()? {
        if g.node(id).op != Op::MatMul || g.ty(id).dtype != DType::F32 {
            continue;
        }
        if g.ty(id).shape.len() != 2 {
            continue;
        }
        let ops = g.operands(id);
        let (left, right) = (weight_state(g, ops[0]), weight_state(g, ops[1]));
        let (weight_left, (state, name), activation) = match (left, right) {
            (None, Some(w)) => (false, w, ops[0]),
            (Some(w), None) => (true, w, ops[1]),
            _ => continue,
        };
        if !params.contains(&name) {
            continue;
        }
        let shape = &g.ty(id).shape;
        let transposed = matches!(
            g.node(if weight_left { ops[0] } else { ops[1] }).op,
            Op::Transpose(_)
        );
        found.push(Product {
            matmul: id,
            param: name.clone(),
            weight_left,
            activation,
            channels: if weight_left { shape[0] } else { shape[1] },
            channels_first: weight_left != transposed,
        });
        states.push((state, name));
    }
    // A parameter read by anything but its products (or read by two of them) stays
    // `f32`.
    let keep: Vec<bool> = states
        .iter()
        .map(|(state, name)| {
            let products = found.iter().filter(|p| &p.param == name).count();
            let readers_ok = g.users(*state).iter().all(|&u| match &g.node(u).op {
                Op::MatMul => true,
                Op::Reshape(_) | Op::Transpose(_) => g
                    .users(u)
                    .iter()
                    .all(|&v| matches!(g.node(v).op, Op::MatMul)),
                _ => false,
            });
            products == 1 && readers_ok
        })
        .collect();
    Ok(found
        .into_iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(p))
        .collect())
}

/// Rewrites `products` (from [`quantizable_products`] on this graph) as the module
/// says.
pub fn quantize_products(g: &mut Graph, products: &[Product]) -> Result<(), PassError> {
    for p in products {
        let ops = g.operands(p.matmul);
        let w_operand = if p.weight_left { ops[0] } else { ops[1] };
        let (state, _) = weight_state(g, w_operand).ok_or_else(|| {
            PassError::Missing(format!("`{}` is no longer a product's weight", p.param))
        })?;
        let w_shape = g.ty(state).shape.clone();
        let wq = g.add(
            Op::State {
                name: p.param.clone(),
                dtype: DType::I8,
                shape: w_shape,
            },
            &[],
        )?;
        let wq = match &g.node(w_operand).op {
            Op::Reshape(s) => g.add(Op::Reshape(s.clone()), &[wq])?,
            Op::Transpose(perm) => g.add(Op::Transpose(perm.clone()), &[wq])?,
            _ => wq,
        };
        let scalar_state = |g: &mut Graph, name: String, shape: Vec<usize>| {
            g.add(
                Op::State {
                    name,
                    dtype: DType::F32,
                    shape,
                },
                &[],
            )
        };
        let sx = scalar_state(g, input_scale_name(&p.param), vec![])?;
        // A convolution's patches are quantized before they are cut (each value once,
        // not once per window; padding's zeros quantize to 0).
        let mut chain = Vec::new();
        let mut at = p.activation;
        while let Op::Reshape(_) | Op::Transpose(_) = &g.node(at).op {
            chain.push(g.node(at).op.clone());
            at = g.operands(at)[0];
        }
        let (x, patches) = match &g.node(at).op {
            Op::Patches(win) => (g.operands(at)[0], Some(*win)),
            _ => (p.activation, None),
        };
        let xs = g.ty(x).shape.clone();
        // `x · (1 / s_x)`: one division, not one per element.
        let one = g.add(
            Op::Const {
                value: 1.0,
                dtype: DType::F32,
            },
            &[],
        )?;
        let inv = g.add(Op::Binary(BinaryOp::Div), &[one, sx])?;
        let bx = g.add(Op::Broadcast(xs.clone()), &[inv])?;
        let scaled = g.add(Op::Binary(BinaryOp::Mul), &[x, bx])?;
        let half = splat(g, 0.5, &xs)?;
        let shifted = g.add(Op::Binary(BinaryOp::Add), &[scaled, half])?;
        let rounded = g.add(Op::Unary(UnaryOp::Floor), &[shifted])?;
        let lo = splat(g, -127.0, &xs)?;
        let hi = splat(g, 127.0, &xs)?;
        let clamped = g.add(Op::Binary(BinaryOp::Max), &[rounded, lo])?;
        let clamped = g.add(Op::Binary(BinaryOp::Min), &[clamped, hi])?;
        let q = g.add(Op::Cast(DType::I8), &[clamped])?;
        let q = match patches {
            Some(win) => {
                let mut q = g.add(Op::Patches(win), &[q])?;
                for op in chain.into_iter().rev() {
                    q = g.add(op, &[q])?;
                }
                q
            }
            None => q,
        };
        let acc = if p.weight_left {
            g.add(Op::MatMul, &[wq, q])?
        } else {
            g.add(Op::MatMul, &[q, wq])?
        };
        let accf = g.add(Op::Cast(DType::F32), &[acc])?;
        let ys = g.ty(accf).shape.clone();
        let sw = scalar_state(g, scale_name(&p.param), vec![p.channels])?;
        let sw = if p.weight_left {
            g.add(Op::Reshape(vec![p.channels, 1]), &[sw])?
        } else {
            g.add(Op::Reshape(vec![1, p.channels]), &[sw])?
        };
        let sw = g.add(Op::Broadcast(ys.clone()), &[sw])?;
        let by = g.add(Op::Broadcast(ys.clone()), &[sx])?;
        let scale = g.add(Op::Binary(BinaryOp::Mul), &[sw, by])?;
        let y = g.add(Op::Binary(BinaryOp::Mul), &[accf, scale])?;
        g.replace_uses(p.matmul, y);
        g.remove(p.matmul);
        // The f32 weight (and the view of it the product read) is gone: a state is
        // declared once.
        if w_operand != state && g.users(w_operand).is_empty() {
            g.remove(w_operand);
        }
        if g.users(state).is_empty() {
            g.remove(state);
        }
    }
    Ok(())
}

fn splat(g: &mut Graph, v: f64, shape: &[usize]) -> Result<NodeId, PassError> {
    let c = g.add(
        Op::Const {
            value: v,
            dtype: DType::F32,
        },
        &[],
    )?;
    Ok(g.add(Op::Broadcast(shape.to_vec()), &[c])?)
}
