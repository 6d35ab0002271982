//! Products of operands rounded to bfloat16, accumulated in `f32`: what mixed-precision
//! training computes for every matrix product (`precision = bf16`). The operands stay
//! `f32` in memory and are rounded (to nearest, ties to even) as they are packed, so no
//! `bf16` copy of a weight or activation is ever stored.
//!
//! Two kernels compute the same sums, in different orders:
//! - [`Bf16Path::Dpbf16`] (CPUs with AVX-512 BF16): operands packed as pairs of `bf16`
//!   along `k` (the VNNI layout: `B`'s panel as `[k/2][NR][2]`, `A`'s strip as
//!   `[k/2][MR][2]`), and `vdpbf16ps` adds two products per lane and instruction into a
//!   12×32 tile of `f32` accumulators — twice the multiply-adds of an `f32` FMA. An odd
//!   `k` is padded with a zero pair element.
//! - [`Bf16Path::F32`] (everywhere else, and the reference): the rounded values are
//!   packed as `f32` and go through the `f32` micro-kernel. A product of two `bf16` is
//!   exact in `f32`, so both paths differ only in the order of the additions (and in
//!   `vcvtneps2bf16` and `vdpbf16ps` treating subnormal values as zero).
//!
//! AMX (`tdpbf16ps` on 16×32 tiles) would be a third path; the machines this was built
//! on have no AMX, so it is not written (a kernel nobody can run is not tested).

use std::sync::atomic::{AtomicU8, Ordering};

use crate::gemm::{Epilogue, MatRef, Tile, MR, NR};

/// Which kernel runs `bf16` products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Path {
    /// `vdpbf16ps` (AVX-512 BF16).
    Dpbf16,
    /// Rounded operands through the `f32` kernel.
    F32,
}

/// 0: by the CPU; 1: `Dpbf16`; 2: `F32`.
static FORCED: AtomicU8 = AtomicU8::new(0);

/// Forces a path (tests, benchmarks); `None` chooses by the CPU again. Forcing
/// `Dpbf16` on a CPU without AVX-512 BF16 falls back to `F32`.
pub fn force_path(p: Option<Bf16Path>) {
    let v = match p {
        None => 0,
        Some(Bf16Path::Dpbf16) => 1,
        Some(Bf16Path::F32) => 2,
    };
    FORCED.store(v, Ordering::Relaxed);
}

/// Whether this CPU has `vdpbf16ps`.
pub fn has_dpbf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
            && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The path products take now.
pub fn path() -> Bf16Path {
    match FORCED.load(Ordering::Relaxed) {
        2 => Bf16Path::F32,
        _ if has_dpbf16() => Bf16Path::Dpbf16,
        _ => Bf16Path::F32,
    }
}

/// Whether products of few rows can stream `B`, rounding it as it is loaded (needs
/// the AVX-512 BF16 conversion; not when the `F32` path is forced, which packs).
pub(crate) fn streams() -> bool {
    path() == Bf16Path::Dpbf16
}

/// The `bf16` bits of `x`, rounded to nearest with ties to even (NaN stays NaN).
#[inline(always)]
pub fn to_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// `x` rounded to the nearest `bf16`, as an `f32`.
#[inline(always)]
pub fn round(x: f32) -> f32 {
    f32::from_bits(u32::from(to_bits(x)) << 16)
}

/// Packed pairs per block of `k` (the block is `2·KP` steps).
pub(crate) const KP: usize = 128;

/// Words (`u32`, one pair; or `f32` for [`Bf16Path::F32`], two per pair) the packing
/// buffers of one thread need for `n` columns: `(A, B)`.
pub(crate) fn workspace_words(n: usize) -> (usize, usize) {
    (2 * KP * MR, 2 * KP * n.div_ceil(NR) * NR)
}

/// The pairs of `B[p0..p0 + kc, j0..j0 + NR]`: word `q·NR + j` holds
/// `(B[p0 + 2q, j0 + j], B[p0 + 2q + 1, j0 + j])`, the low half first; missing columns
/// and a missing last row are zeros.
unsafe fn pack_b(dst: *mut u32, b: MatRef, p0: usize, kc: usize, j0: usize, n: usize) {
    let nr = NR.min(n - j0);
    let src = b.ptr.offset(p0 as isize * b.rs + j0 as isize * b.cs);
    #[cfg(target_arch = "x86_64")]
    if b.cs == 1 && nr == NR {
        return x86::pack_rows(dst, src, b.rs, kc);
    }
    #[cfg(target_arch = "x86_64")]
    if b.rs == 1 {
        // Transposed `B`: each column is contiguous along `k`.
        for j in 0..NR {
            if j < nr {
                x86::pack_strided(dst.add(j), NR, src.offset(j as isize * b.cs), kc);
            } else {
                for q in 0..kc.div_ceil(2) {
                    *dst.add(q * NR + j) = 0;
                }
            }
        }
        return;
    }
    let at = |p: usize, j: usize| -> u32 {
        if p < kc && j < nr {
            u32::from(to_bits(*src.offset(p as isize * b.rs + j as isize * b.cs)))
        } else {
            0
        }
    };
    for j in 0..NR {
        for q in 0..kc.div_ceil(2) {
            *dst.add(q * NR + j) = at(2 * q, j) | (at(2 * q + 1, j) << 16);
        }
    }
}

/// The pairs of rows `i0..i0 + mr` of `A[.., p0..p0 + kc]`, row by row: word
/// `r·KP + q` holds `(A[i0 + r, p0 + 2q], A[i0 + r, p0 + 2q + 1])`; missing rows and a
/// missing last column are zeros.
unsafe fn pack_a(dst: *mut u32, a: MatRef, i0: usize, mr: usize, p0: usize, kc: usize) {
    let pairs = kc.div_ceil(2);
    for r in 0..MR {
        let out = dst.add(r * KP);
        if r >= mr {
            std::ptr::write_bytes(out, 0, pairs);
            continue;
        }
        let row = a.ptr.offset((i0 + r) as isize * a.rs + p0 as isize * a.cs);
        #[cfg(target_arch = "x86_64")]
        if a.cs == 1 {
            x86::pack_row(out, row, kc);
            continue;
        }
        #[cfg(target_arch = "x86_64")]
        if a.rs == 1 && a.cs > 0 && pairs > 0 {
            // Transposed `A`: the strip's rows are contiguous for each step of `k`.
            x86::pack_columns(
                dst,
                KP,
                a.ptr.offset(i0 as isize + p0 as isize * a.cs),
                a.cs,
                mr,
                kc,
            );
            break;
        }
        let at = |p: usize| -> u32 {
            if p < kc {
                u32::from(to_bits(*row.offset(p as isize * a.cs)))
            } else {
                0
            }
        };
        for q in 0..pairs {
            *out.add(q) = at(2 * q) | (at(2 * q + 1) << 16);
        }
    }
}

/// Rows `r0..r1` by columns `c0..c1` of `C = round(A)·round(B)` with the epilogue,
/// `C` row-major with `ldc` columns; `ws_a`/`ws_b` as [`workspace_words`] says.
///
/// # Safety
/// As [`crate::Gemm::run`]; the workspaces are this caller's alone.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn product(
    (r0, r1, c0, c1): (usize, usize, usize, usize),
    k: usize,
    a: MatRef,
    b: MatRef,
    c: *mut f32,
    ldc: usize,
    ep: Epilogue,
    (ws_a, ws_b): (&mut [u32], &mut [u32]),
) {
    let dpbf16 = path() == Bf16Path::Dpbf16;
    #[cfg(not(target_arch = "x86_64"))]
    let _ = dpbf16;
    let (m, n) = (r1 - r0, c1 - c0);
    let a = MatRef {
        ptr: a.ptr.offset(r0 as isize * a.rs),
        ..a
    };
    let b = MatRef {
        ptr: b.ptr.offset(c0 as isize * b.cs),
        ..b
    };
    let c = c.add(r0 * ldc + c0);
    // Blocks of at most `2·KP` steps of `k` (even, so no pair straddles two); one
    // empty block when `k = 0`, which stores the epilogue of a zero product.
    let mut p0 = 0;
    loop {
        let kc = (2 * KP).min(k - p0);
        let first = p0 == 0 && !ep.accumulate;
        let last = p0 + kc == k;
        let panels = n.div_ceil(NR);
        if !dpbf16 {
            let ep = Epilogue {
                bias: ep.bias.map(|p| p.add(c0)),
                ..ep
            };
            rounded_block(
                (m, n),
                (p0, kc),
                a,
                b,
                c,
                ldc,
                (first, last),
                ep,
                (ws_a, ws_b),
            );
            p0 += kc;
            if p0 >= k {
                return;
            }
            continue;
        }
        for panel in 0..panels {
            pack_b(
                ws_b.as_mut_ptr().add(panel * KP * NR),
                b,
                p0,
                kc,
                panel * NR,
                n,
            );
        }
        let mut i0 = 0;
        while i0 < m {
            let mr = MR.min(m - i0);
            pack_a(ws_a.as_mut_ptr(), a, i0, mr, p0, kc);
            for panel in 0..panels {
                let j0 = panel * NR;
                let tile = Tile {
                    c: c.add(i0 * ldc + j0),
                    ldc,
                    mr,
                    nr: NR.min(n - j0),
                    first,
                    bias: if last {
                        ep.bias.map(|p| p.add(c0 + j0))
                    } else {
                        None
                    },
                    relu: last && ep.relu,
                };
                let bp = ws_b.as_ptr().add(panel * KP * NR);
                #[cfg(target_arch = "x86_64")]
                x86::micro(kc.div_ceil(2), ws_a.as_ptr(), bp, tile);
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("{tile:p}{bp:p}: no vdpbf16ps here");
            }
            i0 += MR;
        }
        p0 += kc;
        if p0 >= k {
            return;
        }
    }
}

/// One block of `k` on [`Bf16Path::F32`]: the operands packed as `f32` as the `f32`
/// kernel packs them, rounded, and multiplied by its micro-kernel.
#[allow(clippy::too_many_arguments)]
unsafe fn rounded_block(
    (m, n): (usize, usize),
    (p0, kc): (usize, usize),
    a: MatRef,
    b: MatRef,
    c: *mut f32,
    ldc: usize,
    (first, last): (bool, bool),
    ep: Epilogue,
    (ws_a, ws_b): (&mut [u32], &mut [u32]),
) {
    let simd = crate::gemm::avx512();
    let wa: &mut [f32] = bytemuck_f32(ws_a);
    let wb: &mut [f32] = bytemuck_f32(ws_b);
    let panels = n.div_ceil(NR);
    crate::gemm::pack_b(wb, b, p0, kc, n);
    for v in wb[..panels * kc * NR].iter_mut() {
        *v = round(*v);
    }
    let mut i0 = 0;
    while i0 < m {
        let mr = MR.min(m - i0);
        crate::gemm::pack_a(wa, a, i0, mr, p0, kc);
        for v in wa[..kc * MR].iter_mut() {
            *v = round(*v);
        }
        for panel in 0..panels {
            let j0 = panel * NR;
            let tile = Tile {
                c: c.add(i0 * ldc + j0),
                ldc,
                mr,
                nr: NR.min(n - j0),
                first,
                bias: if last {
                    ep.bias.map(|p| p.add(j0))
                } else {
                    None
                },
                relu: last && ep.relu,
            };
            crate::gemm::micro(
                kc,
                wa.as_ptr(),
                wb.as_ptr().add(panel * kc * NR),
                tile,
                simd,
            );
        }
        i0 += MR;
    }
}

/// A buffer of words as `f32`s (same size and alignment).
fn bytemuck_f32(w: &mut [u32]) -> &mut [f32] {
    // SAFETY: `u32` and `f32` have the same size and alignment, and every bit
    // pattern is a valid `f32`.
    unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr() as *mut f32, w.len()) }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! The `vdpbf16ps` micro-kernel, and the streaming and dot-product forms for few
    //! rows or columns (called by `Gemm` when [`super::streams`] holds).

    use std::arch::x86_64::*;

    use super::{KP, NR};
    use crate::gemm::Tile;

    /// 16 `f32` at `p` (the first `valid`) as `bf16` bits, each in the low half of a
    /// 32-bit lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn widened(p: *const f32, valid: usize) -> __m512i {
        let mask = if valid >= 16 {
            0xffff
        } else {
            ((1u32 << valid) - 1) as __mmask16
        };
        let v = _mm512_maskz_loadu_ps(mask, p);
        _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(
            _mm512_cvtneps_pbh(v),
        ))
    }

    /// `kc` rows (stride `rs`) of 32 contiguous columns as pairs `[q][32]`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn pack_rows(dst: *mut u32, src: *const f32, rs: isize, kc: usize) {
        for q in 0..kc.div_ceil(2) {
            let lo = src.offset(2 * q as isize * rs);
            for h in 0..2 {
                let even = widened(lo.add(16 * h), 16);
                let odd = if 2 * q + 1 < kc {
                    widened(lo.offset(rs).add(16 * h), 16)
                } else {
                    _mm512_setzero_si512()
                };
                let w = _mm512_or_si512(even, _mm512_slli_epi32::<16>(odd));
                _mm512_storeu_si512(dst.add(q * NR + 16 * h) as *mut _, w);
            }
        }
    }

    /// `kc` contiguous values as `kc / 2` (rounded up) pairs.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn pack_row(dst: *mut u32, src: *const f32, kc: usize) {
        let mut p = 0;
        while p < kc {
            let valid = (kc - p).min(32);
            let lo = _mm512_maskz_loadu_ps(lanes(valid), src.add(p));
            let hi = _mm512_maskz_loadu_ps(lanes(valid.saturating_sub(16)), src.add(p + 16));
            let pairs: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            let words = valid.div_ceil(2);
            let mask = if words >= 16 {
                0xffff
            } else {
                ((1u32 << words) - 1) as __mmask16
            };
            _mm512_mask_storeu_epi32(dst.add(p / 2) as *mut _, mask, pairs);
            p += 32;
        }
    }

    /// `kc` contiguous values as pairs stored `stride` words apart (a column of a
    /// transposed `B` into its panel).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn pack_strided(dst: *mut u32, stride: usize, src: *const f32, kc: usize) {
        let idx = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(stride as i32),
        );
        let mut p = 0;
        while p < kc {
            let valid = (kc - p).min(32);
            let lo = _mm512_maskz_loadu_ps(lanes(valid), src.add(p));
            let hi = _mm512_maskz_loadu_ps(lanes(valid.saturating_sub(16)), src.add(p + 16));
            let pairs: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            let words = lanes(valid.div_ceil(2));
            _mm512_mask_i32scatter_epi32::<4>(dst.add(p / 2 * stride) as *mut _, words, idx, pairs);
            p += 32;
        }
    }

    /// Rows `0..mr` (of `MR`; the rest zeros) of a transposed strip — row `r` of step
    /// `p` at `src + r + p·cs` — as pairs, row `r`'s pair `q` at `dst[r·stride + q]`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn pack_columns(
        dst: *mut u32,
        stride: usize,
        src: *const f32,
        cs: isize,
        mr: usize,
        kc: usize,
    ) {
        let idx = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(stride as i32),
        );
        let rows = lanes(super::MR);
        for q in 0..kc.div_ceil(2) {
            let even = widened(src.offset(2 * q as isize * cs), mr);
            let odd = if 2 * q + 1 < kc {
                widened(src.offset((2 * q + 1) as isize * cs), mr)
            } else {
                _mm512_setzero_si512()
            };
            let w = _mm512_or_si512(even, _mm512_slli_epi32::<16>(odd));
            _mm512_mask_i32scatter_epi32::<4>(dst.add(q) as *mut _, rows, idx, w);
        }
    }

    /// `v` rounded to `bf16`, as `f32`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn rounded(v: __m512) -> __m512 {
        let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
    }

    /// Columns per block of [`direct`].
    const W: usize = 64;

    /// Few rows (at most 16: batch-1 inference) times `B` with unit column stride,
    /// streamed once per four rows without packing (as the `f32` kernel does), both
    /// operands rounded as they are loaded; columns `c0..c1` of `C` (row stride
    /// `ldc`).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(crate) unsafe fn direct(
        (m, k): (usize, usize),
        (c0, c1): (usize, usize),
        a: crate::gemm::MatRef,
        b: crate::gemm::MatRef,
        c: *mut f32,
        ldc: usize,
        ep: crate::gemm::Epilogue,
    ) {
        let mut j0 = c0;
        while j0 < c1 {
            let nr = W.min(c1 - j0);
            let masks = [0, 1, 2, 3].map(|q| lanes(nr.saturating_sub(16 * q)));
            let vecs = nr.div_ceil(16);
            let mut i0 = 0;
            while i0 < m {
                let rows = (m - i0).min(4);
                let mut acc = [[_mm512_setzero_ps(); 4]; 4];
                for p in 0..k {
                    let row = b.ptr.offset(p as isize * b.rs).add(j0);
                    let mut bv = [_mm512_setzero_ps(); 4];
                    for q in 0..vecs {
                        bv[q] = rounded(_mm512_maskz_loadu_ps(masks[q], row.add(16 * q)));
                    }
                    for (i, accs) in acc.iter_mut().enumerate().take(rows) {
                        let x = super::round(
                            *a.ptr.offset((i0 + i) as isize * a.rs + p as isize * a.cs),
                        );
                        let x = _mm512_set1_ps(x);
                        for q in 0..vecs {
                            accs[q] = _mm512_fmadd_ps(x, bv[q], accs[q]);
                        }
                    }
                }
                let t = Tile {
                    c: c.add(i0 * ldc + j0),
                    ldc,
                    mr: rows,
                    nr,
                    first: !ep.accumulate,
                    bias: ep.bias.map(|p| p.add(j0)),
                    relu: ep.relu,
                };
                for (i, accs) in acc.iter().enumerate().take(rows) {
                    for (q, &v) in accs.iter().enumerate().take(vecs) {
                        let t = Tile {
                            c: t.c.add(16 * q),
                            nr: nr - 16 * q,
                            bias: t.bias.map(|p| p.add(16 * q)),
                            ..t
                        };
                        crate::gemm::store_vec(&t, i, 0, v);
                    }
                }
                i0 += 4;
            }
            j0 += W;
        }
    }

    /// 32 values at `p` (the first `valid`) as 16 `bf16` pairs.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn pairs32(p: *const f32, valid: usize) -> __m512bh {
        let lo = _mm512_maskz_loadu_ps(lanes(valid), p);
        let hi = _mm512_maskz_loadu_ps(lanes(valid.saturating_sub(16)), p.add(16));
        _mm512_cvtne2ps_pbh(hi, lo)
    }

    /// Rows `0..m` by columns `c0..c1` of `round(A)·round(B)` as dot products of
    /// contiguous rows of `A` (`a.cs = 1`) and columns of `B` (`b.rs = 1`): four rows
    /// by four columns at a time, 32 steps of `k` per conversion.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(crate) unsafe fn dots(
        (m, k): (usize, usize),
        (c0, c1): (usize, usize),
        a: crate::gemm::MatRef,
        b: crate::gemm::MatRef,
        c: *mut f32,
        ldc: usize,
        ep: crate::gemm::Epilogue,
    ) {
        let mut i0 = 0;
        while i0 < m {
            let rows = (m - i0).min(4);
            let mut j0 = c0;
            while j0 < c1 {
                let cols = (c1 - j0).min(4);
                let mut acc = [[_mm512_setzero_ps(); 4]; 4];
                let mut p = 0;
                while p < k {
                    let valid = (k - p).min(32);
                    let bv: [__m512bh; 4] = std::array::from_fn(|q| {
                        pairs32(
                            b.ptr.offset((j0 + q.min(cols - 1)) as isize * b.cs).add(p),
                            valid,
                        )
                    });
                    for (r, accs) in acc.iter_mut().enumerate().take(rows) {
                        let av = pairs32(a.ptr.offset((i0 + r) as isize * a.rs).add(p), valid);
                        for q in 0..cols {
                            accs[q] = _mm512_dpbf16_ps(accs[q], av, bv[q]);
                        }
                    }
                    p += 32;
                }
                for (r, accs) in acc.iter().enumerate().take(rows) {
                    for (q, &v) in accs.iter().enumerate().take(cols) {
                        let at = c.add((i0 + r) * ldc + j0 + q);
                        let mut x = _mm512_reduce_add_ps(v);
                        if ep.accumulate {
                            x += *at;
                        }
                        if let Some(bias) = ep.bias {
                            x += *bias.add(j0 + q);
                        }
                        if ep.relu {
                            x = crate::relu(x);
                        }
                        *at = x;
                    }
                }
                j0 += cols;
            }
            i0 += rows;
        }
    }

    fn lanes(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// The 12×32 tile, two pairs of `k` per lane and instruction; 24 accumulators
    /// named one by one, as the `f32` kernel keeps them.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn micro(pairs: usize, ap: *const u32, bp: *const u32, t: Tile) {
        macro_rules! tile {
            ($(($r:literal, $c0:ident, $c1:ident)),*) => {{
                $(let mut $c0 = _mm512_setzero_ps(); let mut $c1 = _mm512_setzero_ps();)*
                let mut b = bp;
                for q in 0..pairs {
                    let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b as *const _));
                    let b1: __m512bh =
                        std::mem::transmute(_mm512_loadu_si512(b.add(16) as *const _));
                    $(
                        let x: __m512bh =
                            std::mem::transmute(_mm512_set1_epi32(*ap.add($r * KP + q) as i32));
                        $c0 = _mm512_dpbf16_ps($c0, x, b0);
                        $c1 = _mm512_dpbf16_ps($c1, x, b1);
                    )*
                    b = b.add(NR);
                }
                $(
                    if $r < t.mr {
                        crate::gemm::store_vec(&t, $r, 0, $c0);
                        crate::gemm::store_vec(&t, $r, 1, $c1);
                    }
                )*
            }};
        }
        tile!(
            (0, c00, c01),
            (1, c10, c11),
            (2, c20, c21),
            (3, c30, c31),
            (4, c40, c41),
            (5, c50, c51),
            (6, c60, c61),
            (7, c70, c71),
            (8, c80, c81),
            (9, c90, c91),
            (10, ca0, ca1),
            (11, cb0, cb1)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Gemm;

    /// The tests that force a path run one at a time.
    static FORCING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn data(len: usize, seed: u64) -> Vec<f32> {
        crate::draws(len, seed)
            .map(|s| ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0)
            .collect()
    }

    /// Both paths (each forced), odd shapes (`k` odd and not a multiple of 32, fewer
    /// than 12 rows or 32 columns, several blocks of `k`), transposed operands, the
    /// epilogue and threads, against a double-precision product of the rounded
    /// operands.
    #[test]
    fn products_match_a_reference_of_the_rounded_operands() {
        let _one = FORCING.lock().unwrap();
        let shapes = [
            (1, 1, 1),
            (5, 7, 3),
            (13, 33, 45),
            (12, 32, 32),
            (3, 100, 257),
            (40, 70, 600),
            (128, 256, 784),
            (7, 9, 0),
            (8, 25, 2000),
            (3, 6, 70),
        ];
        let paths = [Some(Bf16Path::F32), Some(Bf16Path::Dpbf16)];
        for path in paths {
            force_path(path);
            for &(m, n, k) in &shapes {
                for (ta, tb) in [(false, false), (true, false), (false, true)] {
                    let a = data(m * k, 1 + m as u64);
                    let b = data(k * n, 2 + n as u64);
                    let bias = data(n, 3);
                    let want: Vec<f64> = (0..m * n)
                        .map(|ij| {
                            let (i, j) = (ij / n, ij % n);
                            let at = |p: usize| if ta { a[p * m + i] } else { a[i * k + p] };
                            let bt = |p: usize| if tb { b[j * k + p] } else { b[p * n + j] };
                            let dot: f64 = (0..k)
                                .map(|p| f64::from(round(at(p))) * f64::from(round(bt(p))))
                                .sum();
                            (dot + f64::from(bias[j])).max(0.0)
                        })
                        .collect();
                    let mut c = vec![f32::NAN; m * n];
                    let mut g = Gemm::bf16(m, n, k);
                    unsafe {
                        g.run(
                            MatRef::dense(a.as_ptr(), m, k, ta),
                            MatRef::dense(b.as_ptr(), k, n, tb),
                            c.as_mut_ptr(),
                            Epilogue {
                                accumulate: false,
                                bias: Some(bias.as_ptr()),
                                relu: true,
                            },
                        )
                    };
                    for (ij, (&got, &want)) in c.iter().zip(&want).enumerate() {
                        // f32 accumulation of `k` exact products.
                        let tol = 1e-6 * (k as f64 + 1.0) * 4.0 + 1e-6;
                        assert!(
                            (f64::from(got) - want).abs() <= tol,
                            "{path:?} {m}x{n}x{k} (ta {ta}, tb {tb}) at {ij}: {got} vs {want}"
                        );
                    }
                }
            }
        }
        force_path(None);
    }

    #[test]
    fn the_paths_differ_from_f32_products_only_by_rounding() {
        let _one = FORCING.lock().unwrap();
        // Operands exact in bf16: every path gives the f32 product of the values.
        let (m, n, k) = (20, 40, 64);
        let a: Vec<f32> = data(m * k, 9).into_iter().map(round).collect();
        let b: Vec<f32> = data(k * n, 10).into_iter().map(round).collect();
        let mut want = vec![0.0; m * n];
        let mut f = Gemm::new(m, n, k);
        unsafe {
            f.run(
                MatRef::dense(a.as_ptr(), m, k, false),
                MatRef::dense(b.as_ptr(), k, n, false),
                want.as_mut_ptr(),
                Epilogue::default(),
            )
        };
        for path in [Bf16Path::F32, Bf16Path::Dpbf16] {
            force_path(Some(path));
            let mut c = vec![0.0; m * n];
            let mut g = Gemm::bf16(m, n, k);
            unsafe {
                g.run(
                    MatRef::dense(a.as_ptr(), m, k, false),
                    MatRef::dense(b.as_ptr(), k, n, false),
                    c.as_mut_ptr(),
                    Epilogue::default(),
                )
            };
            let err = c
                .iter()
                .zip(&want)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-4, "{path:?}: {err}");
        }
        force_path(None);
        assert_eq!(path() == Bf16Path::Dpbf16, has_dpbf16());
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(round(1.0), 1.0);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even 1.
        assert_eq!(round(1.0 + 1.0 / 256.0), 1.0);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to the even one above.
        assert_eq!(round(1.0 + 3.0 / 256.0), 1.0 + 1.0 / 64.0);
        assert_eq!(round(1.0 + 1.0 / 200.0), 1.0 + 1.0 / 128.0);
        assert!(round(f32::NAN).is_nan());
        assert_eq!(round(f32::INFINITY), f32::INFINITY);
        assert_eq!(round(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(round(f32::MAX), f32::INFINITY, "rounds up out of range");
    }
}
