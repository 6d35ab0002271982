//! Walking the index maps of the data-movement ops ([`dnnc_ir::layout`], the same
//! affine maps the interpreter reads) run by run, without materialising them.

use dnnc_ir::layout::affine;
/// The most axes a [`Walk`] iterates without a precomputed index vector.
const WALK_AXES: usize = 16;

/// An affine map walked row by row: for each run of consecutive elements of the
/// row-major source order, where the run starts in the mapped space and its stride.
/// Axes of size 1 are dropped and adjacent axes that step together are merged, so a
/// plain copy is one run and a transpose's runs are its rows. Walking allocates
/// nothing.
#[derive(Clone, Debug)]
pub struct Walk {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
    /// For maps of more than [`WALK_AXES`] axes (after merging): every position.
    index: Option<Vec<usize>>,
}

impl Walk {
    pub fn new(shape: &[usize], strides: &[usize], offset: usize) -> Walk {
        let mut sh: Vec<usize> = Vec::new();
        let mut st: Vec<usize> = Vec::new();
        for (&d, &s) in shape.iter().zip(strides) {
            if d == 1 {
                continue;
            }
            match (sh.last_mut(), st.last()) {
                (Some(pd), Some(&ps)) if ps == s * d => {
                    *pd *= d;
                    *st.last_mut().expect("same length") = s;
                }
                _ => {
                    sh.push(d);
                    st.push(s);
                }
            }
        }
        let index = (sh.len() > WALK_AXES).then(|| affine(shape, strides, offset));
        Walk {
            shape: sh,
            strides: st,
            offset,
            index,
        }
    }

    /// Elements the map covers.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many runs [`Walk::rows`] visits.
    pub fn runs(&self) -> usize {
        match (&self.index, self.shape.last()) {
            (Some(index), _) => index.len(),
            (None, Some(&len)) if len > 0 => self.len() / len,
            (None, Some(_)) => 0,
            (None, None) => 1,
        }
    }

    /// Calls `f(i, pos, len, stride)` for each run: source elements `i..i + len` map to
    /// `pos, pos + stride, …`, in row-major order of the source.
    pub fn rows(&self, f: impl FnMut(usize, usize, usize, usize)) {
        self.rows_in(0, self.runs(), f);
    }

    /// [`Walk::rows`] for runs `first..end` only (so threads can split a walk).
    pub fn rows_in(&self, first: usize, end: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
        if let Some(index) = &self.index {
            for (i, &p) in index.iter().enumerate().take(end).skip(first) {
                f(i, p, 1, 0);
            }
            return;
        }
        let n = self.len();
        if n == 0 || first >= end {
            return;
        }
        let r = self.shape.len();
        if r == 0 {
            f(0, self.offset, 1, 0);
            return;
        }
        let (len, stride) = (self.shape[r - 1], self.strides[r - 1]);
        let mut idx = [0usize; WALK_AXES];
        let mut pos = self.offset;
        // The multi-index of run `first` over the outer axes.
        let mut rest = first;
        for k in (0..r - 1).rev() {
            idx[k] = rest % self.shape[k];
            rest /= self.shape[k];
            pos += idx[k] * self.strides[k];
        }
        let mut i = first * len;
        let n = n.min(end * len);
        while i < n {
            f(i, pos, len, stride);
            i += len;
            // Advance the outer axes (all but the last).
            for k in (0..r - 1).rev() {
                idx[k] += 1;
                pos += self.strides[k];
                if idx[k] < self.shape[k] {
                    break;
                }
                pos -= self.strides[k] * self.shape[k];
                idx[k] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnnc_ir::layout::{broadcast_strides, transpose_strides};

    /// A walk visits exactly the positions of the index map, in order: transposes,
    /// broadcasts (stride 0), slices, merged axes, size-1 axes, and more axes than a
    /// walk keeps counters for.
    #[test]
    fn walks_follow_the_index_map() {
        let cases: Vec<(Vec<usize>, Vec<usize>, usize)> = vec![
            (vec![3, 2], transpose_strides(&[2, 3], &[1, 0]), 0),
            (vec![3, 2], broadcast_strides(&[3, 1], &[3, 2]), 0),
            (vec![4, 5, 6], vec![30, 6, 1], 7),
            (vec![4, 1, 6], vec![6, 99, 1], 0),
            (
                vec![2, 3, 4, 5],
                transpose_strides(&[2, 5, 3, 4], &[0, 2, 3, 1]),
                0,
            ),
            (vec![5, 4], vec![0, 0], 3),
            (vec![2, 0, 3], vec![3, 3, 1], 0),
            (vec![], vec![], 5),
            (vec![2; 18], (0..18).rev().map(|k| 1usize << k).collect(), 1),
        ];
        for (shape, strides, offset) in cases {
            let want = affine(&shape, &strides, offset);
            let mut got = Vec::new();
            Walk::new(&shape, &strides, offset).rows(|i, pos, len, st| {
                assert_eq!(i, got.len());
                got.extend((0..len).map(|j| pos + j * st));
            });
            assert_eq!(got, want, "{shape:?} {strides:?}");
            // The same walk in pieces, as threads split it.
            let w = Walk::new(&shape, &strides, offset);
            let runs = w.runs();
            let mut pieces = Vec::new();
            for (a, b) in [(0, runs / 3), (runs / 3, runs / 2), (runs / 2, runs)] {
                w.rows_in(a, b, |i, pos, len, st| {
                    assert_eq!(i, pieces.len());
                    pieces.extend((0..len).map(|j| pos + j * st));
                });
            }
            assert_eq!(pieces, want, "{shape:?} {strides:?} in pieces");
        }
    }
}
