//! The sliding window of `patches` and `fold` (im2col and its adjoint, col2im): its
//! sizes and the output size it gives along each spatial axis.
//!
//! `patches` of `x: [N, C, H, W]` is `[C, KH, KW, N, OH, OW]`, element
//! `[c, i, j, n, oh, ow] = x[n, c, oh·stride + i·dilation − pad_h.0, ow·stride +
//! j·dilation − pad_w.0]`, zero outside `x`. Rows `(c, i, j)` and columns `(n, oh, ow)`
//! make a convolution one matrix product `W[O, C·KH·KW] · cols`, and every row of `OW`
//! outputs reads one row of `x` (contiguous at stride 1). `fold` sums such columns back
//! into `[N, C, H, W]`: it is the transpose of `patches`, and each is the other's VJP.

use std::fmt;

/// Window size, stride, dilation and `(before, after)` padding per spatial axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Window2d {
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub dilation: usize,
    pub pad_h: (usize, usize),
    pub pad_w: (usize, usize),
}

impl Window2d {
    /// A `k`×`k` window padded by `padding` on every side, without dilation (pooling).
    pub fn square(k: usize, stride: usize, padding: usize) -> Window2d {
        Window2d {
            kh: k,
            kw: k,
            stride,
            dilation: 1,
            pad_h: (padding, padding),
            pad_w: (padding, padding),
        }
    }

    /// The output size along an axis of `n` positions with a window of `k` padded by
    /// `pad`, or `None` when the window does not fit or a size is zero.
    pub fn out_len(&self, n: usize, k: usize, pad: (usize, usize)) -> Option<usize> {
        if self.stride == 0 || self.dilation == 0 || k == 0 {
            return None;
        }
        let eff = self.dilation * (k - 1) + 1;
        let padded = n + pad.0 + pad.1;
        (padded >= eff).then(|| (padded - eff) / self.stride + 1)
    }

    /// `(OH, OW)` for an input of `h`×`w`.
    pub fn out(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        Some((
            self.out_len(h, self.kh, self.pad_h)?,
            self.out_len(w, self.kw, self.pad_w)?,
        ))
    }

    /// The `patches` shape `[C, KH, KW, N, OH, OW]` of an `[N, C, H, W]` input.
    pub fn patches_shape(&self, x: &[usize]) -> Option<Vec<usize>> {
        let [n, c, h, w] = *x else { return None };
        let (oh, ow) = self.out(h, w)?;
        Some(vec![c, self.kh, self.kw, n, oh, ow])
    }

    /// The outputs `lo..hi` along an axis of `n` positions whose tap at offset `t`
    /// (already times the dilation) falls inside `0..n` with `before` padding: the
    /// position of output `o` is `o·stride + t − before`.
    #[inline]
    pub fn inside(&self, outs: usize, n: usize, t: usize, before: usize) -> (usize, usize) {
        let s = self.stride;
        // o·s + t ≥ before, and o·s + t < before + n.
        let lo = before.saturating_sub(t).div_ceil(s);
        let hi = if before + n > t {
            (before + n - t).div_ceil(s)
        } else {
            0
        };
        (lo.min(outs), hi.min(outs).max(lo.min(outs)))
    }
}

impl fmt::Display for Window2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "k=[{}, {}] stride={} dilation={} pad=[{}, {}, {}, {}]",
            self.kh,
            self.kw,
            self.stride,
            self.dilation,
            self.pad_h.0,
            self.pad_h.1,
            self.pad_w.0,
            self.pad_w.1
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win(k: usize, stride: usize, dilation: usize, pad: usize) -> Window2d {
        Window2d {
            kh: k,
            kw: k,
            stride,
            dilation,
            pad_h: (pad, pad),
            pad_w: (pad, pad),
        }
    }

    #[test]
    fn output_sizes_follow_pytorch() {
        assert_eq!(win(5, 1, 1, 0).out(28, 28), Some((24, 24)));
        assert_eq!(win(3, 2, 1, 1).out(7, 7), Some((4, 4)));
        assert_eq!(win(3, 1, 2, 0).out(5, 5), Some((1, 1)));
        assert_eq!(win(3, 1, 1, 0).out(2, 2), None);
        assert_eq!(win(3, 0, 1, 0).out(5, 5), None);
    }

    #[test]
    fn inside_ranges_match_a_brute_force_count() {
        for (k, s, d, p, n) in [
            (3, 1, 1, 1, 5),
            (3, 2, 1, 1, 7),
            (2, 3, 2, 2, 6),
            (5, 1, 1, 0, 9),
        ] {
            let w = win(k, s, d, p);
            let outs = w.out_len(n, k, (p, p)).unwrap();
            for tap in 0..k {
                let t = tap * d;
                let ok: Vec<usize> = (0..outs)
                    .filter(|&o| o * s + t >= p && o * s + t < p + n)
                    .collect();
                let (lo, hi) = w.inside(outs, n, t, p);
                assert_eq!(
                    (lo..hi).collect::<Vec<_>>(),
                    ok,
                    "{k} {s} {d} {p} {n} {tap}"
                );
            }
        }
    }
}
