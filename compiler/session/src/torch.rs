//! `dnnc convert`: a model's checkpoint in PyTorch's names and layouts and back.
//!
//! Each parameter's binding path stays (`fc1`, `encoder.block2.norm`); its local name
//! and layout follow the PyTorch module of the standard-library layer that declares it:
//! `Dense`'s `W: [inp, out]` is `nn.Linear`'s `weight: [out, inp]` (transposed) and `b`
//! its `bias`; `Conv2d`'s `W`, `b` are `weight`, `bias` (same layout); the norms'
//! `gamma`, `beta` are `weight`, `bias` (their running statistics keep their names, and
//! PyTorch's `num_batches_tracked` is written as 0 and ignored when read); `Embedding`'s
//! `W` is `weight`. Layers already in PyTorch's names (`LSTM`, `GRU`, `RNN`, `Linear`,
//! `MultiheadAttention`, ...) and the user's own layers keep theirs, except that the
//! recurrent layers' stacks of upper layers (`weight_ih_stack: [L - 1, ...]`,
//! `weight_ih_stack_reverse`) are PyTorch's `weight_ih_l1`, `weight_ih_l2`, ... (and
//! `weight_ih_l1_reverse`, ...), one tensor per layer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use dnnc_lower::{Mode, ParamInfo};
use dnnc_runtime::checkpoint;
use dnnc_tensor::{DType, Tensor};

use crate::error::RunError;
use crate::run::Job;

/// One parameter under both names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorchName {
    pub dnnc: String,
    /// PyTorch's name, or names: one per layer of a [`Layout::Stacked`] parameter.
    pub torch: Vec<String>,
    pub layout: Layout,
    /// dnnc's shape.
    pub shape: Vec<usize>,
    /// dnnc's element type.
    pub dtype: DType,
}

/// How a dnnc parameter holds PyTorch's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The same tensor.
    Same,
    /// Transposed: a `[inp, out]` matrix in dnnc, `[out, inp]` in PyTorch.
    Transposed,
    /// PyTorch's tensors stacked on a new leading axis, in order.
    Stacked,
}

impl TorchName {
    /// The shape of each of PyTorch's tensors.
    fn torch_shape(&self) -> Vec<usize> {
        match self.layout {
            Layout::Same => self.shape.clone(),
            Layout::Transposed => vec![self.shape[1], self.shape[0]],
            Layout::Stacked => self.shape[1..].to_vec(),
        }
    }
}

/// PyTorch's local names for parameter `local` (of shape `shape`) of the standard layer
/// `layer`, and how dnnc holds them.
fn torch_locals(layer: &str, local: &str, shape: &[usize]) -> (Vec<String>, Layout) {
    if let ("RNN" | "LSTM" | "GRU" | "BiLSTM", Some((base, direction))) =
        (layer, local.split_once("_stack"))
    {
        let layers = 1..=shape.first().copied().unwrap_or(0);
        let names = layers.map(|k| format!("{base}_l{k}{direction}"));
        return (names.collect(), Layout::Stacked);
    }
    let (name, transposed) = torch_local(layer, local);
    let layout = if transposed && shape.len() == 2 {
        Layout::Transposed
    } else {
        Layout::Same
    };
    (vec![name], layout)
}

/// PyTorch's local name for parameter `local` of the standard layer `layer`, and
/// whether it is stored transposed.
fn torch_local(layer: &str, local: &str) -> (String, bool) {
    let renamed = match (layer, local) {
        ("Dense", "W") => Some(("weight", true)),
        ("Dense", "b") => Some(("bias", false)),
        ("Conv2d" | "Conv2dSame", "W") => Some(("weight", false)),
        ("Conv2d" | "Conv2dSame", "b") => Some(("bias", false)),
        ("BatchNorm2d" | "BatchNorm1d" | "LayerNorm", "gamma") => Some(("weight", false)),
        ("BatchNorm2d" | "BatchNorm1d" | "LayerNorm", "beta") => Some(("bias", false)),
        ("Embedding", "W") => Some(("weight", false)),
        _ => None,
    };
    match renamed {
        Some((n, t)) => (n.to_string(), t),
        None => (local.to_string(), false),
    }
}

/// Whether PyTorch's module for `layer` also counts its batches.
fn counts_batches(layer: &str) -> bool {
    matches!(layer, "BatchNorm2d" | "BatchNorm1d")
}

/// Every parameter and buffer of `job`'s models under both names, and the names of
/// PyTorch's `num_batches_tracked` counters.
pub fn names(job: &Job<'_>) -> Result<(Vec<TorchName>, Vec<String>), RunError> {
    let mut params: Vec<ParamInfo> = Vec::new();
    let mut seen = HashSet::new();
    for k in 0..job.cfg.steps.len().max(1) {
        let l = dnnc_lower::lower(job.db, job.file, job.item, Mode::Train(k), 1)?;
        for p in l.params {
            if seen.insert(p.name.clone()) {
                params.push(p);
            }
        }
    }
    Ok(table(&params))
}

/// [`names`] of these parameters.
pub fn table(params: &[ParamInfo]) -> (Vec<TorchName>, Vec<String>) {
    let mut out = Vec::new();
    let mut counters = Vec::new();
    for p in params {
        let (path, local) = match p.name.rsplit_once('.') {
            Some((path, local)) => (Some(path), local),
            None => (None, p.name.as_str()),
        };
        let (locals, layout) = match &p.std_layer {
            Some(layer) => torch_locals(layer, local, &p.shape),
            None => (vec![local.to_string()], Layout::Same),
        };
        let prefix = path.map(|p| format!("{p}.")).unwrap_or_default();
        if let (Some(layer), "running_mean") = (&p.std_layer, local) {
            if counts_batches(layer) {
                counters.push(format!("{prefix}num_batches_tracked"));
            }
        }
        out.push(TorchName {
            dnnc: p.name.clone(),
            torch: locals.iter().map(|l| format!("{prefix}{l}")).collect(),
            layout,
            shape: p.shape.clone(),
            dtype: p.dtype,
        });
    }
    (out, counters)
}

/// The transpose of an `f32` matrix.
fn transposed(t: &Tensor) -> Tensor {
    let (r, c) = (t.shape[0], t.shape[1]);
    let v = t.to_f32_vec();
    let mut out = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = v[i * c + j];
        }
    }
    Tensor::f32(vec![c, r], out).expect("the sizes match")
}

/// `f32` tensors of one shape stacked on a new leading axis into `shape`.
fn stacked(pieces: &[Tensor], shape: &[usize]) -> Tensor {
    let data: Vec<f32> = pieces.iter().flat_map(|p| p.to_f32_vec()).collect();
    Tensor::f32(shape.to_vec(), data).expect("the pieces fill the stack")
}

/// The entries of a tensor along its leading axis.
fn unstacked(t: &Tensor) -> Vec<Tensor> {
    (0..t.shape[0]).map(|k| t.entry(k)).collect()
}

/// Which direction a conversion goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A PyTorch `state_dict` (safetensors) into dnnc's checkpoint.
    FromTorch,
    /// dnnc's checkpoint into a PyTorch `state_dict`.
    ToTorch,
}

/// Converts the checkpoint `input` of `job`'s models to `output` (written atomically);
/// returns how many tensors were written. Every name that is missing, unknown or of the
/// wrong shape is listed in one error, and nothing is written then.
pub fn convert(
    job: &Job<'_>,
    direction: Direction,
    input: &Path,
    output: &Path,
) -> Result<usize, RunError> {
    let (table, counters) = names(job)?;
    let (tensors, metadata) = checkpoint::load_with_metadata(input)?;
    let tensors: HashMap<String, Tensor> = tensors.into_iter().collect();
    let mut problems = Vec::new();
    let mut written: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut used = HashSet::new();
    // The tensor `from` (for `to`) as `f32` if it has shape `want`, else a problem.
    let mut fetch = |from: &String, to: &String, want: &[usize], dtype: DType| {
        let Some(t) = tensors.get(from) else {
            problems.push(format!("`{from}` is missing (for `{to}`)"));
            return None;
        };
        used.insert(from.clone());
        if t.dtype.is_float() != dtype.is_float() {
            problems.push(format!(
                "`{from}` holds {:?} values, but `{to}` is {dtype:?}",
                t.dtype
            ));
            return None;
        }
        if t.shape != want {
            problems.push(format!(
                "`{from}` has shape {:?}, expected {want:?} (for `{to}`)",
                t.shape
            ));
            return None;
        }
        Some(if t.dtype.is_float() && t.dtype != DType::F32 {
            t.cast(DType::F32)
        } else {
            t.clone()
        })
    };
    for n in &table {
        let piece = n.torch_shape();
        match direction {
            Direction::FromTorch => {
                let pieces: Vec<Option<Tensor>> = n
                    .torch
                    .iter()
                    .map(|from| fetch(from, &n.dnnc, &piece, n.dtype))
                    .collect();
                let Some(pieces) = pieces.into_iter().collect::<Option<Vec<Tensor>>>() else {
                    continue;
                };
                let t = match n.layout {
                    Layout::Same => pieces.into_iter().next().expect("one tensor"),
                    Layout::Transposed => transposed(&pieces[0]),
                    Layout::Stacked => stacked(&pieces, &n.shape),
                };
                written.insert(n.dnnc.clone(), t);
            }
            Direction::ToTorch => {
                let to = n.torch.join("`, `");
                let Some(t) = fetch(&n.dnnc, &to, &n.shape, n.dtype) else {
                    continue;
                };
                match n.layout {
                    Layout::Same => {
                        written.insert(n.torch[0].clone(), t);
                    }
                    Layout::Transposed => {
                        written.insert(n.torch[0].clone(), transposed(&t));
                    }
                    Layout::Stacked => {
                        for (name, p) in n.torch.iter().zip(unstacked(&t)) {
                            written.insert(name.clone(), p);
                        }
                    }
                }
            }
        }
    }
    match direction {
        Direction::FromTorch => used.extend(counters.iter().cloned()),
        Direction::ToTorch => {
            for c in &counters {
                written.insert(c.clone(), Tensor::scalar_i64(0));
            }
        }
    }
    let mut unknown: Vec<&String> = tensors.keys().filter(|k| !used.contains(*k)).collect();
    unknown.sort();
    for u in unknown {
        problems.push(format!("`{u}` belongs to no parameter of the model"));
    }
    if !problems.is_empty() {
        return Err(RunError::NotRunnable(format!(
            "{}: cannot convert {} of its tensors:\n  {}",
            input.display(),
            problems.len(),
            problems.join("\n  ")
        )));
    }
    let refs: Vec<(String, &Tensor)> = written.iter().map(|(k, v)| (k.clone(), v)).collect();
    // What the file says besides its tensors (a text model's vocabulary) goes along.
    let mut meta: Vec<(String, String)> = metadata.into_iter().collect();
    meta.sort();
    let meta: Vec<(&str, String)> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    checkpoint::save_with_metadata(output, &refs, &meta)?;
    Ok(refs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, shape: &[usize], layer: Option<&str>) -> ParamInfo {
        ParamInfo {
            name: name.into(),
            dtype: DType::F32,
            shape: shape.to_vec(),
            init: dnnc_settings::Init::Zeros,
            frozen: false,
            buffer: false,
            from: None,
            std_layer: layer.map(String::from),
        }
    }

    #[test]
    fn std_layers_take_pytorch_names_and_layouts() {
        let (t, counters) = table(&[
            info("fc1.W", &[784, 256], Some("Dense")),
            info("fc1.b", &[256], Some("Dense")),
            info("enc.bn.gamma", &[8], Some("BatchNorm2d")),
            info("enc.bn.running_mean", &[8], Some("BatchNorm2d")),
            info("h0.norm1.gamma", &[128], Some("LayerNorm")),
            info("lstm.weight_ih_l0", &[1024, 64], Some("LSTM")),
            info("lstm.weight_hh_stack", &[2, 1024, 256], Some("LSTM")),
            info("bi.bias_ih_stack_reverse", &[1, 16], Some("BiLSTM")),
            info("mine.W", &[3, 4], None),
            info("scale", &[1], None),
        ]);
        let pairs: Vec<(&str, String, Layout)> = t
            .iter()
            .map(|n| (n.dnnc.as_str(), n.torch.join(" "), n.layout))
            .collect();
        let same = |a: &'static str, b: &str, l| (a, b.to_string(), l);
        assert_eq!(
            pairs,
            [
                same("fc1.W", "fc1.weight", Layout::Transposed),
                same("fc1.b", "fc1.bias", Layout::Same),
                same("enc.bn.gamma", "enc.bn.weight", Layout::Same),
                same("enc.bn.running_mean", "enc.bn.running_mean", Layout::Same),
                same("h0.norm1.gamma", "h0.norm1.weight", Layout::Same),
                same("lstm.weight_ih_l0", "lstm.weight_ih_l0", Layout::Same),
                same(
                    "lstm.weight_hh_stack",
                    "lstm.weight_hh_l1 lstm.weight_hh_l2",
                    Layout::Stacked
                ),
                same(
                    "bi.bias_ih_stack_reverse",
                    "bi.bias_ih_l1_reverse",
                    Layout::Stacked
                ),
                same("mine.W", "mine.W", Layout::Same),
                same("scale", "scale", Layout::Same),
            ]
        );
        assert_eq!(counters, ["enc.bn.num_batches_tracked"]);
    }

    #[test]
    fn transposes_move_every_element() {
        let t = Tensor::f32(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let u = transposed(&t);
        assert_eq!(u.shape, [3, 2]);
        assert_eq!(u.to_f32_vec(), [1., 4., 2., 5., 3., 6.]);
        assert_eq!(transposed(&u).to_f32_vec(), t.to_f32_vec());
    }

    #[test]
    fn stacks_split_and_join_in_order() {
        let t = Tensor::f32(vec![2, 1, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let pieces = unstacked(&t);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[1].shape, [1, 3]);
        assert_eq!(pieces[1].to_f32_vec(), [4., 5., 6.]);
        assert_eq!(stacked(&pieces, &[2, 1, 3]).to_f32_vec(), t.to_f32_vec());
    }
}
