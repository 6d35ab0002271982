//! The standard library's recurrent layers as ONNX's own ops: `LSTM`, `GRU` and `RNN`
//! (time first: the layers' batch-first `[B, T, F]` transposed around them, since
//! onnxruntime does not run `layout = 1`), their PyTorch
//! weights reordered to ONNX's gate order (LSTM `i, f, g, o` → `i, o, f, c`; GRU
//! `r, z, n` → `z, r, h` with `linear_before_reset`, PyTorch's form of the new gate).
//! The layer's outputs (`seq`, `h`, `c`) become ONNX's `Y` without its direction axis,
//! `Y_h`, `Y_c`; the unrolled primitives are then not written. A stack of layers
//! (`num_layers > 1`: the upper layers' weights in `weight_ih_stack`, ...) is one ONNX
//! node per layer, each reading the sequence of the one below, and its `Y_h`, `Y_c` are
//! the layers' concatenated. A `BiLSTM` is ONNX's bidirectional `LSTM` (the `_reverse`
//! weights as its second direction), each layer's `Y` `[T, 2, B, H]` joined to
//! `[T, B, 2·H]` (forward first, as the layer's sequence), and its `Y_h`, `Y_c` in
//! PyTorch's order (layer 0 forward, layer 0 backward, layer 1 forward, ...).

use std::collections::HashMap;

use dnnc_ir::{Graph, NodeId};
use dnnc_tensor::Tensor;

use crate::batch::Dim;
use crate::proto::{attr_int, attr_ints, attr_string};
use crate::writer::Writer;
use crate::{ExportError, LayerCall};

/// The gate blocks of PyTorch's stacked weights in ONNX's order, per layer.
fn gate_order(layer: &str) -> Option<&'static [usize]> {
    match layer {
        "LSTM" | "BiLSTM" => Some(&[0, 3, 1, 2]),
        "GRU" => Some(&[1, 0, 2]),
        "RNN" => Some(&[0]),
        _ => None,
    }
}

/// Whether `call` is a recurrent layer this module writes: one input `[B, T, F]`
/// still in the graph, and its sequence output too.
pub fn supported(call: &LayerCall, g: &Graph, dims: &HashMap<NodeId, Vec<Dim>>) -> bool {
    gate_order(&call.layer).is_some()
        && call.inputs.len() == 1
        && !call.outputs.is_empty()
        && dims.contains_key(&call.inputs[0])
        && dims.contains_key(&call.outputs[0])
        && g.ty(call.inputs[0]).rank() == 3
}

/// Rows of `t` (`[blocks·h, ...]`) with its `h`-row blocks in `order`, flattened.
fn reorder(t: &Tensor, order: &[usize]) -> Vec<f32> {
    let v = t.to_f32_vec();
    let h = t.shape[0] / order.len();
    let row: usize = t.shape[1..].iter().product();
    order
        .iter()
        .flat_map(|&b| v[b * h * row..(b + 1) * h * row].iter().copied())
        .collect()
}

/// Writes the ONNX node of `call`; returns its outputs `Y`, `Y_h` (and `Y_c`).
pub fn write(
    w: &mut Writer<'_>,
    call: &LayerCall,
    weights: &HashMap<String, Tensor>,
) -> Result<Vec<String>, ExportError> {
    let order = gate_order(&call.layer).expect("checked by `supported`");
    // Each weight as the model declares it (its `state` node): the file's tensor must
    // have that shape.
    let declared: HashMap<&str, &[usize]> =
        w.g.node_ids()
            .into_iter()
            .filter_map(|n| match &w.g.node(n).op {
                dnnc_ir::Op::State { name, shape, .. } => Some((name.as_str(), shape.as_slice())),
                _ => None,
            })
            .collect();
    // A parameter of the layer by its local name.
    let qualified = |local: &str| {
        if call.path.is_empty() {
            local.to_string()
        } else {
            format!("{}.{local}", call.path)
        }
    };
    let get = |local: &str| {
        let name = qualified(local);
        let t = weights
            .get(&name)
            .ok_or_else(|| ExportError(format!("the weights have no tensor `{name}`")))?;
        match declared.get(name.as_str()).copied() {
            Some(shape) if shape == t.shape.as_slice() => Ok(t),
            Some(shape) => Err(ExportError(format!(
                "`{name}` is {:?} in the weights, but the model's is {shape:?}",
                t.shape
            ))),
            None => Err(ExportError(format!("the model has no parameter `{name}`"))),
        }
    };
    // A bidirectional layer's second direction has the same weights `_reverse`.
    let bidirectional = call.layer == "BiLSTM";
    let directions: &[&str] = if bidirectional {
        &["", "_reverse"]
    } else {
        &[""]
    };
    // Each layer's weights, one `[w_ih, w_hh, b_ih, b_hh]` per direction.
    let mut layers: Vec<Vec<[Tensor; 4]>> = vec![Vec::new()];
    for d in directions {
        layers[0].push([
            get(&format!("weight_ih_l0{d}"))?.clone(),
            get(&format!("weight_hh_l0{d}"))?.clone(),
            get(&format!("bias_ih_l0{d}"))?.clone(),
            get(&format!("bias_hh_l0{d}"))?.clone(),
        ]);
    }
    // The upper layers' weights, stacked.
    let names = [
        "weight_ih_stack",
        "weight_hh_stack",
        "bias_ih_stack",
        "bias_hh_stack",
    ];
    if declared.contains_key(qualified(names[0]).as_str()) {
        for d in directions {
            let stacks: Vec<&Tensor> = names
                .iter()
                .map(|n| get(&format!("{n}{d}")))
                .collect::<Result<_, _>>()?;
            for k in 0..stacks[0].shape[0] {
                if layers.len() <= k + 1 {
                    layers.push(Vec::new());
                }
                layers[k + 1].push([0, 1, 2, 3].map(|i| stacks[i].entry(k)));
            }
        }
    }
    let op = if bidirectional { "LSTM" } else { &call.layer };
    let hint = call.layer.to_lowercase();
    let mut x = w.emit(
        "Transpose",
        &[w.name(call.inputs[0])],
        vec![attr_ints("perm", &[1, 0, 2])],
    );
    let n = if op == "LSTM" { 3 } else { 2 };
    let mut states: Vec<Vec<String>> = vec![Vec::new(); n - 1];
    for (k, per_direction) in layers.iter().enumerate() {
        let dirs = per_direction.len();
        let (gates_h, inp) = (per_direction[0][0].shape[0], per_direction[0][0].shape[1]);
        let hidden = gates_h / order.len();
        let f32s = |shape: Vec<usize>, v: Vec<f32>| Tensor::f32(shape, v).expect("sizes match");
        let (mut wv, mut rv, mut bv) = (Vec::new(), Vec::new(), Vec::new());
        for [w_ih, w_hh, b_ih, b_hh] in per_direction {
            wv.extend(reorder(w_ih, order));
            rv.extend(reorder(w_hh, order));
            bv.extend(reorder(b_ih, order));
            bv.extend(reorder(b_hh, order));
        }
        let wt = f32s(vec![dirs, gates_h, inp], wv);
        let rt = f32s(vec![dirs, gates_h, hidden], rv);
        let bt = f32s(vec![dirs, 2 * gates_h], bv);
        let suffix = if k == 0 {
            String::new()
        } else {
            format!("_l{k}")
        };
        let ins = vec![
            x,
            w.initializer(&format!("{hint}_W{suffix}"), &wt),
            w.initializer(&format!("{hint}_R{suffix}"), &rt),
            w.initializer(&format!("{hint}_B{suffix}"), &bt),
        ];
        let mut attrs = vec![attr_int("hidden_size", hidden as i64)];
        if call.layer == "GRU" {
            attrs.push(attr_int("linear_before_reset", 1));
        }
        if bidirectional {
            attrs.push(attr_string("direction", "bidirectional"));
        }
        let outs = w.emit_n(op, &ins, n, attrs);
        for (s, o) in states.iter_mut().zip(&outs[1..]) {
            s.push(o.clone());
        }
        x = if bidirectional {
            // `Y`: [T, 2, B, H] → [T, B, 2, H] → [T, B, 2·H], forward first.
            let t = w.emit(
                "Transpose",
                &[outs[0].clone()],
                vec![attr_ints("perm", &[0, 2, 1, 3])],
            );
            let mut shape = Tensor::scalar_i64(0);
            shape.shape = vec![3];
            shape.data = dnnc_tensor::Data::I64(vec![0, 0, -1]);
            let shape = w.initializer(&format!("{hint}_joined{suffix}"), &shape);
            w.emit("Reshape", &[t, shape], vec![])
        } else {
            // `Y`: [T, 1, B, H] → [T, B, H], the next layer's input.
            let mut axes = Tensor::scalar_i64(1);
            axes.shape = vec![1];
            let axes = w.initializer(&format!("{hint}_axes{suffix}"), &axes);
            w.emit("Squeeze", &[outs[0].clone(), axes], vec![])
        };
    }
    // `Y` of the top layer: [T, B, H] → [B, T, H]; `Y_h`, `Y_c` ([1, B, H] per layer)
    // concatenated.
    let mut outs = vec![w.emit("Transpose", &[x], vec![attr_ints("perm", &[1, 0, 2])])];
    for s in states {
        outs.push(if s.len() == 1 {
            s[0].clone()
        } else {
            w.emit("Concat", &s, vec![attr_int("axis", 0)])
        });
    }
    Ok(outs)
}

/// The layer's output `k` (node `id`): ONNX's output without its direction axis.
pub fn output(
    w: &mut Writer<'_>,
    outs: &[String],
    k: usize,
    id: NodeId,
) -> Result<String, ExportError> {
    let y = outs
        .get(k)
        .cloned()
        .ok_or_else(|| ExportError(format!("a recurrent layer has no output {k}")))?;
    let d = w.dims(id).to_vec();
    let s = w.shape(&d, true)?;
    Ok(w.emit("Reshape", &[y, s], vec![]))
}
