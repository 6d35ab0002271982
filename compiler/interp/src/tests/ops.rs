//! One or more small hand-computed cases for every op kind of [`dnnc_ir::OpKind::all`], and
//! a check that the table covers them all.

use std::collections::{BTreeSet, HashMap};
use std::f32::consts::{E, FRAC_PI_2, PI};

use dnnc_ir::{BinaryOp, DType, Dist, Graph, NodeId, Op, OpKind, ReduceKind, UnaryOp, Window2d};
use dnnc_tensor::Tensor;

use super::{assert_close, boolt, f32t, i64t, intt, run_with};

type Build = Box<dyn Fn(&mut Graph, &[NodeId]) -> Result<NodeId, dnnc_ir::IrError>>;

/// `kind` applied to inputs holding `args` gives `want`.
struct Case {
    kind: &'static str,
    args: Vec<Tensor>,
    build: Build,
    want: Tensor,
}

fn case(
    kind: &'static str,
    args: Vec<Tensor>,
    build: impl Fn(&mut Graph, &[NodeId]) -> Result<NodeId, dnnc_ir::IrError> + 'static,
    want: Tensor,
) -> Case {
    Case {
        kind,
        args,
        build: Box::new(build),
        want,
    }
}

/// `op` applied to all the inputs, in order.
fn apply(kind: &'static str, args: Vec<Tensor>, op: Op, want: Tensor) -> Case {
    case(kind, args, move |g, x| g.add(op.clone(), x), want)
}

fn unary(u: UnaryOp, x: Tensor, want: Tensor) -> Case {
    apply(u.name(), vec![x], Op::Unary(u), want)
}

fn binary(b: BinaryOp, x: Tensor, y: Tensor, want: Tensor) -> Case {
    apply(b.name(), vec![x, y], Op::Binary(b), want)
}

fn reduce(
    kind: &'static str,
    r: ReduceKind,
    axes: &[usize],
    keepdims: bool,
    x: Tensor,
    want: Tensor,
) -> Case {
    apply(
        kind,
        vec![x],
        Op::Reduce {
            kind: r,
            axes: axes.to_vec(),
            keepdims,
        },
        want,
    )
}

/// A random op over the key held by input 0 (and the probabilities by input 1).
fn random(
    kind: &'static str,
    dist: Dist,
    shape: &[usize],
    p: Option<Tensor>,
    want: Tensor,
) -> Case {
    let mut args = vec![i64t(&[], &[42])];
    args.extend(p);
    apply(
        kind,
        args,
        Op::Random {
            dist,
            shape: shape.to_vec(),
            salt: 7,
        },
        want,
    )
}

fn cases() -> Vec<Case> {
    use BinaryOp as B;
    use UnaryOp as U;
    let m23 = || f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let cmp = |b: BinaryOp, want: [bool; 3]| {
        binary(
            b,
            f32t(&[3], &[1., 2., 3.]),
            f32t(&[3], &[2., 2., 2.]),
            boolt(&[3], &want),
        )
    };
    // Bool operands [t, t, f, f] and [t, f, t, f]: every pair once.
    let logic = |b: BinaryOp, want: [bool; 4]| {
        let (x, y) = ([true, true, false, false], [true, false, true, false]);
        binary(b, boolt(&[4], &x), boolt(&[4], &y), boolt(&[4], &want))
    };
    vec![
        // Leaves.
        case(
            "input",
            vec![f32t(&[2], &[1., 2.])],
            |_, x| Ok(x[0]),
            f32t(&[2], &[1., 2.]),
        ),
        case(
            "state",
            vec![],
            |g, _| {
                g.add(
                    Op::State {
                        name: "s".into(),
                        dtype: DType::F32,
                        shape: vec![2],
                    },
                    &[],
                )
            },
            f32t(&[2], &[3., 4.]),
        ),
        apply(
            "const",
            vec![],
            Op::Const {
                value: 2.5,
                dtype: DType::F32,
            },
            f32t(&[], &[2.5]),
        ),
        apply(
            "const",
            vec![],
            Op::Const {
                value: 300.0,
                dtype: DType::U8,
            },
            intt(DType::U8, &[], &[44]),
        ),
        apply(
            "const",
            vec![],
            Op::Const {
                value: -1.5,
                dtype: DType::I32,
            },
            intt(DType::I32, &[], &[-1]),
        ),
        apply(
            "const",
            vec![],
            Op::Const {
                value: 0.5,
                dtype: DType::Bool,
            },
            boolt(&[], &[true]),
        ),
        apply(
            "iota",
            vec![],
            Op::Iota {
                dtype: DType::I64,
                shape: vec![2, 3],
                axis: 1,
            },
            i64t(&[2, 3], &[0, 1, 2, 0, 1, 2]),
        ),
        apply(
            "iota",
            vec![],
            Op::Iota {
                dtype: DType::F32,
                shape: vec![2, 3],
                axis: 0,
            },
            f32t(&[2, 3], &[0., 0., 0., 1., 1., 1.]),
        ),
        // Unary.
        unary(U::Neg, f32t(&[2], &[1., -2.]), f32t(&[2], &[-1., 2.])),
        unary(U::Neg, i64t(&[2], &[3, -4]), i64t(&[2], &[-3, 4])),
        unary(
            U::Neg,
            intt(DType::U8, &[2], &[5, 0]),
            intt(DType::U8, &[2], &[251, 0]),
        ),
        unary(U::Exp, f32t(&[2], &[0., 1.]), f32t(&[2], &[1., E])),
        unary(
            U::Log,
            f32t(&[3], &[1., E, 0.]),
            f32t(&[3], &[0., 1., f32::NEG_INFINITY]),
        ),
        unary(
            U::Sqrt,
            f32t(&[2], &[4., 2.]),
            f32t(&[2], &[2., std::f32::consts::SQRT_2]),
        ),
        unary(U::Rsqrt, f32t(&[2], &[4., 0.25]), f32t(&[2], &[0.5, 2.])),
        unary(U::Abs, f32t(&[2], &[-2., 3.]), f32t(&[2], &[2., 3.])),
        unary(U::Abs, i64t(&[2], &[-5, 5]), i64t(&[2], &[5, 5])),
        unary(
            U::Sign,
            f32t(&[3], &[-2., 0., 3.]),
            f32t(&[3], &[-1., 0., 1.]),
        ),
        unary(U::Sign, i64t(&[3], &[-7, 0, 9]), i64t(&[3], &[-1, 0, 1])),
        unary(U::Sin, f32t(&[2], &[0., FRAC_PI_2]), f32t(&[2], &[0., 1.])),
        unary(U::Cos, f32t(&[2], &[0., PI]), f32t(&[2], &[1., -1.])),
        unary(
            U::Tanh,
            f32t(&[3], &[0., 1., -20.]),
            f32t(&[3], &[0., 0.761_594_2, -1.]),
        ),
        unary(
            U::Erf,
            f32t(&[4], &[0., 0.5, -1., 2.]),
            f32t(&[4], &[0., 0.520_499_9, -0.842_700_8, 0.995_322_3]),
        ),
        unary(U::Floor, f32t(&[2], &[-1.5, 2.7]), f32t(&[2], &[-2., 2.])),
        unary(U::Ceil, f32t(&[2], &[-1.5, 2.2]), f32t(&[2], &[-1., 3.])),
        unary(
            U::Not,
            boolt(&[2], &[true, false]),
            boolt(&[2], &[false, true]),
        ),
        // Binary.
        binary(
            B::Add,
            f32t(&[3], &[7., -7., 1.5]),
            f32t(&[3], &[2., 2., -0.5]),
            f32t(&[3], &[9., -5., 1.]),
        ),
        binary(
            B::Add,
            intt(DType::U8, &[2], &[200, 1]),
            intt(DType::U8, &[2], &[100, 2]),
            intt(DType::U8, &[2], &[44, 3]),
        ),
        binary(
            B::Sub,
            f32t(&[3], &[7., -7., 1.5]),
            f32t(&[3], &[2., 2., -0.5]),
            f32t(&[3], &[5., -9., 2.]),
        ),
        binary(
            B::Mul,
            f32t(&[3], &[7., -7., 1.5]),
            f32t(&[3], &[2., 2., -0.5]),
            f32t(&[3], &[14., -14., -0.75]),
        ),
        binary(
            B::Div,
            f32t(&[3], &[7., -7., 1.5]),
            f32t(&[3], &[2., 2., -0.5]),
            f32t(&[3], &[3.5, -3.5, -3.]),
        ),
        binary(
            B::Div,
            i64t(&[3], &[7, -7, 7]),
            i64t(&[3], &[2, 2, -2]),
            i64t(&[3], &[3, -4, -4]),
        ),
        binary(
            B::Pow,
            f32t(&[2], &[2., 3.]),
            f32t(&[2], &[3., 0.5]),
            f32t(&[2], &[8., 1.732_050_8]),
        ),
        binary(
            B::Pow,
            i64t(&[2], &[2, -3]),
            i64t(&[2], &[10, 3]),
            i64t(&[2], &[1024, -27]),
        ),
        binary(
            B::Max,
            f32t(&[3], &[7., -7., 1.5]),
            f32t(&[3], &[2., 2., -0.5]),
            f32t(&[3], &[7., 2., 1.5]),
        ),
        binary(
            B::Min,
            f32t(&[3], &[7., -7., 1.5]),
            f32t(&[3], &[2., 2., -0.5]),
            f32t(&[3], &[2., -7., -0.5]),
        ),
        binary(
            B::Min,
            i64t(&[2], &[3, -3]),
            i64t(&[2], &[1, 1]),
            i64t(&[2], &[1, -3]),
        ),
        binary(
            B::Rem,
            f32t(&[3], &[7., -7., 1.5]),
            f32t(&[3], &[2., 2., -0.5]),
            f32t(&[3], &[1., 1., 0.]),
        ),
        binary(
            B::Rem,
            i64t(&[3], &[7, -7, 7]),
            i64t(&[3], &[2, 2, -2]),
            i64t(&[3], &[1, 1, -1]),
        ),
        cmp(B::Lt, [true, false, false]),
        cmp(B::Le, [true, true, false]),
        cmp(B::Gt, [false, false, true]),
        cmp(B::Ge, [false, true, true]),
        cmp(B::Eq, [false, true, false]),
        cmp(B::Ne, [true, false, true]),
        binary(
            B::Lt,
            i64t(&[2], &[1, 2]),
            i64t(&[2], &[2, 2]),
            boolt(&[2], &[true, false]),
        ),
        logic(B::Lt, [false, false, true, false]),
        logic(B::Le, [true, false, true, true]),
        logic(B::Gt, [false, true, false, false]),
        logic(B::Ge, [true, true, false, true]),
        logic(B::Eq, [true, false, false, true]),
        logic(B::Ne, [false, true, true, false]),
        logic(B::And, [true, false, false, false]),
        logic(B::Or, [true, true, true, false]),
        // Selection and conversion.
        apply(
            "select",
            vec![
                boolt(&[3], &[true, false, true]),
                f32t(&[3], &[1., 2., 3.]),
                f32t(&[3], &[10., 20., 30.]),
            ],
            Op::Select,
            f32t(&[3], &[1., 20., 3.]),
        ),
        apply(
            "cast",
            vec![f32t(&[4], &[-1.7, 0., 2.9, 300.5])],
            Op::Cast(DType::I64),
            i64t(&[4], &[-1, 0, 2, 300]),
        ),
        apply(
            "cast",
            vec![f32t(&[4], &[-1.7, 0., 2.9, 300.5])],
            Op::Cast(DType::U8),
            intt(DType::U8, &[4], &[255, 0, 2, 44]),
        ),
        apply(
            "cast",
            vec![f32t(&[3], &[-1.7, 0., -0.])],
            Op::Cast(DType::Bool),
            boolt(&[3], &[true, false, false]),
        ),
        apply(
            "cast",
            vec![boolt(&[2], &[true, false])],
            Op::Cast(DType::F32),
            f32t(&[2], &[1., 0.]),
        ),
        apply(
            "cast",
            vec![i64t(&[2], &[-3, 70000])],
            Op::Cast(DType::F32),
            f32t(&[2], &[-3., 70000.]),
        ),
        apply(
            "cast",
            vec![intt(DType::U8, &[2], &[0, 255])],
            Op::Cast(DType::I32),
            intt(DType::I32, &[2], &[0, 255]),
        ),
        apply(
            "cast",
            vec![i64t(&[2], &[1 << 32, -1])],
            Op::Cast(DType::I32),
            intt(DType::I32, &[2], &[0, -1]),
        ),
        // Layout.
        apply(
            "reshape",
            vec![m23()],
            Op::Reshape(vec![3, 2]),
            f32t(&[3, 2], &[1., 2., 3., 4., 5., 6.]),
        ),
        apply(
            "transpose",
            vec![m23()],
            Op::Transpose(vec![1, 0]),
            f32t(&[3, 2], &[1., 4., 2., 5., 3., 6.]),
        ),
        apply(
            "broadcast",
            vec![f32t(&[3], &[1., 2., 3.])],
            Op::Broadcast(vec![2, 3]),
            f32t(&[2, 3], &[1., 2., 3., 1., 2., 3.]),
        ),
        apply(
            "broadcast",
            vec![f32t(&[2, 1], &[1., 2.])],
            Op::Broadcast(vec![2, 3]),
            f32t(&[2, 3], &[1., 1., 1., 2., 2., 2.]),
        ),
        apply(
            "broadcast",
            vec![i64t(&[], &[5])],
            Op::Broadcast(vec![2]),
            i64t(&[2], &[5, 5]),
        ),
        apply(
            "slice",
            vec![f32t(&[2, 5], &[0., 1., 2., 3., 4., 5., 6., 7., 8., 9.])],
            Op::Slice {
                starts: vec![0, 1],
                ends: vec![2, 5],
                steps: vec![1, 2],
            },
            f32t(&[2, 2], &[1., 3., 6., 8.]),
        ),
        apply(
            "concat",
            vec![f32t(&[1, 2], &[1., 2.]), f32t(&[2, 2], &[3., 4., 5., 6.])],
            Op::Concat { axis: 0 },
            f32t(&[3, 2], &[1., 2., 3., 4., 5., 6.]),
        ),
        apply(
            "concat",
            vec![
                i64t(&[2, 1], &[1, 2]),
                i64t(&[2, 2], &[3, 4, 5, 6]),
                i64t(&[2, 1], &[7, 8]),
            ],
            Op::Concat { axis: 1 },
            i64t(&[2, 4], &[1, 3, 4, 7, 2, 5, 6, 8]),
        ),
        apply(
            "pad",
            vec![f32t(&[2], &[1., 2.])],
            Op::Pad {
                lo: vec![1],
                hi: vec![2],
                value: 0.0,
            },
            f32t(&[5], &[0., 1., 2., 0., 0.]),
        ),
        apply(
            "pad",
            vec![i64t(&[1, 1], &[1])],
            Op::Pad {
                lo: vec![1, 0],
                hi: vec![0, 1],
                value: 9.0,
            },
            i64t(&[2, 2], &[9, 9, 1, 9]),
        ),
        // Reductions.
        reduce(
            "reduce_sum",
            ReduceKind::Sum,
            &[1],
            false,
            m23(),
            f32t(&[2], &[6., 15.]),
        ),
        reduce(
            "reduce_sum",
            ReduceKind::Sum,
            &[0],
            true,
            m23(),
            f32t(&[1, 3], &[5., 7., 9.]),
        ),
        reduce(
            "reduce_sum",
            ReduceKind::Sum,
            &[0, 1],
            false,
            m23(),
            f32t(&[], &[21.]),
        ),
        reduce(
            "reduce_sum",
            ReduceKind::Sum,
            &[0],
            false,
            intt(DType::U8, &[2], &[200, 100]),
            intt(DType::U8, &[], &[44]),
        ),
        reduce(
            "reduce_max",
            ReduceKind::Max,
            &[0],
            false,
            m23(),
            f32t(&[3], &[4., 5., 6.]),
        ),
        reduce(
            "reduce_max",
            ReduceKind::Max,
            &[1],
            false,
            boolt(&[2, 2], &[false, true, false, false]),
            boolt(&[2], &[true, false]),
        ),
        reduce(
            "reduce_min",
            ReduceKind::Min,
            &[1],
            true,
            m23(),
            f32t(&[2, 1], &[1., 4.]),
        ),
        reduce(
            "reduce_min",
            ReduceKind::Min,
            &[0],
            false,
            i64t(&[2, 2], &[3, -1, 2, 5]),
            i64t(&[2], &[2, -1]),
        ),
        apply(
            "argmax",
            vec![f32t(&[2, 3], &[1., 3., 3., 5., 0., 5.])],
            Op::ArgMax { axis: 1 },
            i64t(&[2], &[1, 0]),
        ),
        apply(
            "argmax",
            vec![f32t(&[2, 3], &[1., 3., 3., 5., 0., 5.])],
            Op::ArgMax { axis: 0 },
            i64t(&[3], &[1, 0, 1]),
        ),
        apply(
            "argmin",
            vec![f32t(&[2, 3], &[1., 3., 1., 5., 0., 0.])],
            Op::ArgMin { axis: 1 },
            i64t(&[2], &[0, 1]),
        ),
        // Stable: the two 3s and the two 5s keep their order.
        apply(
            "argsort",
            vec![f32t(&[2, 3], &[3., 1., 3., 5., 0., 5.])],
            Op::ArgSort {
                axis: 1,
                descending: false,
            },
            i64t(&[2, 3], &[1, 0, 2, 1, 0, 2]),
        ),
        apply(
            "argsort",
            vec![f32t(&[2, 3], &[3., 1., 3., 5., 0., 5.])],
            Op::ArgSort {
                axis: 0,
                descending: true,
            },
            i64t(&[2, 3], &[1, 0, 1, 0, 1, 0]),
        ),
        apply(
            "argmin",
            vec![i64t(&[3], &[4, -2, -2])],
            Op::ArgMin { axis: 0 },
            i64t(&[], &[1]),
        ),
        // Linear algebra and indexing.
        apply(
            "matmul",
            vec![
                f32t(&[2, 2], &[1., 2., 3., 4.]),
                f32t(&[2, 2], &[5., 6., 7., 8.]),
            ],
            Op::MatMul,
            f32t(&[2, 2], &[19., 22., 43., 50.]),
        ),
        apply(
            "matmul",
            vec![
                f32t(&[2, 1, 2], &[1., 2., 3., 4.]),
                f32t(&[2, 2, 1], &[1., 1., 2., -1.]),
            ],
            Op::MatMul,
            f32t(&[2, 1, 1], &[3., 2.]),
        ),
        apply(
            "gather",
            vec![
                f32t(&[3, 2], &[1., 2., 3., 4., 5., 6.]),
                i64t(&[3], &[2, 0, 2]),
            ],
            Op::Gather { axis: 0 },
            f32t(&[3, 2], &[5., 6., 1., 2., 5., 6.]),
        ),
        apply(
            "gather",
            vec![m23(), intt(DType::U8, &[2, 1], &[2, 0])],
            Op::Gather { axis: 1 },
            f32t(&[2, 2, 1], &[3., 1., 6., 4.]),
        ),
        apply(
            "scatter_add",
            vec![f32t(&[4], &[1., 2., 3., 4.]), i64t(&[4], &[0, 2, 0, 1])],
            Op::ScatterAdd {
                axis: 0,
                shape: vec![3],
            },
            f32t(&[3], &[4., 4., 2.]),
        ),
        apply(
            "scatter_add",
            vec![f32t(&[2, 2], &[1., 2., 3., 4.]), i64t(&[2], &[2, 2])],
            Op::ScatterAdd {
                axis: 1,
                shape: vec![2, 3],
            },
            f32t(&[2, 3], &[0., 0., 3., 0., 0., 7.]),
        ),
        // Random numbers with hand-computable results (see `random` for the rest).
        random(
            "random_uniform",
            Dist::Uniform {
                low: 2.0,
                high: 2.0,
            },
            &[3],
            None,
            f32t(&[3], &[2., 2., 2.]),
        ),
        random(
            "random_normal",
            Dist::Normal {
                mean: 3.0,
                std: 0.0,
            },
            &[2],
            None,
            f32t(&[2], &[3., 3.]),
        ),
        random(
            "random_bernoulli",
            Dist::Bernoulli,
            &[4],
            Some(f32t(&[4], &[0., 1., -0.5, 2.])),
            boolt(&[4], &[false, true, false, true]),
        ),
        apply(
            "stop_gradient",
            vec![f32t(&[2], &[1., -1.])],
            Op::StopGradient,
            f32t(&[2], &[1., -1.]),
        ),
        apply(
            "patches",
            vec![f32t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.])],
            Op::Patches(window(2, 1, (0, 0))),
            f32t(
                &[1, 2, 2, 1, 2, 2],
                &[
                    1., 2., 4., 5., 2., 3., 5., 6., 4., 5., 7., 8., 5., 6., 8., 9.,
                ],
            ),
        ),
        // Padding 1, stride 2: each tap sees one element of the 2×2 input.
        apply(
            "patches",
            vec![f32t(&[1, 1, 2, 2], &[1., 2., 3., 4.])],
            Op::Patches(window(2, 2, (1, 1))),
            f32t(
                &[1, 2, 2, 1, 2, 2],
                &[
                    0., 0., 0., 4., 0., 0., 3., 0., 0., 2., 0., 0., 1., 0., 0., 0.,
                ],
            ),
        ),
        // Each input element receives one term per window that covers it.
        apply(
            "fold",
            vec![f32t(&[1, 2, 2, 1, 2, 2], &[1.; 16])],
            Op::Fold {
                win: window(2, 1, (0, 0)),
                shape: vec![1, 1, 3, 3],
            },
            f32t(&[1, 1, 3, 3], &[1., 2., 1., 2., 4., 2., 1., 2., 1.]),
        ),
    ]
}

/// A square window of `k` at `stride` with `pad` on both spatial axes.
fn window(k: usize, stride: usize, pad: (usize, usize)) -> Window2d {
    Window2d {
        kh: k,
        kw: k,
        stride,
        dilation: 1,
        pad_h: pad,
        pad_w: pad,
    }
}

#[test]
fn every_op_kind_has_a_case() {
    let table: BTreeSet<&str> = cases().iter().map(|c| c.kind).collect();
    let all: BTreeSet<&str> = OpKind::all().iter().map(|k| k.name()).collect();
    let missing: Vec<_> = all.difference(&table).collect();
    let unknown: Vec<_> = table.difference(&all).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "no case for {missing:?}; unknown kinds {unknown:?}"
    );
    println!("{} cases cover the {} op kinds", cases().len(), all.len());
}

#[test]
fn every_case_gives_its_hand_computed_result() {
    let states = HashMap::from([("s".to_string(), f32t(&[2], &[3., 4.]))]);
    let mut failures = Vec::new();
    for (i, c) in cases().into_iter().enumerate() {
        let (g, out) = match run_with(&c.args, &states, &c.build) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("case {i} ({}): {e}", c.kind));
                continue;
            }
        };
        // The case really exercises the kind it claims to.
        let node = g.output("out").unwrap();
        assert_eq!(g.node(node).op.name(), c.kind, "case {i}");
        let got = out.output("out").unwrap();
        if !super::close(got, &c.want) {
            failures.push(format!(
                "case {i} ({}): got {got:?}, want {:?}",
                c.kind, c.want
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_comparison_catches_a_wrong_result() {
    let c = &cases()[0];
    let (_, out) = run_with(&c.args, &HashMap::new(), &c.build).unwrap();
    assert!(!super::close(
        out.output("out").unwrap(),
        &f32t(&[2], &[1., 2.5])
    ));
    assert_close(out.output("out").unwrap(), &c.want);
}
