//! The lowering of `conv2d`, `max_pool2d` and `avg_pool2d` into primitives, run by the
//! interpreter: the convolution against a direct nested-loop reference, and the
//! gradients from autodiff against central finite differences; likewise for dilated,
//! grouped and `same`-padded convolutions against a general reference.

use std::collections::HashMap;

use dnnc_ir::{DType, Graph, NodeId, Op, ReduceKind};
use dnnc_lower::conv::ConvOpts;
use dnnc_lower::emit::Emitter;
use dnnc_tensor::Tensor;

const X: [usize; 4] = [2, 3, 7, 7];
const W: [usize; 4] = [4, 3, 3, 3];
const STRIDE: usize = 2;
const PAD: usize = 1;
/// `(7 + 2 - 3) / 2 + 1`.
const OH: usize = 4;

/// Deterministic values in `[-1, 1)`.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn input(g: &mut Graph, name: &str, shape: &[usize]) -> NodeId {
    let op = Op::Input {
        name: name.into(),
        dtype: DType::F32,
        shape: shape.to_vec(),
    };
    g.add(op, &[]).unwrap()
}

/// `loss = sum(max_pool2d(y, 2) * r1) + sum(avg_pool2d(y, 3, 1, 1) * r2)` for
/// `y = conv2d(x, w, stride 2, padding 1)`, with `y` and the gradients as outputs.
fn graph() -> Graph {
    let mut g = Graph::new("conv");
    let x = input(&mut g, "x", &X);
    let w = input(&mut g, "w", &W);
    let r1 = input(&mut g, "r1", &[2, 4, 2, 2]);
    let r2 = input(&mut g, "r2", &[2, 4, OH, OH]);
    let mut em = Emitter::new(&mut g);
    let opts = ConvOpts {
        stride: STRIDE,
        padding: PAD,
        ..ConvOpts::default()
    };
    let y = dnnc_lower::conv::conv2d(&mut em, x, w, opts).unwrap();
    assert_eq!(em.shape(y), [2, 4, OH, OH]);
    let m = dnnc_lower::conv::pool2d(&mut em, y, 2, 2, 0, false).unwrap();
    let a = dnnc_lower::conv::pool2d(&mut em, y, 3, 1, 1, true).unwrap();
    assert_eq!(em.shape(a), [2, 4, OH, OH]);
    let mut terms = Vec::new();
    for (p, r) in [(m, r1), (a, r2)] {
        let pr = em.binary(dnnc_ir::BinaryOp::Mul, p, r).unwrap();
        terms.push(
            em.reduce(ReduceKind::Sum, pr, &[0, 1, 2, 3], false)
                .unwrap(),
        );
    }
    let loss = em
        .binary(dnnc_ir::BinaryOp::Add, terms[0], terms[1])
        .unwrap();
    let grads = dnnc_passes::autodiff::gradients(&mut g, loss, &[x, w]).unwrap();
    g.set_output("y", y);
    g.set_output("loss", loss);
    g.set_output("dx", grads[0]);
    g.set_output("dw", grads[1]);
    dnnc_ir::verify(&g).unwrap();
    g
}

fn run(g: &Graph, feeds: &HashMap<String, Tensor>) -> HashMap<String, Vec<f32>> {
    let out = dnnc_interp::run(g, feeds, &HashMap::new()).unwrap();
    out.outputs
        .into_iter()
        .map(|(n, t)| (n, t.to_f32_vec()))
        .collect()
}

fn feeds(x: &[f32], w: &[f32]) -> HashMap<String, Tensor> {
    let mut f = HashMap::new();
    f.insert("x".into(), Tensor::f32(X.to_vec(), x.to_vec()).unwrap());
    f.insert("w".into(), Tensor::f32(W.to_vec(), w.to_vec()).unwrap());
    f.insert(
        "r1".into(),
        Tensor::f32(vec![2, 4, 2, 2], values(32, 3)).unwrap(),
    );
    let n = 2 * 4 * OH * OH;
    f.insert(
        "r2".into(),
        Tensor::f32(vec![2, 4, OH, OH], values(n, 4)).unwrap(),
    );
    f
}

/// PyTorch's `conv2d` (cross-correlation, zero padding) written out.
fn reference(x: &[f32], w: &[f32]) -> Vec<f32> {
    let [n, c, h, wd] = X;
    let [o, _, kh, kw] = W;
    let mut out = vec![0.0f32; n * o * OH * OH];
    for b in 0..n {
        for oc in 0..o {
            for i in 0..OH {
                for j in 0..OH {
                    let mut acc = 0.0f32;
                    for ic in 0..c {
                        for u in 0..kh {
                            for v in 0..kw {
                                let (r, s) = (i * STRIDE + u, j * STRIDE + v);
                                if r < PAD || s < PAD || r - PAD >= h || s - PAD >= wd {
                                    continue;
                                }
                                let xi = ((b * c + ic) * h + r - PAD) * wd + s - PAD;
                                let wi = ((oc * c + ic) * kh + u) * kw + v;
                                acc += x[xi] * w[wi];
                            }
                        }
                    }
                    out[((b * o + oc) * OH + i) * OH + j] = acc;
                }
            }
        }
    }
    out
}

#[test]
fn conv2d_matches_nested_loops() {
    let (x, w) = (values(X.iter().product(), 1), values(W.iter().product(), 2));
    let got = run(&graph(), &feeds(&x, &w));
    let want = reference(&x, &w);
    assert_eq!(got["y"].len(), want.len());
    for (i, (a, b)) in got["y"].iter().zip(&want).enumerate() {
        assert!((a - b).abs() < 1e-5, "y[{i}]: lowered {a}, reference {b}");
    }
}

#[test]
fn gradients_match_finite_differences() {
    let g = graph();
    let (x, w) = (values(X.iter().product(), 1), values(W.iter().product(), 2));
    let exact = run(&g, &feeds(&x, &w));
    let loss = |x: &[f32], w: &[f32]| run(&g, &feeds(x, w))["loss"][0] as f64;
    let eps = 1e-2f32;
    let check = |what: &str, i: usize, analytic: f32, plus: f64, minus: f64| {
        let fd = (plus - minus) / (2.0 * eps as f64);
        let tol = 2e-3 + 1e-2 * fd.abs();
        assert!(
            (analytic as f64 - fd).abs() < tol,
            "d loss / d {what}[{i}]: autodiff {analytic}, finite differences {fd}"
        );
    };
    for i in [0, 5, 17, 40, 81, 107] {
        let (mut p, mut m) = (w.clone(), w.clone());
        p[i] += eps;
        m[i] -= eps;
        check("w", i, exact["dw"][i], loss(&x, &p), loss(&x, &m));
    }
    for i in [0, 8, 24, 60, 130, 200, 293] {
        let (mut p, mut m) = (x.clone(), x.clone());
        p[i] += eps;
        m[i] -= eps;
        check("x", i, exact["dx"][i], loss(&p, &w), loss(&m, &w));
    }
}

/// PyTorch's `conv2d` in full: `w: [O, C/groups, KH, KW]`, taps `dilation` apart, the
/// padding `(top, bottom)` and `(left, right)`.
#[allow(clippy::too_many_arguments)]
fn reference_general(
    x: &[f32],
    xs: [usize; 4],
    w: &[f32],
    ws: [usize; 4],
    stride: usize,
    pad_h: (usize, usize),
    pad_w: (usize, usize),
    dilation: usize,
    groups: usize,
) -> (Vec<f32>, [usize; 4]) {
    let [n, c, h, wd] = xs;
    let [o, cg, kh, kw] = ws;
    assert_eq!(cg * groups, c);
    let oh = (h + pad_h.0 + pad_h.1 - dilation * (kh - 1) - 1) / stride + 1;
    let ow = (wd + pad_w.0 + pad_w.1 - dilation * (kw - 1) - 1) / stride + 1;
    let og = o / groups;
    let mut out = vec![0.0f32; n * o * oh * ow];
    for b in 0..n {
        for oc in 0..o {
            let g = oc / og;
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = 0.0f32;
                    for icg in 0..cg {
                        let ic = g * cg + icg;
                        for u in 0..kh {
                            for v in 0..kw {
                                let r = (i * stride + u * dilation) as isize - pad_h.0 as isize;
                                let s = (j * stride + v * dilation) as isize - pad_w.0 as isize;
                                if r < 0 || s < 0 || r >= h as isize || s >= wd as isize {
                                    continue;
                                }
                                let (r, s) = (r as usize, s as usize);
                                let xi = ((b * c + ic) * h + r) * wd + s;
                                let wi = ((oc * cg + icg) * kh + u) * kw + v;
                                acc += x[xi] * w[wi];
                            }
                        }
                    }
                    out[((b * o + oc) * oh + i) * ow + j] = acc;
                }
            }
        }
    }
    (out, [n, o, oh, ow])
}

/// `y = conv2d(x, w, opts)` and `loss = sum(y * r)`, with the gradients of `loss`.
fn general_graph(xs: [usize; 4], ws: [usize; 4], ys: [usize; 4], opts: ConvOpts) -> Graph {
    let mut g = Graph::new("conv_general");
    let x = input(&mut g, "x", &xs);
    let w = input(&mut g, "w", &ws);
    let r = input(&mut g, "r", &ys);
    let mut em = Emitter::new(&mut g);
    let y = dnnc_lower::conv::conv2d(&mut em, x, w, opts).unwrap();
    assert_eq!(em.shape(y), ys);
    let yr = em.binary(dnnc_ir::BinaryOp::Mul, y, r).unwrap();
    let loss = em
        .reduce(ReduceKind::Sum, yr, &[0, 1, 2, 3], false)
        .unwrap();
    let grads = dnnc_passes::autodiff::gradients(&mut g, loss, &[x, w]).unwrap();
    g.set_output("y", y);
    g.set_output("loss", loss);
    g.set_output("dx", grads[0]);
    g.set_output("dw", grads[1]);
    dnnc_ir::verify(&g).unwrap();
    g
}

fn general_feeds(
    xs: [usize; 4],
    x: &[f32],
    ws: [usize; 4],
    w: &[f32],
    ys: [usize; 4],
) -> HashMap<String, Tensor> {
    let mut f = HashMap::new();
    f.insert("x".into(), Tensor::f32(xs.to_vec(), x.to_vec()).unwrap());
    f.insert("w".into(), Tensor::f32(ws.to_vec(), w.to_vec()).unwrap());
    let r = values(ys.iter().product(), 9);
    f.insert("r".into(), Tensor::f32(ys.to_vec(), r).unwrap());
    f
}

/// Lowers `conv2d(x, w, opts)` and compares it with the reference on random values.
fn check_against_reference(
    xs: [usize; 4],
    ws: [usize; 4],
    opts: ConvOpts,
    pad_h: (usize, usize),
    pad_w: (usize, usize),
) {
    let (x, w) = (
        values(xs.iter().product(), 5),
        values(ws.iter().product(), 6),
    );
    let (want, ys) = reference_general(
        &x,
        xs,
        &w,
        ws,
        opts.stride,
        pad_h,
        pad_w,
        opts.dilation,
        opts.groups,
    );
    let g = general_graph(xs, ws, ys, opts);
    let got = run(&g, &general_feeds(xs, &x, ws, &w, ys));
    assert_eq!(got["y"].len(), want.len());
    for (i, (a, b)) in got["y"].iter().zip(&want).enumerate() {
        assert!((a - b).abs() < 1e-5, "y[{i}]: lowered {a}, reference {b}");
    }
}

const GX: [usize; 4] = [2, 4, 9, 9];
const GW: [usize; 4] = [6, 2, 3, 3];
/// `(9 + 4 - 2*(3 - 1) - 1) / 1 + 1`.
const GY: [usize; 4] = [2, 6, 9, 9];

fn grouped_dilated() -> ConvOpts {
    ConvOpts {
        stride: 1,
        padding: 2,
        dilation: 2,
        groups: 2,
        same: false,
    }
}

#[test]
fn grouped_dilated_conv2d_matches_nested_loops() {
    check_against_reference(GX, GW, grouped_dilated(), (2, 2), (2, 2));
    // Depthwise, strided and dilated, floor division: (10 + 2 - 7) / 2 + 1 = 3.
    let opts = ConvOpts {
        stride: 2,
        padding: 1,
        dilation: 3,
        groups: 3,
        same: false,
    };
    check_against_reference([1, 3, 10, 10], [6, 1, 3, 3], opts, (1, 1), (1, 1));
}

#[test]
fn same_padding_matches_pytorch_with_even_kernels() {
    let same = |dilation| ConvOpts {
        dilation,
        same: true,
        ..ConvOpts::default()
    };
    // Kernel 4x2: 3 zeros in all on the height (1 above, 2 below), 1 on the width
    // (0 left, 1 right), as PyTorch's `padding = "same"`.
    check_against_reference([2, 3, 6, 7], [4, 3, 4, 2], same(1), (1, 2), (0, 1));
    // Dilated by 3: 9 and 3 zeros in all, split 4/5 and 1/2.
    check_against_reference([1, 2, 8, 5], [2, 2, 4, 2], same(3), (4, 5), (1, 2));
    // Grouped and odd: symmetric.
    let opts = ConvOpts {
        groups: 2,
        ..same(2)
    };
    check_against_reference([1, 4, 7, 7], [2, 2, 3, 3], opts, (2, 2), (2, 2));
}

#[test]
fn grouped_dilated_gradients_match_finite_differences() {
    let g = general_graph(GX, GW, GY, grouped_dilated());
    let (x, w) = (
        values(GX.iter().product(), 7),
        values(GW.iter().product(), 8),
    );
    let exact = run(&g, &general_feeds(GX, &x, GW, &w, GY));
    let loss = |x: &[f32], w: &[f32]| run(&g, &general_feeds(GX, x, GW, w, GY))["loss"][0] as f64;
    let eps = 1e-2f32;
    let check = |what: &str, i: usize, analytic: f32, plus: f64, minus: f64| {
        let fd = (plus - minus) / (2.0 * eps as f64);
        let tol = 2e-3 + 1e-2 * fd.abs();
        assert!(
            (analytic as f64 - fd).abs() < tol,
            "d loss / d {what}[{i}]: autodiff {analytic}, finite differences {fd}"
        );
    };
    // Both groups of `w` ([6, 2, 3, 3]: group 1 from index 54) and of `x` (channels 2
    // and 3 from index 324 in each sample).
    for i in [0, 7, 20, 53, 54, 61, 88, 107] {
        let (mut p, mut m) = (w.clone(), w.clone());
        p[i] += eps;
        m[i] -= eps;
        check("w", i, exact["dw"][i], loss(&x, &p), loss(&x, &m));
    }
    for i in [0, 10, 40, 100, 170, 250, 330, 400, 500, 647] {
        let (mut p, mut m) = (x.clone(), x.clone());
        p[i] += eps;
        m[i] -= eps;
        check("x", i, exact["dx"][i], loss(&p, &w), loss(&m, &w));
    }
}
