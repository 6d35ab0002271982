//! What the session's end-to-end tests share: a job for a `.dnn` file that must check
//! clean, the error measure of the comparisons against PyTorch, and parameter
//! gradients read off one SGD step with learning rate 1.

#![allow(dead_code)]

use std::path::Path;

use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_session::{BackendKind, Job, TrainOptions};

/// Runs `f` with the job of `path`, which must check without diagnostics.
pub fn with_job<R>(path: &Path, f: impl FnOnce(&Job<'_>) -> R) -> R {
    let db = RootDatabase::new();
    let file = db.open(path).unwrap();
    let diags = file_diagnostics(&db, file);
    assert!(diags.is_empty(), "{diags:#?}");
    f(&dnnc_session::job(&db, file).unwrap())
}

/// The largest difference relative to the largest magnitude of `want`.
pub fn rel(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let top = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
        / top
}

/// The gradient of each parameter `(name, initial value)` of `params`: one SGD step
/// with learning rate 1 from the weights at `init` (written to `out`), `w₀ - w₁`. The
/// job's optimizer must be `sgd(lr = 1.0)` over one batch.
pub fn sgd_step_gradients(
    job: &Job<'_>,
    init: &Path,
    out: &Path,
    backend: BackendKind,
    params: &[(String, Vec<f32>)],
) -> Vec<(String, Vec<f32>)> {
    let opts = TrainOptions {
        epochs: Some(1),
        steps: Some(1),
        init: Some(init.to_path_buf()),
        ..TrainOptions::quiet(backend, out.to_path_buf())
    };
    dnnc_session::train(job, &opts).unwrap();
    let after = dnnc_runtime::checkpoint::load(out).unwrap();
    params
        .iter()
        .map(|(name, w0)| {
            let w1 = after
                .iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .to_f32_vec();
            (
                name.clone(),
                w0.iter().zip(w1).map(|(a, b)| a - b).collect(),
            )
        })
        .collect()
}
