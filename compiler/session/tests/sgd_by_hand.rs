//! One SGD step of a tiny linear model, checked against values computed by hand, and
//! the same step with momentum and Adam against their textbook formulas.

use std::path::Path;

use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_session::{BackendKind, TrainOptions};
use dnnc_testing::files::Scratch;

fn setup(optimizer: &str) -> Scratch {
    let dir = Scratch::new("sgd");
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
    loss = mse(model(x), y)
    optimizer = {optimizer}
    shuffle = false
}}
"
    );
    std::fs::write(dir.path("lin.dnn"), src).unwrap();
    dir
}

fn train_steps(dir: &Path, steps: usize) -> Vec<(String, Vec<f32>)> {
    let db = RootDatabase::new();
    let file = db.open(&dir.join("lin.dnn")).unwrap();
    assert!(
        file_diagnostics(&db, file).is_empty(),
        "{:#?}",
        file_diagnostics(&db, file)
    );
    let job = dnnc_session::job(&db, file).unwrap();
    let out = dir.join("w.safetensors");
    let opts = TrainOptions {
        epochs: Some(steps),
        steps: Some(steps),
        plot: true,
        ..TrainOptions::quiet(BackendKind::Interp, out.clone())
    };
    let summary = dnnc_session::train(&job, &opts).unwrap();
    assert_eq!(summary.steps, steps);
    dnnc_runtime::checkpoint::load(&out)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.to_f32_vec()))
        .collect()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

#[test]
fn one_sgd_step_matches_hand_computation() {
    // pred = [1.5, 1.0], err = [-1.5, 0], dL/dpred = 2*err/2 = [-1.5, 0]
    // dL/dw = X^T g = [-1.5, -3.0], dL/db = -1.5; w -= 0.1 * grad.
    let dir = setup("sgd(lr = 0.1)");
    let w = train_steps(dir.dir(), 1);
    assert_eq!(w[0].0, "b");
    assert!(close(&w[0].1, &[0.15]), "{w:?}");
    assert_eq!(w[1].0, "w");
    assert!(close(&w[1].1, &[0.65, 0.8]), "{w:?}");
}

#[test]
fn momentum_and_adam_follow_their_formulas() {
    // Momentum: the first step equals plain SGD (buffer starts at zero).
    let dir = setup("sgd(lr = 0.1, momentum = 0.9)");
    let w = train_steps(dir.dir(), 1);
    assert!(close(&w[1].1, &[0.65, 0.8]), "{w:?}");
    // Adam's first step moves each weight by lr * sign(grad) (m̂/√v̂ = ±1).
    let dir = setup("adam(lr = 0.01)");
    let w = train_steps(dir.dir(), 1);
    assert!(close(&w[0].1, &[0.01]), "{w:?}");
    assert!(close(&w[1].1, &[0.51, 0.51]), "{w:?}");
}

#[test]
fn clipping_scales_the_global_gradient_norm() {
    // The gradients above, [-1.5, -3.0] and -1.5, have global norm √13.5 ≈ 3.674: with
    // `clip_norm = 1` each is scaled by 1 / (√13.5 + 1e-6) before the SGD step.
    let dir = setup("sgd(lr = 0.1, clip_norm = 1.0)");
    let w = train_steps(dir.dir(), 1);
    let k = 1.0 / (13.5f32.sqrt() + 1e-6);
    assert!(close(&w[0].1, &[0.1 * 1.5 * k]), "{w:?}");
    assert!(
        close(&w[1].1, &[0.5 + 0.1 * 1.5 * k, 0.5 + 0.1 * 3.0 * k]),
        "{w:?}"
    );
    // A bound above the norm changes nothing.
    let dir = setup("sgd(lr = 0.1, clip_norm = 100.0)");
    let w = train_steps(dir.dir(), 1);
    assert!(close(&w[0].1, &[0.15]), "{w:?}");
    assert!(close(&w[1].1, &[0.65, 0.8]), "{w:?}");
}
