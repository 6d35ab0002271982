//! `train` blocks: the model(s), the dataset's batch fields, and every setting of a
//! training run, resolved into a [`TrainSig`] that later stages execute.

use std::sync::Arc;

use dnnc_diagnostics::{codes, Diagnostic, Span};
use dnnc_syntax::ast::{self, Expr, ExprKind, ItemKind, StepItemKind, TrainItemKind};

use crate::checker::Checker;
use crate::data::dataset_sig;
use crate::db::Db;
use crate::dim::Dim;
use crate::items::{item_ast, layer_hparams, layer_sig, ItemId, StaticKind};
use crate::settings::{check_typed, optimizers, prunings, schedules};
use crate::ty::{DType, DimItem, LayerInst, Shape, Static, TensorTy, Ty};
pub use dnnc_settings::EarlyStop;
use dnnc_settings::{OptimizerSetting, Schedule, StepSetting, Training, Update};

/// A model taking part in training.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainModel {
    pub name: Arc<str>,
    pub inst: LayerInst,
    pub from: Option<String>,
    pub at: Option<String>,
    pub frozen: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: Arc<str>,
    pub updates: Vec<(Vec<Arc<str>>, OptimizerSetting)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainSig {
    pub models: Vec<TrainModel>,
    pub dataset: Option<Arc<str>>,
    pub batch: i64,
    pub epochs: i64,
    pub seed: i64,
    pub shuffle: bool,
    pub optimizer: Option<OptimizerSetting>,
    pub schedule: Schedule,
    pub metrics: Vec<Arc<str>>,
    pub early_stop: Option<EarlyStop>,
    pub checkpoint: Option<String>,
    pub precision: dnnc_settings::Precision,
    pub prune: Option<dnnc_settings::Prune>,
    pub steps: Vec<Step>,
    /// Whether the block has a `sample` expression.
    pub sample: bool,
    pub diagnostics: Vec<Diagnostic>,
    pub types: Vec<(Span, Ty)>,
}

/// The fields a `train` block accepts.
pub const FIELDS: &[&str] = &[
    "batch",
    "epochs",
    "loss",
    "optimizer",
    "schedule",
    "metrics",
    "early_stop",
    "checkpoint",
    "seed",
    "shuffle",
    "sample",
    "precision",
    "prune",
];

#[salsa::tracked(returns(ref))]
pub fn train_sig<'db>(db: &'db dyn Db, item: ItemId<'db>) -> Option<TrainSig> {
    let ItemKind::Train(def) = &item_ast(db, item).kind else {
        return None;
    };
    let mut cx = Checker::new(db, item.file(db));
    let mut sig = TrainSig {
        models: Vec::new(),
        dataset: None,
        batch: 32,
        epochs: 1,
        seed: 0,
        shuffle: true,
        optimizer: None,
        schedule: Schedule::Constant,
        metrics: Vec::new(),
        early_stop: None,
        checkpoint: None,
        precision: dnnc_settings::Precision::F32,
        prune: None,
        steps: Vec::new(),
        sample: false,
        diagnostics: Vec::new(),
        types: Vec::new(),
    };
    let multi = def
        .items
        .iter()
        .any(|i| matches!(i.kind, TrainItemKind::Model(_) | TrainItemKind::Step { .. }));
    let has_steps = def
        .items
        .iter()
        .any(|i| matches!(i.kind, TrainItemKind::Step { .. }));

    // The model of the single-model form.
    if !multi {
        let errors = cx.diags.len();
        let model = header_model(&mut cx, def);
        if model.is_none() && cx.diags.len() > errors {
            cx.bind("model", Ty::Error, Some(def.name.span));
        }
        if let Some(inst) = model {
            cx.check_quotients(&inst, def.name.span);
            cx.check_param_sizes(&inst, def.name.span);
            cx.bind("model", Ty::Layer(inst.clone()), Some(def.name.span));
            crate::pretrained::check(&mut cx, &inst, None, def.name.span);
            sig.models.push(TrainModel {
                name: Arc::from("model"),
                inst,
                from: None,
                at: None,
                frozen: false,
            });
        }
    } else if let Some(args) = &def.args_span {
        let d = cx
            .err(
                codes::NOT_A_MODEL,
                *args,
                "a train block with `model` bindings takes no arguments in its header",
            )
            .with_label("the header only names the run here")
            .with_help("pass hyperparameters in each `model NAME = Layer(...)` binding");
        cx.error(d);
    }

    // The dataset's batch fields.
    let errors = cx.diags.len();
    let (splits, fields) = bind_dataset(&mut cx, def, &mut sig);
    // The names whose values come from the batch: the fields, and `let`s that read them.
    let mut data_names: std::collections::HashSet<String> = fields.into_iter().collect();
    if cx.diags.len() > errors {
        // The dataset's fields are unknown; do not report each use of them.
        cx.quiet_unknown = true;
    }
    cx.bind("B", Ty::Int(Some(Dim::sym("B"))), None);

    let mut seen: Vec<(String, Span)> = Vec::new();
    let mut early_stop: Option<&Expr> = None;
    let mut loss_seen = false;
    let mut schedule_span = None;
    for it in &def.items {
        match &it.kind {
            TrainItemKind::Model(b) if b.name.text == "B" => {
                let d = cx
                    .err(
                        codes::DUPLICATE_DEFINITION,
                        b.name.span,
                        "`B` is the batch size in a `train` block",
                    )
                    .with_label("cannot name a model")
                    .with_help("give the model another name");
                cx.error(d);
            }
            TrainItemKind::Model(b) => {
                if let Some(inst) = cx.instantiate(&b.value) {
                    require_model(&mut cx, &inst, b.value.span);
                    cx.check_quotients(&inst, b.value.span);
                    cx.check_param_sizes(&inst, b.value.span);
                    cx.bind(&b.name.text, Ty::Layer(inst.clone()), Some(b.name.span));
                    sig.models.push(TrainModel {
                        name: Arc::from(b.name.text.as_str()),
                        inst,
                        from: b.from.as_ref().map(|s| s.value.clone()),
                        at: b.at.as_ref().map(|s| s.value.clone()),
                        frozen: b.frozen.is_some(),
                    });
                    let from = b.from.as_ref().map(|s| crate::pretrained::From {
                        written: &s.value,
                        file: crate::pretrained::resolve(&cx, cx.file, &s.value),
                        at: b.at.as_ref().map(|a| a.value.as_str()),
                    });
                    let at = b.from.as_ref().map_or(b.value.span, |s| s.span);
                    crate::pretrained::check(
                        &mut cx,
                        &sig.models.last().expect("pushed").inst.clone(),
                        from,
                        at,
                    );
                }
            }
            TrainItemKind::Let(l) => {
                let mut reads_data = false;
                crate::recursion::names_read(&l.value, &mut |n, _| {
                    reads_data |= data_names.contains(n);
                });
                if reads_data {
                    data_names.extend(l.pattern.names().iter().map(|n| n.text.to_string()));
                }
                cx.let_stmt(l)
            }
            TrainItemKind::Step { name, items } => {
                let step = check_step(&mut cx, name, items, &sig.models);
                sig.steps.push(step);
            }
            TrainItemKind::Field(n, e) => {
                if let Some((_, prev)) = seen.iter().find(|(s, _)| *s == n.text) {
                    let d = cx
                        .err(
                            codes::TRAIN_FIELD,
                            n.span,
                            format!("`{}` is set twice", n.text),
                        )
                        .with_label("set again")
                        .with_secondary(&cx.fname.clone(), *prev, "first set here");
                    cx.error(d);
                    continue;
                }
                seen.push((n.text.clone(), n.span));
                match n.text.as_str() {
                    "batch" => sig.batch = positive_int(&mut cx, e, "batch").unwrap_or(sig.batch),
                    "epochs" => {
                        sig.epochs = positive_int(&mut cx, e, "epochs").unwrap_or(sig.epochs)
                    }
                    "seed" => {
                        let t = cx.expr(e);
                        if let Some(Static::Int(d)) =
                            cx.static_of_kind(&t, StaticKind::Int, e.span, "`seed`")
                        {
                            match d.as_const() {
                                Some(v) if v >= 0 => sig.seed = v,
                                _ => bad_value(
                                    &mut cx,
                                    e.span,
                                    "`seed` must be a non-negative integer",
                                ),
                            }
                        }
                    }
                    "shuffle" => {
                        let t = cx.expr(e);
                        if let Some(Static::Bool(b)) =
                            cx.static_of_kind(&t, StaticKind::Bool, e.span, "`shuffle`")
                        {
                            sig.shuffle = b;
                        }
                    }
                    "prune" => {
                        if let Some((p, span)) = check_typed(&mut cx, e, &prunings(), "pruning") {
                            if p.end_epoch.is_some_and(|end| end < p.start_epoch) {
                                bad_value(&mut cx, span, "`end_epoch` comes before `start_epoch`");
                            } else {
                                sig.prune = Some(p);
                            }
                        }
                    }
                    "precision" => {
                        let t = cx.expr(e);
                        match t {
                            Ty::DTypeVal(DType::F32) => {
                                sig.precision = dnnc_settings::Precision::F32
                            }
                            Ty::DTypeVal(DType::BF16) => {
                                sig.precision = dnnc_settings::Precision::Bf16
                            }
                            Ty::Error => {}
                            _ => bad_value(
                                &mut cx,
                                e.span,
                                "`precision` is `f32` or `bf16` (products of bf16 operands accumulated in f32)",
                            ),
                        }
                    }
                    "checkpoint" => {
                        let t = cx.expr(e);
                        if let Some(Static::Str(s)) =
                            cx.static_of_kind(&t, StaticKind::Str, e.span, "`checkpoint`")
                        {
                            sig.checkpoint = Some(s.to_string());
                        }
                    }
                    "loss" => {
                        loss_seen = true;
                        if has_steps {
                            misplaced(&mut cx, n.span, "loss");
                        }
                        check_loss(&mut cx, e);
                    }
                    "optimizer" => {
                        if has_steps {
                            misplaced(&mut cx, n.span, "optimizer");
                        }
                        sig.optimizer =
                            check_typed(&mut cx, e, &optimizers(), "optimizer").map(|(o, _)| o);
                    }
                    "schedule" => {
                        if let Some((s, span)) = check_typed(&mut cx, e, &schedules(), "schedule") {
                            sig.schedule = s;
                            schedule_span = Some(span);
                        }
                    }
                    "metrics" => sig.metrics = check_metrics(&mut cx, e),
                    // Checked after every field, so `metrics` may come later.
                    "early_stop" => early_stop = Some(e),
                    "sample" => {
                        sig.sample = check_sample(&mut cx, e, &data_names);
                    }
                    other => {
                        let mut d = cx
                            .err(
                                codes::TRAIN_FIELD,
                                n.span,
                                format!("unknown field `{other}` in a `train` block"),
                            )
                            .with_label("unknown field");
                        d = match crate::suggest::closest(other, FIELDS.iter().copied()) {
                            Some(s) => d.with_help(format!("did you mean `{s}`?")),
                            None => d.with_note(format!("the fields are {}", FIELDS.join(", "))),
                        };
                        if other == "model" {
                            d = d.with_help("bind a model with `model NAME = Layer(...)`");
                        }
                        cx.error(d);
                    }
                }
            }
        }
    }
    if multi && !has_steps {
        let d = cx
            .err(
                codes::TRAIN_FIELD,
                def.name.span,
                "a train block with `model` bindings needs `step` blocks",
            )
            .with_label("no step says which model to update")
            .with_help("add `step NAME { loss = ...; update MODEL with OPTIMIZER }`");
        cx.error(d);
    }
    if has_steps {
        // A model no step updates keeps its initial weights: a forgotten `update`, or
        // a pretrained model that should say `frozen`.
        for it in &def.items {
            let TrainItemKind::Model(b) = &it.kind else {
                continue;
            };
            let updated = sig.steps.iter().any(|s| {
                s.updates
                    .iter()
                    .any(|(ms, _)| ms.iter().any(|m| **m == *b.name.text))
            });
            let errors_in_steps = cx.diags.iter().any(|d| d.is_error());
            if b.frozen.is_none() && !updated && !errors_in_steps {
                let d = cx
                    .err(
                        codes::BAD_TRAIN_VALUE,
                        b.name.span,
                        format!("no step updates model `{}`", b.name.text),
                    )
                    .with_label("never trained")
                    .with_help(format!(
                        "add `update {}` to a step, or mark it `frozen` if its weights are final",
                        b.name.text
                    ));
                cx.error(d);
            }
        }
    }
    if !has_steps && !multi {
        for (field, present) in [
            ("loss", loss_seen),
            ("optimizer", seen.iter().any(|(s, _)| s == "optimizer")),
        ] {
            if !present {
                let d = cx
                    .err(
                        codes::TRAIN_FIELD,
                        def.name.span,
                        format!("this `train` block has no `{field}`"),
                    )
                    .with_label(format!("`{field}` is required"))
                    .with_help(if field == "loss" {
                        "add e.g. `loss = cross_entropy(model(image), label)`"
                    } else {
                        "add e.g. `optimizer = adam(lr = 1e-3)`"
                    });
                cx.error(d);
            }
        }
    }
    if let Some(e) = early_stop {
        sig.early_stop = check_early_stop(&mut cx, e, &splits, &sig.metrics, has_steps);
    }
    if let Some(span) = schedule_span {
        check_schedule(&mut cx, &sig, &splits, span);
    }
    sig.diagnostics = cx.diags;
    sig.types = cx.types;
    Some(sig)
}

/// What a schedule needs from the rest of the block: a warm-up shorter than the run,
/// and a plateau metric the run logs (`train_` or `test_` with `loss` or a listed
/// metric, on a split the dataset has).
fn check_schedule(cx: &mut Checker<'_>, sig: &TrainSig, splits: &[Arc<str>], span: Span) {
    match &sig.schedule {
        Schedule::Cosine { warmup_epochs, .. }
            if *warmup_epochs > 0 && *warmup_epochs as i64 >= sig.epochs =>
        {
            let msg = format!(
                "`warmup_epochs` ({warmup_epochs}) must be less than `epochs` ({})",
                sig.epochs
            );
            bad_value(cx, span, &msg);
        }
        Schedule::ReduceOnPlateau { metric, .. } => {
            let known = |m: &str| m == "loss" || sig.metrics.iter().any(|k| **k == *m);
            let logged = ["train_", "test_"]
                .iter()
                .any(|p| metric.strip_prefix(p).is_some_and(known));
            if !logged {
                let mut names = vec!["`loss`".to_string()];
                names.extend(sig.metrics.iter().map(|m| format!("`{m}`")));
                let d = cx
                    .err(
                        codes::BAD_TRAIN_VALUE,
                        span,
                        format!(
                            "`reduce_on_plateau` watches `{metric}`, which this run does not log"
                        ),
                    )
                    .with_label("not a logged metric")
                    .with_note(format!(
                        "the run logs `train_` and `test_` with {}",
                        names.join(", ")
                    ));
                cx.error(d);
            } else if metric.starts_with("test_") && !splits.iter().any(|s| &**s == "test") {
                let d = cx
                    .err(
                        codes::BAD_TRAIN_VALUE,
                        span,
                        format!(
                            "`reduce_on_plateau` watches `{metric}`, but the dataset has no `test` split"
                        ),
                    )
                    .with_label("no `test` split to measure")
                    .with_help("watch a `train_` metric, or add a `test` split to the dataset");
                cx.error(d);
            }
        }
        _ => {}
    }
}

impl TrainSig {
    /// The settings of the run, defaults filled in, as a plan of steps; `None` when
    /// the block did not check (no valid optimizer, model or step).
    pub fn training(&self) -> Option<Training> {
        let multi = !self.steps.is_empty();
        let steps = if multi {
            self.steps
                .iter()
                .map(|s| StepSetting {
                    name: s.name.to_string(),
                    updates: s
                        .updates
                        .iter()
                        .map(|(models, optimizer)| Update {
                            models: models.iter().map(|m| m.to_string()).collect(),
                            optimizer: optimizer.clone(),
                        })
                        .collect(),
                })
                .collect()
        } else {
            if self.models.len() != 1 {
                return None;
            }
            vec![StepSetting {
                name: "train".into(),
                updates: vec![Update {
                    models: vec!["model".into()],
                    optimizer: self.optimizer.clone()?,
                }],
            }]
        };
        Some(Training {
            batch: usize::try_from(self.batch.max(1)).ok()?,
            epochs: usize::try_from(self.epochs.max(1)).ok()?,
            seed: u64::try_from(self.seed.max(0)).ok()?,
            shuffle: self.shuffle,
            steps,
            multi,
            sample: self.sample,
            schedule: self.schedule.clone(),
            metrics: self.metrics.iter().map(|m| m.to_string()).collect(),
            early_stop: self.early_stop.clone(),
            checkpoint: self.checkpoint.clone(),
            precision: self.precision,
            prune: self.prune.clone(),
        })
    }
}

fn header_model(cx: &mut Checker<'_>, def: &ast::TrainDef) -> Option<LayerInst> {
    let ty = cx.lookup(&def.name.text).map(|l| l.ty);
    let r = match ty {
        Some(Ty::LayerCtor(r)) => r,
        Some(Ty::Error) => return None,
        Some(other) => {
            let d = cx
                .err(
                    codes::NOT_A_MODEL,
                    def.name.span,
                    format!("`{}` is {}, not a model", def.name.text, other.kind_name()),
                )
                .with_label("expected a `model`");
            cx.error(d);
            return None;
        }
        None => {
            cx.unknown_name(&def.name.text, def.name.span, "model");
            return None;
        }
    };
    let id = cx.item_id(&r);
    let hps = layer_hparams(cx.db, id).list.clone();
    let args = def.args.clone().unwrap_or_default();
    let values =
        cx.bind_static_args(&r.name, &hps, &args, def.args_span.unwrap_or(def.name.span))?;
    let inst = LayerInst {
        layer: r,
        args: values,
    };
    require_model(cx, &inst, def.name.span);
    Some(inst)
}

fn require_model(cx: &mut Checker<'_>, inst: &LayerInst, span: Span) {
    let id = cx.item_id(&inst.layer);
    let Some(sig) = layer_sig(cx.db, id).as_ref() else {
        return;
    };
    if !sig.is_model {
        let d = cx
            .err(
                codes::NOT_A_MODEL,
                span,
                format!("`{}` is a `layer`, not a `model`", sig.name),
            )
            .with_label("only models can be trained")
            .with_help(format!("declare it with `model {} ...`", sig.name));
        cx.error(d);
    } else if sig.method("forward").is_none() {
        let d = cx
            .err(
                codes::NOT_A_MODEL,
                span,
                format!("model `{}` has no `forward` method", sig.name),
            )
            .with_label("cannot be called");
        cx.error(d);
    }
}

/// Binds each field of the dataset's `train` split as a batch tensor `[B, ...]`.
/// Binds the batch fields of the block's dataset; returns its splits' names and the
/// fields' names.
fn bind_dataset(
    cx: &mut Checker<'_>,
    def: &ast::TrainDef,
    sig: &mut TrainSig,
) -> (Vec<Arc<str>>, Vec<String>) {
    let r = match cx.lookup(&def.dataset.text).map(|l| l.ty) {
        Some(Ty::Dataset(r)) => r,
        Some(Ty::Error) => return (Vec::new(), Vec::new()),
        Some(other) => {
            let d = cx
                .err(
                    codes::NOT_A_DATASET,
                    def.dataset.span,
                    format!(
                        "`{}` is {}, not a dataset",
                        def.dataset.text,
                        other.kind_name()
                    ),
                )
                .with_label("expected a dataset");
            cx.error(d);
            return (Vec::new(), Vec::new());
        }
        None => {
            cx.unknown_name(&def.dataset.text, def.dataset.span, "dataset");
            return (Vec::new(), Vec::new());
        }
    };
    sig.dataset = Some(r.name.clone());
    let id = cx.item_id(&r);
    let ds = dataset_sig(cx.db, id);
    if ds.diagnostics.iter().any(|d| d.is_error()) {
        // A field that failed (e.g. an unreadable file) is missing; its uses here are
        // not reported again.
        cx.quiet_unknown = true;
    }
    let Some(train) = ds.split("train") else {
        let d = cx
            .err(
                codes::NOT_A_DATASET,
                def.dataset.span,
                format!("dataset `{}` has no `train` split", r.name),
            )
            .with_label("nothing to train on")
            .with_help("add `train = (field: loader(...), ...)` to the dataset");
        cx.error(d);
        return (
            ds.splits.iter().map(|s| s.name.clone()).collect(),
            Vec::new(),
        );
    };
    for f in &train.fields {
        let mut items = vec![DimItem::Dim(Dim::sym("B"))];
        items.extend(f.sample.shape.0.iter().cloned());
        cx.bind(
            &f.name,
            Ty::Tensor(TensorTy {
                dtype: f.sample.dtype,
                shape: Shape(items),
            }),
            None,
        );
    }
    let fields = train.fields.iter().map(|f| f.name.to_string()).collect();
    (ds.splits.iter().map(|s| s.name.clone()).collect(), fields)
}

/// `sample = EXPR`: what `dnnc sample` and the per-epoch sample grids draw — a float
/// tensor `[B, ...]` computed from the models and random noise, without the batch
/// (`data_names`: the fields and the `let`s that read them). Whether it checked.
fn check_sample(
    cx: &mut Checker<'_>,
    e: &Expr,
    data_names: &std::collections::HashSet<String>,
) -> bool {
    let mut read = None;
    crate::recursion::names_read(e, &mut |n, span| {
        if read.is_none() && data_names.contains(n) {
            read = Some((n.to_string(), span));
        }
    });
    if let Some((n, span)) = read {
        let d = cx
            .err(
                codes::BAD_TRAIN_VALUE,
                span,
                format!("`sample` cannot read `{n}`, which comes from the batch"),
            )
            .with_label("read from the dataset")
            .with_help("sample from noise, e.g. `sample = G(normal([B, 64]))`");
        cx.error(d);
        return false;
    }
    let t = cx.expr(e);
    let batch_first =
        |t: &TensorTy| matches!(t.shape.0.first(), Some(DimItem::Dim(d)) if *d == Dim::sym("B"));
    match &t {
        Ty::Tensor(t) if t.dtype.is_float() && batch_first(t) => {
            cx.needs_f32(t, e.span, "a sample");
            true
        }
        Ty::Error => false,
        other => {
            let d = cx
                .err(
                    codes::BAD_TRAIN_VALUE,
                    e.span,
                    format!("`sample` must be a float tensor `[B, ...]`, found `{other}`"),
                )
                .with_label("not a batch of samples")
                .with_help("compute `B` samples, e.g. `sample = G(normal([B, 64]))`");
            cx.error(d);
            false
        }
    }
}

fn positive_int(cx: &mut Checker<'_>, e: &Expr, what: &str) -> Option<i64> {
    let t = cx.expr(e);
    match cx.static_of_kind(&t, StaticKind::Int, e.span, &format!("`{what}`"))? {
        Static::Int(d) => match d.as_const() {
            Some(v) if v > 0 => Some(v),
            _ => {
                bad_value(cx, e.span, &format!("`{what}` must be a positive integer"));
                None
            }
        },
        _ => None,
    }
}

fn bad_value(cx: &mut Checker<'_>, span: Span, msg: &str) {
    let d = cx
        .err(codes::BAD_TRAIN_VALUE, span, msg.to_string())
        .with_label("invalid value");
    cx.error(d);
}

fn misplaced(cx: &mut Checker<'_>, span: Span, field: &str) {
    let d = cx
        .err(
            codes::TRAIN_FIELD,
            span,
            format!("`{field}` belongs inside a `step` when a train block has steps"),
        )
        .with_label("move it into a step");
    cx.error(d);
}

fn check_loss(cx: &mut Checker<'_>, e: &Expr) {
    let t = cx.expr(e);
    match &t {
        Ty::Tensor(t) if t.shape.rank() == Some(0) && t.dtype.is_float() => {
            cx.needs_f32(t, e.span, "a loss");
        }
        Ty::Error => {}
        Ty::Tensor(t) if t.shape.rank() == Some(0) => {
            let d = cx
                .err(
                    codes::LOSS_NOT_SCALAR,
                    e.span,
                    format!("the loss must be a float scalar, found `{t}`"),
                )
                .with_label("not a float")
                .with_help("convert it with `cast(x, f32)`");
            cx.error(d);
        }
        other => {
            let d = cx
                .err(
                    codes::LOSS_NOT_SCALAR,
                    e.span,
                    format!("the loss must be a scalar float, found `{other}`"),
                )
                .with_label("not a scalar")
                .with_help("reduce it, e.g. with `mean(...)`");
            cx.error(d);
        }
    }
}

fn check_metrics(cx: &mut Checker<'_>, e: &Expr) -> Vec<Arc<str>> {
    let ExprKind::List(items) = &e.kind else {
        let d = cx
            .err(
                codes::BAD_TRAIN_VALUE,
                e.span,
                "`metrics` is a list, e.g. `[accuracy(logits, label)]`",
            )
            .with_label("not a list");
        cx.error(d);
        return Vec::new();
    };
    let mut names: Vec<(Arc<str>, Span)> = Vec::new();
    for m in items {
        let t = cx.expr(m);
        let name = match &m.kind {
            ExprKind::Call { callee, .. } => match &callee.kind {
                ExprKind::Name(n) => Some(n.text.clone()),
                _ => None,
            },
            _ => None,
        };
        let Some(name) = name else {
            let d = cx
                .err(
                    codes::BAD_TRAIN_VALUE,
                    m.span,
                    "a metric is a call such as `accuracy(logits, label)`",
                )
                .with_label("its name comes from the function it calls");
            cx.error(d);
            continue;
        };
        match &t {
            Ty::Tensor(tt) if tt.shape.rank() == Some(0) => {}
            Ty::Error => continue,
            other => {
                let d = cx
                    .err(
                        codes::LOSS_NOT_SCALAR,
                        m.span,
                        format!("a metric must be a scalar, found `{other}`"),
                    )
                    .with_label("not a scalar");
                cx.error(d);
                continue;
            }
        }
        if let Some((_, prev)) = names.iter().find(|(n, _)| **n == *name) {
            let d = cx
                .err(
                    codes::TRAIN_FIELD,
                    m.span,
                    format!("metric `{name}` is listed twice"),
                )
                .with_label("listed again")
                .with_secondary(&cx.fname.clone(), *prev, "first listed here");
            cx.error(d);
            continue;
        }
        names.push((Arc::from(name.as_str()), m.span));
    }
    names.into_iter().map(|(n, _)| n).collect()
}

fn check_early_stop(
    cx: &mut Checker<'_>,
    e: &Expr,
    splits: &[Arc<str>],
    metrics: &[Arc<str>],
    has_steps: bool,
) -> Option<EarlyStop> {
    let ExprKind::Record(fields) = &e.kind else {
        let d = cx
            .err(
                codes::BAD_TRAIN_VALUE,
                e.span,
                "`early_stop` is a record, e.g. `(monitor = test.accuracy, patience = 3)`",
            )
            .with_label("not a record");
        cx.error(d);
        return None;
    };
    let mut monitor = None;
    let mut patience = 3;
    let mut mode: Option<bool> = None;
    let mut min_delta = 0.0;
    for (n, v) in fields {
        match n.text.as_str() {
            "monitor" => monitor = check_monitor(cx, v, splits, metrics, has_steps),
            "patience" => {
                let t = cx.expr(v);
                if let Some(Static::Int(d)) =
                    cx.static_of_kind(&t, StaticKind::Int, v.span, "`patience`")
                {
                    match d.as_const() {
                        Some(p) if p >= 0 => patience = p,
                        _ => bad_value(cx, v.span, "`patience` must be a non-negative integer"),
                    }
                }
            }
            "mode" => {
                let t = cx.expr(v);
                match &t {
                    Ty::Str(Some(s)) if &**s == "max" => mode = Some(true),
                    Ty::Str(Some(s)) if &**s == "min" => mode = Some(false),
                    _ => bad_value(cx, v.span, "`mode` is \"max\" or \"min\""),
                }
            }
            "min_delta" => {
                let t = cx.expr(v);
                if let Some(Static::Float(x)) =
                    cx.static_of_kind(&t, StaticKind::Float, v.span, "`min_delta`")
                {
                    if x < 0.0 {
                        bad_value(cx, v.span, "`min_delta` must be at least 0");
                    }
                    min_delta = x;
                }
            }
            other => {
                let d = cx
                    .err(
                        codes::TRAIN_FIELD,
                        n.span,
                        format!("unknown `early_stop` setting `{other}`"),
                    )
                    .with_label("unknown setting")
                    .with_note("the settings are monitor, patience, mode and min_delta");
                cx.error(d);
            }
        }
    }
    let Some((split, metric)) = monitor else {
        if !fields.iter().any(|(n, _)| n.text == "monitor") {
            let d = cx
                .err(
                    codes::BAD_MONITOR,
                    e.span,
                    "`early_stop` needs `monitor`, e.g. `monitor = test.accuracy`",
                )
                .with_label("nothing to monitor");
            cx.error(d);
        }
        return None;
    };
    let maximize = mode.unwrap_or(metric.contains("accuracy"));
    Some(EarlyStop {
        split: split.to_string(),
        metric: metric.to_string(),
        patience: usize::try_from(patience).unwrap_or(0),
        maximize,
        min_delta,
    })
}

fn check_monitor(
    cx: &mut Checker<'_>,
    v: &Expr,
    splits: &[Arc<str>],
    metrics: &[Arc<str>],
    has_steps: bool,
) -> Option<(Arc<str>, Arc<str>)> {
    let (split, metric) = match &v.kind {
        ExprKind::Field(base, m) => match &base.kind {
            ExprKind::Name(s) => (s, m),
            _ => return bad_monitor(cx, v.span),
        },
        _ => return bad_monitor(cx, v.span),
    };
    if !splits.iter().any(|s| **s == *split.text) {
        let d = cx
            .err(
                codes::BAD_MONITOR,
                split.span,
                format!("the dataset has no split `{}`", split.text),
            )
            .with_label("unknown split")
            .with_note(format!(
                "its splits are {}",
                splits
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        cx.error(d);
        return None;
    }
    if metric.text == "loss" && has_steps {
        let d = cx
            .err(
                codes::BAD_MONITOR,
                metric.span,
                "with several steps there are several losses; monitor a metric",
            )
            .with_label("ambiguous")
            .with_help("list the quantity in `metrics` and monitor it by name");
        cx.error(d);
        return None;
    }
    if metric.text != "loss" && !metrics.iter().any(|m| **m == *metric.text) {
        let mut known: Vec<String> = vec!["`loss`".into()];
        known.extend(metrics.iter().map(|m| format!("`{m}`")));
        let d = cx
            .err(
                codes::BAD_MONITOR,
                metric.span,
                format!("`{}` is not a metric of this run", metric.text),
            )
            .with_label("unknown metric")
            .with_note(format!(
                "the metrics are {} (list `metrics` before `early_stop`)",
                known.join(", ")
            ));
        cx.error(d);
        return None;
    }
    Some((
        Arc::from(split.text.as_str()),
        Arc::from(metric.text.as_str()),
    ))
}

fn bad_monitor(cx: &mut Checker<'_>, span: Span) -> Option<(Arc<str>, Arc<str>)> {
    let d = cx
        .err(
            codes::BAD_MONITOR,
            span,
            "`monitor` names a split and a metric, e.g. `test.accuracy`",
        )
        .with_label("expected `SPLIT.METRIC`");
    cx.error(d);
    None
}

fn check_step(
    cx: &mut Checker<'_>,
    name: &ast::Name,
    items: &[ast::StepItem],
    models: &[TrainModel],
) -> Step {
    cx.push_scope();
    let mut step = Step {
        name: Arc::from(name.text.as_str()),
        updates: Vec::new(),
    };
    let mut has_loss = false;
    for it in items {
        match &it.kind {
            StepItemKind::Let(l) => cx.let_stmt(l),
            StepItemKind::Field(n, e) if n.text == "loss" => {
                if has_loss {
                    let d = cx
                        .err(
                            codes::TRAIN_FIELD,
                            n.span,
                            "`loss` is set twice in this step",
                        )
                        .with_label("set again");
                    cx.error(d);
                }
                has_loss = true;
                check_loss(cx, e);
            }
            StepItemKind::Field(n, _) => {
                let d = cx
                    .err(codes::TRAIN_FIELD, n.span, format!("unknown field `{}` in a `step`", n.text))
                    .with_label("unknown field")
                    .with_note("a step holds `let` bindings, `loss = ...` and `update MODEL with OPTIMIZER`");
                cx.error(d);
            }
            StepItemKind::Update {
                models: names,
                optimizer,
            } => {
                let mut targets = Vec::new();
                for n in names {
                    if let Some(m) = models.iter().find(|m| *m.name == *n.text) {
                        if m.frozen {
                            let d = cx
                                .err(
                                    codes::BAD_TRAIN_VALUE,
                                    n.span,
                                    format!("model `{}` is frozen and cannot be updated", n.text),
                                )
                                .with_label("frozen")
                                .with_help("remove `frozen` from its binding, or do not update it");
                            cx.error(d);
                        } else if step
                            .updates
                            .iter()
                            .flat_map(|(t, _)| t)
                            .chain(&targets)
                            .any(|t| **t == *n.text)
                        {
                            let d = cx
                                .err(
                                    codes::BAD_TRAIN_VALUE,
                                    n.span,
                                    format!(
                                        "model `{}` is updated twice in step `{}`",
                                        n.text, name.text
                                    ),
                                )
                                .with_label("updated again")
                                .with_help("update each model at most once per step");
                            cx.error(d);
                        } else {
                            targets.push(Arc::from(n.text.as_str()));
                        }
                    } else {
                        let mut d = cx
                            .err(
                                codes::UNKNOWN_NAME,
                                n.span,
                                format!("`{}` is not a model of this train block", n.text),
                            )
                            .with_label("unknown model");
                        if let Some(s) =
                            crate::suggest::closest(&n.text, models.iter().map(|m| &*m.name))
                        {
                            d = d.with_help(format!("did you mean `{s}`?"));
                        }
                        cx.error(d);
                    }
                }
                if let Some((opt, _)) = check_typed(cx, optimizer, &optimizers(), "optimizer") {
                    step.updates.push((targets, opt));
                }
            }
        }
    }
    if !has_loss {
        let d = cx
            .err(
                codes::TRAIN_FIELD,
                name.span,
                format!("step `{}` has no `loss`", name.text),
            )
            .with_label("`loss` is required");
        cx.error(d);
    }
    if step.updates.is_empty()
        && items
            .iter()
            .all(|i| !matches!(i.kind, StepItemKind::Update { .. }))
    {
        let d = cx
            .err(
                codes::TRAIN_FIELD,
                name.span,
                format!("step `{}` updates no model", name.text),
            )
            .with_label("add `update MODEL with OPTIMIZER`");
        cx.error(d);
    }
    cx.pop_scope();
    step
}
