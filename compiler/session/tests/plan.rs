//! Training plans of several steps: each optimizer counts its own steps (Adam's bias
//! correction checked by hand for two optimizers at different counts), one state
//! store shared by every step, and a two-step plan trained on every backend ending
//! with the interpreter's weights.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dnnc_ir::Port;
use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_session::steps::{train_step, PassOptions};
use dnnc_session::{BackendKind, TrainOptions};
use dnnc_tensor::{DType, Data, Tensor};
use dnnc_testing::files::Scratch;

/// Two one-weight models: `P` fits `y` from `x` (`p·x ≈ y`), `Q` fits `-P(x)`,
/// each in its own step with its own Adam.
const TWO_STEPS: &str = "use std::losses::mse
model Scale(v: Float = 1.0) {
    param w: [1, 1] = constant(value = v)
    fn forward(x: [B, 1]) -> [B, 1] { x @ w }
}
dataset d {
    train = (x: csv(\"d.csv\")[:, 0:1], y: csv(\"d.csv\")[:, 1:2])
    test  = (x: csv(\"d.csv\")[:, 0:1], y: csv(\"d.csv\")[:, 1:2])
}
train pair on d {
    model P = Scale(v = 1.0)
    model Q = Scale(v = 0.5)
    batch = 2
    epochs = 3
    shuffle = false
    step first {
        loss = mse(P(x), y)
        update P with adam(lr = 0.1, beta1 = 0.8, beta2 = 0.9)
    }
    step second {
        let ya = stop_grad(P(x))
        loss = mse(Q(x), -ya)
        update Q with adam(lr = 0.05)
    }
}
";

fn scratch(tag: &str) -> (Scratch, PathBuf) {
    let s = Scratch::new(tag);
    s.write("d.csv", "x,y\n1,3\n2,5\n");
    let path = PathBuf::from(s.write("pair.dnn", TWO_STEPS));
    (s, path)
}

fn scalar(t: &Tensor) -> f64 {
    t.data.to_f64_vec()[0]
}

/// One Adam step on a scalar, as `torch.optim.Adam` computes it at step `t` (1-based).
#[allow(clippy::too_many_arguments)]
fn adam(p: f64, g: f64, m: f64, v: f64, t: i32, lr: f64, b1: f64, b2: f64) -> (f64, f64, f64) {
    let m = b1 * m + (1.0 - b1) * g;
    let v = b2 * v + (1.0 - b2) * g * g;
    let step_size = lr / (1.0 - b1.powi(t));
    let denom = v.sqrt() / (1.0 - b2.powi(t)).sqrt() + 1e-8;
    (p - step_size * m / denom, m, v)
}

#[test]
fn each_optimizer_counts_its_own_steps() {
    let (_s, path) = scratch("plan-counters");
    let db = RootDatabase::new();
    let file = db.open(&path).unwrap();
    assert!(
        file_diagnostics(&db, file).is_empty(),
        "{:?}",
        file_diagnostics(&db, file)
    );
    let job = dnnc_session::job(&db, file).unwrap();
    assert_eq!(job.cfg.steps.len(), 2);
    let opts = PassOptions {
        verify: true,
        dump_after: None,
        precision: None,
        int8: Vec::new(),
    };
    for backend in [BackendKind::Interp, BackendKind::Cranelift] {
        let store = backend.store();
        store
            .set("P.w", &Tensor::f32(vec![1, 1], vec![1.0]).unwrap())
            .unwrap();
        store
            .set("Q.w", &Tensor::f32(vec![1, 1], vec![0.5]).unwrap())
            .unwrap();
        let mut exes = Vec::new();
        for s in 0..2 {
            let l = train_step(job.db, job.file, job.item, &job.cfg, s, 1, 2, &opts).unwrap();
            exes.push(backend.compile(l.graph, &store).unwrap());
        }
        let x = Tensor::f32(vec![2, 1], vec![1.0, 2.0]).unwrap();
        let y = Tensor::f32(vec![2, 1], vec![3.0, 5.0]).unwrap();
        let key = Tensor::new(DType::I64, vec![], Data::I64(vec![0])).unwrap();
        let inputs = [("x", &x), ("y", &y), (Port::RngKey.name(), &key)];
        // The first step runs three times, the second once: their Adams are at t = 3
        // and t = 1.
        let (mut a, mut ma, mut va) = (1.0f64, 0.0, 0.0);
        for t in 1..=3 {
            exes[0].step(&inputs).unwrap();
            // mse(a·x, y) = mean((a x - y)²): d/da = mean(2 x (a x - y)).
            let g = (2.0 * 1.0 * (a - 3.0) + 2.0 * 2.0 * (2.0 * a - 5.0)) / 2.0;
            (a, ma, va) = adam(a, g, ma, va, t, 0.1, 0.8, 0.9);
        }
        exes[1].step(&inputs).unwrap();
        // mse(b·x, -a·x): d/db = mean(2 x (b x + a x)) with the updated a.
        let b0 = 0.5f64;
        let g = (2.0 * 1.0 * (b0 + a) + 2.0 * 2.0 * (2.0 * b0 + 2.0 * a)) / 2.0;
        let (b, _, _) = adam(b0, g, 0.0, 0.0, 1, 0.05, 0.9, 0.999);
        let got = |n: &str| scalar(&store.get(n).unwrap_or_else(|| panic!("no state `{n}`")));
        let what = backend.name();
        assert_eq!(got("opt.first.step"), 3.0, "{what}");
        assert_eq!(got("opt.second.step"), 1.0, "{what}");
        assert!(
            (got("P.w") - a).abs() < 1e-5,
            "{what}: A.w {} vs {a}",
            got("P.w")
        );
        assert!((got("opt.first.m.P.w") - ma).abs() < 1e-5, "{what}");
        assert!((got("opt.first.v.P.w") - va).abs() < 1e-4, "{what}");
        assert!(
            (got("Q.w") - b).abs() < 1e-5,
            "{what}: B.w {} vs {b}",
            got("Q.w")
        );
    }
}

/// Trains the two-step plan on `backend`; returns the weights and the last epoch's
/// metrics.
fn train_on(
    path: &Path,
    backend: BackendKind,
    out: PathBuf,
) -> (HashMap<String, f64>, Vec<(String, f64)>) {
    let db = RootDatabase::new();
    let file = db.open(path).unwrap();
    let job = dnnc_session::job(&db, file).unwrap();
    let summary = dnnc_session::train(&job, &TrainOptions::quiet(backend, out.clone())).unwrap();
    assert_eq!(summary.steps, 3);
    let w = dnnc_runtime::checkpoint::load(&out)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, scalar(&t)))
        .collect();
    (w, summary.metrics)
}

#[test]
fn a_two_step_plan_trains_alike_on_every_backend() {
    let (s, path) = scratch("plan-backends");
    let (want, want_metrics) = train_on(&path, BackendKind::Interp, s.path("interp.safetensors"));
    let names: Vec<&str> = want_metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "train_first_loss",
            "train_second_loss",
            "test_first_loss",
            "test_second_loss"
        ]
    );
    // Both models moved, and the checkpoint names them by binding.
    let mut keys: Vec<&String> = want.keys().collect();
    keys.sort();
    assert_eq!(keys, ["P.w", "Q.w"]);
    assert!(want["P.w"] > 1.0 && want["Q.w"] < 0.5, "{want:?}");
    #[allow(unused_mut)]
    let mut backends = vec![BackendKind::Cranelift];
    #[cfg(feature = "llvm")]
    backends.push(BackendKind::Llvm);
    for backend in backends {
        let (got, metrics) = train_on(&path, backend, s.path("native.safetensors"));
        for (k, v) in &want {
            assert!(
                (got[k] - v).abs() < 1e-5,
                "{}: `{k}` {} vs {v}",
                backend.name(),
                got[k]
            );
        }
        for ((n, a), (_, b)) in metrics.iter().zip(&want_metrics) {
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                "{}: `{n}` {a} vs {b}",
                backend.name()
            );
        }
    }
}
