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
    /// The training step's forward part: `training` is true; outputs loss and metrics.
    Train,
    /// Evaluation: `training` is false; outputs loss and metrics.
    Eval,
    /// Inference: the model's `forward` on an input named `input`; output `output`.
    Predict,
}

/// A lowered graph and the parameters it reads.
pub struct Lowered {
    pub graph: Graph,
    pub params: Vec<ParamInfo>,
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
        return Err("train blocks with several models (`step` blocks) cannot run yet".into());
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

/// Lowers the train block for `mode` at batch size `batch`.
pub fn lower(db: &dyn Db, file: SourceFile, index: u32, mode: Mode, batch: usize) -> Res<Lowered> {
    let (id, sig) = train_item(db, file, index)?;
    let model = model_val(sig)?;
    let name = match mode {
        Mode::Train => "train_step",
        Mode::Eval => "eval_step",
        Mode::Predict => "predict",
    };
    let mut graph = Graph::new(name);
    let mut metrics = Vec::new();
    let params = {
        let mut lw = Lowerer::new(db, &mut graph, file, mode == Mode::Train);
        if mode == Mode::Predict {
            let x = predict_input(&mut lw, &model, batch)?;
            let y =
                crate::calls::call(&mut lw, Val::Layer(model.clone()), vec![(None, Val::T(x))])?;
            let Val::T(y) = y else {
                return Err("`forward` does not return a tensor".into());
            };
            lw.em.g.set_output("output", y);
        } else {
            lw.bind("model", Val::Layer(model.clone()));
            lw.bind("B", Val::Int(batch as i64));
            bind_fields(&mut lw, db, sig, batch)?;
            let ItemKind::Train(def) = &dnnc_sema::items::item_ast(db, id).kind else {
                return Err("not a train block".into());
            };
            for it in &def.items {
                match &it.kind {
                    TrainItemKind::Let(l) => {
                        let v = crate::eval::expr(&mut lw, &l.value)?;
                        crate::eval::bind_pattern(&mut lw, &l.pattern, v)?;
                    }
                    TrainItemKind::Field(n, e) if n.text == "loss" => {
                        let v = crate::eval::expr(&mut lw, e)?;
                        let t = crate::eval::tensor(&mut lw, &v, Some(dnnc_ir::DType::F32))?;
                        lw.em.g.set_output(Port::Loss.name(), t);
                    }
                    TrainItemKind::Field(n, e) if n.text == "metrics" => {
                        let dnnc_syntax::ast::ExprKind::List(items) = &e.kind else {
                            continue;
                        };
                        for (m, mname) in items.iter().zip(&sig.metrics) {
                            let v = crate::eval::expr(&mut lw, m)?;
                            let t = crate::eval::tensor(&mut lw, &v, Some(dnnc_ir::DType::F32))?;
                            lw.em.g.set_output(mname.to_string(), t);
                            metrics.push(mname.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        lw.params
    };
    Ok(Lowered {
        graph,
        params,
        metrics,
    })
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
fn predict_input(
    lw: &mut Lowerer<'_, '_>,
    model: &Rc<LayerVal>,
    batch: usize,
) -> Res<dnnc_ir::NodeId> {
    let (dtype, shape) = forward_input_type(lw.db, model, batch)?;
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
pub fn forward_input_type(
    db: &dyn Db,
    model: &LayerVal,
    batch: usize,
) -> Res<(dnnc_ir::DType, Vec<usize>)> {
    let sig = layer_sig(db, ItemId::new(db, model.file, model.index))
        .as_ref()
        .ok_or("the model did not check")?;
    let fwd = sig.method("forward").ok_or("the model has no `forward`")?;
    let p = fwd.params.first().ok_or("`forward` takes no input")?;
    let Ty::Tensor(t) = &p.ty else {
        return Err("`forward`'s input is not a tensor".into());
    };
    let mut shape = Vec::new();
    let mut first_sym: Option<Arc<str>> = None;
    for item in &t.shape.0 {
        let DimItem::Dim(d) = item else {
            return Err("`forward`'s input has a pack".into());
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
        let c = v
            .and_then(|v| v.as_const())
            .ok_or_else(|| format!("cannot size `forward`'s input dimension `{d}`"))?;
        shape.push(usize::try_from(c).map_err(|_| "negative dimension")?);
    }
    Ok((t.dtype, shape))
}

/// The model instance of a train block (single-model form), for inference.
pub fn model_of(sig: &TrainSig) -> Res<Rc<LayerVal>> {
    model_val(sig)
}
