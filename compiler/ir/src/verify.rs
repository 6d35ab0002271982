//! The IR verifier, run after every pass in tests and debug builds. It checks:
//!
//! - the graph is acyclic;
//! - every node's type is what its op's shape rule gives for its operands' types, and
//!   it has as many operands as its op takes;
//! - input names and state names are unique;
//! - every output and update names a node of the graph, and each update has exactly the
//!   type of the state it replaces and names an existing state;
//! - an index limit names an integer input where that input exists.

use std::collections::HashMap;

use crate::graph::Graph;
use crate::op::Op;
use crate::shape::infer;

/// Every violated invariant, or `Ok`.
pub fn verify(g: &Graph) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    if let Err(e) = g.topo_order() {
        errors.push(e.to_string());
    }
    let mut inputs: HashMap<&str, usize> = HashMap::new();
    let mut states: HashMap<&str, &crate::shape::TensorType> = HashMap::new();
    for id in g.node_ids() {
        let node = g.node(id);
        let ops = g.operands(id);
        let tys: Vec<_> = ops.iter().map(|&o| g.ty(o)).collect();
        match infer(&node.op, &tys) {
            Ok(t) if t == node.ty => {}
            Ok(t) => errors.push(format!(
                "%{}: `{}` has type {} but its rule gives {t}",
                id.raw(),
                node.op,
                node.ty
            )),
            Err(e) => errors.push(format!("%{}: {e}", id.raw())),
        }
        let duplicate = match &node.op {
            Op::Input { name, .. } => inputs
                .insert(name, id.raw())
                .is_some()
                .then(|| format!("input `{name}`")),
            Op::State { name, .. } => states
                .insert(name, &node.ty)
                .is_some()
                .then(|| format!("state `{name}`")),
            _ => None,
        };
        if let Some(what) = duplicate {
            errors.push(format!("{what} is declared twice"));
        }
    }
    for (name, id) in g.outputs() {
        if !g.contains(*id) {
            errors.push(format!("output `{name}` names a removed node"));
        }
    }
    for (name, id) in g.updates() {
        if !g.contains(*id) {
            errors.push(format!("update of `{name}` names a removed node"));
            continue;
        }
        match states.get(name.as_str()) {
            None => errors.push(format!("update of `{name}`, which is not a state")),
            Some(t) if **t != *g.ty(*id) => errors.push(format!(
                "update of `{name}` has type {} but the state is {t}",
                g.ty(*id)
            )),
            Some(_) => {}
        }
    }
    for (name, _) in g.index_limits() {
        // A limit may outlive its input (inference graphs have no labels); where the
        // input exists it must hold integers.
        if let Some(&raw) = inputs.get(name.as_str()) {
            let id = g.node_ids().into_iter().find(|n| n.raw() == raw);
            if let Some(id) = id.filter(|&id| !g.ty(id).dtype.is_int()) {
                errors.push(format!(
                    "the limit of input `{name}` needs integers, but it is {}",
                    g.ty(id)
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
