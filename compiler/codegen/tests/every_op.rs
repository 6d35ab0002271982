//! Every op kind × every element type its shape rule accepts × every engine, on edge
//! values (NaN, ±0, ±infinity, subnormals, the integer extremes): the reference
//! interpreter, constant folding, Cranelift and (with the `llvm` feature) LLVM must
//! agree bit for bit (matrix products within the stated tolerance: they use fused
//! multiply-add). The cases come from `dnnc_testing::instances`, which matches
//! `OpKind` without a wildcard, so a new op is covered as soon as it compiles.

use std::collections::{BTreeMap, HashMap};

use dnnc_ir::{verify, BinaryOp, DType, Graph, Op, OpKind};
use dnnc_tensor::Tensor;
use dnnc_testing::instances::{instance, Feed};
use dnnc_testing::tolerance::{agree, close, identical, Results};
use dnnc_testing::values::edges;
use dnnc_testing::Rng;

type Engine =
    fn(&Graph, &HashMap<String, Tensor>, &HashMap<String, Tensor>) -> Result<Results, String>;

fn interpreter(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    states: &HashMap<String, Tensor>,
) -> Result<Results, String> {
    let r = dnnc_interp::run(g, inputs, states).map_err(|e| e.to_string())?;
    Ok((r.outputs, r.updates))
}

fn cranelift(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    states: &HashMap<String, Tensor>,
) -> Result<Results, String> {
    let mut c = dnnc_codegen::compile(g).map_err(|e| e.to_string())?;
    c.run(inputs, states).map_err(|e| e.to_string())
}

#[cfg(feature = "llvm")]
fn llvm(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    states: &HashMap<String, Tensor>,
) -> Result<Results, String> {
    let mut c = dnnc_codegen::compile_llvm(g).map_err(|e| e.to_string())?;
    c.run(inputs, states).map_err(|e| e.to_string())
}

fn compiled_engines() -> Vec<(&'static str, Engine)> {
    #[allow(unused_mut)]
    let mut v: Vec<(&'static str, Engine)> = vec![("cranelift", cranelift)];
    #[cfg(feature = "llvm")]
    v.push(("llvm", llvm));
    v
}

/// The element types each kind accepts, as the test found them.
type Accepted = BTreeMap<OpKind, Vec<DType>>;

#[test]
fn every_op_and_type_agrees_on_every_engine() {
    let mut accepted = Accepted::new();
    let mut failures = Vec::new();
    let mut elements = 0;
    for kind in OpKind::all() {
        for dtype in DType::ALL {
            for seed in 0..2 {
                let mut rng = Rng(seed * 7919 + 1);
                let Some(b) = instance(kind, dtype, Feed::Edges(&mut rng)) else {
                    continue;
                };
                if seed == 0 {
                    accepted.entry(kind).or_default().push(dtype);
                }
                let what = format!("{kind} on {dtype} (seed {seed})");
                verify(&b.g).unwrap_or_else(|e| panic!("{what}: {e:?}"));
                let want = interpreter(&b.g, &b.inputs, &b.states)
                    .unwrap_or_else(|e| panic!("{what}: the interpreter fails: {e}"));
                elements += want.0.iter().map(|(_, t)| t.len()).sum::<usize>();
                for (engine, run) in compiled_engines() {
                    let got = match run(&b.g, &b.inputs, &b.states) {
                        Ok(got) => got,
                        Err(e) => {
                            failures.push(format!("{what}: {engine} fails: {e}"));
                            continue;
                        }
                    };
                    if kind == OpKind::MatMul {
                        agree(&format!("{what} on {engine}"), &got, &want, close);
                    } else if let Err(e) = identical(&got, &want) {
                        failures.push(format!("{what}: {engine} differs: {e}"));
                    }
                }
            }
        }
    }
    let table: Vec<String> = accepted
        .iter()
        .map(|(k, ts)| {
            format!(
                "{k}: {}",
                ts.iter().map(|t| t.name()).collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    println!("accepted element types:\n{}", table.join("\n"));
    println!("{elements} result elements compared");
    for kind in OpKind::all() {
        assert!(
            accepted.contains_key(&kind),
            "no element type builds a `{kind}` instance: the instance is broken"
        );
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The operands' names of an instance and the values to splat into them: each edge
/// value for `x`, and for binary ops each pair of edge values for `x` and `y`.
fn splat_cases(kind: OpKind, dtype: DType) -> Vec<Vec<(&'static str, f64)>> {
    let vs = edges(dtype);
    match kind {
        OpKind::Binary(_) => vs
            .iter()
            .flat_map(|&x| vs.iter().map(move |&y| vec![("x", x), ("y", y)]))
            .collect(),
        OpKind::Select => vs
            .iter()
            .flat_map(|&x| [0.0, 1.0].map(|c| vec![("c", c), ("x", x), ("y", vs[1])]))
            .collect(),
        _ => vs
            .iter()
            .map(|&x| vec![("x", x), ("u", x), ("y", x)])
            .collect(),
    }
}

/// Whether a graph's outputs are all constants (possibly broadcast): folded.
fn folded(g: &Graph) -> bool {
    g.outputs().iter().all(|&(_, id)| {
        let id = match g.node(id).op {
            Op::Broadcast(_) => g.operands(id)[0],
            _ => id,
        };
        matches!(g.node(id).op, Op::Const { .. })
    })
}

#[test]
fn constant_folding_agrees_with_the_interpreter_on_every_op_and_type() {
    let empty = HashMap::new();
    let mut folds: BTreeMap<OpKind, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut cases = 0;
    for kind in OpKind::all() {
        for dtype in DType::ALL {
            for case in splat_cases(kind, dtype) {
                let value = |name: &str| case.iter().find(|(n, _)| *n == name).map(|&(_, v)| v);
                let Some(b) = instance(kind, dtype, Feed::Splats(&value)) else {
                    continue;
                };
                cases += 1;
                let what = format!("{kind} on {dtype} {case:?}");
                let want = dnnc_interp::run(&b.g, &empty, &empty);
                let mut g = b.g.clone();
                dnnc_passes::const_fold::run(&mut g).unwrap_or_else(|e| panic!("{what}: {e}"));
                verify(&g).unwrap_or_else(|e| panic!("{what}: {e:?}"));
                let got = dnnc_interp::run(&g, &empty, &empty);
                match (got, want) {
                    (Ok(got), Ok(want)) => {
                        let (got, want) =
                            ((got.outputs, got.updates), (want.outputs, want.updates));
                        if let Err(e) = identical(&got, &want) {
                            failures.push(format!("{what}: folded {e}"));
                        }
                        if folded(&g) {
                            *folds.entry(kind).or_default() += 1;
                        }
                    }
                    (Err(_), Err(_)) => {}
                    (got, want) => failures.push(format!(
                        "{what}: folded {:?}, interpreter {:?}",
                        got.err(),
                        want.err()
                    )),
                }
            }
        }
    }
    println!("{cases} cases; folded per kind: {folds:?}");
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every elementwise kind folds on every type it accepts.
    for kind in OpKind::all() {
        let elementwise = matches!(
            kind,
            OpKind::Unary(_) | OpKind::Binary(_) | OpKind::Cast | OpKind::Select
        );
        if elementwise {
            assert!(
                folds.get(&kind).is_some_and(|&n| n > 0),
                "`{kind}` never folds"
            );
        }
    }
}

/// Integer division and remainder by zero, and `0` to a negative power, fail on every
/// engine with an error rather than a value.
#[test]
fn failing_integer_operands_fail_on_every_engine() {
    for dtype in [DType::I8, DType::U8, DType::I16, DType::I32, DType::I64] {
        for (op, a, b) in [
            (BinaryOp::Div, 5.0, 0.0),
            (BinaryOp::Rem, 5.0, 0.0),
            (BinaryOp::Pow, 0.0, -1.0),
        ] {
            if dtype == DType::U8 && b < 0.0 {
                continue;
            }
            let mut bld = dnnc_testing::graphs::Builder::new("fails");
            let x = bld.typed_input("x", dnnc_testing::instances::tensor(dtype, &[2], &[1.0, a]));
            let y = bld.typed_input("y", dnnc_testing::instances::tensor(dtype, &[2], &[1.0, b]));
            let z = bld.op(Op::Binary(op), &[x, y]);
            bld.g.set_output("z", z);
            let what = format!("{op:?} of {a} and {b} on {dtype}");
            let e = interpreter(&bld.g, &bld.inputs, &bld.states).expect_err(&what);
            assert!(e.contains("zero") || e.contains("negative"), "{what}: {e}");
            for (engine, run) in compiled_engines() {
                let e = run(&bld.g, &bld.inputs, &bld.states)
                    .expect_err(&format!("{what} on {engine}"));
                assert!(
                    e.contains("zero") || e.contains("negative"),
                    "{what} on {engine}: {e}"
                );
            }
        }
    }
}

/// `exp`, `log`, `tanh` and `erf` run as `dnnc_ir::vmath` programs translated into vector
/// instructions: on 2^16 values spread over every exponent (and the edges), compiled
/// loops give the interpreter's bits, in whole vectors and in the scalar tail.
#[test]
fn vector_math_matches_the_interpreter_on_many_values() {
    use dnnc_ir::UnaryOp;
    let mut values: Vec<f32> = (0..65_536u32)
        .map(|i| f32::from_bits(i.wrapping_mul(65_537).wrapping_add(i >> 3)))
        .collect();
    // The edges first, so that whole vectors (of 4 and of 16) meet them.
    values.splice(
        0..0,
        [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            88.7,
            -103.9,
            -104.0,
            -104.1,
            3.92,
            -4.5,
            -0.5,
            1e-40,
        ],
    );
    // Not a multiple of any vector width: the scalar tail runs too.
    assert_eq!(values.len() % 2, 1);
    let n = values.len();
    let mut b = dnnc_testing::graphs::Builder::new("vmath");
    let x = b.typed_input("x", Tensor::f32(vec![n], values).unwrap());
    for (i, u) in [UnaryOp::Exp, UnaryOp::Log, UnaryOp::Tanh, UnaryOp::Erf]
        .into_iter()
        .enumerate()
    {
        let y = b.op(Op::Unary(u), &[x]);
        b.g.set_output(format!("o{i}"), y);
    }
    let want = interpreter(&b.g, &b.inputs, &b.states).unwrap();
    for (engine, run) in compiled_engines() {
        let got = run(&b.g, &b.inputs, &b.states).unwrap();
        identical(&got, &want).unwrap_or_else(|e| panic!("{engine}: {e}"));
    }
}
