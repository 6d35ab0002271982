//! Every primitive's derivative rule against central finite differences, and every
//! derivative rule's result differentiated once more (double backprop).
//!
//! The table below has one case per differentiable op kind; the test fails if an op
//! kind from `dnnc_ir::OpKind::all()` is neither in the table nor listed as having no
//! derivative, so a new op cannot be added without its gradient check.

use std::collections::HashMap;

use dnnc_ir::{BinaryOp, DType, Dist, Graph, NodeId, Op, ReduceKind, UnaryOp, Window2d};
use dnnc_passes::autodiff::gradients;
use dnnc_tensor::{Data, Tensor};
use dnnc_testing::Rng;

/// Op kinds whose results carry no gradient (integer/bool results, sources, random
/// draws, piecewise-constant functions) and `stop_gradient`, checked to give zero.
const NO_DERIVATIVE: &[&str] = &[
    "input",
    "state",
    "const",
    "iota",
    "sign",
    "floor",
    "ceil",
    "not",
    "lt",
    "le",
    "gt",
    "ge",
    "eq",
    "ne",
    "and",
    "or",
    "argmax",
    "argmin",
    "argsort",
    "random_uniform",
    "random_normal",
    "random_bernoulli",
];

struct Case {
    kind: &'static str,
    /// Builds the op on the given float inputs; returns its result.
    build: fn(&mut Graph, &[NodeId]) -> NodeId,
    /// Shapes of the float inputs and a function giving safe values.
    inputs: Vec<Vec<usize>>,
    values: fn(usize, usize) -> f32,
}

/// A value in `[0, 1)` that depends only on `(seed, i)`.
fn uniform01(seed: usize, i: usize) -> f32 {
    Rng(((seed as u64) << 32) ^ i as u64).float(0.0, 1.0)
}

fn any_value(input: usize, i: usize) -> f32 {
    uniform01(input + 1, i) * 2.0 - 1.0
}

fn positive(input: usize, i: usize) -> f32 {
    0.5 + uniform01(input + 7, i)
}

fn distinct(input: usize, i: usize) -> f32 {
    // Well-separated values so max/min/abs are differentiable at every point.
    let v = (i as f32 * 0.37 + input as f32 * 0.19).sin() * 2.0;
    if v.abs() < 0.05 {
        0.3
    } else {
        v
    }
}

/// Pairs kept at least 0.3 apart, so max/min/select have no tie near the point.
fn separated(input: usize, i: usize) -> f32 {
    let base = distinct(0, i);
    if input == 0 {
        base
    } else if i.is_multiple_of(2) {
        base + 0.4
    } else {
        base - 0.4
    }
}

/// `x % y` away from its jumps: 0 < x < y.
fn rem_values(input: usize, i: usize) -> f32 {
    if input == 0 {
        0.25 + 0.1 * i as f32
    } else {
        2.0 + 0.1 * i as f32
    }
}

fn un(op: UnaryOp) -> fn(&mut Graph, &[NodeId]) -> NodeId {
    macro_rules! f {
        ($op:expr) => {
            |g: &mut Graph, x: &[NodeId]| g.add(Op::Unary($op), &[x[0]]).unwrap()
        };
    }
    match op {
        UnaryOp::Neg => f!(UnaryOp::Neg),
        UnaryOp::Exp => f!(UnaryOp::Exp),
        UnaryOp::Log => f!(UnaryOp::Log),
        UnaryOp::Sqrt => f!(UnaryOp::Sqrt),
        UnaryOp::Rsqrt => f!(UnaryOp::Rsqrt),
        UnaryOp::Abs => f!(UnaryOp::Abs),
        UnaryOp::Sin => f!(UnaryOp::Sin),
        UnaryOp::Cos => f!(UnaryOp::Cos),
        UnaryOp::Tanh => f!(UnaryOp::Tanh),
        UnaryOp::Erf => f!(UnaryOp::Erf),
        _ => unreachable!(),
    }
}

fn bin(op: BinaryOp) -> fn(&mut Graph, &[NodeId]) -> NodeId {
    macro_rules! f {
        ($op:expr) => {
            |g: &mut Graph, x: &[NodeId]| g.add(Op::Binary($op), &[x[0], x[1]]).unwrap()
        };
    }
    match op {
        BinaryOp::Add => f!(BinaryOp::Add),
        BinaryOp::Sub => f!(BinaryOp::Sub),
        BinaryOp::Mul => f!(BinaryOp::Mul),
        BinaryOp::Div => f!(BinaryOp::Div),
        BinaryOp::Pow => f!(BinaryOp::Pow),
        BinaryOp::Max => f!(BinaryOp::Max),
        BinaryOp::Min => f!(BinaryOp::Min),
        BinaryOp::Rem => f!(BinaryOp::Rem),
        _ => unreachable!(),
    }
}

fn cases() -> Vec<Case> {
    let s23 = vec![2, 3];
    let mut v = vec![
        Case {
            kind: "neg",
            build: un(UnaryOp::Neg),
            inputs: vec![s23.clone()],
            values: any_value,
        },
        Case {
            kind: "exp",
            build: un(UnaryOp::Exp),
            inputs: vec![s23.clone()],
            values: any_value,
        },
        Case {
            kind: "log",
            build: un(UnaryOp::Log),
            inputs: vec![s23.clone()],
            values: positive,
        },
        Case {
            kind: "sqrt",
            build: un(UnaryOp::Sqrt),
            inputs: vec![s23.clone()],
            values: positive,
        },
        Case {
            kind: "rsqrt",
            build: un(UnaryOp::Rsqrt),
            inputs: vec![s23.clone()],
            values: positive,
        },
        Case {
            kind: "abs",
            build: un(UnaryOp::Abs),
            inputs: vec![s23.clone()],
            values: distinct,
        },
        Case {
            kind: "sin",
            build: un(UnaryOp::Sin),
            inputs: vec![s23.clone()],
            values: any_value,
        },
        Case {
            kind: "cos",
            build: un(UnaryOp::Cos),
            inputs: vec![s23.clone()],
            values: any_value,
        },
        Case {
            kind: "tanh",
            build: un(UnaryOp::Tanh),
            inputs: vec![s23.clone()],
            values: any_value,
        },
        Case {
            kind: "erf",
            build: un(UnaryOp::Erf),
            inputs: vec![s23.clone()],
            values: any_value,
        },
        Case {
            kind: "add",
            build: bin(BinaryOp::Add),
            inputs: vec![s23.clone(), s23.clone()],
            values: any_value,
        },
        Case {
            kind: "sub",
            build: bin(BinaryOp::Sub),
            inputs: vec![s23.clone(), s23.clone()],
            values: any_value,
        },
        Case {
            kind: "mul",
            build: bin(BinaryOp::Mul),
            inputs: vec![s23.clone(), s23.clone()],
            values: any_value,
        },
        Case {
            kind: "div",
            build: bin(BinaryOp::Div),
            inputs: vec![s23.clone(), s23.clone()],
            values: positive,
        },
        Case {
            kind: "pow",
            build: bin(BinaryOp::Pow),
            inputs: vec![s23.clone(), s23.clone()],
            values: positive,
        },
        Case {
            kind: "max",
            build: bin(BinaryOp::Max),
            inputs: vec![s23.clone(), s23.clone()],
            values: separated,
        },
        Case {
            kind: "min",
            build: bin(BinaryOp::Min),
            inputs: vec![s23.clone(), s23.clone()],
            values: separated,
        },
        Case {
            kind: "rem",
            build: bin(BinaryOp::Rem),
            inputs: vec![s23.clone(), s23.clone()],
            values: rem_values,
        },
    ];
    v.push(Case {
        kind: "select",
        build: |g, x| {
            let c = g.add(Op::Binary(BinaryOp::Gt), &[x[0], x[1]]).unwrap();
            g.add(Op::Select, &[c, x[0], x[1]]).unwrap()
        },
        inputs: vec![s23.clone(), s23.clone()],
        values: separated,
    });
    v.push(Case {
        kind: "cast",
        build: |g, x| g.add(Op::Cast(DType::F32), &[x[0]]).unwrap(),
        inputs: vec![s23.clone()],
        values: any_value,
    });
    v.push(Case {
        kind: "reshape",
        build: |g, x| g.add(Op::Reshape(vec![3, 2]), &[x[0]]).unwrap(),
        inputs: vec![s23.clone()],
        values: any_value,
    });
    v.push(Case {
        kind: "transpose",
        build: |g, x| g.add(Op::Transpose(vec![1, 0]), &[x[0]]).unwrap(),
        inputs: vec![s23.clone()],
        values: any_value,
    });
    v.push(Case {
        kind: "broadcast",
        build: |g, x| g.add(Op::Broadcast(vec![4, 2, 3]), &[x[0]]).unwrap(),
        inputs: vec![vec![2, 1]],
        values: any_value,
    });
    v.push(Case {
        kind: "slice",
        build: |g, x| {
            g.add(
                Op::Slice {
                    starts: vec![0, 1],
                    ends: vec![3, 5],
                    steps: vec![2, 2],
                },
                &[x[0]],
            )
            .unwrap()
        },
        inputs: vec![vec![3, 5]],
        values: any_value,
    });
    // A strided axis and two partial axes of step 1 (one `pad` restores both).
    v.push(Case {
        kind: "slice",
        build: |g, x| {
            g.add(
                Op::Slice {
                    starts: vec![0, 1, 1],
                    ends: vec![3, 4, 3],
                    steps: vec![2, 1, 1],
                },
                &[x[0]],
            )
            .unwrap()
        },
        inputs: vec![vec![3, 5, 4]],
        values: any_value,
    });
    v.push(Case {
        kind: "concat",
        build: |g, x| g.add(Op::Concat { axis: 1 }, &[x[0], x[1]]).unwrap(),
        inputs: vec![s23.clone(), vec![2, 2]],
        values: any_value,
    });
    v.push(Case {
        kind: "pad",
        build: |g, x| {
            g.add(
                Op::Pad {
                    lo: vec![1, 0],
                    hi: vec![0, 2],
                    value: 0.5,
                },
                &[x[0]],
            )
            .unwrap()
        },
        inputs: vec![s23.clone()],
        values: any_value,
    });
    for (kind, k) in [
        ("reduce_sum", ReduceKind::Sum),
        ("reduce_max", ReduceKind::Max),
        ("reduce_min", ReduceKind::Min),
    ] {
        let build: fn(&mut Graph, &[NodeId]) -> NodeId = match k {
            ReduceKind::Sum => |g, x| {
                g.add(
                    Op::Reduce {
                        kind: ReduceKind::Sum,
                        axes: vec![1],
                        keepdims: false,
                    },
                    &[x[0]],
                )
                .unwrap()
            },
            ReduceKind::Max => |g, x| {
                g.add(
                    Op::Reduce {
                        kind: ReduceKind::Max,
                        axes: vec![1],
                        keepdims: true,
                    },
                    &[x[0]],
                )
                .unwrap()
            },
            ReduceKind::Min => |g, x| {
                g.add(
                    Op::Reduce {
                        kind: ReduceKind::Min,
                        axes: vec![0, 1],
                        keepdims: false,
                    },
                    &[x[0]],
                )
                .unwrap()
            },
        };
        v.push(Case {
            kind,
            build,
            inputs: vec![s23.clone()],
            values: distinct,
        });
    }
    v.push(Case {
        kind: "matmul",
        build: |g, x| g.add(Op::MatMul, &[x[0], x[1]]).unwrap(),
        inputs: vec![vec![2, 2, 3], vec![2, 3, 4]],
        values: any_value,
    });
    v.push(Case {
        kind: "gather",
        build: |g, x| {
            let idx = index_input(g, vec![2, 2], vec![3, 0, 3, 1]);
            g.add(Op::Gather { axis: 0 }, &[x[0], idx]).unwrap()
        },
        inputs: vec![vec![4, 3]],
        values: any_value,
    });
    v.push(Case {
        kind: "scatter_add",
        build: |g, x| {
            let idx = index_input(g, vec![3], vec![2, 0, 2]);
            g.add(
                Op::ScatterAdd {
                    axis: 1,
                    shape: vec![2, 4],
                },
                &[x[0], idx],
            )
            .unwrap()
        },
        inputs: vec![vec![2, 3]],
        values: any_value,
    });
    // Padding, a stride and a dilation, so taps fall outside the input and overlap.
    v.push(Case {
        kind: "patches",
        build: |g, x| g.add(Op::Patches(window()), &[x[0]]).unwrap(),
        inputs: vec![vec![2, 2, 4, 5]],
        values: any_value,
    });
    v.push(Case {
        kind: "fold",
        build: |g, x| {
            g.add(
                Op::Fold {
                    win: window(),
                    shape: vec![2, 2, 4, 5],
                },
                &[x[0]],
            )
            .unwrap()
        },
        inputs: vec![vec![2, 2, 3, 2, 2, 2]],
        values: any_value,
    });
    v.push(Case {
        kind: "stop_gradient",
        build: |g, x| g.add(Op::StopGradient, &[x[0]]).unwrap(),
        inputs: vec![s23],
        values: any_value,
    });
    v
}

/// A 2×3 window at stride 2 with dilation 2, padded by 1 (2 after, along the width):
/// `[2, 2, 4, 5]` inputs give `[2, 2, 3, 2, 2, 2]` patches.
fn window() -> Window2d {
    Window2d {
        kh: 2,
        kw: 3,
        stride: 2,
        dilation: 2,
        pad_h: (1, 1),
        pad_w: (1, 2),
    }
}

/// An integer input whose values the harness sets from its name.
fn index_input(g: &mut Graph, shape: Vec<usize>, values: Vec<i64>) -> NodeId {
    let name = format!(
        "idx:{}",
        values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    g.add(
        Op::Input {
            name,
            dtype: DType::I64,
            shape,
        },
        &[],
    )
    .unwrap()
}

fn feeds(g: &Graph, xs: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    let mut out = xs.clone();
    for n in g.inputs() {
        if let Op::Input { name, shape, .. } = &g.node(n).op {
            if let Some(list) = name.strip_prefix("idx:") {
                let v: Vec<i64> = list.split(',').map(|s| s.parse().unwrap()).collect();
                out.insert(
                    name.clone(),
                    Tensor {
                        dtype: DType::I64,
                        shape: shape.clone(),
                        data: Data::I64(v),
                    },
                );
            }
        }
    }
    out
}

fn loss_of(g: &Graph, xs: &HashMap<String, Tensor>) -> f64 {
    let r = dnnc_interp::run(g, &feeds(g, xs), &HashMap::new()).unwrap();
    let (_, t) = r.outputs.iter().find(|(n, _)| n == "loss").unwrap();
    f64::from(t.as_f32().unwrap()[0])
}

#[test]
fn every_op_has_a_gradient_check_or_none() {
    let mut covered: Vec<&str> = cases().iter().map(|c| c.kind).collect();
    covered.extend(NO_DERIVATIVE);
    for k in dnnc_ir::OpKind::all().iter().map(|k| k.name()) {
        assert!(
            covered.contains(&k),
            "op kind `{k}` has no gradient check and is not listed as non-differentiable"
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    check_every_case(Order::First);
}

/// Double backprop: every derivative rule's result is differentiated once more (the
/// gradient of `sum(v · ∂loss/∂x)` with respect to the inputs and to the weights `w`
/// that seed the first pass), so each op a backward pass emits has its own derivative.
#[test]
fn gradients_of_gradients_match_finite_differences() {
    check_every_case(Order::Second);
}

#[derive(Clone, Copy, PartialEq)]
enum Order {
    First,
    Second,
}

fn f32_input(g: &mut Graph, name: &str, shape: &[usize]) -> NodeId {
    g.add(
        Op::Input {
            name: name.into(),
            dtype: DType::F32,
            shape: shape.to_vec(),
        },
        &[],
    )
    .unwrap()
}

/// `sum(a * b)` over every axis.
fn dot(g: &mut Graph, a: NodeId, b: NodeId) -> NodeId {
    let p = g.add(Op::Binary(BinaryOp::Mul), &[a, b]).unwrap();
    let axes: Vec<usize> = (0..g.ty(p).shape.len()).collect();
    g.add(
        Op::Reduce {
            kind: ReduceKind::Sum,
            axes,
            keepdims: false,
        },
        &[p],
    )
    .unwrap()
}

fn fixed_weights(shape: &[usize], seed: usize) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::f32(
        shape.to_vec(),
        (0..n).map(|j| 0.5 + uniform01(seed, j)).collect(),
    )
    .unwrap()
}

fn check_every_case(order: Order) {
    let mut failures = Vec::new();
    for case in cases() {
        let mut g = Graph::new(case.kind);
        let xs: Vec<NodeId> = case
            .inputs
            .iter()
            .enumerate()
            .map(|(i, s)| f32_input(&mut g, &format!("x{i}"), s))
            .collect();
        let y = (case.build)(&mut g, &xs);
        assert!(
            g.node_ids()
                .iter()
                .any(|&n| g.node(n).op.name() == case.kind),
            "the case named `{}` builds no op of that kind",
            case.kind
        );
        // loss = sum(y * w) with fixed weights w, so every output element matters.
        let ys = g.ty(y).shape.clone();
        let w = f32_input(&mut g, "w", &ys);
        let mut loss = dot(&mut g, y, w);
        let mut wrt = xs.clone();
        let mut values: HashMap<String, Tensor> = HashMap::new();
        values.insert("w".into(), fixed_weights(&ys, 99));
        if order == Order::Second {
            // loss2 = Σᵢ sum(vᵢ · ∂loss/∂xᵢ), differentiated in xs and w.
            let firsts = gradients(&mut g, loss, &xs).unwrap();
            let mut total = None;
            for (i, d) in firsts.into_iter().enumerate() {
                let shape = g.ty(d).shape.clone();
                let v = f32_input(&mut g, &format!("v{i}"), &shape);
                values.insert(format!("v{i}"), fixed_weights(&shape, 7 + i));
                let term = dot(&mut g, d, v);
                total = Some(match total {
                    None => term,
                    Some(t) => g.add(Op::Binary(BinaryOp::Add), &[t, term]).unwrap(),
                });
            }
            loss = total.unwrap();
            wrt.push(w);
        }
        g.set_output("loss", loss);
        let grads = gradients(&mut g, loss, &wrt).unwrap();
        for (i, d) in grads.iter().enumerate() {
            g.set_output(format!("d{i}"), *d);
        }
        dnnc_ir::verify(&g).unwrap_or_else(|e| panic!("{}: {e:?}", case.kind));
        let mut names: Vec<String> = (0..case.inputs.len()).map(|i| format!("x{i}")).collect();
        for (i, s) in case.inputs.iter().enumerate() {
            let n: usize = s.iter().product();
            values.insert(
                names[i].clone(),
                Tensor::f32(s.clone(), (0..n).map(|j| (case.values)(i, j)).collect()).unwrap(),
            );
        }
        if order == Order::Second {
            names.push("w".into());
        }
        let r = dnnc_interp::run(&g, &feeds(&g, &values), &HashMap::new()).unwrap();
        for (i, name) in names.iter().enumerate() {
            let analytic = r
                .outputs
                .iter()
                .find(|(n, _)| *n == format!("d{i}"))
                .unwrap()
                .1
                .to_f32_vec();
            for (j, &a) in analytic.iter().enumerate() {
                let eps = 1e-2f32;
                let mut plus = values.clone();
                let mut minus = values.clone();
                if let Data::F32(v) = &mut plus.get_mut(name).unwrap().data {
                    v[j] += eps;
                }
                if let Data::F32(v) = &mut minus.get_mut(name).unwrap().data {
                    v[j] -= eps;
                }
                let numeric = if case.kind == "stop_gradient" {
                    0.0
                } else {
                    (loss_of(&g, &plus) - loss_of(&g, &minus)) / (2.0 * f64::from(eps))
                };
                let a = f64::from(a);
                let tol = 2e-2 * (1.0 + numeric.abs());
                if (a - numeric).abs() > tol {
                    failures.push(format!(
                        "{}: d/d{name}[{j}] analytic {a:.5} vs numeric {numeric:.5}",
                        case.kind
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn non_differentiable_ops_give_zero_gradients() {
    let mut g = Graph::new("zero");
    let x = g
        .add(
            Op::Input {
                name: "x".into(),
                dtype: DType::F32,
                shape: vec![3],
            },
            &[],
        )
        .unwrap();
    let f = g.add(Op::Unary(UnaryOp::Floor), &[x]).unwrap();
    let key = g
        .add(
            Op::Const {
                value: 1.0,
                dtype: DType::I64,
            },
            &[],
        )
        .unwrap();
    let r = g
        .add(
            Op::Random {
                dist: Dist::Uniform {
                    low: 0.0,
                    high: 1.0,
                },
                shape: vec![3],
                salt: 1,
            },
            &[key],
        )
        .unwrap();
    let s = g.add(Op::Binary(BinaryOp::Add), &[f, r]).unwrap();
    let loss = g
        .add(
            Op::Reduce {
                kind: ReduceKind::Sum,
                axes: vec![0],
                keepdims: false,
            },
            &[s],
        )
        .unwrap();
    let d = gradients(&mut g, loss, &[x]).unwrap();
    g.set_output("d", d[0]);
    let mut v = HashMap::new();
    v.insert(
        "x".to_string(),
        Tensor::f32(vec![3], vec![0.3, 1.7, -2.2]).unwrap(),
    );
    let out = dnnc_interp::run(&g, &v, &HashMap::new()).unwrap();
    assert_eq!(out.outputs[0].1.to_f32_vec(), vec![0.0; 3]);
}

/// The same chain of ops computed in `bf16`, `f16` or `f64` (between casts from and
/// to f32) has the gradient it has in f32, to the narrower type's precision: every
/// float type carries gradients, each in its own type (a `bf16` parameter's flow in
/// `bf16` until the optimizer widens them).
#[test]
fn gradients_flow_through_every_float_type() {
    let chain = |g: &mut Graph, x: NodeId, dtype: DType| -> NodeId {
        let c = g.add(Op::Cast(dtype), &[x]).unwrap();
        let sq = g.add(Op::Binary(BinaryOp::Mul), &[c, c]).unwrap();
        let t = g.add(Op::Unary(UnaryOp::Tanh), &[c]).unwrap();
        let e = g.add(Op::Unary(UnaryOp::Exp), &[t]).unwrap();
        let s = g.add(Op::Binary(BinaryOp::Add), &[sq, e]).unwrap();
        let m = g
            .add(
                Op::Reduce {
                    kind: ReduceKind::Max,
                    axes: vec![1],
                    keepdims: true,
                },
                &[s],
            )
            .unwrap();
        let mb = g.add(Op::Broadcast(vec![2, 3]), &[m]).unwrap();
        let d = g.add(Op::Binary(BinaryOp::Div), &[s, mb]).unwrap();
        g.add(Op::Cast(DType::F32), &[d]).unwrap()
    };
    let gradient = |dtype: DType| -> Vec<f32> {
        let mut g = Graph::new("typed");
        let x = f32_input(&mut g, "x", &[2, 3]);
        let y = chain(&mut g, x, dtype);
        let w = f32_input(&mut g, "w", &[2, 3]);
        let loss = dot(&mut g, y, w);
        g.set_output("loss", loss);
        let d = gradients(&mut g, loss, &[x]).unwrap()[0];
        g.set_output("d", d);
        dnnc_ir::verify(&g).unwrap_or_else(|e| panic!("{dtype}: {e:?}"));
        let mut values = HashMap::new();
        values.insert(
            "x".to_string(),
            Tensor::f32(vec![2, 3], (0..6).map(|i| distinct(0, i) * 0.5).collect()).unwrap(),
        );
        values.insert("w".to_string(), fixed_weights(&[2, 3], 3));
        let r = dnnc_interp::run(&g, &feeds(&g, &values), &HashMap::new()).unwrap();
        r.outputs
            .iter()
            .find(|(n, _)| n == "d")
            .unwrap()
            .1
            .to_f32_vec()
    };
    let reference = gradient(DType::F32);
    assert!(reference.iter().any(|v| v.abs() > 0.05), "{reference:?}");
    for (dtype, tol) in [(DType::F64, 1e-6), (DType::F16, 1e-2), (DType::BF16, 6e-2)] {
        let got = gradient(dtype);
        for (a, b) in got.iter().zip(&reference) {
            assert!(
                (a - b).abs() <= tol * (1.0 + b.abs()),
                "{dtype}: {got:?} vs f32 {reference:?}"
            );
        }
    }
}

/// The gradients of disjoint slices of one tensor (what an unrolled `scan` reads, one
/// step each) are joined by one `concat`, with zeros where no slice reads, instead of
/// a sum of padded copies: no `pad` is left, and the gradient is each slice's own.
#[test]
fn gradients_of_disjoint_slices_are_joined_without_padded_copies() {
    let mut g = Graph::new("slices");
    let x = f32_input(&mut g, "x", &[5, 3]);
    let mut terms = Vec::new();
    // Rows 0, 1, 3 and 4 with weights 1, 2, 4, 5; row 2 is not read.
    for (row, k) in [(3usize, 4.0), (0, 1.0), (4, 5.0), (1, 2.0)] {
        let s = g
            .add(
                Op::Slice {
                    starts: vec![row, 0],
                    ends: vec![row + 1, 3],
                    steps: vec![1, 1],
                },
                &[x],
            )
            .unwrap();
        let c = g
            .add(
                Op::Const {
                    value: k,
                    dtype: DType::F32,
                },
                &[],
            )
            .unwrap();
        let c = g.add(Op::Broadcast(vec![1, 3]), &[c]).unwrap();
        let t = g.add(Op::Binary(BinaryOp::Mul), &[s, c]).unwrap();
        let t = g.add(Op::Binary(BinaryOp::Mul), &[t, s]).unwrap();
        terms.push(t);
    }
    let mut total = terms[0];
    for &t in &terms[1..] {
        total = g.add(Op::Binary(BinaryOp::Add), &[total, t]).unwrap();
    }
    let loss = g
        .add(
            Op::Reduce {
                kind: ReduceKind::Sum,
                axes: vec![0, 1],
                keepdims: false,
            },
            &[total],
        )
        .unwrap();
    let d = gradients(&mut g, loss, &[x]).unwrap()[0];
    g.set_output("d", d);
    dnnc_ir::verify(&g).unwrap();
    assert!(
        matches!(g.node(d).op, Op::Concat { axis: 0 }),
        "{:?}",
        g.node(d).op
    );
    let live = g.topo_order().unwrap();
    let reaches_d = |n: NodeId| {
        let mut stack = vec![d];
        let mut seen = std::collections::HashSet::new();
        while let Some(m) = stack.pop() {
            if m == n {
                return true;
            }
            if seen.insert(m) {
                stack.extend(g.operands(m));
            }
        }
        false
    };
    assert!(
        !live
            .iter()
            .any(|&n| matches!(g.node(n).op, Op::Pad { .. }) && reaches_d(n)),
        "a padded copy is left in the gradient"
    );
    let xv: Vec<f32> = (0..15).map(|i| i as f32 * 0.25 - 1.0).collect();
    let mut values = HashMap::new();
    values.insert(
        "x".to_string(),
        Tensor::f32(vec![5, 3], xv.clone()).unwrap(),
    );
    let r = dnnc_interp::run(&g, &values, &HashMap::new()).unwrap();
    let got = r
        .outputs
        .iter()
        .find(|(n, _)| n == "d")
        .unwrap()
        .1
        .to_f32_vec();
    let weight = [1.0, 2.0, 0.0, 4.0, 5.0];
    let want: Vec<f32> = (0..15).map(|i| 2.0 * weight[i / 3] * xv[i]).collect();
    assert_eq!(got, want);
}
