//! Datasets: a split's fields become one graph over the data files it loads, run once
//! (by the interpreter) when training starts.

use std::path::Path;

use dnnc_ir::{DType, Graph, Op};
use dnnc_sema::db::Loader;
use dnnc_sema::items::{item_ast, ItemId};
use dnnc_sema::Db;
use dnnc_syntax::ast::ItemKind;

use crate::builtins::LoaderUse;
use crate::emit::Res;
use crate::error::LowerError;
use crate::lowerer::Lowerer;
use crate::value::Val;

/// The graph computing split `split` of dataset `item` from its data files.
pub struct LoweredSplit {
    pub graph: Graph,
    /// The data files, each fed as the input of the same name.
    pub loaders: Vec<LoaderUse>,
    /// Field names, in declaration order (also the graph's outputs).
    pub fields: Vec<String>,
}

pub fn lower_split(db: &dyn Db, item: ItemId<'_>, split: &str) -> Res<LoweredSplit> {
    let ItemKind::Dataset(def) = &item_ast(db, item).kind else {
        return Err("not a dataset".into());
    };
    let s = def
        .splits
        .iter()
        .find(|s| s.name.text == split)
        .ok_or_else(|| LowerError::NoSplit {
            split: split.to_string(),
        })?;
    let mut graph = Graph::new(format!("dataset_{}_{}", def.name.text, split));
    let mut fields = Vec::new();
    let loaders = {
        let mut lw = Lowerer::new(db, &mut graph, item.file(db), false);
        lw.loaders = Some(Vec::new());
        for (name, e) in &s.fields {
            let v = crate::eval::expr(&mut lw, e)?;
            let Val::T(n) = v else {
                return Err(format!("field `{}` is not a tensor", name.text).into());
            };
            lw.em.g.set_output(name.text.clone(), n);
            fields.push(name.text.clone());
        }
        lw.loaders.take().unwrap_or_default()
    };
    Ok(LoweredSplit {
        graph,
        loaders,
        fields,
    })
}

/// `idx(path)`, `npy(path)`, `csv(path, header)`, `text(path, window, from, to,
/// bytes)` inside a dataset: an input typed
/// from the file's header.
pub fn loader(lw: &mut Lowerer<'_, '_>, name: &str, args: &[(Option<String>, Val)]) -> Res<Val> {
    let Some((_, Val::Str(p))) = args.first() else {
        return Err(format!("`{name}` needs a path").into());
    };
    let header = args
        .iter()
        .find(|(n, _)| n.as_deref() == Some("header"))
        .or(args.get(1));
    let arg = |i: usize, n: &str| {
        args.iter()
            .find(|(k, _)| k.as_deref() == Some(n))
            .or(args.get(i).filter(|(k, _)| k.is_none()))
            .map(|(_, v)| v)
    };
    let frac = |v: Option<&Val>, default: f64| match v {
        Some(Val::Float(x)) => *x,
        Some(Val::Int(i)) => *i as f64,
        _ => default,
    };
    let loader = match name {
        "idx" => Loader::Idx,
        "npy" => Loader::Npy,
        "text" => Loader::Text(dnnc_data::text::TextOptions {
            window: match arg(1, "window") {
                Some(Val::Int(w)) => usize::try_from(*w).map_err(|_| "negative `window`")?,
                _ => return Err("`text` needs a `window`".into()),
            },
            from_ppm: (frac(arg(2, "from"), 0.0) * 1e6).round() as u32,
            to_ppm: (frac(arg(3, "to"), 1.0) * 1e6).round() as u32,
            bytes: matches!(arg(4, "bytes"), Some(Val::Bool(true))),
        }),
        _ => Loader::Csv {
            header: !matches!(header, Some((_, Val::Bool(false)))),
        },
    };
    let file_path = lw.file.path(lw.db).clone();
    let path = file_path.parent().unwrap_or(Path::new(".")).join(&**p);
    let h = lw
        .db
        .probe_data(&path, loader)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // Fields keep the file's element type (the checker typed them so).
    let dtype: DType = h.elem;
    let shape: Vec<usize> = h.shape.iter().map(|&d| d as usize).collect();
    let Some(list) = lw.loaders.as_mut() else {
        return Err(format!("`{name}` can only be used in a dataset").into());
    };
    let input = format!("file{}", list.len());
    list.push(LoaderUse {
        input: input.clone(),
        loader,
        path,
    });
    let n = lw.em.add(
        Op::Input {
            name: input,
            dtype,
            shape,
        },
        &[],
    )?;
    Ok(Val::T(n))
}
