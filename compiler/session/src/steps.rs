//! Building the graphs a run executes: the training step (forward, backward and
//! update), evaluation and inference, each for one batch size, through the pass
//! pipeline with the verifier after every pass.

use crate::error::RunError;
use dnnc_lower::{lower, Lowered, Mode};
use dnnc_passes::optimizer::{add_gradients, add_updates, StepConfig};
use dnnc_passes::pipeline::{Pipeline, PipelineOptions};
use dnnc_sema::{Db, SourceFile};

use dnnc_settings::Training;

/// How to run the pass pipeline.
#[derive(Default)]
pub struct PassOptions {
    /// Verify after every pass (always on in tests and debug builds).
    pub verify: bool,
    /// Print the graph after this pass (`all` for every pass).
    pub dump_after: Option<String>,
}

impl PassOptions {
    /// The pipeline's options for these: the one verify-and-dump path, used after the
    /// session's own stages and after every clean-up pass. Fails for a `--dump-after`
    /// that names no pass.
    fn pipeline(&self) -> Result<PipelineOptions, RunError> {
        let p = PipelineOptions {
            verify: self.verify,
            dump_after: self.dump_after.clone(),
            dump: None,
        };
        p.check()?;
        Ok(p)
    }
}

/// The training step for `batch` samples.
pub fn train_step(
    db: &dyn Db,
    file: SourceFile,
    item: u32,
    cfg: &Training,
    steps_per_epoch: usize,
    batch: usize,
    opts: &PassOptions,
) -> Result<Lowered, RunError> {
    let mut popts = opts.pipeline()?;
    let mut l = lower(db, file, item, Mode::Train, batch)?;
    popts.after_pass("lower", &l.graph)?;
    let trainable: Vec<String> = l
        .params
        .iter()
        .filter(|p| !p.frozen && !p.buffer)
        .map(|p| p.name.clone())
        .collect();
    let step = StepConfig {
        clip_norm: cfg.optimizer.clip_norm,
        optimizer: cfg.optimizer.optimizer.clone(),
        schedule: cfg.schedule.clone(),
        steps_per_epoch,
        epochs: cfg.epochs,
    };
    let grads = add_gradients(&mut l.graph, &trainable)?;
    popts.after_pass("autodiff", &l.graph)?;
    add_updates(&mut l.graph, grads, &step)?;
    popts.after_pass("optimizer", &l.graph)?;
    Pipeline::standard().run(&mut l.graph, &mut popts)?;
    Ok(l)
}

/// Evaluation (loss and metrics, `training` false) or inference for `batch` samples.
pub fn forward(
    db: &dyn Db,
    file: SourceFile,
    item: u32,
    mode: Mode,
    batch: usize,
    opts: &PassOptions,
) -> Result<Lowered, RunError> {
    let mut popts = opts.pipeline()?;
    let mut l = lower(db, file, item, mode, batch)?;
    popts.after_pass("lower", &l.graph)?;
    Pipeline::standard().run(&mut l.graph, &mut popts)?;
    Ok(l)
}
