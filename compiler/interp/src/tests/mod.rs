//! The interpreter's tests: one hand-computed case per op kind ([`ops`]), index math,
//! NaN and integer semantics ([`semantics`]), error cases ([`errors`]), the random
//! numbers ([`random`]) and a matmul timing print ([`perf`]).
//!
//! This module holds the helpers they share: tensor constructors, a one-op graph runner
//! and an approximate tensor comparison.

mod errors;
mod ops;
mod perf;
mod random;
mod semantics;

use std::collections::HashMap;

use dnnc_ir::{DType, Graph, NodeId, Op};
use dnnc_tensor::{Data, Tensor};

use crate::{run, InterpError, Outputs};

pub(crate) fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::new(DType::F32, shape.to_vec(), Data::F32(v.to_vec())).unwrap()
}

pub(crate) fn intt(dtype: DType, shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::new(
        dtype,
        shape.to_vec(),
        Data::from_i64(dtype, v.iter().copied()),
    )
    .unwrap()
}

pub(crate) fn i64t(shape: &[usize], v: &[i64]) -> Tensor {
    intt(DType::I64, shape, v)
}

pub(crate) fn boolt(shape: &[usize], v: &[bool]) -> Tensor {
    Tensor::new(DType::Bool, shape.to_vec(), Data::Bool(v.to_vec())).unwrap()
}

/// An `input` op named `name` with `t`'s type.
pub(crate) fn input(g: &mut Graph, name: &str, t: &Tensor) -> NodeId {
    g.add(
        Op::Input {
            name: name.into(),
            dtype: t.dtype,
            shape: t.shape.clone(),
        },
        &[],
    )
    .unwrap()
}

/// Builds a graph whose inputs `x0, x1, ..` hold `args` and whose output `out` is the
/// node `build` returns, and runs it with `states`.
pub(crate) fn run_with(
    args: &[Tensor],
    states: &HashMap<String, Tensor>,
    build: impl FnOnce(&mut Graph, &[NodeId]) -> Result<NodeId, dnnc_ir::IrError>,
) -> Result<(Graph, Outputs), InterpError> {
    let mut g = Graph::new("test");
    let mut inputs = HashMap::new();
    let mut ids = Vec::new();
    for (i, t) in args.iter().enumerate() {
        let name = format!("x{i}");
        ids.push(input(&mut g, &name, t));
        inputs.insert(name, t.clone());
    }
    let out = build(&mut g, &ids).expect("the test graph should build");
    g.set_output("out", out);
    assert!(dnnc_ir::verify(&g).is_ok());
    let outputs = run(&g, &inputs, states)?;
    Ok((g, outputs))
}

/// The output of the one-output graph that `build` makes over inputs holding `args`.
pub(crate) fn eval1(
    args: &[Tensor],
    build: impl FnOnce(&mut Graph, &[NodeId]) -> Result<NodeId, dnnc_ir::IrError>,
) -> Result<Tensor, InterpError> {
    let (_, outputs) = run_with(args, &HashMap::new(), build)?;
    Ok(outputs.output("out").unwrap().clone())
}

/// Whether two tensors agree: same dtype and shape, floats within `1e-6` relative (NaN
/// equal to NaN), everything else exactly.
pub(crate) fn close(got: &Tensor, want: &Tensor) -> bool {
    if got.dtype != want.dtype || got.shape != want.shape {
        return false;
    }
    match (&got.data, &want.data) {
        (Data::F32(a), Data::F32(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|(&x, &y)| {
                    (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-6 * (1.0 + y.abs())
                })
        }
        (a, b) => a == b,
    }
}

#[track_caller]
pub(crate) fn assert_close(got: &Tensor, want: &Tensor) {
    assert!(close(got, want), "got {got:?}\nwant {want:?}");
}

/// Deterministic test data: `n` values in `[-1, 1)` from a small LCG.
pub(crate) fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
