//! Bad inputs and failing ops give an [`InterpError`] naming the culprit, never a panic.

use std::collections::HashMap;

use dnnc_ir::{BinaryOp, DType, Graph, Op, TensorType, UnaryOp};
use dnnc_tensor::{Data, Tensor};

use super::{eval1, f32t, i64t, intt};
use crate::{eval, run, Env, InterpError};

/// `y = -x` over an `f32[2, 3]` input `x` and `z = y * s` over an `f32[2, 3]` state `s`.
fn graph() -> Graph {
    let mut g = Graph::new("t");
    let x = g
        .add(
            Op::Input {
                name: "x".into(),
                dtype: DType::F32,
                shape: vec![2, 3],
            },
            &[],
        )
        .unwrap();
    let s = g
        .add(
            Op::State {
                name: "s".into(),
                dtype: DType::F32,
                shape: vec![2, 3],
            },
            &[],
        )
        .unwrap();
    let y = g.add(Op::Unary(UnaryOp::Neg), &[x]).unwrap();
    let z = g.add(Op::Binary(BinaryOp::Mul), &[y, s]).unwrap();
    g.set_output("z", z);
    g
}

fn ok_x() -> Tensor {
    f32t(&[2, 3], &[0.; 6])
}

fn run_x(x: Tensor) -> Result<(), InterpError> {
    let inputs = HashMap::from([("x".to_string(), x)]);
    let states = HashMap::from([("s".to_string(), ok_x())]);
    run(&graph(), &inputs, &states).map(|_| ())
}

#[test]
fn missing_input_and_state_are_named() {
    let states = HashMap::from([("s".to_string(), ok_x())]);
    let e = run(&graph(), &HashMap::new(), &states).unwrap_err();
    assert_eq!(
        e,
        InterpError::Missing {
            what: "input",
            name: "x".into()
        }
    );
    assert_eq!(e.to_string(), "missing input `x`");

    let inputs = HashMap::from([("x".to_string(), ok_x())]);
    let e = run(&graph(), &inputs, &HashMap::new()).unwrap_err();
    assert_eq!(
        e,
        InterpError::Missing {
            what: "state",
            name: "s".into()
        }
    );
    // A state supplied as an input does not count.
    let both = HashMap::from([("x".to_string(), ok_x()), ("s".to_string(), ok_x())]);
    assert!(matches!(
        run(&graph(), &both, &HashMap::new()),
        Err(InterpError::Missing { what: "state", .. })
    ));
    // Extra entries are ignored.
    let mut extra = both.clone();
    extra.insert("unused".into(), i64t(&[], &[1]));
    assert!(run(&graph(), &extra, &both).is_ok());
}

#[test]
fn wrong_shape_or_dtype_is_named() {
    let e = run_x(f32t(&[3, 2], &[0.; 6])).unwrap_err();
    match &e {
        InterpError::Mismatch {
            what,
            name,
            expected,
            found,
        } => {
            assert_eq!((*what, name.as_str()), ("input", "x"));
            assert_eq!(*expected, TensorType::new(DType::F32, vec![2, 3]));
            assert_eq!(found, "f32[3, 2]");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.to_string(),
        "input `x` should be f32[2, 3], found f32[3, 2]"
    );
    let e = run_x(intt(DType::I64, &[2, 3], &[0; 6])).unwrap_err();
    assert!(
        matches!(&e, InterpError::Mismatch { name, found, .. } if name == "x" && found == "i64[2, 3]"),
        "{e:?}"
    );
    let e = run_x(f32t(&[6], &[0.; 6])).unwrap_err();
    assert!(
        matches!(&e, InterpError::Mismatch { name, .. } if name == "x"),
        "{e:?}"
    );
}

#[test]
fn malformed_tensors_and_out_of_range_integers_are_rejected() {
    // Public fields allow storage that does not fit the shape or the dtype.
    let short = Tensor {
        dtype: DType::F32,
        shape: vec![2, 3],
        data: Data::F32(vec![0.0; 5]),
    };
    assert!(matches!(run_x(short), Err(InterpError::Mismatch { .. })));
    let wrong_kind = Tensor {
        dtype: DType::F32,
        shape: vec![2, 3],
        data: Data::I64(vec![0; 6]),
    };
    assert!(matches!(
        run_x(wrong_kind),
        Err(InterpError::Mismatch { .. })
    ));

    let mut g = Graph::new("t");
    let x = g
        .add(
            Op::Input {
                name: "labels".into(),
                dtype: DType::U8,
                shape: vec![2],
            },
            &[],
        )
        .unwrap();
    g.set_output("y", x);
    let bad = HashMap::from([(
        "labels".to_string(),
        Tensor {
            dtype: DType::U8,
            shape: vec![2],
            data: Data::I64(vec![3, 300]),
        },
    )]);
    // Every element type is stored in its own width: `u8` labels held as `i64` are
    // storage of another kind.
    let e = run(&g, &bad, &HashMap::new()).unwrap_err();
    assert!(
        e.to_string().contains("labels") && e.to_string().contains("another kind"),
        "{e}"
    );
}

#[test]
fn gather_and_scatter_indices_out_of_range() {
    let x = f32t(&[3], &[1., 2., 3.]);
    for bad in [3, -1] {
        let e = eval1(&[x.clone(), i64t(&[2], &[0, bad])], |g, a| {
            g.add(Op::Gather { axis: 0 }, a)
        })
        .unwrap_err();
        match &e {
            InterpError::Op { kind, message, .. } => {
                assert_eq!(*kind, "gather");
                assert!(message.contains(&bad.to_string()), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    let e = eval1(&[f32t(&[2], &[1., 2.]), i64t(&[2], &[0, 5])], |g, a| {
        g.add(
            Op::ScatterAdd {
                axis: 0,
                shape: vec![3],
            },
            a,
        )
    })
    .unwrap_err();
    assert!(
        matches!(
            e,
            InterpError::Op {
                kind: "scatter_add",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn integer_division_by_zero_is_an_error() {
    for b in [BinaryOp::Div, BinaryOp::Rem] {
        let e = eval1(&[i64t(&[2], &[1, 2]), i64t(&[2], &[1, 0])], |g, a| {
            g.add(Op::Binary(b), a)
        })
        .unwrap_err();
        assert!(e.to_string().contains("division by zero"), "{e}");
    }
    let e = eval1(&[i64t(&[1], &[0]), i64t(&[1], &[-1])], |g, a| {
        g.add(Op::Binary(BinaryOp::Pow), a)
    })
    .unwrap_err();
    assert!(matches!(e, InterpError::Op { kind: "pow", .. }), "{e:?}");
    // Float division by zero is IEEE.
    let got = eval1(&[f32t(&[2], &[1., -1.]), f32t(&[2], &[0., 0.])], |g, a| {
        g.add(Op::Binary(BinaryOp::Div), a)
    })
    .unwrap();
    assert_eq!(got, f32t(&[2], &[f32::INFINITY, f32::NEG_INFINITY]));
}

#[test]
fn malformed_graphs_are_errors_not_panics() {
    // An output naming a removed node.
    let mut g = graph();
    let x = g.inputs()[0];
    let y = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
    g.set_output("gone", y);
    g.remove(y);
    let inputs = HashMap::from([("x".to_string(), ok_x())]);
    let states = HashMap::from([("s".to_string(), ok_x())]);
    assert!(matches!(
        run(&g, &inputs, &states),
        Err(InterpError::Graph(_))
    ));

    // Operands that break the shape rule, and ones that do not match the declared type.
    let mut g = Graph::new("t");
    let a = g
        .add(
            Op::Input {
                name: "a".into(),
                dtype: DType::F32,
                shape: vec![2, 3],
            },
            &[],
        )
        .unwrap();
    let b = g
        .add(
            Op::Input {
                name: "b".into(),
                dtype: DType::F32,
                shape: vec![3, 4],
            },
            &[],
        )
        .unwrap();
    let m = g.add(Op::MatMul, &[a, b]).unwrap();
    let node = g.node(m).clone();
    let (empty, env_states) = (HashMap::new(), HashMap::new());
    let env = Env {
        inputs: &empty,
        states: &env_states,
    };
    let (ta, tb) = (f32t(&[2, 3], &[0.; 6]), f32t(&[3, 4], &[0.; 12]));
    assert!(eval(m, &node, &[&ta, &tb], &env).is_ok());
    assert!(matches!(
        eval(m, &node, &[&tb, &ta], &env),
        Err(InterpError::Graph(_))
    ));
    assert!(matches!(
        eval(m, &node, &[&ta], &env),
        Err(InterpError::Graph(_))
    ));
    let tb5 = f32t(&[3, 5], &[0.; 15]);
    assert!(matches!(
        eval(m, &node, &[&ta, &tb5], &env),
        Err(InterpError::Graph(_))
    ));
    let broken = Tensor {
        dtype: DType::F32,
        shape: vec![3, 4],
        data: Data::F32(vec![0.; 3]),
    };
    assert!(matches!(
        eval(m, &node, &[&ta, &broken], &env),
        Err(InterpError::Graph(_))
    ));
}
