//! `std::nn`'s `RNN`, `LSTM` and `GRU` (built on `scan`) against PyTorch: from the
//! weights PyTorch initialised (written by `data/recurrent/generate.py`), the sequence
//! and last state of `forward`, and the gradients of `sum(y · r) + sum(h_n · q)` with
//! respect to every parameter (one SGD step with learning rate 1), on the interpreter
//! and Cranelift.

use std::path::{Path, PathBuf};

use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_session::{BackendKind, PassOptions, TrainOptions};
use dnnc_tensor::Tensor;

const PARAMS: [&str; 4] = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"];

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/recurrent")
}

fn load(kind: &str, name: &str) -> Tensor {
    dnnc_data::npy::load(&data().join(format!("{kind}.{name}.npy"))).unwrap()
}

/// The largest difference relative to the largest magnitude of `want`.
fn rel(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let top = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
        / top
}

fn setup(kind: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("dnnc-recurrent-{}-{kind}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["x", "r", "q"] {
        std::fs::copy(
            data().join(format!("{kind}.{f}.npy")),
            dir.join(format!("{f}.npy")),
        )
        .unwrap();
    }
    let (state, h) = if kind == "LSTM" {
        ("(h, c)", "h")
    } else {
        ("h", "h")
    };
    let src = format!(
        "use std::nn::{kind}
model Net {{
    rnn = {kind}(3, 4)
    fn forward(x: [B, 5, 3]) -> ([B, 5, 4], [B, 4]) {{
        let (y, {state}) = rnn(x)
        (y, {h})
    }}
}}
dataset d {{
    train = (x: npy(\"x.npy\"), r: npy(\"r.npy\"), q: npy(\"q.npy\"))
}}
train Net on d {{
    batch = 2
    let (y, h) = model(x)
    loss = sum(y * r) + sum(h * q)
    optimizer = sgd(lr = 1.0)
    shuffle = false
}}
"
    );
    let path = dir.join("net.dnn");
    std::fs::write(&path, src).unwrap();
    let params: Vec<(String, Tensor)> = PARAMS
        .iter()
        .map(|p| (format!("rnn.{p}"), load(kind, &format!("rnn.{p}"))))
        .collect();
    let refs: Vec<(String, &Tensor)> = params.iter().map(|(n, t)| (n.clone(), t)).collect();
    let weights = dir.join("torch.safetensors");
    dnnc_runtime::checkpoint::save(&weights, &refs).unwrap();
    (path, weights)
}

fn check(kind: &str) {
    let (path, weights) = setup(kind);
    let db = RootDatabase::new();
    let file = db.open(&path).unwrap();
    let diags = file_diagnostics(&db, file);
    assert!(diags.is_empty(), "{diags:#?}");
    let job = dnnc_session::job(&db, file).unwrap();
    for backend in [BackendKind::Interp, BackendKind::Cranelift] {
        // Forward: the sequence and the last state.
        let out = path.with_file_name(format!("y-{backend:?}.npy"));
        let input = data().join(format!("{kind}.x.npy"));
        dnnc_session::predict(
            &job,
            &weights,
            &input,
            &out,
            backend,
            &PassOptions::default(),
        )
        .unwrap();
        let y = dnnc_data::npy::load(&out.with_file_name(format!("y-{backend:?}.0.npy"))).unwrap();
        let h = dnnc_data::npy::load(&out.with_file_name(format!("y-{backend:?}.1.npy"))).unwrap();
        let ey = rel(&y.to_f32_vec(), &load(kind, "y").to_f32_vec());
        let eh = rel(&h.to_f32_vec(), &load(kind, "h_n").to_f32_vec());
        assert!(
            ey < 1e-5 && eh < 1e-5,
            "{kind} {backend:?}: y {ey:e}, h_n {eh:e}"
        );
        // Gradients: one SGD step with lr = 1 from PyTorch's weights.
        let trained = path.with_file_name(format!("step-{backend:?}.safetensors"));
        let opts = TrainOptions {
            epochs: Some(1),
            steps: Some(1),
            init: Some(weights.clone()),
            ..TrainOptions::quiet(backend, trained.clone())
        };
        dnnc_session::train(&job, &opts).unwrap();
        let after = dnnc_runtime::checkpoint::load(&trained).unwrap();
        for p in PARAMS {
            let name = format!("rnn.{p}");
            let w1 = &after.iter().find(|(n, _)| *n == name).unwrap().1;
            let w0 = load(kind, &name).to_f32_vec();
            let grad: Vec<f32> = w0.iter().zip(w1.to_f32_vec()).map(|(a, b)| a - b).collect();
            let e = rel(&grad, &load(kind, &format!("grad.{name}")).to_f32_vec());
            assert!(
                e < 1e-4,
                "{kind} {backend:?}: gradient of {name} off by {e:e}"
            );
        }
    }
}

#[test]
fn rnn_matches_pytorch() {
    check("RNN");
}

#[test]
fn lstm_matches_pytorch() {
    check("LSTM");
}

#[test]
fn gru_matches_pytorch() {
    check("GRU");
}
