//! `std::nn`'s `MultiheadAttention` (causal, and with a key padding mask) and
//! `TransformerEncoderLayer` (post-norm ReLU; pre-norm GELU, causal) against PyTorch:
//! from PyTorch's initial weights (written by `data/attention/generate.py`), the
//! outputs and the gradients of `sum(y · r)` for every parameter (one SGD step with
//! learning rate 1), on the interpreter and Cranelift.

mod support;

use std::path::{Path, PathBuf};

use dnnc_session::{BackendKind, PassOptions};
use dnnc_tensor::Tensor;
use dnnc_testing::files::Scratch;
use support::{rel, sgd_step_gradients, with_job};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/attention")
}

fn load(kind: &str, name: &str) -> Tensor {
    dnnc_data::npy::load(&data().join(format!("{kind}.{name}.npy"))).unwrap()
}

/// The parameter names of a case (`net.…`), from its files.
fn params(kind: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data())
        .unwrap()
        .filter_map(|e| {
            let f = e.unwrap().file_name().into_string().unwrap();
            let rest = f.strip_prefix(&format!("{kind}.net."))?;
            Some(format!("net.{}", rest.strip_suffix(".npy")?))
        })
        .collect();
    names.sort();
    names
}

fn check(kind: &str, layer: &str, call: &str) {
    let dir = Scratch::new(&format!("attention-{kind}"));
    for f in ["x", "r", "pad"] {
        std::fs::copy(
            data().join(format!("{kind}.{f}.npy")),
            dir.path(&format!("{f}.npy")),
        )
        .unwrap();
    }
    // The key-padding case trains through a method that passes the mask.
    let padded = kind == "MHA_pad";
    let method = if padded {
        "    fn padded(x: [B, 5, 6], pad: bool[B, 5]) -> [B, 5, 6] { net.forward_masked(x, pad) }\n"
    } else {
        ""
    };
    let src = format!(
        "use std::nn::{{MultiheadAttention, TransformerEncoderLayer}}
model M {{
    net = {layer}
    fn forward(x: [B, 5, 6]) -> [B, 5, 6] {{ {call} }}
{method}}}
dataset d {{
    train = (x: npy(\"x.npy\"), r: npy(\"r.npy\"), pad: npy(\"pad.npy\"))
}}
train M on d {{
    batch = 2
    let y = {train_call}
    loss = sum(y * r)
    optimizer = sgd(lr = 1.0)
    shuffle = false
}}
",
        train_call = if padded {
            "model.padded(x, pad > 0.5)"
        } else {
            "model(x)"
        },
    );
    let path = dir.path("m.dnn");
    std::fs::write(&path, src).unwrap();
    let names = params(kind);
    let tensors: Vec<(String, Tensor)> = names.iter().map(|n| (n.clone(), load(kind, n))).collect();
    let refs: Vec<(String, &Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    let weights = dir.path("torch.safetensors");
    dnnc_runtime::checkpoint::save(&weights, &refs).unwrap();
    let initial: Vec<(String, Vec<f32>)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.to_f32_vec()))
        .collect();
    with_job(&path, |job| {
        for backend in [BackendKind::Interp, BackendKind::Cranelift] {
            compare(kind, job, dir.dir(), &weights, &initial, backend, !padded);
        }
    });
}

fn compare(
    kind: &str,
    job: &dnnc_session::Job<'_>,
    dir: &Path,
    weights: &Path,
    initial: &[(String, Vec<f32>)],
    backend: BackendKind,
    forward_output: bool,
) {
    if forward_output {
        let out = dir.join(format!("y-{backend:?}.npy"));
        dnnc_session::predict(
            job,
            weights,
            &dir.join("x.npy"),
            &out,
            backend,
            &PassOptions::default(),
        )
        .unwrap();
        let e = rel(
            &dnnc_data::npy::load(&out).unwrap().to_f32_vec(),
            &load(kind, "y").to_f32_vec(),
        );
        assert!(e < 1e-5, "{kind} {backend:?}: output off by {e:e}");
    }
    let trained = dir.join(format!("step-{backend:?}.safetensors"));
    for (name, grad) in sgd_step_gradients(job, weights, &trained, backend, initial) {
        let e = rel(&grad, &load(kind, &format!("grad.{name}")).to_f32_vec());
        assert!(
            e < 1e-4,
            "{kind} {backend:?}: gradient of {name} off by {e:e}"
        );
    }
}

#[test]
fn causal_attention_matches_pytorch() {
    check(
        "MHA_causal",
        "MultiheadAttention(2, 3)",
        "net(x, causal = true)",
    );
}

#[test]
fn attention_with_key_padding_matches_pytorch() {
    check("MHA_pad", "MultiheadAttention(2, 3)", "net(x)");
}

#[test]
fn post_norm_encoder_layer_matches_pytorch() {
    check("TEL_post", "TransformerEncoderLayer(2, 3, 8)", "net(x)");
}

#[test]
fn pre_norm_causal_gelu_encoder_layer_matches_pytorch() {
    check(
        "TEL_pre",
        "TransformerEncoderLayer(2, 3, 8, norm_first = true, use_gelu = true)",
        "net(x, causal = true)",
    );
}

#[test]
fn sinusoidal_positions_follow_vaswani() {
    let dir = Scratch::new("positions");
    dnnc_data::npy::save_f32(&dir.path("x.npy"), &[1, 3, 4], &[0.0; 12]).unwrap();
    let src = "use std::nn::sinusoidal_positions
model P {
    param w: [1] = zeros
    fn forward(x: [B, 3, 4]) -> [B, 3, 4] { x * w + sinusoidal_positions(3, 4) }
}
dataset d { train = (x: npy(\"x.npy\")) }
train P on d {
    batch = 1
    loss = sum(model(x))
    optimizer = sgd(lr = 0.1)
}
";
    let path = dir.path("p.dnn");
    std::fs::write(&path, src).unwrap();
    let weights = dir.path("w.safetensors");
    let w = Tensor::f32(vec![1], vec![0.0]).unwrap();
    dnnc_runtime::checkpoint::save(&weights, &[("w".into(), &w)]).unwrap();
    let out = dir.path("y.npy");
    with_job(&path, |job| {
        let input = dir.path("x.npy");
        let passes = PassOptions::default();
        dnnc_session::predict(job, &weights, &input, &out, BackendKind::Cranelift, &passes)
    })
    .unwrap();
    let got = dnnc_data::npy::load(&out).unwrap().to_f32_vec();
    // PE(t, 2i) = sin(t / 10000^(2i/d)), PE(t, 2i+1) = cos(t / 10000^(2i/d)).
    let mut want = Vec::new();
    for t in 0..3 {
        for j in 0..4 {
            let a = t as f64 / 10000f64.powf((j - j % 2) as f64 / 4.0);
            want.push(if j % 2 == 0 { a.sin() } else { a.cos() } as f32);
        }
    }
    assert!(rel(&got, &want) < 1e-6, "{got:?} vs {want:?}");
}
