//! The IR text format round-trips: `parse_text(to_text(g))` is `g` again (every op,
//! attribute, element type, edge constant, name, output, update and index limit) for
//! one instance of every op kind on every element type and for random graphs.

use dnnc_ir::text::{parse_text, to_text};
use dnnc_ir::{DType, Graph, OpKind};
use dnnc_testing::graphs::random_graph;
use dnnc_testing::instances::{instance, Feed};
use dnnc_testing::Rng;

/// Everything a graph holds, node by node, in a form that compares NaN constants and
/// the sign of zero exactly (`{:?}` of the ops' `f64`s).
fn contents(g: &Graph) -> String {
    let mut s = format!("graph {}\n", g.name);
    for id in g.node_ids() {
        s += &format!(
            "{:?} {:?} {:?} {:?}\n",
            id,
            g.node(id).op,
            g.operands(id),
            g.ty(id)
        );
    }
    s += &format!(
        "{:?}\n{:?}\n{:?}\n",
        g.outputs(),
        g.updates(),
        g.index_limits()
    );
    s
}

fn round_trips(what: &str, g: &Graph) {
    let text = to_text(g);
    let back = parse_text(&text).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
    assert_eq!(contents(&back), contents(g), "{what}:\n{text}");
    assert_eq!(to_text(&back), text, "{what}");
}

#[test]
fn every_op_kind_on_every_type_round_trips() {
    let mut n = 0;
    for kind in OpKind::all() {
        for dtype in DType::ALL {
            let mut rng = Rng(3);
            if let Some(mut b) = instance(kind, dtype, Feed::Edges(&mut rng)) {
                if kind == OpKind::Gather {
                    b.g.limit_index("i", 4);
                }
                round_trips(&format!("{kind} on {dtype}"), &b.g);
                n += 1;
            }
        }
    }
    assert!(n > 400, "only {n} instances");
}

#[test]
fn random_graphs_round_trip() {
    for seed in 0..200 {
        let b = random_graph(seed, 5 + seed as usize % 60, seed % 3 == 0);
        round_trips(&format!("seed {seed}"), &b.g);
    }
}

#[test]
fn names_with_quotes_and_unicode_round_trip() {
    let mut rng = Rng(1);
    let mut b = dnnc_testing::graphs::Builder::new("odd names");
    let x = b.input(&mut rng, "a \"quoted\" \\ name ∂x", &[2]);
    let y = b.state(&mut rng, "fc1.W/ü", &[2]);
    let z = b.op(dnnc_ir::Op::Binary(dnnc_ir::BinaryOp::Add), &[x, y]);
    b.g.set_output("out \"1\"", z);
    b.g.add_update("fc1.W/ü", z);
    round_trips("odd names", &b.g);
}
