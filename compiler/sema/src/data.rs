//! Datasets: loaders that read a data file's header at compile time, the check that
//! every split of a dataset has the same fields with the same per-sample types, and
//! (through [`crate::augment`]) the `augment` item, which is not a split.

use std::path::Path;
use std::sync::Arc;

use dnnc_diagnostics::{codes, Diagnostic, Span};
use dnnc_syntax::ast::ItemKind;

use crate::augment::{check_augment, FieldAugment, AUGMENT};
use crate::checker::Checker;
use crate::db::{Db, Loader};
use crate::dim::Dim;
use crate::infer::ArgVal;
use crate::items::{item_ast, ItemId};
use crate::ty::{DType, DimItem, Shape, TensorTy, Ty};

/// `idx(path)`, `npy(path)`, `csv(path, header = true)`: a tensor typed from the file.
pub fn loader(cx: &mut Checker<'_>, name: &str, args: &[Option<&ArgVal>], span: Span) -> Ty {
    let Some(path) = args.first().copied().flatten() else {
        return Ty::Error;
    };
    let Ty::Str(Some(p)) = &path.ty else {
        let d = cx
            .err(
                codes::TYPE_MISMATCH,
                path.span,
                format!("`{name}` takes a file path string, found `{}`", path.ty),
            )
            .with_label("expected a string literal");
        cx.error(d);
        return Ty::Error;
    };
    let arg = |i: usize| args.get(i).copied().flatten();
    let kind = match name {
        "idx" => Loader::Idx,
        "npy" => Loader::Npy,
        "text" => match text_options(cx, [arg(1), arg(2), arg(3), arg(4)], span) {
            Some(o) => Loader::Text(o),
            None => return Ty::Error,
        },
        _ => {
            let header = match arg(1).map(|a| &a.ty) {
                None => true,
                Some(crate::ty::Ty::Bool(Some(b))) => *b,
                Some(other) => {
                    let d = cx
                        .err(
                            codes::TYPE_MISMATCH,
                            arg(1).map_or(span, |a| a.span),
                            format!("`header` must be `true` or `false`, found `{other}`"),
                        )
                        .with_label("expected a Bool literal");
                    cx.error(d);
                    return Ty::Error;
                }
            };
            Loader::Csv { header }
        }
    };
    let file_path = cx.file.path(cx.db).clone();
    let dir = file_path.parent().unwrap_or(Path::new("."));
    let full = dir.join(&**p);
    match cx.db.probe_data(&full, kind) {
        Ok(h) => {
            let dtype: DType = h.elem;
            let dims = h
                .shape
                .iter()
                .map(|&d| Dim::constant(d.min(i64::MAX as u64) as i64));
            Ty::tensor(dtype, Shape::from_dims(dims))
        }
        Err(msg) => {
            let d = cx
                .err(
                    codes::DATA_FILE,
                    path.span,
                    format!("cannot read data file `{p}`"),
                )
                .with_label(msg)
                .with_note(format!(
                    "paths are relative to the directory of `{}`",
                    cx.fname
                ));
            cx.error(d);
            Ty::Error
        }
    }
}

/// `text(path, window, from = 0.0, to = 1.0, bytes = false)`'s options: a static
/// window of at least 2 and a part `0 <= from < to <= 1`.
fn text_options(
    cx: &mut Checker<'_>,
    [window, from, to, bytes]: [Option<&ArgVal>; 4],
    span: Span,
) -> Option<dnnc_data::text::TextOptions> {
    let mut bad = |a: Option<&ArgVal>, what: &str| {
        let d = cx
            .err(
                codes::TYPE_MISMATCH,
                a.map_or(span, |a| a.span),
                format!("`text` needs {what}"),
            )
            .with_label("invalid here");
        cx.error(d);
        None
    };
    let window = match window.map(|a| &a.ty) {
        Some(Ty::Int(Some(d))) => match d.as_const() {
            Some(w) if w >= 2 => w as usize,
            _ => {
                return bad(
                    window,
                    "a `window` of at least 2 characters, known at compile time",
                )
            }
        },
        _ => {
            return bad(
                window,
                "a `window`: the characters per sample, e.g. `window = 65`",
            )
        }
    };
    let frac = |a: Option<&ArgVal>, default: f64| match a.map(|a| &a.ty) {
        None => Some(default),
        Some(Ty::Float(Some(x))) => Some(*x),
        Some(Ty::Int(Some(d))) => d.as_const().map(|v| v as f64),
        _ => None,
    };
    let (Some(f), Some(t)) = (frac(from, 0.0), frac(to, 1.0)) else {
        return bad(
            from.or(to),
            "`from` and `to` as fractions of the file, e.g. `to = 0.9`",
        );
    };
    if !((0.0..1.0).contains(&f) && f < t && t <= 1.0) {
        return bad(from.or(to), "a part `0 <= from < to <= 1` of the file");
    }
    let bytes = match bytes.map(|a| &a.ty) {
        None => false,
        Some(Ty::Bool(Some(b))) => *b,
        _ => return bad(bytes, "`bytes = true` or `false`"),
    };
    Some(dnnc_data::text::TextOptions {
        window,
        from_ppm: (f * 1e6).round() as u32,
        to_ppm: (t * 1e6).round() as u32,
        bytes,
    })
}

/// One field of a dataset: its name and per-sample type (the first axis removed).
#[derive(Clone, Debug, PartialEq)]
pub struct DataField {
    pub name: Arc<str>,
    pub sample: TensorTy,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DataSplit {
    pub name: Arc<str>,
    pub fields: Vec<DataField>,
    /// Samples in the split, when every field agrees.
    pub samples: Option<i64>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct DatasetSig {
    /// The splits, in declaration order (not `augment`).
    pub splits: Vec<DataSplit>,
    /// The fields augmented in training batches, from the `augment` item.
    pub augment: Vec<FieldAugment>,
    pub diagnostics: Vec<Diagnostic>,
    pub types: Vec<(Span, Ty)>,
}

impl DatasetSig {
    pub fn split(&self, name: &str) -> Option<&DataSplit> {
        self.splits.iter().find(|s| &*s.name == name)
    }
}

#[salsa::tracked(returns(ref))]
pub fn dataset_sig<'db>(db: &'db dyn Db, item: ItemId<'db>) -> DatasetSig {
    let ItemKind::Dataset(def) = &item_ast(db, item).kind else {
        return DatasetSig::default();
    };
    let mut cx = Checker::new(db, item.file(db));
    cx.in_dataset = true;
    let fname = cx.fname.clone();
    let mut splits: Vec<DataSplit> = Vec::new();
    let mut augment_item: Option<&dnnc_syntax::ast::Split> = None;
    // Whether some field failed to check (its uses are then not reported again).
    let mut fields_failed = false;
    for s in &def.splits {
        if s.name.text == AUGMENT {
            if let Some(prev) = augment_item {
                let d = cx
                    .err(
                        codes::DUPLICATE_DEFINITION,
                        s.name.span,
                        "`augment` is defined twice",
                    )
                    .with_label("defined again")
                    .with_secondary(&fname, prev.name.span, "first defined here");
                cx.error(d);
            } else {
                augment_item = Some(s);
            }
            continue;
        }
        if let Some(prev) = splits.iter().find(|p| *p.name == *s.name.text) {
            let d = cx
                .err(
                    codes::DUPLICATE_DEFINITION,
                    s.name.span,
                    format!("split `{}` is defined twice", s.name.text),
                )
                .with_label("defined again")
                .with_secondary(&fname, prev.span, "first defined here");
            cx.error(d);
            continue;
        }
        let mut fields: Vec<DataField> = Vec::new();
        let mut samples: Option<(i64, Span, Arc<str>)> = None;
        let mut consistent = true;
        for (n, e) in &s.fields {
            if let Some(prev) = fields.iter().find(|f| *f.name == *n.text) {
                let d = cx
                    .err(
                        codes::DUPLICATE_DEFINITION,
                        n.span,
                        format!(
                            "field `{}` is defined twice in split `{}`",
                            n.text, s.name.text
                        ),
                    )
                    .with_label("defined again")
                    .with_secondary(&fname, prev.span, "first defined here");
                cx.error(d);
                continue;
            }
            let t = cx.expr(e);
            let tensor = match t {
                Ty::Tensor(t) => t,
                Ty::Error => {
                    consistent = false;
                    continue;
                }
                other => {
                    let d = cx
                        .err(
                            codes::TYPE_MISMATCH,
                            e.span,
                            format!("a dataset field must be a tensor, found `{other}`"),
                        )
                        .with_label("not a tensor");
                    cx.error(d);
                    consistent = false;
                    continue;
                }
            };
            let Some(DimItem::Dim(first)) = tensor.shape.0.first() else {
                let d = cx
                    .err(
                        codes::RANK_MISMATCH,
                        e.span,
                        format!("a dataset field needs a sample axis first, found `{tensor}`"),
                    )
                    .with_label("no sample axis");
                cx.error(d);
                consistent = false;
                continue;
            };
            if let Some(c) = first.as_const() {
                match &samples {
                    Some((m, other_span, other)) if *m != c => {
                        let d = cx
                            .err(
                                codes::SPLIT_MISMATCH,
                                e.span,
                                format!("field `{}` has {c} samples but `{other}` has {m}", n.text),
                            )
                            .with_label(format!("{c} samples"))
                            .with_secondary(&fname, *other_span, format!("{m} samples"));
                        cx.error(d);
                        consistent = false;
                    }
                    Some(_) => {}
                    None => samples = Some((c, e.span, Arc::from(n.text.as_str()))),
                }
            }
            fields.push(DataField {
                name: Arc::from(n.text.as_str()),
                sample: TensorTy {
                    dtype: tensor.dtype,
                    shape: Shape(tensor.shape.0[1..].to_vec()),
                },
                span: n.span,
            });
        }
        fields_failed |= !consistent;
        splits.push(DataSplit {
            name: Arc::from(s.name.text.as_str()),
            fields,
            samples: samples.filter(|_| consistent).map(|(c, _, _)| c),
            span: s.name.span,
        });
    }
    // Every split must agree with the first one.
    if let Some((first, rest)) = splits.split_first() {
        for s in rest {
            for f in &first.fields {
                match s.fields.iter().find(|g| g.name == f.name) {
                    None => {
                        let d = cx
                            .err(
                                codes::SPLIT_MISMATCH,
                                s.span,
                                format!("split `{}` has no field `{}`", s.name, f.name),
                            )
                            .with_label(format!("missing `{}`", f.name))
                            .with_secondary(&fname, f.span, format!("`{}` has it", first.name));
                        cx.error(d);
                    }
                    Some(g) if g.sample != f.sample => {
                        let d = cx
                            .err(
                                codes::SPLIT_MISMATCH,
                                g.span,
                                format!(
                                    "field `{}` has samples of type `{}` in `{}` but `{}` in `{}`",
                                    f.name, g.sample, s.name, f.sample, first.name
                                ),
                            )
                            .with_label(format!("`{}` per sample", g.sample))
                            .with_secondary(&fname, f.span, format!("`{}` per sample", f.sample));
                        cx.error(d);
                    }
                    Some(_) => {}
                }
            }
            for g in &s.fields {
                if !first.fields.iter().any(|f| f.name == g.name) {
                    let d = cx
                        .err(
                            codes::SPLIT_MISMATCH,
                            g.span,
                            format!("field `{}` is not in split `{}`", g.name, first.name),
                        )
                        .with_label("extra field")
                        .with_secondary(&fname, first.span, "the first split has no such field");
                    cx.error(d);
                }
            }
        }
    }
    // Augmented fields are looked up in the split training batches come from.
    let augment = match augment_item {
        Some(a) => {
            let fields = splits
                .iter()
                .find(|s| &*s.name == "train")
                .or(splits.first())
                .map_or(&[][..], |s| &s.fields[..]);
            check_augment(&mut cx, a, fields, fields_failed)
        }
        None => Vec::new(),
    };
    DatasetSig {
        splits,
        augment,
        diagnostics: cx.diags,
        types: cx.types,
    }
}
