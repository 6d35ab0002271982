//! The graph: nodes are ops with their result types, edges carry operands.
//!
//! petgraph is an implementation detail of this module: the rest of the compiler sees
//! [`NodeId`]s and the methods here, never petgraph types.

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, NodeIndexable};
use petgraph::Direction;

use crate::op::Op;
use crate::shape::{infer, TensorType};

/// A node of a [`Graph`]; stable across removals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    fn index(self) -> NodeIndex {
        NodeIndex::new(self.0 as usize)
    }

    fn of(i: NodeIndex) -> NodeId {
        NodeId(i.index() as u32)
    }

    /// The raw number, for printing and dense side tables.
    pub fn raw(self) -> usize {
        self.0 as usize
    }
}

/// An op and the type of its result.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub ty: TensorType,
}

/// A function over tensors: inputs and states in, named outputs and state updates out.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    graph: StableDiGraph<Node, u32>,
    outputs: Vec<(String, NodeId)>,
    /// `state <- value`: the new value of a state after the graph runs.
    updates: Vec<(String, NodeId)>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    /// Adds `op` applied to `operands`; the shape rule decides the result type.
    pub fn add(&mut self, op: Op, operands: &[NodeId]) -> Result<NodeId, String> {
        let tys: Vec<&TensorType> = operands
            .iter()
            .map(|&o| &self.graph[o.index()].ty)
            .collect();
        let ty = infer(&op, &tys).map_err(|e| format!("{e} (in `{}`)", self.name))?;
        let id = NodeId::of(self.graph.add_node(Node { op, ty }));
        for (i, &o) in operands.iter().enumerate() {
            self.graph.add_edge(o.index(), id.index(), i as u32);
        }
        Ok(id)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id.index()]
    }

    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.graph[id.index()].ty
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.graph.contains_node(id.index())
    }

    /// The operands of `id`, in order.
    pub fn operands(&self, id: NodeId) -> Vec<NodeId> {
        let mut es: Vec<(u32, NodeId)> = self
            .graph
            .edges_directed(id.index(), Direction::Incoming)
            .map(|e| (*e.weight(), NodeId::of(e.source())))
            .collect();
        es.sort_unstable();
        es.into_iter().map(|(_, n)| n).collect()
    }

    /// The nodes that use `id` (each once).
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut us: Vec<NodeId> = self
            .graph
            .neighbors_directed(id.index(), Direction::Outgoing)
            .map(NodeId::of)
            .collect();
        us.sort_unstable();
        us.dedup();
        us
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.graph.node_indices().map(NodeId::of).collect()
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    pub fn set_output(&mut self, name: impl Into<String>, id: NodeId) {
        let name = name.into();
        self.outputs.retain(|(n, _)| *n != name);
        self.outputs.push((name, id));
    }

    pub fn outputs(&self) -> &[(String, NodeId)] {
        &self.outputs
    }

    pub fn output(&self, name: &str) -> Option<NodeId> {
        self.outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }

    pub fn add_update(&mut self, state: impl Into<String>, id: NodeId) {
        let state = state.into();
        self.updates.retain(|(n, _)| *n != state);
        self.updates.push((state, id));
    }

    pub fn updates(&self) -> &[(String, NodeId)] {
        &self.updates
    }

    /// Nodes that are `input` ops, in insertion order.
    pub fn inputs(&self) -> Vec<NodeId> {
        self.node_ids()
            .into_iter()
            .filter(|&n| matches!(self.node(n).op, Op::Input { .. }))
            .collect()
    }

    /// Nodes that are `state` ops, in insertion order.
    pub fn states(&self) -> Vec<NodeId> {
        self.node_ids()
            .into_iter()
            .filter(|&n| matches!(self.node(n).op, Op::State { .. }))
            .collect()
    }

    /// A topological order (operands before users), deterministic for a given graph.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, String> {
        let mut indegree: Vec<usize> = vec![0; self.graph.node_bound()];
        for n in self.graph.node_indices() {
            indegree[n.index()] = self.graph.edges_directed(n, Direction::Incoming).count();
        }
        let mut ready: std::collections::BTreeSet<NodeId> = self
            .graph
            .node_indices()
            .filter(|n| indegree[n.index()] == 0)
            .map(NodeId::of)
            .collect();
        let mut order = Vec::with_capacity(self.len());
        while let Some(n) = ready.pop_first() {
            order.push(n);
            for e in self.graph.edges_directed(n.index(), Direction::Outgoing) {
                let t = e.target().index();
                indegree[t] -= 1;
                if indegree[t] == 0 {
                    ready.insert(NodeId::of(e.target()));
                }
            }
        }
        if order.len() != self.len() {
            return Err(format!("graph `{}` has a cycle", self.name));
        }
        Ok(order)
    }

    /// Makes every user of `old` other than `new` itself (and every output or update
    /// naming it) use `new`.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        if old == new {
            return;
        }
        let edges: Vec<(NodeIndex, u32)> = self
            .graph
            .edges_directed(old.index(), Direction::Outgoing)
            .filter(|e| e.target() != new.index())
            .map(|e| (e.target(), *e.weight()))
            .collect();
        for (target, slot) in edges {
            let edge = self
                .graph
                .edges_connecting(old.index(), target)
                .find(|e| *e.weight() == slot)
                .map(|e| e.id());
            if let Some(e) = edge {
                self.graph.remove_edge(e);
            }
            self.graph.add_edge(new.index(), target, slot);
        }
        for (_, id) in self.outputs.iter_mut().chain(self.updates.iter_mut()) {
            if *id == old {
                *id = new;
            }
        }
    }

    /// Removes a node and its edges. Callers make sure nothing uses it.
    pub fn remove(&mut self, id: NodeId) {
        self.graph.remove_node(id.index());
    }

    /// The nodes that outputs and updates depend on.
    pub fn live(&self) -> std::collections::HashSet<NodeId> {
        let mut live = std::collections::HashSet::new();
        let mut stack: Vec<NodeId> = self
            .outputs
            .iter()
            .chain(&self.updates)
            .map(|(_, id)| *id)
            .collect();
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(self.operands(n));
            }
        }
        live
    }
}
