//! The graphs of a `train` block, for one batch size: the forward pass with its loss
//! and metrics (training or evaluation), and inference.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use dnnc_ir::{Graph, Op, Port};
use dnnc_sema::data::dataset_sig;
use dnnc_sema::items::{layer_sig, ItemId};
use dnnc_sema::train::{train_sig, TrainSig};
use dnnc_sema::ty::{DimItem, Static, Ty};
use dnnc_sema::{Db, SourceFile};
use dnnc_syntax::ast::{ItemKind, TrainItemKind};

use crate::emit::Res;
use crate::lowerer::{Lowerer, ParamInfo};
use crate::value::{LayerVal, Val};

/// What a graph is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The forward part of training step `k` (the single-model form has one, step 0):
    /// `training` is true; outputs the step's loss (and, in the single-model form, the
    /// metrics).
    Train(usize),
    /// Evaluation: `training` is false; outputs the loss and metrics (in the
    /// multi-model form, each step's loss as `STEP_loss`, and the metrics).
    Eval,
    /// Inference: the model's `forward` on an input named `input`; output `output`
    /// (in the multi-model form, the first model that is not `frozen`).
    Predict,
    /// Inference of model `k` (in binding order) of the multi-model form, as `Predict`.
    Forward(usize),
    /// The train block's `sample` expression for `batch` samples, `training` false;
    /// output `sample`.
    Sample,
    /// Incremental decoding: the model's `decode(x, state..)` method, which returns
    /// `(y, state..)`; inputs `input` (`x`) and `state.0`, `state.1`, ... (its other
    /// parameters, tensors), outputs `output.0` (`y`) and `output.1`, ... (the new
    /// states, each typed as its parameter).
    Decode,
}

/// A lowered graph and the parameters it reads.
pub struct Lowered {
    pub graph: Graph,
    pub params: Vec<ParamInfo>,
    /// In inference graphs, the calls of standard-library layers (nodes of `graph`
    /// until a pass replaces them).
    pub layer_calls: Vec<crate::lowerer::LayerCall>,
    /// Metric names in declaration order (also graph outputs).
    pub metrics: Vec<String>,
}

/// The train block at `index` of `file`, with its checked signature.
pub fn train_item<'db>(
    db: &'db dyn Db,
    file: SourceFile,
    index: u32,
) -> Res<(ItemId<'db>, &'db TrainSig)> {
    let id = ItemId::new(db, file, index);
    let sig = train_sig(db, id).as_ref().ok_or("not a train block")?;
    Ok((id, sig))
}

/// The model instance of a single-model train block.
fn model_val(sig: &TrainSig) -> Res<Rc<LayerVal>> {
    let [m] = sig.models.as_slice() else {
        return Err("this train block has several models; name the one to use".into());
    };
    let mut hparams = HashMap::new();
    for (n, v) in &m.inst.args {
        let val = match v {
            Static::Int(d) => Val::Int(d.as_const().ok_or("symbolic hyperparameter")?),
            Static::Float(x) => Val::Float(*x),
            Static::Bool(b) => Val::Bool(*b),
            Static::Str(s) => Val::Str(s.clone()),
            Static::Param(p) => return Err(format!("unbound hyperparameter `{p}`").into()),
        };
        hparams.insert(n.clone(), val);
    }
    Ok(Rc::new(LayerVal {
        file: m.inst.layer.file_id,
        index: m.inst.layer.index,
        path: String::new(),
        hparams,
        frozen: m.frozen,
        from: None,
    }))
}

/// The model inference runs among the bound `models`: the first that is not
/// `frozen` (the first of all when every one is).
pub(crate) fn inference_model(models: &[(String, Rc<LayerVal>)]) -> Res<&(String, Rc<LayerVal>)> {
    Ok(models
        .iter()
        .find(|(_, m)| !m.frozen)
        .or(models.first())
        .ok_or("the train block has no model")?)
}

/// The models of the train block, by binding name, bound in `lw`: `model` (whose
/// parameters are named `fc1.W`) in the single-model form; each `model NAME = ...`
/// binding (parameters `NAME.fc1.W`, loaded `from` its file, perhaps frozen) in the
/// multi-model form.
pub(crate) fn bind_models(
    lw: &mut Lowerer<'_, '_>,
    def: &dnnc_syntax::ast::TrainDef,
    id: ItemId<'_>,
    sig: &TrainSig,
) -> Res<Vec<(String, Rc<LayerVal>)>> {
    let bindings: Vec<&dnnc_syntax::ast::Binding> = def
        .items
        .iter()
        .filter_map(|i| match &i.kind {
            TrainItemKind::Model(b) => Some(b),
            _ => None,
        })
        .collect();
    let models = if bindings.is_empty() {
        vec![("model".to_string(), model_val(sig)?)]
    } else {
        let root = LayerVal {
            file: lw.file,
            index: id.index(lw.db),
            path: String::new(),
            hparams: HashMap::new(),
            frozen: false,
            from: None,
        };
        let mut out = Vec::new();
        for b in bindings {
            let m = lw.instance_from_binding(
                &b.value,
                &b.name.text,
                b.frozen.is_some(),
                b.from
                    .as_ref()
                    .map(|s| (s.value.clone(), b.at.as_ref().map(|a| a.value.clone()))),
                &root,
            )?;
            out.push((b.name.text.clone(), m));
        }
        out
    };
    for (name, m) in &models {
        lw.bind(name, Val::Layer(m.clone()));
    }
    Ok(models)
}

/// Lowers the train block for `mode` at batch size `batch`.
pub fn lower(db: &dyn Db, file: SourceFile, index: u32, mode: Mode, batch: usize) -> Res<Lowered> {
    lower_with(db, file, index, mode, batch, None)
}

/// Evaluation (as [`Mode::Eval`]) of a batch first perturbed by `attack`: the loss,
/// metrics and outputs are those of the adversarial batch.
pub fn lower_attacked(
    db: &dyn Db,
    file: SourceFile,
    index: u32,
    attack: &crate::attack::Attack,
    batch: usize,
) -> Res<Lowered> {
    lower_with(db, file, index, Mode::Eval, batch, Some(attack))
}

fn lower_with(
    db: &dyn Db,
    file: SourceFile,
    index: u32,
    mode: Mode,
    batch: usize,
    attack: Option<&crate::attack::Attack>,
) -> Res<Lowered> {
    let (id, sig) = train_item(db, file, index)?;
    let ItemKind::Train(def) = &dnnc_sema::items::item_ast(db, id).kind else {
        return Err("not a train block".into());
    };
    let name = match mode {
        Mode::Train(_) => "train_step",
        Mode::Eval => "eval_step",
        Mode::Predict | Mode::Forward(_) => "predict",
        Mode::Sample => "sample",
        Mode::Decode => "decode",
    };
    let mut graph = Graph::new(name);
    let mut metrics = Vec::new();
    let mut layer_calls = Vec::new();
    let params = {
        let mut lw = Lowerer::new(db, &mut graph, file, matches!(mode, Mode::Train(_)));
        let models = bind_models(&mut lw, def, id, sig)?;
        if matches!(mode, Mode::Predict | Mode::Forward(_)) {
            let chosen = match mode {
                Mode::Forward(k) => models.get(k),
                _ => Some(inference_model(&models)?),
            };
            let model = chosen
                .map(|(_, m)| m.clone())
                .ok_or("the train block has no such model")?;
            let hint = sample_shapes(db, file, sig);
            let x = predict_input(&mut lw, &model, batch, &hint)?;
            lw.calls = Some(Vec::new());
            let y = crate::calls::call(&mut lw, Val::Layer(model), vec![(None, Val::T(x))])?;
            layer_calls = lw.calls.take().unwrap_or_default();
            set_predict_outputs(&mut lw, "output", y)?;
        } else if mode == Mode::Decode {
            let (_, model) = inference_model(&models)?.clone();
            decode_graph(&mut lw, model, batch, &sample_shapes(db, file, sig))?;
        } else {
            lw.bind("B", Val::Int(batch as i64));
            if mode != Mode::Sample {
                bind_fields(&mut lw, db, sig, batch)?;
            }
            if let Some(attack) = attack {
                crate::attack::perturb_fields(&mut lw, def, attack)?;
            }
            let steps: Vec<(&dnnc_syntax::ast::Name, &Vec<dnnc_syntax::ast::StepItem>)> = def
                .items
                .iter()
                .filter_map(|i| match &i.kind {
                    TrainItemKind::Step { name, items } => Some((name, items)),
                    _ => None,
                })
                .collect();
            // A sample is drawn without the batch: the `let`s that read a field (or
            // such a `let`) are not evaluated for it (the checker keeps `sample` off
            // them).
            let mut data_names: std::collections::HashSet<String> = if mode == Mode::Sample {
                dataset_fields(db, file, sig)?
                    .into_iter()
                    .map(|(n, _, _)| n)
                    .collect()
            } else {
                Default::default()
            };
            for it in &def.items {
                match &it.kind {
                    TrainItemKind::Let(l) if mode == Mode::Sample => {
                        let mut reads_data = false;
                        dnnc_sema::recursion::names_read(&l.value, &mut |n, _| {
                            reads_data |= data_names.contains(n);
                        });
                        if reads_data {
                            data_names.extend(l.pattern.names().iter().map(|n| n.text.clone()));
                        } else {
                            let v = crate::eval::expr(&mut lw, &l.value)?;
                            crate::eval::bind_pattern(&mut lw, &l.pattern, v)?;
                        }
                    }
                    TrainItemKind::Let(l) => {
                        let v = crate::eval::expr(&mut lw, &l.value)?;
                        crate::eval::bind_pattern(&mut lw, &l.pattern, v)?;
                    }
                    TrainItemKind::Field(n, e) if n.text == "sample" && mode == Mode::Sample => {
                        let t = float_tensor(&mut lw, e)?;
                        lw.em.g.set_output("sample", t);
                    }
                    TrainItemKind::Field(n, e)
                        if n.text == "loss" && matches!(mode, Mode::Train(0) | Mode::Eval) =>
                    {
                        let t = float_tensor(&mut lw, e)?;
                        lw.em.g.set_output(Port::Loss.name(), t);
                    }
                    TrainItemKind::Field(n, e)
                        if n.text == "metrics"
                            && (mode == Mode::Eval
                                || (steps.is_empty() && mode == Mode::Train(0))) =>
                    {
                        let dnnc_syntax::ast::ExprKind::List(items) = &e.kind else {
                            continue;
                        };
                        for (m, mname) in items.iter().zip(&sig.metrics) {
                            let t = float_tensor(&mut lw, m)?;
                            lw.em.g.set_output(mname.to_string(), t);
                            metrics.push(mname.to_string());
                        }
                    }
                    _ => {}
                }
            }
            // The multi-model form: the losses of the steps.
            for (k, (step, items)) in steps.iter().enumerate() {
                let output = match mode {
                    Mode::Train(s) if s == k => Port::Loss.name().to_string(),
                    Mode::Eval => format!("{}_loss", step.text),
                    _ => continue,
                };
                lw.scopes.push(HashMap::new());
                for it in items.iter() {
                    match &it.kind {
                        dnnc_syntax::ast::StepItemKind::Let(l) => {
                            let v = crate::eval::expr(&mut lw, &l.value)?;
                            crate::eval::bind_pattern(&mut lw, &l.pattern, v)?;
                        }
                        dnnc_syntax::ast::StepItemKind::Field(n, e) if n.text == "loss" => {
                            let t = float_tensor(&mut lw, e)?;
                            lw.em.g.set_output(output.clone(), t);
                        }
                        _ => {}
                    }
                }
                lw.scopes.pop();
            }
            if let Mode::Train(k) = mode {
                if lw.em.g.output(Port::Loss.name()).is_none() {
                    return Err(format!("the train block has no step {k}").into());
                }
            }
        }
        lw.params
    };
    Ok(Lowered {
        graph,
        params,
        metrics,
        layer_calls,
    })
}

/// The graph of [`Mode::Decode`].
fn decode_graph(
    lw: &mut Lowerer<'_, '_>,
    model: Rc<LayerVal>,
    batch: usize,
    hint: &[Vec<usize>],
) -> Res<()> {
    let sig = layer_sig(lw.db, ItemId::new(lw.db, model.file, model.index))
        .as_ref()
        .ok_or("the model did not check")?;
    let decode = sig
        .method("decode")
        .ok_or("the model has no `decode` method")?;
    let mut args = Vec::new();
    for (i, p) in decode.params.iter().enumerate() {
        let (dtype, shape) = param_type(&p.ty, "decode", &model, batch, hint)?;
        let name = if i == 0 {
            "input".to_string()
        } else {
            format!("state.{}", i - 1)
        };
        let n = lw.em.add(Op::Input { name, dtype, shape }, &[])?;
        args.push((None, Val::T(n)));
    }
    let states: Vec<dnnc_ir::NodeId> = args[1..]
        .iter()
        .filter_map(|(_, v)| match v {
            Val::T(t) => Some(*t),
            _ => None,
        })
        .collect();
    let y = crate::calls::call(lw, Val::Method(model, Arc::from("decode")), args)?;
    let outs = match y {
        Val::Tuple(outs) if outs.len() == states.len() + 1 => outs,
        _ => {
            return Err(format!(
                "`decode` must return `(output, state..)` with one new state per parameter after the first ({} of them)",
                states.len()
            )
            .into())
        }
    };
    for (i, v) in outs.into_iter().enumerate() {
        let Val::T(t) = v else {
            return Err(format!("`decode`'s result {i} is not a tensor").into());
        };
        if let Some(&s) = i.checked_sub(1).and_then(|k| states.get(k)) {
            let (was, is) = (lw.em.g.ty(s), lw.em.g.ty(t));
            if was != is {
                return Err(format!(
                    "`decode`'s new state {i} is {}{:?} but parameter {} is {}{:?}",
                    is.dtype,
                    is.shape,
                    i + 1,
                    was.dtype,
                    was.shape
                )
                .into());
            }
        }
        lw.em.g.set_output(format!("output.{i}"), t);
    }
    Ok(())
}

/// The outputs of inference: `output` for a tensor; `output.0`, `output.1`, ... for a
/// tuple and `output.NAME` for a record (nested ones joined by dots).
pub(crate) fn set_predict_outputs(lw: &mut Lowerer<'_, '_>, name: &str, v: Val) -> Res<()> {
    match v {
        Val::T(t) => {
            lw.em.g.set_output(name, t);
            Ok(())
        }
        Val::Tuple(vs) => vs
            .into_iter()
            .enumerate()
            .try_for_each(|(i, v)| set_predict_outputs(lw, &format!("{name}.{i}"), v)),
        Val::Record(fs) => fs
            .into_iter()
            .try_for_each(|(k, v)| set_predict_outputs(lw, &format!("{name}.{k}"), v)),
        _ => Err("`forward` does not return tensors".into()),
    }
}

/// `e` as an `f32` tensor.
pub(crate) fn float_tensor(
    lw: &mut Lowerer<'_, '_>,
    e: &dnnc_syntax::ast::Expr,
) -> Res<dnnc_ir::NodeId> {
    let v = crate::eval::expr(lw, e)?;
    crate::eval::tensor(lw, &v, Some(dnnc_ir::DType::F32))
}

/// Dataset fields as batch inputs `[batch, ...per-sample]`.
fn bind_fields(lw: &mut Lowerer<'_, '_>, db: &dyn Db, sig: &TrainSig, batch: usize) -> Res<()> {
    let fields = dataset_fields(db, lw.file, sig)?;
    for (name, dtype, sample) in fields {
        let mut shape = vec![batch];
        shape.extend(sample);
        let n = lw.em.add(
            Op::Input {
                name: name.clone(),
                dtype,
                shape,
            },
            &[],
        )?;
        lw.bind(&name, Val::T(n));
    }
    Ok(())
}

/// The per-sample shapes of the dataset's fields (none if it cannot be read): what
/// sizes `forward`'s free dimensions for inference.
pub(crate) fn sample_shapes(db: &dyn Db, file: SourceFile, sig: &TrainSig) -> Vec<Vec<usize>> {
    dataset_fields(db, file, sig)
        .map(|fs| fs.into_iter().map(|(_, _, s)| s).collect())
        .unwrap_or_default()
}

/// The fields of the train block's dataset: name, element type, per-sample shape.
pub fn dataset_fields(
    db: &dyn Db,
    file: SourceFile,
    sig: &TrainSig,
) -> Res<Vec<(String, dnnc_ir::DType, Vec<usize>)>> {
    let ds_name = sig.dataset.as_ref().ok_or("no dataset")?;
    let def = dnnc_sema::scope::file_scope(db, file)
        .names
        .get(ds_name)
        .copied()
        .ok_or("dataset not found")?;
    let ds = dataset_sig(db, ItemId::new(db, def.file, def.index));
    let train = ds.split("train").ok_or("no train split")?;
    let mut out = Vec::new();
    for f in &train.fields {
        let mut sample = Vec::new();
        for d in &f.sample.shape.0 {
            let DimItem::Dim(d) = d else {
                return Err("a field has a symbolic shape".into());
            };
            sample.push(
                d.as_const()
                    .and_then(|c| usize::try_from(c).ok())
                    .ok_or("a field has a symbolic shape")?,
            );
        }
        out.push((f.name.to_string(), f.sample.dtype, sample));
    }
    Ok(out)
}

/// The dataset item a train block trains on.
pub fn dataset_item<'db>(db: &'db dyn Db, file: SourceFile, sig: &TrainSig) -> Res<ItemId<'db>> {
    let ds_name = sig.dataset.as_ref().ok_or("no dataset")?;
    let def = dnnc_sema::scope::file_scope(db, file)
        .names
        .get(ds_name)
        .copied()
        .ok_or("dataset not found")?;
    Ok(ItemId::new(db, def.file, def.index))
}

/// The input of `forward` for inference, typed from its signature.
pub(crate) fn predict_input(
    lw: &mut Lowerer<'_, '_>,
    model: &Rc<LayerVal>,
    batch: usize,
    hint: &[Vec<usize>],
) -> Res<dnnc_ir::NodeId> {
    let (dtype, shape) = forward_input_type(lw.db, model, batch, hint)?;
    lw.em.add(
        Op::Input {
            name: "input".into(),
            dtype,
            shape,
        },
        &[],
    )
}

/// The element type and shape of `forward`'s first parameter for `batch` samples.
/// Dimensions other than the batch that the model's hyperparameters do not fix (a
/// sequence length `T`) are taken from the first per-sample shape of `hint` (the
/// dataset's fields) that has the right rank and agrees with the fixed ones.
pub fn forward_input_type(
    db: &dyn Db,
    model: &LayerVal,
    batch: usize,
    hint: &[Vec<usize>],
) -> Res<(dnnc_ir::DType, Vec<usize>)> {
    let sig = layer_sig(db, ItemId::new(db, model.file, model.index))
        .as_ref()
        .ok_or("the model did not check")?;
    let fwd = sig.method("forward").ok_or("the model has no `forward`")?;
    let p = fwd.params.first().ok_or("`forward` takes no input")?;
    param_type(&p.ty, "forward", model, batch, hint)
}

/// The element type and shape of the method parameter typed `ty` for `batch`
/// samples, sized as [`forward_input_type`] says.
fn param_type(
    ty: &Ty,
    method: &str,
    model: &LayerVal,
    batch: usize,
    hint: &[Vec<usize>],
) -> Res<(dnnc_ir::DType, Vec<usize>)> {
    let Ty::Tensor(t) = ty else {
        return Err(format!("`{method}`'s input is not a tensor").into());
    };
    let mut dims: Vec<Option<usize>> = Vec::new();
    let mut first_sym: Option<Arc<str>> = None;
    for item in &t.shape.0 {
        let DimItem::Dim(d) = item else {
            return Err(format!("`{method}`'s input has a pack").into());
        };
        let v = d.substitute(&mut |a| match a {
            dnnc_sema::dim::Atom::Sym(n) => match model.hparams.get(n) {
                Some(Val::Int(v)) => Some(dnnc_sema::dim::Dim::constant(*v)),
                _ => {
                    // The first free symbol is the batch dimension.
                    let is_batch = first_sym.get_or_insert_with(|| n.clone()) == n;
                    is_batch.then(|| dnnc_sema::dim::Dim::constant(batch as i64))
                }
            },
            _ => None,
        });
        match v.and_then(|v| v.as_const()) {
            Some(c) => dims.push(Some(usize::try_from(c).map_err(|_| "negative dimension")?)),
            None => dims.push(None),
        }
    }
    let fits = |h: &&Vec<usize>| {
        h.len() + 1 == dims.len()
            && dims[1..]
                .iter()
                .zip(h.iter())
                .all(|(d, &x)| d.is_none_or(|d| d == x))
    };
    let fill = hint.iter().find(fits);
    let mut shape = Vec::with_capacity(dims.len());
    for (i, (d, item)) in dims.iter().zip(&t.shape.0).enumerate() {
        match (d, fill) {
            (Some(d), _) => shape.push(*d),
            (None, Some(h)) if i > 0 => shape.push(h[i - 1]),
            _ => {
                let DimItem::Dim(d) = item else {
                    return Err(format!("`{method}`'s input has a pack").into());
                };
                return Err(format!("cannot size `{method}`'s input dimension `{d}`").into());
            }
        }
    }
    Ok((t.dtype, shape))
}

/// Whether the model that [`Mode::Predict`] runs has a method `name` (e.g. `decode`).
pub fn model_has_method(db: &dyn Db, file: SourceFile, index: u32, name: &str) -> Res<bool> {
    let (_, sig) = train_item(db, file, index)?;
    let Some(m) = sig.models.iter().find(|m| !m.frozen).or(sig.models.first()) else {
        return Ok(false);
    };
    let layer = &m.inst.layer;
    Ok(layer_sig(db, ItemId::new(db, layer.file_id, layer.index))
        .as_ref()
        .is_some_and(|s| s.method(name).is_some()))
}

/// The model instance of a train block (single-model form), for inference.
pub fn model_of(sig: &TrainSig) -> Res<Rc<LayerVal>> {
    model_val(sig)
}
