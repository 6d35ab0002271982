//! The training loop, evaluation and inference around compiled steps.

use crate::error::RunError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use dnnc_ir::Port;
use dnnc_lower::{LowerError, Mode, ParamInfo};
use dnnc_passes::optimizer::Schedule;
use dnnc_runtime::rng::step_key;
use dnnc_runtime::{
    batches, checkpoint, epoch_order, Decision, EarlyStopping, JsonlLog, MetricAccumulator,
    Progress, Split,
};
use dnnc_sema::{Db, SourceFile};
use dnnc_tensor::{DType, Data, Tensor};
use serde_json::{json, Map, Value};

use crate::backend::{BackendKind, Executable};
use crate::steps::{forward, train_step, PassOptions};
use dnnc_settings::Training;

/// What `dnnc train` was asked to do.
pub struct TrainOptions {
    pub backend: BackendKind,
    pub epochs: Option<usize>,
    pub steps: Option<usize>,
    pub seed: Option<u64>,
    pub init: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub log: Option<PathBuf>,
    pub quiet: bool,
    /// Draw the loss and metric curves to `<checkpoint stem>.svg` next to the
    /// checkpoint after every epoch (`--no-plot` turns it off).
    pub plot: bool,
    pub passes: PassOptions,
}

impl TrainOptions {
    /// A quiet run on `backend` that writes its weights to `out`, with the block's own
    /// epochs and seed, no log and no picture, verifying the IR after every pass (what
    /// tests and embedders start from; set the other fields with `..`).
    pub fn quiet(backend: BackendKind, out: PathBuf) -> TrainOptions {
        TrainOptions {
            backend,
            epochs: None,
            steps: None,
            seed: None,
            init: None,
            out: Some(out),
            log: None,
            quiet: true,
            plot: false,
            passes: PassOptions {
                verify: true,
                dump_after: None,
            },
        }
    }
}

/// What a run measured at its end.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub epochs: usize,
    pub steps: usize,
    /// `train_loss`, `test_loss`, `test_accuracy`, ... of the last epoch.
    pub metrics: Vec<(String, f64)>,
    pub checkpoint: Option<PathBuf>,
    /// The SVG picture of the curves, when one was written.
    pub curves: Option<PathBuf>,
}

impl Summary {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// The train block's context: where it is and what it declares.
pub struct Job<'db> {
    pub db: &'db dyn Db,
    pub file: SourceFile,
    pub item: u32,
    pub cfg: Training,
    pub dataset: dnnc_sema::items::ItemId<'db>,
}

/// Overwrites the value of a scalar made by [`scalar_i64`], in place.
fn set_scalar_i64(t: &mut Tensor, v: i64) {
    if let Data::I64(d) = &mut t.data {
        d[0] = v;
    }
}

fn scalar_i64(v: i64) -> Tensor {
    Tensor {
        dtype: DType::I64,
        shape: vec![],
        data: Data::I64(vec![v]),
    }
}

fn scalar_f32(v: f32) -> Tensor {
    Tensor {
        dtype: DType::F32,
        shape: vec![],
        data: Data::F32(vec![v]),
    }
}

/// Initial parameter values: from `--init`, from `from "..."` bindings, or the
/// declared initialisers.
pub(crate) fn initial_params(
    params: &[ParamInfo],
    seed: u64,
    init: Option<&Path>,
) -> Result<HashMap<String, Tensor>, RunError> {
    let mut need = dnnc_tensor::memory::MemoryNeed::new();
    for p in params {
        let bytes = dnnc_tensor::memory::bytes_of(&p.shape, p.dtype.size_bytes());
        need.add("parameters", bytes.saturating_mul(2));
    }
    need.check("the model")?;
    let mut out = HashMap::new();
    if let Some(path) = init {
        let expected: Vec<(String, DType, Vec<usize>)> = params
            .iter()
            .map(|p| (p.name.clone(), p.dtype, p.shape.clone()))
            .collect();
        let ts = checkpoint::load_into(path, &expected)?;
        for (p, t) in params.iter().zip(ts) {
            out.insert(p.name.clone(), t);
        }
        return Ok(out);
    }
    let mut files: HashMap<PathBuf, Vec<(String, Tensor)>> = HashMap::new();
    for p in params {
        let t = match &p.from {
            Some((file, name)) => {
                if !files.contains_key(file) {
                    files.insert(file.clone(), checkpoint::load(file)?);
                }
                let t = files[file]
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, t)| t.clone())
                    .ok_or_else(|| {
                        RunError::WeightsMisfit(format!(
                            "{}: has no tensor `{name}` for `{}`",
                            file.display(),
                            p.name
                        ))
                    })?;
                if t.shape != p.shape || t.dtype != p.dtype {
                    return Err(RunError::WeightsMisfit(format!(
                        "{}: tensor `{name}` is {}{:?} but `{}` expects {}{:?}",
                        file.display(),
                        t.dtype,
                        t.shape,
                        p.name,
                        p.dtype,
                        p.shape
                    )));
                }
                t
            }
            None => crate::init::initial_value(p, seed)?,
        };
        out.insert(p.name.clone(), t);
    }
    Ok(out)
}

/// `ReduceLROnPlateau`'s state, kept by the host: PyTorch's rule in `rel` threshold
/// mode without cooldown. The graph's rate is its base times [`Plateau::scale`].
struct Plateau {
    patience: usize,
    factor: f64,
    min_lr: f64,
    maximize: bool,
    threshold: f64,
    base: f64,
    lr: f64,
    best: f64,
    bad_epochs: usize,
}

impl Plateau {
    fn new(schedule: &Schedule, base: f64) -> Option<Plateau> {
        match schedule {
            Schedule::ReduceOnPlateau {
                patience,
                factor,
                min_lr,
                maximize,
                threshold,
                ..
            } => Some(Plateau {
                patience: *patience,
                factor: *factor,
                min_lr: *min_lr,
                maximize: *maximize,
                threshold: *threshold,
                base,
                lr: base,
                best: if *maximize {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                },
                bad_epochs: 0,
            }),
            _ => None,
        }
    }

    fn scale(&self) -> f64 {
        self.lr / self.base
    }

    /// Takes an epoch's value of the metric; returns the new rate when it was cut.
    fn observe(&mut self, v: f64) -> Option<f64> {
        // A NaN compares false: it never improves.
        let better = if self.maximize {
            v > self.best * (1.0 + self.threshold)
        } else {
            v < self.best * (1.0 - self.threshold)
        };
        if better {
            self.best = v;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.bad_epochs > self.patience {
            self.bad_epochs = 0;
            let new = (self.lr * self.factor).max(self.min_lr);
            // PyTorch's `eps`: changes smaller than 1e-8 are ignored.
            if self.lr - new > 1e-8 {
                self.lr = new;
                return Some(new);
            }
        }
        None
    }
}

/// Compiled graphs by batch size.
struct Steps {
    by_batch: HashMap<usize, Box<dyn Executable>>,
}

impl Steps {
    fn get(
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

/// Loss and metrics of `split`, averaged over its samples, in evaluation mode.
fn evaluate(
    job: &Job<'_>,
    split: &Split,
    states: &HashMap<String, Tensor>,
    backend: BackendKind,
    opts: &PassOptions,
    cache: &mut Steps,
) -> Result<Vec<(String, f64)>, RunError> {
    let order: Vec<usize> = (0..split.len()).collect();
    let mut acc = MetricAccumulator::new();
    let mut build = |b: usize| -> Result<Box<dyn Executable>, RunError> {
        let l = forward(job.db, job.file, job.item, Mode::Eval, b, opts)?;
        backend.compile(l.graph)
    };
    // Parameters are loaded once into each executable used.
    let mut loaded: Vec<usize> = Vec::new();
    let key = scalar_i64(0);
    for batch in batches(split, &order, job.cfg.batch).map_err(|e| RunError::Dataset(e.message))? {
        let n = batch.first().map_or(0, |t| t.shape[0]);
        let exe = cache.get(n, &mut build)?;
        if !loaded.contains(&n) {
            exe.load_states(states)?;
            loaded.push(n);
        }
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
    Ok(acc.values())
}

/// Refuses, before anything is allocated, a job whose parameters, buffers and
/// optimizer state (the states of `g`) do not fit in the memory available: the host
/// keeps one copy and the compiled graph another.
pub(crate) fn check_state_memory(g: &dnnc_ir::Graph, job: &str) -> Result<(), RunError> {
    let mut need = dnnc_tensor::memory::MemoryNeed::new();
    for s in g.states() {
        let ty = g.ty(s);
        let bytes = dnnc_tensor::memory::bytes_of(&ty.shape, ty.dtype.size_bytes());
        need.add("parameters and state", bytes.saturating_mul(2));
    }
    Ok(need.check(job)?)
}

/// Runs the train block.
pub fn train(job: &Job<'_>, opts: &TrainOptions) -> Result<Summary, RunError> {
    let cfg = &job.cfg;
    let epochs = opts.epochs.unwrap_or(cfg.epochs).max(1);
    let seed = opts.seed.unwrap_or(cfg.seed);
    let train_split = crate::data::load_split(job.db, job.dataset, "train")?;
    let test_split = match crate::data::load_split(job.db, job.dataset, "test") {
        Ok(s) => Some(s),
        Err(RunError::Lower(LowerError::NoSplit { .. })) => None,
        Err(e) => return Err(e),
    };
    let n = train_split.len();
    if n == 0 {
        return Err(RunError::Dataset(
            "the `train` split has no samples: there is nothing to train on".into(),
        ));
    }
    // Applied to the batches of training steps only: evaluation reads the splits as
    // loaded.
    let augment = crate::data::augmentations(job.db, job.dataset, &train_split)?;
    let mut augment_scratch: Vec<f32> = Vec::new();
    let steps_per_epoch = n.div_ceil(cfg.batch).max(1);
    let mut run_cfg = cfg.clone();
    run_cfg.epochs = epochs;

    // Parameters and optimizer state.
    let first_batch = cfg.batch.min(n.max(1));
    let first = train_step(
        job.db,
        job.file,
        job.item,
        &run_cfg,
        steps_per_epoch,
        first_batch,
        &opts.passes,
    )?;
    let params = first.params.clone();
    check_state_memory(&first.graph, "training")?;
    // Labels out of range would train silently on a loss of -0: refused at load.
    let limits = first.graph.index_limits().to_vec();
    crate::data::check_index_limits(job.db, job.dataset, "train", &train_split, &limits)?;
    if let Some(test) = &test_split {
        crate::data::check_index_limits(job.db, job.dataset, "test", test, &limits)?;
    }
    let mut states = initial_params(&params, seed, opts.init.as_deref())?;
    for s in first.graph.states() {
        if let dnnc_ir::Op::State { name, dtype, shape } = &first.graph.node(s).op {
            states
                .entry(name.clone())
                .or_insert_with(|| Tensor::zeros(*dtype, shape.clone()));
        }
    }
    let mut train_steps = Steps {
        by_batch: HashMap::new(),
    };
    train_steps
        .by_batch
        .insert(first_batch, opts.backend.compile(first.graph)?);
    // Which executable holds the live parameters and optimizer state (they stay in it
    // between steps; `states` is brought up to date when the host needs them).
    let mut resident: Option<usize> = None;
    let mut eval_steps = Steps {
        by_batch: HashMap::new(),
    };

    let mut log = match &opts.log {
        Some(p) => Some(JsonlLog::create(p).map_err(|e| RunError::write(p, e.source))?),
        None => None,
    };
    let mut stopper = cfg
        .early_stop
        .as_ref()
        .map(|e| EarlyStopping::new(e.patience, e.maximize, e.min_delta));
    let mut best: Option<HashMap<String, Tensor>> = None;
    let mut plateau = Plateau::new(&cfg.schedule, cfg.optimizer.optimizer.lr());
    let mut scale_t = scalar_f32(1.0);
    let mut progress = Progress::new(epochs, steps_per_epoch, opts.quiet);
    let mut global_step: usize = 0;
    let mut summary = Summary::default();
    let max_steps = opts.steps.unwrap_or(usize::MAX);
    let field_names: Vec<String> = train_split.fields.iter().map(|(f, _)| f.clone()).collect();
    let mut step_t = scalar_i64(0);
    let mut key_t = scalar_i64(0);
    let mut names: HashMap<usize, Vec<String>> = HashMap::new();
    // Where the weights go: `--out`, or the block's `checkpoint` next to the file.
    let out = opts.out.clone().or_else(|| {
        cfg.checkpoint.as_ref().map(|c| {
            job.file
                .path(job.db)
                .parent()
                .map(|d| d.join(c))
                .unwrap_or_else(|| PathBuf::from(c))
        })
    });
    // A checkpoint that could not be written would lose the whole run: it must be
    // writable before training starts. Temporary files a killed run left are removed.
    if let Some(o) = &out {
        dnnc_data::files::remove_stale_temporaries(o);
        dnnc_data::files::check_writable(o)
            .map_err(|e| RunError::write(o, format!("cannot write the weights there: {e}")))?;
    }
    // The curves go next to the weights, redrawn after every epoch (never over them:
    // weights saved as `w.svg` get `w.curves.svg`).
    let curves = out.as_ref().filter(|_| opts.plot).map(|o| {
        if o.extension().is_some_and(|e| e == "svg") {
            o.with_extension("curves.svg")
        } else {
            o.with_extension("svg")
        }
    });
    let title = job
        .file
        .path(job.db)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut history: Vec<(usize, Vec<(String, f64)>)> = Vec::new();
    let mut plotted: Option<Result<(), String>> = None;

    'epochs: for epoch in 0..epochs {
        let started = Instant::now();
        let order = epoch_order(n, seed, epoch as u64, cfg.shuffle);
        let mut acc = MetricAccumulator::new();
        // The rate of the epoch's last step (the graph's `lr` output).
        let mut epoch_lr: Option<f64> = None;
        if let Some(p) = &plateau {
            scale_t.data = Data::F32(vec![p.scale() as f32]);
        }
        for (k, mut batch) in batches(&train_split, &order, cfg.batch)
            .map_err(|e| RunError::Dataset(e.message))?
            .enumerate()
        {
            if global_step >= max_steps {
                break;
            }
            let b = batch.first().map_or(0, |t| t.shape[0]);
            if !augment.is_empty() {
                // The batch's samples, by their index in the split.
                let indices = &order[k * cfg.batch..k * cfg.batch + b];
                for (field, list) in &augment {
                    dnnc_runtime::augment_batch(
                        &mut batch[*field],
                        indices,
                        list,
                        seed,
                        epoch as u64,
                        &mut augment_scratch,
                    )
                    .map_err(|e| {
                        RunError::Dataset(format!("augmenting `{}`: {e}", field_names[*field]))
                    })?;
                }
            }
            set_scalar_i64(&mut step_t, global_step as i64);
            set_scalar_i64(&mut key_t, step_key(seed, global_step as u64));
            let mut build = |bb: usize| -> Result<Box<dyn Executable>, RunError> {
                let l = train_step(
                    job.db,
                    job.file,
                    job.item,
                    &run_cfg,
                    steps_per_epoch,
                    bb,
                    &opts.passes,
                )?;
                opts.backend.compile(l.graph)
            };
            if resident != Some(b) {
                if let Some(prev) = resident {
                    train_steps.by_batch[&prev].store_states(&mut states)?;
                }
                train_steps.get(b, &mut build)?.load_states(&states)?;
                resident = Some(b);
            }
            let exe = train_steps.get(b, &mut build)?;
            let mut inputs: Vec<(&str, &Tensor)> = field_names
                .iter()
                .map(String::as_str)
                .zip(batch.iter())
                .collect();
            inputs.push((Port::Step.name(), &step_t));
            inputs.push((Port::RngKey.name(), &key_t));
            inputs.push((Port::LrScale.name(), &scale_t));
            exe.step(&inputs)?;
            let out_names = names.entry(b).or_insert_with(|| exe.output_names());
            if let Some(i) = out_names
                .iter()
                .position(|n| n == Port::LearningRate.name())
            {
                epoch_lr = exe.output_scalar(i);
            }
            let vals: Vec<(String, f64)> = out_names
                .iter()
                .enumerate()
                .filter(|(_, n)| *n != Port::LearningRate.name())
                .map(|(i, name)| (name.clone(), exe.output_scalar(i).unwrap_or(f64::NAN)))
                .collect();
            let loss = vals
                .iter()
                .find(|(n, _)| n == Port::Loss.name())
                .map_or(f64::NAN, |(_, v)| *v);
            if !loss.is_finite() {
                // The step changed nothing (its updates are guarded by the loss being
                // finite): the executable still holds the weights of before it.
                exe.store_states(&mut states)?;
                let kept = best.as_ref().unwrap_or(&states);
                let saved = match &out {
                    Some(o) => {
                        save_weights(o, &params, kept)?;
                        format!(
                            "; the {} weights were saved to {}",
                            if best.is_some() {
                                "best epoch's"
                            } else {
                                "last good"
                            },
                            o.display()
                        )
                    }
                    None => String::new(),
                };
                return Err(RunError::NotFinite(format!(
                    "the loss became {loss} at step {} (epoch {}, batch {}){saved}; the data are finite (checked at load), so the learning rate may be too high",
                    global_step + 1,
                    epoch + 1,
                    k + 1
                )));
            }
            progress.step(loss);
            acc.add_batch(b, &vals);
            global_step += 1;
        }
        if let Some(r) = resident {
            train_steps.by_batch[&r].store_states(&mut states)?;
        }
        let mut metrics: Vec<(String, f64)> = acc
            .values()
            .into_iter()
            .map(|(k, v)| (format!("train_{k}"), v))
            .collect();
        if let Some(test) = &test_split {
            let params_only: HashMap<String, Tensor> = states
                .iter()
                .filter(|(k, _)| params.iter().any(|p| &p.name == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let ev = evaluate(
                job,
                test,
                &params_only,
                opts.backend,
                &opts.passes,
                &mut eval_steps,
            )?;
            metrics.extend(ev.into_iter().map(|(k, v)| (format!("test_{k}"), v)));
        }
        let seconds = started.elapsed().as_secs_f64();
        progress.end_epoch(epoch, &metrics, seconds);
        if let Some(log) = log.as_mut() {
            let mut obj = Map::new();
            obj.insert("epoch".into(), json!(epoch + 1));
            for (k, v) in &metrics {
                obj.insert(k.clone(), json!(v));
            }
            if let Some(lr) = epoch_lr {
                obj.insert("lr".into(), json!(lr));
            }
            obj.insert("seconds".into(), json!(seconds));
            log.write(Value::Object(obj))
                .map_err(|e| RunError::write(e.path.clone(), e.source))?;
        }
        summary.epochs = epoch + 1;
        summary.metrics = metrics.clone();
        if let Some(path) = &curves {
            history.push((epoch + 1, metrics.clone()));
            let r = dnnc_runtime::plot::write_curves(path, &title, &history);
            // A picture that cannot be drawn does not stop the run: warn once.
            if let Err(e) = &r {
                if !opts.quiet && !matches!(plotted, Some(Err(_))) {
                    eprintln!("warning: {e}");
                }
            }
            plotted = Some(r);
        }
        if let (Some(p), Schedule::ReduceOnPlateau { metric, .. }) =
            (plateau.as_mut(), &cfg.schedule)
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
        if let (Some(stop), Some(es)) = (stopper.as_mut(), cfg.early_stop.as_ref()) {
            let key = format!("{}_{}", es.split, es.metric);
            if let Some(v) = metrics.iter().find(|(k, _)| *k == key).map(|(_, v)| *v) {
                match stop.observe(epoch, v) {
                    Decision::Improved => best = Some(states.clone()),
                    Decision::NoImprovement { .. } => {}
                    Decision::Stop => {
                        if !opts.quiet {
                            eprintln!("early stopping after epoch {}: `{key}` has not improved for {} epochs; restoring the best weights", epoch + 1, es.patience);
                        }
                        if let Some(b) = best.take() {
                            states = b;
                        }
                        break 'epochs;
                    }
                }
            }
        }
        // After every epoch the checkpoint holds what the run would end with if it
        // stopped now (with early stopping, the best epoch's weights), so a killed
        // run keeps its progress.
        if let Some(o) = &out {
            save_weights(o, &params, best.as_ref().unwrap_or(&states))?;
        }
        if global_step >= max_steps {
            break;
        }
    }
    summary.steps = global_step;

    // Save the parameters.
    if let Some(out) = &out {
        save_weights(out, &params, &states)?;
        summary.checkpoint = Some(out.clone());
    }
    if let (Some(path), Some(Ok(()))) = (curves, plotted) {
        summary.curves = Some(path);
    }
    Ok(summary)
}

/// Writes the parameters among `states` to the checkpoint `out`, atomically; weights
/// that are not finite are refused (the file on disk stays as it was).
fn save_weights(
    out: &Path,
    params: &[ParamInfo],
    states: &HashMap<String, Tensor>,
) -> Result<(), RunError> {
    let tensors: Vec<(String, &Tensor)> = params
        .iter()
        .filter_map(|p| states.get(&p.name).map(|t| (p.name.clone(), t)))
        .collect();
    for (name, t) in &tensors {
        if let Some(i) = t
            .as_f32()
            .and_then(|v| v.iter().position(|x| !x.is_finite()))
        {
            return Err(RunError::NotFinite(format!(
                "{}: not saved: parameter `{name}` holds {} at index {i} (the previous checkpoint, if any, is kept)",
                out.display(),
                t.as_f32().map_or(f32::NAN, |v| v[i])
            )));
        }
    }
    checkpoint::save(out, &tensors).map_err(|e| RunError::write(out, e.kind))
}

/// Evaluates saved weights on the test split (or the training split if there is none).
pub fn eval(
    job: &Job<'_>,
    weights: &Path,
    backend: BackendKind,
    log: Option<&Path>,
    passes: &PassOptions,
) -> Result<Vec<(String, f64)>, RunError> {
    let split = match crate::data::load_split(job.db, job.dataset, "test") {
        Ok(s) => ("test", s),
        Err(RunError::Lower(LowerError::NoSplit { .. })) => (
            "train",
            crate::data::load_split(job.db, job.dataset, "train")?,
        ),
        Err(e) => return Err(e),
    };
    let probe = forward(
        job.db,
        job.file,
        job.item,
        Mode::Eval,
        job.cfg.batch.min(split.1.len().max(1)),
        passes,
    )?;
    check_state_memory(&probe.graph, "evaluation")?;
    crate::data::check_index_limits(
        job.db,
        job.dataset,
        split.0,
        &split.1,
        probe.graph.index_limits(),
    )?;
    let states = initial_params(&probe.params, 0, Some(weights))?;
    // The probe's graph is the first batch's: compile it once and keep it.
    let mut cache = Steps {
        by_batch: HashMap::from([(
            job.cfg.batch.min(split.1.len().max(1)),
            backend.compile(probe.graph)?,
        )]),
    };
    let ev = evaluate(job, &split.1, &states, backend, passes, &mut cache)?;
    let metrics: Vec<(String, f64)> = ev
        .into_iter()
        .map(|(k, v)| (format!("{}_{k}", split.0), v))
        .collect();
    if let Some(p) = log {
        let mut l = JsonlLog::create(p).map_err(|e| RunError::write(p, e.source))?;
        let obj: Map<String, Value> = metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        l.write(Value::Object(obj))
            .map_err(|e| RunError::write(p, e.source))?;
    }
    Ok(metrics)
}

/// Runs the model's `forward` on every row of `input` (an `.npy` file) and saves the
/// results as `.npy`.
pub fn predict(
    job: &Job<'_>,
    weights: &Path,
    input: &Path,
    output: &Path,
    backend: BackendKind,
    passes: &PassOptions,
) -> Result<usize, RunError> {
    let x = dnnc_data::npy::load(input)?;
    let model =
        dnnc_lower::model::model_of(dnnc_lower::model::train_item(job.db, job.file, job.item)?.1)?;
    let (dtype, one) = dnnc_lower::model::forward_input_type(job.db, &model, 1)?;
    if x.shape.len() != one.len() || x.shape[1..] != one[1..] {
        return Err(RunError::Dataset(format!(
            "{}: the input has shape {:?}, but the model takes [N, {}]",
            input.display(),
            x.shape,
            one[1..]
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let x = if dtype == DType::F32 {
        Tensor::f32(x.shape.clone(), x.to_f32_vec())
            .map_err(|e| RunError::Internal(e.to_string()))?
    } else {
        x
    };
    let n = x.shape[0];
    let probe = forward(
        job.db,
        job.file,
        job.item,
        Mode::Predict,
        job.cfg.batch.min(n.max(1)),
        passes,
    )?;
    check_state_memory(&probe.graph, "prediction")?;
    // An input without rows has an output without rows, of the model's output shape.
    let mut out_shape: Vec<usize> = probe
        .graph
        .output("output")
        .map(|o| probe.graph.ty(o).shape.clone())
        .unwrap_or_default();
    let states = initial_params(&probe.params, 0, Some(weights))?;
    let mut cache = Steps {
        by_batch: HashMap::from([(job.cfg.batch.min(n.max(1)), backend.compile(probe.graph)?)]),
    };
    let mut build = |b: usize| -> Result<Box<dyn Executable>, RunError> {
        let l = forward(job.db, job.file, job.item, Mode::Predict, b, passes)?;
        backend.compile(l.graph)
    };
    let mut out: Vec<f32> = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + job.cfg.batch).min(n);
        let mut inputs = HashMap::new();
        inputs.insert("input".to_string(), x.slice_rows(start, end));
        inputs.insert(Port::RngKey.name().to_string(), scalar_i64(0));
        let exe = cache.get(end - start, &mut build)?;
        let r = exe.run(&inputs, &states)?;
        let (_, y) = r
            .outputs
            .into_iter()
            .find(|(k, _)| k == "output")
            .ok_or_else(|| RunError::Internal("the inference graph has no output".into()))?;
        out_shape = y.shape.clone();
        out.extend(y.to_f32_vec());
        start = end;
    }
    if let Some(first) = out_shape.first_mut() {
        *first = n;
    }
    let shape: Vec<u64> = out_shape.iter().map(|&d| d as u64).collect();
    dnnc_data::npy::save_f32(output, &shape, &out)
        .map_err(|e| RunError::write(output, e.message))?;
    Ok(n)
}
