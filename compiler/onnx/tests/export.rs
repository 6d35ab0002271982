//! What the exporter refuses, and the batch dimension it finds, on small graphs built
//! by hand (every example's export is run by onnxruntime in
//! `compiler/driver/tests/onnx_export.py`).

use std::collections::HashMap;

use dnnc_ir::{BinaryOp, DType, Dist, Graph, Op, UnaryOp};
use dnnc_onnx::export;
use dnnc_tensor::Tensor;

/// `tanh(x·W)` for `x: [b, 4]`, `W: [4, 3]`, plus what `extra` adds.
fn dense(b: usize, extra: impl Fn(&mut Graph, dnnc_ir::NodeId) -> dnnc_ir::NodeId) -> Graph {
    let mut g = Graph::new("dense");
    let x = g
        .add(
            Op::Input {
                name: "input".into(),
                dtype: DType::F32,
                shape: vec![b, 4],
            },
            &[],
        )
        .unwrap();
    let w = g
        .add(
            Op::State {
                name: "W".into(),
                dtype: DType::F32,
                shape: vec![4, 3],
            },
            &[],
        )
        .unwrap();
    let y = g.add(Op::MatMul, &[x, w]).unwrap();
    let y = g.add(Op::Unary(UnaryOp::Tanh), &[y]).unwrap();
    let y = extra(&mut g, y);
    g.set_output("output", y);
    g
}

fn weights() -> HashMap<String, Tensor> {
    HashMap::from([(
        "W".to_string(),
        Tensor::f32(vec![4, 3], vec![0.5; 12]).unwrap(),
    )])
}

#[test]
fn the_batch_is_symbolic_in_the_model() {
    let (small, large) = (dense(2, |_, y| y), dense(3, |_, y| y));
    let m = export("dense", &small, &large, (2, 3), &weights(), &[]).unwrap();
    assert_eq!(m.ops.get("MatMul"), Some(&1));
    assert_eq!(m.ops.get("Tanh"), Some(&1));
    let has = |s: &[u8]| m.bytes.windows(s.len()).any(|w| w == s);
    // The input's first dimension is the `dim_param` "batch", the weight an initializer.
    assert!(has(b"batch") && has(b"input") && has(b"W"));
}

#[test]
fn missing_weights_and_wrong_shapes_are_named() {
    let (small, large) = (dense(2, |_, y| y), dense(3, |_, y| y));
    let e = export("dense", &small, &large, (2, 3), &HashMap::new(), &[])
        .err()
        .unwrap();
    assert!(e.0.contains("no tensor `W`"), "{e}");
    let wrong = HashMap::from([(
        "W".to_string(),
        Tensor::f32(vec![3, 4], vec![0.5; 12]).unwrap(),
    )]);
    let e = export("dense", &small, &large, (2, 3), &wrong, &[])
        .err()
        .unwrap();
    assert!(
        e.0.contains("`W` is [3, 4] in the weights, but the model's is [4, 3]"),
        "{e}"
    );
}

#[test]
fn random_numbers_at_inference_have_no_onnx_form() {
    let noisy = |b: usize| {
        dense(b, |g, y| {
            let dist = Dist::Normal {
                mean: 0.0,
                std: 1.0,
            };
            let key = g
                .add(
                    Op::Input {
                        name: "key".into(),
                        dtype: DType::I64,
                        shape: vec![],
                    },
                    &[],
                )
                .unwrap();
            let r = g
                .add(
                    Op::Random {
                        dist,
                        shape: vec![b, 3],
                        salt: 7,
                    },
                    &[key],
                )
                .unwrap();
            g.add(Op::Binary(BinaryOp::Add), &[y, r]).unwrap()
        })
    };
    let e = export("noisy", &noisy(2), &noisy(3), (2, 3), &weights(), &[])
        .err()
        .unwrap();
    assert!(e.0.contains("has no ONNX form"), "{e}");
}

#[test]
fn a_structure_that_changes_with_the_batch_is_refused() {
    // At batch 3 the graph has one more op than at batch 2.
    let small = dense(2, |_, y| y);
    let large = dense(3, |g, y| g.add(Op::Unary(UnaryOp::Neg), &[y]).unwrap());
    let e = export("odd", &small, &large, (2, 3), &weights(), &[])
        .err()
        .unwrap();
    assert!(e.0.contains("depends on the batch size"), "{e}");
    // A dimension that is not a multiple of the batch.
    let padded = |b: usize, n: usize| {
        dense(b, move |g, y| {
            // One more row than the batch: 3 at batch 2, 4 at batch 3.
            g.add(
                Op::Pad {
                    lo: vec![0, 0],
                    hi: vec![n, 0],
                    value: 0.0,
                },
                &[y],
            )
            .unwrap()
        })
    };
    let e = export("pad", &padded(2, 1), &padded(3, 1), (2, 3), &weights(), &[])
        .err()
        .unwrap();
    assert!(e.0.contains("not a multiple of the batch"), "{e}");
}

#[test]
fn a_constant_that_follows_the_batch_is_refused() {
    // `mean` over the batch axis divides by B: 1/2 at batch 2, 1/3 at batch 3.
    let mean_over_batch = |b: usize| {
        dense(b, move |g, y| {
            let s = g
                .add(
                    Op::Reduce {
                        kind: dnnc_ir::ReduceKind::Sum,
                        axes: vec![0],
                        keepdims: false,
                    },
                    &[y],
                )
                .unwrap();
            let c = g
                .add(
                    Op::Const {
                        value: 1.0 / b as f64,
                        dtype: DType::F32,
                    },
                    &[],
                )
                .unwrap();
            let c = g.add(Op::Broadcast(vec![3]), &[c]).unwrap();
            g.add(Op::Binary(BinaryOp::Mul), &[s, c]).unwrap()
        })
    };
    let e = export(
        "mean",
        &mean_over_batch(2),
        &mean_over_batch(3),
        (2, 3),
        &weights(),
        &[],
    )
    .err()
    .unwrap();
    assert!(
        e.0.contains("`const` differs between batch sizes 2 and 3"),
        "{e}"
    );
}
