//! Single-precision matrix multiplication: `C = A·B` (optionally `C += A·B`), with a
//! fused epilogue (`+ bias` per column, then ReLU) applied as the result is stored.
//!
//! Operands are strided views, so a transposed operand is read in place (the backward
//! matmuls never materialise a transpose). The algorithm is the usual blocked one: for
//! each block of at most `KC` steps of `k` (blocks evened out), the block of `B` is
//! copied into panels of `NR` columns, and a register-tiled micro-kernel multiplies a
//! strip of `MR` rows of `A` by a panel. On x86-64 with AVX-512 the micro-kernel keeps
//! a 12×32 tile in 24 `zmm` registers and reads whole strips of `A` in place through
//! their strides (only a last, partial strip is packed, with zero rows); elsewhere a
//! portable kernel works on packed strips. Products with at most sixteen rows (batch-1
//! inference, convolutions) or at most sixteen columns (a classifier's head) skip packing and stream
//! `B` once; products of few rows and columns over a long `k` with `B` stored
//! transposed are dot products ([`crate::dot`]). Large products are cut into chunks of whole panels (or strips) that the
//! threads of [`crate::pool`] claim as they come. Packing buffers belong to a [`Gemm`]
//! plan and are sized when it is made, so running one allocates nothing.

use crate::{dot, pool};

/// Rows of the register tile.
pub const MR: usize = 12;
/// Columns of the register tile.
pub const NR: usize = 32;
/// At most this many steps of `k` per packed block; blocks are evened out (784 runs
/// as 4×196, not 3×256 + 16, so no block is mostly overhead).
const KC: usize = 256;

/// The block length for `k`.
fn block_len(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC).max(1)).max(1)
}
/// Below this many multiply-adds a product runs on one thread.
const PARALLEL_WORK: usize = 1 << 20;
/// Products with at most this many rows (batch-1 inference, a convolution's few output
/// channels), or at most [`DIRECT_COLS`] columns, use the unpacked streaming kernel
/// (when `B` has unit column stride): it reads `B` once per four rows, where packing
/// `B` would cost as much as the product.
const DIRECT_ROWS: usize = 16;
const DIRECT_COLS: usize = 16;
/// Streaming products split across threads from this many elements of `B` (they are
/// bound by reading `B`).
const PARALLEL_STREAM: usize = 1 << 16;

/// A strided view of a matrix: element `(i, j)` is at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl MatRef {
    /// A `rows × cols` matrix at `ptr`: stored row by row, or, if `transposed`, stored
    /// as its `cols × rows` transpose and read through swapped strides.
    pub fn dense(ptr: *const f32, rows: usize, cols: usize, transposed: bool) -> MatRef {
        if transposed {
            MatRef {
                ptr,
                rs: 1,
                cs: rows as isize,
            }
        } else {
            MatRef {
                ptr,
                rs: cols as isize,
                cs: 1,
            }
        }
    }
}

/// What happens to each result as it is stored.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue {
    /// Add the product to what `C` holds instead of overwriting it.
    pub accumulate: bool,
    /// Add `bias[j]` to column `j` (a pointer to `n` values).
    pub bias: Option<*const f32>,
    /// Then clamp at zero.
    pub relu: bool,
}

/// A matrix product of fixed sizes with its packing buffers.
pub struct Gemm {
    m: usize,
    n: usize,
    k: usize,
    /// One packing workspace per thread.
    work: Vec<Workspace>,
    /// Operands rounded to `bf16` ([`crate::bf16`]).
    bf16: bool,
}

struct Workspace {
    a: Vec<f32>,
    b: Vec<f32>,
    /// `bf16` pairs (only for a [`Gemm::bf16`] plan).
    pairs_a: Vec<u32>,
    pairs_b: Vec<u32>,
}

/// A raw pointer that may cross to the pool's threads (each part touches its own
/// rows or columns).
#[derive(Clone, Copy)]
struct Shared<T>(T);
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T: Copy> Shared<T> {
    /// The value (a method, so closures capture the whole wrapper).
    fn get(self) -> T {
        self.0
    }
}

/// Tests set this to exercise the portable kernels on machines with AVX-512.
#[cfg(test)]
static PORTABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn avx512() -> bool {
    #[cfg(test)]
    if PORTABLE.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Gemm {
    /// A plan for `[m, k] · [k, n]`, with buffers for up to [`pool::threads`] threads.
    pub fn new(m: usize, n: usize, k: usize) -> Gemm {
        let threads = pool::threads().max(1);
        let kc = block_len(k);
        let work = (0..threads)
            .map(|_| Workspace {
                a: vec![0.0; MR * kc],
                b: vec![0.0; kc * n.div_ceil(NR) * NR],
                pairs_a: Vec::new(),
                pairs_b: Vec::new(),
            })
            .collect();
        Gemm {
            m,
            n,
            k,
            work,
            bf16: false,
        }
    }

    /// A plan for `round(A)·round(B)`, the operands rounded to `bf16` and the products
    /// accumulated in `f32` ([`crate::bf16`]).
    pub fn bf16(m: usize, n: usize, k: usize) -> Gemm {
        let threads = pool::threads().max(1);
        let (wa, wb) = crate::bf16::workspace_words(n);
        let work = (0..threads)
            .map(|_| Workspace {
                a: Vec::new(),
                b: Vec::new(),
                pairs_a: vec![0; wa],
                pairs_b: vec![0; wb],
            })
            .collect();
        Gemm {
            m,
            n,
            k,
            work,
            bf16: true,
        }
    }

    /// `C = A·B` with the epilogue, `C` row-major with `n` columns.
    ///
    /// # Safety
    /// `a` and `b` must address `m×k` and `k×n` readable elements through their strides,
    /// `c` `m·n` writable ones (and `bias` `n` readable ones) not overlapping `a`, `b` or
    /// the bias.
    pub unsafe fn run(&mut self, a: MatRef, b: MatRef, c: *mut f32, ep: Epilogue) {
        let (m, n, k) = (self.m, self.n, self.k);
        if m == 0 || n == 0 {
            return;
        }
        if self.bf16 {
            return self.run_bf16(a, b, c, ep);
        }
        let simd = avx512();
        if dot::suits(m, n, k, a, b) {
            return self.run_dots(a, b, c, ep, simd);
        }
        let direct = streams(m, n, b);
        let threads = if m * n * k >= PARALLEL_WORK
            || (direct && m <= DIRECT_ROWS && k * n >= PARALLEL_STREAM)
        {
            pool::threads().min(self.work.len())
        } else {
            1
        };
        // Chunks of whole panels of columns when there are several (each chunk packs
        // only its own panels of `B`; `A` is read in place), else of whole strips of
        // rows (each packing the narrow `B`). Threads claim chunks as they come, so a
        // late thread does less.
        // The streaming kernel works 64 columns at a time and is short: one chunk per
        // thread.
        let width = if direct { 64 } else { NR };
        let panels = n.div_ceil(width);
        let by_cols = (direct && m <= DIRECT_ROWS) || (!direct && panels >= 2);
        let units = if by_cols { panels } else { m.div_ceil(MR) };
        let chunks = match threads {
            1 => 1,
            t if direct => units.min(t),
            t => units.min(2 * t),
        };
        let work = Shared(self.work.as_mut_ptr());
        let (a, b, c, ep) = (Shared(a), Shared(b), Shared(c), Shared(ep));
        let part = move |t: usize, chunk: usize| {
            let (u0, u1) = (units * chunk / chunks, units * (chunk + 1) / chunks);
            let (a, b, c, ep) = (a.get(), b.get(), c.get(), ep.get());
            // SAFETY: thread `t` owns workspace `t`; each chunk writes a disjoint block
            // of `C`.
            let ws = unsafe { &mut *work.get().add(t) };
            let (r0, r1, c0, c1) = if by_cols {
                (0, m, (u0 * width).min(n), (u1 * width).min(n))
            } else {
                ((u0 * MR).min(m), (u1 * MR).min(m), 0, n)
            };
            if r0 == r1 || c0 == c1 {
                return;
            }
            let a = MatRef {
                ptr: unsafe { a.ptr.offset(r0 as isize * a.rs) },
                ..a
            };
            let b = MatRef {
                ptr: unsafe { b.ptr.offset(c0 as isize * b.cs) },
                ..b
            };
            let c = unsafe { c.add(r0 * n + c0) };
            let ep = Epilogue {
                bias: ep.bias.map(|p| unsafe { p.add(c0) }),
                ..ep
            };
            let sub = Sub {
                m: r1 - r0,
                n: c1 - c0,
                k,
                ldc: n,
            };
            unsafe { product_block(direct, sub, a, b, c, ep, ws, simd) };
        };
        pool::run(chunks, threads, &part);
    }

    /// `C_i = A_i·B_i` for `i < batch`, the operands and results of consecutive
    /// products `strides` elements apart (attention's products per head). Products
    /// too small to split (each on one thread) are shared out whole among the pool's
    /// threads, each packing into its own workspace; every product is computed as it
    /// would be alone, so the results do not depend on the threads.
    ///
    /// # Safety
    /// As [`Gemm::run`], for each product at its offsets.
    pub unsafe fn run_batch(
        &mut self,
        batch: usize,
        (a, b, c): (MatRef, MatRef, *mut f32),
        strides: [usize; 3],
        ep: Epilogue,
    ) {
        let (m, n, k) = (self.m, self.n, self.k);
        let threads = pool::threads().min(self.work.len());
        let whole = !self.bf16
            && m * n * k < PARALLEL_WORK
            && batch.saturating_mul(m * n * k) >= PARALLEL_WORK
            && !dot::suits(m, n, k, a, b);
        if threads < 2 || batch < 2 || !whole {
            for i in 0..batch {
                let (a, b, c) = unsafe { nth_product(i, (a, b, c), strides) };
                unsafe { self.run(a, b, c, ep) };
            }
            return;
        }
        let (simd, direct) = (avx512(), streams(m, n, b));
        let sub = Sub { m, n, k, ldc: n };
        let chunks = batch.min(4 * threads);
        let work = Shared(self.work.as_mut_ptr());
        let (sa, sb, sc, sep) = (Shared(a), Shared(b), Shared(c), Shared(ep));
        let part = move |t: usize, chunk: usize| {
            // SAFETY: thread `t` owns workspace `t`; each product writes its own `C`.
            let ws = unsafe { &mut *work.get().add(t) };
            for i in batch * chunk / chunks..batch * (chunk + 1) / chunks {
                let (a, b, c) = unsafe { nth_product(i, (sa.get(), sb.get(), sc.get()), strides) };
                unsafe { product_block(direct, sub, a, b, c, sep.get(), ws, simd) };
            }
        };
        pool::run(chunks, threads, &part);
    }

    /// [`Gemm::run`] of a [`Gemm::bf16`] plan: chunks of whole panels of columns (of
    /// strips of rows when there is one panel) claimed by the pool's threads.
    unsafe fn run_bf16(&mut self, a: MatRef, b: MatRef, c: *mut f32, ep: Epilogue) {
        let (m, n, k) = (self.m, self.n, self.k);
        #[cfg(target_arch = "x86_64")]
        if crate::bf16::streams() {
            let (sa, sb, sc, sep) = (Shared(a), Shared(b), Shared(c), Shared(ep));
            if dot::suits(m, n, k, a, b) {
                let threads = if m * n * k >= PARALLEL_WORK {
                    pool::threads()
                } else {
                    1
                };
                // SAFETY: each range of columns is its own block of `C`.
                return by_columns(n, 4, threads, &move |cols| unsafe {
                    crate::bf16::x86::dots((m, k), cols, sa.get(), sb.get(), sc.get(), n, sep.get())
                });
            }
            if m <= DIRECT_ROWS && b.cs == 1 {
                // Bound by reading `B`: streamed once, rounded as it is loaded.
                let threads = if k * n >= PARALLEL_STREAM {
                    pool::threads()
                } else {
                    1
                };
                // SAFETY: as above.
                return by_columns(n, 64, threads, &move |cols| unsafe {
                    crate::bf16::x86::direct(
                        (m, k),
                        cols,
                        sa.get(),
                        sb.get(),
                        sc.get(),
                        n,
                        sep.get(),
                    )
                });
            }
        }
        let threads = if m * n * k >= PARALLEL_WORK {
            pool::threads().min(self.work.len())
        } else {
            1
        };
        let panels = n.div_ceil(NR);
        let by_cols = panels >= 2;
        let units = if by_cols { panels } else { m.div_ceil(MR) };
        let chunks = if threads == 1 {
            1
        } else {
            units.min(2 * threads)
        };
        let work = Shared(self.work.as_mut_ptr());
        let (a, b, c, ep) = (Shared(a), Shared(b), Shared(c), Shared(ep));
        let part = move |t: usize, chunk: usize| {
            let (u0, u1) = (units * chunk / chunks, units * (chunk + 1) / chunks);
            let rows_cols = if by_cols {
                (0, m, (u0 * NR).min(n), (u1 * NR).min(n))
            } else {
                ((u0 * MR).min(m), (u1 * MR).min(m), 0, n)
            };
            if rows_cols.0 == rows_cols.1 || rows_cols.2 == rows_cols.3 {
                return;
            }
            // SAFETY: thread `t` owns workspace `t`; each chunk writes a disjoint block
            // of `C`.
            let ws = unsafe { &mut *work.get().add(t) };
            unsafe {
                crate::bf16::product(
                    rows_cols,
                    k,
                    a.get(),
                    b.get(),
                    c.get(),
                    n,
                    ep.get(),
                    (&mut ws.pairs_a, &mut ws.pairs_b),
                )
            };
        };
        pool::run(chunks, threads, &part);
    }

    /// [`Gemm::run`] as dot products ([`dot`]), columns split over threads in groups
    /// of four.
    unsafe fn run_dots(&self, a: MatRef, b: MatRef, c: *mut f32, ep: Epilogue, simd: bool) {
        let (m, n, k) = (self.m, self.n, self.k);
        let threads = if m * n * k >= PARALLEL_WORK {
            pool::threads()
        } else {
            1
        };
        let (a, b, c, ep) = (Shared(a), Shared(b), Shared(c), Shared(ep));
        // SAFETY: each range of columns is its own block of `C`.
        by_columns(n, 4, threads, &move |cols| unsafe {
            dot::product((m, k), cols, a.get(), b.get(), c.get(), n, ep.get(), simd)
        });
    }
}

/// Runs `f` on the columns `0..n` cut into ranges of whole `width`-column units, one
/// range per thread of at most `threads` (no more than there are units).
fn by_columns(n: usize, width: usize, threads: usize, f: &(dyn Fn((usize, usize)) + Sync)) {
    let units = n.div_ceil(width);
    let threads = threads.min(units).max(1);
    let part = |_: usize, chunk: usize| {
        let at = |ch: usize| (units * ch / threads * width).min(n);
        f((at(chunk), at(chunk + 1)));
    };
    pool::run(threads, threads, &part);
}

/// The sizes of one thread's block of the product.
#[derive(Clone, Copy)]
struct Sub {
    m: usize,
    n: usize,
    k: usize,
    ldc: usize,
}

/// Whether a product of `m` rows and `n` columns uses the unpacked streaming kernel.
fn streams(m: usize, n: usize, b: MatRef) -> bool {
    (m <= DIRECT_ROWS || n <= DIRECT_COLS) && b.cs == 1
}

/// Product `i` of a batch whose consecutive operands and results are `strides` apart.
///
/// # Safety
/// Product `i` must lie within the batch's memory.
unsafe fn nth_product(
    i: usize,
    (a, b, c): (MatRef, MatRef, *mut f32),
    strides: [usize; 3],
) -> (MatRef, MatRef, *mut f32) {
    unsafe {
        (
            MatRef {
                ptr: a.ptr.add(i * strides[0]),
                ..a
            },
            MatRef {
                ptr: b.ptr.add(i * strides[1]),
                ..b
            },
            c.add(i * strides[2]),
        )
    }
}

/// Block `s` of a product on the calling thread: by the streaming kernel (`direct`,
/// decided for the whole product) or the packed one, packing into `ws`.
///
/// # Safety
/// As [`Gemm::run`], for the block.
#[allow(clippy::too_many_arguments)]
unsafe fn product_block(
    direct: bool,
    s: Sub,
    a: MatRef,
    b: MatRef,
    c: *mut f32,
    ep: Epilogue,
    ws: &mut Workspace,
    simd: bool,
) {
    unsafe {
        if direct {
            direct_product(s, a, b, c, ep, simd);
        } else {
            packed_product(s, a, b, c, ep, ws, simd);
        }
    }
}

/// The packed algorithm over one block.
unsafe fn packed_product(
    s: Sub,
    a: MatRef,
    b: MatRef,
    c: *mut f32,
    ep: Epilogue,
    ws: &mut Workspace,
    simd: bool,
) {
    if s.k == 0 {
        finish_empty(s, c, ep);
        return;
    }
    let mut p0 = 0;
    while p0 < s.k {
        let kc = block_len(s.k).min(s.k - p0);
        let first = p0 == 0 && !ep.accumulate;
        let last = p0 + kc == s.k;
        pack_b(&mut ws.b, b, p0, kc, s.n);
        let mut i0 = 0;
        while i0 < s.m {
            let mr = MR.min(s.m - i0);
            // With AVX-512, whole strips are read from `A` in place; packing is for the
            // last, partial strip (zero rows) and the portable kernel.
            let in_place = simd && mr == MR;
            if !in_place {
                pack_a(&mut ws.a, a, i0, mr, p0, kc);
            }
            let strip = a.ptr.offset(i0 as isize * a.rs + p0 as isize * a.cs);
            let mut j0 = 0;
            while j0 < s.n {
                let nr = NR.min(s.n - j0);
                let tile = Tile {
                    c: c.add(i0 * s.ldc + j0),
                    ldc: s.ldc,
                    mr,
                    nr,
                    first,
                    bias: if last {
                        ep.bias.map(|p| p.add(j0))
                    } else {
                        None
                    },
                    relu: last && ep.relu,
                };
                let bp = ws.b.as_ptr().add((j0 / NR) * kc * NR);
                #[cfg(target_arch = "x86_64")]
                if in_place {
                    x86::micro(kc, strip, a.rs, a.cs, bp, tile);
                    j0 += NR;
                    continue;
                }
                let _ = strip;
                micro(kc, ws.a.as_ptr(), bp, tile, simd);
                j0 += NR;
            }
            i0 += MR;
        }
        p0 += kc;
    }
}

/// `k = 0`: the product is zero; only the epilogue remains.
unsafe fn finish_empty(s: Sub, c: *mut f32, ep: Epilogue) {
    for i in 0..s.m {
        for j in 0..s.n {
            let at = c.add(i * s.ldc + j);
            let mut v = if ep.accumulate { *at } else { 0.0 };
            if let Some(bias) = ep.bias {
                v += *bias.add(j);
            }
            if ep.relu {
                v = crate::relu(v);
            }
            *at = v;
        }
    }
}

/// Copies `B[p0..p0+kc, 0..n]` into panels of `NR` columns (`[panel][p][NR]`),
/// zero-padding the last panel.
pub(crate) unsafe fn pack_b(dst: &mut [f32], b: MatRef, p0: usize, kc: usize, n: usize) {
    let panels = n.div_ceil(NR);
    debug_assert!(dst.len() >= panels * kc * NR);
    let out = dst.as_mut_ptr();
    for panel in 0..panels {
        let j0 = panel * NR;
        let nr = NR.min(n - j0);
        let base = out.add(panel * kc * NR);
        let src = b.ptr.offset(p0 as isize * b.rs + j0 as isize * b.cs);
        if b.cs == 1 && nr == NR {
            for p in 0..kc {
                let row = src.offset(p as isize * b.rs);
                let o = base.add(p * NR);
                for j in 0..NR {
                    *o.add(j) = *row.add(j);
                }
            }
        } else if b.rs == 1 {
            // Transposed `B`: each column is contiguous along `p`.
            for j in 0..NR {
                if j < nr {
                    let col = src.offset(j as isize * b.cs);
                    for p in 0..kc {
                        *base.add(p * NR + j) = *col.add(p);
                    }
                } else {
                    for p in 0..kc {
                        *base.add(p * NR + j) = 0.0;
                    }
                }
            }
        } else {
            for p in 0..kc {
                let row = src.offset(p as isize * b.rs);
                let o = base.add(p * NR);
                for j in 0..NR {
                    *o.add(j) = if j < nr {
                        *row.offset(j as isize * b.cs)
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// Copies `A[i0..i0+mr, p0..p0+kc]` as `[p][MR]`, zero-padding missing rows.
pub(crate) unsafe fn pack_a(
    dst: &mut [f32],
    a: MatRef,
    i0: usize,
    mr: usize,
    p0: usize,
    kc: usize,
) {
    debug_assert!(dst.len() >= kc * MR);
    let out = dst.as_mut_ptr();
    let base = a.ptr.offset(i0 as isize * a.rs + p0 as isize * a.cs);
    if a.rs == 1 && mr == MR {
        // Transposed `A` (`xᵀ` of a weight gradient): the strip's rows are contiguous
        // for each `p`.
        for p in 0..kc {
            let col = base.offset(p as isize * a.cs);
            let o = out.add(p * MR);
            for r in 0..MR {
                *o.add(r) = *col.add(r);
            }
        }
    } else if a.cs == 1 && mr == MR {
        // Row-major `A`: read the strip's rows side by side, eight steps of `p` at a
        // time.
        let rows: [*const f32; MR] = std::array::from_fn(|r| base.offset(r as isize * a.rs));
        let mut p = 0;
        while p + 8 <= kc {
            for (r, row) in rows.iter().enumerate() {
                for q in 0..8 {
                    *out.add((p + q) * MR + r) = *row.add(p + q);
                }
            }
            p += 8;
        }
        while p < kc {
            for (r, row) in rows.iter().enumerate() {
                *out.add(p * MR + r) = *row.add(p);
            }
            p += 1;
        }
    } else {
        for p in 0..kc {
            let o = out.add(p * MR);
            for r in 0..MR {
                *o.add(r) = if r < mr {
                    *base.offset(r as isize * a.rs + p as isize * a.cs)
                } else {
                    0.0
                };
            }
        }
    }
}

/// Where a micro-kernel stores its tile and how.
#[derive(Clone, Copy)]
pub(crate) struct Tile {
    pub(crate) c: *mut f32,
    pub(crate) ldc: usize,
    pub(crate) mr: usize,
    pub(crate) nr: usize,
    /// Overwrite `C` (else add to it).
    pub(crate) first: bool,
    pub(crate) bias: Option<*const f32>,
    pub(crate) relu: bool,
}

/// Stores 16 accumulators (half `h` of row `r`) with the tile's epilogue.
///
/// # Safety
/// As [`store_row`]; the CPU has AVX-512.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn store_vec(t: &Tile, r: usize, h: usize, v: std::arch::x86_64::__m512) {
    x86::store(t, r, h, v)
}

/// One tile from a packed strip of `A`.
#[inline]
pub(crate) unsafe fn micro(kc: usize, ap: *const f32, bp: *const f32, t: Tile, simd: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        return x86::micro(kc, ap, 1, MR as isize, bp, t);
    }
    let _ = simd;
    portable_micro(kc, ap, bp, t);
}

/// Stores one accumulated row segment with the tile's epilogue.
#[inline(always)]
unsafe fn store_scalar(t: &Tile, r: usize, acc: &[f32]) {
    let row = t.c.add(r * t.ldc);
    for (j, &v) in acc.iter().enumerate().take(t.nr) {
        let mut v = v;
        if !t.first {
            v += *row.add(j);
        }
        if let Some(b) = t.bias {
            v += *b.add(j);
        }
        if t.relu {
            v = crate::relu(v);
        }
        *row.add(j) = v;
    }
}

unsafe fn portable_micro(kc: usize, ap: *const f32, bp: *const f32, t: Tile) {
    let mut acc = [[0.0f32; NR]; MR];
    for p in 0..kc {
        let b = std::slice::from_raw_parts(bp.add(p * NR), NR);
        let a = std::slice::from_raw_parts(ap.add(p * MR), MR);
        for r in 0..MR {
            let x = a[r];
            for j in 0..NR {
                acc[r][j] += x * b[j];
            }
        }
    }
    for (r, row) in acc.iter().enumerate().take(t.mr) {
        store_scalar(&t, r, row);
    }
}

/// The streaming kernel: `B` (unit column stride) is read once per four rows, 64
/// columns at a time, without packing.
unsafe fn direct_product(s: Sub, a: MatRef, b: MatRef, c: *mut f32, ep: Epilogue, simd: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        return x86::direct(s, a, b, c, ep);
    }
    let _ = simd;
    let mut acc = vec![0.0f32; s.n];
    for i in 0..s.m {
        acc.fill(0.0);
        for p in 0..s.k {
            let x = *a.ptr.offset(i as isize * a.rs + p as isize * a.cs);
            let row = b.ptr.offset(p as isize * b.rs);
            for (j, v) in acc.iter_mut().enumerate() {
                *v += x * *row.add(j);
            }
        }
        let t = Tile {
            c,
            ldc: s.ldc,
            mr: s.m,
            nr: s.n,
            first: !ep.accumulate,
            bias: ep.bias,
            relu: ep.relu,
        };
        store_scalar(&t, i, &acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The AVX-512 micro-kernels.

    use super::{Epilogue, MatRef, Sub, Tile, NR};
    use std::arch::x86_64::*;

    /// Mask of the first `n` of 16 lanes.
    #[inline(always)]
    fn lanes(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn store(t: &Tile, r: usize, h: usize, mut v: __m512) {
        let valid = t.nr.saturating_sub(16 * h);
        if valid == 0 {
            return;
        }
        let mask = lanes(valid);
        let at = t.c.add(r * t.ldc + 16 * h);
        if !t.first {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, at));
        }
        if let Some(b) = t.bias {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, b.add(16 * h)));
        }
        if t.relu {
            // `maxps` returns its second operand when either is NaN: NaN stays NaN.
            v = _mm512_max_ps(_mm512_setzero_ps(), v);
        }
        _mm512_mask_storeu_ps(at, mask, v);
    }

    /// The 12×32 tile: 24 accumulators named one by one (an array of them is spilled
    /// to the stack on every step by LLVM). Element `(r, p)` of the strip of `A` is at
    /// `ap + r·sr + p·sp`: a packed strip (`sr = 1`, `sp = MR`) or `A` itself when its
    /// strip is whole (no packing).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn micro(
        kc: usize,
        ap: *const f32,
        sr: isize,
        sp: isize,
        bp: *const f32,
        t: Tile,
    ) {
        macro_rules! tile {
            ($(($r:literal, $c0:ident, $c1:ident)),*) => {{
                $(let mut $c0 = _mm512_setzero_ps(); let mut $c1 = _mm512_setzero_ps();)*
                let mut a = ap;
                let mut b = bp;
                for _ in 0..kc {
                    let b0 = _mm512_loadu_ps(b);
                    let b1 = _mm512_loadu_ps(b.add(16));
                    $(
                        let x = _mm512_set1_ps(*a.offset($r * sr));
                        $c0 = _mm512_fmadd_ps(x, b0, $c0);
                        $c1 = _mm512_fmadd_ps(x, b1, $c1);
                    )*
                    a = a.offset(sp);
                    b = b.add(NR);
                }
                $(
                    if $r < t.mr {
                        store(&t, $r, 0, $c0);
                        store(&t, $r, 1, $c1);
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

    /// Four rows times up to 64 columns per pass, `B` streamed row by row. With more
    /// than four rows, columns are the outer loop: one block of 64 columns of `B` (`k`
    /// rows of it) is read from memory once and stays in cache while every group of
    /// four rows passes over it, the first group fetching the next block ahead. With at
    /// most four rows there is one pass per block and nothing to reuse (and the plain
    /// loop is twice as fast for batch-1 inference).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn direct(s: Sub, a: MatRef, b: MatRef, c: *mut f32, ep: Epilogue) {
        let mut j0 = 0;
        while j0 < s.n {
            if s.m <= 4 {
                rows_block(&s, a, b, c, &ep, 0, j0, false);
            } else {
                let mut i0 = 0;
                while i0 < s.m {
                    let ahead = i0 == 0 && j0 + 2 * W <= s.n;
                    rows_block(&s, a, b, c, &ep, i0, j0, ahead);
                    i0 += 4;
                }
            }
            j0 += W;
        }
    }

    /// Columns per block of the streaming kernel.
    const W: usize = 64;

    /// Rows `i0..i0 + 4` (or fewer) times columns `j0..j0 + W` (or fewer) of the
    /// streaming product; `ahead` prefetches the next block of columns of `B`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn rows_block(
        s: &Sub,
        a: MatRef,
        b: MatRef,
        c: *mut f32,
        ep: &Epilogue,
        i0: usize,
        j0: usize,
        ahead: bool,
    ) {
        let nr = W.min(s.n - j0);
        let masks = [
            lanes(nr),
            lanes(nr.saturating_sub(16)),
            lanes(nr.saturating_sub(32)),
            lanes(nr.saturating_sub(48)),
        ];
        let vecs = nr.div_ceil(16);
        let rows = (s.m - i0).min(4);
        let a = MatRef {
            ptr: a.ptr.offset(i0 as isize * a.rs),
            ..a
        };
        let c = c.add(i0 * s.ldc);
        let mut acc = [[_mm512_setzero_ps(); 4]; 4];
        for p in 0..s.k {
            let row = b.ptr.offset(p as isize * b.rs).add(j0);
            if ahead {
                // `k` rows far apart are more streams than the hardware prefetcher
                // follows.
                for q in 0..4 {
                    _mm_prefetch::<_MM_HINT_T0>(row.add(W + 16 * q) as *const i8);
                }
            }
            let mut bv = [_mm512_setzero_ps(); 4];
            for q in 0..vecs {
                bv[q] = _mm512_maskz_loadu_ps(masks[q], row.add(16 * q));
            }
            for (i, accs) in acc.iter_mut().enumerate().take(rows) {
                let x = _mm512_set1_ps(*a.ptr.offset(i as isize * a.rs + p as isize * a.cs));
                for q in 0..vecs {
                    accs[q] = _mm512_fmadd_ps(x, bv[q], accs[q]);
                }
            }
        }
        for (i, accs) in acc.iter().enumerate().take(rows) {
            for (q, &v) in accs.iter().enumerate().take(vecs) {
                let t = Tile {
                    c: c.add(j0 + 16 * q),
                    ldc: s.ldc,
                    mr: rows,
                    nr: nr.saturating_sub(16 * q).min(16),
                    first: !ep.accumulate,
                    bias: ep.bias.map(|p| p.add(j0 + 16 * q)),
                    relu: ep.relu,
                };
                store(&t, i, 0, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for p in 0..k {
                for j in 0..n {
                    c[i * n + j] += a[i * k + p] as f64 * b[p * n + j] as f64;
                }
            }
        }
        c
    }

    fn data(len: usize, seed: u64) -> Vec<f32> {
        crate::draws(len, seed)
            .map(|s| ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5)
            .collect()
    }

    /// Every path (direct, packed, threaded by rows or columns, transposed operands,
    /// epilogues, both kernels) against a double-precision reference.
    #[test]
    fn products_match_a_reference() {
        let shapes = [
            (1, 1, 1),
            (1, 784, 256),
            (3, 70, 33),
            (4, 5, 100),
            (5, 7, 3),
            (13, 300, 45),
            (128, 784, 256),
            (784, 128, 256),
            (256, 128, 10),
            (40, 600, 2),
            (128, 256, 10),
            (256, 128, 10),
            (9, 33, 16),
            (7, 0, 9),
            (8, 4096, 25),
            (16, 200, 64),
            (11, 25, 576),
            (16, 2100, 203),
            // A decoder's step: one or two rows over a short `k` (dot products).
            (1, 128, 512),
            (2, 128, 7),
        ];
        for portable in [false, true] {
            PORTABLE.store(portable, std::sync::atomic::Ordering::Relaxed);
            for &(m, k, n) in &shapes {
                let a = data(m * k, 1);
                let b = data(k * n, 2);
                let bias = data(n, 3);
                let want = reference(&a, &b, m, n, k);
                // Neither, both, or only `B` stored transposed (the dot products of a
                // weight gradient), read through strides.
                for (ta, tb) in [(false, false), (true, true), (false, true)] {
                    let transposed = (ta, tb);
                    let at: Vec<f32> = if ta {
                        (0..m * k).map(|x| a[(x % m) * k + x / m]).collect()
                    } else {
                        a.clone()
                    };
                    let bt: Vec<f32> = if tb {
                        (0..k * n).map(|x| b[(x % k) * n + x / k]).collect()
                    } else {
                        b.clone()
                    };
                    let ar = MatRef::dense(at.as_ptr(), m, k, ta);
                    let br = MatRef::dense(bt.as_ptr(), k, n, tb);
                    for (accumulate, with_bias, relu) in [
                        (false, false, false),
                        (true, true, false),
                        (false, true, true),
                    ] {
                        let mut c = vec![0.25f32; m * n];
                        let mut g = Gemm::new(m, n, k);
                        let ep = Epilogue {
                            accumulate,
                            bias: with_bias.then_some(bias.as_ptr()),
                            relu,
                        };
                        unsafe { g.run(ar, br, c.as_mut_ptr(), ep) };
                        for i in 0..m * n {
                            let mut w = want[i];
                            if accumulate {
                                w += 0.25;
                            }
                            if with_bias {
                                w += bias[i % n] as f64;
                            }
                            if relu {
                                w = w.max(0.0);
                            }
                            let tol = 1e-5 * (k as f64).sqrt().max(1.0) + 1e-6;
                            assert!(
                                (c[i] as f64 - w).abs() <= tol,
                                "{m}x{k}x{n} t={transposed:?} ep={ep:?} at {i}: {} vs {w}",
                                c[i]
                            );
                        }
                    }
                }
            }
        }
    }

    /// A batch of small products (attention's per head) shared out among threads gives
    /// each product's bits as computed alone, one after the other, on one thread: for
    /// the packed and streaming kernels, `B` transposed or not, with a bias.
    #[test]
    fn batches_split_over_threads_match_one_product_at_a_time() {
        for (batch, m, k, n, tb) in [
            (48, 64, 32, 64, false),
            (48, 64, 64, 32, true),
            (60, 9, 40, 70, false),
        ] {
            let a = data(batch * m * k, 4);
            let b = data(batch * k * n, 5);
            let bias = data(n, 6);
            let ar = MatRef::dense(a.as_ptr(), m, k, false);
            let br = MatRef::dense(b.as_ptr(), k, n, tb);
            let ep = Epilogue {
                accumulate: false,
                bias: Some(bias.as_ptr()),
                relu: false,
            };
            let strides = [m * k, k * n, m * n];
            pool::set_threads(1);
            let mut want = vec![0.0f32; batch * m * n];
            let mut g = Gemm::new(m, n, k);
            for i in 0..batch {
                let (ai, bi, ci) = unsafe { nth_product(i, (ar, br, want.as_mut_ptr()), strides) };
                unsafe { g.run(ai, bi, ci, ep) };
            }
            pool::set_threads(2);
            let mut got = vec![f32::NAN; batch * m * n];
            let mut g = Gemm::new(m, n, k);
            unsafe { g.run_batch(batch, (ar, br, got.as_mut_ptr()), strides, ep) };
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{batch}x{m}x{k}x{n}");
        }
    }

    /// A NaN anywhere in a row of `A` makes that row of the product NaN, and the ReLU
    /// epilogue keeps it NaN (as the interpreter does) on every path.
    #[test]
    fn relu_epilogue_keeps_nan() {
        // (m, k, n): the register-tile path, the streaming path for few rows, few
        // columns, and the dot products (long k, `B` transposed).
        for portable in [false, true] {
            PORTABLE.store(portable, std::sync::atomic::Ordering::Relaxed);
            for &(m, k, n, b_transposed) in &[
                (40, 33, 70, false),
                (1, 784, 256, false),
                (64, 40, 10, false),
                (8, 4096, 8, true),
            ] {
                let mut a = data(m * k, 1);
                a[k / 2] = f32::NAN; // row 0
                let b = data(k * n, 2);
                let bias = data(n, 3);
                let br = MatRef::dense(b.as_ptr(), k, n, b_transposed);
                let ar = MatRef::dense(a.as_ptr(), m, k, false);
                let mut c = vec![0.0f32; m * n];
                let ep = Epilogue {
                    accumulate: false,
                    bias: Some(bias.as_ptr()),
                    relu: true,
                };
                unsafe { Gemm::new(m, n, k).run(ar, br, c.as_mut_ptr(), ep) };
                let shape = (m, k, n, portable);
                assert!(
                    c[..n].iter().all(|v| v.is_nan()),
                    "{shape:?}: {:?}",
                    &c[..n]
                );
                assert!(c[n..].iter().all(|v| *v >= 0.0), "{shape:?}");
            }
        }
        PORTABLE.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}
