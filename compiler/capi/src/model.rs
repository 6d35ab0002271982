//! A model instance: one [`Instance`] per compiled program, all bound to one state
//! store, so the training steps (of every batch size and every step of a plan) and
//! the inference programs read and update the same parameters and optimizer state —
//! nothing is copied between them.

use std::path::Path;

use dnnc_exec::library::{Entry, LibraryDesc};
use dnnc_exec::{Instance, LoopFn, Store};
use dnnc_ir::Port;
use dnnc_tensor::{DType, Tensor};

/// A model behind a `NAME_t *`.
pub struct Model {
    pub desc: LibraryDesc,
    /// Inference programs: (model, batch size, instance), by batch size within a model.
    forward: Vec<(usize, usize, Instance)>,
    /// Training programs: (step, batch size, instance).
    train: Vec<(usize, usize, Instance)>,
    /// Parameters, buffers, optimizer state and counters.
    store: Store,
    /// Batches trained (the random key of each step derives from it).
    step: u64,
}

fn instances(
    entries: &[Entry],
    loops: &[LoopFn],
    store: &Store,
    key: fn(&Entry) -> usize,
) -> Result<Vec<(usize, usize, Instance)>, String> {
    let mut out = Vec::new();
    for e in entries {
        let end = e.first_loop + e.program.loop_count;
        let fns = loops
            .get(e.first_loop..end)
            .ok_or("the library's loop table is too short for its programs")?;
        let inst =
            Instance::with_store(&e.program, Some(fns), Some(store)).map_err(|e| e.to_string())?;
        out.push((key(e), e.batch, inst));
    }
    out.sort_by_key(|(k, b, _)| (*k, *b));
    Ok(out)
}

impl Model {
    /// A model from its description, the initial parameters (safetensors bytes) and
    /// the library's loop functions.
    pub fn new(desc: LibraryDesc, weights: &[u8], loops: &[LoopFn]) -> Result<Model, String> {
        if loops.len() != desc.loop_count {
            return Err("the library's loop table does not match its description".into());
        }
        if desc.forward.is_empty() || desc.models.is_empty() {
            return Err("the library has no inference program".into());
        }
        // States start at zero (optimizer moments and counters); parameters from the
        // weights.
        let store = Store::new();
        let forward = instances(&desc.forward, loops, &store, |e| e.model)?;
        let train = instances(&desc.train, loops, &store, |e| e.step)?;
        let m = Model {
            desc,
            forward,
            train,
            store,
            step: 0,
        };
        let params = dnnc_runtime::checkpoint::load_bytes_into(
            Path::new("<embedded weights>"),
            weights,
            &m.expected(),
        )
        .map_err(|e| e.to_string())?;
        m.set_params(&params)?;
        Ok(m)
    }

    fn expected(&self) -> Vec<(String, DType, Vec<usize>)> {
        self.desc
            .params
            .iter()
            .map(|p| (p.name.clone(), p.dtype, p.shape.clone()))
            .collect()
    }

    /// Replaces the parameters (in the order of the description's `params`).
    fn set_params(&self, params: &[Tensor]) -> Result<(), String> {
        for (p, t) in self.desc.params.iter().zip(params) {
            self.store.set(&p.name, t).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Loads parameters from a safetensors file.
    pub fn load_weights(&mut self, path: &Path) -> Result<(), String> {
        let ts = dnnc_runtime::checkpoint::load_into(path, &self.expected())
            .map_err(|e| e.to_string())?;
        self.set_params(&ts)
    }

    /// Writes the parameters as a safetensors file.
    pub fn save_weights(&mut self, path: &Path) -> Result<(), String> {
        let values: Vec<(String, Tensor)> = self
            .desc
            .params
            .iter()
            .map(|p| {
                self.store
                    .get(&p.name)
                    .map(|t| (p.name.clone(), t))
                    .ok_or_else(|| format!("no value for parameter `{}`", p.name))
            })
            .collect::<Result<_, _>>()?;
        let tensors: Vec<(String, &Tensor)> = values.iter().map(|(n, t)| (n.clone(), t)).collect();
        dnnc_runtime::checkpoint::save(path, &tensors).map_err(|e| e.to_string())
    }

    /// Runs inference of model `model` on `batch` samples: `input` holds `batch × input
    /// size` floats, `output` receives `batch × output size`.
    pub fn forward(
        &mut self,
        model: usize,
        input: FieldData<'_>,
        batch: usize,
        output: &mut [f32],
    ) -> Result<(), (i32, String)> {
        let failed = |e: String| (-2, e);
        let desc = self
            .desc
            .models
            .get(model)
            .ok_or_else(|| (-1, format!("the library has no model {model}")))?;
        let (isz, osz) = (desc.input.size(), desc.output.size());
        let (input_name, output_name) = (desc.input.name.clone(), desc.output.name.clone());
        if batch == 0 || batch > self.desc.max_batch {
            return Err((
                -1,
                format!(
                    "batch {batch} is out of range: forward takes 1 to {} samples",
                    self.desc.max_batch
                ),
            ));
        }
        let programs: Vec<usize> = (0..self.forward.len())
            .filter(|&i| self.forward[i].0 == model)
            .collect();
        let last = *programs
            .last()
            .ok_or_else(|| failed("the model has no inference program".into()))?;
        let mut done = 0;
        while done < batch {
            let left = batch - done;
            // The smallest program that holds what is left (padded with zero rows:
            // inference treats rows independently, and a row's result does not depend
            // on the batch it is in), else the largest.
            let pick = programs
                .iter()
                .copied()
                .find(|&i| self.forward[i].1 >= left)
                .unwrap_or(last);
            let (_, b, inst) = &mut self.forward[pick];
            let rows = (*b).min(left);
            let part = input.slice(done * isz..(done + rows) * isz);
            fill_input(inst, &input_name, part, ("input", "input"), done * isz)?;
            // Ids beyond an embedding's rows are the caller's data.
            inst.check_inputs().map_err(|e| (-1, e.to_string()))?;
            inst.run().map_err(|e| failed(e.to_string()))?;
            let out = inst
                .output_f32(&output_name)
                .ok_or_else(|| failed("the inference program has no float output".into()))?;
            output[done * osz..(done + rows) * osz].copy_from_slice(&out[..rows * osz]);
            done += rows;
        }
        Ok(())
    }

    /// One batch of training on `batch` samples — every step of the plan in order (one
    /// in the single-model form); `fields` holds one slice per data field (floats, or
    /// integers for integer fields). Returns each step's loss, or the C API's code and
    /// message: `-1` for data the model cannot take (a label out of range), `-2` for a
    /// failure — a loss that is not finite among them, after which the model holds the
    /// weights of before that step.
    pub fn train_step(
        &mut self,
        fields: &[FieldData<'_>],
        batch: usize,
    ) -> Result<Vec<f32>, (i32, String)> {
        let failed = |e: String| (-2, e);
        let steps = self.desc.steps.len().max(1);
        let mut losses = Vec::with_capacity(steps);
        for s in 0..steps {
            let Some(t) = self
                .train
                .iter()
                .position(|(k, b, _)| *k == s && *b == batch)
            else {
                let sizes: Vec<String> = self
                    .train
                    .iter()
                    .filter(|(k, _, _)| *k == s)
                    .map(|(_, b, _)| b.to_string())
                    .collect();
                return Err(failed(if sizes.is_empty() {
                    "this library was compiled without a training step".into()
                } else {
                    format!(
                        "train_step was compiled for batches of {} samples, not {batch}",
                        sizes.join(" or ")
                    )
                }));
            };
            let draw = self.step * steps as u64 + s as u64;
            let key = dnnc_runtime::rng::step_key(self.desc.seed, draw);
            let inst = &mut self.train[t].2;
            for (f, data) in self.desc.fields.iter().zip(fields) {
                // A step reads the fields its loss needs (a generator's step none).
                if !inst.has_input(&f.name) {
                    continue;
                }
                let n = batch * f.size();
                let part = data.slice(0..n);
                let label = format!("`{}`", f.name);
                fill_input(inst, &f.name, part, (&label, "field"), 0)?;
            }
            // Labels out of range are the caller's data, not a failure of the model.
            inst.check_inputs().map_err(|e| (-1, e.to_string()))?;
            if let Some(mut buf) = inst.input_mut(Port::RngKey.name()) {
                buf.copy_cast(dnnc_tensor::Slice::I64(&[key]));
            }
            inst.run().map_err(|e| failed(e.to_string()))?;
            let loss = inst
                .output_names()
                .position(|n| n == Port::Loss.name())
                .and_then(|i| inst.output_scalar(i))
                .ok_or_else(|| failed("the training step has no loss".into()))?;
            if !loss.is_finite() {
                // The step's updates are guarded by a finite loss: nothing changed.
                let which = match self.desc.steps.get(s) {
                    Some(name) if steps > 1 => format!(" of step `{name}`"),
                    _ => String::new(),
                };
                return Err((
                    -2,
                    format!(
                        "the loss{which} became {loss} at step {}; the model keeps the weights of before the step (a learning rate too high, or data that are not finite?)",
                        self.step + 1
                    ),
                ));
            }
            losses.push(loss as f32);
        }
        self.step += 1;
        Ok(losses)
    }
}

/// One field's data for a training step.
/// Writes `data` into input `name` of `inst`, zeros after it (the padding rows of a
/// larger program). An integer that does not fit the input's type is the caller's
/// data (`-1`, naming `label[offset + i]`); `data` of the wrong kind for the input is a
/// failure (`-2`). `kind` says what the input is to the caller (`field`, `input`).
fn fill_input(
    inst: &mut Instance,
    name: &str,
    data: FieldData<'_>,
    (label, kind): (&str, &str),
    offset: usize,
) -> Result<(), (i32, String)> {
    let wrong = |what: &str| (-2, format!("{kind} `{name}` is not {what} {kind}"));
    match data {
        FieldData::F32(v) => {
            let buf = inst.input_f32_mut(name).ok_or_else(|| wrong("a float"))?;
            buf[..v.len()].copy_from_slice(v);
            buf[v.len()..].fill(0.0);
        }
        FieldData::I32(v) => {
            let mut buf = inst
                .input_mut(name)
                .filter(|b| b.dtype().is_int())
                .ok_or_else(|| wrong("an integer"))?;
            let dtype = buf.dtype();
            let (lo, hi) = dtype.int_range().unwrap_or((i64::MIN, i64::MAX));
            if let Some(i) = v.iter().position(|&x| !(lo..=hi).contains(&i64::from(x))) {
                let at = offset + i;
                return Err((
                    -1,
                    format!(
                        "{label}[{at}] = {} does not fit the {kind}'s type {dtype}",
                        v[i]
                    ),
                ));
            }
            if v.len() < buf.len() {
                let mut padded = v.to_vec();
                padded.resize(buf.len(), 0);
                buf.copy_cast(dnnc_tensor::Slice::I32(&padded));
            } else {
                buf.copy_cast(dnnc_tensor::Slice::I32(v));
            }
        }
    }
    Ok(())
}

pub enum FieldData<'a> {
    F32(&'a [f32]),
    I32(&'a [i32]),
}

impl<'a> FieldData<'a> {
    /// Elements `r` of the data.
    fn slice(&self, r: std::ops::Range<usize>) -> FieldData<'a> {
        match self {
            FieldData::F32(v) => FieldData::F32(&v[r]),
            FieldData::I32(v) => FieldData::I32(&v[r]),
        }
    }
}
