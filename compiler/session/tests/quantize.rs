//! Post-training int8 quantization: `quantize` writes `i8` weights with per-channel and
//! activation scales (a smaller file, marked quantized); evaluation with them runs `i8`
//! products — the same numbers on the interpreter and on Cranelift, close to the `f32`
//! model's — for `Dense` and `Conv2d`; quantizing twice is refused.

mod support;

use std::path::Path;

use dnnc_session::quantize::{quantize, quantized_params, Calibration, QuantizeOptions};
use dnnc_session::{BackendKind, PassOptions, TrainOptions};
use dnnc_testing::files::Scratch;
use support::with_job;

fn setup() -> Scratch {
    let dir = Scratch::new("quantize");
    // 8x8 images whose class is the quadrant holding the bright square.
    let header: Vec<String> = (0..65).map(|i| format!("c{i}")).collect();
    let mut csv = format!("{}\n", header.join(","));
    let mut s = 11u64;
    for i in 0..160 {
        let class = i % 4;
        let (r0, c0) = ((class / 2) * 4, (class % 2) * 4);
        let mut px = Vec::new();
        for r in 0..8 {
            for c in 0..8 {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (s >> 40) as f64 / (1u64 << 24) as f64 * 0.3;
                let on = r >= r0 && r < r0 + 4 && c >= c0 && c < c0 + 4;
                px.push(format!("{:.4}", if on { 1.0 } else { 0.0 } + noise));
            }
        }
        csv.push_str(&format!("{},{}\n", px.join(","), class));
    }
    std::fs::write(dir.path("img.csv"), csv).unwrap();
    let src = "use std::nn::{Conv2d, Dense}
use std::activations::relu
use std::losses::cross_entropy
model Net {
    conv = Conv2d(1, 4, 3)
    fc = Dense(144, 4)
    fn forward(x: [B, 1, 8, 8]) -> [B, 4] {
        reshape(relu(conv(x)), [B, 144]) |> fc
    }
}
dataset img {
    train = (x: reshape(csv(\"img.csv\")[0:128, 0:64], [128, 1, 8, 8]), y: cast(csv(\"img.csv\")[0:128, 64], i32))
    test = (x: reshape(csv(\"img.csv\")[128:160, 0:64], [32, 1, 8, 8]), y: cast(csv(\"img.csv\")[128:160, 64], i32))
}
train Net on img {
    batch = 16
    epochs = 8
    let logits = model(x)
    loss = cross_entropy(logits, y)
    optimizer = adam(lr = 1e-2)
    metrics = [accuracy(logits, y)]
}
";
    std::fs::write(dir.path("net.dnn"), src).unwrap();
    dir
}

/// Verifying the graph after every pass.
fn verified() -> PassOptions {
    PassOptions {
        verify: true,
        ..PassOptions::default()
    }
}

fn eval(dir: &Path, weights: &Path, backend: BackendKind) -> Vec<(String, f64)> {
    with_job(&dir.join("net.dnn"), |job| {
        dnnc_session::eval(job, weights, backend, None, &verified()).unwrap()
    })
}

#[test]
fn int8_weights_evaluate_alike_on_every_backend() {
    let dir = setup();
    let path = dir.path("net.dnn");
    let weights = dir.path("f32.safetensors");
    let quantized = dir.path("int8.safetensors");
    with_job(&path, |job| {
        dnnc_session::train(
            job,
            &TrainOptions::quiet(BackendKind::Cranelift, weights.clone()),
        )
        .unwrap();
        let q = quantize(
            job,
            &QuantizeOptions {
                weights: weights.clone(),
                calibrate: 1000,
                method: Calibration::MinMax,
                out: quantized.clone(),
                backend: BackendKind::Cranelift,
                passes: verified(),
            },
        )
        .unwrap();
        let names: Vec<&str> = q.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["conv.W", "fc.W"]);
        assert_eq!(q.params[0].1, 4, "a kernel's channels are its outputs");
        assert_eq!(q.samples, 128, "capped at the split");
        assert!(q.bytes.1 * 3 < q.bytes.0, "{:?}", q.bytes);
    });
    assert_eq!(quantized_params(&quantized).unwrap().len(), 2);
    let tensors = dnnc_runtime::checkpoint::load(&quantized).unwrap();
    let w = &tensors.iter().find(|(n, _)| n == "fc.W").unwrap().1;
    assert_eq!(w.dtype, dnnc_tensor::DType::I8);
    let full = eval(dir.dir(), &weights, BackendKind::Cranelift);
    let native = eval(dir.dir(), &quantized, BackendKind::Cranelift);
    let interp = eval(dir.dir(), &quantized, BackendKind::Interp);
    let get = |m: &[(String, f64)], k: &str| m.iter().find(|(n, _)| n == k).unwrap().1;
    let (lf, ln, li) = (
        get(&full, "test_loss"),
        get(&native, "test_loss"),
        get(&interp, "test_loss"),
    );
    assert!((ln - li).abs() < 1e-5, "native {ln} vs interpreter {li}");
    assert!(
        ln != lf,
        "the int8 model computed exactly the f32 one: {ln}"
    );
    assert!(
        (ln - lf).abs() < 0.05 * lf.max(0.1),
        "int8 {ln} vs f32 {lf}"
    );
    assert!(get(&native, "test_accuracy") >= get(&full, "test_accuracy") - 0.07);
    // Quantizing twice is refused.
    with_job(&path, |job| {
        let e = quantize(
            job,
            &QuantizeOptions {
                weights: quantized.clone(),
                calibrate: 16,
                method: Calibration::Percentile,
                out: dir.path("again.safetensors"),
                backend: BackendKind::Cranelift,
                passes: PassOptions::default(),
            },
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("quantized already"), "{e}");
    });
}
