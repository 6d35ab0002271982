//! The vocabularies of settings: initialisers, optimizers and learning-rate schedules.
//!
//! A setting is written like a call (`adam(lr = 1e-3)`, `glorot_uniform`) but is not a
//! value: each is checked against its table here, with every argument static, into a
//! [`Setting`] (its name and arguments, defaults filled in), and then built into its
//! typed value (`dnnc_settings`) by the table entry's `build` function, the one place
//! a setting's name and defaults are known. Later stages consume the typed values.

use std::sync::Arc;

use dnnc_settings::{Init, Optimizer, OptimizerSetting, Schedule};

use dnnc_diagnostics::{codes, Span};
use dnnc_syntax::ast::{Arg, Expr, ExprKind};

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

    /// Every integer value given for `name` (a list argument such as `milestones`
    /// resolves into one entry per element).
    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.args
            .iter()
            .filter(|(n, _)| &**n == name)
            .filter_map(|(_, v)| match v {
                Static::Int(d) => d.as_const(),
                _ => None,
            })
            .collect()
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| &**n == name)
            .and_then(|(_, v)| match v {
                Static::Str(s) => Some(&**s),
                _ => None,
            })
    }
}

/// The arguments of a checked setting, every parameter of its entry present (bound or
/// defaulted) and static: what an entry's `build` reads. Reading a parameter the entry
/// does not declare is a bug in the table, and panics.
pub struct Args<'a>(&'a Setting);

impl Args<'_> {
    pub fn float(&self, name: &str) -> f64 {
        self.0.float(name).unwrap_or_else(|| self.missing(name))
    }

    pub fn int(&self, name: &str) -> i64 {
        *self
            .0
            .ints(name)
            .first()
            .unwrap_or_else(|| self.missing(name))
    }

    /// A non-negative integer (the entry's check refuses negative ones).
    pub fn count(&self, name: &str) -> usize {
        usize::try_from(self.int(name).max(0)).unwrap_or(usize::MAX)
    }

    /// Every value of a list parameter (`milestones = [30, 60]`).
    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.0.ints(name)
    }

    pub fn bool(&self, name: &str) -> bool {
        self.value(name) == &Static::Bool(true)
    }

    pub fn str(&self, name: &str) -> String {
        self.0
            .str(name)
            .unwrap_or_else(|| self.missing(name))
            .to_string()
    }

    fn value(&self, name: &str) -> &Static {
        let found = self.0.args.iter().find(|(n, _)| &**n == name);
        &found.unwrap_or_else(|| self.missing(name)).1
    }

    fn missing(&self, name: &str) -> ! {
        panic!(
            "`{}` has no argument `{name}` of the expected kind",
            self.0.name
        )
    }
}

/// One entry of a vocabulary: the setting's name, its parameters, and how its checked
/// arguments build the typed value.
pub struct Entry<T> {
    pub name: &'static str,
    pub params: Vec<SParam>,
    pub build: fn(&Args) -> T,
}

/// A vocabulary of settings building values of type `T`.
pub type Table<T> = Vec<Entry<T>>;

fn entry<T>(name: &'static str, params: Vec<SParam>, build: fn(&Args) -> T) -> Entry<T> {
    Entry {
        name,
        params,
        build,
    }
}

/// The typed value of a checked setting: `Err` names a hyperparameter that is still
/// symbolic (a layer's initialiser reading `value = v` before the layer is
/// instantiated) or a name the table does not have.
pub fn resolve<T>(table: &Table<T>, s: &Setting) -> Result<T, String> {
    if let Some((n, Static::Param(p))) = s.args.iter().find(|(_, v)| matches!(v, Static::Param(_)))
    {
        return Err(format!(
            "`{n}` of `{}` is the unbound hyperparameter `{p}`",
            s.name
        ));
    }
    let e = table.iter().find(|e| e.name == &*s.name);
    let e = e.ok_or_else(|| format!("unknown setting `{}`", s.name))?;
    Ok((e.build)(&Args(s)))
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
fn fraction(v: &Static) -> Result<(), &'static str> {
    match num(v) {
        Some(x) if x > 0.0 && x < 1.0 => Ok(()),
        _ => Err("must be in (0, 1)"),
    }
}
/// A metric of the run's log: `SPLIT_METRIC`, such as `test_loss`.
fn logged_metric(v: &Static) -> Result<(), &'static str> {
    match v {
        Static::Str(s)
            if s.split_once('_')
                .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty()) =>
        {
            Ok(())
        }
        _ => Err("must name a logged metric such as \"test_loss\" or \"test_accuracy\""),
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
    ($n:literal, Str, $v:ident) => {
        SParam {
            name: $n,
            kind: StaticKind::Str,
            default: None,
            valid: $v,
        }
    };
    ($n:literal, Str, $d:literal, $v:ident) => {
        SParam {
            name: $n,
            kind: StaticKind::Str,
            default: Some(Static::Str(Arc::from($d))),
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

/// The optimizers. Every one takes `clip_norm` (0: no clipping).
pub fn optimizers() -> Table<OptimizerSetting> {
    fn clipped(a: &Args, optimizer: Optimizer) -> OptimizerSetting {
        OptimizerSetting {
            optimizer,
            clip_norm: a.float("clip_norm"),
        }
    }
    vec![
        entry(
            "sgd",
            vec![
                p!("lr", Float, None::<f64>, positive),
                p!("momentum", Float, Some(0.0), unit),
                p!("nesterov", Bool, Some(false)),
                p!("weight_decay", Float, Some(0.0), non_negative),
                p!("clip_norm", Float, Some(0.0), non_negative),
            ],
            |a| {
                let sgd = Optimizer::Sgd {
                    lr: a.float("lr"),
                    momentum: a.float("momentum"),
                    nesterov: a.bool("nesterov"),
                    weight_decay: a.float("weight_decay"),
                };
                clipped(a, sgd)
            },
        ),
        entry("adam", adam_params(0.0), |a| clipped(a, adam(a, false))),
        entry("adamw", adam_params(0.01), |a| clipped(a, adam(a, true))),
        entry(
            "rmsprop",
            vec![
                p!("lr", Float, Some(1e-2), positive),
                p!("alpha", Float, Some(0.99), unit),
                p!("eps", Float, Some(1e-8), positive),
                p!("momentum", Float, Some(0.0), unit),
                p!("weight_decay", Float, Some(0.0), non_negative),
                p!("clip_norm", Float, Some(0.0), non_negative),
            ],
            |a| {
                let rmsprop = Optimizer::RmsProp {
                    lr: a.float("lr"),
                    alpha: a.float("alpha"),
                    eps: a.float("eps"),
                    momentum: a.float("momentum"),
                    weight_decay: a.float("weight_decay"),
                };
                clipped(a, rmsprop)
            },
        ),
    ]
}

/// Adam's and AdamW's parameters; they differ in the default weight decay.
fn adam_params(weight_decay: f64) -> Vec<SParam> {
    vec![
        p!("lr", Float, Some(1e-3), positive),
        p!("beta1", Float, Some(0.9), unit),
        p!("beta2", Float, Some(0.999), unit),
        p!("eps", Float, Some(1e-8), positive),
        p!("weight_decay", Float, Some(weight_decay), non_negative),
        p!("clip_norm", Float, Some(0.0), non_negative),
    ]
}

fn adam(a: &Args, decoupled: bool) -> Optimizer {
    Optimizer::Adam {
        lr: a.float("lr"),
        beta1: a.float("beta1"),
        beta2: a.float("beta2"),
        eps: a.float("eps"),
        weight_decay: a.float("weight_decay"),
        decoupled,
    }
}

/// The learning-rate schedules (a `train` block without one has [`Schedule::Constant`]).
/// The pruning methods (`prune = magnitude(sparsity = 0.9)`).
pub fn prunings() -> Table<dnnc_settings::Prune> {
    vec![entry(
        "magnitude",
        vec![
            p!("sparsity", Float, None::<f64>, unit),
            p!("start_epoch", Int, Some(1), positive),
            // 0: the run's last epoch.
            p!("end_epoch", Int, Some(0), non_negative),
            p!("scope", Str, "layer", scope),
            p!("every", Int, Some(10), positive),
        ],
        |a| dnnc_settings::Prune {
            sparsity: a.float("sparsity"),
            start_epoch: a.count("start_epoch"),
            end_epoch: Some(a.count("end_epoch")).filter(|&e| e > 0),
            global: a.str("scope") == "global",
            every: a.count("every"),
        },
    )]
}

fn scope(v: &Static) -> Result<(), &'static str> {
    match v {
        Static::Str(s) if &**s == "layer" || &**s == "global" => Ok(()),
        _ => Err("must be \"layer\" or \"global\""),
    }
}

pub fn schedules() -> Table<Schedule> {
    vec![
        entry("constant", vec![], |_| Schedule::Constant),
        entry(
            "step",
            vec![
                p!("every", Int, None::<i64>, positive),
                p!("gamma", Float, Some(0.1), positive),
            ],
            |a| Schedule::Step {
                every: a.count("every"),
                gamma: a.float("gamma"),
            },
        ),
        entry(
            "exponential",
            vec![p!("gamma", Float, None::<f64>, positive)],
            |a| Schedule::Exponential {
                gamma: a.float("gamma"),
            },
        ),
        entry(
            "cosine",
            vec![
                p!("warmup_epochs", Int, Some(0), non_negative),
                p!("min_lr", Float, Some(0.0), non_negative),
                // Per-step forms (nanoGPT's): 0 means "use the epoch form".
                p!("warmup_steps", Int, Some(0), non_negative),
                p!("decay_steps", Int, Some(0), non_negative),
            ],
            |a| Schedule::Cosine {
                warmup_epochs: a.count("warmup_epochs"),
                min_lr: a.float("min_lr"),
                warmup_steps: a.count("warmup_steps"),
                decay_steps: a.count("decay_steps"),
            },
        ),
        entry(
            "multistep",
            vec![
                // An integer or a list of them (see `list_argument`).
                p!("milestones", Int, None::<i64>, non_negative),
                p!("gamma", Float, Some(0.1), positive),
            ],
            |a| {
                let mut milestones: Vec<usize> = a
                    .ints("milestones")
                    .into_iter()
                    .map(|m| usize::try_from(m).unwrap_or(0))
                    .collect();
                milestones.sort_unstable();
                Schedule::MultiStep {
                    milestones,
                    gamma: a.float("gamma"),
                }
            },
        ),
        entry(
            "reduce_on_plateau",
            vec![
                p!("metric", Str, logged_metric),
                p!("patience", Int, Some(10), non_negative),
                p!("factor", Float, Some(0.1), fraction),
                p!("min_lr", Float, Some(0.0), non_negative),
                p!("maximize", Bool, Some(false)),
                p!("threshold", Float, Some(1e-4), non_negative),
            ],
            |a| Schedule::ReduceOnPlateau {
                metric: a.str("metric"),
                patience: a.count("patience"),
                factor: a.float("factor"),
                min_lr: a.float("min_lr"),
                maximize: a.bool("maximize"),
                threshold: a.float("threshold"),
            },
        ),
    ]
}

/// `reduce_on_plateau` without `maximize`: accuracies are maximised, everything else
/// minimised, as `early_stop`'s `mode` defaults.
fn plateau_direction(values: &mut [(Arc<str>, Static)], args: &[Arg]) {
    let at = values.iter().position(|(n, _)| &**n == "maximize");
    let given = args.iter().enumerate().any(|(i, a)| {
        a.name
            .as_ref()
            .map_or(Some(i) == at, |n| n.text == "maximize")
    });
    let accuracy = values
        .iter()
        .any(|(n, v)| &**n == "metric" && matches!(v, Static::Str(s) if s.contains("accuracy")));
    if let (Some(at), false) = (at, given) {
        values[at].1 = Static::Bool(accuracy);
    }
}

/// [`check_setting`], then the typed value, with the setting's span.
pub fn check_typed<T>(
    cx: &mut Checker<'_>,
    expr: &Expr,
    table: &Table<T>,
    what: &str,
) -> Option<(T, Span)> {
    let s = check_setting(cx, expr, table, what)?;
    match resolve(table, &s) {
        Ok(v) => Some((v, s.span)),
        Err(why) => {
            let d = cx
                .err(codes::BAD_TRAIN_VALUE, s.span, why)
                .with_label(format!("this {what} needs constant arguments"));
            cx.error(d);
            None
        }
    }
}

/// The settings' parameters that take a list of integers as well as one.
const LIST_PARAMS: &[(&str, &str)] = &[("multistep", "milestones")];

/// The parameter initialisers (a parameter without one is [`Init::Zeros`]).
pub fn initializers() -> Table<Init> {
    vec![
        entry("zeros", vec![], |_| Init::Zeros),
        entry("ones", vec![], |_| Init::Ones),
        entry(
            "constant",
            vec![p!("value", Float, None::<f64>, any)],
            |a| Init::Constant {
                value: a.float("value"),
            },
        ),
        entry(
            "uniform",
            vec![
                p!("low", Float, Some(-0.05), any),
                p!("high", Float, Some(0.05), any),
            ],
            |a| Init::Uniform {
                low: a.float("low"),
                high: a.float("high"),
            },
        ),
        entry(
            "normal",
            vec![
                p!("mean", Float, Some(0.0), any),
                p!("std", Float, Some(1.0), positive),
            ],
            |a| Init::Normal {
                mean: a.float("mean"),
                std: a.float("std"),
            },
        ),
        entry("glorot_uniform", vec![], |_| Init::GlorotUniform),
        entry("glorot_normal", vec![], |_| Init::GlorotNormal),
        entry("he_uniform", vec![], |_| Init::HeUniform),
        entry("he_normal", vec![], |_| Init::HeNormal),
        entry("lecun_uniform", vec![], |_| Init::LecunUniform),
        entry("lecun_normal", vec![], |_| Init::LecunNormal),
        entry(
            "uniform_fan",
            vec![p!("fan", Float, None::<f64>, positive)],
            |a| Init::UniformFan {
                fan: a.float("fan"),
            },
        ),
    ]
}

/// The initialiser of a parameter whose `init` is `s` (symbolic arguments already
/// replaced by the layer instance's values), or zeros without one.
pub fn initializer(s: Option<&Setting>) -> Result<Init, String> {
    s.map_or(Ok(Init::Zeros), |s| resolve(&initializers(), s))
}

/// Checks `expr` against `table`; `what` names the vocabulary in messages.
pub fn check_setting<T>(
    cx: &mut Checker<'_>,
    expr: &Expr,
    table: &Table<T>,
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
    let Some(Entry {
        name: key, params, ..
    }) = table.iter().find(|e| e.name == name.text)
    else {
        let known: Vec<&str> = table.iter().map(|e| e.name).collect();
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
    let (args, extra) = list_argument(cx, key, params, args)?;
    let args = &args[..];
    let mut values = cx.bind_static_args_as(key, &sigs, args, expr.span, "argument")?;
    if *key == "reduce_on_plateau" {
        plateau_direction(&mut values, args);
    }
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
    if let Some((at, rest)) = extra {
        let p = &params[at];
        for (v, span) in &rest {
            if let Err(why) = (p.valid)(v) {
                let d = cx
                    .err(
                        codes::BAD_TRAIN_VALUE,
                        *span,
                        format!("`{}` of `{key}` {why}, found {v}", p.name),
                    )
                    .with_label("invalid value");
                cx.error(d);
                ok = false;
            }
        }
        let name: Arc<str> = Arc::from(p.name);
        values.splice(
            at + 1..at + 1,
            rest.into_iter().map(|(v, _)| (name.clone(), v)),
        );
    }
    ok.then(|| Setting {
        name: Arc::from(*key),
        args: values,
        span: expr.span,
    })
}

/// The given values of a parameter after the first, with the parameter's index.
type ListRest = Option<(usize, Vec<(Static, Span)>)>;

/// A list given for a parameter of [`LIST_PARAMS`] (`milestones = [30, 60]`): the
/// arguments with the list replaced by its first element, which binds like a single
/// value, and the other elements, checked to be static values of the parameter's kind.
fn list_argument(
    cx: &mut Checker<'_>,
    key: &str,
    params: &[SParam],
    args: &[Arg],
) -> Option<(Vec<Arg>, ListRest)> {
    let found = LIST_PARAMS
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, lp)| Some((*lp, params.iter().position(|p| p.name == *lp)?)));
    let Some((lp, at)) = found else {
        return Some((args.to_vec(), None));
    };
    let named = args
        .iter()
        .position(|a| a.name.as_ref().is_some_and(|n| n.text == lp));
    let positional = || {
        args.iter()
            .enumerate()
            .filter(|(_, a)| a.name.is_none())
            .nth(at)
            .map(|(i, _)| i)
    };
    let Some(i) = named.or_else(positional) else {
        return Some((args.to_vec(), None));
    };
    let ExprKind::List(items) = &args[i].value.kind else {
        return Some((args.to_vec(), None));
    };
    let Some(first) = items.first() else {
        let d = cx
            .err(
                codes::BAD_TRAIN_VALUE,
                args[i].value.span,
                format!("`{lp}` of `{key}` needs at least one value"),
            )
            .with_label("empty list");
        cx.error(d);
        return None;
    };
    let mut rest = Vec::new();
    let mut ok = true;
    for it in &items[1..] {
        let t = cx.expr(it);
        match cx.static_of_kind(&t, params[at].kind, it.span, &format!("`{lp}`")) {
            Some(v) => rest.push((v, it.span)),
            None => ok = false,
        }
    }
    let mut out = args.to_vec();
    out[i].value = first.clone();
    ok.then_some((out, Some((at, rest))))
}

fn not_a_setting<T>(
    cx: &mut Checker<'_>,
    span: Span,
    what: &str,
    table: &Table<T>,
) -> Option<Setting> {
    let known: Vec<&str> = table.iter().map(|e| e.name).collect();
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
    check_setting(cx, init, &initializers(), "initialiser")
}
