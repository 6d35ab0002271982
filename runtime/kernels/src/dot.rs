//! Products `A·B` with few rows and columns over a long `k`, where the rows of `A` and
//! the columns of `B` are contiguous (`B` is stored transposed): every result is a dot
//! product of two contiguous vectors. This is the shape of a convolution's weight
//! gradient (`dY · colsᵀ`: a few output channels by a few hundred taps, summed over
//! every position of the batch), which the packed kernel would run on one thread with
//! mostly empty tiles.
//!
//! `k` is cut into blocks of 2048 (8 KiB per row or column: the block of `A` and four
//! columns stay in the second-level cache, and the horizontal sums at the end of each
//! block are few); within a block four rows of `A` meet four columns of `B` at a time
//! (sixteen accumulators, eight loads per sixteen multiply-adds), every row against the
//! same four columns before the next ones, so `B` is read once. The last one to three
//! columns meet the rows one column at a time. Columns split over threads.

use crate::gemm::{Epilogue, MatRef};

/// Steps of `k` per block.
const KB: usize = 2048;

/// Whether [`product`] suits `[m, k] · [k, n]` with these operands: few rows and
/// columns over a long `k`, or at most four rows (a recurrent layer's step at batch 1,
/// `h · W_hhᵀ` with PyTorch's layout), where packing `B` would cost more than the
/// product.
pub fn suits(m: usize, n: usize, k: usize, a: MatRef, b: MatRef) -> bool {
    a.cs == 1
        && b.rs == 1
        && ((k >= 1024 && m * n <= 8192 && k >= 4 * m.max(n)) || (m <= 4 && k >= 16))
}

/// `C[r0.., c0..c1]` (row stride `ldc`) of `A·B` for rows `0..m` and columns `c0..c1`,
/// with the epilogue.
///
/// # Safety
/// As [`crate::Gemm::run`], with `a.cs == 1` and `b.rs == 1`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn product(
    (m, k): (usize, usize),
    (c0, c1): (usize, usize),
    a: MatRef,
    b: MatRef,
    c: *mut f32,
    ldc: usize,
    ep: Epilogue,
    simd: bool,
) {
    let at = |i: usize, j: usize| c.add(i * ldc + j);
    if !ep.accumulate {
        for i in 0..m {
            std::ptr::write_bytes(at(i, c0), 0, c1 - c0);
        }
    }
    let mut kb = 0;
    while kb < k {
        let kl = KB.min(k - kb);
        let row = |i: usize| a.ptr.offset(i as isize * a.rs).add(kb);
        let col = |j: usize| b.ptr.offset(j as isize * b.cs).add(kb);
        // Four columns at a time against every row (four rows at a time, then what is
        // left), so each column's slice is read once while the rows' stay in cache.
        let mut j = c0;
        while j < c1 {
            let w = (c1 - j).min(4);
            let cols = [0, 1, 2, 3].map(|q| col(j + q.min(w - 1)));
            let mut i = 0;
            while i + 4 <= m {
                let rows = [row(i), row(i + 1), row(i + 2), row(i + 3)];
                if w < 4 {
                    // The last one to three columns: each against four rows, rather
                    // than four columns of which most repeat.
                    for (q, &c) in cols.iter().enumerate().take(w) {
                        let d = dot4(c, rows, kl, simd);
                        for (r, &v) in d.iter().enumerate() {
                            *at(i + r, j + q) += v;
                        }
                    }
                    i += 4;
                    continue;
                }
                let d = dot4x4(rows, cols, kl, simd);
                for (r, d) in d.iter().enumerate() {
                    for (q, &v) in d.iter().enumerate() {
                        *at(i + r, j + q) += v;
                    }
                }
                i += 4;
            }
            for i in i..m {
                let d = dot4(row(i), cols, kl, simd);
                for (q, &v) in d.iter().enumerate().take(w) {
                    *at(i, j + q) += v;
                }
            }
            j += w;
        }
        kb += kl;
    }
    if ep.bias.is_some() || ep.relu {
        for i in 0..m {
            for j in c0..c1 {
                let mut v = *at(i, j);
                if let Some(bias) = ep.bias {
                    v += *bias.add(j);
                }
                if ep.relu {
                    v = crate::relu(v);
                }
                *at(i, j) = v;
            }
        }
    }
}

/// The dot products of `a` with each of `b`, over `k` contiguous elements.
unsafe fn dot4(a: *const f32, b: [*const f32; 4], k: usize, simd: bool) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if simd {
        return x86::dot4(a, b, k);
    }
    let _ = simd;
    let mut acc = [[0.0f32; 8]; 4];
    let full = k / 8 * 8;
    for p in (0..full).step_by(8) {
        for (q, acc) in acc.iter_mut().enumerate() {
            for (l, v) in acc.iter_mut().enumerate() {
                *v += *a.add(p + l) * *b[q].add(p + l);
            }
        }
    }
    let mut out = [0.0f32; 4];
    for (q, o) in out.iter_mut().enumerate() {
        *o = acc[q].iter().sum::<f32>();
        for p in full..k {
            *o += *a.add(p) * *b[q].add(p);
        }
    }
    out
}

/// The dot products of each of `a` with each of `b`, over `k` contiguous elements.
unsafe fn dot4x4(a: [*const f32; 4], b: [*const f32; 4], k: usize, simd: bool) -> [[f32; 4]; 4] {
    #[cfg(target_arch = "x86_64")]
    if simd {
        return x86::dot4x4(a, b, k);
    }
    a.map(|a| dot4(a, b, k, simd))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The AVX-512 dot products.

    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot4(a: *const f32, b: [*const f32; 4], k: usize) -> [f32; 4] {
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut p = 0;
        while p + 16 <= k {
            let x = _mm512_loadu_ps(a.add(p));
            for q in 0..4 {
                acc[q] = _mm512_fmadd_ps(x, _mm512_loadu_ps(b[q].add(p)), acc[q]);
            }
            p += 16;
        }
        if p < k {
            let mask = ((1u32 << (k - p)) - 1) as __mmask16;
            let x = _mm512_maskz_loadu_ps(mask, a.add(p));
            for q in 0..4 {
                let y = _mm512_maskz_loadu_ps(mask, b[q].add(p));
                acc[q] = _mm512_fmadd_ps(x, y, acc[q]);
            }
        }
        sum4(acc)
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot4x4(a: [*const f32; 4], b: [*const f32; 4], k: usize) -> [[f32; 4]; 4] {
        let mut acc = [[_mm512_setzero_ps(); 4]; 4];
        let mut p = 0;
        while p + 16 <= k {
            let y = [0, 1, 2, 3].map(|q| _mm512_loadu_ps(b[q].add(p)));
            for r in 0..4 {
                let x = _mm512_loadu_ps(a[r].add(p));
                for q in 0..4 {
                    acc[r][q] = _mm512_fmadd_ps(x, y[q], acc[r][q]);
                }
            }
            p += 16;
        }
        if p < k {
            let mask = ((1u32 << (k - p)) - 1) as __mmask16;
            let y = [0, 1, 2, 3].map(|q| _mm512_maskz_loadu_ps(mask, b[q].add(p)));
            for r in 0..4 {
                let x = _mm512_maskz_loadu_ps(mask, a[r].add(p));
                for q in 0..4 {
                    acc[r][q] = _mm512_fmadd_ps(x, y[q], acc[r][q]);
                }
            }
        }
        acc.map(|row| sum4(row))
    }

    /// The sums of the sixteen lanes of each of four vectors, reduced together: two
    /// rounds of interleaving adds leave each 128-bit lane holding a partial sum of
    /// all four, and the four lanes are added (a fifth of the instructions of four
    /// separate reductions, which a short `k` — a decoder's 128 — would spend as much
    /// time on as on its multiply-adds).
    #[target_feature(enable = "avx512f")]
    unsafe fn sum4(a: [__m512; 4]) -> [f32; 4] {
        // Per 128-bit lane: [a0₀+a0₂, a1₀+a1₂, a0₁+a0₃, a1₁+a1₃], and so for a2, a3.
        let s01 = _mm512_add_ps(
            _mm512_unpacklo_ps(a[0], a[1]),
            _mm512_unpackhi_ps(a[0], a[1]),
        );
        let s23 = _mm512_add_ps(
            _mm512_unpacklo_ps(a[2], a[3]),
            _mm512_unpackhi_ps(a[2], a[3]),
        );
        // Per lane: [Σa0, Σa1, Σa2, Σa3] over that lane's four elements.
        let s = _mm512_add_ps(
            _mm512_shuffle_ps::<0x44>(s01, s23),
            _mm512_shuffle_ps::<0xEE>(s01, s23),
        );
        let q = _mm_add_ps(
            _mm_add_ps(
                _mm512_extractf32x4_ps::<0>(s),
                _mm512_extractf32x4_ps::<1>(s),
            ),
            _mm_add_ps(
                _mm512_extractf32x4_ps::<2>(s),
                _mm512_extractf32x4_ps::<3>(s),
            ),
        );
        let mut out = [0.0f32; 4];
        _mm_storeu_ps(out.as_mut_ptr(), q);
        out
    }
}
