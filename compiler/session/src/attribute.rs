//! `dnnc attribute`: attribution maps of saved weights on samples of a dataset split,
//! computed by the graph `dnnc_lower::attribute` builds from `std::explain`, written
//! as `.npy` (the raw maps) or as a PNG grid of the inputs with the maps overlaid.

use std::path::{Path, PathBuf};

use dnnc_ir::Port;
use dnnc_lower::{
    lower_attribution, Attributed, Attribution, AttributionError, LowerError, Method,
};
use dnnc_tensor::Tensor;

use crate::backend::{BackendKind, Executable};
use crate::error::RunError;
use crate::run::{check_state_memory, initial_params, scalar_i64, Job, Weights};
use crate::steps::{standard_passes, PassOptions};
use crate::trainer::ByBatch;

/// What to attribute, where the samples come from and where the maps go.
pub struct AttributeOptions {
    pub attribution: Attribution,
    /// The dataset split the samples are taken from, in order.
    pub split: String,
    /// How many samples (the first ones of the split; fewer if it is smaller).
    pub count: usize,
    /// `.npy` for the maps, `.png` for a picture.
    pub out: PathBuf,
    pub backend: BackendKind,
    pub passes: PassOptions,
}

/// What was written.
#[derive(Debug)]
pub struct AttributeSummary {
    /// The maps' shape, `[count, ...]`.
    pub shape: Vec<usize>,
    /// The dataset field the maps are of.
    pub field: String,
    /// Grad-CAM's layer.
    pub layer: Option<String>,
    /// Each sample's explained class and predicted class.
    pub targets: Vec<i64>,
    pub predicted: Vec<i64>,
}

/// Computes and writes the maps.
pub fn attribute(
    job: &Job<'_>,
    weights: &Path,
    opts: &AttributeOptions,
) -> Result<AttributeSummary, RunError> {
    let split = match crate::data::load_split(job.db, job.dataset, &opts.split) {
        Err(RunError::Lower(LowerError::NoSplit { split })) => {
            return Err(RunError::NotRunnable(format!(
                "--split {split}: the dataset has no such split"
            )))
        }
        other => other?,
    };
    let batch = job.cfg.batch.max(1);
    let first = graph(job, &opts.attribution, batch.min(opts.count.max(1)), opts)?;
    let g = &first.lowered.graph;
    let input_shape = g
        .input_named("input")
        .map(|n| g.ty(n).shape.clone())
        .ok_or_else(|| RunError::Internal("the attribution graph has no input".into()))?;
    let (field, data) = input_field(&split.fields, &input_shape[1..])?;
    let n = opts.count.min(data.shape[0]);
    if n == 0 {
        return Err(RunError::Dataset(format!(
            "split `{}` has no samples to attribute",
            opts.split
        )));
    }
    let mut shape = vec![n];
    shape.extend_from_slice(&input_shape[1..]);
    let x = Tensor::f32(shape, data.slice_rows(0, n).to_f32_vec())
        .map_err(|e| RunError::Internal(e.to_string()))?;
    check_state_memory(&first.lowered.graph, "attribution")?;
    let store = opts.backend.store();
    store.set_all(&initial_params(
        &first.lowered.params,
        Weights::Saved(weights),
    )?)?;
    let layer = first.layer.clone();
    let mut cache = ByBatch::new();
    let first_batch = batch.min(opts.count.max(1));
    let mut first = Some(first);
    let mut build = |b: usize| -> Result<Box<dyn Executable>, RunError> {
        let g = match first.take() {
            Some(f) if b == first_batch => f.lowered.graph,
            _ => graph(job, &opts.attribution, b, opts)?.lowered.graph,
        };
        opts.backend.compile(g, &store)
    };
    let key = scalar_i64(0);
    let (mut maps, mut map_shape) = (Vec::new(), Vec::new());
    let (mut targets, mut predicted) = (Vec::new(), Vec::new());
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let exe = cache.get(end - start, &mut build)?;
        exe.step(&[
            ("input", &x.slice_rows(start, end)),
            (Port::RngKey.name(), &key),
        ])?;
        let out = |name: &str| {
            exe.output(name)
                .ok_or_else(|| RunError::Internal(format!("no output `{name}`")))
        };
        let m = out("attribution")?;
        map_shape = m.shape.clone();
        maps.extend(m.to_f32_vec());
        targets.extend(out("target")?.to_f32_vec().iter().map(|&v| v as i64));
        predicted.extend(out("predicted")?.to_f32_vec().iter().map(|&v| v as i64));
        start = end;
    }
    map_shape[0] = n;
    let maps =
        Tensor::f32(map_shape.clone(), maps).map_err(|e| RunError::Internal(e.to_string()))?;
    let out = &opts.out;
    if out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        let picture = dnnc_runtime::heatmap::overlay(&x, &maps)
            .map_err(|e| RunError::NotRunnable(format!("{}: {e}", out.display())))?;
        dnnc_runtime::image::write_grid(out, &picture).map_err(|e| RunError::write(out, e))?;
    } else {
        let shape: Vec<u64> = map_shape.iter().map(|&d| d as u64).collect();
        dnnc_data::npy::save_f32(out, &shape, &maps.to_f32_vec())
            .map_err(|e| RunError::write(out, e.message))?;
    }
    Ok(AttributeSummary {
        shape: map_shape,
        field,
        layer,
        targets,
        predicted,
    })
}

/// The attribution graph for `batch` samples after the standard passes; a model that
/// does not admit the method is a usage error naming the valid choices.
fn graph(
    job: &Job<'_>,
    attr: &Attribution,
    batch: usize,
    opts: &AttributeOptions,
) -> Result<Attributed, RunError> {
    let a = lower_attribution(job.db, job.file, job.item, attr, batch)?
        .map_err(|e| RunError::NotRunnable(explain_error(&e, &attr.method)))?;
    Ok(Attributed {
        lowered: standard_passes(a.lowered, &opts.passes)?,
        layer: a.layer,
    })
}

fn explain_error(e: &AttributionError, method: &Method) -> String {
    match e {
        AttributionError::NotAClassifier { shape } => format!(
            "attributions explain a classifier's scores: `forward` must return logits `[B, C]`, and this model returns {shape:?}"
        ),
        AttributionError::NoSuchClass { class, classes } => format!(
            "--target {class}: the model has {classes} classes, 0 to {}; or use `--target predicted`",
            classes.saturating_sub(1)
        ),
        AttributionError::NoSuchLayer { layer, maps, found } => {
            let choices = if maps.is_empty() {
                "this model calls no layer that gives maps `[B, C, H, W]`".to_string()
            } else {
                let list: Vec<String> = maps
                    .iter()
                    .map(|(p, s)| format!("`{p}` {}", per_sample(s)))
                    .collect();
                format!("layers with maps `[B, C, H, W]`: {}", list.join(", "))
            };
            let what = match (layer, found) {
                (Some(l), Some(s)) => {
                    format!("--layer {l} gives {}, not maps `[B, C, H, W]`", per_sample(s))
                }
                (Some(l), None) => format!("--layer {l} names no layer the model's `forward` calls"),
                (None, _) => format!("--method {} needs a layer with spatial maps", method_name(method)),
            };
            format!("{what}; {choices}")
        }
    }
}

/// `[B, 8, 24, 24]` for a batch's shape.
fn per_sample(shape: &[usize]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .enumerate()
        .map(|(i, d)| if i == 0 { "B".into() } else { d.to_string() })
        .collect();
    format!("[{}]", dims.join(", "))
}

fn method_name(m: &Method) -> &'static str {
    match m {
        Method::Saliency => "saliency",
        Method::GradXInput => "gradxinput",
        Method::IntegratedGradients { .. } => "integrated_gradients",
        Method::GradCam { .. } => "gradcam",
    }
}

/// The float field of the split whose samples have the model's input size (reshaped
/// to the input's shape, as `reshape(image, [B, 784])` in a train block would).
fn input_field<'s>(
    fields: &'s [(String, Tensor)],
    per_sample: &[usize],
) -> Result<(String, &'s Tensor), RunError> {
    let size: usize = per_sample.iter().product();
    let fits: Vec<&(String, Tensor)> = fields
        .iter()
        .filter(|(_, t)| t.dtype.is_float() && t.shape[1..].iter().product::<usize>() == size)
        .collect();
    match fits.as_slice() {
        [(name, t)] => Ok((name.clone(), t)),
        [] => Err(RunError::Dataset(format!(
            "no float field of the dataset has samples of the model's input size {per_sample:?}"
        ))),
        many => {
            let names: Vec<&str> = many.iter().map(|(n, _)| n.as_str()).collect();
            Err(RunError::Dataset(format!(
                "several fields have samples of the model's input size {per_sample:?}: {}",
                names.join(", ")
            )))
        }
    }
}
