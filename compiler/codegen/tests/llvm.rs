//! The LLVM backend against the reference interpreter and against Cranelift: random
//! graphs, hand-written ones (NaNs, in-place updates, every op) and every example's
//! train, eval and predict graphs.
#![cfg(feature = "llvm")]

mod support;

use std::collections::HashMap;
use std::path::Path;

use dnnc_ir::{BinaryOp, Graph, Op, UnaryOp};
use dnnc_tensor::Tensor;
use support::{agree, close, example_graphs, feeds, random_graph, same, Builder, Rng};

/// Runs `g` compiled by LLVM (twice: a compiled graph is reusable) and checks it
/// against the interpreter (within the stated tolerance) and against Cranelift (bit
/// for bit: the same schedule, kernels and elementwise semantics). Returns how many
/// `f32` elements were compared with the interpreter and how many agreed bit for bit.
fn check_graph(
    what: &str,
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    states: &HashMap<String, Tensor>,
) -> (usize, usize) {
    let want = dnnc_interp::run(g, inputs, states).unwrap_or_else(|e| panic!("{what}: {e}"));
    let want = (want.outputs, want.updates);
    let mut c = dnnc_codegen::compile_llvm(g).unwrap_or_else(|e| panic!("{what}: {e}"));
    let cl = dnnc_codegen::compile(g)
        .unwrap()
        .run(inputs, states)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut stats = (0, 0);
    for _ in 0..2 {
        let got = c
            .run(inputs, states)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let (n, e) = agree(what, &got, &want, close);
        agree(&format!("{what} (against cranelift)"), &got, &cl, same);
        stats = (stats.0 + n, stats.1 + e);
    }
    stats
}

fn check(b: &Builder) -> (usize, usize) {
    check_graph(&b.g.name.clone(), &b.g, &b.inputs, &b.states)
}

fn has_matmul(g: &Graph) -> bool {
    g.node_ids()
        .into_iter()
        .any(|n| matches!(g.node(n).op, Op::MatMul))
}

#[test]
fn random_graphs_match_the_interpreter_and_cranelift() {
    let (mut total, mut exact, mut without_matmul) = (0, 0, 0);
    for seed in 0..200 {
        // Every other graph over larger tensors, so that whole vectors are computed.
        let b = random_graph(seed, 10 + (seed as usize % 40), seed % 2 == 1);
        let (t, e) = check(&b);
        if !has_matmul(&b.g) {
            // Only matrix products round differently.
            assert_eq!(e, t, "seed {seed}: {e} of {t} agree bit for bit");
            without_matmul += 1;
        }
        total += t;
        exact += e;
    }
    println!("{total} elements compared, {exact} bit for bit");
    assert!(total > 50_000, "only {total} elements compared");
    assert!(
        without_matmul >= 20,
        "only {without_matmul} graphs without a matmul"
    );
    assert!(
        exact * 10 > total * 8,
        "{exact} of {total} agree bit for bit"
    );
}

/// A chain of every kind of elementwise op, at lengths around the vector width and
/// over the threshold where loops split across threads.
#[test]
fn fused_chains_at_many_lengths() {
    for n in [1, 3, 15, 16, 17, 37, 64, 1000, 40_007] {
        for helpers in [false, true] {
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
                let t = b.op(Op::Binary(BinaryOp::Pow), &[x, t]);
                let t = b.op(Op::Unary(UnaryOp::Exp), &[t]);
                b.op(Op::Unary(UnaryOp::Sin), &[t])
            } else {
                let t = b.op(Op::Unary(UnaryOp::Rsqrt), &[t]);
                let t = b.op(Op::Unary(UnaryOp::Sign), &[t]);
                let t = b.op(Op::Unary(UnaryOp::Neg), &[t]);
                b.op(Op::Unary(UnaryOp::Ceil), &[t])
            };
            let t = b.op(Op::Binary(BinaryOp::Min), &[t, x]);
            b.g.set_output("out", t);
            let c = dnnc_codegen::compile_llvm(&b.g).unwrap();
            assert_eq!(c.loop_count(), 1, "n = {n}");
            let (t, e) = check(&b);
            assert_eq!(t, e, "n = {n}: bit for bit");
        }
    }
}

/// NaNs, infinities and signed zeros through max, min, sign, comparisons and selects,
/// in the vector loop and in the tail.
#[test]
fn special_values() {
    let specials = [
        f32::NAN,
        -1.0,
        2.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        1e-40,
        -3.5,
    ];
    let n = 40;
    let mut b = Builder::new("special");
    let mut rng = Rng(9);
    let x = b.input(&mut rng, "x", &[n]);
    let y = b.input(&mut rng, "y", &[n]);
    let vx: Vec<f32> = (0..n).map(|i| specials[i % specials.len()]).collect();
    let vy: Vec<f32> = (0..n).map(|i| specials[(i / 3) % specials.len()]).collect();
    b.inputs
        .insert("x".into(), Tensor::f32(vec![n], vx).unwrap());
    b.inputs
        .insert("y".into(), Tensor::f32(vec![n], vy).unwrap());
    let zero = b.splat(0.0, &[n]);
    let mut outs = Vec::new();
    for op in [
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Rem,
        BinaryOp::Pow,
        BinaryOp::Div,
    ] {
        outs.push(b.op(Op::Binary(op), &[x, y]));
    }
    outs.push(b.op(Op::Binary(BinaryOp::Max), &[x, zero]));
    outs.push(b.op(Op::Unary(UnaryOp::Sign), &[x]));
    outs.push(b.op(Op::Unary(UnaryOp::Rsqrt), &[x]));
    outs.push(b.op(Op::Unary(UnaryOp::Log), &[x]));
    for cmp in BinaryOp::COMPARISONS {
        let c = b.op(Op::Binary(cmp), &[x, y]);
        outs.push(b.op(Op::Select, &[c, x, zero]));
    }
    for (i, o) in outs.into_iter().enumerate() {
        b.g.set_output(format!("o{i}"), o);
    }
    let (t, e) = check(&b);
    assert_eq!(t, e, "bit for bit");
}

/// Adam-like moments stored on the way and updated in place over the leaves they read.
#[test]
fn in_place_updates() {
    for n in [5, 33, 50_000] {
        let mut rng = Rng(n as u64);
        let mut b = Builder::new("adam");
        let g = b.input(&mut rng, "g", &[n]);
        let m = b.state(&mut rng, "m", &[n]);
        let v = b.state(&mut rng, "v", &[n]);
        let p = b.state(&mut rng, "p", &[n]);
        let (b1, b1c) = (b.splat(0.9, &[n]), b.splat(0.1, &[n]));
        let (b2, b2c) = (b.splat(0.999, &[n]), b.splat(0.001, &[n]));
        let t = b.op(Op::Binary(BinaryOp::Mul), &[m, b1]);
        let u = b.op(Op::Binary(BinaryOp::Mul), &[g, b1c]);
        let m2 = b.op(Op::Binary(BinaryOp::Add), &[t, u]);
        let t = b.op(Op::Binary(BinaryOp::Mul), &[v, b2]);
        let gg = b.op(Op::Binary(BinaryOp::Mul), &[g, g]);
        let u = b.op(Op::Binary(BinaryOp::Mul), &[gg, b2c]);
        let v2 = b.op(Op::Binary(BinaryOp::Add), &[t, u]);
        let s = b.op(Op::Unary(UnaryOp::Sqrt), &[v2]);
        let eps = b.splat(1e-8, &[n]);
        let s = b.op(Op::Binary(BinaryOp::Add), &[s, eps]);
        let step = b.op(Op::Binary(BinaryOp::Div), &[m2, s]);
        let lr = b.splat(1e-3, &[n]);
        let step = b.op(Op::Binary(BinaryOp::Mul), &[step, lr]);
        let p2 = b.op(Op::Binary(BinaryOp::Sub), &[p, step]);
        b.g.add_update("m", m2);
        b.g.add_update("v", v2);
        b.g.add_update("p", p2);
        let c = dnnc_codegen::compile_llvm(&b.g).unwrap();
        assert_eq!(c.loop_count(), 1, "one loop stores all three");
        let (t, e) = check(&b);
        assert_eq!(t, e, "bit for bit");
    }
}

/// The loops are written over 512-bit vectors, for the host's CPU.
#[test]
fn loops_use_512_bit_vectors() {
    let mut rng = Rng(1);
    let mut b = Builder::new("add");
    let x = b.input(&mut rng, "x", &[100]);
    let y = b.input(&mut rng, "y", &[100]);
    let s = b.op(Op::Binary(BinaryOp::Add), &[x, y]);
    b.g.set_output("s", s);
    let ir = dnnc_codegen::llvm_ir(&b.g).unwrap();
    assert!(ir.contains("fadd <16 x float>"), "{ir}");
    assert!(ir.contains("\"target-cpu\""), "{ir}");
    assert!(ir.contains("\"prefer-vector-width\"=\"512\""), "{ir}");
}

/// Every example's train, eval and predict graphs.
#[test]
fn every_example() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dnn"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "examples: {files:?}");
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        // Deep models (the Transformer's four layers with layer norms) amplify the
        // products' rounding of all-positive random weights beyond the tolerance:
        // they get small weights centred on zero, as trained ones are.
        let deep = file.starts_with("shakespeare");
        for (what, g) in example_graphs(&file, 4) {
            let mut rng = Rng(7);
            for _ in 0..2 {
                let (inputs, states) = if deep {
                    feeds(&g, &mut rng, |r| (r.f32() - 0.5) / 4.0)
                } else {
                    feeds(&g, &mut rng, |r| r.f32() / 2.0)
                };
                let (n, e) = check_graph(&what, &g, &inputs, &states);
                println!("{what}: {e} of {n} f32 elements bit for bit");
            }
        }
    }
}
