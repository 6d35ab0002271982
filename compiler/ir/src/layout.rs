//! Index math for row-major tensors: strides, and the flat-index maps of transposition,
//! broadcasting, slicing, padding and reduction.
//!
//! All of those layout ops are *affine* on multi-indices: the flat position that element
//! `(i_0, .., i_{r-1})` of some shape reads from (or writes to) is
//! `offset + Σ_k i_k · strides_k` for suitable `strides` and `offset`. [`affine`] lists
//! that position for every element of the shape in row-major order; the other functions
//! compute the strides for each op:
//!
//! | op | iterated shape | strides | offset |
//! |---|---|---|---|
//! | transpose `perm` | output | `in_strides[perm[k]]` | 0 |
//! | broadcast | output | input stride, 0 on new or size-1 axes | 0 |
//! | slice | output | `steps[k] · in_strides[k]` | `Σ starts[k] · in_strides[k]` |
//! | pad (destination) | input | output strides | `Σ lo[k] · out_strides[k]` |
//! | reduce (destination) | input | kept-axis output strides, 0 on reduced axes | 0 |

/// The number of elements of `shape` (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides: the last axis has stride 1.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1];
    }
    s
}

/// `offset + Σ_k i_k · strides[k]` for every multi-index `i` of `shape`, in row-major
/// order. `strides` has one entry per axis of `shape`.
pub fn affine(shape: &[usize], strides: &[usize], offset: usize) -> Vec<usize> {
    debug_assert_eq!(shape.len(), strides.len());
    let n = numel(shape);
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let (Some((&last, outer_shape)), Some((&last_stride, outer_strides))) =
        (shape.split_last(), strides.split_last())
    else {
        out.push(offset);
        return out;
    };
    // An odometer over the outer axes; the last axis is a plain run.
    let mut idx = vec![0; outer_shape.len()];
    let mut base = offset;
    loop {
        out.extend((0..last).map(|j| base + j * last_stride));
        let mut k = outer_shape.len();
        loop {
            if k == 0 {
                return out;
            }
            k -= 1;
            idx[k] += 1;
            base += outer_strides[k];
            if idx[k] < outer_shape[k] {
                break;
            }
            base -= outer_strides[k] * outer_shape[k];
            idx[k] = 0;
        }
    }
}

/// For each output axis `k` of `transpose(perm)`, the input stride it walks:
/// `out[i] = in[Σ_k i_k · in_strides[perm[k]]]`.
pub fn transpose_strides(in_shape: &[usize], perm: &[usize]) -> Vec<usize> {
    let s = strides(in_shape);
    perm.iter().map(|&p| s[p]).collect()
}

/// For each axis of `out_shape`, the stride of the input that NumPy broadcasting reads
/// along it: shapes are right-aligned; new leading axes and size-1 axes read stride 0.
pub fn broadcast_strides(in_shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let s = strides(in_shape);
    let off = out_shape.len() - in_shape.len();
    (0..out_shape.len())
        .map(|k| {
            if k < off || in_shape[k - off] == 1 {
                0
            } else {
                s[k - off]
            }
        })
        .collect()
}

/// The strides that read a strided view (`shape` with `strides`) as `new_shape`, the
/// same elements in the same row-major order, without copying: `None` when some axis
/// of `new_shape` would straddle axes of the view that are not laid out one after the
/// other (a reshape of such a view needs a copy). Each run of view axes that are
/// consecutive in memory (`strides[k] = strides[k + 1] · shape[k + 1]`) is split into
/// the new axes that multiply to its length.
pub fn reshape_strides(
    shape: &[usize],
    strides: &[usize],
    new_shape: &[usize],
) -> Option<Vec<usize>> {
    debug_assert_eq!(shape.len(), strides.len());
    if numel(shape) != numel(new_shape) || numel(shape) == 0 {
        return None;
    }
    // Runs of consecutive view axes (size-1 axes join any run), from the last: each
    // is `(elements, stride of its last axis)`.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut k = shape.len();
    while k > 0 {
        k -= 1;
        if shape[k] == 1 {
            continue;
        }
        match runs.last_mut() {
            Some((len, base)) if strides[k] == *len * *base => *len *= shape[k],
            _ => runs.push((shape[k], strides[k])),
        }
    }
    let mut out = vec![0; new_shape.len()];
    let mut j = new_shape.len();
    for (len, base) in runs {
        let mut covered = 1;
        while covered < len {
            j = j.checked_sub(1)?;
            out[j] = covered * base;
            covered *= new_shape[j];
        }
        if covered != len {
            return None;
        }
    }
    // The remaining leading axes have one element each.
    Some(out)
}

/// The strides of a slice: `(steps[k] · in_strides[k], Σ starts[k] · in_strides[k])`.
pub fn slice_strides(in_shape: &[usize], starts: &[usize], steps: &[usize]) -> (Vec<usize>, usize) {
    let s = strides(in_shape);
    let offset = starts.iter().zip(&s).map(|(a, b)| a * b).sum();
    (steps.iter().zip(&s).map(|(a, b)| a * b).collect(), offset)
}

/// Where each element of the input of a pad lands in the output:
/// `(out_strides, Σ lo[k] · out_strides[k])`.
pub fn pad_strides(out_shape: &[usize], lo: &[usize]) -> (Vec<usize>, usize) {
    let s = strides(out_shape);
    let offset = lo.iter().zip(&s).map(|(a, b)| a * b).sum();
    (s, offset)
}

/// For each input axis, the stride into the reduced output (the same with or without
/// `keepdims`): the row-major strides of the shape with reduced axes set to 1, with 0 on
/// the reduced axes.
pub fn reduce_strides(in_shape: &[usize], axes: &[usize]) -> Vec<usize> {
    let kept: Vec<usize> = in_shape
        .iter()
        .enumerate()
        .map(|(k, &d)| if axes.contains(&k) { 1 } else { d })
        .collect();
    let mut s = strides(&kept);
    for &a in axes {
        s[a] = 0;
    }
    s
}

/// `(before, size, after)`: the element counts before `axis`, along it and after it, so
/// that a tensor is viewed as `[before, size, after]`.
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        numel(&shape[..axis]),
        shape[axis],
        numel(&shape[axis + 1..]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The multi-index of flat position `i` of `shape`, the slow obvious way.
    fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
        let mut idx = vec![0; shape.len()];
        for k in (0..shape.len()).rev() {
            idx[k] = i % shape[k];
            i /= shape[k];
        }
        idx
    }

    /// A view read through `reshape_strides` lists the view's elements in the same
    /// order; reshapes that merge axes not laid out one after the other are refused.
    #[test]
    fn reshaped_views_read_the_same_elements() {
        // (view shape, view strides, new shape, whether it needs no copy)
        type Case<'a> = (&'a [usize], &'a [usize], &'a [usize], bool);
        let cases: &[Case] = &[
            // The queries of a packed projection: a slice of the last axis, split into
            // heads.
            (&[12, 64, 128], &[24576, 384, 1], &[12, 64, 4, 32], true),
            (&[12, 64, 128], &[24576, 384, 1], &[768, 128], true),
            (&[12, 64, 128], &[24576, 384, 1], &[12, 8192], false),
            // A transpose: its axes split, but never merged.
            (&[3, 4], &[1, 3], &[3, 2, 2], true),
            (&[3, 4], &[1, 3], &[12], false),
            (&[3, 1, 4], &[4, 99, 1], &[12], true),
            (&[3, 1, 4], &[4, 99, 1], &[2, 6], true),
            (&[2, 3, 5], &[15, 5, 1], &[1, 30, 1], true),
            (&[1, 1], &[7, 7], &[1], true),
        ];
        for &(shape, st, new, ok) in cases {
            let got = reshape_strides(shape, st, new);
            assert_eq!(got.is_some(), ok, "{shape:?} {st:?} as {new:?}: {got:?}");
            if let Some(ns) = got {
                assert_eq!(
                    affine(new, &ns, 5),
                    affine(shape, st, 5),
                    "{shape:?} as {new:?}"
                );
            }
        }
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[5]), vec![1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
        assert_eq!(strides(&[3, 0, 2]), vec![0, 2, 1]);
    }

    #[test]
    fn affine_walks_row_major() {
        assert_eq!(affine(&[2, 3], &[3, 1], 0), (0..6).collect::<Vec<_>>());
        assert_eq!(affine(&[2, 3], &[1, 2], 10), vec![10, 12, 14, 11, 13, 15]);
        assert_eq!(affine(&[], &[], 7), vec![7]);
        assert!(affine(&[2, 0, 3], &[0, 3, 1], 0).is_empty());
    }

    #[test]
    fn transpose_map_matches_the_definition() {
        let in_shape = [2, 3, 4];
        let perm = [2, 0, 1];
        let out_shape: Vec<usize> = perm.iter().map(|&p| in_shape[p]).collect();
        let src = affine(&out_shape, &transpose_strides(&in_shape, &perm), 0);
        let is = strides(&in_shape);
        for (o, &s) in src.iter().enumerate() {
            let oi = unravel(o, &out_shape);
            // out[o_0, o_1, o_2] = in[i] with i[perm[k]] = o_k.
            let mut ii = [0; 3];
            for k in 0..3 {
                ii[perm[k]] = oi[k];
            }
            assert_eq!(s, ii.iter().zip(&is).map(|(a, b)| a * b).sum::<usize>());
        }
    }

    #[test]
    fn broadcast_map_is_right_aligned() {
        // [3, 1] to [2, 3, 4]: reads row i of the input for every j, k.
        let src = affine(&[2, 3, 4], &broadcast_strides(&[3, 1], &[2, 3, 4]), 0);
        for (o, &s) in src.iter().enumerate() {
            assert_eq!(s, unravel(o, &[2, 3, 4])[1]);
        }
        // A scalar broadcasts everywhere.
        assert_eq!(
            affine(&[2, 2], &broadcast_strides(&[], &[2, 2]), 0),
            vec![0; 4]
        );
        // [4] to [2, 4]: rows repeat.
        assert_eq!(
            affine(&[2, 4], &broadcast_strides(&[4], &[2, 4]), 0),
            vec![0, 1, 2, 3, 0, 1, 2, 3]
        );
    }

    #[test]
    fn slice_pad_and_reduce_maps() {
        // [4, 5], rows 1..4 by 2, columns 0..5 by 3: rows 1, 3 and columns 0, 3.
        let (s, off) = slice_strides(&[4, 5], &[1, 0], &[2, 3]);
        assert_eq!(affine(&[2, 2], &s, off), vec![5, 8, 15, 18]);
        // A [2, 2] padded by lo [1, 0] into [3, 4] lands at rows 1-2, columns 0-1.
        let (s, off) = pad_strides(&[3, 4], &[1, 0]);
        assert_eq!(affine(&[2, 2], &s, off), vec![4, 5, 8, 9]);
        // Reducing axis 1 of [2, 3, 2]: output [2, 2].
        let dst = affine(&[2, 3, 2], &reduce_strides(&[2, 3, 2], &[1]), 0);
        assert_eq!(dst, vec![0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3]);
        assert_eq!(split_at_axis(&[2, 3, 4, 5], 2), (6, 4, 5));
    }
}
