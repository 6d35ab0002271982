//! `dnnc summary`: the layers of a train block's model as inference sees them — each
//! sub-layer's binding path, its declaration, the shape of what it returns for one
//! sample, its parameters (trainable, frozen, buffers; a layer's count includes its
//! sub-layers') and the multiply-adds of the matrix products that read its weights —
//! like `torchinfo.summary`.

use std::collections::BTreeMap;

use dnnc_ir::{Graph, NodeId, Op};
use dnnc_sema::items::{item_ast, ItemId};
use dnnc_sema::{Db, SourceFile};
use dnnc_syntax::ast::ItemKind;

use crate::emit::Res;
use crate::lowerer::Lowerer;
use crate::model::{bind_models, predict_input, sample_shapes, train_item};
use crate::value::Val;

/// One layer of the summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerRow {
    /// The binding path (`fc1`, `h0.self_attn`); empty for the model.
    pub path: String,
    /// The layer's declaration (`Dense`, `Conv2d`).
    pub kind: String,
    /// What its `forward` returned, for a batch of one (none if it was only used
    /// through other methods, or returned a tuple).
    pub output: Option<Vec<usize>>,
    pub trainable: usize,
    pub frozen: usize,
    pub buffers: usize,
    /// Multiply-adds per sample of the products that read its (or its sub-layers')
    /// weights.
    pub macs: usize,
}

/// The summary of a model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelSummary {
    /// The model first, then its sub-layers by path.
    pub rows: Vec<LayerRow>,
    /// `forward`'s input for one sample.
    pub input: Vec<usize>,
    /// Multiply-adds per sample of products that read no weight (attention's scores).
    pub other_macs: usize,
}

/// The summary of the model of train block `index` of `file`.
pub fn summarize(db: &dyn Db, file: SourceFile, index: u32) -> Res<ModelSummary> {
    let (id, sig) = train_item(db, file, index)?;
    let ItemKind::Train(def) = &item_ast(db, id).kind else {
        return Err("not a train block".into());
    };
    let mut graph = Graph::new("summary");
    let mut lw = Lowerer::new(db, &mut graph, file, false);
    let models = bind_models(&mut lw, def, id, sig)?;
    let (_, model) = crate::model::inference_model(&models)?.clone();
    let hint = sample_shapes(db, file, sig);
    let x = predict_input(&mut lw, &model, 1, &hint)?;
    let input = lw.em.shape(x);
    lw.taps = Some(Vec::new());
    crate::calls::call(&mut lw, Val::Layer(model.clone()), vec![(None, Val::T(x))])?;
    let taps = lw.taps.take().unwrap_or_default();
    let name_of =
        |l: &crate::value::LayerVal| match &item_ast(db, ItemId::new(db, l.file, l.index)).kind {
            ItemKind::Layer(d) => d.name.text.clone(),
            _ => "?".into(),
        };
    let mut rows: BTreeMap<String, LayerRow> = BTreeMap::new();
    rows.insert(
        String::new(),
        LayerRow {
            kind: name_of(&model),
            ..LayerRow::default()
        },
    );
    for (path, l) in &lw.layers {
        rows.entry(path.clone()).or_insert_with(|| LayerRow {
            path: path.clone(),
            kind: name_of(l),
            ..LayerRow::default()
        });
    }
    for (path, node) in &taps {
        if let Some(r) = rows.get_mut(path) {
            r.output.get_or_insert_with(|| lw.em.shape(*node));
        }
    }
    // Counts go to the layer that declares them and to every layer around it.
    let ancestors = |name: &str| -> Vec<String> {
        let parts: Vec<&str> = name.split('.').collect();
        (0..parts.len()).map(|k| parts[..k].join(".")).collect()
    };
    for p in &lw.params {
        let n: usize = p.shape.iter().product();
        for a in ancestors(&p.name) {
            if let Some(r) = rows.get_mut(&a) {
                if p.buffer {
                    r.buffers += n;
                } else if p.frozen {
                    r.frozen += n;
                } else {
                    r.trainable += n;
                }
            }
        }
    }
    let g = &*lw.em.g;
    let mut other_macs = 0;
    for id in g.topo_order()? {
        if g.node(id).op != Op::MatMul {
            continue;
        }
        let ops = g.operands(id);
        let k = *g.ty(ops[0]).shape.last().unwrap_or(&0);
        let macs = g.ty(id).numel() * k;
        match ops.iter().find_map(|&o| weight(g, o)) {
            Some(param) => {
                for a in ancestors(&param) {
                    if let Some(r) = rows.get_mut(&a) {
                        r.macs += macs;
                    }
                }
            }
            None => other_macs += macs,
        }
    }
    if let Some(r) = rows.get_mut("") {
        r.macs += other_macs;
    }
    // The model, then its layers in the order they first ran (a layer's own `forward`
    // returns after its sub-layers': it goes where its first sub-layer ran, before
    // them), then the rest.
    let first_run = |path: &str| {
        let inside = format!("{path}.");
        taps.iter()
            .position(|(p, _)| p == path || p.starts_with(&inside))
    };
    let mut rows: Vec<LayerRow> = rows.into_values().collect();
    rows.sort_by_key(|r| {
        (
            !r.path.is_empty(),
            first_run(&r.path).unwrap_or(usize::MAX),
            r.path.matches('.').count(),
            r.path.clone(),
        )
    });
    Ok(ModelSummary {
        rows,
        input,
        other_macs,
    })
}

/// The parameter a product's operand reads, through a reshape or transpose.
fn weight(g: &Graph, id: NodeId) -> Option<String> {
    let s = match &g.node(id).op {
        Op::Reshape(_) | Op::Transpose(_) | Op::Broadcast(_) => g.operands(id)[0],
        _ => id,
    };
    match &g.node(s).op {
        Op::State { name, .. } => Some(name.clone()),
        _ => None,
    }
}
