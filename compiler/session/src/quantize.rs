//! Post-training int8 quantization: `dnnc quantize` calibrates activation ranges on
//! samples of the training split and writes the weights of every quantizable product
//! (`dnnc_passes::quantize`) as `i8` with their scales; graphs built for such weights
//! (`PassOptions::int8`) run those products in `i8`.
//!
//! Weights are quantized symmetrically per output channel (`s = max |w| / 127`, `q =
//! round(w / s)`), activations per tensor (`s = r / 127` for the calibrated range `r`:
//! the largest magnitude seen, `minmax`, or its 99.99th percentile, `percentile`).
//! The file keeps every other parameter as it was, and says `dnnc.quantized = int8`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dnnc_lower::{Lowered, Mode, ParamInfo};
use dnnc_passes::quantize::{
    input_scale_name, quantizable_products, quantize_products, scale_name,
};
use dnnc_runtime::checkpoint;
use dnnc_tensor::{DType, Data, Tensor};

use crate::backend::BackendKind;
use crate::error::RunError;
use crate::run::{initial_params, scalar_i64, Job, Weights};
use crate::steps::{forward, PassOptions};

/// The metadata key of a quantized checkpoint.
pub const QUANTIZED_KEY: &str = "dnnc.quantized";

/// How activation ranges are calibrated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calibration {
    /// The largest magnitude seen.
    MinMax,
    /// The 99.99th percentile of the magnitudes (outliers clip).
    Percentile,
    /// The clipping range whose quantization error (mean squared, clipping included)
    /// over the calibration samples is least.
    Mse,
}

impl Calibration {
    pub fn name(self) -> &'static str {
        match self {
            Calibration::MinMax => "minmax",
            Calibration::Percentile => "percentile",
            Calibration::Mse => "mse",
        }
    }
}

/// What to quantize and where to write it.
pub struct QuantizeOptions {
    pub weights: PathBuf,
    /// Training samples to calibrate on (at most the split's).
    pub calibrate: usize,
    pub method: Calibration,
    pub out: PathBuf,
    pub backend: BackendKind,
    pub passes: PassOptions,
}

/// What [`quantize`] did.
pub struct Quantized {
    /// Each quantized parameter and its number of output channels.
    pub params: Vec<(String, usize)>,
    /// Samples calibrated on (fewer than asked when the split is smaller).
    pub samples: usize,
    /// Bytes of the weights before and after.
    pub bytes: (usize, usize),
}

/// The parameters of `weights` stored quantized (those with an input scale).
pub fn quantized_params(weights: &Path) -> Result<Vec<String>, RunError> {
    let (names, meta) = checkpoint::header(weights)?;
    Ok(quantized_among(&names, &meta))
}

/// The parameters stored quantized in a file with these tensor names and metadata.
pub fn quantized_among<'a>(
    names: impl IntoIterator<Item = &'a String>,
    meta: &std::collections::HashMap<String, String>,
) -> Vec<String> {
    if !meta.contains_key(QUANTIZED_KEY) {
        return Vec::new();
    }
    names
        .into_iter()
        .filter_map(|n| n.strip_suffix(".input_scale").map(str::to_string))
        .collect()
}

/// `passes` for graphs that read `weights`: int8 products where they are quantized.
pub fn passes_for(passes: &PassOptions, weights: &Path) -> Result<PassOptions, RunError> {
    Ok(PassOptions {
        int8: quantized_params(weights)?,
        ..passes.clone()
    })
}

/// Rewrites the products of `names` in `l` to int8 and retypes their parameters: the
/// weight `i8`, with its two scales as parameters too (all loaded from the file).
pub(crate) fn apply(l: &mut Lowered, names: &[String]) -> Result<(), RunError> {
    let products = quantizable_products(&l.graph, names)?;
    for name in names {
        let read = l.params.iter().any(|p| &p.name == name);
        if read && !products.iter().any(|p| &p.param == name) {
            return Err(RunError::NotRunnable(format!(
                "the quantized weight `{name}` is read by more than one matrix product in this graph; quantize a model whose weights only multiply activations"
            )));
        }
    }
    quantize_products(&mut l.graph, &products)?;
    for p in &products {
        let Some(info) = l.params.iter_mut().find(|i| i.name == p.param) else {
            continue;
        };
        info.dtype = DType::I8;
        let scale = |name: String, shape: Vec<usize>| ParamInfo {
            name,
            dtype: DType::F32,
            shape,
            init: dnnc_settings::Init::Ones,
            frozen: true,
            buffer: true,
            from: None,
            std_layer: None,
        };
        let (a, b) = (
            scale(scale_name(&p.param), vec![p.channels]),
            scale(input_scale_name(&p.param), vec![]),
        );
        l.params.push(a);
        l.params.push(b);
    }
    Ok(())
}

/// `dnnc quantize`.
pub fn quantize(job: &Job<'_>, opts: &QuantizeOptions) -> Result<Quantized, RunError> {
    if !quantized_params(&opts.weights)?.is_empty() {
        return Err(RunError::NotRunnable(format!(
            "{}: these weights are quantized already",
            opts.weights.display()
        )));
    }
    let split = crate::data::load_split(job.db, job.dataset, "train")?;
    let samples = opts.calibrate.clamp(1, split.len().max(1));
    let batch = job.cfg.batch.clamp(1, samples);
    let mut l = forward(job.db, job.file, job.item, Mode::Eval, batch, &opts.passes)?;
    let names: Vec<String> = l
        .params
        .iter()
        .filter(|p| !p.buffer && p.shape.len() >= 2 && p.dtype == DType::F32)
        .map(|p| p.name.clone())
        .collect();
    let products = quantizable_products(&l.graph, &names)?;
    if products.is_empty() {
        return Err(RunError::NotRunnable(
            "the model has no matrix product of an activation by a weight to quantize".into(),
        ));
    }
    for (i, p) in products.iter().enumerate() {
        l.graph.set_output(format!("calibrate.{i}"), p.activation);
    }
    let store = opts.backend.store();
    store.set_all(&initial_params(&l.params, Weights::Saved(&opts.weights))?)?;
    let mut exe = opts.backend.compile(l.graph, &store)?;
    let mut ranges = vec![Range::default(); products.len()];
    let key = scalar_i64(0);
    let whole = samples / batch;
    for b in 0..whole {
        let batch_fields: Vec<(String, Tensor)> = split
            .fields
            .iter()
            .map(|(n, t)| (n.clone(), t.slice_rows(b * batch, (b + 1) * batch)))
            .collect();
        let mut inputs: Vec<(&str, &Tensor)> =
            batch_fields.iter().map(|(n, t)| (n.as_str(), t)).collect();
        inputs.push((dnnc_ir::Port::RngKey.name(), &key));
        exe.step(&inputs)?;
        for (i, r) in ranges.iter_mut().enumerate() {
            let t = exe
                .output(&format!("calibrate.{i}"))
                .ok_or_else(|| RunError::Internal("the calibration graph lost an output".into()))?;
            r.add(&t.to_f32_vec());
        }
    }
    // The weights: quantized ones replaced, the rest as they were.
    let saved = checkpoint::load(&opts.weights)?;
    let bytes = |t: &Tensor| t.len() * t.dtype.size_bytes();
    let before: usize = saved.iter().map(|(_, t)| bytes(t)).sum();
    let mut out: HashMap<String, Tensor> = saved.into_iter().collect();
    let mut params = Vec::new();
    for (p, r) in products.iter().zip(&ranges) {
        let w = out.get(&p.param).ok_or_else(|| {
            RunError::WeightsMisfit(format!(
                "{}: no tensor `{}`",
                opts.weights.display(),
                p.param
            ))
        })?;
        let (q, scales) = quantize_weight(w, p.channels, p.channels_first);
        let range = r.value(opts.method);
        let sx = if range > 0.0 && range.is_finite() {
            range / 127.0
        } else {
            1.0
        };
        out.insert(p.param.clone(), q);
        out.insert(
            scale_name(&p.param),
            Tensor::f32(vec![p.channels], scales).expect("one scale per channel"),
        );
        out.insert(input_scale_name(&p.param), Tensor::scalar_f32(sx as f32));
        params.push((p.param.clone(), p.channels));
    }
    let after: usize = out.values().map(bytes).sum();
    let mut meta = checkpoint::metadata(&opts.weights)?;
    meta.insert(
        QUANTIZED_KEY.into(),
        format!(
            "int8 ({} calibration on {} samples)",
            opts.method.name(),
            whole * batch
        ),
    );
    let mut named: Vec<(String, &Tensor)> = out.iter().map(|(n, t)| (n.clone(), t)).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut meta: Vec<(&str, String)> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    meta.sort();
    checkpoint::save_with_metadata(&opts.out, &named, &meta)?;
    Ok(Quantized {
        params,
        samples: whole * batch,
        bytes: (before, after),
    })
}

/// `w` in `i8` per output channel (`channels` of them, along `w`'s first axis or its
/// last), and the channels' scales.
fn quantize_weight(w: &Tensor, channels: usize, channels_first: bool) -> (Tensor, Vec<f32>) {
    let v = w.to_f32_vec();
    let c = channels.max(1);
    let inner = v.len() / c;
    let channel = |i: usize| {
        if channels_first {
            i / inner.max(1)
        } else {
            i % c
        }
    };
    let mut top = vec![0f32; c];
    for (i, x) in v.iter().enumerate() {
        let ch = channel(i);
        top[ch] = top[ch].max(x.abs());
    }
    let scales: Vec<f32> = top
        .iter()
        .map(|&m| {
            if m > 0.0 && m.is_finite() {
                m / 127.0
            } else {
                1.0
            }
        })
        .collect();
    let q: Vec<i8> = v
        .iter()
        .enumerate()
        .map(|(i, x)| (x / scales[channel(i)]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (
        Tensor {
            dtype: DType::I8,
            shape: w.shape.clone(),
            data: Data::I8(q),
        },
        scales,
    )
}

/// The magnitudes an activation took during calibration.
#[derive(Clone, Default)]
struct Range {
    max: f32,
    /// Every `stride`-th magnitude, at most [`KEEP`] of them, for percentiles.
    kept: Vec<f32>,
    seen: usize,
}

/// Magnitudes kept per activation for its percentile.
const KEEP: usize = 1 << 20;

impl Range {
    fn add(&mut self, values: &[f32]) {
        for &x in values {
            let m = x.abs();
            if !m.is_finite() {
                // An overflowed activation says nothing about the range to keep.
                continue;
            }
            self.max = self.max.max(m);
            self.seen += 1;
            if self.kept.len() < KEEP {
                self.kept.push(m);
            } else {
                // Reservoir sampling keeps a uniform sample of everything seen.
                let j = (self.seen.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % self.seen;
                if j < KEEP {
                    self.kept[j] = m;
                }
            }
        }
    }

    fn value(&self, method: Calibration) -> f64 {
        match method {
            Calibration::MinMax => f64::from(self.max),
            Calibration::Percentile => {
                if self.kept.is_empty() {
                    return 0.0;
                }
                let mut v = self.kept.clone();
                let at = ((v.len() as f64) * 0.9999).floor() as usize;
                let at = at.min(v.len() - 1);
                let (_, x, _) = v.select_nth_unstable_by(at, f32::total_cmp);
                f64::from(*x)
            }
            Calibration::Mse => self.least_error_range(),
        }
    }

    /// The range `t` that minimises the mean squared error of quantizing the kept
    /// magnitudes to `round(x·127/t)·t/127`, clipped at `t`, over at most
    /// [`MSE_SAMPLES`] of them; candidates on a geometric grid of 16 per octave from
    /// `max` down to `max/2¹⁶` (an outlier far above the bulk leaves the bulk's range
    /// within reach).
    fn least_error_range(&self) -> f64 {
        let max = f64::from(self.max);
        if self.kept.is_empty() || max <= 0.0 {
            return max;
        }
        let step = self.kept.len().div_ceil(MSE_SAMPLES).max(1);
        let xs: Vec<f64> = self
            .kept
            .iter()
            .step_by(step)
            .map(|&x| f64::from(x))
            .collect();
        let error = |t: f64| -> f64 {
            let s = t / 127.0;
            xs.iter()
                .map(|&x| {
                    let q = if x >= t { t } else { (x / s).round() * s };
                    (x - q) * (x - q)
                })
                .sum()
        };
        (0..=256)
            .map(|k| max * (-(k as f64) / 16.0).exp2())
            .map(|t| (error(t), t))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(max, |(_, t)| t)
    }
}

/// Magnitudes the `mse` calibration evaluates each candidate range on.
const MSE_SAMPLES: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_quantize_per_channel() {
        let w = Tensor::f32(vec![2, 3], vec![1.0, -0.5, 0.25, -2.0, 0.5, 0.0]).unwrap();
        // `Dense`'s `[inp, out]`: channels are columns.
        let (q, s) = quantize_weight(&w, 3, false);
        assert_eq!(s, vec![2.0 / 127.0, 0.5 / 127.0, 0.25 / 127.0]);
        assert_eq!(q.data, Data::I8(vec![64, -127, 127, -127, 127, 0]));
        // A kernel's `[out, ...]`: channels are rows.
        let (q, s) = quantize_weight(&w, 2, true);
        assert_eq!(s, vec![1.0 / 127.0, 2.0 / 127.0]);
        assert_eq!(q.data, Data::I8(vec![127, -64, 32, -127, 32, 0]));
    }

    #[test]
    fn percentiles_clip_outliers() {
        let mut r = Range::default();
        let mut v = vec![1.0f32; 100_000];
        v[7] = 1000.0;
        r.add(&v);
        assert_eq!(r.value(Calibration::MinMax), 1000.0);
        assert_eq!(r.value(Calibration::Percentile), 1.0);
        // One outlier in 100,000 costs less clipped than it would cost everything else
        // in resolution: the least-error range is near the bulk, not at the outlier.
        let t = r.value(Calibration::Mse);
        assert!(t < 50.0, "{t}");
    }

    #[test]
    fn least_error_ranges_keep_an_even_spread_whole() {
        // Magnitudes spread evenly over [0, 1]: clipping any of them costs more than
        // it saves, so the range is (nearly) the maximum.
        let mut r = Range::default();
        let v: Vec<f32> = (0..50_000).map(|i| i as f32 / 49_999.0).collect();
        r.add(&v);
        let t = r.value(Calibration::Mse);
        assert!(t > 0.95 && t <= 1.0, "{t}");
    }
}
