//! Building the graphs a run executes: the training step (forward, backward and
//! update), evaluation and inference, each for one batch size, through the pass
//! pipeline with the verifier after every pass.

use dnnc_ir::Graph;
use dnnc_lower::{lower, Lowered, Mode};
use dnnc_passes::optimizer::{add_training_step, StepConfig};
use dnnc_passes::pipeline::{Pipeline, PipelineOptions};
use dnnc_sema::{Db, SourceFile};

use crate::config::RunConfig;

/// How to run the pass pipeline.
#[derive(Default)]
pub struct PassOptions {
    /// Verify after every pass (always on in tests and debug builds).
    pub verify: bool,
    /// Print the graph after this pass (`all` for every pass).
    pub dump_after: Option<String>,
}

fn dump(opts: &PassOptions, pass: &str, g: &Graph) {
    if let Some(d) = &opts.dump_after {
        if d == pass || d == "all" {
            eprintln!("// after {pass}\n{}", dnnc_ir::print::to_text(g));
        }
    }
}

fn check(opts: &PassOptions, pass: &str, g: &Graph) -> Result<(), String> {
    if opts.verify {
        dnnc_ir::verify(g)
            .map_err(|e| format!("the IR is invalid after `{pass}`:\n  {}", e.join("\n  ")))?;
    }
    dump(opts, pass, g);
    Ok(())
}

fn cleanup(g: &mut Graph, opts: &PassOptions) -> Result<(), String> {
    let mut popts = PipelineOptions {
        verify: opts.verify,
        dump_after: opts.dump_after.clone(),
        dump: None,
    };
    Pipeline::standard().run(g, &mut popts)
}

/// The training step for `batch` samples.
pub fn train_step(
    db: &dyn Db,
    file: SourceFile,
    item: u32,
    cfg: &RunConfig,
    steps_per_epoch: usize,
    batch: usize,
    opts: &PassOptions,
) -> Result<Lowered, String> {
    let mut l = lower(db, file, item, Mode::Train, batch)?;
    check(opts, "lower", &l.graph)?;
    let trainable: Vec<String> = l
        .params
        .iter()
        .filter(|p| !p.frozen && !p.buffer)
        .map(|p| p.name.clone())
        .collect();
    let step = StepConfig {
        clip_norm: cfg.clip_norm,
        optimizer: cfg.optimizer.clone(),
        schedule: cfg.schedule.clone(),
        steps_per_epoch,
        epochs: cfg.epochs,
    };
    add_training_step(&mut l.graph, &trainable, &step)?;
    check(opts, "autodiff", &l.graph)?;
    cleanup(&mut l.graph, opts)?;
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
) -> Result<Lowered, String> {
    let mut l = lower(db, file, item, mode, batch)?;
    check(opts, "lower", &l.graph)?;
    cleanup(&mut l.graph, opts)?;
    Ok(l)
}
