//! Data-parallel training (`mpirun -n N dnnc train`): every process takes its shard
//! of each batch (`dnnc_dist::shard` of the batch that one process would take, from
//! the same shuffled order), runs it through the forward-and-backward half of the
//! step ([`train_step_halves`](crate::steps::train_step_halves)), and then the
//! gradients and the reported values — each multiplied by the shard's share of the
//! batch — are summed over the processes in one all-reduce before every process
//! applies the same update half. Weighted so, the sum is the gradient of the batch's
//! mean loss, whatever N is and however unevenly the batch divides: what one process
//! computes from the same batch, up to the order of summation. (A loss that sums
//! over the batch instead of averaging would be scaled: dnnc's losses average.)
//!
//! Also here: the hashes that show the processes start from the same file, data and
//! weights and still hold the same parameters after every epoch, and the reduction of
//! sharded evaluation's sums.

use dnnc_dist::{hash_bytes, World, HASH_START};
use dnnc_ir::Port;
use dnnc_runtime::{MetricAccumulator, Split};
use dnnc_tensor::Tensor;

use crate::backend::Executable;
use crate::error::RunError;
use crate::run::scalar_f32;
use crate::store::StateStore;

/// What one training step reported, over the whole batch.
pub(crate) struct StepValues {
    /// The step's outputs (`loss` and metrics), means over the batch.
    pub values: Vec<(String, f64)>,
    /// The learning rate the update used.
    pub lr: Option<f64>,
}

/// The update half of one step of the plan and the buffer its gradients are
/// averaged in.
pub(crate) struct UpdateHalf {
    update: Box<dyn Executable>,
    /// Which output of `update` is the learning rate.
    lr_output: Option<usize>,
    /// The gradient states and their sizes, in the buffers' order.
    gradients: Vec<(String, usize)>,
    /// This process's weighted gradients and values, and their sum over the processes.
    part: Vec<f32>,
    sum: Vec<f32>,
}

impl UpdateHalf {
    /// `update` compiled against `store`; `gradients` names the parameters it updates
    /// with their element counts.
    pub fn new(update: Box<dyn Executable>, gradients: Vec<(String, usize)>) -> UpdateHalf {
        let lr_output = update
            .output_names()
            .iter()
            .position(|n| n == Port::LearningRate.name());
        UpdateHalf {
            update,
            lr_output,
            gradients: gradients
                .into_iter()
                .map(|(p, n)| (dnnc_passes::optimizer::gradient_state(&p), n))
                .collect(),
            part: Vec::new(),
            sum: Vec::new(),
        }
    }

    /// One step: `grads` (the forward-and-backward half for this process's `local`
    /// samples of a batch of `global`, `None` when the shard is empty) has run; its
    /// outputs `names` and the gradients in `store` are averaged over the processes,
    /// then the update runs with `extra` inputs (the learning-rate scale).
    pub fn run(
        &mut self,
        world: &World,
        store: &StateStore,
        grads: Option<&dyn Executable>,
        names: &[String],
        (local, global): (usize, usize),
        extra: &[(&str, &Tensor)],
    ) -> Result<StepValues, RunError> {
        let share = local as f32 / global as f32;
        let part = &mut self.part;
        part.clear();
        for (state, n) in &self.gradients {
            match grads {
                Some(_) => {
                    store.with_f32_mut(state, |g| part.extend(g.iter().map(|x| x * share)))?
                }
                None => part.resize(part.len() + n, 0.0),
            }
        }
        let at = part.len();
        for i in 0..names.len() {
            let v = match grads {
                Some(g) => g.output_scalar(i).unwrap_or(f64::NAN) as f32 * share,
                None => 0.0,
            };
            part.push(v);
        }
        self.sum.resize(part.len(), 0.0);
        world.sum(part, &mut self.sum, "the all-reduce of a step's gradients");
        let mut from = 0;
        for (state, n) in &self.gradients {
            let summed = &self.sum[from..from + n];
            store.with_f32_mut(state, |g| g.copy_from_slice(summed))?;
            from += n;
        }
        let values: Vec<(String, f64)> = names
            .iter()
            .zip(&self.sum[at..])
            .map(|(n, &v)| (n.clone(), f64::from(v)))
            .collect();
        let loss = values
            .iter()
            .find(|(n, _)| n == Port::Loss.name())
            .map_or(f64::NAN, |(_, v)| *v);
        let loss_t = scalar_f32(loss as f32);
        let mut inputs = vec![(Port::GlobalLoss.name(), &loss_t)];
        inputs.extend_from_slice(extra);
        self.update.step(&inputs)?;
        let lr = self.lr_output.and_then(|i| self.update.output_scalar(i));
        Ok(StepValues { values, lr })
    }
}

/// Replaces each float state of `names` (the buffers: batch norm's running
/// statistics) with its mean over the processes, so that evaluation and the
/// checkpoint see statistics of all the data and every process holds the same.
/// (`bf16` and `f16` buffers are averaged in f32 and rounded back.)
pub(crate) fn average_buffers(
    world: &World,
    store: &StateStore,
    names: &[String],
) -> Result<(), RunError> {
    let mut part: Vec<f32> = Vec::new();
    let mut buffers = Vec::new();
    for n in names {
        let t = store
            .get(n)
            .ok_or_else(|| RunError::Internal(format!("buffer `{n}` is not in the store")))?;
        if t.dtype.is_float() {
            part.extend(t.to_f32_vec());
            buffers.push((n, t));
        }
    }
    let mut sum = vec![0.0; part.len()];
    world.sum(&part, &mut sum, "the all-reduce of the buffers");
    let size = world.size() as f32;
    let mut from = 0;
    for (n, t) in buffers {
        let len = t.data.len();
        let mean: Vec<f32> = sum[from..from + len].iter().map(|s| s / size).collect();
        let mean =
            Tensor::f32(t.shape.clone(), mean).map_err(|e| RunError::Internal(e.to_string()))?;
        store.set(n, &mean.cast(t.dtype))?;
        from += len;
    }
    Ok(())
}

/// A hash of `split`'s samples (every field's shape and bytes).
pub(crate) fn hash_split(split: &Split) -> u64 {
    let mut h = hash_bytes(&(split.len() as u64).to_le_bytes(), HASH_START);
    for (name, t) in &split.fields {
        h = hash_tensor(name, t, h);
    }
    h
}

/// A hash of the states `names` (by name, in name order) in `store` that every
/// process holds alike: every float state (integer buffers, such as counters of
/// each process's own batches, are left out).
pub(crate) fn hash_params(store: &StateStore, names: &[String]) -> u64 {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    let mut h = HASH_START;
    for n in sorted {
        if let Some(t) = store.get(n).filter(|t| t.dtype.is_float()) {
            h = hash_tensor(n, &t, h);
        }
    }
    h
}

fn hash_tensor(name: &str, t: &Tensor, mut h: u64) -> u64 {
    h = hash_bytes(name.as_bytes(), h);
    for d in &t.shape {
        h = hash_bytes(&(*d as u64).to_le_bytes(), h);
    }
    hash_bytes(&t.data.to_le_bytes(), h)
}

/// `acc` (this process's share of an evaluation) summed over the processes, for the
/// metrics `names` (every process passes the same names, in the same order).
pub(crate) fn reduce_metrics(
    world: &World,
    acc: &MetricAccumulator,
    names: &[String],
) -> MetricAccumulator {
    if world.size() == 1 {
        return acc.clone();
    }
    let mut part: Vec<f64> = Vec::with_capacity(2 * names.len());
    for n in names {
        let count = acc.samples(n).unwrap_or(0) as f64;
        part.push(
            acc.value(n)
                .map_or(0.0, |v| if count > 0.0 { v * count } else { 0.0 }),
        );
        part.push(count);
    }
    let mut sum = vec![0.0; part.len()];
    world.sum(&part, &mut sum, "the all-reduce of an evaluation's metrics");
    let mut out = MetricAccumulator::new();
    for (n, pair) in names.iter().zip(sum.chunks(2)) {
        let (sum, count) = (pair[0], pair[1]);
        if count > 0.0 {
            out.add(n, sum / count, count as usize);
        }
    }
    out
}
