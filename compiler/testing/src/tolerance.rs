//! The stated tolerances of the differential tests, and the element-by-element
//! comparison of two runs' results.

use dnnc_tensor::{Data, Tensor};

/// The stated tolerance: matrix products use fused multiply-add and blocked
/// summation, so they (and what is computed from them) may differ from the
/// interpreter by rounding; everything else agrees bit for bit. Relative 1e-4 plus
/// absolute 1e-4 (cancellation in a sum can leave a small result with the absolute
/// error of its large terms).
pub fn close(a: f32, b: f32) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
}

/// Whether `x` and `y` agree bit for bit, up to the sign of zero and NaN payloads.
pub fn same(x: f32, y: f32) -> bool {
    x == y || (x.is_nan() && y.is_nan())
}

pub type Results = (Vec<(String, Tensor)>, Vec<(String, Tensor)>);

/// Compares `got` against `want` element by element with `ok`; returns how many `f32`
/// elements were compared and how many agreed bit for bit. Integer and `bool` results
/// must agree exactly.
pub fn agree(
    what: &str,
    got: &Results,
    want: &Results,
    ok: fn(f32, f32) -> bool,
) -> (usize, usize) {
    let (mut n, mut exact) = (0, 0);
    for (got, want) in [(&got.0, &want.0), (&got.1, &want.1)] {
        assert_eq!(got.len(), want.len(), "{what}");
        for ((gn, gt), (wn, wt)) in got.iter().zip(want) {
            assert_eq!(gn, wn, "{what}");
            assert_eq!(
                (gt.dtype, &gt.shape),
                (wt.dtype, &wt.shape),
                "{what}: `{gn}`"
            );
            match (&gt.data, &wt.data) {
                (Data::F32(gv), Data::F32(wv)) => {
                    for (i, (&x, &y)) in gv.iter().zip(wv).enumerate() {
                        assert!(ok(x, y), "{what}: `{gn}`[{i}]: compiled {x}, reference {y}");
                        n += 1;
                        exact += usize::from(same(x, y));
                    }
                }
                (gd, wd) => assert_eq!(gd, wd, "{what}: `{gn}`"),
            }
        }
    }
    (n, exact)
}

/// Whether two tensors have the same type and shape and their elements agree: `f32`
/// within relative `rel` (NaN matches NaN), every other type exactly. The error names
/// the first element that differs.
pub fn tensors_match(a: &Tensor, b: &Tensor, rel: f32) -> Result<(), String> {
    if a.dtype != b.dtype || a.shape != b.shape {
        return Err(format!(
            "{}{:?} vs {}{:?}",
            a.dtype, a.shape, b.dtype, b.shape
        ));
    }
    match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => {
            for (i, (&p, &q)) in x.iter().zip(y).enumerate() {
                if !(same(p, q) || (p - q).abs() <= rel * p.abs().max(q.abs())) {
                    return Err(format!("element {i}: {p} vs {q}"));
                }
            }
            Ok(())
        }
        _ if a.data == b.data => Ok(()),
        _ => Err(format!("{:?} vs {:?}", a.data, b.data)),
    }
}

/// Whether two results hold the same names, types, shapes and bits, NaN payloads
/// aside (every NaN matches every NaN; `-0.0` does not match `0.0`). The error names
/// the first result and element that differ.
pub fn identical(got: &Results, want: &Results) -> Result<(), String> {
    for (got, want) in [(&got.0, &want.0), (&got.1, &want.1)] {
        if got.len() != want.len() {
            return Err(format!("{} results, expected {}", got.len(), want.len()));
        }
        for ((gn, gt), (wn, wt)) in got.iter().zip(want) {
            if gn != wn || gt.dtype != wt.dtype || gt.shape != wt.shape {
                return Err(format!(
                    "`{gn}`: {}{:?}, expected `{wn}`: {}{:?}",
                    gt.dtype, gt.shape, wt.dtype, wt.shape
                ));
            }
            if !gt.dtype.is_float() {
                let (g, w) = (gt.data.to_i64_vec(), wt.data.to_i64_vec());
                if let Some(i) = (0..g.len()).find(|&i| g[i] != w[i]) {
                    return Err(format!("`{gn}`[{i}]: {}, expected {}", g[i], w[i]));
                }
                continue;
            }
            let (g, w) = (gt.data.to_f64_vec(), wt.data.to_f64_vec());
            for (i, (&x, &y)) in g.iter().zip(&w).enumerate() {
                if !(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())) {
                    return Err(format!("`{gn}`[{i}]: {x:?}, expected {y:?}"));
                }
            }
        }
    }
    Ok(())
}
