//! `dnnc sample --prompt`: text from a character-level language model. The model's
//! `forward` maps `i32[B, T]` character ids to next-character logits `[B, T, V]`; the
//! vocabulary comes from the weights (`dnnc.vocabulary`, saved by `train` from the
//! `text` dataset). Each new character is drawn from the logits at the last position
//! of the last `T` characters (a shorter context is padded on the left with newlines),
//! divided by the temperature and cut to the `top_k` largest.

use std::path::Path;

use dnnc_ir::Port;
use dnnc_lower::Mode;
use dnnc_runtime::checkpoint;
use dnnc_tensor::{DType, Data, Tensor};

use crate::backend::BackendKind;
use crate::error::RunError;
use crate::run::{initial_params, scalar_i64, Job, Weights, VOCABULARY_KEY};
use crate::steps::{forward, PassOptions};

/// What to write.
pub struct TextSample<'p> {
    pub prompt: &'p str,
    /// Characters to add after the prompt.
    pub length: usize,
    /// Divides the logits (> 0; 1 leaves them).
    pub temperature: f64,
    /// Keep only the `k` most likely characters (`None`: all).
    pub top_k: Option<usize>,
    pub seed: u64,
}

/// The prompt followed by `length` drawn characters.
pub fn generate(
    job: &Job<'_>,
    weights: &Path,
    s: &TextSample<'_>,
    backend: BackendKind,
    passes: &PassOptions,
) -> Result<String, RunError> {
    let meta = checkpoint::metadata(weights)?;
    let vocab: Vec<char> = meta
        .get(VOCABULARY_KEY)
        .ok_or_else(|| {
            RunError::NotRunnable(format!(
                "{}: the weights have no vocabulary (`{VOCABULARY_KEY}`): train the model on a `text` dataset to sample text",
                weights.display()
            ))
        })?
        .chars()
        .collect();
    let mut ids: Vec<i32> = Vec::new();
    for c in s.prompt.chars() {
        let id = vocab.iter().position(|&v| v == c).ok_or_else(|| {
            RunError::NotRunnable(format!(
                "the prompt's character {c:?} is not in the model's vocabulary of {} characters",
                vocab.len()
            ))
        })?;
        ids.push(id as i32);
    }
    let l = forward(job.db, job.file, job.item, Mode::Predict, 1, passes)?;
    let (dtype, window) = l
        .graph
        .input_named("input")
        .map(|n| (l.graph.ty(n).dtype, l.graph.ty(n).shape.clone()))
        .ok_or_else(|| RunError::Internal("the inference graph has no input".into()))?;
    let (&[1, t], true) = (window.as_slice(), dtype.is_int()) else {
        return Err(RunError::NotRunnable(format!(
            "sampling text needs a model whose `forward` takes character ids `[B, T]`; this one takes {dtype}{window:?}"
        )));
    };
    let store = backend.store();
    store.set_all(&initial_params(&l.params, Weights::Saved(weights))?)?;
    let mut exe = backend.compile(l.graph, &store)?;
    let pad = vocab.iter().position(|&c| c == '\n').unwrap_or(0) as i32;
    let mut rng = dnnc_runtime::SplitMix64::new(dnnc_runtime::rng::mix64(s.seed));
    let key = scalar_i64(0);
    let mut out: String = s.prompt.to_string();
    for _ in 0..s.length {
        let start = ids.len().saturating_sub(t);
        let mut context = vec![pad; t - (ids.len() - start)];
        context.extend_from_slice(&ids[start..]);
        let input = Tensor {
            dtype: DType::I32,
            shape: vec![1, t],
            data: Data::I32(context),
        }
        .cast(dtype);
        exe.step(&[("input", &input), (Port::RngKey.name(), &key)])?;
        let y = exe
            .output("output")
            .ok_or_else(|| RunError::Internal("the inference graph has no output".into()))?;
        let v = *y.shape.last().unwrap_or(&0);
        if y.shape.len() != 3 || v != vocab.len() {
            return Err(RunError::NotRunnable(format!(
                "sampling text needs next-character logits `[B, T, {}]` from `forward`; it returns {:?}",
                vocab.len(),
                y.shape
            )));
        }
        let logits = y.to_f32_vec();
        let last = &logits[logits.len() - v..];
        let next = draw(last, s.temperature, s.top_k, &mut rng);
        ids.push(next as i32);
        out.push(vocab[next]);
    }
    Ok(out)
}

/// A class drawn from `softmax(logits / temperature)` restricted to the `top_k`
/// largest logits.
fn draw(
    logits: &[f32],
    temperature: f64,
    top_k: Option<usize>,
    rng: &mut dnnc_runtime::SplitMix64,
) -> usize {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(top_k.unwrap_or(order.len()).clamp(1, logits.len().max(1)));
    let top = f64::from(logits[order[0]]);
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((f64::from(logits[i]) - top) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
    for (k, w) in weights.iter().enumerate() {
        if u < *w {
            return order[k];
        }
        u -= w;
    }
    order[order.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawing_respects_top_k_and_temperature() {
        let mut rng = dnnc_runtime::SplitMix64::new(1);
        let logits = [0.0, 5.0, 1.0, 4.9];
        for _ in 0..100 {
            assert_eq!(draw(&logits, 1.0, Some(1), &mut rng), 1);
            assert!(matches!(draw(&logits, 1.0, Some(2), &mut rng), 1 | 3));
        }
        // A low temperature concentrates on the largest logit.
        let hits = (0..200)
            .filter(|_| draw(&logits, 0.01, None, &mut rng) == 1)
            .count();
        assert!(hits >= 195, "{hits}");
    }
}
