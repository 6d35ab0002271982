//! Lowering of the sliding-window builtins (`conv2d`, `max_pool2d`, `avg_pool2d`) into
//! existing primitives, so autodiff and every backend handle them unchanged.
//!
//! Each window offset `(kh, kw)` is one strided `Slice` of the padded input. A
//! convolution stacks the slices into columns (im2col) and multiplies them with the
//! kernel as one rank-2 `MatMul`; a pooling combines them elementwise.

use dnnc_ir::{BinaryOp, NodeId, Op};

use crate::emit::{Emitter, Res};

/// Window size, stride and padding along the two spatial axes (the same for both).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Window {
    /// The output size along an axis of `n` positions with a window of `k`.
    fn out(&self, n: usize, k: usize) -> Res<usize> {
        let padded = n + 2 * self.padding;
        if self.stride == 0 || padded < k {
            return Err(format!(
                "a window of {k} with stride {} does not fit {padded} positions",
                self.stride
            ));
        }
        Ok((padded - k) / self.stride + 1)
    }
}

/// `x: [N, C, H, W]` padded by `value` on both spatial sides.
fn pad_spatial(em: &mut Emitter<'_>, x: NodeId, p: usize, value: f64) -> Res<NodeId> {
    if p == 0 {
        return Ok(x);
    }
    let lo = vec![0, 0, p, p];
    em.add(
        Op::Pad {
            lo: lo.clone(),
            hi: lo,
            value,
        },
        &[x],
    )
}

/// The `[N, C, OH, OW]` slices of `x` (row-major over `(kh, kw)`), one per window offset.
fn window_slices(em: &mut Emitter<'_>, x: NodeId, win: Window, pad_value: f64) -> Res<Vec<NodeId>> {
    let s = em.shape(x);
    let [n, c, h, w] = s[..] else {
        return Err(format!("a 2-d window needs `[N, C, H, W]`, found {s:?}"));
    };
    let (oh, ow) = (win.out(h, win.kh)?, win.out(w, win.kw)?);
    let xp = pad_spatial(em, x, win.padding, pad_value)?;
    let st = win.stride;
    let mut out = Vec::with_capacity(win.kh * win.kw);
    for i in 0..win.kh {
        for j in 0..win.kw {
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

/// Cross-correlation of `x: [N, C, H, W]` with `w: [O, C, KH, KW]`: `[N, O, OH, OW]`.
pub fn conv2d(
    em: &mut Emitter<'_>,
    x: NodeId,
    w: NodeId,
    stride: usize,
    padding: usize,
) -> Res<NodeId> {
    let ws = em.shape(w);
    let [o, c, kh, kw] = ws[..] else {
        return Err(format!("a kernel needs `[O, C, KH, KW]`, found {ws:?}"));
    };
    let win = Window {
        kh,
        kw,
        stride,
        padding,
    };
    let n = em.shape(x)[0];
    let slices = window_slices(em, x, win, 0.0)?;
    let [_, _, oh, ow] = em.shape(slices[0])[..] else {
        unreachable!("slices are rank 4")
    };
    // [N, C, 1, OH, OW] each, stacked to [N, C, KH*KW, OH, OW].
    let mut cols = Vec::with_capacity(slices.len());
    for s in slices {
        cols.push(em.reshape(s, &[n, c, 1, oh, ow])?);
    }
    let stacked = if cols.len() == 1 {
        cols[0]
    } else {
        em.add(Op::Concat { axis: 2 }, &cols)?
    };
    // Rows (n, oh, ow); columns (c, kh, kw), the order of `w` flattened.
    let t = em.add(Op::Transpose(vec![0, 3, 4, 1, 2]), &[stacked])?;
    let k = c * kh * kw;
    let cols = em.reshape(t, &[n * oh * ow, k])?;
    let wm = em.reshape(w, &[o, k])?;
    let wt = em.add(Op::Transpose(vec![1, 0]), &[wm])?;
    let y = em.add(Op::MatMul, &[cols, wt])?;
    let y = em.reshape(y, &[n, oh, ow, o])?;
    em.add(Op::Transpose(vec![0, 3, 1, 2]), &[y])
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
    let win = Window {
        kh: k,
        kw: k,
        stride,
        padding,
    };
    // The lowest finite f32 rather than -inf: every window holds an input element
    // when the padding is at most half the window, and no backend prints infinities.
    let pad_value = if avg { 0.0 } else { f64::from(f32::MIN) };
    let slices = window_slices(em, x, win, pad_value)?;
    let op = if avg { BinaryOp::Add } else { BinaryOp::Max };
    let mut acc = slices[0];
    for &s in &slices[1..] {
        acc = em.add(Op::Binary(op), &[acc, s])?;
    }
    if !avg {
        return Ok(acc);
    }
    let inv = em.constant(1.0 / (k * k) as f64, em.dtype(x))?;
    em.binary(BinaryOp::Mul, acc, inv)
}
