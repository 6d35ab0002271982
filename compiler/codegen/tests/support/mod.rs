//! What the codegen tests share beyond `dnnc-testing` (the generator, graph builder,
//! random graphs and tolerances, re-exported here): random feeds for a graph's inputs
//! and states, and the examples' graphs. Each test binary uses a part of it.
#![allow(dead_code, unused_imports)]

use std::collections::HashMap;
use std::path::Path;

use dnnc_ir::{DType, Graph, Op};
use dnnc_lower::Mode;
use dnnc_sema::RootDatabase;
use dnnc_session::steps::{forward, train_step, PassOptions};
use dnnc_tensor::{Data, Tensor};

pub use dnnc_testing::graphs::{random_graph, Builder, BINARY, UNARY};
pub use dnnc_testing::tolerance::{agree, close, same, Results};
pub use dnnc_testing::Rng;

/// How many classes integer labels may name: the smallest `iota` axis of the graph
/// (the one-hot encodings of the labels), or 2.
pub fn classes(g: &Graph) -> i64 {
    g.node_ids()
        .into_iter()
        .filter_map(|id| match &g.node(id).op {
            Op::Iota { shape, axis, .. } => Some(shape[*axis] as i64),
            _ => None,
        })
        .filter(|&n| n > 1)
        .min()
        .unwrap_or(2)
}

/// Random values for every input and state of `g`: floats in `[-1, 1)` (non-negative
/// for states, which include second moments), labels as valid class indices, `step`
/// in `0..3` and any `rng_key`.
#[allow(clippy::type_complexity)]
pub fn feeds(
    g: &Graph,
    rng: &mut Rng,
    value: fn(&mut Rng) -> f32,
) -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    let k = classes(g);
    let (mut inputs, mut states) = (HashMap::new(), HashMap::new());
    for id in g.node_ids() {
        let (name, dtype, shape, is_state) = match &g.node(id).op {
            Op::Input { name, dtype, shape } => (name, *dtype, shape, false),
            Op::State { name, dtype, shape } => (name, *dtype, shape, true),
            _ => continue,
        };
        let n: usize = shape.iter().product();
        let data = match dtype {
            DType::F32 => Data::F32(
                (0..n)
                    .map(|_| {
                        let x = value(rng);
                        if is_state {
                            x.abs()
                        } else {
                            x
                        }
                    })
                    .collect(),
            ),
            DType::Bool => Data::Bool((0..n).map(|_| rng.next_u64() & 1 == 1).collect()),
            _ => Data::from_i64(
                dtype,
                (0..n)
                    .map(|_| match name.as_str() {
                        "#step" => (rng.next_u64() % 3) as i64,
                        "#rng_key" => rng.next_u64() as i64,
                        _ => (rng.next_u64() % k as u64) as i64,
                    })
                    .collect::<Vec<_>>(),
            ),
        };
        let t = Tensor::new(dtype, shape.clone(), data).unwrap();
        if is_state {
            states.insert(name.clone(), t);
        } else {
            inputs.insert(name.clone(), t);
        }
    }
    (inputs, states)
}

/// The train (for 3 steps per epoch), eval and predict graphs of `examples/FILE` at
/// batch `batch`, named `"FILE train"`, `"FILE eval"`, `"FILE predict"`.
pub fn example_graphs(file: &str, batch: usize) -> Vec<(String, Graph)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(file);
    let db = RootDatabase::new();
    let src = db.open(&path).unwrap();
    let job = dnnc_session::job(&db, src).unwrap();
    let opts = PassOptions {
        verify: true,
        dump_after: None,
        precision: None,
        int8: Vec::new(),
    };
    let train = train_step(job.db, job.file, job.item, &job.cfg, 0, 3, batch, &opts).unwrap();
    let mut graphs = vec![(format!("{file} train"), train.graph)];
    for (mode, name) in [(Mode::Eval, "eval"), (Mode::Predict, "predict")] {
        let l = forward(job.db, job.file, job.item, mode, batch, &opts).unwrap();
        graphs.push((format!("{file} {name}"), l.graph));
    }
    graphs
}
