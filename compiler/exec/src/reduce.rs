//! `f32` reductions over axes that are not consecutive (the `[0, 2, 3]` of a bias
//! gradient or a batch norm of `[N, C, H, W]`, the two window axes of a pooling).
//!
//! The input shape is merged into runs of consecutive axes that are all reduced or all
//! kept ([`runs`]). The kernel then walks the input row by row along its last run:
//! a reduced last run is combined into one number per row (several accumulators, so
//! sums vectorise), a kept one is combined elementwise into a row of the output. Sums
//! therefore add in another order than the interpreter's (row-major): they differ
//! from it by rounding.

use dnnc_ir::scalar::{max_f32, min_f32};
use dnnc_ir::ReduceKind;

/// `(size, reduced)` runs of `shape`, merging neighbouring axes of one kind and
/// dropping axes of size 1.
pub fn runs(shape: &[usize], axes: &[usize]) -> Vec<(usize, bool)> {
    let mut out: Vec<(usize, bool)> = Vec::new();
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let r = axes.contains(&i);
        match out.last_mut() {
            Some((n, k)) if *k == r => *n *= d,
            _ => out.push((d, r)),
        }
    }
    out
}

/// `x` combined into one number with eight interleaved accumulators.
#[inline(always)]
fn row_total(x: &[f32], f: impl Fn(f32, f32) -> f32, init: f32) -> f32 {
    let mut acc = [init; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = f(*a, v);
        }
    }
    let mut t = chunks.remainder().iter().fold(init, |a, &v| f(a, v));
    for a in acc {
        t = f(t, a);
    }
    t
}

/// `out = reduce(x)` over the reduced runs of `runs` (as made by [`runs`]).
pub fn reduce_runs(out: &mut [f32], x: &[f32], runs: &[(usize, bool)], kind: ReduceKind) {
    match kind {
        ReduceKind::Sum => reduce_with(out, x, runs, |a, b| a + b, 0.0),
        ReduceKind::Max => reduce_with(out, x, runs, max_f32, f32::NEG_INFINITY),
        ReduceKind::Min => reduce_with(out, x, runs, min_f32, f32::INFINITY),
    }
}

/// [`reduce_runs`] with the combining function `f` and its identity `init`.
#[inline(always)]
fn reduce_with(
    out: &mut [f32],
    x: &[f32],
    runs: &[(usize, bool)],
    f: impl Fn(f32, f32) -> f32 + Copy,
    init: f32,
) {
    out.fill(init);
    let Some(&(last, last_reduced)) = runs.last() else {
        // A single element (or none): every axis has size 1.
        if let (Some(o), Some(&v)) = (out.first_mut(), x.first()) {
            *o = f(*o, v);
        }
        return;
    };
    let outer = &runs[..runs.len() - 1];
    // Output strides of the outer runs (0 for reduced ones), in output elements. At
    // most a handful of runs: no allocation.
    let mut ostride = [0usize; 16];
    let mut idx = [0usize; 16];
    assert!(outer.len() <= 16, "more runs than axes of any tensor");
    let mut acc = if last_reduced { 1 } else { last };
    for (k, &(d, r)) in outer.iter().enumerate().rev() {
        if !r {
            ostride[k] = acc;
            acc *= d;
        }
    }
    let mut at = 0;
    for row in x.chunks_exact(last) {
        if last_reduced {
            out[at] = f(out[at], row_total(row, f, init));
        } else {
            for (o, &v) in out[at..at + last].iter_mut().zip(row) {
                *o = f(*o, v);
            }
        }
        // The next outer multi-index, and its output offset.
        for k in (0..outer.len()).rev() {
            idx[k] += 1;
            at += ostride[k];
            if idx[k] < outer[k].0 {
                break;
            }
            at -= ostride[k] * idx[k];
            idx[k] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_axes_of_one_kind() {
        assert_eq!(
            runs(&[64, 8, 24, 24], &[0, 2, 3]),
            vec![(64, true), (8, false), (576, true)]
        );
        assert_eq!(runs(&[2, 1, 3, 4], &[1, 3]), vec![(6, false), (4, true)]);
    }

    #[test]
    fn matches_a_reduction_by_index() {
        // x: [2, 3, 4, 5] reduced over [0, 2] and over [1, 3].
        let x: Vec<f32> = (0..120).map(|i| (i * 7 % 11) as f32 - 5.0).collect();
        let shape = [2, 3, 4, 5];
        for axes in [vec![0, 2], vec![1, 3], vec![0, 1, 3], vec![0, 3]] {
            for kind in [ReduceKind::Sum, ReduceKind::Max, ReduceKind::Min] {
                let kept: Vec<usize> = (0..4).filter(|a| !axes.contains(a)).collect();
                let n: usize = kept.iter().map(|&a| shape[a]).product();
                let (f, init): (fn(f32, f32) -> f32, f32) = match kind {
                    ReduceKind::Sum => (|a, b| a + b, 0.0),
                    ReduceKind::Max => (max_f32, f32::NEG_INFINITY),
                    ReduceKind::Min => (min_f32, f32::INFINITY),
                };
                let mut want = vec![init; n];
                for (i, &v) in x.iter().enumerate() {
                    let ix = [i / 60, i / 20 % 3, i / 5 % 4, i % 5];
                    let o = kept.iter().fold(0, |o, &a| o * shape[a] + ix[a]);
                    want[o] = f(want[o], v);
                }
                let mut got = vec![0.0; n];
                reduce_runs(&mut got, &x, &runs(&shape, &axes), kind);
                assert_eq!(got, want, "{axes:?} {kind:?}");
            }
        }
    }
}
