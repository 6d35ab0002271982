//! `dnnc bench`: times the compiled training step and inference of a model on random
//! data of the right shapes (and given or random weights), and reports medians.
//!
//! Steps run the way `dnnc train` runs them: every step of the plan bound to one state
//! store, inputs copied in, updates applied in place.

use crate::error::RunError;
use std::collections::HashMap;
use std::time::Instant;

use dnnc_ir::Port;
use dnnc_lower::Mode;
use dnnc_runtime::SplitMix64;
use dnnc_tensor::{DType, Data, Tensor};

use crate::backend::{BackendKind, Executable};
use crate::run::Job;
use crate::steps::{forward, train_step, PassOptions};
use crate::store::StateStore;

/// Medians of a benchmark run.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// A whole batch: every step of the plan.
    pub train_step_ms: f64,
    /// Each step of the plan by name (one, `train`, in the single-model form).
    pub steps_ms: Vec<(String, f64)>,
    pub infer_b1_us: f64,
    pub infer_b256_us: f64,
    /// Building and compiling the training step.
    pub compile_ms: f64,
    pub batch: usize,
    pub backend: &'static str,
    /// Threads native kernels used.
    pub threads: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Random tensors for every input and state of `g`; integer inputs are class indices,
/// below the limit the graph sets on them (`classes` where it sets none).
fn feeds(
    g: &dnnc_ir::Graph,
    rng: &mut SplitMix64,
    classes: usize,
) -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    let mut inputs = HashMap::new();
    let mut states = HashMap::new();
    for n in g.node_ids() {
        let (name, dtype, shape, is_state) = match &g.node(n).op {
            dnnc_ir::Op::Input { name, dtype, shape } => (name, dtype, shape, false),
            dnnc_ir::Op::State { name, dtype, shape } => (name, dtype, shape, true),
            _ => continue,
        };
        let len: usize = shape.iter().product();
        let data = match dtype {
            DType::F32 => Data::F32(
                (0..len)
                    .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                    .collect(),
            ),
            DType::Bool => Data::Bool((0..len).map(|_| rng.next_u64() & 1 == 1).collect()),
            _ => {
                let limit = g.index_limit(name).unwrap_or(classes);
                Data::from_i64(
                    *dtype,
                    (0..len)
                        .map(|_| rng.below(limit.max(1) as u64) as i64)
                        .collect::<Vec<_>>(),
                )
            }
        };
        let t = Tensor {
            dtype: *dtype,
            shape: shape.clone(),
            data,
        };
        if is_state {
            states.insert(name.clone(), t);
        } else {
            inputs.insert(name.clone(), t);
        }
    }
    inputs.insert(
        Port::RngKey.name().into(),
        Tensor {
            dtype: DType::I64,
            shape: vec![],
            data: Data::I64(vec![7]),
        },
    );
    (inputs, states)
}

/// Random values for every state of `graphs` in `store`, with `weights` replacing
/// those they name.
fn fill_store(
    graphs: &[&dnnc_ir::Graph],
    store: &StateStore,
    classes: usize,
    weights: &HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>, RunError> {
    let mut rng = SplitMix64::new(42);
    let mut inputs = HashMap::new();
    for g in graphs {
        crate::run::check_state_memory(g, "the benchmark")?;
        let (ins, states) = feeds(g, &mut rng, classes);
        for (k, v) in states {
            if !store.contains(&k) {
                store.set(&k, weights.get(&k).unwrap_or(&v))?;
            }
        }
        for (k, v) in ins {
            inputs.entry(k).or_insert(v);
        }
    }
    Ok(inputs)
}

/// Median seconds of `runs` repetitions (after a warm-up) of each of `exes` in turn
/// on `inputs`: per executable, and of the whole round.
fn time_rounds(
    exes: &mut [Box<dyn Executable>],
    inputs: &HashMap<String, Tensor>,
    runs: usize,
    name: &str,
) -> Result<(Vec<f64>, f64), RunError> {
    let inputs: Vec<(&str, &Tensor)> = inputs.iter().map(|(k, v)| (k.as_str(), v)).collect();
    for exe in exes.iter_mut() {
        exe.step(&inputs)?;
    }
    if std::env::var_os("DNNC_PROFILE").is_some() {
        for exe in exes.iter_mut() {
            profile(exe.as_mut(), runs, name);
        }
    }
    let mut each = vec![Vec::with_capacity(runs); exes.len()];
    let mut whole = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        for (exe, times) in exes.iter_mut().zip(&mut each) {
            let t = Instant::now();
            exe.step(&inputs)?;
            times.push(t.elapsed().as_secs_f64());
        }
        whole.push(start.elapsed().as_secs_f64());
    }
    Ok((each.into_iter().map(median).collect(), median(whole)))
}

/// Prints the slowest steps of `exe`'s schedule (`DNNC_PROFILE`).
pub(crate) fn profile(exe: &mut dyn Executable, runs: usize, name: &str) {
    let mut steps = match exe.profile(runs) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("DNNC_PROFILE: {e}");
            return;
        }
    };
    let total: f64 = steps.iter().map(|(_, t)| t).sum();
    eprintln!("profile of `{name}` (median µs per step, total {total:.0} µs):");
    steps.sort_by(|a, b| b.1.total_cmp(&a.1));
    let shown = if std::env::var_os("DNNC_PROFILE_ALL").is_some() {
        usize::MAX
    } else {
        25
    };
    for (line, t) in steps.iter().take(shown) {
        eprintln!("{t:9.1}  {line}");
    }
    // The same time by kind of step (the word after `=`: matmul, loop, take, ...).
    let mut kinds: Vec<(&str, f64, usize)> = Vec::new();
    for (line, t) in &steps {
        let kind = line
            .split_once(" = ")
            .and_then(|(_, rest)| {
                rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                    .next()
            })
            .unwrap_or("?");
        match kinds.iter_mut().find(|(k, _, _)| *k == kind) {
            Some(entry) => {
                entry.1 += t;
                entry.2 += 1;
            }
            None => kinds.push((kind, *t, 1)),
        }
    }
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
    let by_kind: Vec<String> = kinds
        .iter()
        .map(|(k, t, n)| format!("{k} {t:.0} µs ({n})"))
        .collect();
    eprintln!("  by kind: {}", by_kind.join(", "));
}

/// Compiles and times an inference graph.
fn time_graph(
    g: dnnc_ir::Graph,
    backend: BackendKind,
    runs: usize,
    classes: usize,
    weights: &HashMap<String, Tensor>,
) -> Result<f64, RunError> {
    let store = backend.store();
    let inputs = fill_store(&[&g], &store, classes, weights)?;
    let name = g.name.clone();
    let mut exes = vec![backend.compile(g, &store)?];
    Ok(time_rounds(&mut exes, &inputs, runs, &name)?.1)
}

/// Benchmarks the train block of `job` at `batch` (default: its own), with the
/// parameters in `weights` (a safetensors file) if given: every step of its plan, the
/// whole batch (all steps) and inference.
pub fn bench(
    job: &Job<'_>,
    backend: BackendKind,
    batch: Option<usize>,
    runs: usize,
    weights: Option<&std::path::Path>,
    passes: &PassOptions,
) -> Result<BenchResult, RunError> {
    // Quantized weights (`dnnc quantize`) serve inference alone: the training step is
    // timed from random weights, inference from the file's, with int8 products.
    let infer_passes = match weights {
        Some(w) => crate::quantize::passes_for(passes, w)?,
        None => passes.clone(),
    };
    let quantized = !infer_passes.int8.is_empty();
    let batch = batch.unwrap_or(job.cfg.batch);
    let classes = 10;
    let t = Instant::now();
    let mut lowered = Vec::new();
    for s in 0..job.cfg.steps.len() {
        lowered.push(train_step(
            job.db, job.file, job.item, &job.cfg, s, 63, batch, passes,
        )?);
    }
    let params: Vec<&dnnc_lower::ParamInfo> = lowered.iter().flat_map(|l| &l.params).collect();
    let file: HashMap<String, Tensor> = match (weights, quantized) {
        (Some(path), true) => dnnc_runtime::checkpoint::load(path)?.into_iter().collect(),
        _ => HashMap::new(),
    };
    let weights: HashMap<String, Tensor> = match weights {
        Some(_) if quantized => HashMap::new(),
        Some(path) => {
            let mut expected: Vec<(String, DType, Vec<usize>)> = Vec::new();
            for p in &params {
                if !expected.iter().any(|(n, _, _)| *n == p.name) {
                    expected.push((p.name.clone(), p.dtype, p.shape.clone()));
                }
            }
            let ts = dnnc_runtime::checkpoint::load_into(path, &expected)?;
            expected.into_iter().map(|(n, _, _)| n).zip(ts).collect()
        }
        None => HashMap::new(),
    };
    let store = backend.store();
    let graphs: Vec<&dnnc_ir::Graph> = lowered.iter().map(|l| &l.graph).collect();
    let inputs = fill_store(&graphs, &store, classes, &weights)?;
    let mut exes = Vec::new();
    for l in &lowered {
        exes.push(backend.compile(l.graph.clone(), &store)?);
    }
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let (each, whole) = time_rounds(&mut exes, &inputs, runs, "train_step")?;
    let steps = job
        .cfg
        .steps
        .iter()
        .zip(each)
        .map(|(s, t)| (s.name.clone(), t * 1e3))
        .collect();
    let infer_weights = if quantized { &file } else { &weights };
    let b1 = time_graph(
        forward(job.db, job.file, job.item, Mode::Predict, 1, &infer_passes)?.graph,
        backend,
        runs * 10,
        classes,
        infer_weights,
    )?;
    let b256 = time_graph(
        forward(
            job.db,
            job.file,
            job.item,
            Mode::Predict,
            256,
            &infer_passes,
        )?
        .graph,
        backend,
        runs,
        classes,
        infer_weights,
    )?;
    Ok(BenchResult {
        train_step_ms: whole * 1e3,
        steps_ms: steps,
        infer_b1_us: b1 * 1e6,
        infer_b256_us: b256 * 1e6,
        compile_ms,
        batch,
        backend: backend.name(),
        threads: crate::backend::threads(),
    })
}
