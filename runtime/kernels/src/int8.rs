//! Products of `i8` matrices accumulated exactly in `i32` (quantized inference):
//! `C = A·B` for row-major `A: [m, k]`, `B: [k, n]`, `C: [m, n]`.
//!
//! With AVX-512 VNNI, `vpdpbusd` multiplies four unsigned bytes by four signed bytes
//! and adds the four products to each `i32` lane. `A`'s bytes are made unsigned by
//! adding 128 (`a + 128` in `0..=255`), and the `128·Σₚ B[p, j]` this adds is taken
//! off each column at the end. `B` is packed per call into groups of 16 columns, four
//! steps of `k` per 32-bit lane (`[group][k/4][16][4]`), zero-padded; four rows by 64
//! columns are accumulated at a time. Elsewhere (and when forced, for tests) a plain
//! `i32` loop computes the same sums — exactly, so both paths agree bit for bit.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::pool;

/// Tests set this to run the portable loop on CPUs with VNNI.
static PORTABLE: AtomicBool = AtomicBool::new(false);

/// Forces the portable loop (`true`) or lets the CPU choose (`false`).
pub fn force_portable(on: bool) {
    PORTABLE.store(on, Ordering::Relaxed);
}

/// Whether this CPU runs the `vpdpbusd` kernel.
pub fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Columns per packed group (one `zmm` of `i32` lanes).
const G: usize = 16;

/// A product of fixed sizes with its packing buffer.
pub struct GemmI8 {
    m: usize,
    n: usize,
    k: usize,
    /// `B` packed, and its column sums.
    packed: Vec<i8>,
    sums: Vec<i32>,
}

impl GemmI8 {
    pub fn new(m: usize, n: usize, k: usize) -> GemmI8 {
        let groups = n.div_ceil(G);
        GemmI8 {
            m,
            n,
            k,
            packed: vec![0; groups * k.div_ceil(4) * G * 4],
            sums: vec![0; groups * G],
        }
    }

    /// `C = A·B`.
    ///
    /// # Safety
    /// `a`, `b` address `m·k` and `k·n` readable elements, `c` `m·n` writable ones, not
    /// overlapping.
    pub unsafe fn run(&mut self, a: *const i8, b: *const i8, c: *mut i32) {
        let (m, n, k) = (self.m, self.n, self.k);
        if m == 0 || n == 0 {
            return;
        }
        if PORTABLE.load(Ordering::Relaxed) || !has_vnni() || k == 0 {
            return portable(m, n, k, a, b, c);
        }
        self.pack(b);
        let groups = n.div_ceil(G);
        // Four groups (64 columns) per unit, split over the pool's threads.
        let units = groups.div_ceil(4);
        let threads = if m * n * k >= 1 << 20 {
            pool::threads().min(units)
        } else {
            1
        };
        let chunks = threads.max(1);
        let packed = Shared(self.packed.as_ptr());
        let sums = Shared(self.sums.as_ptr());
        let (a, c) = (Shared(a), Shared(c));
        let part = move |_: usize, chunk: usize| {
            let (u0, u1) = (units * chunk / chunks, units * (chunk + 1) / chunks);
            let g0 = u0 * 4;
            let g1 = (u1 * 4).min(groups);
            #[cfg(target_arch = "x86_64")]
            unsafe {
                x86::columns(
                    (m, n, k),
                    (g0, g1),
                    a.get(),
                    packed.get(),
                    sums.get(),
                    c.get(),
                )
            };
        };
        pool::run(chunks, threads, &part);
    }

    /// `B` into `[group][k/4][16][4]` bytes and the column sums.
    unsafe fn pack(&mut self, b: *const i8) {
        let (n, k) = (self.n, self.k);
        let quads = k.div_ceil(4);
        self.sums.fill(0);
        #[cfg(target_arch = "x86_64")]
        {
            // Whole groups of 16 columns, vectorised; the last, partial one below.
            let full = n / G;
            x86::pack_groups(
                b,
                n,
                k,
                full,
                self.packed.as_mut_ptr(),
                self.sums.as_mut_ptr(),
            );
            self.pack_scalar(b, full, quads);
            return;
        }
        #[allow(unreachable_code)]
        self.pack_scalar(b, 0, quads);
    }

    /// [`Self::pack`] for the groups from `first`.
    unsafe fn pack_scalar(&mut self, b: *const i8, first: usize, quads: usize) {
        let (n, k) = (self.n, self.k);
        for g in first..n.div_ceil(G) {
            let base = g * quads * G * 4;
            for q in 0..quads {
                for j in 0..G {
                    let col = g * G + j;
                    for r in 0..4 {
                        let p = 4 * q + r;
                        let v = if col < n && p < k {
                            *b.add(p * n + col)
                        } else {
                            0
                        };
                        self.packed[base + (q * G + j) * 4 + r] = v;
                        if col < n {
                            self.sums[col] += i32::from(v);
                        }
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Shared<T>(T);
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}
impl<T: Copy> Shared<T> {
    fn get(self) -> T {
        self.0
    }
}

/// The reference loop.
unsafe fn portable(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, c: *mut i32) {
    for i in 0..m {
        let row = std::slice::from_raw_parts_mut(c.add(i * n), n);
        row.fill(0);
        for p in 0..k {
            let x = i32::from(*a.add(i * k + p));
            let brow = std::slice::from_raw_parts(b.add(p * n), n);
            for (cj, &bj) in row.iter_mut().zip(brow) {
                *cj = cj.wrapping_add(x * i32::from(bj));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The `vpdpbusd` kernel.

    use std::arch::x86_64::*;

    use super::G;

    /// Whole quads of rows of whole groups of 16 columns of `B` (`groups` of them)
    /// into the packed layout, with their column sums: each group's four rows are
    /// interleaved byte by byte (`[16][4]`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn pack_groups(
        b: *const i8,
        n: usize,
        k: usize,
        groups: usize,
        packed: *mut i8,
        sums: *mut i32,
    ) {
        let quads = k.div_ceil(4);
        for g in 0..groups {
            let base = packed.add(g * quads * G * 4);
            let mut sum = _mm512_setzero_si512();
            for q in 0..quads {
                // Rows past `k` are zeros.
                let row = |r: usize| {
                    if 4 * q + r < k {
                        _mm_loadu_si128(b.add((4 * q + r) * n + g * G) as *const _)
                    } else {
                        _mm_setzero_si128()
                    }
                };
                let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                for r in [r0, r1, r2, r3] {
                    sum = _mm512_add_epi32(sum, _mm512_cvtepi8_epi32(r));
                }
                // Bytes (r0[j], r1[j], r2[j], r3[j]) for j = 0..16.
                let lo01 = _mm_unpacklo_epi8(r0, r1);
                let hi01 = _mm_unpackhi_epi8(r0, r1);
                let lo23 = _mm_unpacklo_epi8(r2, r3);
                let hi23 = _mm_unpackhi_epi8(r2, r3);
                let out = base.add(q * G * 4) as *mut __m128i;
                _mm_storeu_si128(out, _mm_unpacklo_epi16(lo01, lo23));
                _mm_storeu_si128(out.add(1), _mm_unpackhi_epi16(lo01, lo23));
                _mm_storeu_si128(out.add(2), _mm_unpacklo_epi16(hi01, hi23));
                _mm_storeu_si128(out.add(3), _mm_unpackhi_epi16(hi01, hi23));
            }
            _mm512_storeu_si512(sums.add(g * G) as *mut _, sum);
        }
    }

    /// Four bytes of row `row` of `A` from step `4q`, each plus 128 (missing steps
    /// are `a = 0`, i.e. 128, against zero padding in `B`).
    #[inline(always)]
    unsafe fn quad(row: *const i8, q: usize, k: usize) -> i32 {
        if 4 * q + 4 <= k {
            let w = (row.add(4 * q) as *const u32).read_unaligned();
            return (w ^ 0x8080_8080) as i32;
        }
        let mut w = 0u32;
        for r in 0..4 {
            let p = 4 * q + r;
            let v = if p < k { *row.add(p) as u8 } else { 0 };
            w |= u32::from(v ^ 0x80) << (8 * r);
        }
        w as i32
    }

    /// Column groups `g0..g1` of every row.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn columns(
        (m, n, k): (usize, usize, usize),
        (g0, g1): (usize, usize),
        a: *const i8,
        packed: *const i8,
        sums: *const i32,
        c: *mut i32,
    ) {
        let quads = k.div_ceil(4);
        let mut g = g0;
        while g < g1 {
            let width = (g1 - g).min(4);
            let mut i0 = 0;
            while i0 < m {
                let rows = (m - i0).min(4);
                let mut acc = [[_mm512_setzero_si512(); 4]; 4];
                for q in 0..quads {
                    let mut bv = [_mm512_setzero_si512(); 4];
                    for (h, v) in bv.iter_mut().enumerate().take(width) {
                        *v = _mm512_loadu_si512(
                            packed.add(((g + h) * quads + q) * G * 4) as *const _
                        );
                    }
                    for (r, accs) in acc.iter_mut().enumerate().take(rows) {
                        let x = _mm512_set1_epi32(quad(a.add((i0 + r) * k), q, k));
                        for h in 0..width {
                            accs[h] = _mm512_dpbusd_epi32(accs[h], x, bv[h]);
                        }
                    }
                }
                for (r, accs) in acc.iter().enumerate().take(rows) {
                    for (h, &v) in accs.iter().enumerate().take(width) {
                        let j0 = (g + h) * G;
                        let valid = (n - j0).min(G);
                        let mask = if valid >= 16 {
                            0xffff
                        } else {
                            ((1u32 << valid) - 1) as __mmask16
                        };
                        let s = _mm512_maskz_loadu_epi32(mask, sums.add(j0) as *const _);
                        let v = _mm512_sub_epi32(v, _mm512_slli_epi32::<7>(s));
                        _mm512_mask_storeu_epi32(c.add((i0 + r) * n + j0) as *mut _, mask, v);
                    }
                }
                i0 += 4;
            }
            g += width;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u64) -> Vec<i8> {
        crate::draws(len, seed)
            .map(|s| (s >> 56) as u8 as i8)
            .collect()
    }

    /// Both paths on odd shapes (`k` not a multiple of 4, fewer than 4 rows, columns
    /// not a multiple of 16), the extremes −128 and 127, against an `i64` reference.
    #[test]
    fn products_are_exact() {
        let shapes = [
            (1, 1, 1),
            (3, 17, 5),
            (4, 16, 4),
            (7, 70, 33),
            (13, 129, 256),
            (64, 120, 784),
            (2, 3, 0),
        ];
        for portable in [true, false] {
            force_portable(portable);
            for &(m, n, k) in &shapes {
                let mut a = data(m * k, 1 + m as u64);
                let mut b = data(k * n, 2 + n as u64);
                if let (Some(x), Some(y)) = (a.first_mut(), b.first_mut()) {
                    (*x, *y) = (-128, -128);
                }
                if let (Some(x), Some(y)) = (a.last_mut(), b.last_mut()) {
                    (*x, *y) = (127, -128);
                }
                let mut c = vec![7i32; m * n];
                let mut g = GemmI8::new(m, n, k);
                unsafe { g.run(a.as_ptr(), b.as_ptr(), c.as_mut_ptr()) };
                for i in 0..m {
                    for j in 0..n {
                        let want: i64 = (0..k)
                            .map(|p| i64::from(a[i * k + p]) * i64::from(b[p * n + j]))
                            .sum();
                        assert_eq!(
                            i64::from(c[i * n + j]),
                            want,
                            "portable {portable}, {m}x{n}x{k} at ({i}, {j})"
                        );
                    }
                }
            }
        }
        force_portable(false);
    }
}
