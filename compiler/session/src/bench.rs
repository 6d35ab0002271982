//! `dnnc bench`: times the compiled training step and inference of a model on random
//! data of the right shapes (and given or random weights), and reports medians.
//!
//! Steps run the way `dnnc train` runs them: states resident in the executable,
//! inputs copied in, updates applied in place.

use crate::error::RunError;
use std::collections::HashMap;
use std::time::Instant;

use dnnc_ir::Port;
use dnnc_lower::Mode;
use dnnc_runtime::SplitMix64;
use dnnc_tensor::{DType, Data, Tensor};

use crate::backend::BackendKind;
use crate::run::Job;
use crate::steps::{forward, train_step, PassOptions};

/// Medians of a benchmark run.
#[derive(Clone, Debug)]
pub struct BenchResult {
    pub train_step_ms: f64,
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

/// Random tensors for every input and state of `g`; integer inputs are class indices.
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
            _ => Data::from_i64(
                *dtype,
                (0..len)
                    .map(|_| rng.below(classes.max(1) as u64) as i64)
                    .collect::<Vec<_>>(),
            ),
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
        Port::Step.name().into(),
        Tensor {
            dtype: DType::I64,
            shape: vec![],
            data: Data::I64(vec![0]),
        },
    );
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

/// Times `runs` repetitions (after a warm-up) of a compiled graph `g`, with `weights`
/// replacing the random values of the states they name.
fn time_exe(
    g: &dnnc_ir::Graph,
    exe: &mut dyn crate::backend::Executable,
    runs: usize,
    classes: usize,
    weights: &HashMap<String, Tensor>,
) -> Result<f64, RunError> {
    crate::run::check_state_memory(g, "the benchmark")?;
    let mut rng = SplitMix64::new(42);
    let (inputs, mut states) = feeds(g, &mut rng, classes);
    for (k, v) in states.iter_mut() {
        if let Some(w) = weights.get(k) {
            *v = w.clone();
        }
    }
    exe.load_states(&states)?;
    let inputs: Vec<(&str, &Tensor)> = inputs.iter().map(|(k, v)| (k.as_str(), v)).collect();
    exe.step(&inputs)?;
    if std::env::var_os("DNNC_PROFILE").is_some() {
        let mut steps = match exe.profile(runs) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("DNNC_PROFILE: {e}");
                Vec::new()
            }
        };
        let total: f64 = steps.iter().map(|(_, t)| t).sum();
        eprintln!(
            "profile of `{}` (median µs per step, total {total:.0} µs):",
            g.name
        );
        steps.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (line, t) in steps.iter().take(25) {
            eprintln!("{t:9.1}  {line}");
        }
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        exe.step(&inputs)?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

/// Compiles and times a graph.
fn time_graph(
    g: dnnc_ir::Graph,
    backend: BackendKind,
    runs: usize,
    classes: usize,
    weights: &HashMap<String, Tensor>,
) -> Result<f64, RunError> {
    let mut exe = backend.compile(g.clone())?;
    time_exe(&g, exe.as_mut(), runs, classes, weights)
}

/// Benchmarks the train block of `job` at `batch` (default: its own), with the
/// parameters in `weights` (a safetensors file) if given.
pub fn bench(
    job: &Job<'_>,
    backend: BackendKind,
    batch: Option<usize>,
    runs: usize,
    weights: Option<&std::path::Path>,
) -> Result<BenchResult, RunError> {
    let batch = batch.unwrap_or(job.cfg.batch);
    let passes = PassOptions::default();
    let classes = 10;
    let t = Instant::now();
    let step = train_step(job.db, job.file, job.item, &job.cfg, 63, batch, &passes)?;
    let mut compiled = backend.compile(step.graph.clone())?;
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let weights: HashMap<String, Tensor> = match weights {
        Some(path) => {
            let expected: Vec<(String, DType, Vec<usize>)> = step
                .params
                .iter()
                .map(|p| (p.name.clone(), p.dtype, p.shape.clone()))
                .collect();
            let ts = dnnc_runtime::checkpoint::load_into(path, &expected)?;
            step.params.iter().map(|p| p.name.clone()).zip(ts).collect()
        }
        None => HashMap::new(),
    };
    let train = time_exe(&step.graph, compiled.as_mut(), runs, classes, &weights)?;
    let b1 = time_graph(
        forward(job.db, job.file, job.item, Mode::Predict, 1, &passes)?.graph,
        backend,
        runs * 10,
        classes,
        &weights,
    )?;
    let b256 = time_graph(
        forward(job.db, job.file, job.item, Mode::Predict, 256, &passes)?.graph,
        backend,
        runs,
        classes,
        &weights,
    )?;
    Ok(BenchResult {
        train_step_ms: train * 1e3,
        infer_b1_us: b1 * 1e6,
        infer_b256_us: b256 * 1e6,
        compile_ms,
        batch,
        backend: backend.name(),
        threads: crate::backend::threads(),
    })
}
