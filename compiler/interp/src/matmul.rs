//! Batched matrix multiplication, `[B, M, K] @ [B, K, N]`: `f32` with `f32`
//! accumulation, and `i8` with exact `i32` accumulation.
//!
//! The loop order is i-k-j: for each row `i` of the result and each `k`, row `k` of the
//! right operand, scaled by `a[i, k]`, is added to row `i` of the result. Both rows are
//! contiguous, so the inner loop is a plain `c += s · b` over slices that the compiler
//! vectorises. Every `c[i, j]` is therefore the sum over `k` in increasing order of
//! `a[i, k] · b[k, j]`, starting from 0, each product rounded to `f32` and then added
//! (no fused multiply-add).

/// `c[b, i, j] = Σ_k a[b, i, k] · b[b, k, j]`; `a` holds `batch·m·k` elements and `b`
/// holds `batch·k·n`.
pub fn matmul_f32(a: &[f32], b: &[f32], batch: usize, m: usize, k: usize, n: usize) -> Vec<f32> {
    products(a, b, (batch, m, k, n), |c: f32, x, y| c + x * y)
}

/// `c[b, i, j] = Σ_k a[b, i, k] · b[b, k, j]` of `i8` operands, exactly in `i32`
/// (wrapping, as the native kernel's `i32` accumulators; with at most 2¹⁷ steps of `k`
/// nothing wraps: |a·b| ≤ 2¹⁴).
pub fn matmul_i8(a: &[i8], b: &[i8], batch: usize, m: usize, k: usize, n: usize) -> Vec<i32> {
    products(a, b, (batch, m, k, n), |c: i32, x, y| {
        c.wrapping_add(i32::from(x) * i32::from(y))
    })
}

/// The i-k-j loop of the module documentation, each step `c = mac(c, a[i, k], b[k, j])`
/// from `C::default()`.
fn products<T: Copy, C: Copy + Default>(
    a: &[T],
    b: &[T],
    (batch, m, k, n): (usize, usize, usize, usize),
    mac: impl Fn(C, T, T) -> C,
) -> Vec<C> {
    let mut c = vec![C::default(); batch * m * n];
    if m == 0 || k == 0 || n == 0 {
        return c;
    }
    for ((a, b), c) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(c.chunks_exact_mut(m * n))
        .take(batch)
    {
        for (a_row, c_row) in a.chunks_exact(k).zip(c.chunks_exact_mut(n)) {
            for (&a_ik, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
                for (c_ij, &b_kj) in c_row.iter_mut().zip(b_row) {
                    *c_ij = mac(*c_ij, a_ik, b_kj);
                }
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_products() {
        // [[1, 2], [3, 4]] @ [[5, 6], [7, 8]]
        assert_eq!(
            matmul_f32(&[1., 2., 3., 4.], &[5., 6., 7., 8.], 1, 2, 2, 2),
            vec![19., 22., 43., 50.]
        );
        // Two batches of [1, 3] @ [3, 1].
        let a = [1., 2., 3., 4., 5., 6.];
        let b = [1., 1., 1., 2., 0., 1.];
        assert_eq!(matmul_f32(&a, &b, 2, 1, 3, 1), vec![6., 14.]);
        // Empty inner dimension: zeros; empty batch or rows: nothing.
        assert_eq!(matmul_f32(&[], &[], 1, 2, 0, 3), vec![0.; 6]);
        assert!(matmul_f32(&[], &[], 0, 2, 2, 2).is_empty());
        assert!(matmul_f32(&[], &[1., 2.], 1, 0, 1, 2).is_empty());
    }

    #[test]
    fn nan_and_zero_are_not_skipped() {
        let c = matmul_f32(&[0.0], &[f32::NAN], 1, 1, 1, 1);
        assert!(c[0].is_nan());
    }
}
