//! Calls: functions and layer methods are inlined with their parameters bound; the
//! symbolic dimensions and packs of their signatures are bound from argument shapes.

use std::rc::Rc;

use dnnc_sema::items::{item_ast, ItemId};
use dnnc_syntax::ast::{self, DimExpr, ExprKind, ItemKind, MemberKind, TypeExprKind};

use crate::emit::Res;
use crate::lowerer::Lowerer;
use crate::value::{LayerVal, Val};

/// The checker refuses deeper chains (E0108, `dnnc_sema::recursion::MAX_NESTING`);
/// the margin covers the train block's own calls.
const MAX_CALL_DEPTH: usize = dnnc_sema::recursion::MAX_NESTING + 24;

pub fn call(lw: &mut Lowerer<'_, '_>, f: Val, args: Vec<(Option<String>, Val)>) -> Res<Val> {
    match f {
        Val::Builtin(name) => crate::builtins::call(lw, name, args),
        Val::Func(file, index) => {
            let item = item_ast(lw.db, ItemId::new(lw.db, file, index));
            let ItemKind::Fn(def) = &item.kind else {
                return Err("not a function".into());
            };
            let def = def.clone();
            inline(lw, file, None, &def, args)
        }
        Val::Layer(l) => {
            if let (true, Some(inputs)) = (l.path.is_empty(), lw.model_inputs.as_mut()) {
                inputs.extend(args.iter().filter_map(|(_, v)| match v {
                    Val::T(t) => Some(*t),
                    _ => None,
                }));
            }
            let path = lw.taps.is_some().then(|| l.path.clone());
            let record = lw
                .calls
                .is_some()
                .then(|| lw.std_layer_name(&l))
                .flatten()
                .map(|layer| {
                    let inputs: Vec<_> = args
                        .iter()
                        .filter_map(|(_, v)| match v {
                            Val::T(t) => Some(*t),
                            _ => None,
                        })
                        .collect();
                    (layer, l.path.clone(), inputs)
                });
            let out = method(lw, l, "forward", args)?;
            if let (Some((layer, path, inputs)), Some(calls)) = (record, lw.calls.as_mut()) {
                let mut outputs = Vec::new();
                flatten_tensors(&out, &mut outputs);
                calls.push(crate::lowerer::LayerCall {
                    layer,
                    path,
                    inputs,
                    outputs,
                });
            }
            if let (Some(path), Some(taps), Val::T(t)) = (path, lw.taps.as_mut(), &out) {
                taps.push((path, *t));
            }
            Ok(out)
        }
        Val::Method(l, m) => method(lw, l, &m, args),
        other => Err(format!("a {} cannot be called", other.kind()).into()),
    }
}

/// The tensors of `v` in order, tuples flattened.
fn flatten_tensors(v: &Val, out: &mut Vec<dnnc_ir::NodeId>) {
    match v {
        Val::T(t) => out.push(*t),
        Val::Tuple(items) => items.iter().for_each(|i| flatten_tensors(i, out)),
        _ => {}
    }
}

/// Calls the function `name` of the standard module `std::MODULE`, which returns a
/// tensor (what the commands built on `.dnn` functions — `attribute`, `eval --attack`
/// — run).
pub fn call_std(
    lw: &mut Lowerer<'_, '_>,
    module: &str,
    name: &str,
    args: Vec<Val>,
) -> Res<dnnc_ir::NodeId> {
    let file = lw
        .db
        .resolve_module(lw.file, &["std", module])
        .ok_or_else(|| format!("the standard library has no `std::{module}`"))?;
    let (index, _) = *dnnc_sema::scope::module_exports(lw.db, file)
        .get(name)
        .ok_or_else(|| format!("`std::{module}` has no `{name}`"))?;
    let args = args.into_iter().map(|a| (None, a)).collect();
    match call(lw, Val::Func(file, index), args)? {
        Val::T(t) => Ok(t),
        other => Err(format!("`std::{module}::{name}` returned a {}", other.kind()).into()),
    }
}

fn method(
    lw: &mut Lowerer<'_, '_>,
    l: Rc<LayerVal>,
    name: &str,
    args: Vec<(Option<String>, Val)>,
) -> Res<Val> {
    let item = item_ast(lw.db, ItemId::new(lw.db, l.file, l.index));
    let ItemKind::Layer(def) = &item.kind else {
        return Err("not a layer".into());
    };
    let f = def
        .members
        .iter()
        .find_map(|m| match &m.kind {
            MemberKind::Fn(f) if f.name.text == name => Some(f.clone()),
            _ => None,
        })
        .ok_or_else(|| format!("layer has no method `{name}`"))?;
    inline(lw, l.file, Some(l), &f, args)
}

/// Evaluates `def`'s body with its parameters bound to `args`.
fn inline(
    lw: &mut Lowerer<'_, '_>,
    file: dnnc_sema::SourceFile,
    layer: Option<Rc<LayerVal>>,
    def: &ast::FnDef,
    args: Vec<(Option<String>, Val)>,
) -> Res<Val> {
    if lw.call_depth >= MAX_CALL_DEPTH {
        return Err(format!(
            "calls nested deeper than {MAX_CALL_DEPTH} (recursion?) at `{}`",
            def.name.text
        )
        .into());
    }
    // Match arguments to parameters.
    let mut slots: Vec<Option<Val>> = vec![None; def.params.len()];
    let mut positional = 0;
    for (name, v) in args {
        let i = match name {
            Some(n) => def
                .params
                .iter()
                .position(|p| p.name.text == n)
                .ok_or_else(|| format!("no parameter `{n}`"))?,
            None => {
                positional += 1;
                positional - 1
            }
        };
        *slots.get_mut(i).ok_or("too many arguments")? = Some(v);
    }
    lw.call_depth += 1;
    let saved = lw.enter(file, layer);
    let r = (|| {
        for (p, slot) in def.params.iter().zip(slots) {
            let v = match slot {
                Some(v) => v,
                None => {
                    let d = p
                        .default
                        .as_ref()
                        .ok_or_else(|| format!("missing argument `{}`", p.name.text))?;
                    crate::eval::expr(lw, d)?
                }
            };
            bind_dims(lw, &p.ty, &v)?;
            lw.bind(&p.name.text, v);
        }
        crate::eval::block(lw, &def.body)
    })();
    lw.leave(saved);
    lw.call_depth -= 1;
    r
}

/// Binds the names in a parameter's declared dimensions to the argument's shape.
fn bind_dims(lw: &mut Lowerer<'_, '_>, ty: &ast::TypeExpr, v: &Val) -> Res<()> {
    let TypeExprKind::Tensor { dims, .. } = &ty.kind else {
        return Ok(());
    };
    let shape = match v {
        Val::T(n) => lw.em.shape(*n),
        Val::Int(_) | Val::Float(_) | Val::Bool(_) => Vec::new(),
        _ => return Ok(()),
    };
    let pack_at = dims.iter().position(|d| matches!(d, DimExpr::Pack(_)));
    let n = shape.len();
    for (i, d) in dims.iter().enumerate() {
        match d {
            DimExpr::Pack(p) => {
                let suffix = dims.len() - i - 1;
                let mid = shape
                    .get(i..n.saturating_sub(suffix))
                    .unwrap_or(&[])
                    .to_vec();
                lw.bind(&format!("..{}", p.text), Val::Shape(mid));
            }
            DimExpr::Expr(e) => {
                let ExprKind::Name(name) = &e.kind else {
                    continue;
                };
                let at = match pack_at {
                    Some(k) if i > k => n - (dims.len() - i),
                    _ => i,
                };
                let Some(&actual) = shape.get(at) else {
                    continue;
                };
                if lw.lookup(&name.text).is_err() {
                    lw.bind(&name.text, Val::Int(actual as i64));
                }
            }
        }
    }
    Ok(())
}
