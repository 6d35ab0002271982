//! Text and graphviz renderings of a graph. The text form is stable (nodes numbered in
//! topological order) so that golden files can compare it.

use std::collections::HashMap;
use std::fmt::Write;

use crate::graph::{Graph, NodeId};

/// The graph as text, one node per line:
///
/// ```text
/// graph predict {
///   %0 = input "x" : f32[2, 3]
///   %1 = state "W" : f32[3, 4]
///   %2 = matmul %0, %1 : f32[2, 4]
///   output y = %2
/// }
/// ```
pub fn to_text(g: &Graph) -> String {
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids());
    let numbers: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut out = String::new();
    let _ = writeln!(out, "graph {} {{", g.name);
    for &n in &order {
        let node = g.node(n);
        let ops: Vec<String> = g
            .operands(n)
            .iter()
            .map(|o| format!("%{}", numbers[o]))
            .collect();
        let args = if ops.is_empty() {
            String::new()
        } else {
            format!(" {}", ops.join(", "))
        };
        let _ = writeln!(
            out,
            "  %{} = {}{} : {}",
            numbers[&n], node.op, args, node.ty
        );
    }
    for (name, id) in g.outputs() {
        let _ = writeln!(
            out,
            "  output {name} = %{}",
            numbers.get(id).copied().unwrap_or(usize::MAX)
        );
    }
    for (name, id) in g.updates() {
        let _ = writeln!(
            out,
            "  update {name:?} = %{}",
            numbers.get(id).copied().unwrap_or(usize::MAX)
        );
    }
    for (name, limit) in g.index_limits() {
        let _ = writeln!(out, "  limit {name:?} < {limit}");
    }
    out.push_str("}\n");
    out
}

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
