//! Pretrained weights (`from "file" [at "prefix"]`) checked against the layers they
//! load into: once a model's hyperparameters are known (a `train` block's model), every
//! parameter of each instance loaded `from` a file has a concrete path and shape, and
//! the file's header (read without its data) must hold a tensor of that name (under the
//! `at` prefix), element type and shape (E0412). A file that does not exist yet — the
//! checkpoint of a run still to come — is a warning: `train` reports it if it is still
//! missing then.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dnnc_diagnostics::{codes, Diagnostic, Span};

use crate::checker::Checker;
use crate::dim::Atom;
use crate::items::layer_sig;
use crate::ty::{DimItem, LayerInst, Static};

/// A parameter of an instance: its path relative to the instance, type and shape.
struct Param {
    path: String,
    dtype: dnnc_tensor::DType,
    shape: Vec<u64>,
}

/// Where an instance's weights come from: the file (as written and as resolved), the
/// prefix, and where the clause is.
pub struct From<'a> {
    pub written: &'a str,
    pub file: PathBuf,
    pub at: Option<&'a str>,
}

/// The instance `inst` with the symbols of its arguments replaced by `parent`'s
/// values (a sub-layer's `Dense(hidden, 10)` inside a layer with `hidden = 128`).
fn concrete(inst: &LayerInst, parent: &HashMap<String, Static>) -> LayerInst {
    let int = |n: &str| match parent.get(n) {
        Some(Static::Int(d)) => Some(d.clone()),
        _ => None,
    };
    let args = inst
        .args
        .iter()
        .map(|(n, v)| {
            let v = match v {
                Static::Param(p) => parent.get(&**p).cloned().unwrap_or_else(|| v.clone()),
                Static::Int(d) => Static::Int(
                    d.substitute(&mut |a| match a {
                        Atom::Sym(s) => int(s),
                        _ => None,
                    })
                    .unwrap_or_else(|| d.clone()),
                ),
                other => other.clone(),
            };
            (n.clone(), v)
        })
        .collect();
    LayerInst {
        layer: inst.layer.clone(),
        args,
    }
}

/// Every parameter and buffer of `inst` (sub-layers' under their paths), or `None`
/// when a shape is not a known number.
fn params(cx: &Checker<'_>, inst: &LayerInst, prefix: &str, out: &mut Vec<Param>) -> Option<()> {
    let sig = layer_sig(cx.db, cx.item_id(&inst.layer)).as_ref()?;
    let vals: HashMap<String, Static> = inst
        .args
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    for p in &sig.params {
        let mut shape = Vec::new();
        for d in &p.ty.shape.0 {
            let DimItem::Dim(d) = d else {
                return None;
            };
            let v = d.substitute(&mut |a| match a {
                Atom::Sym(s) => match vals.get(&**s) {
                    Some(Static::Int(v)) => Some(v.clone()),
                    _ => None,
                },
                _ => None,
            })?;
            shape.push(u64::try_from(v.as_const()?).ok()?);
        }
        out.push(Param {
            path: join(&p.name),
            dtype: p.ty.dtype,
            shape,
        });
    }
    for s in &sig.subs {
        let sub = concrete(s.inst.as_ref()?, &vals);
        params(cx, &sub, &join(&s.name), out)?;
    }
    Some(())
}

/// The file of a `from` clause written in `file`.
pub fn resolve(cx: &Checker<'_>, file: crate::db::SourceFile, written: &str) -> PathBuf {
    let dir = file
        .path(cx.db)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    dir.join(written)
}

/// Checks the weights `inst` (at `span`) loads: from `from` if given, and from the
/// `from` clauses of its sub-layers, recursively.
pub fn check(cx: &mut Checker<'_>, inst: &LayerInst, from: Option<From<'_>>, span: Span) {
    let site = Site {
        file: cx.fname.clone(),
        span,
    };
    if let Some(f) = from {
        check_file(cx, inst, &f, &site, "");
    }
    check_subs(cx, inst, "");
}

/// Where a `from` clause is written (perhaps in another file than the `train` block).
struct Site {
    file: std::sync::Arc<str>,
    span: Span,
}

fn check_subs(cx: &mut Checker<'_>, inst: &LayerInst, prefix: &str) {
    let Some(sig) = layer_sig(cx.db, cx.item_id(&inst.layer)).as_ref() else {
        return;
    };
    let vals: HashMap<String, Static> = inst
        .args
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    for s in &sig.subs {
        let Some(sub) = s.inst.as_ref().map(|i| concrete(i, &vals)) else {
            continue;
        };
        let path = if prefix.is_empty() {
            s.name.to_string()
        } else {
            format!("{prefix}.{}", s.name)
        };
        if let Some(written) = &s.from {
            let f = From {
                written,
                file: resolve(cx, inst.layer.file_id, written),
                at: s.at.as_deref(),
            };
            let site = Site {
                file: inst.layer.file.clone(),
                span: s.span,
            };
            check_file(cx, &sub, &f, &site, &path);
        }
        check_subs(cx, &sub, &path);
    }
}

/// Compares the parameters of `inst` (the instance at `path` inside the model) with the
/// header of `f`'s file.
fn check_file(cx: &mut Checker<'_>, inst: &LayerInst, f: &From<'_>, site: &Site, path: &str) {
    let mut want = Vec::new();
    if params(cx, inst, "", &mut want).is_none() {
        return;
    }
    let what = if path.is_empty() {
        format!("`{}`", inst.layer.name)
    } else {
        format!("`{path}` (a `{}`)", inst.layer.name)
    };
    let have = match cx.db.probe_weights(&f.file) {
        Ok(t) => t,
        Err(why) if !f.file.exists() => {
            let d = Diagnostic::warning(
                codes::PRETRAINED_MISFIT,
                &site.file,
                site.span,
                format!("the weights of {what}, `{}`, do not exist yet", f.written),
            )
            .with_label(format!("loads `{}`", f.written))
            .with_note(format!("{why}; `train` needs the file, e.g. the checkpoint of the run that trains this layer"));
            cx.error(d);
            return;
        }
        Err(why) => {
            let d = Diagnostic::error(
                codes::PRETRAINED_MISFIT,
                &site.file,
                site.span,
                format!("cannot read the weights of {what}: {why}"),
            )
            .with_label(format!("loads `{}`", f.written));
            cx.error(d);
            return;
        }
    };
    let full = |p: &str| match f.at {
        Some(at) if !at.is_empty() => format!("{at}.{p}"),
        _ => p.to_string(),
    };
    let mut problems = Vec::new();
    for p in &want {
        let name = full(&p.path);
        match have.iter().find(|t| t.name == name) {
            None => problems.push(format!("`{name}` is missing")),
            Some(t) if !t.dtype.loads_as(p.dtype) || t.shape != p.shape => problems.push(format!(
                "`{name}` is {}{:?} in the file, but {}'s `{}` is {}{:?}",
                t.dtype, t.shape, what, p.path, p.dtype, p.shape
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        return;
    }
    let prefixes = {
        let mut v: Vec<String> = have
            .iter()
            .map(|t| t.name.split('.').next().unwrap_or(&t.name).to_string())
            .collect();
        v.dedup();
        v
    };
    let under = f.at.filter(|a| !a.is_empty());
    let none_under =
        under.is_some_and(|a| !have.iter().any(|t| t.name.starts_with(&format!("{a}."))));
    let mut d = Diagnostic::error(
        codes::PRETRAINED_MISFIT,
        &site.file,
        site.span,
        match under {
            Some(a) if none_under => {
                format!("`{}` has no tensors under `{a}` for {what}", f.written)
            }
            _ => format!("the weights in `{}` do not fit {what}", f.written),
        },
    )
    .with_label(format!("loads `{}`", f.written));
    if none_under {
        let unprefixed = want.iter().all(|p| have.iter().any(|t| t.name == p.path));
        if unprefixed {
            d = d.with_help("the file holds these weights without a prefix: drop `at`");
        } else {
            d = d.with_note(format!(
                "its prefixes are {}",
                prefixes
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    } else {
        for p in problems.iter().take(5) {
            d = d.with_note(p.clone());
        }
        if problems.len() > 5 {
            d = d.with_note(format!("and {} more", problems.len() - 5));
        }
        if under.is_none()
            && have.iter().any(|t| {
                want.iter()
                    .any(|p| t.name.ends_with(&format!(".{}", p.path)))
            })
        {
            d = d.with_help(
                "the tensors are under a prefix: name it with `from \"...\" at \"prefix\"`",
            );
        }
    }
    cx.error(d);
}
