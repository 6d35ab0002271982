//! The training loop, evaluation and inference around compiled steps.

use crate::error::RunError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dnnc_ir::Port;
use dnnc_lower::{Attack, AttackKind, LowerError, Mode, ParamInfo};
use dnnc_runtime::{checkpoint, JsonlLog};
use dnnc_sema::{Db, SourceFile};
use dnnc_tensor::{DType, Data, Tensor};
use serde_json::{json, Map, Value};

use crate::backend::{BackendKind, Executable};
use crate::steps::{forward, PassOptions};
use crate::trainer::{evaluate, ByBatch};
use dnnc_settings::Training;

/// What `dnnc train` was asked to do.
#[derive(Clone)]
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
    /// Evaluate at most this many samples of the test split after each epoch (the
    /// first ones; `--eval-samples`), for quick runs.
    pub eval_samples: Option<usize>,
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
                precision: None,
                int8: Vec::new(),
            },
            eval_samples: None,
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
    /// The PNG grid of samples, when the block has a `sample` expression.
    pub samples: Option<PathBuf>,
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

pub(crate) fn scalar_i64(v: i64) -> Tensor {
    Tensor {
        dtype: DType::I64,
        shape: vec![],
        data: Data::I64(vec![v]),
    }
}

pub(crate) fn scalar_f32(v: f32) -> Tensor {
    Tensor {
        dtype: DType::F32,
        shape: vec![],
        data: Data::F32(vec![v]),
    }
}

/// Where parameters come from.
#[derive(Clone, Copy)]
pub(crate) enum Weights<'p> {
    /// Training: from `--init` (which must hold exactly the parameters), or else each
    /// from its `from` file or its initialiser (drawn from the seed).
    Init(Option<&'p Path>, u64),
    /// Evaluation, inference, sampling: from saved weights, which may hold more (a
    /// plan's checkpoint holds every model); a parameter they lack comes from its
    /// `from` file (a frozen pretrained part).
    Saved(&'p Path),
}

/// The parameters' values.
pub(crate) fn initial_params(
    params: &[ParamInfo],
    weights: Weights<'_>,
) -> Result<HashMap<String, Tensor>, RunError> {
    let mut need = dnnc_tensor::memory::MemoryNeed::new();
    for p in params {
        let bytes = dnnc_tensor::memory::bytes_of(&p.shape, p.dtype.size_bytes());
        need.add("parameters", bytes.saturating_mul(2));
    }
    need.check("the model")?;
    let mut out = HashMap::new();
    let mut files: HashMap<PathBuf, Vec<(String, Tensor)>> = HashMap::new();
    let seed = match weights {
        Weights::Init(Some(path), _) => {
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
        Weights::Init(None, seed) => seed,
        Weights::Saved(path) => {
            files.insert(path.to_path_buf(), checkpoint::load(path)?);
            0
        }
    };
    for p in params {
        let source = match (weights, &p.from) {
            (Weights::Saved(path), from) => {
                let saved = files[path].iter().any(|(n, _)| *n == p.name);
                match from {
                    Some((file, name)) if !saved => Some((file.clone(), name.clone())),
                    _ => Some((path.to_path_buf(), p.name.clone())),
                }
            }
            (_, Some((file, name))) => Some((file.clone(), name.clone())),
            (_, None) => None,
        };
        let t = match source {
            Some((file, name)) => {
                if !files.contains_key(&file) {
                    files.insert(file.clone(), checkpoint::load(&file)?);
                }
                let t = files[&file]
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| t.clone())
                    .ok_or_else(|| missing_tensor(&file, &files[&file], &name, &p.name))?;
                // Floats convert to the parameter's float type (bf16 into f32 exactly,
                // f32 into a bf16 model rounded).
                let t = if t.shape == p.shape && t.dtype.loads_as(p.dtype) {
                    checkpoint::convert(&name, t, p.dtype).map_err(|kind| {
                        RunError::Weights(checkpoint::CheckpointError {
                            path: file.clone(),
                            kind,
                        })
                    })?
                } else {
                    t
                };
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

/// The error for a tensor `name` (for parameter `param`) that `file` lacks: when no
/// tensor of the file shares its first segment, the prefixes the file has (what `at`
/// may name).
fn missing_tensor(file: &Path, tensors: &[(String, Tensor)], name: &str, param: &str) -> RunError {
    let head = |n: &str| n.split('.').next().unwrap_or(n).to_string();
    let (prefix, _) = name.split_once('.').unwrap_or(("", name));
    let shares = !prefix.is_empty() && tensors.iter().any(|(n, _)| head(n) == prefix);
    if !prefix.is_empty() && !shares {
        let mut prefixes: Vec<String> = tensors.iter().map(|(n, _)| head(n)).collect();
        prefixes.dedup();
        return RunError::WeightsMisfit(format!(
            "{}: has no tensors under `{prefix}` for `{param}`; its prefixes are {}",
            file.display(),
            prefixes
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    RunError::WeightsMisfit(format!(
        "{}: has no tensor `{name}` for `{param}`",
        file.display()
    ))
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

/// Writes the parameters among `states` to the checkpoint `out`, atomically; weights
/// that are not finite are refused (the file on disk stays as it was).
/// The checkpoint metadata key of a text model's vocabulary: its characters in id
/// order.
pub const VOCABULARY_KEY: &str = "dnnc.vocabulary";

pub(crate) fn save_weights(
    out: &Path,
    params: &[ParamInfo],
    states: &HashMap<String, Tensor>,
    vocabulary: Option<&str>,
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
    let meta: Vec<(&str, String)> = vocabulary
        .map(|v| (VOCABULARY_KEY, v.to_string()))
        .into_iter()
        .collect();
    checkpoint::save_with_metadata(out, &tensors, &meta).map_err(|e| RunError::write(out, e.kind))
}

/// Evaluates saved weights on the test split (or the training split if there is none).
pub fn eval(
    job: &Job<'_>,
    weights: &Path,
    backend: BackendKind,
    log: Option<&Path>,
    passes: &PassOptions,
) -> Result<Vec<(String, f64)>, RunError> {
    eval_with(job, weights, backend, log, passes, None, None)
}

/// [`eval`] of the first `samples` samples of the split only (`dnnc eval --samples`).
pub fn eval_first(
    job: &Job<'_>,
    weights: &Path,
    backend: BackendKind,
    log: Option<&Path>,
    passes: &PassOptions,
    samples: usize,
) -> Result<Vec<(String, f64)>, RunError> {
    eval_with(job, weights, backend, log, passes, None, Some(samples))
}

/// An attack on evaluation's inputs (`dnnc eval --attack`): its kind and budget; the
/// fields it perturbs and their ranges come from the data.
#[derive(Clone, Copy, Debug)]
pub struct AttackSpec {
    pub kind: dnnc_lower::AttackKind,
    pub eps: f64,
}

/// As [`eval`], with every float field of each batch replaced by its adversarial
/// version (clamped to the range of the field's values in the split) before the loss
/// and metrics are computed.
pub fn eval_attacked(
    job: &Job<'_>,
    weights: &Path,
    backend: BackendKind,
    log: Option<&Path>,
    passes: &PassOptions,
    attack: AttackSpec,
) -> Result<Vec<(String, f64)>, RunError> {
    eval_with(job, weights, backend, log, passes, Some(attack), None)
}

fn eval_with(
    job: &Job<'_>,
    weights: &Path,
    backend: BackendKind,
    log: Option<&Path>,
    passes: &PassOptions,
    attack: Option<AttackSpec>,
    samples: Option<usize>,
) -> Result<Vec<(String, f64)>, RunError> {
    let passes = &crate::quantize::passes_for(passes, weights)?;
    if attack.is_some() && job.cfg.multi {
        return Err(RunError::NotRunnable(
            "--attack evaluates train blocks of the single-model form (one model, one loss)".into(),
        ));
    }
    let split = match crate::data::load_split(job.db, job.dataset, "test") {
        Ok(s) => ("test", s),
        Err(RunError::Lower(LowerError::NoSplit { .. })) => (
            "train",
            crate::data::load_split(job.db, job.dataset, "train")?,
        ),
        Err(e) => return Err(e),
    };
    let split = match samples {
        Some(n) => (split.0, split.1.first(n)),
        None => split,
    };
    let attack = attack.map(|a| Attack {
        kind: a.kind,
        eps: a.eps,
        fields: field_ranges(&split.1),
    });
    if attack.as_ref().is_some_and(|a| a.fields.is_empty()) {
        return Err(RunError::NotRunnable(
            "--attack perturbs float fields, and the dataset has none".into(),
        ));
    }
    let first = job.cfg.batch.min(split.1.len().max(1));
    let probe = eval_graph(job, attack.as_ref(), first, passes)?;
    check_state_memory(&probe.graph, "evaluation")?;
    crate::data::check_index_limits(
        job.db,
        job.dataset,
        split.0,
        &split.1,
        probe.graph.index_limits(),
    )?;
    let store = backend.store();
    store.set_all(&initial_params(&probe.params, Weights::Saved(weights))?)?;
    // The probe's graph is the first batch's: compile it once and keep it.
    let mut cache = ByBatch::new();
    let probe_graph = probe.graph;
    let mut probe_graph = Some(probe_graph);
    cache.get(first, &mut |_| {
        backend.compile(probe_graph.take().expect("compiled once"), &store)
    })?;
    let ev = evaluate(
        job,
        &split.1,
        &store,
        backend,
        passes,
        &mut cache,
        attack.as_ref(),
    )?;
    let metrics: Vec<(String, f64)> = ev
        .into_iter()
        .map(|(k, v)| (format!("{}_{k}", split.0), v))
        .collect();
    if let Some(p) = log {
        let mut l = JsonlLog::create(p).map_err(|e| RunError::write(p, e.source))?;
        let mut obj: Map<String, Value> =
            metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        if let Some(a) = &attack {
            obj.insert("attack".into(), json!(a.kind.name()));
            obj.insert("eps".into(), json!(a.eps));
            if let AttackKind::Pgd { steps, step, .. } = a.kind {
                obj.insert("steps".into(), json!(steps));
                obj.insert("step_size".into(), json!(step));
            }
        }
        l.write(Value::Object(obj))
            .map_err(|e| RunError::write(p, e.source))?;
    }
    Ok(metrics)
}

/// The evaluation graph for `batch` samples, attacked or not.
pub(crate) fn eval_graph(
    job: &Job<'_>,
    attack: Option<&Attack>,
    batch: usize,
    passes: &PassOptions,
) -> Result<dnnc_lower::Lowered, RunError> {
    match attack {
        None => forward(job.db, job.file, job.item, Mode::Eval, batch, passes),
        Some(a) => crate::steps::forward_attacked(job.db, job.file, job.item, a, batch, passes),
    }
}

/// Every float field of `split` with the smallest and largest value it holds.
fn field_ranges(split: &dnnc_runtime::Split) -> Vec<(String, f64, f64)> {
    split
        .fields
        .iter()
        .filter(|(_, t)| t.dtype.is_float())
        .map(|(name, t)| {
            let v = t.to_f32_vec();
            let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            (name.clone(), f64::from(lo), f64::from(hi))
        })
        .collect()
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
    let passes = &crate::quantize::passes_for(passes, weights)?;
    let x = dnnc_data::npy::load(input)?;
    let first = forward(job.db, job.file, job.item, Mode::Predict, 1, passes)?;
    let input_node = first
        .graph
        .input_named("input")
        .ok_or_else(|| RunError::Internal("the inference graph has no input".into()))?;
    let (dtype, one) = {
        let ty = first.graph.ty(input_node);
        (ty.dtype, ty.shape.clone())
    };
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
    let batch = job.cfg.batch.min(n.max(1));
    let probe = forward(job.db, job.file, job.item, Mode::Predict, batch, passes)?;
    check_state_memory(&probe.graph, "prediction")?;
    // Every output of `forward`: `output`, or `output.0`, `output.mean`, ... for a
    // tuple or record. An input without rows has outputs without rows, of the model's
    // output shapes.
    let names: Vec<String> = probe
        .graph
        .outputs()
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    let mut shapes: Vec<Vec<usize>> = probe
        .graph
        .outputs()
        .iter()
        .map(|(_, o)| probe.graph.ty(*o).shape.clone())
        .collect();
    let store = backend.store();
    store.set_all(&initial_params(&probe.params, Weights::Saved(weights))?)?;
    let mut cache = ByBatch::new();
    let mut probe_graph = Some(probe.graph);
    let mut build = |b: usize| -> Result<Box<dyn Executable>, RunError> {
        let g = match probe_graph.take() {
            Some(g) if b == batch => g,
            _ => forward(job.db, job.file, job.item, Mode::Predict, b, passes)?.graph,
        };
        backend.compile(g, &store)
    };
    let mut values: Vec<Vec<f32>> = vec![Vec::new(); names.len()];
    let key = scalar_i64(0);
    let mut start = 0;
    while start < n {
        let end = (start + job.cfg.batch).min(n);
        let rows = x.slice_rows(start, end);
        let exe = cache.get(end - start, &mut build)?;
        exe.step(&[("input", &rows), (Port::RngKey.name(), &key)])?;
        for (k, name) in names.iter().enumerate() {
            let y = exe.output(name).ok_or_else(|| {
                RunError::Internal(format!("the inference graph has no output `{name}`"))
            })?;
            shapes[k] = y.shape.clone();
            values[k].extend(y.to_f32_vec());
        }
        start = end;
    }
    for shape in &mut shapes {
        if let Some(first) = shape.first_mut() {
            *first = n;
        }
    }
    let png = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    for ((name, shape), values) in names.iter().zip(shapes).zip(values) {
        let path = output_path(output, name);
        if png {
            let y = Tensor::f32(shape, values).map_err(|e| RunError::Internal(e.to_string()))?;
            // Each input beside its output when they are images of one shape (an
            // autoencoder's digits and reconstructions); else the outputs.
            let picture = dnnc_runtime::image::side_by_side(&x, &y).unwrap_or(y);
            dnnc_runtime::image::write_grid(&path, &picture)
                .map_err(|e| RunError::write(&path, e))?;
        } else {
            let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
            dnnc_data::npy::save_f32(&path, &shape, &values)
                .map_err(|e| RunError::write(&path, e.message))?;
        }
    }
    Ok(n)
}

/// Where output `name` of `forward` goes: `out` itself for the one output `output`;
/// `y.mean.npy` for `output.mean` and `out = y.npy`.
fn output_path(out: &Path, name: &str) -> PathBuf {
    match name.strip_prefix("output.") {
        None => out.to_path_buf(),
        Some(part) => {
            let stem = out
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ext = out
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.with_file_name(format!("{stem}.{part}.{ext}"))
        }
    }
}

/// `dnnc sample`: `count` samples of the train block's `sample` expression with the
/// weights of `weights`, drawn from `seed`; written to `out` as `f32` `.npy` or, for a
/// `.png` path, as a grid of images. Returns the samples' shape.
pub fn sample(
    job: &Job<'_>,
    weights: &Path,
    count: usize,
    seed: u64,
    out: &Path,
    backend: BackendKind,
    passes: &PassOptions,
) -> Result<Vec<usize>, RunError> {
    if !job.cfg.sample {
        return Err(RunError::NotRunnable(
            "the train block has no `sample` expression; add e.g. `sample = G(normal([B, 64]))`"
                .into(),
        ));
    }
    let l = forward(job.db, job.file, job.item, Mode::Sample, count, passes)?;
    check_state_memory(&l.graph, "sampling")?;
    let store = backend.store();
    store.set_all(&initial_params(&l.params, Weights::Saved(weights))?)?;
    let mut exe = backend.compile(l.graph, &store)?;
    let key = scalar_i64(dnnc_runtime::rng::step_key(seed, u64::MAX - 1));
    exe.step(&[(Port::RngKey.name(), &key)])?;
    let t = exe
        .output("sample")
        .ok_or_else(|| RunError::Internal("the sample graph has no output".into()))?;
    if out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        dnnc_runtime::image::write_grid(out, &t).map_err(|e| RunError::write(out, e))?;
    } else {
        let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
        dnnc_data::npy::save_f32(out, &shape, &t.to_f32_vec())
            .map_err(|e| RunError::write(out, e.message))?;
    }
    Ok(t.shape)
}
