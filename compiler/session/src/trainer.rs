//! The training loop: each batch runs the plan's steps in order (the single-model form
//! is a plan of one step), every compiled graph bound to one state store, so steps,
//! their batch-size variants and the evaluation graphs share parameters, buffers and
//! optimizer state without copying. Around the loop, per epoch: evaluation of the test
//! split, the log line and JSONL record, the curves, a grid of samples, the
//! learning-rate plateau, early stopping and the checkpoint.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use dnnc_dist::World;
use dnnc_ir::Port;
use dnnc_lower::{LowerError, Mode, ParamInfo};
use dnnc_runtime::rng::step_key;
use dnnc_runtime::{
    batches, epoch_order, Augmentation, Decision, EarlyStopping, JsonlLog, MetricAccumulator,
    Progress, Split,
};
use dnnc_settings::{Schedule, Training};
use dnnc_tensor::{Data, Tensor};
use serde_json::{json, Map, Value};

use crate::backend::{BackendKind, Executable};
use crate::error::RunError;
use crate::parallel::{average_buffers, hash_params, hash_split, reduce_metrics, UpdateHalf};
use crate::plateau::Plateau;
use crate::run::{
    initial_params, save_weights, scalar_f32, scalar_i64, Job, Summary, TrainOptions, Weights,
};
use crate::steps::{forward, train_step, train_step_halves, PassOptions};
use crate::store::StateStore;

/// How many samples the per-epoch grid shows.
pub const GRID_SAMPLES: usize = 64;

/// The random key of the per-epoch samples: the same noise every epoch, so the grids
/// show one model improving rather than new draws.
pub fn sample_key(seed: u64) -> i64 {
    step_key(seed ^ 0x5a4d_504c_4553, u64::MAX)
}

/// Compiled graphs of one kind by batch size, all bound to the run's store.
pub(crate) struct ByBatch {
    by_batch: HashMap<usize, Box<dyn Executable>>,
}

impl ByBatch {
    pub(crate) fn new() -> ByBatch {
        ByBatch {
            by_batch: HashMap::new(),
        }
    }

    /// One of the compiled variants, if any.
    pub(crate) fn any(&self) -> Option<&dyn Executable> {
        self.by_batch.values().next().map(|e| &**e)
    }

    pub(crate) fn get(
        &mut self,
        batch: usize,
        build: &mut dyn FnMut(usize) -> Result<Box<dyn Executable>, RunError>,
    ) -> Result<&mut Box<dyn Executable>, RunError> {
        match self.by_batch.entry(batch) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => Ok(v.insert(build(batch)?)),
        }
    }
}

/// Fails unless the first batch gives each process of a data-parallel run at least one
/// sample and every process has the same `.dnn` file, command line, training and test
/// data.
fn check_same_start(
    job: &Job<'_>,
    opts: &TrainOptions,
    world: &World,
    (train, test): (&Split, Option<&Split>),
    first_batch: usize,
) -> Result<(), RunError> {
    if first_batch < world.size() {
        return Err(RunError::NotRunnable(format!(
            "a batch of {first_batch} samples cannot be shared by {} processes: run fewer processes or raise `batch`",
            world.size()
        )));
    }
    let file = job.file.text(job.db);
    world.check_same(
        dnnc_dist::hash_bytes(file.as_bytes(), dnnc_dist::HASH_START),
        "`.dnn` file",
    )?;
    let command = format!(
        "{:?} {:?} {:?} {} {:?} {:?}",
        opts.epochs,
        opts.steps,
        opts.seed,
        opts.backend.name(),
        opts.passes.precision,
        opts.eval_samples
    );
    world.check_same(
        dnnc_dist::hash_bytes(command.as_bytes(), dnnc_dist::HASH_START),
        "command-line options (epochs, steps, seed, backend, precision, eval samples)",
    )?;
    world.check_same(hash_split(train), "training data")?;
    // No split and an empty one differ too: evaluation takes part in collectives.
    let test_hash = test.map_or(0, hash_split);
    world.check_same(test_hash, "test data")?;
    Ok(())
}

/// Runs the train block.
pub fn train(job: &Job<'_>, opts: &TrainOptions) -> Result<Summary, RunError> {
    if dnnc_dist::world().is_root() {
        return Trainer::new(job, opts)?.run();
    }
    // The other processes of a data-parallel run print and draw nothing.
    let quiet = TrainOptions {
        quiet: true,
        log: None,
        plot: false,
        ..opts.clone()
    };
    Trainer::new(job, &quiet)?.run()
}

/// The plan's names for what a step reports: `loss` and the metrics in the
/// single-model form, `STEP_loss` per step in the multi-model form.
fn output_key(cfg: &Training, step: usize, output: &str) -> String {
    if cfg.multi && output == Port::Loss.name() {
        format!("{}_loss", cfg.steps[step].name)
    } else {
        output.to_string()
    }
}

struct Trainer<'a, 'db> {
    job: &'a Job<'db>,
    opts: &'a TrainOptions,
    cfg: Training,
    seed: u64,
    train: Split,
    test: Option<Split>,
    augment: Vec<(usize, Vec<Augmentation>)>,
    store: StateStore,
    /// The plan's parameters (every step's, each once), saved in checkpoints.
    params: Vec<ParamInfo>,
    /// Each step's graphs by batch size (in a data-parallel run, the forward-and-
    /// backward halves by this process's shard size).
    steps: Vec<ByBatch>,
    /// The processes of the run.
    world: &'static World,
    /// In a data-parallel run, each step's update half.
    halves: Vec<UpdateHalf>,
    eval: ByBatch,
    steps_per_epoch: usize,
    /// Where the weights go: `--out`, or the block's `checkpoint` next to the file.
    out: Option<PathBuf>,
    /// A text model's vocabulary, saved with the weights (`dnnc.vocabulary`).
    vocabulary: Option<String>,
    /// Magnitude pruning (`prune`).
    pruner: Option<crate::prune::Pruner>,
}

impl<'a, 'db> Trainer<'a, 'db> {
    /// Loads the data, lowers and compiles every step at the first batch size,
    /// initialises the store and checks what can be checked before training.
    fn new(job: &'a Job<'db>, opts: &'a TrainOptions) -> Result<Trainer<'a, 'db>, RunError> {
        let mut cfg = job.cfg.clone();
        cfg.epochs = opts.epochs.unwrap_or(cfg.epochs).max(1);
        let seed = opts.seed.unwrap_or(cfg.seed);
        let train = crate::data::load_split(job.db, job.dataset, "train")?;
        let test = match crate::data::load_split(job.db, job.dataset, "test") {
            Ok(s) => Some(match opts.eval_samples {
                Some(n) => s.first(n),
                None => s,
            }),
            Err(RunError::Lower(LowerError::NoSplit { .. })) => None,
            Err(e) => return Err(e),
        };
        let n = train.len();
        if n == 0 {
            return Err(RunError::Dataset(
                "the `train` split has no samples: there is nothing to train on".into(),
            ));
        }
        // Applied to the batches of training steps only: evaluation reads the splits
        // as loaded.
        let augment = crate::data::augmentations(job.db, job.dataset, &train)?;
        let steps_per_epoch = n.div_ceil(cfg.batch).max(1);
        let first_batch = cfg.batch.min(n);
        let world = dnnc_dist::world();
        let parallel = world.size() > 1;
        if parallel {
            check_same_start(job, opts, world, (&train, test.as_ref()), first_batch)?;
        }
        // This process's part of the first batch (all of it in a run of one process).
        let first_local = dnnc_dist::shard(first_batch, world.rank(), world.size()).len();
        // Each step's graph (in a data-parallel run, its forward-and-backward half) and,
        // in a data-parallel run, its update half with the parameters it trains.
        let mut lowered = Vec::new();
        let mut update_graphs = Vec::new();
        for s in 0..cfg.steps.len() {
            let (db, file, item, p) = (job.db, job.file, job.item, &opts.passes);
            if parallel {
                let h =
                    train_step_halves(db, file, item, &cfg, s, steps_per_epoch, first_local, p)?;
                lowered.push(h.grads);
                update_graphs.push((h.update, h.trained));
            } else {
                lowered.push(train_step(
                    db,
                    file,
                    item,
                    &cfg,
                    s,
                    steps_per_epoch,
                    first_batch,
                    p,
                )?);
            }
        }
        let mut params: Vec<ParamInfo> = Vec::new();
        let mut need = dnnc_tensor::memory::MemoryNeed::new();
        let mut seen_states = std::collections::HashSet::new();
        let mut limits = Vec::new();
        let graphs = lowered.iter().map(|l| &l.graph);
        for g in graphs.chain(update_graphs.iter().map(|(u, _)| u)) {
            for s in g.states() {
                if let dnnc_ir::Op::State { name, dtype, shape } = &g.node(s).op {
                    if seen_states.insert(name.clone()) {
                        let bytes = dnnc_tensor::memory::bytes_of(shape, dtype.size_bytes());
                        need.add("parameters and state", bytes.saturating_mul(2));
                    }
                }
            }
        }
        for l in &lowered {
            for p in &l.params {
                if !params.iter().any(|q| q.name == p.name) {
                    params.push(p.clone());
                }
            }
            limits.extend(l.graph.index_limits().iter().cloned());
        }
        need.check("training")?;
        // Labels out of range would train silently on a loss of -0: refused at load.
        crate::data::check_index_limits(job.db, job.dataset, "train", &train, &limits)?;
        if let Some(test) = &test {
            crate::data::check_index_limits(job.db, job.dataset, "test", test, &limits)?;
        }
        let store = opts.backend.store();
        store.set_all(&initial_params(
            &params,
            Weights::Init(opts.init.as_deref(), seed),
        )?)?;
        if parallel {
            let names: Vec<String> = params.iter().map(|p| p.name.clone()).collect();
            world.check_same(hash_params(&store, &names), "initial weights")?;
        }
        let mut steps = Vec::new();
        for l in lowered {
            let mut by_batch = ByBatch::new();
            by_batch
                .by_batch
                .insert(first_local, opts.backend.compile(l.graph, &store)?);
            steps.push(by_batch);
        }
        let mut halves = Vec::new();
        for (u, trained) in update_graphs {
            halves.push(UpdateHalf::new(opts.backend.compile(u, &store)?, trained));
        }
        // Only the first process writes files (weights, log, pictures).
        let out = match world.is_root() {
            false => None,
            true => opts.out.clone().or_else(|| {
                cfg.checkpoint.as_ref().map(|c| {
                    job.file
                        .path(job.db)
                        .parent()
                        .map(|d| d.join(c))
                        .unwrap_or_else(|| PathBuf::from(c))
                })
            }),
        };
        // A checkpoint that could not be written would lose the whole run: it must be
        // writable before training starts. Temporary files a killed run left are
        // removed.
        if let Some(o) = &out {
            dnnc_data::files::remove_stale_temporaries(o);
            dnnc_data::files::check_writable(o)
                .map_err(|e| RunError::write(o, format!("cannot write the weights there: {e}")))?;
        }
        let pruner = cfg.prune.as_ref().map(|p| {
            crate::prune::Pruner::new(
                p,
                crate::prune::pruned_params(&params),
                cfg.epochs,
                steps_per_epoch,
            )
        });
        Ok(Trainer {
            job,
            opts,
            cfg,
            seed,
            train,
            test,
            augment,
            store,
            params,
            steps,
            world,
            halves,
            eval: ByBatch::new(),
            steps_per_epoch,
            pruner,
            out,
            vocabulary: crate::data::vocabulary(job.db, job.dataset)?,
        })
    }

    /// Recomputes the pruning masks when they are due before step `step`.
    fn prune_if_due(&self, step: usize) -> Result<(), RunError> {
        match &self.pruner {
            Some(p) => match p.due(step) {
                Some(target) => p.apply(&self.store, target),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// The parameters' current values (for the best epoch of early stopping).
    fn param_values(&self) -> HashMap<String, Tensor> {
        self.params
            .iter()
            .filter_map(|p| self.store.get(&p.name).map(|t| (p.name.clone(), t)))
            .collect()
    }

    /// Saves the parameters to the checkpoint (if there is one): `best` if given.
    fn save(&self, best: Option<&HashMap<String, Tensor>>) -> Result<(), RunError> {
        if let Some(o) = &self.out {
            let current;
            let values = match best {
                Some(b) => b,
                None => {
                    current = self.param_values();
                    &current
                }
            };
            save_weights(o, &self.params, values, self.vocabulary.as_deref())?;
        }
        Ok(())
    }

    fn run(mut self) -> Result<Summary, RunError> {
        let (job, opts) = (self.job, self.opts);
        let epochs = self.cfg.epochs;
        let n = self.train.len();
        let mut log = match &opts.log {
            Some(p) => Some(JsonlLog::create(p).map_err(|e| RunError::write(p, e.source))?),
            None => None,
        };
        let mut stopper = self
            .cfg
            .early_stop
            .as_ref()
            .map(|e| EarlyStopping::new(e.patience, e.maximize, e.min_delta));
        let mut best: Option<HashMap<String, Tensor>> = None;
        let base_lr = self.cfg.steps[0].updates[0].optimizer.optimizer.lr();
        let mut plateau = Plateau::new(&self.cfg.schedule, base_lr);
        let mut scale_t = scalar_f32(1.0);
        let mut key_t = scalar_i64(0);
        let mut progress = Progress::new(epochs, self.steps_per_epoch, opts.quiet);
        let mut global_step: usize = 0;
        let mut summary = Summary::default();
        let max_steps = opts.steps.unwrap_or(usize::MAX);
        let field_names: Vec<String> = self.train.fields.iter().map(|(f, _)| f.clone()).collect();
        let mut augment_scratch: Vec<f32> = Vec::new();
        let pictures = Pictures::new(&self, opts.plot);
        let mut curves_ok: Option<bool> = None;
        let mut history: Vec<(usize, Vec<(String, f64)>)> = Vec::new();
        let n_steps = self.steps.len();
        // The outputs of each step (of its forward-and-backward half in a data-parallel
        // run), the same at every batch size.
        let step_names: Vec<Vec<String>> = self
            .steps
            .iter()
            .map(|b| b.any().map(|e| e.output_names()).unwrap_or_default())
            .collect();

        let param_names: Vec<String> = self.params.iter().map(|p| p.name.clone()).collect();
        let buffer_names: Vec<String> = self
            .params
            .iter()
            .filter(|p| p.buffer)
            .map(|p| p.name.clone())
            .collect();

        'epochs: for epoch in 0..epochs {
            let started = Instant::now();
            let order = epoch_order(n, self.seed, epoch as u64, self.cfg.shuffle);
            let mut acc = MetricAccumulator::new();
            // The rate of the epoch's last step (the first optimizer's `lr` output).
            let mut epoch_lr: Option<f64> = None;
            if let Some(p) = &plateau {
                scale_t.data = Data::F32(vec![p.scale() as f32]);
            }
            let batch_size = self.cfg.batch;
            let (rank, size) = (self.world.rank(), self.world.size());
            for k in 0..n.div_ceil(batch_size) {
                if global_step >= max_steps {
                    break;
                }
                // The batch's samples, by their index in the split, and this process's
                // shard of them (all of them in a run of one process).
                let whole = &order[k * batch_size..((k + 1) * batch_size).min(n)];
                let indices = &whole[dnnc_dist::shard(whole.len(), rank, size)];
                let b = indices.len();
                let mut batch = batches(&self.train, indices, b.max(1))
                    .map_err(|e| RunError::Dataset(e.message))?
                    .next()
                    .unwrap_or_default();
                if !self.augment.is_empty() && b > 0 {
                    for (field, list) in &self.augment {
                        dnnc_runtime::augment_batch(
                            &mut batch[*field],
                            indices,
                            list,
                            self.seed,
                            epoch as u64,
                            &mut augment_scratch,
                        )
                        .map_err(|e| {
                            RunError::Dataset(format!("augmenting `{}`: {e}", field_names[*field]))
                        })?;
                    }
                }
                self.prune_if_due(global_step)?;
                let mut first_loss = f64::NAN;
                for (s, outputs) in step_names.iter().enumerate() {
                    // Each step of each batch draws its own random numbers (and each
                    // process of a data-parallel run its own: its dropout masks and
                    // noise differ from the others', as in PyTorch's DDP).
                    let draw = ((global_step * n_steps + s) * size + rank) as u64;
                    if let Data::I64(d) = &mut key_t.data {
                        d[0] = step_key(self.seed, draw);
                    }
                    let (cfg, store, spe) = (&self.cfg, &self.store, self.steps_per_epoch);
                    let halves = !self.halves.is_empty();
                    let mut build = |bb: usize| -> Result<Box<dyn Executable>, RunError> {
                        let (db, file, item, p) = (job.db, job.file, job.item, &opts.passes);
                        let g = if halves {
                            train_step_halves(db, file, item, cfg, s, spe, bb, p)?
                                .grads
                                .graph
                        } else {
                            train_step(db, file, item, cfg, s, spe, bb, p)?.graph
                        };
                        opts.backend.compile(g, store)
                    };
                    let mut inputs: Vec<(&str, &Tensor)> = field_names
                        .iter()
                        .map(String::as_str)
                        .zip(batch.iter())
                        .collect();
                    inputs.push((Port::RngKey.name(), &key_t));
                    inputs.push((Port::LrScale.name(), &scale_t));
                    let reported: Vec<(String, f64)> = match self.halves.get_mut(s) {
                        Some(half) => {
                            // An empty shard (the last batch of an epoch may leave one)
                            // adds nothing but still takes part in the all-reduce.
                            let exe = match b {
                                0 => None,
                                _ => {
                                    let exe = self.steps[s].get(b, &mut build)?;
                                    exe.step(&inputs)?;
                                    Some(&**exe)
                                }
                            };
                            let r = half.run(
                                self.world,
                                store,
                                exe,
                                outputs,
                                (b, whole.len()),
                                &[(Port::LrScale.name(), &scale_t)],
                            )?;
                            let lr = r.lr.map(|v| (Port::LearningRate.name().to_string(), v));
                            r.values.into_iter().chain(lr).collect()
                        }
                        None => {
                            let exe = self.steps[s].get(b, &mut build)?;
                            exe.step(&inputs)?;
                            outputs
                                .iter()
                                .enumerate()
                                .map(|(i, n)| (n.clone(), exe.output_scalar(i).unwrap_or(f64::NAN)))
                                .collect()
                        }
                    };
                    let mut vals = Vec::new();
                    let mut loss = f64::NAN;
                    for (name, v) in reported {
                        if name == Port::LearningRate.name() {
                            if s == 0 {
                                epoch_lr = Some(v);
                            }
                            continue;
                        }
                        if name == Port::Loss.name() {
                            loss = v;
                        }
                        vals.push((output_key(cfg, s, &name), v));
                    }
                    if !loss.is_finite() {
                        // The step changed nothing (its updates are guarded by the loss
                        // being finite): the store still holds the weights of before.
                        self.save(best.as_ref())?;
                        let saved = match &self.out {
                            Some(o) => format!(
                                "; the {} weights were saved to {}",
                                if best.is_some() {
                                    "best epoch's"
                                } else {
                                    "last good"
                                },
                                o.display()
                            ),
                            None => String::new(),
                        };
                        let which = if cfg.multi {
                            format!(" of step `{}`", cfg.steps[s].name)
                        } else {
                            String::new()
                        };
                        return Err(RunError::NotFinite(format!(
                            "the loss{which} became {loss} at step {} (epoch {}, batch {}){saved}; the data are finite (checked at load), so the learning rate may be too high",
                            global_step + 1,
                            epoch + 1,
                            k + 1
                        )));
                    }
                    if s == 0 {
                        first_loss = loss;
                    }
                    acc.add_batch(whole.len(), &vals);
                }
                progress.step(first_loss);
                global_step += 1;
            }
            // The ramp's last masks, once its last step has run.
            self.prune_if_due(global_step)?;
            let sparsity = self
                .pruner
                .as_ref()
                .map(|p| p.sparsities(&self.store))
                .unwrap_or_default();
            let mut metrics: Vec<(String, f64)> = acc
                .values()
                .into_iter()
                .map(|(k, v)| (format!("train_{k}"), v))
                .collect();
            if self.world.size() > 1 {
                average_buffers(self.world, &self.store, &buffer_names)?;
            }
            if self.test.is_some() {
                let ev = self.evaluate_test()?;
                metrics.extend(ev.into_iter().map(|(k, v)| (format!("test_{k}"), v)));
            }
            if self.world.size() > 1 {
                // Every process applied the same updates: a difference is a fault.
                self.world.check_same(
                    hash_params(&self.store, &param_names),
                    "parameters after an epoch",
                )?;
            }
            let seconds = started.elapsed().as_secs_f64();
            progress.end_epoch(epoch, &metrics, seconds);
            if !sparsity.is_empty() && !opts.quiet {
                let each: Vec<String> = sparsity
                    .iter()
                    .map(|(n, s)| format!("{n} {:.1}%", 100.0 * s))
                    .collect();
                let all = self.pruner.as_ref().map_or(0.0, |p| p.overall(&self.store));
                eprintln!("  sparsity: {}  (all {:.1}%)", each.join("  "), 100.0 * all);
            }
            if let Some(log) = log.as_mut() {
                let mut obj = Map::new();
                obj.insert("epoch".into(), json!(epoch + 1));
                for (k, v) in &metrics {
                    obj.insert(k.clone(), json!(v));
                }
                if let Some(lr) = epoch_lr {
                    obj.insert("lr".into(), json!(lr));
                }
                if !sparsity.is_empty() {
                    let per: Map<String, Value> = sparsity
                        .iter()
                        .map(|(n, s)| (n.clone(), json!(s)))
                        .collect();
                    obj.insert("sparsity".into(), Value::Object(per));
                }
                obj.insert("seconds".into(), json!(seconds));
                log.write(Value::Object(obj))
                    .map_err(|e| RunError::write(e.path.clone(), e.source))?;
            }
            summary.epochs = epoch + 1;
            summary.metrics = metrics.clone();
            if let Some(path) = &pictures.curves {
                history.push((epoch + 1, metrics.clone()));
                let r = dnnc_runtime::plot::write_curves(path, &pictures.title, &history);
                // A picture that cannot be drawn does not stop the run: warn once.
                if let Err(e) = &r {
                    if !opts.quiet && curves_ok != Some(false) {
                        eprintln!("warning: {e}");
                    }
                }
                curves_ok = Some(r.is_ok());
            }
            if let Some(path) = &pictures.samples {
                self.draw_samples(path)?;
                summary.samples = Some(path.clone());
            }
            if let (Some(p), Schedule::ReduceOnPlateau { metric, .. }) =
                (plateau.as_mut(), &self.cfg.schedule)
            {
                let v = metrics
                    .iter()
                    .find(|(k, _)| k == metric)
                    .map_or(f64::NAN, |(_, v)| *v);
                if let Some(lr) = p.observe(v) {
                    if !opts.quiet {
                        eprintln!(
                            "epoch {}: `{metric}` has not improved for {} epochs; learning rate now {lr:e}",
                            epoch + 1,
                            p.patience + 1
                        );
                    }
                }
            }
            if let (Some(stop), Some(es)) = (stopper.as_mut(), self.cfg.early_stop.as_ref()) {
                let key = format!("{}_{}", es.split, es.metric);
                if let Some(v) = metrics.iter().find(|(k, _)| *k == key).map(|(_, v)| *v) {
                    match stop.observe(epoch, v) {
                        Decision::Improved => best = Some(self.param_values()),
                        Decision::NoImprovement { .. } => {}
                        Decision::Stop => {
                            if !opts.quiet {
                                eprintln!("early stopping after epoch {}: `{key}` has not improved for {} epochs; restoring the best weights", epoch + 1, es.patience);
                            }
                            if let Some(b) = best.take() {
                                self.store.set_all(&b)?;
                            }
                            break 'epochs;
                        }
                    }
                }
            }
            // After every epoch the checkpoint holds what the run would end with if it
            // stopped now (with early stopping, the best epoch's weights), so a killed
            // run keeps its progress.
            self.save(best.as_ref())?;
            if global_step >= max_steps {
                break;
            }
        }
        summary.steps = global_step;
        if let Some(out) = &self.out {
            self.save(None)?;
            summary.checkpoint = Some(out.clone());
        }
        if let (Some(path), Some(true)) = (pictures.curves, curves_ok) {
            summary.curves = Some(path);
        }
        Ok(summary)
    }

    /// Loss and metrics of the test split in evaluation mode, on the live states.
    fn evaluate_test(&mut self) -> Result<Vec<(String, f64)>, RunError> {
        let test = self.test.as_ref().expect("a test split");
        evaluate(
            self.job,
            test,
            &self.store,
            self.opts.backend,
            &self.opts.passes,
            &mut self.eval,
            None,
        )
    }

    /// Draws [`GRID_SAMPLES`] samples of the block's `sample` expression from the
    /// same noise every epoch, as a PNG grid.
    fn draw_samples(&mut self, path: &std::path::Path) -> Result<(), RunError> {
        let (job, opts) = (self.job, self.opts);
        let l = forward(
            job.db,
            job.file,
            job.item,
            Mode::Sample,
            GRID_SAMPLES,
            &opts.passes,
        )?;
        let mut exe = opts.backend.compile(l.graph, &self.store)?;
        let key = scalar_i64(sample_key(self.seed));
        exe.step(&[(Port::RngKey.name(), &key)])?;
        let t = exe
            .output("sample")
            .ok_or_else(|| RunError::Internal("the sample graph has no output".into()))?;
        dnnc_runtime::image::write_grid(path, &t).map_err(|e| RunError::write(path, e))
    }
}

/// The pictures a run draws next to its checkpoint: the curves and, for a block with
/// a `sample` expression, a grid of samples.
struct Pictures {
    curves: Option<PathBuf>,
    samples: Option<PathBuf>,
    title: String,
}

impl Pictures {
    fn new(t: &Trainer<'_, '_>, plot: bool) -> Pictures {
        let out = t.out.as_ref().filter(|_| plot);
        // Never over the weights: weights saved as `w.svg` get `w.curves.svg`.
        let curves = out.map(|o| {
            if o.extension().is_some_and(|e| e == "svg") {
                o.with_extension("curves.svg")
            } else {
                o.with_extension("svg")
            }
        });
        let samples = out
            .filter(|_| t.cfg.sample)
            .map(|o| o.with_extension("samples.png"));
        let title = t
            .job
            .file
            .path(t.job.db)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        Pictures {
            curves,
            samples,
            title,
        }
    }
}

/// Loss and metrics of `split` (each step's loss in the multi-model form), averaged
/// over its samples, in evaluation mode, reading the states in `store`.
pub(crate) fn evaluate(
    job: &Job<'_>,
    split: &Split,
    store: &StateStore,
    backend: BackendKind,
    opts: &PassOptions,
    cache: &mut ByBatch,
    attack: Option<&dnnc_lower::Attack>,
) -> Result<Vec<(String, f64)>, RunError> {
    // In a data-parallel run each process evaluates every N-th batch (whole batches:
    // the same graphs as one process) and the sums are reduced at the end.
    let world = dnnc_dist::world();
    let (rank, size, b) = (world.rank(), world.size(), job.cfg.batch.max(1));
    let order: Vec<usize> = (0..split.len())
        .filter(|i| (i / b) % size == rank)
        .collect();
    let mut acc = MetricAccumulator::new();
    let mut build = |b: usize| -> Result<Box<dyn Executable>, RunError> {
        let l = crate::run::eval_graph(job, attack, b, opts)?;
        backend.compile(l.graph, store)
    };
    let batches =
        batches(split, &order, job.cfg.batch).map_err(|e| RunError::Dataset(e.message))?;
    for (j, batch) in batches.enumerate() {
        // Under attack, each batch its own random draws (PGD's random start), the same
        // in every run.
        let k = rank + j * size;
        let key = scalar_i64(if attack.is_some() { k as i64 } else { 0 });
        let n = batch.first().map_or(0, |t| t.shape[0]);
        let exe = cache.get(n, &mut build)?;
        let mut inputs: Vec<(&str, &Tensor)> = split
            .fields
            .iter()
            .map(|(f, _)| f.as_str())
            .zip(batch.iter())
            .collect();
        inputs.push((Port::RngKey.name(), &key));
        exe.step(&inputs)?;
        let vals: Vec<(String, f64)> = exe
            .output_names()
            .into_iter()
            .enumerate()
            .map(|(i, name)| (name, exe.output_scalar(i).unwrap_or(f64::NAN)))
            .collect();
        acc.add_batch(n, &vals);
    }
    if size > 1 {
        // A process without a batch still names the metrics as the others do (its
        // graph is compiled once and kept, like the others').
        let names = match cache.any() {
            Some(exe) => exe.output_names(),
            None => cache
                .get(b.min(split.len()).max(1), &mut build)?
                .output_names(),
        };
        acc = reduce_metrics(world, &acc, &names);
    }
    Ok(acc.values())
}
