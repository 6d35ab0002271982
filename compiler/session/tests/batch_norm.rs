//! Batch normalisation's buffers, checked by hand: one training step moves the running
//! statistics by PyTorch's rule (both backends), evaluation normalises with the
//! running statistics read back from the checkpoint, and a frozen layer keeps them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_session::{BackendKind, PassOptions, TrainOptions};
use dnnc_testing::files::Scratch;

/// Three samples of two features (targets in the third column).
const ROWS: [[f32; 3]; 3] = [[1.0, 2.0, 1.0], [3.0, 6.0, 0.0], [5.0, 4.0, 2.0]];

fn setup(tag: &str, model: &str) -> Scratch {
    let dir = Scratch::new(&format!("bn-{tag}"));
    let mut csv = String::from("x1,x2,y\n");
    for r in ROWS {
        csv += &format!("{},{},{}\n", r[0], r[1], r[2]);
    }
    std::fs::write(dir.path("d.csv"), csv).unwrap();
    let src = format!(
        "use std::nn::{{BatchNorm1d, BatchNorm2d, Dense}}
use std::losses::mse
{model}
dataset tiny {{
    train = (x: csv(\"d.csv\")[:, 0:2], y: csv(\"d.csv\")[:, 2:3])
    test  = (x: csv(\"d.csv\")[:, 0:2], y: csv(\"d.csv\")[:, 2:3])
}}
train Net on tiny {{
    batch = 3
    loss = mse(model(x), y)
    optimizer = sgd(lr = 0.1)
    shuffle = false
}}
"
    );
    std::fs::write(dir.path("bn.dnn"), src).unwrap();
    dir
}

const BN1D: &str = "model Net {
    bn = BatchNorm1d(2)
    fc = Dense(2, 1)
    fn forward(x: [B, 2]) -> [B, 1] { x |> bn |> fc }
}";

fn options(backend: BackendKind, steps: usize, out: PathBuf) -> TrainOptions {
    TrainOptions {
        epochs: Some(steps),
        steps: Some(steps),
        ..TrainOptions::quiet(backend, out)
    }
}

fn train(dir: &Path, backend: BackendKind, steps: usize) -> HashMap<String, Vec<f32>> {
    let db = RootDatabase::new();
    let file = db.open(&dir.join("bn.dnn")).unwrap();
    let diags = file_diagnostics(&db, file);
    assert!(diags.is_empty(), "{diags:#?}");
    let job = dnnc_session::job(&db, file).unwrap();
    let out = dir.join("w.safetensors");
    dnnc_session::train(&job, &options(backend, steps, out.clone())).unwrap();
    load(&out)
}

fn load(path: &Path) -> HashMap<String, Vec<f32>> {
    dnnc_runtime::checkpoint::load(path)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.to_f32_vec()))
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{what}: got {got:?}, want {want:?}");
    }
}

#[test]
fn one_step_moves_the_running_statistics_on_both_backends() {
    // Feature 1: [1, 3, 5], mean 3, unbiased variance 4; feature 2: [2, 6, 4], mean 4,
    // unbiased variance 4. running = 0.9 * (0, 1) + 0.1 * batch.
    for backend in [BackendKind::Interp, BackendKind::Cranelift] {
        let dir = setup(&format!("step-{backend:?}"), BN1D);
        let w = train(dir.dir(), backend, 1);
        assert_close("running_mean", &w["bn.running_mean"], &[0.3, 0.4]);
        assert_close("running_var", &w["bn.running_var"], &[1.3, 1.3]);
        // The buffers are not trained: only gamma and beta (and the dense layer) move.
        assert!(w["bn.gamma"] != vec![1.0, 1.0], "gamma was not trained");
    }
}

#[test]
fn batch_norm_2d_averages_over_batch_height_and_width() {
    let model = "model Net {
    bn = BatchNorm2d(1, momentum = 0.5)
    fn forward(x: [B, 2]) -> [B, 1] {
        sum(reshape(x, [B, 1, 1, 2]) |> bn, axis = [2, 3])
    }
}";
    let dir = setup("2d", model);
    let w = train(dir.dir(), BackendKind::Cranelift, 1);
    let v: Vec<f32> = ROWS.iter().flat_map(|r| [r[0], r[1]]).collect();
    let mean = v.iter().sum::<f32>() / 6.0;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / 5.0;
    assert_close("running_mean", &w["bn.running_mean"], &[0.5 * mean]);
    assert_close("running_var", &w["bn.running_var"], &[0.5 + 0.5 * var]);
}

#[test]
fn evaluation_normalises_with_the_saved_running_statistics() {
    let dir = setup("eval", BN1D);
    let w = train(dir.dir(), BackendKind::Cranelift, 1);
    let db = RootDatabase::new();
    let file = db.open(&dir.path("bn.dnn")).unwrap();
    let job = dnnc_session::job(&db, file).unwrap();
    let expected = |w: &HashMap<String, Vec<f32>>| {
        let mut loss = 0.0;
        for r in ROWS {
            let mut pred = w["fc.b"][0];
            for f in 0..2 {
                let n = (r[f] - w["bn.running_mean"][f]) / (w["bn.running_var"][f] + 1e-5).sqrt()
                    * w["bn.gamma"][f]
                    + w["bn.beta"][f];
                pred += n * w["fc.W"][f];
            }
            loss += (pred - r[2]) * (pred - r[2]);
        }
        (loss / 3.0) as f64
    };
    let eval = |path: &Path| {
        let m = dnnc_session::eval(
            &job,
            path,
            BackendKind::Cranelift,
            None,
            &PassOptions::default(),
        )
        .unwrap();
        m.iter().find(|(n, _)| n == "test_loss").unwrap().1
    };
    let saved = dir.path("w.safetensors");
    let got = eval(&saved);
    assert!(
        (got - expected(&w)).abs() < 1e-4,
        "{got} vs {}",
        expected(&w)
    );

    // Other statistics in the file give another loss: evaluation reads them.
    let mut other = w.clone();
    other.insert("bn.running_var".into(), vec![4.0, 0.25]);
    other.insert("bn.running_mean".into(), vec![-1.0, 2.0]);
    let tensors: Vec<(String, dnnc_runtime::Tensor)> = other
        .iter()
        .map(|(n, v)| {
            let shape = if n == "fc.W" {
                vec![2, 1]
            } else {
                vec![v.len()]
            };
            (
                n.clone(),
                dnnc_runtime::Tensor::f32(shape, v.clone()).unwrap(),
            )
        })
        .collect();
    let refs: Vec<(String, &dnnc_runtime::Tensor)> =
        tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    let edited = dir.path("edited.safetensors");
    dnnc_runtime::checkpoint::save(&edited, &refs).unwrap();
    let got = eval(&edited);
    assert!(
        (got - expected(&other)).abs() < 1e-4,
        "{got} vs {}",
        expected(&other)
    );
    assert!((got - expected(&w)).abs() > 1e-3);
}

#[test]
fn a_frozen_layer_keeps_its_running_statistics() {
    let model = "model Net {
    bn = BatchNorm1d(2) frozen
    fc = Dense(2, 1)
    fn forward(x: [B, 2]) -> [B, 1] { x |> bn |> fc }
}";
    let dir = setup("frozen", model);
    let w = train(dir.dir(), BackendKind::Cranelift, 2);
    assert_close("running_mean", &w["bn.running_mean"], &[0.0, 0.0]);
    assert_close("running_var", &w["bn.running_var"], &[1.0, 1.0]);
    assert_close("gamma", &w["bn.gamma"], &[1.0, 1.0]);
}

#[test]
fn a_frozen_layer_normalises_with_its_running_statistics_while_training() {
    // `training` is false inside a frozen layer: with running statistics (0, 1), the
    // batch norm passes `x / sqrt(1 + eps)` on, and one SGD step of `w` (0.5 each) and
    // `b` (0) follows from that, not from the batch-normalised features.
    let model = "model Net {
    bn = BatchNorm1d(2) frozen
    param w: [2, 1] = constant(0.5)
    param b: [1] = zeros
    fn forward(x: [B, 2]) -> [B, 1] { (x |> bn) @ w + b }
}";
    for backend in [BackendKind::Interp, BackendKind::Cranelift] {
        let dir = setup(&format!("frozen-eval-{backend:?}"), model);
        let w = train(dir.dir(), backend, 1);
        let s = 1.0 / (1.0f32 + 1e-5).sqrt();
        let (mut gw, mut gb) = ([0.0f32; 2], 0.0f32);
        for r in ROWS {
            let err = 0.5 * s * (r[0] + r[1]) - r[2];
            gw[0] += 2.0 / 3.0 * err * s * r[0];
            gw[1] += 2.0 / 3.0 * err * s * r[1];
            gb += 2.0 / 3.0 * err;
        }
        assert_close("w", &w["w"], &[0.5 - 0.1 * gw[0], 0.5 - 0.1 * gw[1]]);
        assert_close("b", &w["b"], &[-0.1 * gb]);
        assert_close("running_mean", &w["bn.running_mean"], &[0.0, 0.0]);
    }
}
