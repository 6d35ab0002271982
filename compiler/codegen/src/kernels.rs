//! The `f32` reduction and matmul kernels, and the index maps of the data-movement ops (the same affine maps as the interpreter's).

use dnnc_ir::scalar::{max_f32, min_f32};
use dnnc_ir::ReduceKind;

/// Row-major strides.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1];
    }
    s
}

/// `offset + Σ_k i_k · strides[k]` for every multi-index `i` of `shape`, in row-major
/// order.
pub(crate) fn affine(shape: &[usize], strides: &[usize], offset: usize) -> Vec<usize> {
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
pub(crate) fn transpose_strides(in_shape: &[usize], perm: &[usize]) -> Vec<usize> {
    let s = strides(in_shape);
    perm.iter().map(|&p| s[p]).collect()
}

/// The input stride each output axis of a NumPy broadcast walks (0 on new or size-1 axes).
pub(crate) fn broadcast_strides(in_shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
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
pub(crate) fn reduce_strides(in_shape: &[usize], axes: &[usize]) -> Vec<usize> {
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
pub(crate) fn reduce(kind: ReduceKind, src: &[f32], index: &[usize], out: &mut [f32]) {
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

/// `c[b] = a[b] @ b[b]` for `dims = [batch, m, k, n]`.
///
/// Every `c[i][j]` is accumulated over `k` in order, in `f32`, without fused
/// multiply-add — the interpreter's arithmetic, so results agree bit for bit. Speed
/// comes only from what leaves that order alone: four rows of `a` share each row of
/// `b` while it is in registers and cache, and large products split their rows over
/// two threads.
pub(crate) fn matmul(a: &[f32], b: &[f32], dims: [usize; 4], c: &mut [f32]) {
    let [batch, m, k, n] = dims;
    c.fill(0.0);
    if m == 0 || k == 0 || n == 0 {
        return;
    }
    for ((a, b), c) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(c.chunks_exact_mut(m * n))
        .take(batch)
    {
        let threads = if m >= 8 && m * k * n >= 1 << 20 { 2 } else { 1 };
        if threads == 1 {
            rows(a, b, c, k, n);
            continue;
        }
        // Split at a multiple of four rows so both halves use the blocked loop.
        let split = (m / 2).div_ceil(4) * 4;
        let (a0, a1) = a.split_at(split * k);
        let (c0, c1) = c.split_at_mut(split * n);
        std::thread::scope(|s| {
            s.spawn(|| rows(a1, b, c1, k, n));
            rows(a0, b, c0, k, n);
        });
    }
}

/// `c += a @ b` for the rows of `a` and `c` given (`k` columns of `a`, `n` of `b`).
fn rows(a: &[f32], b: &[f32], c: &mut [f32], k: usize, n: usize) {
    let mut a_rows = a.chunks_exact(4 * k);
    let mut c_rows = c.chunks_exact_mut(4 * n);
    for (a4, c4) in (&mut a_rows).zip(&mut c_rows) {
        let (c0, rest) = c4.split_at_mut(n);
        let (c1, rest) = rest.split_at_mut(n);
        let (c2, c3) = rest.split_at_mut(n);
        for (kk, b_row) in b.chunks_exact(n).enumerate() {
            let (x0, x1, x2, x3) = (a4[kk], a4[k + kk], a4[2 * k + kk], a4[3 * k + kk]);
            for j in 0..n {
                let bj = b_row[j];
                c0[j] += x0 * bj;
                c1[j] += x1 * bj;
                c2[j] += x2 * bj;
                c3[j] += x3 * bj;
            }
        }
    }
    for (a_row, c_row) in a_rows
        .remainder()
        .chunks_exact(k)
        .zip(c_rows.into_remainder().chunks_exact_mut(n))
    {
        for (&a_ik, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
            for (c_ij, &b_kj) in c_row.iter_mut().zip(b_row) {
                *c_ij += a_ik * b_kj;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_threaded_matmul_equals_the_plain_loop_bit_for_bit() {
        // 13 rows: three blocks of four and a remainder; large enough for two threads.
        let (m, k, n) = (13, 300, 300);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 11.0)
            .collect();
        let mut fast = vec![0.0; m * n];
        matmul(&a, &b, [1, m, k, n], &mut fast);
        let mut plain = vec![0.0f32; m * n];
        for i in 0..m {
            for kk in 0..k {
                for j in 0..n {
                    plain[i * n + j] += a[i * k + kk] * b[kk * n + j];
                }
            }
        }
        assert!(fast
            .iter()
            .zip(&plain)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }

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

    #[test]
    fn small_matmul() {
        let mut c = [0.0; 4];
        matmul(&[1., 2., 3., 4.], &[5., 6., 7., 8.], [1, 2, 2, 2], &mut c);
        assert_eq!(c, [19., 22., 43., 50.]);
    }
}
