//! The graph in graphviz `dot` syntax (`dnnc compile --emit dot`).

use std::collections::HashMap;
use std::fmt::Write;

use crate::graph::{Graph, NodeId};

/// The graph in graphviz `dot` syntax.
pub fn to_dot(g: &Graph) -> String {
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids());
    let numbers: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "digraph {:?} {{\n  node [shape=box, fontname=monospace];",
        g.name
    );
    for &n in &order {
        let node = g.node(n);
        let label = format!("%{} {}\\n{}", numbers[&n], node.op, node.ty).replace('"', "\\\"");
        let _ = writeln!(out, "  n{} [label=\"{label}\"];", numbers[&n]);
        for o in g.operands(n) {
            let _ = writeln!(out, "  n{} -> n{};", numbers[&o], numbers[&n]);
        }
    }
    for (name, id) in g.outputs() {
        let _ = writeln!(
            out,
            "  out_{name} [label=\"output {name}\", shape=oval];\n  n{} -> out_{name};",
            numbers[id]
        );
    }
    for (i, (name, id)) in g.updates().iter().enumerate() {
        let _ = writeln!(
            out,
            "  upd{i} [label=\"update {name}\", shape=oval];\n  n{} -> upd{i};",
            numbers[id]
        );
    }
    out.push_str("}\n");
    out
}
