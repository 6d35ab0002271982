//! The vocabularies of settings: initialisers, optimizers and learning-rate schedules.
//!
//! A setting is written like a call (`adam(lr = 1e-3)`, `glorot_uniform`) but is not a
//! value: each is checked against its table here, with every argument static, and
//! resolved into a [`Setting`] that later stages read.

use std::sync::Arc;

use dnnc_diagnostics::{codes, Span};
use dnnc_syntax::ast::{Expr, ExprKind};

use crate::checker::Checker;
use crate::items::{HParamSig, StaticKind};
use crate::ty::{Static, TensorTy};

/// A resolved setting: its name and every argument (defaults filled in).
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub name: Arc<str>,
    pub args: Vec<(Arc<str>, Static)>,
    pub span: Span,
}

impl Setting {
    pub fn float(&self, name: &str) -> Option<f64> {
        self.args
            .iter()
            .find(|(n, _)| &**n == name)
            .and_then(|(_, v)| match v {
                Static::Float(x) => Some(*x),
                Static::Int(d) => d.as_const().map(|c| c as f64),
                _ => None,
            })
    }
}

/// A parameter of a setting: name, kind, default (`None` = required), and a check.
pub struct SParam {
    pub name: &'static str,
    pub kind: StaticKind,
    pub default: Option<Static>,
    pub valid: fn(&Static) -> Result<(), &'static str>,
}

fn any(_: &Static) -> Result<(), &'static str> {
    Ok(())
}
fn positive(v: &Static) -> Result<(), &'static str> {
    match num(v) {
        Some(x) if x > 0.0 => Ok(()),
        _ => Err("must be greater than 0"),
    }
}
fn non_negative(v: &Static) -> Result<(), &'static str> {
    match num(v) {
        Some(x) if x >= 0.0 => Ok(()),
        _ => Err("must be at least 0"),
    }
}
fn unit(v: &Static) -> Result<(), &'static str> {
    match num(v) {
        Some(x) if (0.0..1.0).contains(&x) => Ok(()),
        _ => Err("must be in [0, 1)"),
    }
}
fn num(v: &Static) -> Option<f64> {
    match v {
        Static::Float(x) => Some(*x),
        Static::Int(d) => d.as_const().map(|c| c as f64),
        _ => None,
    }
}

macro_rules! p {
    ($n:literal, Float, $d:expr, $v:ident) => {
        SParam {
            name: $n,
            kind: StaticKind::Float,
            default: $d.map(Static::Float),
            valid: $v,
        }
    };
    ($n:literal, Int, $d:expr, $v:ident) => {
        SParam {
            name: $n,
            kind: StaticKind::Int,
            default: $d.map(|c: i64| Static::Int(crate::dim::Dim::constant(c))),
            valid: $v,
        }
    };
    ($n:literal, Bool, $d:expr) => {
        SParam {
            name: $n,
            kind: StaticKind::Bool,
            default: $d.map(Static::Bool),
            valid: any,
        }
    };
}

type Table = Vec<(&'static str, Vec<SParam>)>;

pub fn optimizers() -> Table {
    vec![
        (
            "sgd",
            vec![
                p!("lr", Float, None::<f64>, positive),
                p!("momentum", Float, Some(0.0), unit),
                p!("nesterov", Bool, Some(false)),
                p!("weight_decay", Float, Some(0.0), non_negative),
                p!("clip_norm", Float, Some(0.0), non_negative),
            ],
        ),
        (
            "adam",
            vec![
                p!("lr", Float, Some(1e-3), positive),
                p!("beta1", Float, Some(0.9), unit),
                p!("beta2", Float, Some(0.999), unit),
                p!("eps", Float, Some(1e-8), positive),
                p!("weight_decay", Float, Some(0.0), non_negative),
                p!("clip_norm", Float, Some(0.0), non_negative),
            ],
        ),
        (
            "adamw",
            vec![
                p!("lr", Float, Some(1e-3), positive),
                p!("beta1", Float, Some(0.9), unit),
                p!("beta2", Float, Some(0.999), unit),
                p!("eps", Float, Some(1e-8), positive),
                p!("weight_decay", Float, Some(0.01), non_negative),
                p!("clip_norm", Float, Some(0.0), non_negative),
            ],
        ),
        (
            "rmsprop",
            vec![
                p!("lr", Float, Some(1e-2), positive),
                p!("alpha", Float, Some(0.99), unit),
                p!("eps", Float, Some(1e-8), positive),
                p!("momentum", Float, Some(0.0), unit),
                p!("weight_decay", Float, Some(0.0), non_negative),
                p!("clip_norm", Float, Some(0.0), non_negative),
            ],
        ),
    ]
}

pub fn schedules() -> Table {
    vec![
        ("constant", vec![]),
        (
            "step",
            vec![
                p!("every", Int, None::<i64>, positive),
                p!("gamma", Float, Some(0.1), positive),
            ],
        ),
        (
            "exponential",
            vec![p!("gamma", Float, None::<f64>, positive)],
        ),
        (
            "cosine",
            vec![
                p!("warmup_epochs", Int, Some(0), non_negative),
                p!("min_lr", Float, Some(0.0), non_negative),
            ],
        ),
    ]
}

pub fn initializers() -> Table {
    vec![
        ("zeros", vec![]),
        ("ones", vec![]),
        ("constant", vec![p!("value", Float, None::<f64>, any)]),
        (
            "uniform",
            vec![
                p!("low", Float, Some(-0.05), any),
                p!("high", Float, Some(0.05), any),
            ],
        ),
        (
            "normal",
            vec![
                p!("mean", Float, Some(0.0), any),
                p!("std", Float, Some(1.0), positive),
            ],
        ),
        ("glorot_uniform", vec![]),
        ("glorot_normal", vec![]),
        ("he_uniform", vec![]),
        ("he_normal", vec![]),
        ("lecun_uniform", vec![]),
        ("lecun_normal", vec![]),
    ]
}

/// Checks `expr` against `table`; `what` names the vocabulary in messages.
pub fn check_setting(
    cx: &mut Checker<'_>,
    expr: &Expr,
    table: Table,
    what: &str,
) -> Option<Setting> {
    let (name, args) = match &expr.kind {
        ExprKind::Name(n) => (n, &[][..]),
        ExprKind::Call { callee, args } => match &callee.kind {
            ExprKind::Name(n) => (n, args.as_slice()),
            _ => return not_a_setting(cx, expr.span, what, table),
        },
        ExprKind::Error => return None,
        _ => return not_a_setting(cx, expr.span, what, table),
    };
    let Some((key, params)) = table.iter().find(|(k, _)| *k == name.text) else {
        let known: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
        let mut d = cx
            .err(
                codes::UNKNOWN_CONFIG,
                name.span,
                format!("unknown {what} `{}`", name.text),
            )
            .with_label(format!("not a known {what}"));
        d = match crate::suggest::closest(&name.text, known.iter().copied()) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => d.with_note(format!("the {what}s are {}", known.join(", "))),
        };
        cx.error(d);
        return None;
    };
    let sigs: Vec<HParamSig> = params
        .iter()
        .map(|p| HParamSig {
            name: Arc::from(p.name),
            kind: p.kind,
            default: p.default.clone(),
            span: name.span,
            doc: None,
        })
        .collect();
    let values = cx.bind_static_args_as(key, &sigs, args, expr.span, "argument")?;
    let mut ok = true;
    for (i, ((n, v), p)) in values.iter().zip(params.iter()).enumerate() {
        // A forwarded hyperparameter is checked where the layer is instantiated.
        if matches!(v, Static::Param(_)) {
            continue;
        }
        if let Err(why) = (p.valid)(v) {
            let given = args
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|an| an.text == **n));
            let span = given
                .or_else(|| args.get(i).filter(|a| a.name.is_none()))
                .map_or(expr.span, |a| a.value.span);
            let d = cx
                .err(
                    codes::BAD_TRAIN_VALUE,
                    span,
                    format!("`{n}` of `{key}` {why}, found {v}"),
                )
                .with_label("invalid value");
            cx.error(d);
            ok = false;
        }
    }
    ok.then(|| Setting {
        name: Arc::from(*key),
        args: values,
        span: expr.span,
    })
}

fn not_a_setting(cx: &mut Checker<'_>, span: Span, what: &str, table: Table) -> Option<Setting> {
    let known: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
    let d = cx
        .err(
            codes::UNKNOWN_CONFIG,
            span,
            format!("expected {} {what}", article(what)),
        )
        .with_label(format!("not {} {what}", article(what)))
        .with_note(format!("the {what}s are {}", known.join(", ")));
    cx.error(d);
    None
}

fn article(w: &str) -> &'static str {
    if w.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Checks a `param`'s initialiser. Fan-based initialisers treat a scalar as fan 1.
pub fn check_initializer(
    cx: &mut Checker<'_>,
    init: &Expr,
    _ty: Option<&TensorTy>,
) -> Option<Setting> {
    check_setting(cx, init, initializers(), "initialiser")
}
