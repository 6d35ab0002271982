//! `dnnc compile FILE --weights W -o model.onnx`: the model's inference graph (what
//! `dnnc predict` runs) with the weights of `W`, as an ONNX model with a symbolic batch
//! dimension ([`dnnc_onnx`]).

use std::collections::HashMap;
use std::path::Path;

use dnnc_lower::Mode;
use dnnc_runtime::checkpoint;

use crate::error::RunError;
use crate::run::Job;
use crate::steps::{forward_lowered, PassOptions};
use dnnc_lower::lower;

/// The batch sizes the graph is lowered at to tell which dimensions are the batch's.
const BATCHES: (usize, usize) = (2, 3);

/// Writes the ONNX model of `job`'s inference graph with the weights in `weights` to
/// `out` (atomically); returns the ONNX op types with their counts.
pub fn export(
    job: &Job<'_>,
    name: &str,
    weights: &Path,
    out: &Path,
    passes: &PassOptions,
) -> Result<std::collections::BTreeMap<String, usize>, RunError> {
    let (tensors, meta) = checkpoint::load_with_metadata(weights)?;
    let tensors: HashMap<_, _> = tensors.into_iter().collect();
    let mut quantized = crate::quantize::quantized_among(tensors.keys(), &meta);
    quantized.sort();
    if let Some(p) = quantized.first() {
        return Err(RunError::NotRunnable(format!(
            "{}: `{p}` is quantized to int8; ONNX export takes the model's f32 weights",
            weights.display()
        )));
    }
    let small = following_calls(job, BATCHES.0, passes)?;
    let large = following_calls(job, BATCHES.1, passes)?;
    let calls: Vec<dnnc_onnx::LayerCall> = small
        .layer_calls
        .iter()
        .map(|c| dnnc_onnx::LayerCall {
            layer: c.layer.clone(),
            path: c.path.clone(),
            inputs: c.inputs.clone(),
            outputs: c.outputs.clone(),
        })
        .collect();
    let model = dnnc_onnx::export(name, &small.graph, &large.graph, BATCHES, &tensors, &calls)
        .map_err(|e| RunError::NotRunnable(format!("cannot export to ONNX: {e}")))?;
    dnnc_data::files::write_atomically(out, &model.bytes).map_err(|e| RunError::write(out, e))?;
    Ok(model.ops)
}

/// The inference graph for `batch` samples with its layer calls' inputs and outputs
/// followed through the passes (a pass may replace one by an equal node: the last of a
/// stack's sequences by the scan's carry), so that the exporter finds them.
fn following_calls(
    job: &Job<'_>,
    batch: usize,
    passes: &PassOptions,
) -> Result<dnnc_lower::Lowered, RunError> {
    let mut l = lower(job.db, job.file, job.item, Mode::Predict, batch)?;
    let pin = |call: usize, side: &str, k: usize| format!("layer call {call} {side} {k}");
    for (i, c) in l.layer_calls.iter().enumerate() {
        for (side, ids) in [("input", &c.inputs), ("output", &c.outputs)] {
            for (k, &id) in ids.iter().enumerate() {
                l.graph.set_output(pin(i, side, k), id);
            }
        }
    }
    let mut l = forward_lowered(job.db, job.file, job.item, l, passes)?;
    for (i, c) in l.layer_calls.iter_mut().enumerate() {
        for (side, ids) in [("input", &mut c.inputs), ("output", &mut c.outputs)] {
            for (k, id) in ids.iter_mut().enumerate() {
                if let Some(now) = l.graph.remove_output(&pin(i, side, k)) {
                    *id = now;
                }
            }
        }
    }
    Ok(l)
}
