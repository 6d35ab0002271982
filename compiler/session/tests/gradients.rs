//! `grad` as a value, end to end on the interpreter and Cranelift: a training step
//! whose loss holds a gradient (double backprop), `grad` in `forward`, the attribution
//! maps of `std::explain` and evaluation under attack — each against values computed
//! by hand on tiny models.

mod support;

use std::path::{Path, PathBuf};

use dnnc_lower::{AttackKind, Attribution, Method, Target};
use dnnc_session::attribute::{attribute, AttributeOptions};
use dnnc_session::{AttackSpec, BackendKind, PassOptions, TrainOptions};
use dnnc_tensor::Tensor;
use dnnc_testing::files::Scratch;
use support::with_job;

const BACKENDS: [BackendKind; 2] = [BackendKind::Interp, BackendKind::Cranelift];

fn dir(name: &str) -> Scratch {
    Scratch::new(&format!("gradients-{name}"))
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

/// The linear model of `sgd_by_hand.rs` (w = 0.5, b = 0; rows x = [1, 2], y = 3 and
/// x = [2, 0], y = 1) with `loss`.
fn linear(d: &Path, loss: &str) -> PathBuf {
    std::fs::write(d.join("tiny.csv"), "x1,x2,y\n1,2,3\n2,0,1\n").unwrap();
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
    loss = {loss}
    optimizer = sgd(lr = 0.1)
    shuffle = false
}}
"
    );
    let path = d.join("lin.dnn");
    std::fs::write(&path, src).unwrap();
    path
}

fn one_step(path: &Path, backend: BackendKind) -> Vec<(String, Vec<f32>)> {
    let out = path.with_extension(format!("{backend:?}.safetensors"));
    with_job(path, |job| {
        let opts = TrainOptions {
            epochs: Some(1),
            steps: Some(1),
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

#[test]
fn a_gradient_penalty_trains_by_double_backprop() {
    // gx = ∂ sum(model(x)) / ∂x = [w1, w2] per row, so sum(gx²) = 2 (w1² + w2²) and
    // its gradient in w is 4w = [2, 2]; 0.5 of it adds [1, 1] to the MSE gradient
    // [-1.5, -3.0]: w = 0.5 - 0.1 [-0.5, -2.0] = [0.55, 0.7]; b as without the
    // penalty, 0.15.
    let d = dir("penalty");
    let path = linear(
        d.dir(),
        "mse(model(x), y) + 0.5 * sum(grad(sum(model(x)), x) ** 2.0)",
    );
    for backend in BACKENDS {
        let w = one_step(&path, backend);
        assert_eq!(w[0].0, "b");
        assert!(close(&w[0].1, &[0.15], 1e-5), "{backend:?}: {w:?}");
        assert!(close(&w[1].1, &[0.55, 0.7], 1e-5), "{backend:?}: {w:?}");
    }
}

#[test]
fn grad_of_a_parameter_inside_a_loss_is_its_gradient() {
    // Training on `sum(grad(mse, w) ** 2)` (the squared norm of the MSE's gradient
    // in w, g = [-1.5, -3.0]): the loss is g·g, and its gradient is 2 Hᵀg with
    // H = ∂g/∂w = XᵀX (MSE over 2 rows: g = Xᵀ(Xw + b - y)), so w moves by
    // -0.1 · 2 XᵀX g; XᵀX = [[5, 2], [2, 4]], XᵀX g = [-13.5, -15], w = [3.2, 3.5].
    // For b: ∂g/∂b = Xᵀ1 = [3, 2], so b moves by -0.1 · 2 (3·-1.5 + 2·-3) = 2.1.
    let d = dir("param");
    let path = linear(d.dir(), "sum(grad(mse(model(x), y), w) ** 2.0)");
    // `w` is the model's parameter: name it through the model.
    let src = std::fs::read_to_string(&path)
        .unwrap()
        .replace("grad(mse(model(x), y), w)", "model.grad_w(x, y)")
        .replace(
            "    fn forward(x: [B, 2]) -> [B, 1] { x @ w + b }",
            "    fn forward(x: [B, 2]) -> [B, 1] { x @ w + b }
    fn grad_w(x: [B, 2], y: [B, 1]) -> [2, 1] { grad(mse(x @ w + b, y), w) }",
        );
    std::fs::write(&path, src).unwrap();
    for backend in BACKENDS {
        let w = one_step(&path, backend);
        assert!(close(&w[0].1, &[2.1], 1e-4), "{backend:?}: {w:?}");
        assert!(close(&w[1].1, &[3.2, 3.5], 1e-4), "{backend:?}: {w:?}");
    }
}

#[test]
fn grad_in_forward_predicts_the_gradient() {
    // forward(x) = ∂ sum((x w)²) / ∂x = 2 (x w) wᵀ; for x = [1, 2], w = 0.5: [1.5, 1.5].
    let d = dir("forward");
    let path = linear(d.dir(), "mse(model(x), y)");
    let src = std::fs::read_to_string(&path).unwrap().replace(
        "    fn forward(x: [B, 2]) -> [B, 1] { x @ w + b }",
        "    fn forward(x: [B, 2]) -> [B, 2] { grad(sum((x @ w) ** 2.0), x) }",
    );
    let src = src.replace("loss = mse(model(x), y)", "loss = mean(model(x))");
    std::fs::write(&path, src).unwrap();
    let weights = d.path("w.safetensors");
    let (w, b) = (
        Tensor::f32(vec![2, 1], vec![0.5, 0.5]).unwrap(),
        Tensor::f32(vec![1], vec![0.0]).unwrap(),
    );
    dnnc_runtime::checkpoint::save(&weights, &[("b".into(), &b), ("w".into(), &w)]).unwrap();
    let input = d.path("x.npy");
    dnnc_data::npy::save_f32(&input, &[2, 2], &[1.0, 2.0, 2.0, 0.0]).unwrap();
    for backend in BACKENDS {
        let out = d.path(&format!("y-{backend:?}.npy"));
        with_job(&path, |job| {
            dnnc_session::predict(
                job,
                &weights,
                &input,
                &out,
                backend,
                &PassOptions::default(),
            )
            .unwrap()
        });
        let y = dnnc_data::npy::load(&out).unwrap().to_f32_vec();
        assert!(close(&y, &[1.5, 1.5, 1.0, 1.0], 1e-6), "{backend:?}: {y:?}");
    }
}

/// A classifier of 2×2 single-channel images into 2 classes: `maps` doubles the
/// image (the layer Grad-CAM reads), then logits = flatten(maps) @ W.
fn classifier(d: &Path) -> (PathBuf, PathBuf) {
    std::fs::write(
        d.join("img.csv"),
        "a,b,c,d,label\n1,2,3,4,0\n0.5,-1,0,2,1\n",
    )
    .unwrap();
    let src = "use std::losses::cross_entropy
layer Double {
    fn forward(x: [B, C, H, W]) -> [B, C, H, W] { x * 2.0 }
}
model Tiny {
    maps = Double()
    param W: [4, 2] = zeros
    fn forward(x: [B, 1, 2, 2]) -> [B, 2] { reshape(maps(x), [B, 4]) @ W }
}
dataset img {
    train = (image: csv(\"img.csv\")[:, 0:4], label: cast(csv(\"img.csv\")[:, 4], i32))
    test = (image: csv(\"img.csv\")[:, 0:4], label: cast(csv(\"img.csv\")[:, 4], i32))
}
train Tiny on img {
    batch = 2
    loss = cross_entropy(model(reshape(image, [B, 1, 2, 2])), label)
    optimizer = sgd(lr = 0.1)
}
";
    let path = d.join("tiny.dnn");
    std::fs::write(&path, src).unwrap();
    // Column 0 scores class 0, column 1 class 1.
    let w = Tensor::f32(vec![4, 2], vec![1.0, -1.0, 0.5, 2.0, -2.0, 0.0, 0.25, 1.0]).unwrap();
    let weights = d.join("w.safetensors");
    dnnc_runtime::checkpoint::save(&weights, &[("W".into(), &w)]).unwrap();
    (path, weights)
}

fn maps(
    path: &Path,
    weights: &Path,
    method: Method,
    target: Target,
    backend: BackendKind,
) -> Vec<f32> {
    let out = path.with_extension(format!("{backend:?}.npy"));
    let opts = AttributeOptions {
        attribution: Attribution { method, target },
        split: "test".into(),
        count: 2,
        out: out.clone(),
        backend,
        passes: PassOptions::default(),
    };
    with_job(path, |job| attribute(job, weights, &opts).unwrap());
    dnnc_data::npy::load(&out).unwrap().to_f32_vec()
}

#[test]
fn attribution_maps_match_hand_computation() {
    let d = dir("attribute");
    let (path, weights) = classifier(d.dir());
    let x = [[1.0f32, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]];
    let col = |c: usize| -> Vec<f32> {
        (0..4)
            .map(|i| [1.0f32, -1.0, 0.5, 2.0, -2.0, 0.0, 0.25, 1.0][i * 2 + c])
            .collect()
    };
    // Logits 2·x·W: sample 0 → [2(1+1-6+1), 2(-1+4+0+4)] = [-6, 14]: class 1;
    // sample 1 → [2(0.5-0.5+0+0.5), 2(-0.5-2+0+2)] = [1, -1]: class 0.
    let predicted = [1usize, 0];
    for backend in BACKENDS {
        // score = Σ logit[target] = Σ 2 x·W[:, t]: ∂/∂x = 2 W[:, t].
        let sal = maps(
            &path,
            &weights,
            Method::Saliency,
            Target::Predicted,
            backend,
        );
        let want: Vec<f32> = predicted
            .iter()
            .flat_map(|&t| col(t).into_iter().map(|v| (2.0 * v).abs()))
            .collect();
        assert!(
            close(&sal, &want, 1e-6),
            "{backend:?} saliency {sal:?} vs {want:?}"
        );
        let gxi = maps(
            &path,
            &weights,
            Method::GradXInput,
            Target::Class(0),
            backend,
        );
        let want: Vec<f32> = x
            .iter()
            .flat_map(|xs| xs.iter().zip(col(0)).map(|(a, w)| 2.0 * w * a))
            .collect();
        assert!(
            close(&gxi, &want, 1e-6),
            "{backend:?} gradxinput {gxi:?} vs {want:?}"
        );
        // A linear model: integrated gradients from 0 equal gradient × input at any
        // number of steps, and sum to the score (completeness).
        let ig = maps(
            &path,
            &weights,
            Method::IntegratedGradients { steps: 7 },
            Target::Class(0),
            backend,
        );
        assert!(
            close(&ig, &want, 1e-5),
            "{backend:?} integrated gradients {ig:?} vs {want:?}"
        );
        // Grad-CAM at `maps` (A = 2x, ∂score/∂A = W[:, t]): relu(mean(W[:, t]) · 2x).
        let cam = maps(
            &path,
            &weights,
            Method::GradCam {
                layer: Some("maps".into()),
            },
            Target::Predicted,
            backend,
        );
        let want: Vec<f32> = x
            .iter()
            .zip(predicted)
            .flat_map(|(xs, t)| {
                let alpha: f32 = col(t).iter().sum::<f32>() / 4.0;
                xs.iter()
                    .map(move |a| (alpha * 2.0 * a).max(0.0))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(
            close(&cam, &want, 1e-6),
            "{backend:?} gradcam {cam:?} vs {want:?}"
        );
    }
}

#[test]
fn attribution_refuses_what_the_model_lacks() {
    let d = dir("attribute-bad");
    let (path, weights) = classifier(d.dir());
    let run = |method: Method, target: Target| {
        let opts = AttributeOptions {
            attribution: Attribution { method, target },
            split: "test".into(),
            count: 2,
            out: d.path("x.npy"),
            backend: BackendKind::Interp,
            passes: PassOptions::default(),
        };
        with_job(&path, |job| {
            attribute(job, &weights, &opts).unwrap_err().to_string()
        })
    };
    let e = run(
        Method::GradCam {
            layer: Some("nope".into()),
        },
        Target::Predicted,
    );
    assert!(
        e.contains("--layer nope names no layer") && e.contains("`maps` [B, 1, 2, 2]"),
        "{e}"
    );
    let e = run(Method::Saliency, Target::Class(2));
    assert!(e.contains("2 classes"), "{e}");
    let opts = AttributeOptions {
        attribution: Attribution {
            method: Method::Saliency,
            target: Target::Predicted,
        },
        split: "valid".into(),
        count: 2,
        out: d.path("x.npy"),
        backend: BackendKind::Interp,
        passes: PassOptions::default(),
    };
    let e = with_job(&path, |job| {
        attribute(job, &weights, &opts).unwrap_err().to_string()
    });
    assert!(e.contains("no such split"), "{e}");
}

#[test]
fn fgsm_moves_the_input_against_the_loss() {
    // The linear model at w = 0.5, b = 0 predicts [1.5, 1.0] for y = [3, 1]: the
    // first row's loss falls as x grows (sign of ∂L/∂x = -1 for both inputs), the
    // second row sits at its target (gradient 0). FGSM with eps = 0.25 moves row 0 to
    // x - 0.25 = [0.75, 1.75] (within x's range [0, 2]): prediction 1.25, loss
    // ((1.25 - 3)² + 0) / 2 = 1.53125. The target y is not an input of the model and
    // is left alone.
    let d = dir("fgsm");
    let path = linear(d.dir(), "mse(model(x), y)");
    let weights = d.path("w.safetensors");
    let (w, b) = (
        Tensor::f32(vec![2, 1], vec![0.5, 0.5]).unwrap(),
        Tensor::f32(vec![1], vec![0.0]).unwrap(),
    );
    dnnc_runtime::checkpoint::save(&weights, &[("b".into(), &b), ("w".into(), &w)]).unwrap();
    for backend in BACKENDS {
        let clean = with_job(&path, |job| {
            dnnc_session::eval(job, &weights, backend, None, &PassOptions::default()).unwrap()
        });
        assert!((clean[0].1 - 1.125).abs() < 1e-6, "{clean:?}");
        let attacked = |kind| {
            with_job(&path, |job| {
                let spec = AttackSpec { kind, eps: 0.25 };
                dnnc_session::eval_attacked(
                    job,
                    &weights,
                    backend,
                    None,
                    &PassOptions::default(),
                    spec,
                )
                .unwrap()
            })
        };
        let fgsm = attacked(AttackKind::Fgsm);
        assert_eq!(fgsm[0].0, "train_loss");
        assert!((fgsm[0].1 - 1.53125).abs() < 1e-6, "{backend:?}: {fgsm:?}");
        // PGD from the clean point with two steps of 0.2: 0.2 then the projection
        // onto the 0.25-ball: the same point as FGSM.
        let pgd = attacked(AttackKind::Pgd {
            steps: 2,
            step: 0.2,
            random_start: false,
        });
        assert!((pgd[0].1 - 1.53125).abs() < 1e-6, "{backend:?}: {pgd:?}");
    }
}
