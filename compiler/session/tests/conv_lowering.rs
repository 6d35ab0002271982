//! The lowering of `conv2d`, `max_pool2d` and `avg_pool2d` into primitives, run by the
//! interpreter: the convolution against a direct nested-loop reference, and the
//! gradients from autodiff against central finite differences.

use std::collections::HashMap;

use dnnc_ir::{DType, Graph, NodeId, Op, ReduceKind};
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
    let y = dnnc_lower::conv::conv2d(&mut em, x, w, STRIDE, PAD).unwrap();
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
