//! The kernels of `patches` (im2col) and `fold` (col2im) for any element type, row by
//! row: each row of `OW` columns reads or adds into one row of the input, a plain copy
//! or a vectorised add at stride 1, with the padded ends handled once per row. Large
//! ones split over the threads of the kernel pool: `patches` by blocks of rows,
//! `fold` by images, so no two threads write one element and every element receives
//! its terms in the interpreter's order.

use dnnc_ir::Window2d;
use dnnc_kernels::pool;

/// Below this many column elements a kernel runs on the calling thread alone.
const PARALLEL: usize = 1 << 16;

/// A buffer that the pool's threads write disjoint parts of.
struct Shared<T>(*mut T);
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

/// `dst = src` for rows of a few dozen elements: eight at a time with copies of a
/// fixed size (vector moves, not a call to `memcpy`), the last eight overlapping the
/// ones before when the length is not a multiple of eight.
#[inline(always)]
fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    let n = dst.len();
    let src = &src[..n];
    if n < 8 {
        for (o, &v) in dst.iter_mut().zip(src) {
            *o = v;
        }
        return;
    }
    let mut k = 0;
    while k + 8 < n {
        let s: &[T; 8] = src[k..k + 8].try_into().expect("eight elements");
        dst[k..k + 8].copy_from_slice(s);
        k += 8;
    }
    let s: &[T; 8] = src[n - 8..].try_into().expect("eight elements");
    dst[n - 8..].copy_from_slice(s);
}

/// `dst[i] = add(dst[i], src[i])`, eight at a time.
#[inline(always)]
fn add_short<T: Copy>(dst: &mut [T], src: &[T], add: &impl Fn(T, T) -> T) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let d: &mut [T; 8] = d.try_into().expect("chunks of 8");
        let s: &[T; 8] = s.try_into().expect("chunks of 8");
        for k in 0..8 {
            d[k] = add(d[k], s[k]);
        }
    }
    for (o, &v) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *o = add(*o, v);
    }
}

/// The sizes both kernels work with.
#[derive(Clone, Copy)]
struct Geo {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl Geo {
    fn new(win: &Window2d, [n, c, h, w]: [usize; 4]) -> Geo {
        let (oh, ow) = win.out(h, w).expect("checked by the shape rule");
        Geo { n, c, h, w, oh, ow }
    }

    fn cols(&self, win: &Window2d) -> usize {
        self.c * win.kh * win.kw * self.n * self.oh * self.ow
    }
}

/// Calls `row(col, src, lo, hi)` for every column row of window tap `(ci, i, j)` and
/// image `b`, at flat offset `col` of the columns: its columns `lo..hi` come from the
/// input elements `src + (z - lo)·stride` (flat offsets into `x`), the others from the
/// padding; `src` is `None` when the whole row is padding.
fn rows_of_tap(
    win: &Window2d,
    g: Geo,
    (ci, i, j): (usize, usize, usize),
    b: usize,
    mut row: impl FnMut(usize, Option<usize>, usize, usize),
) {
    let (s, d) = (win.stride, win.dilation);
    let (ylo, yhi) = win.inside(g.oh, g.h, i * d, win.pad_h.0);
    let (lo, hi) = win.inside(g.ow, g.w, j * d, win.pad_w.0);
    let tap = (ci * win.kh + i) * win.kw + j;
    for y in 0..g.oh {
        let col = ((tap * g.n + b) * g.oh + y) * g.ow;
        if y < ylo || y >= yhi || lo == hi {
            row(col, None, lo, hi);
            continue;
        }
        let r = y * s + i * d - win.pad_h.0;
        let q0 = lo * s + j * d - win.pad_w.0;
        row(col, Some(((b * g.c + ci) * g.h + r) * g.w + q0), lo, hi);
    }
}

/// `out = patches(x)` for `x: [N, C, H, W]` (`shape`), zero in the padding.
pub fn patches<T: Copy + Send + Sync>(
    out: &mut [T],
    x: &[T],
    win: &Window2d,
    shape: [usize; 4],
    zero: T,
) {
    let g = Geo::new(win, shape);
    let taps = g.c * win.kh * win.kw;
    let block = g.n * g.oh * g.ow;
    assert!(out.len() == g.cols(win) && x.len() == g.n * g.c * g.h * g.w);
    let s = win.stride;
    let (d, w) = (win.dilation, g.ow);
    let do_taps = |out: &mut [T], t0: usize, t1: usize| {
        let mut rows = out.chunks_exact_mut(w);
        for tap in t0..t1 {
            let (ci, i, j) = (tap / (win.kh * win.kw), tap / win.kw % win.kh, tap % win.kw);
            let (ylo, yhi) = win.inside(g.oh, g.h, i * d, win.pad_h.0);
            let (lo, hi) = win.inside(g.ow, g.w, j * d, win.pad_w.0);
            // Every tap of the row inside the image, at stride 1: plain row copies.
            let interior = s == 1 && (lo, hi, ylo, yhi) == (0, w, 0, g.oh);
            for b in 0..g.n {
                if interior {
                    let mut src =
                        ((b * g.c + ci) * g.h + i * d - win.pad_h.0) * g.w + j * d - win.pad_w.0;
                    for row in (&mut rows).take(g.oh) {
                        copy_short(row, &x[src..src + w]);
                        src += g.w;
                    }
                    continue;
                }
                for y in 0..g.oh {
                    let row = rows.next().expect("one row per output row");
                    if y < ylo || y >= yhi || lo == hi {
                        row.fill(zero);
                        continue;
                    }
                    let r = y * s + i * d - win.pad_h.0;
                    let q0 = lo * s + j * d - win.pad_w.0;
                    let src = ((b * g.c + ci) * g.h + r) * g.w + q0;
                    if lo > 0 {
                        row[..lo].fill(zero);
                    }
                    if hi < w {
                        row[hi..].fill(zero);
                    }
                    if s == 1 {
                        copy_short(&mut row[lo..hi], &x[src..src + hi - lo]);
                    } else {
                        let xs = x[src..src + (hi - lo - 1) * s + 1].iter().step_by(s);
                        for (o, &v) in row[lo..hi].iter_mut().zip(xs) {
                            *o = v;
                        }
                    }
                }
            }
        }
    };
    let threads = pool::threads().min(out.len() / PARALLEL).min(taps).max(1);
    if threads == 1 {
        do_taps(out, 0, taps);
        return;
    }
    let ptr = Shared(out.as_mut_ptr());
    let chunks = taps.min(4 * threads);
    pool::run(chunks, threads, &|_, k| {
        let (t0, t1) = (taps * k / chunks, taps * (k + 1) / chunks);
        // SAFETY: chunk `k` owns the column rows of taps `t0..t1`, which no other
        // chunk touches.
        let mine =
            unsafe { std::slice::from_raw_parts_mut(ptr.get().add(t0 * block), (t1 - t0) * block) };
        do_taps(mine, t0, t1);
    });
}

/// `out = fold(cols)`: every column element added (`add`) into the input element it
/// was taken from, starting from `zero`; `shape` is `out`'s `[N, C, H, W]`.
pub fn fold<T: Copy + Send + Sync>(
    out: &mut [T],
    cols: &[T],
    win: &Window2d,
    shape: [usize; 4],
    zero: T,
    add: impl Fn(T, T) -> T + Sync,
) {
    let g = Geo::new(win, shape);
    assert!(cols.len() == g.cols(win) && out.len() == g.n * g.c * g.h * g.w);
    let image = g.c * g.h * g.w;
    let s = win.stride;
    let do_images = |out: &mut [T], b0: usize, b1: usize| {
        out.fill(zero);
        for ci in 0..g.c {
            for i in 0..win.kh {
                for j in 0..win.kw {
                    let (ylo, yhi) = win.inside(g.oh, g.h, i * win.dilation, win.pad_h.0);
                    let (lo, hi) = win.inside(g.ow, g.w, j * win.dilation, win.pad_w.0);
                    // Every tap of the row inside the image, at stride 1: row adds.
                    let interior = s == 1 && (lo, hi, ylo, yhi) == (0, g.ow, 0, g.oh);
                    for b in b0..b1 {
                        if interior {
                            let tap = (ci * win.kh + i) * win.kw + j;
                            let col = (tap * g.n + b) * g.oh * g.ow;
                            let mut dst = ((b - b0) * g.c + ci) * g.h * g.w
                                + (i * win.dilation - win.pad_h.0) * g.w
                                + j * win.dilation
                                - win.pad_w.0;
                            for row in cols[col..col + g.oh * g.ow].chunks_exact(g.ow) {
                                add_short(&mut out[dst..dst + g.ow], row, &add);
                                dst += g.w;
                            }
                            continue;
                        }
                        rows_of_tap(win, g, (ci, i, j), b, |col, dst, lo, hi| {
                            let Some(dst) = dst else { return };
                            let dst = dst - b0 * image;
                            let row = &cols[col + lo..col + hi];
                            if s == 1 {
                                add_short(&mut out[dst..dst + hi - lo], row, &add);
                            } else {
                                for (k, &v) in row.iter().enumerate() {
                                    let o = &mut out[dst + k * s];
                                    *o = add(*o, v);
                                }
                            }
                        });
                    }
                }
            }
        }
    };
    let threads = pool::threads().min(cols.len() / PARALLEL).min(g.n).max(1);
    if threads == 1 {
        do_images(out, 0, g.n);
        return;
    }
    let ptr = Shared(out.as_mut_ptr());
    let chunks = g.n.min(4 * threads);
    pool::run(chunks, threads, &|_, k| {
        let (b0, b1) = (g.n * k / chunks, g.n * (k + 1) / chunks);
        // SAFETY: chunk `k` owns images `b0..b1` of the output, which no other chunk
        // touches.
        let mine =
            unsafe { std::slice::from_raw_parts_mut(ptr.get().add(b0 * image), (b1 - b0) * image) };
        do_images(mine, b0, b1);
    });
}
