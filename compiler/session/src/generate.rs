//! `dnnc sample --prompt`: text from a character-level language model. The model's
//! `forward` maps `i32[B, T]` character ids to next-character logits `[B, T, V]`; the
//! vocabulary comes from the weights (`dnnc.vocabulary`, saved by `train` from the
//! `text` dataset). Each new character is drawn from the logits after the last
//! character, divided by the temperature and cut to the `top_k` largest.
//!
//! A model with a `decode(x, state..) -> (logits, state..)` method is decoded
//! incrementally: one character per call, its state (a recurrent state, a key/value
//! cache) carried from call to call, starting from zeros. Its context is at most the
//! `T` characters `forward` was trained on: once `T` characters went through, the
//! state restarts from the last `T / 2`. Without `decode` (or with
//! `TextSample::incremental` off), every character re-runs `forward` on the last `T`
//! characters; a shorter context is padded on the right and read at its last
//! character, which for a causal model is what decoding from its start gives.
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
    /// Decode with the model's `decode` method when it has one.
    pub incremental: bool,
}

/// What [`generate`] wrote and how fast.
pub struct Generated {
    pub text: String,
    /// Whether the model's `decode` carried a state from character to character.
    pub incremental: bool,
    /// Seconds spent producing the characters after the prompt.
    pub seconds: f64,
    /// How many times the model ran for them (with `decode`, once per character plus
    /// the characters fed again after each restart).
    pub runs: usize,
}

/// A character-level language model ready to run.
pub struct LanguageModel {
    /// The characters of its vocabulary, by id.
    pub vocab: Vec<char>,
    /// What `forward` was trained on: the longest context it sees.
    pub context: usize,
    /// Whether `model` decodes incrementally with `decode`.
    pub incremental: bool,
    /// The id an empty context starts from (a newline, if the vocabulary has one).
    pub pad: i32,
    pub model: Box<dyn NextLogits>,
}

/// The language model of `job` with `weights`, decoding incrementally when asked
/// and the model has a `decode` method.
pub fn open(
    job: &Job<'_>,
    weights: &Path,
    incremental: bool,
    backend: BackendKind,
    passes: &PassOptions,
) -> Result<LanguageModel, RunError> {
    let vocab = vocabulary(weights)?;
    let pad = vocab.iter().position(|&c| c == '\n').unwrap_or(0) as i32;
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
    let incremental =
        incremental && dnnc_lower::model_has_method(job.db, job.file, job.item, "decode")?;
    let model: Box<dyn NextLogits> = if incremental {
        let l = forward(job.db, job.file, job.item, Mode::Decode, 1, passes)?;
        store.set_all(&initial_params(&l.params, Weights::Saved(weights))?)?;
        let types = StateTypes::of(&l.graph)?;
        Box::new(Decoder::new(backend.compile(l.graph, &store)?, types, t))
    } else {
        store.set_all(&initial_params(&l.params, Weights::Saved(weights))?)?;
        Box::new(Window {
            exe: backend.compile(l.graph, &store)?,
            t,
            dtype,
            pad,
            runs: 0,
        })
    };
    Ok(LanguageModel {
        vocab,
        context: t,
        incremental,
        pad,
        model,
    })
}

/// The prompt followed by `length` drawn characters.
pub fn generate(
    job: &Job<'_>,
    weights: &Path,
    s: &TextSample<'_>,
    backend: BackendKind,
    passes: &PassOptions,
) -> Result<Generated, RunError> {
    let LanguageModel {
        vocab,
        incremental,
        pad,
        mut model,
        ..
    } = open(job, weights, s.incremental, backend, passes)?;
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
    if ids.is_empty() {
        ids.push(pad);
    }
    let started = std::time::Instant::now();
    let runs_before = model.runs();
    let mut rng = dnnc_runtime::SplitMix64::new(dnnc_runtime::rng::mix64(s.seed));
    let mut out: String = s.prompt.to_string();
    for _ in 0..s.length {
        let logits = model.next_logits(&ids)?;
        if logits.len() != vocab.len() {
            return Err(RunError::NotRunnable(format!(
                "sampling text needs next-character logits over the {} characters of the vocabulary; the model gives {}",
                vocab.len(),
                logits.len()
            )));
        }
        let next = draw(&logits, s.temperature, s.top_k, &mut rng);
        ids.push(next as i32);
        out.push(vocab[next]);
    }
    let seconds = started.elapsed().as_secs_f64();
    if std::env::var_os("DNNC_PROFILE").is_some() {
        crate::bench::profile(model.executable(), 100, "sample");
    }
    Ok(Generated {
        text: out,
        incremental,
        seconds,
        runs: model.runs() - runs_before,
    })
}

/// The vocabulary saved with `weights`.
fn vocabulary(weights: &Path) -> Result<Vec<char>, RunError> {
    let meta = checkpoint::metadata(weights)?;
    Ok(meta
        .get(VOCABULARY_KEY)
        .ok_or_else(|| {
            RunError::NotRunnable(format!(
                "{}: the weights have no vocabulary (`{VOCABULARY_KEY}`): train the model on a `text` dataset to sample text",
                weights.display()
            ))
        })?
        .chars()
        .collect())
}

/// A language model run character by character.
pub trait NextLogits {
    /// The logits of the character after `ids` (not empty; each call's `ids` extends
    /// the previous call's by one character).
    fn next_logits(&mut self, ids: &[i32]) -> Result<Vec<f32>, RunError>;
    /// What runs the model (profiled with `DNNC_PROFILE`).
    fn executable(&mut self) -> &mut dyn crate::backend::Executable;
    /// How many times the model ran so far.
    fn runs(&self) -> usize;
}

/// `forward` on the last `t` characters.
struct Window {
    exe: Box<dyn crate::backend::Executable>,
    t: usize,
    dtype: DType,
    pad: i32,
    runs: usize,
}

impl NextLogits for Window {
    fn executable(&mut self) -> &mut dyn crate::backend::Executable {
        self.exe.as_mut()
    }

    fn runs(&self) -> usize {
        self.runs
    }

    fn next_logits(&mut self, ids: &[i32]) -> Result<Vec<f32>, RunError> {
        // A causal model's logits at a position depend on the characters up to it
        // only: a short context is padded on the right, as if decoded from its start.
        let start = ids.len().saturating_sub(self.t);
        let mut context = ids[start..].to_vec();
        let last = context.len() - 1;
        context.resize(self.t, self.pad);
        let input = Tensor {
            dtype: DType::I32,
            shape: vec![1, self.t],
            data: Data::I32(context),
        }
        .cast(self.dtype);
        self.exe
            .step(&[("input", &input), (Port::RngKey.name(), &scalar_i64(0))])?;
        self.runs += 1;
        let y = self
            .exe
            .output("output")
            .ok_or_else(|| RunError::Internal("the inference graph has no output".into()))?;
        let v = *y.shape.last().unwrap_or(&0);
        if y.shape.len() != 3 {
            return Err(RunError::NotRunnable(format!(
                "sampling text needs next-character logits `[B, T, V]` from `forward`; it returns {:?}",
                y.shape
            )));
        }
        let logits = y.to_f32_vec();
        Ok(logits[last * v..(last + 1) * v].to_vec())
    }
}

/// The model's `decode`, its states carried from call to call.
pub struct Decoder {
    exe: Box<dyn crate::backend::Executable>,
    /// The most characters the state may have seen.
    t: usize,
    types: StateTypes,
    /// Where in `ids` the state started.
    start: usize,
    /// Characters the state has seen.
    seen: usize,
    runs: usize,
}

/// The element type of `decode`'s input and the zero states it starts from.
pub struct StateTypes {
    input: DType,
    /// Each state: its input, the output that carries its next value, and the zeros
    /// it starts from.
    states: Vec<(String, String, Tensor)>,
}

impl StateTypes {
    /// Read from `decode`'s graph ([`Mode::Decode`]).
    pub fn of(g: &dnnc_ir::Graph) -> Result<StateTypes, RunError> {
        let input = g
            .input_named("input")
            .map(|n| g.ty(n).clone())
            .ok_or_else(|| RunError::Internal("the decoding graph has no input".into()))?;
        if input.shape != [1] || !input.dtype.is_int() {
            return Err(RunError::NotRunnable(format!(
                "`decode` must take one character id per sequence first (`i32[B]`); it takes {}{:?}",
                input.dtype, input.shape
            )));
        }
        let states = (0..)
            .map_while(|i| {
                let name = format!("state.{i}");
                let n = g.input_named(&name)?;
                let zeros = Tensor::zeros(g.ty(n).dtype, g.ty(n).shape.clone());
                Some((name, format!("output.{}", i + 1), zeros))
            })
            .collect();
        Ok(StateTypes {
            input: input.dtype,
            states,
        })
    }
}

impl Decoder {
    /// `decode`'s compiled graph (batch 1), restarting after `t` characters.
    pub fn new(exe: Box<dyn crate::backend::Executable>, types: StateTypes, t: usize) -> Decoder {
        Decoder {
            exe,
            t: t.max(2),
            types,
            start: 0,
            seen: 0,
            runs: 0,
        }
    }

    /// Runs one character through `decode` (from the zero state if it is the first
    /// since a restart); returns the logits after it.
    fn feed(&mut self, id: i32) -> Result<Vec<f32>, RunError> {
        let x = Tensor {
            dtype: DType::I32,
            shape: vec![1],
            data: Data::I32(vec![id]),
        }
        .cast(self.types.input);
        let key = scalar_i64(0);
        let mut inputs: Vec<(&str, &Tensor)> = vec![("input", &x), (Port::RngKey.name(), &key)];
        if self.seen == 0 {
            inputs.extend(self.types.states.iter().map(|(n, _, t)| (n.as_str(), t)));
        }
        self.exe.step(&inputs)?;
        for (input, output, _) in &self.types.states {
            self.exe.carry(output, input)?;
        }
        self.seen += 1;
        self.runs += 1;
        let y = self
            .exe
            .output("output.0")
            .ok_or_else(|| RunError::Internal("the decoding graph has no output".into()))?;
        Ok(y.to_f32_vec())
    }
}

impl NextLogits for Decoder {
    fn executable(&mut self) -> &mut dyn crate::backend::Executable {
        self.exe.as_mut()
    }

    fn runs(&self) -> usize {
        self.runs
    }

    fn next_logits(&mut self, ids: &[i32]) -> Result<Vec<f32>, RunError> {
        let fresh = self.seen == 0 || ids.len() - self.start > self.t;
        if !fresh {
            return self.feed(ids[ids.len() - 1]);
        }
        // (Re)start from zeros on the last `t` (the first time) or `t / 2` characters.
        let keep = if self.seen == 0 { self.t } else { self.t / 2 };
        self.start = ids.len().saturating_sub(keep);
        self.seen = 0;
        let mut logits = Vec::new();
        for &id in &ids[self.start..] {
            logits = self.feed(id)?;
        }
        Ok(logits)
    }
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
