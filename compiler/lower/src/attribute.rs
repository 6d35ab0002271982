//! The graph of `dnnc attribute`: a model's class scores differentiated with respect
//! to its input, or to a layer's feature maps, by the `.dnn` functions of
//! `std::explain` — the command runs exactly what a program calling them would.
//!
//! Inputs: `input` (the model's `forward` input for `batch` samples). Outputs:
//! `attribution` (`[batch, ..input]`, or `[batch, H, W]` for Grad-CAM), `target` and
//! `predicted` (each sample's class, `i64`).

use std::rc::Rc;

use dnnc_ir::{DType, Graph, NodeId, Op};
use dnnc_syntax::ast::ItemKind;

use crate::emit::Res;
use crate::lowerer::Lowerer;
use crate::model::{bind_models, predict_input, train_item, Lowered};
use crate::value::{LayerVal, Val};

/// An attribution method of `std::explain`.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// `|∂ score / ∂ x|`.
    Saliency,
    /// `x · ∂ score / ∂ x`.
    GradXInput,
    /// Integrated gradients from a zero baseline over `steps` points.
    IntegratedGradients { steps: usize },
    /// Grad-CAM at the output of the layer instance at `layer` (a path such as
    /// `conv2`); by default the last layer the forward pass calls whose output is
    /// `[B, C, H, W]` maps (Selvaraju et al. use the last convolutional layer).
    GradCam { layer: Option<String> },
}

/// Whose score is explained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The same class for every sample.
    Class(usize),
    /// Each sample's predicted class (the arg-max of its logits).
    Predicted,
}

/// What `dnnc attribute` computes.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribution {
    pub method: Method,
    pub target: Target,
}

/// Why an attribution cannot be computed for this model: the run reports it with the
/// valid choices.
#[derive(Clone, Debug, PartialEq)]
pub enum AttributionError {
    /// `forward` does not return `[B, C]` logits.
    NotAClassifier { shape: Vec<usize> },
    /// The class is not below the number of classes.
    NoSuchClass { class: usize, classes: usize },
    /// `--layer` names no layer instance the forward pass calls, or one whose output
    /// is not `[B, C, H, W]` maps (or no layer gives maps); `maps` lists those that
    /// do, with their shapes.
    NoSuchLayer {
        layer: Option<String>,
        maps: Vec<(String, Vec<usize>)>,
        found: Option<Vec<usize>>,
    },
}

/// An attribution graph and, for Grad-CAM, the layer whose maps it reads.
pub struct Attributed {
    pub lowered: Lowered,
    pub layer: Option<String>,
}

/// The attribution graph of the train block at `index` for `batch` samples, or why
/// this model does not admit it.
pub fn lower_attribution(
    db: &dyn dnnc_sema::Db,
    file: dnnc_sema::SourceFile,
    index: u32,
    attr: &Attribution,
    batch: usize,
) -> Res<Result<Attributed, AttributionError>> {
    let (id, sig) = train_item(db, file, index)?;
    let ItemKind::Train(def) = &dnnc_sema::items::item_ast(db, id).kind else {
        return Err("not a train block".into());
    };
    let mut graph = Graph::new("attribute");
    let mut lw = Lowerer::new(db, &mut graph, file, false);
    let models = bind_models(&mut lw, def, id, sig)?;
    let (_, model) = crate::model::inference_model(&models)?.clone();
    let hint = crate::model::sample_shapes(db, file, sig);
    let x = predict_input(&mut lw, &model, batch, &hint)?;
    if matches!(attr.method, Method::GradCam { .. }) {
        lw.taps = Some(Vec::new());
    }
    let logits = forward(&mut lw, &model, x)?;
    let shape = lw.em.shape(logits);
    let [_, classes] = shape[..] else {
        return Ok(Err(AttributionError::NotAClassifier { shape }));
    };
    let predicted = lw.em.add(Op::ArgMax { axis: 1 }, &[logits])?;
    let target = match attr.target {
        Target::Predicted => predicted,
        Target::Class(class) if class >= classes => {
            return Ok(Err(AttributionError::NoSuchClass { class, classes }))
        }
        Target::Class(class) => lw.em.full(class as f64, DType::I64, &[batch])?,
    };
    let mut layer_used = None;
    let map = match &attr.method {
        Method::Saliency | Method::GradXInput => {
            let score = explain(&mut lw, "class_score", &[logits, target])?;
            let name = if attr.method == Method::Saliency {
                "saliency"
            } else {
                "grad_x_input"
            };
            explain(&mut lw, name, &[score, x])?
        }
        Method::IntegratedGradients { steps } => {
            let baseline = lw.em.full(0.0, lw.em.dtype(x), &lw.em.shape(x))?;
            let k = Val::Int(*steps as i64);
            let args = vec![Val::T(x), Val::T(baseline), k];
            let path = crate::calls::call_std(&mut lw, "explain", "ig_path", args)?;
            let mut flat = lw.em.shape(x);
            flat[0] *= steps;
            let points = lw.em.reshape(path, &flat)?;
            let logits = forward(&mut lw, &model, points)?;
            let logits = lw.em.reshape(logits, &[*steps, batch, classes])?;
            let score = explain(&mut lw, "class_score", &[logits, target])?;
            explain(&mut lw, "integrated_gradients", &[score, path, x, baseline])?
        }
        Method::GradCam { layer } => {
            let taps = lw.taps.take().unwrap_or_default();
            let maps: Vec<(String, Vec<usize>)> = taps
                .iter()
                .map(|(p, n)| (p.clone(), lw.em.shape(*n)))
                .filter(|(p, s)| s.len() == 4 && !p.is_empty())
                .collect();
            let chosen = match layer {
                Some(l) => taps.iter().rev().find(|(p, _)| p == l),
                None => taps
                    .iter()
                    .rev()
                    .find(|(p, n)| !p.is_empty() && lw.em.shape(*n).len() == 4),
            };
            let Some((path, a)) = chosen.cloned() else {
                return Ok(Err(AttributionError::NoSuchLayer {
                    layer: layer.clone(),
                    maps,
                    found: None,
                }));
            };
            let found = lw.em.shape(a);
            if found.len() != 4 {
                return Ok(Err(AttributionError::NoSuchLayer {
                    layer: layer.clone(),
                    maps,
                    found: Some(found),
                }));
            }
            let score = explain(&mut lw, "class_score", &[logits, target])?;
            layer_used = Some(path);
            explain(&mut lw, "gradcam", &[score, a])?
        }
    };
    lw.em.g.set_output("attribution", map);
    lw.em.g.set_output("target", target);
    lw.em.g.set_output("predicted", predicted);
    let params = lw.params;
    Ok(Ok(Attributed {
        lowered: Lowered {
            graph,
            params,
            metrics: Vec::new(),
            layer_calls: Vec::new(),
        },
        layer: layer_used,
    }))
}

/// The model's `forward` on `x`, as one tensor.
fn forward(lw: &mut Lowerer<'_, '_>, model: &Rc<LayerVal>, x: NodeId) -> Res<NodeId> {
    match crate::calls::call(lw, Val::Layer(model.clone()), vec![(None, Val::T(x))])? {
        Val::T(t) => Ok(t),
        other => Err(format!(
            "`forward` returns a {}, not the logits of a classifier",
            other.kind()
        )
        .into()),
    }
}

/// Calls `std::explain::NAME` on tensors.
fn explain(lw: &mut Lowerer<'_, '_>, name: &str, args: &[NodeId]) -> Res<NodeId> {
    let args = args.iter().map(|&a| Val::T(a)).collect();
    crate::calls::call_std(lw, "explain", name, args)
}
