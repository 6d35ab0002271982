//! Each node of an inference graph as ONNX nodes, in topological order: one `match`
//! over the IR's ops, so a new op is a compile error here until it has an ONNX form
//! (or an error saying it has none).

use std::collections::HashMap;

use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceKind, UnaryOp, Window2d};
use dnnc_tensor::{Data, Tensor};

use crate::batch::Dim;
use crate::patterns::{plan, relu_operand, Plan};
use crate::proto::{self, attr_float, attr_int, attr_ints, elem, Msg};
use crate::writer::{elem_of, info_dim, Writer};
use crate::{ExportError, Exported, OPSET};

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
    calls: &[crate::LayerCall],
) -> Result<Exported, ExportError> {
    let order = g.topo_order().map_err(|e| ExportError(e.to_string()))?;
    let plan = plan(g, &order, dims, calls);
    let mut recurrent_outputs: HashMap<usize, Vec<String>> = HashMap::new();
    let mut w = Writer::new(g, dims);
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
        // Only what the outputs need: a pattern's interior is written only if
        // something else reads it too.
        if !plan.live.contains(&id) || w.names.contains_key(&id) {
            continue;
        }
        let out = if let Some(&(call, k)) = plan.recurrent.get(&id) {
            if let std::collections::hash_map::Entry::Vacant(e) = recurrent_outputs.entry(call) {
                e.insert(crate::recurrent::write(&mut w, &calls[call], weights)?);
            }
            crate::recurrent::output(&mut w, &recurrent_outputs[&call], k, id)?
        } else {
            node(&mut w, &plan, id, weights)?
        };
        w.names.insert(id, out);
    }
    let mut outputs = Vec::new();
    for (name, id) in g.outputs() {
        let v = w.name(*id);
        w.push_node("Identity", &[v], std::slice::from_ref(name), vec![]);
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
    // A pattern's root reads its pattern's inputs (named in `plan`), not its operands,
    // which may not be written; every other node reads its operands.
    let ins: Vec<String> = if plan.is_root(g, id) {
        Vec::new()
    } else {
        g.operands(id)
            .iter()
            .map(|o| {
                w.names.get(o).cloned().ok_or_else(|| {
                    ExportError(format!(
                        "`{}` reads a value that was not written (an exporter bug)",
                        g.node(id).op.name()
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
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
            w.named_initializer(name, &t);
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
        Op::Iota { dtype, shape, axis } if w.dims(id).iter().any(|d| matches!(d, Dim::Batch(_))) => {
            // `0..n` along `axis` (`n` computed from the batch if it grows with it),
            // viewed with ones elsewhere and expanded to the whole shape.
            let d = w.dims(id).to_vec();
            let range = match d[*axis] {
                Dim::Fixed(n) => w.ints(&(0..n as i64).collect::<Vec<_>>()),
                Dim::Batch(k) => {
                    let n = w.shape(&[Dim::Batch(k)], false)?;
                    let limit = w.emit("Squeeze", &[n], vec![]);
                    let start = w.initializer("zero", &Tensor::scalar_i64(0));
                    let one = w.initializer("one", &Tensor::scalar_i64(1));
                    w.emit("Range", &[start, limit, one], vec![])
                }
            };
            let view: Vec<i64> = (0..d.len()).map(|a| if a == *axis { -1 } else { 1 }).collect();
            let view = w.ints(&view);
            let r = w.emit("Reshape", &[range, view], vec![]);
            let full = w.shape(&d, false)?;
            let r = w.emit("Expand", &[r, full], vec![]);
            if *dtype == DType::I64 {
                r
            } else {
                w.emit("Cast", &[r], vec![attr_int("to", elem_of(*dtype))])
            }
        }
        Op::Iota { dtype, shape, axis } => {
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
        Op::Binary(BinaryOp::Div) if ty.dtype.is_int() => {
            // dnnc divides integers rounding down (Python's `//`); ONNX's `Div`
            // truncates: `(a − a mod b) / b` is exact either way.
            let m = w.emit("Mod", &ins, vec![attr_int("fmod", 0)]);
            let d = w.emit("Sub", &[ins[0].clone(), m], vec![]);
            w.emit("Div", &[d, ins[1].clone()], vec![])
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
            // Along an axis whose result grows with the batch, the whole axis (to
            // its end, whatever the batch); elsewhere the written bounds.
            let out_dims = w.dims(id).to_vec();
            let mut e: Vec<i64> = Vec::new();
            for (a, d) in out_dims.iter().enumerate() {
                match d {
                    Dim::Batch(_) if starts[a] == 0 && steps[a] == 1 => e.push(i64::MAX),
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
        Op::ArgSort { axis, descending } => {
            // `TopK` of the whole axis returns it sorted, and its indices.
            let x = g.operands(id)[0];
            let Dim::Fixed(n) = w.dims(x)[*axis] else {
                return no_form(" along the batch axis");
            };
            let k = w.ints(&[n as i64]);
            let attrs = vec![
                attr_int("axis", *axis as i64),
                attr_int("largest", i64::from(*descending)),
                attr_int("sorted", 1),
            ];
            w.emit_n("TopK", &[ins[0].clone(), k], 2, attrs)[1].clone()
        }
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
