//! Building the graphs a run executes: the training step (forward, backward and
//! update), evaluation and inference, each for one batch size, through the pass
//! pipeline with the verifier after every pass.

use crate::error::RunError;
use dnnc_ir::Graph;
use dnnc_lower::{lower, Lowered, Mode};
use dnnc_passes::optimizer::{
    add_gradient_updates, add_gradients, add_optimizers, update_graph, Gradients, StepConfig,
    TrainedParam,
};
use dnnc_passes::pipeline::{Pipeline, PipelineOptions};
use dnnc_passes::precision::round_matmul_operands;
use dnnc_sema::{Db, SourceFile};

use dnnc_settings::{Precision, Training};

/// How to run the pass pipeline.
#[derive(Clone, Default)]
pub struct PassOptions {
    /// Verify after every pass (always on in tests and debug builds).
    pub verify: bool,
    /// Print the graph after this pass (`all` for every pass).
    pub dump_after: Option<String>,
    /// The precision of matrix products (`--precision`); `None`: the train block's.
    pub precision: Option<Precision>,
    /// Parameters whose products run in int8 (weights quantized by `dnnc quantize`).
    pub int8: Vec<String>,
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

/// The model a parameter belongs to: its binding name's first segment in the
/// multi-model form (`G.fc1.W` → `G`), `model` in the single-model form.
pub fn model_of(cfg: &Training, param: &str) -> String {
    if cfg.multi {
        param.split('.').next().unwrap_or(param).to_string()
    } else {
        "model".to_string()
    }
}

/// The namespace of the optimizer of update `k` of step `s`: `opt` in the
/// single-model form; `opt.STEP` (or `opt.STEP.K` when the step has several
/// `update`s) in the multi-model form.
pub fn optimizer_namespace(cfg: &Training, s: usize, k: usize) -> String {
    let step = &cfg.steps[s];
    match (cfg.multi, step.updates.len()) {
        (false, _) => "opt".into(),
        (true, 1) => format!("opt.{}", step.name),
        (true, _) => format!("opt.{}.{k}", step.name),
    }
}

/// Step `s` lowered for `batch` samples with the gradients of each of its `update`s
/// (with respect to the parameters of the models it names, not frozen ones nor
/// buffers): what the whole step and its data-parallel halves share.
struct WithGradients {
    l: Lowered,
    popts: PipelineOptions,
    /// Per `update`: its gradients, its optimizer's settings and its parameters.
    groups: Vec<(Gradients, StepConfig, Vec<TrainedParam>)>,
}

#[allow(clippy::too_many_arguments)]
fn lower_with_gradients(
    db: &dyn Db,
    file: SourceFile,
    item: u32,
    cfg: &Training,
    s: usize,
    steps_per_epoch: usize,
    batch: usize,
    opts: &PassOptions,
) -> Result<WithGradients, RunError> {
    let mut popts = opts.pipeline()?;
    let mut l = lower(db, file, item, Mode::Train(s), batch)?;
    popts.after_pass("lower", &l.graph)?;
    let step = cfg
        .steps
        .get(s)
        .ok_or_else(|| RunError::Internal(format!("the plan has no step {s}")))?;
    let mut groups = Vec::new();
    for (k, update) in step.updates.iter().enumerate() {
        let trainable: Vec<TrainedParam> = l
            .params
            .iter()
            .filter(|p| !p.frozen && !p.buffer && update.models.contains(&model_of(cfg, &p.name)))
            .map(|p| (p.name.clone(), p.dtype, p.shape.clone()))
            .collect();
        let names: Vec<String> = trainable.iter().map(|p| p.0.clone()).collect();
        let grads = add_gradients(&mut l.graph, &names)?;
        groups.push((grads, step_config(cfg, s, k, steps_per_epoch), trainable));
    }
    Ok(WithGradients { l, popts, groups })
}

/// Rounds the operands of matrix products to bf16 when the run asks for it, then
/// runs the standard passes.
fn finish(
    l: &mut Lowered,
    cfg: &Training,
    opts: &PassOptions,
    popts: &mut PipelineOptions,
) -> Result<(), RunError> {
    if opts.precision.unwrap_or(cfg.precision) == Precision::Bf16 {
        round_matmul_operands(&mut l.graph)?;
    }
    popts.after_pass("precision", &l.graph)?;
    Pipeline::standard().run(&mut l.graph, popts)?;
    Ok(())
}

/// Training step `s` of the plan for `batch` samples: its forward graph, the gradients
/// of its loss with respect to the parameters of the models its `update`s name (not
/// frozen ones, nor buffers), and each optimizer's updates.
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    db: &dyn Db,
    file: SourceFile,
    item: u32,
    cfg: &Training,
    s: usize,
    steps_per_epoch: usize,
    batch: usize,
    opts: &PassOptions,
) -> Result<Lowered, RunError> {
    let WithGradients {
        mut l,
        mut popts,
        groups,
    } = lower_with_gradients(db, file, item, cfg, s, steps_per_epoch, batch, opts)?;
    popts.after_pass("autodiff", &l.graph)?;
    let groups = groups.into_iter().map(|(g, c, _)| (g, c)).collect();
    add_optimizers(&mut l.graph, groups)?;
    if cfg.prune.is_some() {
        dnnc_passes::optimizer::mask_updates(
            &mut l.graph,
            &crate::prune::pruned_params(&l.params),
        )?;
    }
    popts.after_pass("optimizer", &l.graph)?;
    finish(&mut l, cfg, opts, &mut popts)?;
    Ok(l)
}

/// The two halves of training step `s` for a data-parallel run: forward and backward
/// writing each gradient to its state (`gradient_state`), and the optimizers'
/// update reading them back, so the host can average the gradients over the
/// processes in between. Together they compute what [`train_step`] does.
#[allow(clippy::too_many_arguments)]
pub fn train_step_halves(
    db: &dyn Db,
    file: SourceFile,
    item: u32,
    cfg: &Training,
    s: usize,
    steps_per_epoch: usize,
    batch: usize,
    opts: &PassOptions,
) -> Result<Halves, RunError> {
    let WithGradients {
        mut l,
        mut popts,
        groups,
    } = lower_with_gradients(db, file, item, cfg, s, steps_per_epoch, batch, opts)?;
    let (grads, typed): (Vec<Gradients>, Vec<(Vec<TrainedParam>, StepConfig)>) =
        groups.into_iter().map(|(g, c, t)| (g, (t, c))).unzip();
    add_gradient_updates(&mut l.graph, &grads)?;
    popts.after_pass("autodiff", &l.graph)?;
    finish(&mut l, cfg, opts, &mut popts)?;
    let (mut update, _) = update_graph(&typed)?;
    if cfg.prune.is_some() {
        dnnc_passes::optimizer::mask_updates(&mut update, &crate::prune::pruned_params(&l.params))?;
    }
    popts.after_pass("optimizer", &update)?;
    Pipeline::standard().run(&mut update, &mut popts)?;
    let trained = typed
        .iter()
        .flat_map(|(params, _)| params.iter())
        .map(|(name, _, shape)| (name.clone(), shape.iter().product()))
        .collect();
    Ok(Halves {
        grads: l,
        update,
        trained,
    })
}

/// The two halves of a data-parallel training step ([`train_step_halves`]).
pub struct Halves {
    /// Forward and backward, each gradient written to its state.
    pub grads: Lowered,
    /// The optimizers' update from the gradient states.
    pub update: Graph,
    /// The parameters it trains and their element counts.
    pub trained: Vec<(String, usize)>,
}

/// The optimizer settings of update `k` of step `s`.
fn step_config(cfg: &Training, s: usize, k: usize, steps_per_epoch: usize) -> StepConfig {
    let update = &cfg.steps[s].updates[k];
    StepConfig {
        clip_norm: update.optimizer.clip_norm,
        optimizer: update.optimizer.optimizer.clone(),
        schedule: cfg.schedule.clone(),
        steps_per_epoch,
        epochs: cfg.epochs,
        namespace: optimizer_namespace(cfg, s, k),
    }
}

/// The evaluation graph with its inputs perturbed by `attack`, after the standard
/// passes.
pub fn forward_attacked(
    db: &dyn Db,
    file: SourceFile,
    item: u32,
    attack: &dnnc_lower::Attack,
    batch: usize,
    opts: &PassOptions,
) -> Result<Lowered, RunError> {
    standard_passes(
        dnnc_lower::lower_attacked(db, file, item, attack, batch)?,
        opts,
    )
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
    forward_lowered(db, file, item, lower(db, file, item, mode, batch)?, opts)
}

/// [`forward`] of a graph lowered already.
pub(crate) fn forward_lowered(
    db: &dyn Db,
    file: SourceFile,
    item: u32,
    mut l: Lowered,
    opts: &PassOptions,
) -> Result<Lowered, RunError> {
    let block = dnnc_lower::model::train_item(db, file, item)?.1.precision;
    if !opts.int8.is_empty() {
        crate::quantize::apply(&mut l, &opts.int8)?;
    } else if opts.precision.unwrap_or(block) == Precision::Bf16 {
        round_matmul_operands(&mut l.graph)?;
    }
    standard_passes(l, opts)
}

/// A lowered graph without a training step through the standard passes (dumped and
/// verified as `opts` say, from `lower` on).
pub(crate) fn standard_passes(mut l: Lowered, opts: &PassOptions) -> Result<Lowered, RunError> {
    let mut popts = opts.pipeline()?;
    popts.after_pass("lower", &l.graph)?;
    Pipeline::standard().run(&mut l.graph, &mut popts)?;
    Ok(l)
}
