//! Lowering of the sliding-window builtins (`conv2d`, `max_pool2d`, `avg_pool2d`) into
//! existing primitives, so autodiff and every backend handle them unchanged.
//!
//! A convolution is `patches` (im2col, whose VJP is `fold`) of the input multiplied by
//! the kernel as one rank-2 `MatMul` (one batched `MatMul` over the groups of a grouped
//! convolution). For pooling, each window offset `(kh, kw)` is one strided `Slice` of
//! the padded input (of the input viewed as `[N, C, OH, k, OW, k]` for non-overlapping
//! windows), and the slices are combined elementwise.

use dnnc_ir::{BinaryOp, NodeId, Op, Window2d};

use crate::emit::{Emitter, Res};

/// A window's output size along one axis (`dnnc_ir::Window2d::out_len`), or an error
/// saying why the window does not fit.
fn out_len(win: &Window2d, n: usize, k: usize, pad: (usize, usize)) -> Res<usize> {
    if win.stride == 0 || win.dilation == 0 || k == 0 {
        return Err(format!(
            "a window of {k} needs a positive stride and dilation, found {} and {}",
            win.stride, win.dilation
        )
        .into());
    }
    win.out_len(n, k, pad).ok_or_else(|| {
        format!(
            "a window of {} with stride {} does not fit {} positions",
            win.dilation * (k - 1) + 1,
            win.stride,
            n + pad.0 + pad.1
        )
        .into()
    })
}

/// The options of `conv2d` beyond the kernel: PyTorch's `stride`, `padding`,
/// `dilation` and `groups`, with `same` standing for `padding = "same"`.
#[derive(Clone, Copy, Debug)]
pub struct ConvOpts {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
    pub same: bool,
}

impl Default for ConvOpts {
    fn default() -> ConvOpts {
        ConvOpts {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
            same: false,
        }
    }
}

/// `(before, after)` padding that keeps the size for a window of `k` dilated by `d` at
/// stride 1: `d*(k - 1)` in all, the odd one after, as PyTorch's `padding = "same"`.
fn same_padding(k: usize, d: usize) -> (usize, usize) {
    let total = d * (k.max(1) - 1);
    (total / 2, total - total / 2)
}

/// `x: [N, C, H, W]` padded by `value` on the spatial sides.
fn pad_spatial(
    em: &mut Emitter<'_>,
    x: NodeId,
    ph: (usize, usize),
    pw: (usize, usize),
    value: f64,
) -> Res<NodeId> {
    if ph == (0, 0) && pw == (0, 0) {
        return Ok(x);
    }
    em.add(
        Op::Pad {
            lo: vec![0, 0, ph.0, pw.0],
            hi: vec![0, 0, ph.1, pw.1],
            value,
        },
        &[x],
    )
}

/// The `[N, C, OH, OW]` slices of `x` (row-major over `(kh, kw)`), one per window offset.
fn window_slices(
    em: &mut Emitter<'_>,
    x: NodeId,
    win: Window2d,
    pad_value: f64,
) -> Res<Vec<NodeId>> {
    let s = em.shape(x);
    let [n, c, h, w] = s[..] else {
        return Err(format!("a 2-d window needs `[N, C, H, W]`, found {s:?}").into());
    };
    let (oh, ow) = (
        out_len(&win, h, win.kh, win.pad_h)?,
        out_len(&win, w, win.kw, win.pad_w)?,
    );
    let xp = pad_spatial(em, x, win.pad_h, win.pad_w, pad_value)?;
    let (st, d) = (win.stride, win.dilation);
    let mut out = Vec::with_capacity(win.kh * win.kw);
    for i in 0..win.kh {
        for j in 0..win.kw {
            let (i, j) = (i * d, j * d);
            let op = Op::Slice {
                starts: vec![0, 0, i, j],
                ends: vec![n, c, i + st * (oh - 1) + 1, j + st * (ow - 1) + 1],
                steps: vec![1, 1, st, st],
            };
            out.push(em.add(op, &[xp])?);
        }
    }
    Ok(out)
}

/// The `[N, C, OH, OW]` elements at each offset of non-overlapping `k`×`k` windows
/// (stride `k`, no padding): `x` cut to whole windows and viewed as
/// `[N, C, OH, k, OW, k]`, one slice per offset of the two window axes. Those slices
/// have step 1, so their VJPs are paddings rather than scatters.
fn window_blocks(em: &mut Emitter<'_>, x: NodeId, k: usize) -> Res<Vec<NodeId>> {
    let s = em.shape(x);
    let [n, c, h, w] = s[..] else {
        return Err(format!("a 2-d window needs `[N, C, H, W]`, found {s:?}").into());
    };
    if k == 0 || h < k || w < k {
        return Err(format!("a window of {k} does not fit {h}×{w} positions").into());
    }
    let (oh, ow) = (h / k, w / k);
    let x = if (oh * k, ow * k) == (h, w) {
        x
    } else {
        let op = Op::Slice {
            starts: vec![0; 4],
            ends: vec![n, c, oh * k, ow * k],
            steps: vec![1; 4],
        };
        em.add(op, &[x])?
    };
    let blocks = em.reshape(x, &[n, c, oh, k, ow, k])?;
    let mut out = Vec::with_capacity(k * k);
    for i in 0..k {
        for j in 0..k {
            let op = Op::Slice {
                starts: vec![0, 0, 0, i, 0, j],
                ends: vec![n, c, oh, i + 1, ow, j + 1],
                steps: vec![1; 6],
            };
            let s = em.add(op, &[blocks])?;
            out.push(em.reshape(s, &[n, c, oh, ow])?);
        }
    }
    Ok(out)
}

/// Cross-correlation of `x: [N, C, H, W]` with `w: [O, C/groups, KH, KW]`:
/// `[N, O, OH, OW]`. Group `g` convolves input channels `g*C/groups..` with output
/// channels `g*O/groups..`; the groups are one batched matmul.
pub fn conv2d(em: &mut Emitter<'_>, x: NodeId, w: NodeId, opts: ConvOpts) -> Res<NodeId> {
    let ws = em.shape(w);
    let [o, cg, kh, kw] = ws[..] else {
        return Err(format!("a kernel needs `[O, C, KH, KW]`, found {ws:?}").into());
    };
    let xs = em.shape(x);
    let (n, c) = (xs[0], xs[1]);
    let g = opts.groups;
    if g == 0 || c % g != 0 || o % g != 0 || cg * g != c {
        return Err(format!(
            "conv2d of {xs:?} with kernel {ws:?} in {g} groups: the channels do not split"
        )
        .into());
    }
    let (pad_h, pad_w) = if opts.same {
        if opts.stride != 1 {
            return Err("`same` padding needs stride 1".into());
        }
        (
            same_padding(kh, opts.dilation),
            same_padding(kw, opts.dilation),
        )
    } else {
        ((opts.padding, opts.padding), (opts.padding, opts.padding))
    };
    let win = Window2d {
        kh,
        kw,
        stride: opts.stride,
        dilation: opts.dilation,
        pad_h,
        pad_w,
    };
    let [_, _, h, wd] = xs[..] else {
        return Err(format!("conv2d needs `[N, C, H, W]`, found {xs:?}").into());
    };
    let (oh, ow) = (out_len(&win, h, kh, pad_h)?, out_len(&win, wd, kw, pad_w)?);
    // [C, KH, KW, N, OH, OW]: rows (c, kh, kw), the order of `w` flattened, and columns
    // (n, oh, ow), so the product with the kernel is `[O, N, OH, OW]`.
    let cols = em.add(Op::Patches(win), &[x])?;
    let (k, m) = (cg * kh * kw, n * oh * ow);
    let y = if g == 1 {
        let cols = em.reshape(cols, &[k, m])?;
        let wm = em.reshape(w, &[o, k])?;
        em.add(Op::MatMul, &[wm, cols])?
    } else {
        // Group `g` multiplies its `O/G` kernel rows with its `C/G` channels' rows.
        let cols = em.reshape(cols, &[g, k, m])?;
        let wm = em.reshape(w, &[g, o / g, k])?;
        em.add(Op::MatMul, &[wm, cols])?
    };
    let y = em.reshape(y, &[o, n, oh, ow])?;
    em.add(Op::Transpose(vec![1, 0, 2, 3]), &[y])
}

/// Max (`avg == false`) or average pooling of `x: [N, C, H, W]` with a `k`×`k` window.
/// Averages count the padding, like PyTorch's default.
pub fn pool2d(
    em: &mut Emitter<'_>,
    x: NodeId,
    k: usize,
    stride: usize,
    padding: usize,
    avg: bool,
) -> Res<NodeId> {
    let win = Window2d::square(k, stride, padding);
    // The lowest finite f32 rather than -inf: every window holds an input element
    // when the padding is at most half the window, and no backend prints infinities.
    let pad_value = if avg { 0.0 } else { f64::from(f32::MIN) };
    let slices = if stride == k && padding == 0 {
        window_blocks(em, x, k)?
    } else {
        window_slices(em, x, win, pad_value)?
    };
    let op = if avg { BinaryOp::Add } else { BinaryOp::Max };
    // `max(s, acc)`: `max`'s derivative gives a tie to its second operand, so a window
    // whose maximum occurs several times sends its gradient to the first occurrence
    // in row-major order, as PyTorch's max pooling does (ties are common: a digit's
    // black background, saturated strokes).
    let mut acc = slices[0];
    for &s in &slices[1..] {
        acc = em.add(Op::Binary(op), &[s, acc])?;
    }
    if !avg {
        return Ok(acc);
    }
    let inv = em.constant(1.0 / (k * k) as f64, em.dtype(x))?;
    em.binary(BinaryOp::Mul, acc, inv)
}
