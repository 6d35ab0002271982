//! Semantics beyond the one-case-per-op table: index math of layout ops checked against
//! naive loops, NaN handling, integer wrapping, liveness and freeing.

use std::collections::HashMap;

use dnnc_ir::{BinaryOp, DType, Graph, Op, ReduceKind, UnaryOp};
use dnnc_tensor::Tensor;

use super::{assert_close, boolt, eval1, f32t, i64t, input, intt, pseudo_random, run_with};
use crate::{run, run_counting};

#[test]
fn transpose_of_a_rank_3_tensor_matches_loops() {
    let x = pseudo_random(24, 1);
    let got = eval1(&[f32t(&[2, 3, 4], &x)], |g, a| {
        g.add(Op::Transpose(vec![1, 2, 0]), a)
    })
    .unwrap();
    // out[j, k, i] = x[i, j, k]
    let mut want = Vec::new();
    for j in 0..3 {
        for k in 0..4 {
            for i in 0..2 {
                want.push(x[(i * 3 + j) * 4 + k]);
            }
        }
    }
    assert_close(&got, &f32t(&[3, 4, 2], &want));
}

#[test]
fn broadcast_adds_leading_axes_and_stretches_ones() {
    let x = pseudo_random(12, 2);
    let got = eval1(&[f32t(&[3, 1, 4], &x)], |g, a| {
        g.add(Op::Broadcast(vec![2, 3, 5, 4]), a)
    })
    .unwrap();
    let mut want = Vec::new();
    for _b in 0..2 {
        for i in 0..3 {
            for _j in 0..5 {
                for k in 0..4 {
                    want.push(x[i * 4 + k]);
                }
            }
        }
    }
    assert_close(&got, &f32t(&[2, 3, 5, 4], &want));
}

#[test]
fn transpose_then_broadcast_then_add_composes() {
    // (x^T broadcast over a batch) + y, against loops.
    let x = pseudo_random(6, 3);
    let y = pseudo_random(12, 4);
    let got = eval1(&[f32t(&[2, 3], &x), f32t(&[2, 3, 2], &y)], |g, a| {
        let t = g.add(Op::Transpose(vec![1, 0]), &[a[0]])?;
        let b = g.add(Op::Broadcast(vec![2, 3, 2]), &[t])?;
        g.add(Op::Binary(BinaryOp::Add), &[b, a[1]])
    })
    .unwrap();
    let mut want = Vec::new();
    for b in 0..2 {
        for i in 0..3 {
            for j in 0..2 {
                want.push(x[j * 3 + i] + y[(b * 3 + i) * 2 + j]);
            }
        }
    }
    assert_close(&got, &f32t(&[2, 3, 2], &want));
}

#[test]
fn strided_slice_and_pad_of_rank_3_match_loops() {
    let x = pseudo_random(4 * 5 * 6, 5);
    let got = eval1(&[f32t(&[4, 5, 6], &x)], |g, a| {
        g.add(
            Op::Slice {
                starts: vec![1, 0, 2],
                ends: vec![4, 5, 6],
                steps: vec![2, 3, 1],
            },
            a,
        )
    })
    .unwrap();
    let mut want = Vec::new();
    for i in (1..4).step_by(2) {
        for j in (0..5).step_by(3) {
            for k in 2..6 {
                want.push(x[(i * 5 + j) * 6 + k]);
            }
        }
    }
    assert_close(&got, &f32t(&[2, 2, 4], &want));

    let small = pseudo_random(6, 6);
    let got = eval1(&[f32t(&[1, 2, 3], &small)], |g, a| {
        g.add(
            Op::Pad {
                lo: vec![0, 1, 2],
                hi: vec![1, 0, 1],
                value: -1.0,
            },
            a,
        )
    })
    .unwrap();
    let mut want = vec![-1.0; 2 * 3 * 6];
    for j in 0..2 {
        for k in 0..3 {
            want[(1 + j) * 6 + 2 + k] = small[j * 3 + k];
        }
    }
    assert_close(&got, &f32t(&[2, 3, 6], &want));
}

#[test]
fn reductions_over_several_axes_match_loops() {
    let x = pseudo_random(2 * 3 * 4, 7);
    let got = eval1(&[f32t(&[2, 3, 4], &x)], |g, a| {
        g.add(
            Op::Reduce {
                kind: ReduceKind::Sum,
                axes: vec![0, 2],
                keepdims: true,
            },
            a,
        )
    })
    .unwrap();
    let want: Vec<f32> = (0..3)
        .map(|j| {
            (0..2)
                .flat_map(|i| (0..4).map(move |k| (i, k)))
                .map(|(i, k)| x[(i * 3 + j) * 4 + k])
                .sum()
        })
        .collect();
    assert_close(&got, &f32t(&[1, 3, 1], &want));
    let got = eval1(&[f32t(&[2, 3, 4], &x)], |g, a| {
        g.add(
            Op::Reduce {
                kind: ReduceKind::Max,
                axes: vec![1],
                keepdims: false,
            },
            a,
        )
    })
    .unwrap();
    let mut want = Vec::new();
    for i in 0..2 {
        for k in 0..4 {
            want.push(
                (0..3)
                    .map(|j| x[(i * 3 + j) * 4 + k])
                    .fold(f32::NEG_INFINITY, f32::max),
            );
        }
    }
    assert_close(&got, &f32t(&[2, 4], &want));
    // Reducing an empty axis gives the identity.
    let got = eval1(&[f32t(&[2, 0], &[])], |g, a| {
        g.add(
            Op::Reduce {
                kind: ReduceKind::Max,
                axes: vec![1],
                keepdims: false,
            },
            a,
        )
    })
    .unwrap();
    assert_close(&got, &f32t(&[2], &[f32::NEG_INFINITY; 2]));
}

#[test]
fn matmul_of_odd_sizes_matches_f64_loops() {
    let (b, m, k, n) = (3, 5, 7, 2);
    let a = pseudo_random(b * m * k, 8);
    let w = pseudo_random(b * k * n, 9);
    let got = eval1(&[f32t(&[b, m, k], &a), f32t(&[b, k, n], &w)], |g, x| {
        g.add(Op::MatMul, x)
    })
    .unwrap();
    let mut want = Vec::new();
    for bi in 0..b {
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k)
                    .map(|p| {
                        f64::from(a[(bi * m + i) * k + p]) * f64::from(w[(bi * k + p) * n + j])
                    })
                    .sum();
                want.push(s as f32);
            }
        }
    }
    assert_close(&got, &f32t(&[b, m, n], &want));
}

#[test]
fn nan_propagates_through_max_min_and_reductions() {
    let nan = f32::NAN;
    let x = f32t(&[3], &[nan, 1.0, 2.0]);
    let y = f32t(&[3], &[0.0, nan, 1.0]);
    for b in [BinaryOp::Max, BinaryOp::Min] {
        let got = eval1(&[x.clone(), y.clone()], |g, a| g.add(Op::Binary(b), a)).unwrap();
        let v = got.as_f32().unwrap();
        assert!(
            v[0].is_nan() && v[1].is_nan() && !v[2].is_nan(),
            "{b:?}: {v:?}"
        );
    }
    for kind in [ReduceKind::Max, ReduceKind::Min] {
        let got = eval1(&[f32t(&[2, 2], &[1.0, nan, 3.0, 4.0])], |g, a| {
            g.add(
                Op::Reduce {
                    kind,
                    axes: vec![1],
                    keepdims: false,
                },
                a,
            )
        })
        .unwrap();
        let v = got.as_f32().unwrap();
        assert!(v[0].is_nan() && !v[1].is_nan(), "{kind:?}: {v:?}");
    }
    // The first NaN is the extreme value for both arg-reductions.
    for op in [Op::ArgMax { axis: 0 }, Op::ArgMin { axis: 0 }] {
        let got = eval1(&[f32t(&[4], &[1.0, nan, 5.0, nan])], |g, a| {
            g.add(op.clone(), a)
        })
        .unwrap();
        assert_eq!(got, i64t(&[], &[1]), "{op:?}");
    }
    // Comparisons with NaN are false except `ne`.
    let cmps = [
        (BinaryOp::Lt, false),
        (BinaryOp::Le, false),
        (BinaryOp::Gt, false),
        (BinaryOp::Ge, false),
        (BinaryOp::Eq, false),
        (BinaryOp::Ne, true),
    ];
    for (b, want) in cmps {
        let got = eval1(&[f32t(&[1], &[nan]), f32t(&[1], &[nan])], |g, a| {
            g.add(Op::Binary(b), a)
        })
        .unwrap();
        assert_eq!(got, boolt(&[1], &[want]), "{b:?}");
    }
    // Unary ops and casts.
    for u in [
        UnaryOp::Sign,
        UnaryOp::Erf,
        UnaryOp::Abs,
        UnaryOp::Floor,
        UnaryOp::Exp,
    ] {
        let got = eval1(&[f32t(&[1], &[nan])], |g, a| g.add(Op::Unary(u), a)).unwrap();
        assert!(got.as_f32().unwrap()[0].is_nan(), "{u:?}");
    }
    let to_int = eval1(&[f32t(&[2], &[nan, f32::INFINITY])], |g, a| {
        g.add(Op::Cast(DType::I64), a)
    })
    .unwrap();
    assert_eq!(to_int, i64t(&[2], &[0, i64::MAX]));
    let to_bool = eval1(&[f32t(&[1], &[nan])], |g, a| {
        g.add(Op::Cast(DType::Bool), a)
    })
    .unwrap();
    assert_eq!(to_bool, boolt(&[1], &[true]));
    // Sums and matmuls do not skip NaN.
    let s = eval1(&[f32t(&[2], &[nan, 1.0])], |g, a| {
        g.add(
            Op::Reduce {
                kind: ReduceKind::Sum,
                axes: vec![0],
                keepdims: false,
            },
            a,
        )
    })
    .unwrap();
    assert!(s.as_f32().unwrap()[0].is_nan());
    let m = eval1(
        &[f32t(&[1, 1], &[0.0]), f32t(&[1, 2], &[nan, 1.0])],
        |g, a| g.add(Op::MatMul, a),
    )
    .unwrap();
    let v = m.as_f32().unwrap();
    assert!(v[0].is_nan() && v[1] == 0.0);
}

#[test]
fn integers_wrap_into_their_dtype() {
    let got = eval1(
        &[
            intt(DType::I32, &[1], &[i64::from(i32::MAX)]),
            intt(DType::I32, &[1], &[2]),
        ],
        |g, a| g.add(Op::Binary(BinaryOp::Mul), a),
    )
    .unwrap();
    assert_eq!(got, intt(DType::I32, &[1], &[-2]));
    let got = eval1(
        &[intt(DType::U8, &[1], &[3]), intt(DType::U8, &[1], &[5])],
        |g, a| g.add(Op::Binary(BinaryOp::Sub), a),
    )
    .unwrap();
    assert_eq!(got, intt(DType::U8, &[1], &[254]));
    let got = eval1(&[i64t(&[1], &[i64::MIN])], |g, a| {
        g.add(Op::Unary(UnaryOp::Abs), a)
    })
    .unwrap();
    assert_eq!(got, i64t(&[1], &[i64::MIN]));
    let got = eval1(&[i64t(&[2], &[5, -1])], |g, a| {
        g.add(Op::Cast(DType::U8), a)
    })
    .unwrap();
    assert_eq!(got, intt(DType::U8, &[2], &[5, 255]));
    // Integer scatter_add accumulates duplicates, wrapping.
    let got = eval1(
        &[
            intt(DType::U8, &[3], &[200, 100, 7]),
            i64t(&[3], &[1, 1, 0]),
        ],
        |g, a| {
            g.add(
                Op::ScatterAdd {
                    axis: 0,
                    shape: vec![2],
                },
                a,
            )
        },
    )
    .unwrap();
    assert_eq!(got, intt(DType::U8, &[2], &[7, 44]));
}

#[test]
fn shared_operands_and_repeated_outputs() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", &f32t(&[2], &[1., 2.]));
    let s = g
        .add(
            Op::State {
                name: "s".into(),
                dtype: DType::F32,
                shape: vec![2],
            },
            &[],
        )
        .unwrap();
    let d = g.add(Op::Binary(BinaryOp::Add), &[x, x]).unwrap();
    let e = g.add(Op::Binary(BinaryOp::Mul), &[d, s]).unwrap();
    g.set_output("d", d);
    g.set_output("d_again", d);
    g.set_output("e", e);
    g.add_update("s", e);
    let inputs = HashMap::from([("x".to_string(), f32t(&[2], &[1., 2.]))]);
    let states = HashMap::from([("s".to_string(), f32t(&[2], &[10., 100.]))]);
    let out = run(&g, &inputs, &states).unwrap();
    let names: Vec<&str> = out.outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["d", "d_again", "e"]);
    assert_eq!(out.output("d_again"), Some(&f32t(&[2], &[2., 4.])));
    assert_eq!(out.update("s"), Some(&f32t(&[2], &[20., 400.])));
}

#[test]
fn dead_nodes_are_not_evaluated() {
    // A dead branch reads a missing input and gathers out of range; neither matters.
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", &f32t(&[2], &[0.; 2]));
    let ghost = g
        .add(
            Op::Input {
                name: "ghost".into(),
                dtype: DType::I64,
                shape: vec![1],
            },
            &[],
        )
        .unwrap();
    g.add(Op::Gather { axis: 0 }, &[x, ghost]).unwrap();
    let y = g.add(Op::Unary(UnaryOp::Neg), &[x]).unwrap();
    g.set_output("y", y);
    let inputs = HashMap::from([("x".to_string(), f32t(&[2], &[1., 2.]))]);
    let out = run(&g, &inputs, &HashMap::new()).unwrap();
    assert_eq!(
        out.outputs,
        vec![("y".to_string(), f32t(&[2], &[-1., -2.]))]
    );
    assert!(out.updates.is_empty());
}

#[test]
fn values_are_freed_after_their_last_use() {
    // A chain of 200 ops holds at most the input, the current value and the next.
    let mut g = Graph::new("chain");
    let x = input(&mut g, "x", &f32t(&[4], &[0.; 4]));
    let mut v = x;
    for _ in 0..200 {
        v = g.add(Op::Unary(UnaryOp::Neg), &[v]).unwrap();
    }
    g.set_output("y", v);
    let inputs = HashMap::from([("x".to_string(), f32t(&[4], &[1., 2., 3., 4.]))]);
    let (out, peak) = run_counting(&g, &inputs, &HashMap::new()).unwrap();
    assert_eq!(out.output("y"), Some(&f32t(&[4], &[1., 2., 3., 4.])));
    assert!(peak <= 2, "peak {peak}");

    // Outputs stay alive to the end even when later nodes no longer read them.
    let mut g = Graph::new("pinned");
    let x = input(&mut g, "x", &f32t(&[1], &[0.]));
    let a = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
    let b = g.add(Op::Unary(UnaryOp::Neg), &[a]).unwrap();
    let c = g.add(Op::Unary(UnaryOp::Neg), &[b]).unwrap();
    g.set_output("a", a);
    g.set_output("c", c);
    let inputs = HashMap::from([("x".to_string(), f32t(&[1], &[0.]))]);
    let (out, _) = run_counting(&g, &inputs, &HashMap::new()).unwrap();
    assert_eq!(out.output("a"), Some(&f32t(&[1], &[1.])));
    assert_eq!(out.output("c"), Some(&f32t(&[1], &[1.])));
}

#[test]
fn a_small_network_runs_end_to_end() {
    // softmax(relu(x W + b)) for a 2x3 input, against hand-written loops.
    let x = pseudo_random(6, 10);
    let w = pseudo_random(12, 11);
    let bias = [0.1f32, -0.2, 0.3, 0.0];
    let got = eval1(
        &[f32t(&[2, 3], &x), f32t(&[3, 4], &w), f32t(&[4], &bias)],
        |g, a| {
            let h = g.add(Op::MatMul, &[a[0], a[1]])?;
            let b = g.add(Op::Broadcast(vec![2, 4]), &[a[2]])?;
            let h = g.add(Op::Binary(BinaryOp::Add), &[h, b])?;
            let zero = g.add(
                Op::Const {
                    value: 0.0,
                    dtype: DType::F32,
                },
                &[],
            )?;
            let zero = g.add(Op::Broadcast(vec![2, 4]), &[zero])?;
            let r = g.add(Op::Binary(BinaryOp::Max), &[h, zero])?;
            let m = g.add(
                Op::Reduce {
                    kind: ReduceKind::Max,
                    axes: vec![1],
                    keepdims: true,
                },
                &[r],
            )?;
            let m = g.add(Op::Broadcast(vec![2, 4]), &[m])?;
            let e = g.add(Op::Binary(BinaryOp::Sub), &[r, m])?;
            let e = g.add(Op::Unary(UnaryOp::Exp), &[e])?;
            let s = g.add(
                Op::Reduce {
                    kind: ReduceKind::Sum,
                    axes: vec![1],
                    keepdims: true,
                },
                &[e],
            )?;
            let s = g.add(Op::Broadcast(vec![2, 4]), &[s])?;
            g.add(Op::Binary(BinaryOp::Div), &[e, s])
        },
    )
    .unwrap();
    let mut want = Vec::new();
    for i in 0..2 {
        let r: Vec<f32> = (0..4)
            .map(|j| ((0..3).map(|k| x[i * 3 + k] * w[k * 4 + j]).sum::<f32>() + bias[j]).max(0.0))
            .collect();
        let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = r.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        want.extend(e.iter().map(|v| v / s));
    }
    assert_close(&got, &f32t(&[2, 4], &want));
}

#[test]
fn outputs_of_every_dtype_keep_their_declared_type() {
    let cases: [(Tensor, DType); 4] = [
        (f32t(&[1], &[1.]), DType::F32),
        (i64t(&[1], &[1]), DType::I64),
        (intt(DType::U8, &[1], &[1]), DType::U8),
        (boolt(&[1], &[true]), DType::Bool),
    ];
    for (t, dtype) in cases {
        let (_, out) = run_with(std::slice::from_ref(&t), &HashMap::new(), |g, a| {
            g.add(Op::StopGradient, a)
        })
        .unwrap();
        assert_eq!(out.output("out").unwrap().dtype, dtype);
    }
}
