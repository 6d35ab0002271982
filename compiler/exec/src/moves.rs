//! Copies between two affine maps of one shape: element `i` (row-major over the shape)
//! is read at `src(i)` and written at `dst(i)`. A concat whose operand is a slice reads
//! the slice's source through the slice's map this way, instead of copying the slice
//! out first (a decoder's key/value cache shifted by one position: one copy, not two).
//!
//! Axes of size 1 are dropped and neighbouring axes that step together in both maps
//! are merged, so the copy is a list of rows of `len` elements, each with a source and
//! a destination start, computed once.

use crate::program::Affine;

/// A copy from one affine map to another, as rows.
#[derive(Clone, Debug)]
pub struct Moves {
    /// Elements per row.
    len: usize,
    /// Steps between a row's elements in the source and in the destination.
    strides: (usize, usize),
    /// Each row's first source and destination position.
    rows: Vec<(usize, usize)>,
    /// One past the largest source and destination position (0 when empty).
    extent: (usize, usize),
}

impl Moves {
    /// The copy from `src` to `dst`, which must have the same shape.
    pub fn new(src: &Affine, dst: &Affine) -> Result<Moves, String> {
        if src.shape != dst.shape
            || src.strides.len() != src.shape.len()
            || dst.strides.len() != dst.shape.len()
        {
            return Err(format!(
                "codegen: a move between maps of different shapes ({:?} and {:?})",
                src.shape, dst.shape
            ));
        }
        // (size, source stride, destination stride) of the kept axes, merged.
        let mut axes: Vec<(usize, usize, usize)> = Vec::new();
        for k in 0..src.shape.len() {
            let (d, s, t) = (src.shape[k], src.strides[k], dst.strides[k]);
            if d == 1 {
                continue;
            }
            match axes.last_mut() {
                Some(a) if a.1 == s * d && a.2 == t * d => *a = (a.0 * d, s, t),
                _ => axes.push((d, s, t)),
            }
        }
        let numel: usize = src.shape.iter().product();
        let (len, strides) = match axes.last() {
            Some(&(d, s, t)) => (d, (s, t)),
            None => (1, (1, 1)),
        };
        let mut rows = Vec::new();
        if numel > 0 {
            let outer = &axes[..axes.len().saturating_sub(1)];
            let mut at = vec![0usize; outer.len()];
            loop {
                let (mut ps, mut pd) = (src.offset, dst.offset);
                for (&i, &(_, s, t)) in at.iter().zip(outer) {
                    ps += i * s;
                    pd += i * t;
                }
                rows.push((ps, pd));
                // The next multi-index of the outer axes, last axis fastest.
                let mut k = outer.len();
                loop {
                    if k == 0 {
                        break;
                    }
                    k -= 1;
                    at[k] += 1;
                    if at[k] < outer[k].0 {
                        break;
                    }
                    at[k] = 0;
                }
                if at.iter().all(|&i| i == 0) {
                    break;
                }
            }
        }
        let last = |start: usize, st: usize| start + (len - 1) * st + 1;
        let extent = rows.iter().fold((0, 0), |(es, ed), &(ps, pd)| {
            (es.max(last(ps, strides.0)), ed.max(last(pd, strides.1)))
        });
        Ok(Moves {
            len,
            strides,
            rows,
            extent,
        })
    }

    /// Elements moved.
    pub fn len(&self) -> usize {
        self.len * self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether every position lies within a source of `src` and a destination of
    /// `dst` elements.
    pub fn fits(&self, src: usize, dst: usize) -> bool {
        self.extent.0 <= src && self.extent.1 <= dst
    }

    /// Rows `first..end` of the copy from `x` into `out`.
    pub fn run_rows<T: Copy>(&self, out: &mut [T], x: &[T], first: usize, end: usize) {
        let (len, (ss, ds)) = (self.len, self.strides);
        for &(ps, pd) in &self.rows[first..end] {
            if ss == 1 && ds == 1 {
                out[pd..pd + len].copy_from_slice(&x[ps..ps + len]);
            } else {
                for e in 0..len {
                    out[pd + e * ds] = x[ps + e * ss];
                }
            }
        }
    }

    /// How many rows there are.
    pub fn row_count(&self) -> usize {
        self.rows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(shape: &[usize], strides: &[usize], offset: usize) -> Affine {
        Affine {
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            offset,
        }
    }

    /// Every element through the maps one by one, as the reference.
    fn reference(src: &Affine, dst: &Affine, x: &[f32], out: &mut [f32]) {
        let s = dnnc_ir::layout::affine(&src.shape, &src.strides, src.offset);
        let d = dnnc_ir::layout::affine(&dst.shape, &dst.strides, dst.offset);
        for (a, b) in s.into_iter().zip(d) {
            out[b] = x[a];
        }
    }

    #[test]
    fn a_shifted_cache_moves_in_merged_rows() {
        // cache[:, :, :, 1:64, :] of [2, 1, 4, 64, 32] into the first 63 positions of
        // the same shape: 8 rows of 63·32, both sides contiguous.
        let st = [8192, 8192, 2048, 32, 1];
        let src = map(&[2, 1, 4, 63, 32], &st, 32);
        let dst = map(&[2, 1, 4, 63, 32], &st, 0);
        let m = Moves::new(&src, &dst).unwrap();
        assert_eq!(
            (m.len, m.row_count(), m.len()),
            (63 * 32, 8, 2 * 4 * 63 * 32)
        );
        let x: Vec<f32> = (0..16384).map(|i| i as f32).collect();
        let (mut out, mut want) = (vec![-1.0; 16384], vec![-1.0; 16384]);
        m.run_rows(&mut out, &x, 0, m.row_count());
        reference(&src, &dst, &x, &mut want);
        assert_eq!(out, want);
        assert!(m.fits(16384, 16384) && !m.fits(16384, 16000));
    }

    #[test]
    fn strided_and_transposed_maps_agree_with_the_reference() {
        // A transposed, strided source (a slice with step 2 of a [6, 4] matrix, read
        // as its transpose) into a concat's second half.
        let src = map(&[4, 3], &[1, 8], 4);
        let dst = map(&[4, 3], &[6, 1], 3);
        let m = Moves::new(&src, &dst).unwrap();
        let x: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let (mut out, mut want) = (vec![0.0; 24], vec![0.0; 24]);
        m.run_rows(&mut out, &x, 0, m.row_count());
        reference(&src, &dst, &x, &mut want);
        assert_eq!(out, want);
        // A scalar and an empty map.
        let one = Moves::new(&map(&[], &[], 5), &map(&[], &[], 2)).unwrap();
        assert_eq!((one.len(), one.extent), (1, (6, 3)));
        let none = Moves::new(&map(&[0, 3], &[3, 1], 0), &map(&[0, 3], &[3, 1], 0)).unwrap();
        assert!(none.is_empty() && none.fits(0, 0));
        assert!(Moves::new(&map(&[2], &[1], 0), &map(&[3], &[1], 0)).is_err());
    }
}
