//! `std::nn`'s `RNN`, `LSTM`, `GRU` and `BiLSTM` (built on `scan`), one layer and three
//! stacked (`RNN3`, ..., `BiLSTM3`: `num_layers = 3`; `RNN3s`, `LSTM3s`, `GRU3s`, `BiLSTM3s` from
//! non-zero initial states, `run(x, h0[, c0])`, which are parameters whose gradients
//! are compared too; `LSTM3d`, `GRU3d` with `dropout = 1.0` between the layers: the
//! training step's upper layers read zeros, the evaluation none), against PyTorch:
//! from the weights PyTorch initialised (written by `data/recurrent/generate.py`), the
//! sequence and last state of `forward`, and the gradients of `sum(y · r) + sum(h_n · q)`
//! (`+ sum(c_n · qc)` for the stacks of LSTMs)
//! with respect to every parameter (one SGD step with learning rate 1), on the
//! interpreter and Cranelift; and each stack's PyTorch `state_dict` through
//! `dnnc convert` both ways.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dnnc_session::torch::{self, Direction};
use dnnc_session::{BackendKind, PassOptions};
use dnnc_tensor::Tensor;
use dnnc_testing::files::Scratch;
use support::{rel, sgd_step_gradients, with_job};

const PARAMS: [&str; 4] = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"];

/// The parameter names of `kind` (the bidirectional layer has each twice; a stack has
/// those of its upper layers stacked, `weight_ih_stack`, ...).
fn params(kind: &str) -> Vec<String> {
    let mut v: Vec<String> = PARAMS.iter().map(|p| p.to_string()).collect();
    let directions: &[&str] = if layer(kind) == "BiLSTM" {
        &["", "_reverse"]
    } else {
        &[""]
    };
    for d in &directions[1..] {
        v.extend(PARAMS.iter().map(|p| format!("{p}{d}")));
    }
    if layers(kind) > 1 {
        for d in directions {
            v.extend(
                PARAMS
                    .iter()
                    .map(|p| format!("{}{d}", p.replace("_l0", "_stack"))),
            );
        }
    }
    v
}

/// The layer `kind` tests (`LSTM3`, `LSTM3s` and `LSTM3d` are `LSTM`) and its number
/// of stacked layers.
fn layer(kind: &str) -> &str {
    kind.trim_end_matches(['s', 'd']).trim_end_matches('3')
}

/// Whether `kind` has dropout 1 between its layers (`..d`).
fn dropped(kind: &str) -> bool {
    kind.ends_with('d')
}

/// Whether `kind` runs from initial states of its own (`h0`, and `c0` for an LSTM).
fn from_state(kind: &str) -> bool {
    kind.ends_with('s')
}

/// The initial states `kind` learns (parameters `[3, 1, 4]` of the model).
fn state_params(kind: &str) -> &'static [&'static str] {
    match (from_state(kind), layer(kind)) {
        (false, _) => &[],
        (true, "LSTM" | "BiLSTM") => &["h0", "c0"],
        (true, _) => &["h0"],
    }
}

/// Every parameter of the test's model by its name in the weights.
fn all_params(kind: &str) -> Vec<String> {
    params(kind)
        .iter()
        .map(|p| format!("rnn.{p}"))
        .chain(state_params(kind).iter().map(|p| p.to_string()))
        .collect()
}

/// Whether the test compares `c_n` too (the stacks of LSTMs).
fn cell(kind: &str) -> bool {
    layers(kind) > 1 && layer(kind).ends_with("LSTM")
}

fn layers(kind: &str) -> usize {
    if kind.trim_end_matches(['s', 'd']).ends_with('3') {
        3
    } else {
        1
    }
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/recurrent")
}

fn load(kind: &str, name: &str) -> Tensor {
    dnnc_data::npy::load(&data().join(format!("{kind}.{name}.npy"))).unwrap()
}

fn setup(kind: &str) -> (Scratch, PathBuf, PathBuf) {
    let dir = Scratch::new(&format!("recurrent-{kind}"));
    for f in ["x", "r", "q"].iter().chain(cell(kind).then_some(&"qc")) {
        std::fs::copy(
            data().join(format!("{kind}.{f}.npy")),
            dir.path(&format!("{f}.npy")),
        )
        .unwrap();
    }
    let state = if layer(kind).ends_with("LSTM") {
        "(h, c)"
    } else {
        "h"
    };
    // `h_n` is `[layers, B, 4]`: PyTorch's for one layer is written `[B, 4]`, for three
    // batch-first `[B, 3, 4]` (as its `q`); the bidirectional layer's is `[2, B, 4]`,
    // and so is its `q` (stored directions first; read as samples of the batch, then
    // reshaped back).
    let (y_ty, h_ty, h, q) = match layers(kind) {
        _ if kind == "BiLSTM" => ("[B, 5, 8]", "[2, B, 4]", "h", "reshape(q, [2, B, 4])"),
        3 if layer(kind) == "BiLSTM" => ("[B, 5, 8]", "[B, 6, 4]", "transpose(h, [1, 0, 2])", "q"),
        1 => ("[B, 5, 4]", "[B, 4]", "reshape(h, [B, 4])", "q"),
        _ => ("[B, 5, 4]", "[B, 3, 4]", "transpose(h, [1, 0, 2])", "q"),
    };
    let (name, stacked) = (layer(kind), layers(kind));
    let args = match stacked {
        1 => "3, 4".to_string(),
        _ if dropped(kind) => format!("3, 4, num_layers = {stacked}, dropout = 1.0"),
        _ => format!("3, 4, num_layers = {stacked}"),
    };
    // A stack of LSTMs returns its `c_n` too, batch-first, in the loss with `qc`.
    let (c_ty, c_out, c_field, c_loss, c_let) = if cell(kind) {
        (
            format!(", {h_ty}"),
            ", transpose(c, [1, 0, 2])",
            ", qc: npy(\"qc.npy\")",
            " + sum(c * qc)",
            ", c",
        )
    } else {
        (String::new(), "", "", "", "")
    };
    // From states of its own: `run` from them, broadcast over the batch.
    let (state_decls, call) = if from_state(kind) {
        // A state per layer, and per direction of a bidirectional one.
        let states = if name == "BiLSTM" {
            2 * stacked
        } else {
            stacked
        };
        let decls: String = state_params(kind)
            .iter()
            .map(|p| format!("    param {p}: [{states}, 1, 4] = zeros\n"))
            .collect();
        let inits: Vec<String> = state_params(kind)
            .iter()
            .map(|p| format!("broadcast_to({p}, [{states}, B, 4])"))
            .collect();
        (decls, format!("rnn.run(x, {})", inits.join(", ")))
    } else {
        (String::new(), "rnn(x)".to_string())
    };
    let src = format!(
        "use std::nn::{name}
model Net {{
    rnn = {name}({args})
{state_decls}    fn forward(x: [B, 5, 3]) -> ({y_ty}, {h_ty}{c_ty}) {{
        let (y, {state}) = {call}
        (y, {h}{c_out})
    }}
}}
dataset d {{
    train = (x: npy(\"x.npy\"), r: npy(\"r.npy\"), q: npy(\"q.npy\"){c_field})
}}
train Net on d {{
    batch = 2
    let (y, h{c_let}) = model(x)
    loss = sum(y * r) + sum(h * {q}){c_loss}
    optimizer = sgd(lr = 1.0)
    shuffle = false
}}
"
    );
    let path = dir.path("net.dnn");
    std::fs::write(&path, src).unwrap();
    let params: Vec<(String, Tensor)> = all_params(kind)
        .into_iter()
        .map(|p| {
            let t = load(kind, &p);
            (p, t)
        })
        .collect();
    let refs: Vec<(String, &Tensor)> = params.iter().map(|(n, t)| (n.clone(), t)).collect();
    let weights = dir.path("torch.safetensors");
    dnnc_runtime::checkpoint::save(&weights, &refs).unwrap();
    (dir, path, weights)
}

fn check(kind: &str) {
    let (_dir, path, weights) = setup(kind);
    with_job(&path, |job| compare(kind, job, &path, &weights));
}

/// The tensors of a safetensors file by name.
fn tensors(path: &Path) -> BTreeMap<String, Tensor> {
    dnnc_runtime::checkpoint::load(path)
        .unwrap()
        .into_iter()
        .collect()
}

/// A stack's PyTorch `state_dict` (`rnn.weight_ih_l1`, ...) converts to the weights the
/// test built from the stacked arrays, and back to itself, bit for bit.
fn converts_from_and_to_torch(
    kind: &str,
    job: &dnnc_session::Job<'_>,
    path: &Path,
    weights: &Path,
) {
    let state_dict = data().join(format!("{kind}.state_dict.safetensors"));
    let ours = path.with_file_name("from-torch.safetensors");
    torch::convert(job, Direction::FromTorch, &state_dict, &ours).unwrap();
    assert_eq!(tensors(&ours), tensors(weights), "{kind}: --from-torch");
    let back = path.with_file_name("to-torch.safetensors");
    torch::convert(job, Direction::ToTorch, &ours, &back).unwrap();
    assert_eq!(tensors(&back), tensors(&state_dict), "{kind}: --to-torch");
}

fn compare(kind: &str, job: &dnnc_session::Job<'_>, path: &Path, weights: &Path) {
    if layers(kind) > 1 && !from_state(kind) && !dropped(kind) {
        converts_from_and_to_torch(kind, job, path, weights);
    }
    let params: Vec<(String, Vec<f32>)> = all_params(kind)
        .into_iter()
        .map(|p| {
            let t = load(kind, &p).to_f32_vec();
            (p, t)
        })
        .collect();
    for backend in [BackendKind::Interp, BackendKind::Cranelift] {
        // Forward: the sequence and the last state.
        let out = path.with_file_name(format!("y-{backend:?}.npy"));
        let input = data().join(format!("{kind}.x.npy"));
        dnnc_session::predict(job, weights, &input, &out, backend, &PassOptions::default())
            .unwrap();
        let y = dnnc_data::npy::load(&out.with_file_name(format!("y-{backend:?}.0.npy"))).unwrap();
        let h = dnnc_data::npy::load(&out.with_file_name(format!("y-{backend:?}.1.npy"))).unwrap();
        let ey = rel(&y.to_f32_vec(), &load(kind, "y").to_f32_vec());
        let eh = rel(&h.to_f32_vec(), &load(kind, "h_n").to_f32_vec());
        assert!(
            ey < 1e-5 && eh < 1e-5,
            "{kind} {backend:?}: y {ey:e}, h_n {eh:e}"
        );
        if cell(kind) {
            let c =
                dnnc_data::npy::load(&out.with_file_name(format!("y-{backend:?}.2.npy"))).unwrap();
            let ec = rel(&c.to_f32_vec(), &load(kind, "c_n").to_f32_vec());
            assert!(ec < 1e-5, "{kind} {backend:?}: c_n {ec:e}");
        }
        // Gradients: one SGD step with lr = 1 from PyTorch's weights.
        let trained = path.with_file_name(format!("step-{backend:?}.safetensors"));
        for (name, grad) in sgd_step_gradients(job, weights, &trained, backend, &params) {
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

#[test]
fn bidirectional_lstm_matches_pytorch() {
    check("BiLSTM");
}

#[test]
fn stacked_rnn_matches_pytorch() {
    check("RNN3");
}

#[test]
fn stacked_lstm_matches_pytorch() {
    check("LSTM3");
}

#[test]
fn stacked_gru_matches_pytorch() {
    check("GRU3");
}

#[test]
fn stacked_bidirectional_lstm_matches_pytorch() {
    check("BiLSTM3");
}

#[test]
fn stacked_rnn_from_a_state_matches_pytorch() {
    check("RNN3s");
}

#[test]
fn stacked_lstm_from_a_state_matches_pytorch() {
    check("LSTM3s");
}

#[test]
fn stacked_gru_from_a_state_matches_pytorch() {
    check("GRU3s");
}

#[test]
fn stacked_lstm_with_dropout_matches_pytorch() {
    check("LSTM3d");
}

#[test]
fn stacked_gru_with_dropout_matches_pytorch() {
    check("GRU3d");
}

#[test]
fn stacked_bidirectional_lstm_from_a_state_matches_pytorch() {
    check("BiLSTM3s");
}
