//! `scan` by hand: running sums forwards and backwards (`flip`), a map, two carried
//! values — outputs of `predict` on the interpreter and Cranelift — and a training step
//! through a scan (backpropagation through time) equal on both.

mod support;

use std::path::Path;

use dnnc_session::{BackendKind, Job, PassOptions, TrainOptions};
use dnnc_testing::files::Scratch;
use support::with_job;

const SRC: &str = "use std::losses::mse
model Sums {
    param w: [2] = constant(1.0)
    fn forward(x: [B, T, 2]) -> ([B, T, 2], [B, T, 2], [B, T, 2], [B, T, 2]) {
        let xs = transpose(x * w, [1, 0, 2])
        let run = scan(v in xs, h = zeros([B, 2])) { h + v }
        let back = flip(scan(v in flip(xs), h = zeros([B, 2])) { h + v })
        let twice = scan(v in xs) { v * 2.0 }
        let (m, top) = scan(v in xs, m = zeros([B, 2]), top = zeros([B, 2])) {
            (0.5 * m + v, maximum(top, v))
        }
        let bt = [1, 0, 2]
        (transpose(run, bt), transpose(back, bt), transpose(twice, bt), transpose(m + top, bt))
    }
}
dataset d {
    train = (x: reshape(npy(\"x.npy\"), [-1, 3, 2]), y: reshape(npy(\"x.npy\"), [-1, 3, 2]))
}
train Sums on d {
    batch = 1
    let (run, back, twice, both) = model(x)
    loss = mse(run + back + twice + both, y)
    optimizer = sgd(lr = 0.01)
    shuffle = false
}
";

/// The `count` outputs of `forward` on `dir/in.npy`, from the weights `weights`.
fn predicted(
    job: &Job<'_>,
    dir: &Path,
    weights: &Path,
    backend: BackendKind,
    count: usize,
) -> Vec<Vec<f32>> {
    let out = dir.join(format!("y-{backend:?}.npy"));
    let passes = PassOptions::default();
    dnnc_session::predict(job, weights, &dir.join("in.npy"), &out, backend, &passes).unwrap();
    (0..count)
        .map(|k| {
            dnnc_data::npy::load(&dir.join(format!("y-{backend:?}.{k}.npy")))
                .unwrap()
                .to_f32_vec()
        })
        .collect()
}

#[test]
fn scans_compute_running_sums_maps_and_several_states() {
    let dir = Scratch::new("scan");
    // One sequence of three steps of two features.
    let x = [1.0f32, -2.0, 3.0, 0.5, -1.0, 4.0];
    dnnc_data::npy::save_f32(&dir.path("x.npy"), &[1, 6], &x).unwrap();
    dnnc_data::npy::save_f32(&dir.path("in.npy"), &[1, 3, 2], &x).unwrap();
    let path = dir.path("sums.dnn");
    std::fs::write(&path, SRC).unwrap();
    let weights = dir.path("w.safetensors");
    // From w = 1, so the outputs below are of x itself.
    let init = dir.path("init.safetensors");
    let one = dnnc_tensor::Tensor::f32(vec![2], vec![1.0, 1.0]).unwrap();
    dnnc_runtime::checkpoint::save(&init, &[("w".into(), &one)]).unwrap();
    with_job(&path, |job| check_sums(job, dir.dir(), &init, &weights));
}

fn check_sums(job: &Job<'_>, dir: &Path, init: &Path, weights: &Path) {
    let mut losses = Vec::new();
    for backend in [BackendKind::Interp, BackendKind::Cranelift] {
        let opts = TrainOptions {
            epochs: Some(1),
            steps: Some(1),
            ..TrainOptions::quiet(backend, weights.to_path_buf())
        };
        let outputs = predicted(job, dir, init, backend, 4);
        let get = |k: usize| outputs[k].clone();
        assert_eq!(
            get(0),
            vec![1.0, -2.0, 4.0, -1.5, 3.0, 2.5],
            "{backend:?} running sum"
        );
        assert_eq!(
            get(1),
            vec![3.0, 2.5, 2.0, 4.5, -1.0, 4.0],
            "{backend:?} reverse sum"
        );
        assert_eq!(
            get(2),
            vec![2.0, -4.0, 6.0, 1.0, -2.0, 8.0],
            "{backend:?} map"
        );
        // m: 1, -2 | 3.5, -0.5 | 0.75, 3.75; top: 1, 0 | 3, 0.5 | 3, 4.
        assert_eq!(
            get(3),
            vec![2.0, -2.0, 6.5, 0.0, 3.75, 7.75],
            "{backend:?} two states"
        );
        let s = dnnc_session::train(
            job,
            &TrainOptions {
                init: Some(init.to_path_buf()),
                ..opts
            },
        )
        .unwrap();
        losses.push(s.metrics.clone());
    }
    assert_eq!(losses[0].len(), losses[1].len());
    for (a, b) in losses[0].iter().zip(&losses[1]) {
        assert!((a.1 - b.1).abs() < 1e-5, "{losses:?}");
    }
}

#[test]
fn clamp_triangles_and_running_sums_by_hand() {
    let dir = Scratch::new("shape-fns");
    let src = "use std::shape::{clamp, tril, triu, cumsum}
model M {
    param w: [1] = zeros
    fn forward(x: [B, 3, 3]) -> ([B, 3, 3], [B, 3, 3], [B, 3, 3], [B, 3, 3]) {
        let m = x[0] + w
        let z = 0.0 * x
        (clamp(x, -1.0, 2.0), tril(m) + z, triu(m, k = 1) + z, cumsum(m) + z)
    }
}
dataset d { train = (x: reshape(npy(\"x.npy\"), [-1, 3, 3])) }
train M on d {
    batch = 1
    let (clamped, lower, upper, sums) = model(x)
    loss = sum(clamped) + sum(lower) + sum(upper) + sum(sums)
    optimizer = sgd(lr = 0.1)
}
";
    let x = [1.0f32, -2.0, 3.0, 4.0, 0.5, -6.0, 7.0, 8.0, 9.0];
    dnnc_data::npy::save_f32(&dir.path("x.npy"), &[1, 9], &x).unwrap();
    dnnc_data::npy::save_f32(&dir.path("in.npy"), &[1, 3, 3], &x).unwrap();
    std::fs::write(dir.path("m.dnn"), src).unwrap();
    let weights = dir.path("w.safetensors");
    let zero = dnnc_tensor::Tensor::f32(vec![1], vec![0.0]).unwrap();
    dnnc_runtime::checkpoint::save(&weights, &[("w".into(), &zero)]).unwrap();
    for backend in [BackendKind::Interp, BackendKind::Cranelift] {
        let outputs = with_job(&dir.path("m.dnn"), |job| {
            predicted(job, dir.dir(), &weights, backend, 4)
        });
        let get = |k: usize| outputs[k].clone();
        assert_eq!(get(0), vec![1.0, -1.0, 2.0, 2.0, 0.5, -1.0, 2.0, 2.0, 2.0]);
        assert_eq!(get(1), vec![1.0, 0.0, 0.0, 4.0, 0.5, 0.0, 7.0, 8.0, 9.0]);
        assert_eq!(get(2), vec![0.0, -2.0, 3.0, 0.0, 0.0, -6.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            get(3),
            vec![1.0, -2.0, 3.0, 5.0, -1.5, -3.0, 12.0, 6.5, 6.0]
        );
    }
}
