//! A model instance: one [`Instance`] per compiled program, parameters kept in step
//! between them.
//!
//! Training programs (one per compiled batch size) share the parameters and the
//! optimizer state: the one that ran last holds them, and they are copied to another
//! before it runs. Inference programs get the parameters copied in before they run
//! after a change.

use std::collections::HashMap;
use std::path::Path;

use dnnc_exec::library::{Entry, LibraryDesc};
use dnnc_exec::{Instance, LoopFn};
use dnnc_ir::Port;
use dnnc_tensor::{DType, Tensor};

/// A model behind a `NAME_t *`.
pub struct Model {
    pub desc: LibraryDesc,
    /// Inference programs, by batch size (ascending).
    forward: Vec<(usize, Instance)>,
    /// Training programs, by batch size (ascending).
    train: Vec<(usize, Instance)>,
    /// Host copies of every state (parameters and optimizer state).
    states: HashMap<String, Tensor>,
    /// The training program holding the live states, if any ran.
    resident: Option<usize>,
    /// Whether the inference programs' parameters are older than `states`.
    forward_stale: bool,
    /// Optimizer steps taken (the `step` input of training programs).
    step: u64,
}

fn instances(entries: &[Entry], loops: &[LoopFn]) -> Result<Vec<(usize, Instance)>, String> {
    let mut out = Vec::new();
    for e in entries {
        let end = e.first_loop + e.program.loop_count;
        let fns = loops
            .get(e.first_loop..end)
            .ok_or("the library's loop table is too short for its programs")?;
        out.push((
            e.batch,
            Instance::new(&e.program, Some(fns)).map_err(|e| e.to_string())?,
        ));
    }
    out.sort_by_key(|(b, _)| *b);
    Ok(out)
}

impl Model {
    /// A model from its description, the initial parameters (safetensors bytes) and
    /// the library's loop functions.
    pub fn new(desc: LibraryDesc, weights: &[u8], loops: &[LoopFn]) -> Result<Model, String> {
        if loops.len() != desc.loop_count {
            return Err("the library's loop table does not match its description".into());
        }
        if desc.forward.is_empty() {
            return Err("the library has no inference program".into());
        }
        let forward = instances(&desc.forward, loops)?;
        let train = instances(&desc.train, loops)?;
        let mut m = Model {
            desc,
            forward,
            train,
            states: HashMap::new(),
            resident: None,
            forward_stale: true,
            step: 0,
        };
        // Every state starts at zero (optimizer moments); parameters from the weights.
        for (_, inst) in m.train.iter().chain(&m.forward) {
            for name in inst.state_names() {
                if !m.states.contains_key(name) {
                    let t = inst.state(name).ok_or("a state vanished")?;
                    m.states.insert(name.to_string(), t);
                }
            }
        }
        m.set_params(
            &dnnc_runtime::checkpoint::load_bytes_into(
                Path::new("<embedded weights>"),
                weights,
                &m.expected(),
            )
            .map_err(|e| e.to_string())?,
        )?;
        Ok(m)
    }

    fn expected(&self) -> Vec<(String, DType, Vec<usize>)> {
        self.desc
            .params
            .iter()
            .map(|p| (p.name.clone(), p.dtype, p.shape.clone()))
            .collect()
    }

    /// Brings `states` up to date with the training program holding them.
    fn collect(&mut self) -> Result<(), String> {
        if let Some(r) = self.resident {
            let inst = &self.train[r].1;
            for name in inst.state_names() {
                if let Some(t) = self.states.get_mut(name) {
                    inst.read_state_into(name, t).map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Replaces the parameters (in the order of the description's `params`).
    fn set_params(&mut self, params: &[Tensor]) -> Result<(), String> {
        self.collect()?;
        for (p, t) in self.desc.params.iter().zip(params) {
            self.states.insert(p.name.clone(), t.clone());
        }
        // Every program reloads from `states` before it next runs.
        self.resident = None;
        self.forward_stale = true;
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
        self.collect()?;
        let tensors: Vec<(String, &Tensor)> = self
            .desc
            .params
            .iter()
            .map(|p| {
                self.states
                    .get(&p.name)
                    .map(|t| (p.name.clone(), t))
                    .ok_or_else(|| format!("no value for parameter `{}`", p.name))
            })
            .collect::<Result<_, _>>()?;
        dnnc_runtime::checkpoint::save(path, &tensors).map_err(|e| e.to_string())
    }

    /// Runs inference on `batch` samples: `input` holds `batch × input size` floats,
    /// `output` receives `batch × output size`.
    pub fn forward(
        &mut self,
        input: &[f32],
        batch: usize,
        output: &mut [f32],
    ) -> Result<(), String> {
        let (isz, osz) = (self.desc.input.size(), self.desc.output.size());
        if batch == 0 || batch > self.desc.max_batch {
            return Err(format!(
                "batch {batch} is out of range: forward takes 1 to {} samples",
                self.desc.max_batch
            ));
        }
        if self.forward_stale {
            self.collect()?;
            for (_, inst) in &mut self.forward {
                for (name, t) in &self.states {
                    inst.set_state(name, t).map_err(|e| e.to_string())?;
                }
            }
            self.forward_stale = false;
        }
        let mut done = 0;
        while done < batch {
            let left = batch - done;
            // The smallest program that holds what is left (padded with zero rows:
            // inference treats rows independently, and a row's result does not depend
            // on the batch it is in), else the largest.
            let pick = self
                .forward
                .iter()
                .position(|(b, _)| *b >= left)
                .unwrap_or(self.forward.len() - 1);
            let (b, inst) = &mut self.forward[pick];
            let rows = (*b).min(left);
            let buf = inst
                .input_f32_mut(&self.desc.input.name)
                .ok_or("the inference program has no float input")?;
            buf[..rows * isz].copy_from_slice(&input[done * isz..(done + rows) * isz]);
            buf[rows * isz..].fill(0.0);
            inst.run().map_err(|e| e.to_string())?;
            let out = inst
                .output_f32(&self.desc.output.name)
                .ok_or("the inference program has no float output")?;
            output[done * osz..(done + rows) * osz].copy_from_slice(&out[..rows * osz]);
            done += rows;
        }
        Ok(())
    }

    /// One optimizer step on `batch` samples; `fields` holds one slice per data field
    /// (floats, or integers for integer fields). Returns the loss, or the C API's code
    /// and message: `-1` for data the model cannot take (a label out of range), `-2`
    /// for a failure — a loss that is not finite among them, after which the model
    /// holds the weights of before the step.
    pub fn train_step(
        &mut self,
        fields: &[FieldData<'_>],
        batch: usize,
    ) -> Result<f32, (i32, String)> {
        let failed = |e: String| (-2, e);
        let Some(t) = self.train.iter().position(|(b, _)| *b == batch) else {
            let sizes: Vec<String> = self.train.iter().map(|(b, _)| b.to_string()).collect();
            return Err(failed(if sizes.is_empty() {
                "this library was compiled without a training step".into()
            } else {
                format!(
                    "train_step was compiled for batches of {} samples, not {batch}",
                    sizes.join(" or ")
                )
            }));
        };
        if self.resident != Some(t) {
            self.collect().map_err(failed)?;
            let inst = &mut self.train[t].1;
            for (name, v) in &self.states {
                inst.set_state(name, v).map_err(|e| failed(e.to_string()))?;
            }
            self.resident = Some(t);
        }
        let key = dnnc_runtime::rng::step_key(self.desc.seed, self.step);
        let inst = &mut self.train[t].1;
        for (f, data) in self.desc.fields.iter().zip(fields) {
            let n = batch * f.size();
            match data {
                FieldData::F32(v) => {
                    let buf = inst.input_f32_mut(&f.name).ok_or_else(|| {
                        failed(format!("field `{}` is not a float field", f.name))
                    })?;
                    buf.copy_from_slice(&v[..n]);
                }
                FieldData::I32(v) => {
                    let mut buf = inst
                        .input_mut(&f.name)
                        .filter(|b| b.dtype().is_int())
                        .ok_or_else(|| {
                            failed(format!("field `{}` is not an integer field", f.name))
                        })?;
                    let dtype = buf.dtype();
                    let (lo, hi) = dtype.int_range().unwrap_or((i64::MIN, i64::MAX));
                    if let Some(i) = v[..n]
                        .iter()
                        .position(|&x| !(lo..=hi).contains(&i64::from(x)))
                    {
                        return Err((
                            -1,
                            format!(
                                "`{}`[{i}] = {} does not fit the field's type {dtype}",
                                f.name, v[i]
                            ),
                        ));
                    }
                    buf.copy_cast(dnnc_tensor::Slice::I32(&v[..n]));
                }
            }
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
            return Err((
                -2,
                format!(
                    "the loss became {loss} at step {}; the model keeps the weights of before the step (a learning rate too high, or data that are not finite?)",
                    self.step + 1
                ),
            ));
        }
        self.step += 1;
        self.forward_stale = true;
        Ok(loss as f32)
    }
}

/// One field's data for a training step.
pub enum FieldData<'a> {
    F32(&'a [f32]),
    I32(&'a [i32]),
}
