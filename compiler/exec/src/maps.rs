//! The index maps of the data-movement ops (the same affine maps as the interpreter's).

use dnnc_ir::scalar::{max_f32, min_f32};
use dnnc_ir::ReduceKind;

/// Row-major strides.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1];
    }
    s
}

/// `offset + Σ_k i_k · strides[k]` for every multi-index `i` of `shape`, in row-major
/// order.
pub fn affine(shape: &[usize], strides: &[usize], offset: usize) -> Vec<usize> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let mut idx = vec![0; shape.len()];
    let mut pos = offset;
    for _ in 0..n {
        out.push(pos);
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            pos += strides[k];
            if idx[k] < shape[k] {
                break;
            }
            pos -= strides[k] * shape[k];
            idx[k] = 0;
        }
    }
    out
}

/// The input stride each output axis of `transpose(perm)` walks.
pub fn transpose_strides(in_shape: &[usize], perm: &[usize]) -> Vec<usize> {
    let s = strides(in_shape);
    perm.iter().map(|&p| s[p]).collect()
}

/// The input stride each output axis of a NumPy broadcast walks (0 on new or size-1 axes).
pub fn broadcast_strides(in_shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let s = strides(in_shape);
    let off = out_shape.len() - in_shape.len();
    (0..out_shape.len())
        .map(|k| {
            if k < off || in_shape[k - off] == 1 {
                0
            } else {
                s[k - off]
            }
        })
        .collect()
}

/// For each input axis, the stride into the reduced output (0 on reduced axes).
pub fn reduce_strides(in_shape: &[usize], axes: &[usize]) -> Vec<usize> {
    let kept: Vec<usize> = in_shape
        .iter()
        .enumerate()
        .map(|(k, &d)| if axes.contains(&k) { 1 } else { d })
        .collect();
    let mut s = strides(&kept);
    for &a in axes {
        s[a] = 0;
    }
    s
}

/// `out[index[i]] ⊕= src[i]` in row-major order of `src`, from the identity of `kind`.
pub fn reduce(kind: ReduceKind, src: &[f32], index: &[usize], out: &mut [f32]) {
    let (init, f): (f32, fn(f32, f32) -> f32) = match kind {
        ReduceKind::Sum => (0.0, |a, b| a + b),
        ReduceKind::Max => (f32::NEG_INFINITY, max_f32),
        ReduceKind::Min => (f32::INFINITY, min_f32),
    };
    out.fill(init);
    for (&d, &x) in index.iter().zip(src) {
        out[d] = f(out[d], x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_maps() {
        // [2, 3] transposed: out[j, i] = in[i, j].
        assert_eq!(
            affine(&[3, 2], &transpose_strides(&[2, 3], &[1, 0]), 0),
            vec![0, 3, 1, 4, 2, 5]
        );
        // [3, 1] broadcast to [3, 2].
        assert_eq!(
            affine(&[3, 2], &broadcast_strides(&[3, 1], &[3, 2]), 0),
            vec![0, 0, 1, 1, 2, 2]
        );
        // Sum of [2, 3] over axis 1.
        assert_eq!(
            affine(&[2, 3], &reduce_strides(&[2, 3], &[1]), 0),
            vec![0, 0, 0, 1, 1, 1]
        );
        assert_eq!(affine(&[], &[], 5), vec![5]);
        assert_eq!(affine(&[2], &[2], 1), vec![1, 3]);
        assert!(affine(&[2, 0], &[0, 1], 0).is_empty());
    }
}
