//! Gradual magnitude pruning (`prune = magnitude(...)`): the checkpoint reaches the
//! target sparsity per parameter (or over all of them), pruned weights stay zero
//! through later updates, biases are not pruned, and the interpreter and Cranelift
//! prune the same weights.

mod support;

use std::path::Path;

use dnnc_session::{BackendKind, TrainOptions};
use dnnc_testing::files::Scratch;
use support::with_job;

fn setup(tag: &str, prune: &str) -> Scratch {
    let dir = Scratch::new(&format!("prune-{tag}"));
    let mut csv = String::from("a,b,c,d,e,f,g,h,y\n");
    let mut s = 3u64;
    for i in 0..96 {
        for _ in 0..8 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            csv.push_str(&format!(
                "{:.6},",
                (s >> 40) as f64 / (1u64 << 24) as f64 - 0.5
            ));
        }
        csv.push_str(&format!("{}\n", i % 3));
    }
    std::fs::write(dir.path("data.csv"), csv).unwrap();
    let src = format!(
        "use std::nn::Dense
use std::activations::relu
use std::losses::cross_entropy
model Mlp {{
    fc1 = Dense(8, 40)
    fc2 = Dense(40, 3)
    fn forward(x: [B, 8]) -> [B, 3] {{ x |> fc1 |> relu |> fc2 }}
}}
dataset d {{
    train = (x: csv(\"data.csv\")[:, 0:8], y: cast(csv(\"data.csv\")[:, 8], i32))
}}
train Mlp on d {{
    batch = 16
    epochs = 4
    loss = cross_entropy(model(x), y)
    optimizer = adam(lr = 1e-2)
    prune = {prune}
}}
"
    );
    std::fs::write(dir.path("mlp.dnn"), src).unwrap();
    dir
}

fn train(dir: &Path, backend: BackendKind) -> Vec<(String, Vec<f32>)> {
    let out = dir.join(format!("{backend:?}.safetensors"));
    with_job(&dir.join("mlp.dnn"), |job| {
        dnnc_session::train(job, &TrainOptions::quiet(backend, out.clone())).unwrap();
    });
    dnnc_runtime::checkpoint::load(&out)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.to_f32_vec()))
        .collect()
}

fn zeros(w: &[(String, Vec<f32>)], name: &str) -> f64 {
    let v = &w.iter().find(|(n, _)| n == name).unwrap().1;
    v.iter().filter(|&&x| x == 0.0).count() as f64 / v.len() as f64
}

#[test]
fn each_layer_reaches_its_sparsity_and_backends_agree() {
    // The ramp ends with epoch 3; epoch 4 trains with the masks fixed.
    let dir = setup(
        "layer",
        "magnitude(sparsity = 0.75, start_epoch = 1, end_epoch = 3, every = 2)",
    );
    let native = train(dir.dir(), BackendKind::Cranelift);
    let interp = train(dir.dir(), BackendKind::Interp);
    for name in ["fc1.W", "fc2.W"] {
        // 75 % of 320 and of 120 weights are whole counts.
        assert_eq!(zeros(&native, name), 0.75, "{name}");
        assert_eq!(zeros(&interp, name), 0.75, "{name}");
        let (n, i) = (
            &native.iter().find(|(n, _)| n == name).unwrap().1,
            &interp.iter().find(|(n, _)| n == name).unwrap().1,
        );
        let same_mask = n.iter().zip(i).all(|(a, b)| (*a == 0.0) == (*b == 0.0));
        assert!(same_mask, "{name}: the backends pruned different weights");
    }
    assert_eq!(zeros(&native, "fc1.b"), 0.0, "biases are not pruned");
}

#[test]
fn global_scope_prunes_the_smallest_anywhere() {
    let dir = setup("global", "magnitude(sparsity = 0.5, scope = \"global\")");
    let w = train(dir.dir(), BackendKind::Cranelift);
    let (a, b) = (zeros(&w, "fc1.W"), zeros(&w, "fc2.W"));
    // 50 % of the 440 weights over both, not 50 % of each.
    assert!(
        ((a * 320.0 + b * 120.0) / 440.0 - 0.5).abs() < 1e-9,
        "{a} {b}"
    );
    assert!(a != 0.5 || b != 0.5, "global pruning split evenly: {a} {b}");
}
