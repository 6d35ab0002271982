//! The `augment` item of a dataset: which fields are augmented, and how.
//!
//! `augment = (image: [random_crop(padding = 2), hflip(p = 0.5)])` is written like a
//! split but is not one: each field names a field of the dataset whose samples are
//! float images `[H, W]` or `[C, H, W]`, and its value is a list of augmentation calls,
//! each checked against [`augmentations`] like the settings of `settings.rs` (static
//! arguments, defaults, ranges). The runtime applies them to training batches.

use std::sync::Arc;

use dnnc_diagnostics::{codes, Span};
use dnnc_syntax::ast::{ExprKind, Split};

use crate::checker::Checker;
use crate::data::DataField;
use crate::items::StaticKind;
use crate::settings::{check_typed, Entry, SParam, Table};
use crate::ty::{DimItem, Static};
use dnnc_settings::Augmentation;

/// The reserved item name of a dataset that holds augmentations, not data.
pub const AUGMENT: &str = "augment";

/// The augmentations of one field, in the order they apply.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldAugment {
    pub field: Arc<str>,
    /// Each augmentation, with its arguments resolved (defaults filled in).
    pub list: Vec<Augmentation>,
    pub span: Span,
}

fn num(v: &Static) -> Option<f64> {
    match v {
        Static::Float(x) => Some(*x),
        Static::Int(d) => d.as_const().map(|c| c as f64),
        _ => None,
    }
}
fn non_negative(v: &Static) -> Result<(), &'static str> {
    match num(v) {
        Some(x) if x >= 0.0 => Ok(()),
        _ => Err("must be at least 0"),
    }
}
fn probability(v: &Static) -> Result<(), &'static str> {
    match num(v) {
        Some(x) if (0.0..=1.0).contains(&x) => Ok(()),
        _ => Err("must be in [0, 1]"),
    }
}
fn angle(v: &Static) -> Result<(), &'static str> {
    match num(v) {
        Some(x) if (0.0..=180.0).contains(&x) => Ok(()),
        _ => Err("must be in [0, 180]"),
    }
}
/// The largest padding the runtime accepts: far beyond any image.
const MAX_PADDING: i64 = 1 << 20;
fn padding(v: &Static) -> Result<(), &'static str> {
    match v {
        Static::Int(d) => match d.as_const() {
            Some(x) if x < 0 => Err("must be at least 0"),
            Some(x) if x <= MAX_PADDING => Ok(()),
            _ => Err("must be at most 1048576"),
        },
        _ => Err("must be an integer"),
    }
}

fn param(
    name: &'static str,
    kind: StaticKind,
    default: Option<Static>,
    valid: fn(&Static) -> Result<(), &'static str>,
) -> SParam {
    SParam {
        name,
        kind,
        default,
        valid,
    }
}

/// Every augmentation with its parameters (see spec/data.md, "Augmentation").
pub fn augmentations() -> Table<Augmentation> {
    use StaticKind::{Float, Int};
    let entry = |name, params, build| Entry {
        name,
        params,
        build,
    };
    vec![
        entry(
            "random_crop",
            vec![param("padding", Int, None, padding)],
            |a| Augmentation::RandomCrop {
                padding: a.count("padding"),
            },
        ),
        entry(
            "hflip",
            vec![param("p", Float, Some(Static::Float(0.5)), probability)],
            |a| Augmentation::HFlip {
                p: a.float("p") as f32,
            },
        ),
        entry("rotate", vec![param("degrees", Float, None, angle)], |a| {
            Augmentation::Rotate {
                degrees: a.float("degrees") as f32,
            }
        }),
        entry(
            "noise",
            vec![param("std", Float, None, non_negative)],
            |a| Augmentation::Noise {
                std: a.float("std") as f32,
            },
        ),
        entry(
            "brightness",
            vec![param("amount", Float, None, probability)],
            |a| Augmentation::Brightness {
                amount: a.float("amount") as f32,
            },
        ),
        entry(
            "contrast",
            vec![param("amount", Float, None, probability)],
            |a| Augmentation::Contrast {
                amount: a.float("amount") as f32,
            },
        ),
    ]
}

/// Checks the `augment` item against the dataset's fields (those of its `train` split).
/// `fields_failed` says a field expression already failed, so a field that cannot be
/// found is not reported again.
pub fn check_augment(
    cx: &mut Checker<'_>,
    item: &Split,
    fields: &[DataField],
    fields_failed: bool,
) -> Vec<FieldAugment> {
    let fname = cx.fname.clone();
    let mut out: Vec<FieldAugment> = Vec::new();
    for (n, e) in &item.fields {
        if let Some(prev) = out.iter().find(|f| *f.field == *n.text) {
            let d = cx
                .err(
                    codes::DUPLICATE_DEFINITION,
                    n.span,
                    format!("field `{}` is augmented twice", n.text),
                )
                .with_label("augmented again")
                .with_secondary(&fname, prev.span, "first augmented here")
                .with_help("list every augmentation of a field in one list");
            cx.error(d);
            continue;
        }
        let field_ok = augmentable(cx, n.text.as_str(), n.span, fields, fields_failed);
        let ExprKind::List(calls) = &e.kind else {
            if !matches!(e.kind, ExprKind::Error) {
                let d = cx
                    .err(
                        codes::BAD_AUGMENTATION,
                        e.span,
                        format!("the augmentations of `{}` must be a list", n.text),
                    )
                    .with_label("not a list")
                    .with_help(format!(
                        "write a list of calls, such as `{}: [hflip(p = 0.5)]`",
                        n.text
                    ));
                cx.error(d);
            }
            continue;
        };
        let mut list = Vec::new();
        let mut ok = true;
        for c in calls {
            match check_one(cx, c) {
                Some(s) => list.push(s),
                None => ok = false,
            }
        }
        if field_ok && ok {
            out.push(FieldAugment {
                field: Arc::from(n.text.as_str()),
                list,
                span: n.span,
            });
        } else if field_ok {
            // Keep the field (without its list) so it is not reported twice.
            out.push(FieldAugment {
                field: Arc::from(n.text.as_str()),
                list: Vec::new(),
                span: n.span,
            });
        }
    }
    out
}

/// One augmentation call: [`check_setting`] with this vocabulary, its codes for an
/// unknown name or a bad value turned into E0410 (E0204 and E0208 stay).
fn check_one(cx: &mut Checker<'_>, call: &dnnc_syntax::ast::Expr) -> Option<Augmentation> {
    let before = cx.diags.len();
    let s = check_typed(cx, call, &augmentations(), "augmentation").map(|(a, _)| a);
    for d in &mut cx.diags[before..] {
        if d.code == codes::UNKNOWN_CONFIG || d.code == codes::BAD_TRAIN_VALUE {
            d.code = codes::BAD_AUGMENTATION;
        }
    }
    s
}

/// Whether field `name` exists and holds float images `[H, W]` or `[C, H, W]` per
/// sample; reports it when not.
fn augmentable(
    cx: &mut Checker<'_>,
    name: &str,
    span: Span,
    fields: &[DataField],
    fields_failed: bool,
) -> bool {
    let Some(f) = fields.iter().find(|f| &*f.name == name) else {
        if !fields_failed {
            let mut d = cx
                .err(
                    codes::UNKNOWN_NAME,
                    span,
                    format!("cannot find field `{name}` in this dataset"),
                )
                .with_label("not a field of the dataset");
            let names = fields.iter().map(|f| &*f.name);
            d = match crate::suggest::closest(name, names) {
                Some(s) => d.with_help(format!("a field with a similar name exists: `{s}`")),
                None => d.with_note(format!(
                    "the fields are {}",
                    fields
                        .iter()
                        .map(|f| format!("`{}`", f.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            cx.error(d);
        }
        return false;
    };
    let rank = f.sample.shape.0.len();
    let all_dims = f
        .sample
        .shape
        .0
        .iter()
        .all(|d| matches!(d, DimItem::Dim(_)));
    let why = if !f.sample.dtype.is_float() {
        Some(format!(
            "its elements are `{}`, not floats",
            f.sample.dtype.name()
        ))
    } else if !(2..=3).contains(&rank) || !all_dims {
        Some(format!(
            "its samples have rank {rank}, not 2 (`[H, W]`) or 3 (`[C, H, W]`)"
        ))
    } else {
        None
    };
    let Some(why) = why else { return true };
    let help = if rank < 2 {
        "keep the images `[H, W]` or `[C, H, W]` in the dataset and flatten them in the model"
    } else {
        "augmentations apply to float images `[H, W]` or `[C, H, W]` per sample"
    };
    let d = cx
        .err(
            codes::NOT_AUGMENTABLE,
            span,
            format!("field `{name}` cannot be augmented: {why}"),
        )
        .with_label(format!("`{}` per sample", f.sample))
        .with_secondary(&cx.fname.clone(), f.span, "declared here")
        .with_help(help);
    cx.error(d);
    false
}
