//! The JIT against the reference interpreter, on hand-written and randomly generated
//! `f32` graphs.

mod support;

use dnnc_exec::ExecError;
use std::collections::HashMap;
use std::time::Instant;

use dnnc_ir::{BinaryOp, DType, Dist, Graph, NodeId, Op, ReduceKind, UnaryOp, Window2d};
use dnnc_tensor::{Data, Tensor};
use support::{close, random_graph, Builder, Rng};

/// Compiles and runs `b.g` and checks it against the interpreter; returns how many
/// elements were compared, how many agreed bit for bit (up to the sign of zero) and how
/// many were finite. Integer and `bool` results must agree exactly.
fn check(b: &Builder) -> (usize, usize, usize) {
    check_graph(&b.g, &b.inputs, &b.states)
}

fn check_graph(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    states: &HashMap<String, Tensor>,
) -> (usize, usize, usize) {
    let want = dnnc_interp::run(g, inputs, states).unwrap();
    let mut c = dnnc_codegen::compile(g).unwrap_or_else(|e| panic!("{e}"));
    let mut stats = (0, 0, 0);
    // Twice: a compiled graph is reusable.
    for _ in 0..2 {
        let (outs, ups) = c.run(inputs, states).unwrap();
        for (got, want) in [(&outs, &want.outputs), (&ups, &want.updates)] {
            assert_eq!(got.len(), want.len());
            for ((gn, gt), (wn, wt)) in got.iter().zip(want.iter()) {
                assert_eq!(gn, wn);
                assert_eq!(gt.shape, wt.shape, "shape of `{gn}`");
                assert_eq!(gt.dtype, wt.dtype, "dtype of `{gn}`");
                match (&gt.data, &wt.data) {
                    (Data::F32(gv), Data::F32(wv)) => {
                        for (i, (&x, &y)) in gv.iter().zip(wv).enumerate() {
                            assert!(close(x, y), "`{gn}`[{i}]: jit {x}, interp {y}");
                            stats.0 += 1;
                            stats.1 += usize::from(x == y || (x.is_nan() && y.is_nan()));
                            stats.2 += usize::from(y.is_finite());
                        }
                    }
                    (gd, wd) => {
                        assert_eq!(gd, wd, "`{gn}`");
                        stats.0 += gd.len();
                        stats.1 += gd.len();
                        stats.2 += gd.len();
                    }
                }
            }
        }
    }
    stats
}

#[test]
fn random_graphs_match_the_interpreter() {
    let (mut total, mut exact, mut finite) = (0, 0, 0);
    let mut without_matmul = 0;
    for seed in 0..200 {
        let b = random_graph(seed, 10 + (seed as usize % 40), false);
        let (t, e, f) = check(&b);
        let matmul =
            b.g.node_ids()
                .into_iter()
                .any(|n| matches!(b.g.node(n).op, Op::MatMul));
        if !matmul {
            // Only matrix products round differently: without one, every element
            // agrees bit for bit (up to the sign of zero).
            assert_eq!(e, t, "seed {seed}: {e} of {t} agree bit for bit");
            without_matmul += 1;
        }
        total += t;
        exact += e;
        finite += f;
    }
    println!("{total} elements compared, {finite} finite, {exact} bit for bit");
    assert!(total > 10_000, "only {total} elements compared");
    assert!(
        finite * 2 > total,
        "only {finite} of {total} elements are finite"
    );
    assert!(
        without_matmul >= 20,
        "only {without_matmul} graphs without a matmul"
    );
    assert!(
        exact * 10 > total * 8,
        "{exact} of {total} agree bit for bit"
    );
}

#[test]
fn mlp_forward_pass() {
    let mut rng = Rng(7);
    let mut b = Builder::new("mlp");
    let x = b.input(&mut rng, "x", &[8, 13]);
    let mut h = x;
    for (l, (k, n)) in [(13, 32), (32, 17), (17, 3)].into_iter().enumerate() {
        let w = b.state(&mut rng, &format!("w{l}"), &[k, n]);
        let bias = b.state(&mut rng, &format!("b{l}"), &[n]);
        let z = b.op(Op::MatMul, &[h, w]);
        let bb = b.op(Op::Broadcast(vec![8, n]), &[bias]);
        let z = b.op(Op::Binary(BinaryOp::Add), &[z, bb]);
        h = if l < 2 {
            let zero = b.splat(0.0, &[8, n]);
            b.op(Op::Binary(BinaryOp::Max), &[z, zero])
        } else {
            z
        };
    }
    let sq = b.op(Op::Binary(BinaryOp::Mul), &[h, h]);
    let loss = b.op(
        Op::Reduce {
            kind: ReduceKind::Sum,
            axes: vec![0, 1],
            keepdims: false,
        },
        &[sq],
    );
    // Elementwise on scalars, with a constant read from its buffer.
    let half = b.op(
        Op::Const {
            value: 0.5,
            dtype: DType::F32,
        },
        &[],
    );
    let loss = b.op(Op::Binary(BinaryOp::Mul), &[loss, half]);
    b.g.set_output("logits", h);
    b.g.set_output("loss", loss);
    check(&b);
}

/// A chain of elementwise ops (with scalar broadcasts) compiles to one loop.
#[test]
fn fused_chain_is_one_loop() {
    for (n, helpers) in [(37, false), (37, true), (4, false), (3, false), (1, true)] {
        let mut rng = Rng(n as u64);
        let mut b = Builder::new("chain");
        let x = b.input(&mut rng, "x", &[n]);
        let y = b.input(&mut rng, "y", &[n]);
        let two = b.splat(2.0, &[n]);
        let t = b.op(Op::Binary(BinaryOp::Mul), &[x, two]);
        let t = b.op(Op::Binary(BinaryOp::Sub), &[t, y]);
        let t = b.op(Op::Unary(UnaryOp::Abs), &[t]);
        let t = b.op(Op::Unary(UnaryOp::Sqrt), &[t]);
        let half = b.splat(0.5, &[n]);
        let t = b.op(Op::Binary(BinaryOp::Max), &[t, half]);
        let t = b.op(Op::Binary(BinaryOp::Div), &[y, t]);
        let t = b.op(Op::Binary(BinaryOp::Rem), &[t, x]);
        let t = if helpers {
            let t = b.op(Op::Unary(UnaryOp::Tanh), &[t]);
            let t = b.op(Op::Unary(UnaryOp::Erf), &[t]);
            b.op(Op::Binary(BinaryOp::Pow), &[x, t])
        } else {
            let t = b.op(Op::Unary(UnaryOp::Rsqrt), &[t]);
            b.op(Op::Unary(UnaryOp::Floor), &[t])
        };
        let t = b.op(Op::Binary(BinaryOp::Min), &[t, x]);
        b.g.set_output("out", t);
        let c = dnnc_codegen::compile(&b.g).unwrap();
        assert_eq!(c.loop_count(), 1, "n = {n}");
        assert_eq!(c.step_count(), 1, "n = {n}");
        check(&b);
    }
}

/// A loop evaluating `exp`, `tanh` and `erf` computes whole vectors, then single
/// elements: every length around those boundaries (with a second value stored on the
/// way) is bit for bit the interpreter's.
#[test]
fn math_loops_match_the_interpreter_at_every_length() {
    for n in (0..=40).chain([63, 64, 65, 79, 80, 81, 1000]) {
        let mut rng = Rng(n as u64 + 7);
        let mut b = Builder::new("math");
        let x = b.input(&mut rng, "x", &[n]);
        let e = b.op(Op::Unary(UnaryOp::Exp), &[x]);
        let t = b.op(Op::Unary(UnaryOp::Tanh), &[e]);
        let u = b.op(Op::Unary(UnaryOp::Erf), &[x]);
        let s = b.op(Op::Binary(BinaryOp::Add), &[t, u]);
        b.g.set_output("stored", e);
        b.g.set_output("out", s);
        let (compared, exact, _) = check(&b);
        assert_eq!(compared, exact, "n = {n}: not bit for bit");
    }
}

/// A value with two users, both in one loop, is fused away; an output with one user is
/// computed in its user's loop and stored on the way.
#[test]
fn shared_values_are_materialised() {
    let mut rng = Rng(3);
    let mut b = Builder::new("shared");
    let x = b.input(&mut rng, "x", &[10]);
    let e = b.op(Op::Unary(UnaryOp::Exp), &[x]);
    let n = b.op(Op::Unary(UnaryOp::Neg), &[e]);
    let s = b.op(Op::Binary(BinaryOp::Add), &[e, n]);
    let m = b.op(Op::Binary(BinaryOp::Mul), &[s, s]);
    b.g.set_output("m", m);
    b.g.set_output("n", n);
    let c = dnnc_codegen::compile(&b.g).unwrap();
    // exp (two users in the loop) + neg (an output, stored on the way) + add + mul.
    assert_eq!(c.loop_count(), 1);
    check(&b);
}

/// A value read by a later step too is computed in its first user's loop and stored on
/// the way (a pre-activation the backward pass reads); one read before that loop keeps
/// its own.
#[test]
fn values_read_later_are_stored_on_the_way() {
    let mut rng = Rng(4);
    let mut b = Builder::new("later");
    let x = b.input(&mut rng, "x", &[37]);
    let y = b.input(&mut rng, "y", &[37]);
    let s = b.op(Op::Binary(BinaryOp::Add), &[x, y]);
    let e = b.op(Op::Unary(UnaryOp::Exp), &[s]);
    let r = b.op(
        Op::Reduce {
            kind: ReduceKind::Sum,
            axes: vec![0],
            keepdims: false,
        },
        &[e],
    );
    let m = b.op(Op::Binary(BinaryOp::Mul), &[s, e]);
    b.g.set_output("r", r);
    b.g.set_output("m", m);
    let c = dnnc_codegen::compile(&b.g).unwrap();
    // add + exp (`s` stored for the mul, `e` the root read by the reduction) | mul.
    assert_eq!(c.loop_count(), 2);
    check(&b);
}

/// Max pooling's gradient: one comparison routes through two selects (computed in both
/// of their loops), and the sum of one zero padding per window offset, which tiles the
/// result, runs as one concat. Paddings that overlap, leave a gap or pad with another
/// value are still added.
#[test]
fn pooling_gradients_route_and_tile() {
    let mut rng = Rng(5);
    let mut b = Builder::new("pool_grad");
    let x = b.input(&mut rng, "x", &[2, 3, 1, 5, 1]);
    let y = b.input(&mut rng, "y", &[2, 3, 1, 5, 1]);
    let dy = b.input(&mut rng, "dy", &[2, 3, 1, 5, 1]);
    let c = b.op(Op::Binary(BinaryOp::Gt), &[x, y]);
    let z = b.splat(0.0, &[2, 3, 1, 5, 1]);
    let dx = b.op(Op::Select, &[c, dy, z]);
    let dz = b.op(Op::Select, &[c, z, dy]);
    let parts = [(dx, 0, 0), (dz, 0, 1), (x, 1, 0), (y, 1, 1)];
    let pad = |b: &mut Builder, v: NodeId, i: usize, j: usize, value: f64| {
        let op = Op::Pad {
            lo: vec![0, 0, i, 0, j],
            hi: vec![0, 0, 1 - i, 0, 1 - j],
            value,
        };
        b.op(op, &[v])
    };
    let sum = |b: &mut Builder, ps: &[NodeId]| {
        ps[1..]
            .iter()
            .fold(ps[0], |acc, &p| b.op(Op::Binary(BinaryOp::Add), &[acc, p]))
    };
    let tiles: Vec<NodeId> = parts
        .iter()
        .map(|&(v, i, j)| pad(&mut b, v, i, j, 0.0))
        .collect();
    let tiled = sum(&mut b, &tiles);
    b.g.set_output("tiled", tiled);
    // Two paddings at one offset (overlap) and none at another (gap).
    let over: Vec<NodeId> = [(dx, 0, 0), (dz, 0, 0), (x, 1, 0), (y, 1, 1)]
        .iter()
        .map(|&(v, i, j)| pad(&mut b, v, i, j, 0.0))
        .collect();
    let over = sum(&mut b, &over);
    b.g.set_output("overlap", over);
    let ones: Vec<NodeId> = parts
        .iter()
        .map(|&(v, i, j)| pad(&mut b, v, i, j, 1.0))
        .collect();
    let ones = sum(&mut b, &ones);
    b.g.set_output("ones", ones);
    let c = dnnc_codegen::compile(&b.g).unwrap();
    let text = c.schedule_text();
    assert_eq!(text.matches(" = concat ").count(), 1, "{text}");
    assert_eq!(text.matches(" = select ").count(), 0, "{text}");
    check(&b);
}

#[test]
fn nan_propagates_through_max_and_min() {
    let mut b = Builder::new("nan");
    let x =
        b.g.add(
            Op::Input {
                name: "x".into(),
                dtype: DType::F32,
                shape: vec![6],
            },
            &[],
        )
        .unwrap();
    let zero = b.splat(0.0, &[6]);
    let mx = b.op(Op::Binary(BinaryOp::Max), &[x, zero]);
    let mn = b.op(Op::Binary(BinaryOp::Min), &[zero, x]);
    b.g.set_output("max", mx);
    b.g.set_output("min", mn);
    let v = vec![
        f32::NAN,
        -1.0,
        2.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    b.inputs
        .insert("x".into(), Tensor::f32(vec![6], v).unwrap());
    check(&b);
    let (outs, _) = dnnc_codegen::compile(&b.g)
        .unwrap()
        .run(&b.inputs, &b.states)
        .unwrap();
    let mx = outs[0].1.as_f32().unwrap();
    assert!(mx[0].is_nan() && mx[5].is_nan() && mx[1] == 0.0 && mx[3].is_infinite());
}

fn ints(dtype: DType, shape: &[usize], v: Vec<i64>) -> Tensor {
    Tensor::new(dtype, shape.to_vec(), Data::from_i64(dtype, v)).unwrap()
}

/// Integer, `bool` and mixed-dtype ops, data movement and random draws.
#[test]
fn mixed_dtype_ops_match_the_interpreter() {
    let mut rng = Rng(1);
    let mut b = Builder::new("mixed");
    let x = b.input(&mut rng, "x", &[3, 4]);
    let y = b.input(&mut rng, "y", &[3, 4]);
    let i = b.typed_input(
        "i",
        ints(DType::I64, &[3, 4], (0..12).map(|k| k * 7 - 40).collect()),
    );
    let u = b.typed_input(
        "u",
        ints(
            DType::U8,
            &[3, 4],
            (0..12).map(|k| (k * 37) % 255 + 1).collect(),
        ),
    );
    let idx = b.typed_input("idx", ints(DType::I64, &[5], vec![2, 0, 1, 1, 2]));
    let key = b.typed_input("key", ints(DType::I64, &[], vec![-12345]));
    let mut outs: Vec<(String, NodeId)> = Vec::new();
    for op in BinaryOp::ALL {
        if op.is_logical() {
            continue;
        }
        outs.push((format!("f_{}", op.name()), b.op(Op::Binary(op), &[x, y])));
    }
    let three = b.konst(3.0, DType::I64, &[3, 4]);
    let seven_u8 = b.konst(7.0, DType::U8, &[3, 4]);
    for op in BinaryOp::ALL {
        if op.is_logical() {
            continue;
        }
        outs.push((
            format!("i_{}", op.name()),
            b.op(Op::Binary(op), &[i, three]),
        ));
        let rhs = if op == BinaryOp::Pow { seven_u8 } else { u };
        outs.push((format!("u_{}", op.name()), b.op(Op::Binary(op), &[u, rhs])));
    }
    for un in [UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Sign] {
        outs.push((format!("i_{}", un.name()), b.op(Op::Unary(un), &[i])));
        outs.push((format!("u_{}", un.name()), b.op(Op::Unary(un), &[u])));
    }
    let lt = b.op(Op::Binary(BinaryOp::Lt), &[x, y]);
    let ib = b.op(Op::Cast(DType::Bool), &[i]);
    for op in BinaryOp::ALL {
        if op.is_comparison() || op.is_logical() {
            outs.push((format!("b_{}", op.name()), b.op(Op::Binary(op), &[lt, ib])));
        }
    }
    outs.push(("not".into(), b.op(Op::Unary(UnaryOp::Not), &[lt])));
    outs.push(("sel_f".into(), b.op(Op::Select, &[lt, x, y])));
    outs.push(("sel_i".into(), b.op(Op::Select, &[lt, i, three])));
    outs.push(("sel_b".into(), b.op(Op::Select, &[lt, lt, ib])));
    let scaled = {
        let k = b.splat(50.0, &[3, 4]);
        b.op(Op::Binary(BinaryOp::Mul), &[x, k])
    };
    for (src, name) in [(scaled, "f"), (i, "i"), (u, "u"), (lt, "b")] {
        for to in [DType::F32, DType::I64, DType::I32, DType::U8, DType::Bool] {
            outs.push((
                format!("cast_{name}_{}", to.name()),
                b.op(Op::Cast(to), &[src]),
            ));
        }
    }
    for (src, name) in [(x, "f"), (i, "i"), (u, "u"), (lt, "b")] {
        for kind in [ReduceKind::Sum, ReduceKind::Max, ReduceKind::Min] {
            if name == "b" && kind == ReduceKind::Sum {
                continue;
            }
            for axes in [vec![0], vec![1], vec![0, 1]] {
                let r = b.op(
                    Op::Reduce {
                        kind,
                        axes: axes.clone(),
                        keepdims: false,
                    },
                    &[src],
                );
                outs.push((format!("red_{name}_{kind:?}_{axes:?}"), r));
            }
        }
        for axis in [0, 1] {
            outs.push((
                format!("argmax_{name}_{axis}"),
                b.op(Op::ArgMax { axis }, &[src]),
            ));
            outs.push((
                format!("argmin_{name}_{axis}"),
                b.op(Op::ArgMin { axis }, &[src]),
            ));
        }
        let sl = Op::Slice {
            starts: vec![1, 0],
            ends: vec![3, 4],
            steps: vec![1, 2],
        };
        outs.push((format!("slice_{name}"), b.op(sl, &[src])));
        outs.push((
            format!("concat_{name}"),
            b.op(Op::Concat { axis: 1 }, &[src, src, src]),
        ));
        let pad = Op::Pad {
            lo: vec![1, 0],
            hi: vec![0, 2],
            value: 1.0,
        };
        outs.push((format!("pad_{name}"), b.op(pad, &[src])));
        outs.push((
            format!("transpose_{name}"),
            b.op(Op::Transpose(vec![1, 0]), &[src]),
        ));
        outs.push((
            format!("gather_{name}"),
            b.op(Op::Gather { axis: 0 }, &[src, idx]),
        ));
        if name != "b" {
            let g1 = b.op(Op::Gather { axis: 1 }, &[src, idx]);
            let sc = Op::ScatterAdd {
                axis: 1,
                shape: vec![3, 4],
            };
            outs.push((format!("scatter_{name}"), b.op(sc, &[g1, idx])));
        }
        let bc = b.op(Op::Reshape(vec![3, 1, 4]), &[src]);
        outs.push((
            format!("broadcast_{name}"),
            b.op(Op::Broadcast(vec![2, 3, 5, 4]), &[bc]),
        ));
    }
    for (dtype, axis) in [(DType::I64, 0), (DType::F32, 1), (DType::U8, 1)] {
        let io = Op::Iota {
            dtype,
            shape: vec![3, 4],
            axis,
        };
        outs.push((format!("iota_{dtype}_{axis}"), b.op(io, &[])));
    }
    let p = b.op(
        Op::Unary(UnaryOp::Sign),
        &[x], // values in {-1, 0, 1}: p < 0 never fires, p = 1 always does.
    );
    let half = b.splat(0.5, &[3, 4]);
    let p2 = b.op(Op::Binary(BinaryOp::Mul), &[x, half]);
    for (salt, p) in [(1, p), (2, p2)] {
        let r = Op::Random {
            dist: Dist::Bernoulli,
            shape: vec![3, 4],
            salt,
        };
        outs.push((format!("bern_{salt}"), b.op(r, &[key, p])));
    }
    let uni = Op::Random {
        dist: Dist::Uniform {
            low: -0.3,
            high: 2.1,
        },
        shape: vec![257],
        salt: 7,
    };
    outs.push(("uniform".into(), b.op(uni, &[key])));
    let nor = Op::Random {
        dist: Dist::Normal {
            mean: 0.5,
            std: 1.7,
        },
        shape: vec![5, 51],
        salt: 8,
    };
    outs.push(("normal".into(), b.op(nor, &[key])));
    for (name, id) in outs {
        b.g.set_output(name, id);
    }
    let (n, exact, _) = check(&b);
    assert_eq!(n, exact, "every element bit for bit");
    // Another key draws other numbers, still the interpreter's.
    b.inputs
        .insert("key".into(), ints(DType::I64, &[], vec![i64::MAX]));
    check(&b);
}

#[test]
fn runtime_errors_of_integer_ops() {
    let mut b = Builder::new("div");
    let x = b.typed_input("x", ints(DType::I64, &[3], vec![1, 2, 3]));
    let y = b.typed_input("y", ints(DType::I64, &[3], vec![1, 0, 3]));
    let i = b.typed_input("i", ints(DType::I64, &[2], vec![0, 5]));
    let d = b.op(Op::Binary(BinaryOp::Div), &[x, y]);
    let g = b.op(Op::Gather { axis: 0 }, &[x, i]);
    b.g.set_output("d", d);
    b.g.set_output("g", g);
    let mut c = dnnc_codegen::compile(&b.g).unwrap();
    let e = c.run(&b.inputs, &b.states).err().unwrap();
    assert!(
        matches!(&e, ExecError::Kernel(m) if m.contains("division by zero")),
        "{e:?}"
    );
    b.inputs
        .insert("y".into(), ints(DType::I64, &[3], vec![1, 1, 1]));
    let e = c.run(&b.inputs, &b.states).err().unwrap();
    assert!(
        matches!(&e, ExecError::Kernel(m) if m.contains("index 5 is out of range")),
        "{e:?}"
    );
    // Inputs must be stored in their own element type, as the interpreter requires.
    let mut b = Builder::new("u8");
    let x = b.typed_input("x", ints(DType::U8, &[1], vec![44]));
    b.inputs.insert(
        "x".into(),
        Tensor {
            dtype: DType::U8,
            shape: vec![1],
            data: Data::I64(vec![300]),
        },
    );
    b.g.set_output("x", x);
    let e = dnnc_codegen::compile(&b.g)
        .unwrap()
        .run(&b.inputs, &b.states)
        .err()
        .unwrap();
    assert!(
        matches!(&e, ExecError::Feed { what: "input", name, .. } if name == "x"),
        "{e:?}"
    );
}

#[test]
fn bad_inputs_are_errors() {
    let mut rng = Rng(2);
    let mut b = Builder::new("id");
    let x = b.input(&mut rng, "x", &[2, 2]);
    let n = b.op(Op::Unary(UnaryOp::Neg), &[x]);
    b.g.set_output("n", n);
    let mut c = dnnc_codegen::compile(&b.g).unwrap();
    let e = c.run(&HashMap::new(), &HashMap::new()).err().unwrap();
    assert_eq!(e.to_string(), "input `x` is missing");
    let mut wrong = HashMap::new();
    wrong.insert("x".to_string(), rng.tensor(&[4]));
    let e = c.run(&wrong, &HashMap::new()).err().unwrap();
    assert!(
        matches!(&e, ExecError::Feed { what: "input", name, why } if name == "x" && why.contains("should be f32[2, 2]")),
        "{e:?}"
    );
}

/// Prints how long compiling 50-node graphs takes (run with `--nocapture`).
#[test]
fn compile_time_of_a_50_node_graph() {
    let (mut times, mut steps, mut loops) = (Vec::new(), 0, 0);
    for seed in 1000..1010 {
        let b = random_graph(seed, 50, false);
        let t = Instant::now();
        let c = dnnc_codegen::compile(&b.g).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(c.step_count() <= b.g.len());
        steps += c.step_count();
        loops += c.loop_count();
    }
    println!("50-node graphs: {steps} steps in all, {loops} of them JIT loops");
    times.sort_by(f64::total_cmp);
    // Every value an output: nothing is dead and nothing fuses, one step per node.
    let mut unfused = Vec::new();
    for seed in 1000..1010 {
        let mut b = random_graph(seed, 50, false);
        for id in b.g.node_ids() {
            b.g.set_output(format!("v{}", id.raw()), id);
        }
        let t = Instant::now();
        let c = dnnc_codegen::compile(&b.g).unwrap();
        unfused.push(t.elapsed().as_secs_f64() * 1e3);
        check(&b);
        println!(
            "  {} nodes: {} steps, {} loops",
            b.g.len(),
            c.step_count(),
            c.loop_count()
        );
    }
    unfused.sort_by(f64::total_cmp);
    println!(
        "compile of 50-node graphs, every node live: median {:.2} ms, max {:.2} ms",
        unfused[unfused.len() / 2],
        unfused[unfused.len() - 1]
    );
    println!(
        "compile of 50-node graphs: median {:.2} ms, min {:.2} ms, max {:.2} ms",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}

/// `patches` and `fold` (with padding, strides and dilation; large enough for several
/// threads, and on integers and `bool`s), and reductions over axes that are not
/// consecutive.
#[test]
fn windows_and_strided_reductions_match_the_interpreter() {
    dnnc_kernels::pool::set_threads(2);
    let windows = [
        ([5, 5], 1, 1, [0, 0, 0, 0], [2, 3, 12, 12]),
        ([3, 3], 2, 1, [1, 1, 1, 1], [2, 2, 7, 8]),
        ([2, 3], 3, 2, [2, 0, 1, 2], [1, 3, 9, 6]),
        ([3, 3], 1, 1, [1, 1, 1, 1], [16, 8, 20, 20]),
        ([3, 2], 1, 1, [0, 0, 0, 0], [2, 2, 5, 6]),
        ([2, 2], 1, 1, [0, 1, 0, 0], [1, 1, 4, 14]),
    ];
    for (i, (k, stride, dilation, pad, shape)) in windows.into_iter().enumerate() {
        let mut rng = Rng(40 + i as u64);
        let mut b = Builder::new("windows");
        let x = b.input(&mut rng, "x", &shape);
        let win = Window2d {
            kh: k[0],
            kw: k[1],
            stride,
            dilation,
            pad_h: (pad[0], pad[1]),
            pad_w: (pad[2], pad[3]),
        };
        let p = b.op(Op::Patches(win), &[x]);
        let sq = b.op(Op::Binary(BinaryOp::Mul), &[p, p]);
        let f = b.op(
            Op::Fold {
                win,
                shape: shape.to_vec(),
            },
            &[sq],
        );
        b.g.set_output("fold", f);
        let ten = b.splat(10.0, &shape);
        let x10 = b.op(Op::Binary(BinaryOp::Mul), &[x, ten]);
        let xi = b.op(Op::Cast(DType::I64), &[x10]);
        // Windows of other element types are moved as they are; `fold` (a sum of
        // columns, the gradient of a convolution) is `f32` only.
        let pi = b.op(Op::Patches(win), &[xi]);
        b.g.set_output("patches_i64", pi);
        let zero = b.splat(0.0, &shape);
        let xb = b.op(Op::Binary(BinaryOp::Gt), &[x, zero]);
        let pb = b.op(Op::Patches(win), &[xb]);
        b.g.set_output("patches_bool", pb);
        for (j, (kind, axes)) in [
            (ReduceKind::Sum, vec![0, 2, 3]),
            (ReduceKind::Max, vec![1, 3]),
            (ReduceKind::Min, vec![0, 2]),
            (ReduceKind::Sum, vec![0, 3]),
        ]
        .into_iter()
        .enumerate()
        {
            let r = b.op(
                Op::Reduce {
                    kind,
                    axes,
                    keepdims: j % 2 == 0,
                },
                &[f],
            );
            b.g.set_output(format!("r{j}"), r);
        }
        check(&b);
    }
}

/// A chain of 1200 layers whose activations are also read at the end: over 2048
/// temporaries, so the arena is planned by the linear scan with a free list (large
/// graphs) rather than largest-first packing; the results must not change.
#[test]
fn thousands_of_temporaries_are_planned_by_the_scan() {
    let mut rng = Rng(7);
    let mut b = Builder::new("deep");
    let mut x = b.input(&mut rng, "x", &[4, 8]);
    let mut acts = Vec::new();
    for i in 0..1200 {
        let w = b.state(&mut rng, &format!("w{i}"), &[8, 8]);
        let m = b.op(Op::MatMul, &[x, w]);
        // Contracting, so that rounding differences of the products do not grow
        // through 1200 layers.
        let k = b.splat(0.1, &[4, 8]);
        let m = b.op(Op::Binary(BinaryOp::Mul), &[m, k]);
        x = b.op(Op::Unary(UnaryOp::Tanh), &[m]);
        acts.push(x);
    }
    let mut acc = x;
    for &a in acts.iter().rev().step_by(7) {
        acc = b.op(Op::Binary(BinaryOp::Add), &[acc, a]);
    }
    b.g.set_output("y", acc);
    let (n, _, finite) = check(&b);
    assert_eq!((n, finite), (2 * 32, 2 * 32));
}
