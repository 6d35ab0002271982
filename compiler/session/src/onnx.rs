//! `dnnc compile FILE --weights W -o model.onnx`: the model's inference graph (what
//! `dnnc predict` runs) with the weights of `W`, as an ONNX model with a symbolic batch
//! dimension ([`dnnc_onnx`]).

use std::collections::HashMap;
use std::path::Path;

use dnnc_lower::Mode;
use dnnc_runtime::checkpoint;

use crate::error::RunError;
use crate::run::Job;
use crate::steps::{forward, PassOptions};

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
    let small = forward(job.db, job.file, job.item, Mode::Predict, BATCHES.0, passes)?;
    let large = forward(job.db, job.file, job.item, Mode::Predict, BATCHES.1, passes)?;
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
