//! The `multistep` and `reduce_on_plateau` schedules: the learning rate of every epoch,
//! read from the run's JSONL log, and its effect on the weights.

use std::path::Path;

use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_session::{BackendKind, TrainOptions};
use dnnc_testing::files::Scratch;

/// A linear model on two rows with one batch per epoch, so an epoch is one step.
fn setup(tag: &str, optimizer: &str, schedule: &str, epochs: usize) -> Scratch {
    let dir = Scratch::new(&format!("lrs-{tag}"));
    std::fs::write(dir.path("tiny.csv"), "x1,x2,y\n1,2,3\n2,0,1\n").unwrap();
    let src = format!(
        "use std::losses::mse
model Lin {{
    param w: [2, 1] = constant(0.5)
    param b: [1] = zeros
    fn forward(x: [B, 2]) -> [B, 1] {{ x @ w + b }}
}}
dataset tiny {{
    train = (x: csv(\"tiny.csv\")[:, 0:2], y: csv(\"tiny.csv\")[:, 2:3])
}}
train Lin on tiny {{
    batch = 2
    epochs = {epochs}
    loss = mse(model(x), y)
    optimizer = {optimizer}
    schedule = {schedule}
    shuffle = false
}}
"
    );
    std::fs::write(dir.path("lin.dnn"), src).unwrap();
    dir
}

/// Trains and returns each epoch's logged `lr` and `train_loss`, and the weights.
#[allow(clippy::type_complexity)]
fn train(dir: &Path) -> (Vec<f64>, Vec<f64>, Vec<(String, Vec<f32>)>) {
    let db = RootDatabase::new();
    let file = db.open(&dir.join("lin.dnn")).unwrap();
    let diags = file_diagnostics(&db, file);
    assert!(diags.is_empty(), "{diags:#?}");
    let job = dnnc_session::job(&db, file).unwrap();
    let out = dir.join("w.safetensors");
    let log = dir.join("log.jsonl");
    let opts = TrainOptions {
        log: Some(log.clone()),
        ..TrainOptions::quiet(BackendKind::Interp, out.clone())
    };
    dnnc_session::train(&job, &opts).unwrap();
    let mut lrs = Vec::new();
    let mut losses = Vec::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        lrs.push(v["lr"].as_f64().expect("`lr` in the log"));
        losses.push(v["train_loss"].as_f64().unwrap());
    }
    let weights = dnnc_runtime::checkpoint::load(&out)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.to_f32_vec()))
        .collect();
    (lrs, losses, weights)
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-6 * y.abs().max(1e-12))
}

#[test]
fn multistep_multiplies_by_gamma_at_each_milestone() {
    let dir = setup(
        "multistep",
        "sgd(lr = 0.1)",
        "multistep(milestones = [3, 1], gamma = 0.5)",
        5,
    );
    let (lrs, _, _) = train(dir.dir());
    // Milestones in any order (PyTorch counts them); epochs are 0-based.
    assert!(close(&lrs, &[0.1, 0.05, 0.05, 0.025, 0.025]), "{lrs:?}");
    // One milestone, written positionally and as a single integer.
    let dir = setup("multistep1", "sgd(lr = 0.1)", "multistep(2)", 4);
    let (lrs, _, _) = train(dir.dir());
    assert!(close(&lrs, &[0.1, 0.1, 0.01, 0.01]), "{lrs:?}");
}

#[test]
fn a_constant_schedule_logs_its_rate() {
    let dir = setup("constant", "sgd(lr = 0.1)", "constant", 2);
    let (lrs, _, _) = train(dir.dir());
    assert!(close(&lrs, &[0.1, 0.1]), "{lrs:?}");
}

#[test]
fn reduce_on_plateau_cuts_after_patience_bad_epochs() {
    // The training loss falls every epoch, so watched with `maximize = true` it never
    // improves after the first epoch: with patience 1 the rate is cut after every
    // second bad epoch (epochs 3 and 5, 1-based), down to `min_lr`.
    let dir = setup(
        "plateau",
        "sgd(lr = 0.01)",
        "reduce_on_plateau(metric = \"train_loss\", patience = 1, factor = 0.5, min_lr = 0.003, maximize = true)",
        8,
    );
    let (lrs, losses, _) = train(dir.dir());
    assert!(
        losses.windows(2).all(|w| w[1] < w[0]),
        "the loss should fall: {losses:?}"
    );
    assert!(
        close(&lrs, &[0.01, 0.01, 0.01, 0.005, 0.005, 0.003, 0.003, 0.003]),
        "{lrs:?}"
    );
}

#[test]
fn reduce_on_plateau_scales_the_update() {
    // Patience 0: a cut after the second epoch. The first step is the same as without
    // a schedule; the weights after three steps match a hand-run of SGD with rates
    // 0.1, 0.1, 0.01.
    let dir = setup(
        "plateau0",
        "sgd(lr = 0.1)",
        "reduce_on_plateau(\"train_loss\", patience = 0, maximize = true)",
        3,
    );
    let (lrs, _, w) = train(dir.dir());
    assert!(close(&lrs, &[0.1, 0.1, 0.01]), "{lrs:?}");
    // SGD on mse over X = [[1, 2], [2, 0]], Y = [3, 1] by hand.
    let (mut w0, mut w1, mut b) = (0.5f64, 0.5f64, 0.0f64);
    for lr in [0.1, 0.1, 0.01] {
        let e0 = w0 + 2.0 * w1 + b - 3.0;
        let e1 = 2.0 * w0 + b - 1.0;
        // d/dpred of mean((pred - y)^2) over 2 rows = (pred - y).
        let gw0 = e0 + 2.0 * e1;
        let gw1 = 2.0 * e0;
        let gb = e0 + e1;
        w0 -= lr * gw0;
        w1 -= lr * gw1;
        b -= lr * gb;
    }
    assert_eq!(w[0].0, "b");
    assert!((w[0].1[0] as f64 - b).abs() < 1e-5, "{w:?} vs {b}");
    assert_eq!(w[1].0, "w");
    assert!((w[1].1[0] as f64 - w0).abs() < 1e-5, "{w:?} vs {w0}");
    assert!((w[1].1[1] as f64 - w1).abs() < 1e-5, "{w:?} vs {w1}");
}

#[test]
fn reduce_on_plateau_rejects_a_metric_the_run_does_not_log() {
    let dir = setup(
        "plateau_bad",
        "sgd(lr = 0.1)",
        "reduce_on_plateau(metric = \"train_accuracy\")",
        1,
    );
    let db = RootDatabase::new();
    let file = db.open(&dir.path("lin.dnn")).unwrap();
    // A check-time diagnostic on the schedule, not a run-time error.
    let diags = file_diagnostics(&db, file);
    assert!(
        diags.iter().any(|d| d.code.0 == "E0404"
            && d.message
                .contains("`train_accuracy`, which this run does not log")),
        "{diags:?}"
    );
}

#[test]
fn reduce_on_plateau_maximizes_accuracies_unless_told() {
    let dir = Scratch::new("lrs-direction");
    std::fs::write(dir.path("c.csv"), "x1,x2,y\n1,2,0\n2,0,1\n").unwrap();
    let direction = |schedule: &str| {
        let src = format!(
            "use std::nn::Dense
use std::losses::cross_entropy
model Cls {{
    fc = Dense(2, 2)
    fn forward(x: [B, 2]) -> [B, 2] {{ fc(x) }}
}}
dataset tiny {{
    train = (x: csv(\"c.csv\")[:, 0:2], y: cast(csv(\"c.csv\")[:, 2], i32))
}}
train Cls on tiny {{
    let logits = model(x)
    loss = cross_entropy(logits, y)
    optimizer = sgd(lr = 0.1)
    metrics = [accuracy(logits, y)]
    schedule = {schedule}
}}
"
        );
        std::fs::write(dir.path("cls.dnn"), src).unwrap();
        let db = RootDatabase::new();
        let file = db.open(&dir.path("cls.dnn")).unwrap();
        let diags = file_diagnostics(&db, file);
        assert!(diags.is_empty(), "{diags:#?}");
        match dnnc_session::job(&db, file).unwrap().cfg.schedule {
            dnnc_passes::optimizer::Schedule::ReduceOnPlateau { maximize, .. } => maximize,
            other => panic!("{other:?}"),
        }
    };
    assert!(direction("reduce_on_plateau(\"train_accuracy\")"));
    assert!(!direction("reduce_on_plateau(\"train_loss\")"));
    assert!(!direction(
        "reduce_on_plateau(\"train_accuracy\", maximize = false)"
    ));
    assert!(!direction(
        "reduce_on_plateau(\"train_accuracy\", 10, 0.1, 0.0, false)"
    ));
    assert!(direction(
        "reduce_on_plateau(\"train_loss\", maximize = true)"
    ));
}

#[test]
fn cosine_with_warmup_and_decay_steps_follows_nanogpt() {
    // One step per epoch: a linear warm-up over 2 steps, a half cosine from 0.1 to
    // 0.01 over steps 2..5, then 0.01 (nanoGPT's `get_lr`).
    let dir = setup(
        "cosine_steps",
        "sgd(lr = 0.1)",
        "cosine(warmup_steps = 2, decay_steps = 5, min_lr = 0.01)",
        8,
    );
    let (lrs, _, _) = train(dir.dir());
    let cos = |t: f64| 0.01 + 0.09 * (1.0 + (std::f64::consts::PI * t / 3.0).cos()) / 2.0;
    let want = [0.05, 0.1, cos(0.0), cos(1.0), cos(2.0), 0.01, 0.01, 0.01];
    assert!(close(&lrs, &want), "{lrs:?} vs {want:?}");
}
