//! Mixed precision (`precision = bf16`): one training step of a small MLP from the same
//! weights on the interpreter (which rounds the products' operands as the IR says) and
//! natively on both `bf16` kernels (`vdpbf16ps` where the CPU has it, and the rounded
//! `f32` path forced) gives the same weights, up to the order of the additions; the
//! step is not the `f32` one; and `--precision` overrides the block.

mod support;

use std::path::Path;

use dnnc_kernels::bf16::{force_path, Bf16Path};
use dnnc_session::{BackendKind, PassOptions, TrainOptions};
use dnnc_settings::Precision;
use dnnc_testing::files::Scratch;
use support::{rel, with_job};

fn setup(precision: &str) -> Scratch {
    let dir = Scratch::new(&format!("precision-{precision}"));
    let mut csv = String::from("a,b,c,d,e,f,g,h,y\n");
    let mut s = 7u64;
    for i in 0..64 {
        for _ in 0..8 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            csv.push_str(&format!(
                "{:.6},",
                (s >> 40) as f64 / (1u64 << 24) as f64 - 0.5
            ));
        }
        csv.push_str(&format!("{}\n", i % 4));
    }
    std::fs::write(dir.path("data.csv"), csv).unwrap();
    let src = format!(
        "use std::nn::Dense
use std::activations::relu
use std::losses::cross_entropy
model Mlp {{
    fc1 = Dense(8, 32)
    fc2 = Dense(32, 4)
    fn forward(x: [B, 8]) -> [B, 4] {{ x |> fc1 |> relu |> fc2 }}
}}
dataset d {{
    train = (x: csv(\"data.csv\")[:, 0:8], y: cast(csv(\"data.csv\")[:, 8], i32))
}}
train Mlp on d {{
    batch = 64
    loss = cross_entropy(model(x), y)
    optimizer = sgd(lr = 0.5)
    shuffle = false
    precision = {precision}
}}
"
    );
    std::fs::write(dir.path("mlp.dnn"), src).unwrap();
    dir
}

/// The weights after one step from `init` (written when missing).
fn one_step(
    dir: &Path,
    backend: BackendKind,
    precision: Option<Precision>,
    tag: &str,
) -> Vec<(String, Vec<f32>)> {
    let init = dir.join("init.safetensors");
    let out = dir.join(format!("{tag}.safetensors"));
    with_job(&dir.join("mlp.dnn"), |job| {
        if !init.exists() {
            let opts = TrainOptions {
                steps: Some(0),
                ..TrainOptions::quiet(BackendKind::Interp, init.clone())
            };
            dnnc_session::train(job, &opts).unwrap();
        }
        let opts = TrainOptions {
            epochs: Some(1),
            init: Some(init.clone()),
            passes: PassOptions {
                verify: true,
                dump_after: None,
                precision,
                int8: Vec::new(),
            },
            ..TrainOptions::quiet(backend, out.clone())
        };
        dnnc_session::train(job, &opts).unwrap();
    });
    dnnc_runtime::checkpoint::load(&out)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.to_f32_vec()))
        .collect()
}

fn largest_difference(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f32 {
    a.iter()
        .zip(b)
        .map(|((na, x), (nb, y))| {
            assert_eq!(na, nb);
            rel(x, y)
        })
        .fold(0.0, f32::max)
}

#[test]
fn a_bf16_step_agrees_across_backends_and_kernels() {
    let dir = setup("bf16");
    let interp = one_step(dir.dir(), BackendKind::Interp, None, "interp");
    let native = one_step(dir.dir(), BackendKind::Cranelift, None, "native");
    force_path(Some(Bf16Path::F32));
    let rounded_f32 = one_step(dir.dir(), BackendKind::Cranelift, None, "f32path");
    force_path(None);
    let d = largest_difference(&interp, &native);
    assert!(d < 1e-5, "interpreter vs native kernel: {d}");
    let d = largest_difference(&interp, &rounded_f32);
    assert!(d < 1e-5, "interpreter vs the rounded f32 path: {d}");
    // `--precision f32` overrides the block: a different step.
    let full = one_step(dir.dir(), BackendKind::Interp, Some(Precision::F32), "full");
    let d = largest_difference(&interp, &full);
    assert!(d > 1e-5, "rounding to bf16 changed nothing: {d}");
    // The f32 step on the native backend is the f32 step.
    let full_native = one_step(
        dir.dir(),
        BackendKind::Cranelift,
        Some(Precision::F32),
        "fn",
    );
    assert!(largest_difference(&full, &full_native) < 1e-6);
}
