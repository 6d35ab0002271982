//! The run's settings, read from the checked `train` block into plain values.

use dnnc_passes::optimizer::{Optimizer, Schedule};
use dnnc_sema::settings::Setting;
use dnnc_sema::train::{EarlyStop, TrainSig};

/// Everything a run needs from the `train` block.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub batch: usize,
    pub epochs: usize,
    pub seed: u64,
    pub shuffle: bool,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub metrics: Vec<String>,
    pub early_stop: Option<EarlyStop>,
    pub checkpoint: Option<String>,
    /// Clip the gradients' global norm to this (0: no clipping).
    pub clip_norm: f64,
}

fn f(s: &Setting, name: &str, default: f64) -> f64 {
    s.float(name).unwrap_or(default)
}

fn b(s: &Setting, name: &str) -> bool {
    s.args
        .iter()
        .any(|(n, v)| &**n == name && matches!(v, dnnc_sema::ty::Static::Bool(true)))
}

pub fn optimizer(s: &Setting) -> Result<Optimizer, String> {
    Ok(match &*s.name {
        "sgd" => Optimizer::Sgd {
            lr: f(s, "lr", 0.01),
            momentum: f(s, "momentum", 0.0),
            nesterov: b(s, "nesterov"),
            weight_decay: f(s, "weight_decay", 0.0),
        },
        "adam" | "adamw" => Optimizer::Adam {
            lr: f(s, "lr", 1e-3),
            beta1: f(s, "beta1", 0.9),
            beta2: f(s, "beta2", 0.999),
            eps: f(s, "eps", 1e-8),
            weight_decay: f(
                s,
                "weight_decay",
                if &*s.name == "adamw" { 0.01 } else { 0.0 },
            ),
            decoupled: &*s.name == "adamw",
        },
        "rmsprop" => Optimizer::RmsProp {
            lr: f(s, "lr", 1e-2),
            alpha: f(s, "alpha", 0.99),
            eps: f(s, "eps", 1e-8),
            momentum: f(s, "momentum", 0.0),
            weight_decay: f(s, "weight_decay", 0.0),
        },
        other => return Err(format!("unknown optimizer `{other}`")),
    })
}

pub fn schedule(s: Option<&Setting>) -> Result<Schedule, String> {
    let Some(s) = s else {
        return Ok(Schedule::Constant);
    };
    Ok(match &*s.name {
        "constant" => Schedule::Constant,
        "step" => Schedule::Step {
            every: f(s, "every", 1.0) as usize,
            gamma: f(s, "gamma", 0.1),
        },
        "exponential" => Schedule::Exponential {
            gamma: f(s, "gamma", 0.9),
        },
        "cosine" => Schedule::Cosine {
            warmup_epochs: f(s, "warmup_epochs", 0.0) as usize,
            min_lr: f(s, "min_lr", 0.0),
        },
        "multistep" => {
            let mut milestones: Vec<usize> = s
                .ints("milestones")
                .into_iter()
                .map(|m| m.max(0) as usize)
                .collect();
            milestones.sort_unstable();
            Schedule::MultiStep {
                milestones,
                gamma: f(s, "gamma", 0.1),
            }
        }
        "reduce_on_plateau" => Schedule::ReduceOnPlateau {
            metric: s.str("metric").unwrap_or("test_loss").to_string(),
            patience: f(s, "patience", 10.0).max(0.0) as usize,
            factor: f(s, "factor", 0.1),
            min_lr: f(s, "min_lr", 0.0),
            maximize: b(s, "maximize"),
            threshold: f(s, "threshold", 1e-4),
        },
        other => return Err(format!("unknown schedule `{other}`")),
    })
}

impl RunConfig {
    pub fn from_sig(sig: &TrainSig) -> Result<RunConfig, String> {
        if !sig.steps.is_empty() || sig.models.len() != 1 {
            return Err("train blocks with several models or `step` blocks cannot run yet (they are checked only)".into());
        }
        let opt = sig
            .optimizer
            .as_ref()
            .ok_or("the train block has no valid optimizer")?;
        let schedule = schedule(sig.schedule.as_ref())?;
        if let Schedule::ReduceOnPlateau { metric, .. } = &schedule {
            // The log's metrics: `train_` and `test_` with `loss` or a listed metric.
            let known = |m: &str| m == "loss" || sig.metrics.iter().any(|k| **k == *m);
            let ok = ["train_", "test_"]
                .iter()
                .any(|p| metric.strip_prefix(p).is_some_and(known));
            if !ok {
                let mut names = vec!["loss".to_string()];
                names.extend(sig.metrics.iter().map(|m| m.to_string()));
                return Err(format!(
                    "`reduce_on_plateau` watches `{metric}`, which this run does not log; it logs `train_` and `test_` with {}",
                    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Ok(RunConfig {
            batch: sig.batch.max(1) as usize,
            epochs: sig.epochs.max(1) as usize,
            seed: sig.seed.max(0) as u64,
            shuffle: sig.shuffle,
            optimizer: optimizer(opt)?,
            schedule,
            metrics: sig.metrics.iter().map(|m| m.to_string()).collect(),
            early_stop: sig.early_stop.clone(),
            checkpoint: sig.checkpoint.clone(),
            clip_norm: opt.float("clip_norm").unwrap_or(0.0),
        })
    }
}
