//! Gradual magnitude pruning during training (`prune = magnitude(...)`, see
//! [`dnnc_settings::Prune`]): which parameters are pruned, the target sparsity of each
//! step, and the masks. The step graphs apply the masks after every update
//! (`dnnc_passes::optimizer::mask_updates`); the run recomputes them here, on the host,
//! every `every` steps of the ramp — the smallest magnitudes of each parameter (or of
//! all of them, `scope = "global"`) — and zeroes the newly pruned weights at once, so a
//! checkpoint written between two steps already has them.

use dnnc_lower::ParamInfo;
use dnnc_settings::Prune;
use dnnc_tensor::{DType, Data, Tensor};

use crate::error::RunError;
use crate::store::StateStore;

/// The parameters pruning applies to: trainable, `f32`, of rank 2 or more (the
/// matrices of `Dense`, the kernels of `Conv2d`; not biases or norms).
pub fn pruned_params(params: &[ParamInfo]) -> Vec<String> {
    params
        .iter()
        .filter(|p| !p.frozen && !p.buffer && p.shape.len() >= 2 && p.dtype == DType::F32)
        .map(|p| p.name.clone())
        .collect()
}

/// A run's pruning schedule.
pub struct Pruner {
    cfg: Prune,
    params: Vec<String>,
    /// The first and last step of the ramp.
    t0: usize,
    t1: usize,
}

impl Pruner {
    /// For `params` (see [`pruned_params`]) over `epochs` of `steps_per_epoch` steps.
    pub fn new(cfg: &Prune, params: Vec<String>, epochs: usize, steps_per_epoch: usize) -> Pruner {
        let end = cfg.end_epoch.unwrap_or(epochs).clamp(1, epochs.max(1));
        let t0 = (cfg.start_epoch.max(1) - 1) * steps_per_epoch;
        let t1 = (end * steps_per_epoch).max(t0 + 1);
        Pruner {
            cfg: cfg.clone(),
            params,
            t0,
            t1,
        }
    }

    /// The target sparsity after `t` steps: Zhu & Gupta's cubic ramp.
    pub fn target(&self, t: usize) -> f64 {
        if t < self.t0 {
            return 0.0;
        }
        let frac = ((t - self.t0) as f64 / (self.t1 - self.t0) as f64).min(1.0);
        self.cfg.sparsity * (1.0 - (1.0 - frac).powi(3))
    }

    /// The sparsity to prune to before step `t` (0-based), when the masks are due:
    /// every `every` steps from the ramp's start, and once it has ended.
    pub fn due(&self, t: usize) -> Option<f64> {
        let on_ramp =
            t > self.t0 && t < self.t1 && (t - self.t0).is_multiple_of(self.cfg.every.max(1));
        (on_ramp || t == self.t1).then(|| self.target(t))
    }

    /// Recomputes the masks for `sparsity` from the weights in `store` and zeroes the
    /// pruned weights. Masks only grow: a weight once pruned stays pruned.
    pub fn apply(&self, store: &StateStore, sparsity: f64) -> Result<(), RunError> {
        let mut weights = Vec::with_capacity(self.params.len());
        for name in &self.params {
            let w = store.get(name).ok_or_else(|| {
                RunError::Internal(format!("pruning: the store has no parameter `{name}`"))
            })?;
            let mask_name = dnnc_passes::optimizer::pruning_mask(name);
            let mask = store
                .get(&mask_name)
                .map(|m| m.to_f32_vec())
                .unwrap_or_else(|| vec![0.0; w.len()]);
            weights.push((name, w, mask_name, mask));
        }
        let magnitude = |w: &Tensor, mask: &[f32]| -> Vec<f32> {
            w.to_f32_vec()
                .iter()
                .zip(mask)
                .map(|(v, &m)| if m > 0.5 { 0.0 } else { v.abs() })
                .collect()
        };
        let global = if self.cfg.global {
            let all: Vec<f32> = weights
                .iter()
                .flat_map(|(_, w, _, m)| magnitude(w, m))
                .collect();
            Some(threshold(all, sparsity))
        } else {
            None
        };
        for (name, w, mask_name, mut mask) in weights {
            let mags = magnitude(&w, &mask);
            let (cut, ties) = global.unwrap_or_else(|| threshold(mags.clone(), sparsity));
            let mut values = w.to_f32_vec();
            // Prune everything below the cut and as many at it as the count needs.
            let mut at_cut = ties;
            for ((v, m), &mag) in values.iter_mut().zip(mask.iter_mut()).zip(&mags) {
                let prune = mag < cut || (mag == cut && at_cut > 0);
                if mag == cut && prune && *m <= 0.5 {
                    at_cut -= 1;
                }
                if prune || *m > 0.5 {
                    *m = 1.0;
                    *v = 0.0;
                }
            }
            store.set(name, &with_data(&w, values))?;
            store.set(&mask_name, &with_data(&w, mask))?;
        }
        Ok(())
    }

    /// The fraction of zeros over all pruned parameters together.
    pub fn overall(&self, store: &StateStore) -> f64 {
        let (mut zeros, mut all) = (0usize, 0usize);
        for name in &self.params {
            if let Some(w) = store.get(name) {
                let w = w.to_f32_vec();
                zeros += w.iter().filter(|&&v| v == 0.0).count();
                all += w.len();
            }
        }
        zeros as f64 / all.max(1) as f64
    }

    /// Each pruned parameter's fraction of zeros in `store`.
    pub fn sparsities(&self, store: &StateStore) -> Vec<(String, f64)> {
        self.params
            .iter()
            .filter_map(|name| {
                let w = store.get(name)?.to_f32_vec();
                let zeros = w.iter().filter(|&&v| v == 0.0).count();
                Some((name.clone(), zeros as f64 / w.len().max(1) as f64))
            })
            .collect()
    }
}

/// The magnitude below which `sparsity` of `mags` fall, and how many equal to it must
/// go too to reach the count.
fn threshold(mut mags: Vec<f32>, sparsity: f64) -> (f32, usize) {
    let count = ((mags.len() as f64) * sparsity).floor() as usize;
    if count == 0 {
        return (f32::NEG_INFINITY, 0);
    }
    let (_, &mut cut, _) = mags.select_nth_unstable_by(count - 1, f32::total_cmp);
    let below = mags.iter().filter(|&&m| m < cut).count();
    (cut, count - below)
}

fn with_data(like: &Tensor, values: Vec<f32>) -> Tensor {
    Tensor {
        dtype: DType::F32,
        shape: like.shape.clone(),
        data: Data::F32(values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prune(sparsity: f64, start: usize, end: Option<usize>, every: usize) -> Prune {
        Prune {
            sparsity,
            start_epoch: start,
            end_epoch: end,
            global: false,
            every,
        }
    }

    #[test]
    fn the_ramp_is_cubic_from_start_to_end() {
        // 10 epochs of 10 steps; the ramp from epoch 2 (step 10) to the end of epoch 6.
        let p = Pruner::new(&prune(0.8, 2, Some(6), 5), vec![], 10, 10);
        assert_eq!(p.target(0), 0.0);
        assert_eq!(p.target(10), 0.0);
        assert!((p.target(35) - 0.8 * (1.0 - 0.5f64.powi(3))).abs() < 1e-12);
        assert_eq!(p.target(60), 0.8);
        assert_eq!(p.target(99), 0.8);
        let due: Vec<usize> = (0..100).filter(|&t| p.due(t).is_some()).collect();
        assert_eq!(due, vec![15, 20, 25, 30, 35, 40, 45, 50, 55, 60]);
    }

    #[test]
    fn thresholds_count_ties() {
        assert_eq!(threshold(vec![3.0, 1.0, 2.0, 4.0], 0.5), (2.0, 1));
        assert_eq!(threshold(vec![1.0, 1.0, 1.0, 1.0], 0.5), (1.0, 2));
        assert_eq!(threshold(vec![1.0, 2.0], 0.0), (f32::NEG_INFINITY, 0));
    }

    #[test]
    fn masks_prune_the_smallest_and_only_grow() {
        let store = StateStore::new(false);
        let w = Tensor::f32(vec![2, 3], vec![0.1, -5.0, 0.3, -0.2, 4.0, 0.05]).unwrap();
        store.set("fc.W", &w).unwrap();
        let p = Pruner::new(&prune(0.5, 1, None, 1), vec!["fc.W".into()], 1, 1);
        p.apply(&store, 0.5).unwrap();
        assert_eq!(
            store.get("fc.W").unwrap().to_f32_vec(),
            vec![0.0, -5.0, 0.3, 0.0, 4.0, 0.0]
        );
        // Weights that grow back past the cut stay pruned; the count rises to 4/6.
        let grown = Tensor::f32(vec![2, 3], vec![9.0, -5.0, 0.3, 0.0, 4.0, 0.0]).unwrap();
        store.set("fc.W", &grown).unwrap();
        p.apply(&store, 0.67).unwrap();
        assert_eq!(
            store.get("fc.W").unwrap().to_f32_vec(),
            vec![0.0, -5.0, 0.0, 0.0, 4.0, 0.0]
        );
        assert_eq!(p.sparsities(&store), vec![("fc.W".to_string(), 4.0 / 6.0)]);
    }
}
