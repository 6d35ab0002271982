//! The graph: nodes are ops with their result types, edges carry operands.
//!
//! petgraph is an implementation detail of this module: the rest of the compiler sees
//! [`NodeId`]s and the methods here, never petgraph types.

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, NodeIndexable};
use petgraph::Direction;

use crate::error::{IndexOutOfRange, IrError};
use crate::op::Op;
use crate::shape::{infer, TensorType};
use crate::DType;

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
    /// How many outputs and updates name each node (so that replacing a node that
    /// none names does not scan them: a training step has thousands of updates).
    named: std::collections::HashMap<NodeId, usize>,
    /// The states that have an update.
    update_names: std::collections::HashSet<String>,
    /// Integer inputs whose values index something of a fixed size (class labels of
    /// `one_hot`, rows of an embedding): every value must lie in `0..limit`. Backends
    /// check them before running, so a bad label is an error, not a silent `-0` loss.
    index_limits: Vec<(String, usize)>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    /// Adds `op` applied to `operands`; the shape rule decides the result type.
    pub fn add(&mut self, op: Op, operands: &[NodeId]) -> Result<NodeId, IrError> {
        let tys: Vec<&TensorType> = operands
            .iter()
            .map(|&o| &self.graph[o.index()].ty)
            .collect();
        let ty = infer(&op, &tys).map_err(|why| IrError::Refused {
            graph: self.name.clone(),
            why,
        })?;
        let bytes = dnnc_tensor::memory::bytes_of(&ty.shape, ty.dtype.size_bytes());
        if bytes > dnnc_tensor::memory::MAX_TENSOR_BYTES {
            return Err(IrError::TooLarge {
                graph: self.name.clone(),
                ty,
                bytes,
            });
        }
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
        if let Some(i) = self.outputs.iter().position(|(n, _)| *n == name) {
            let (_, old) = self.outputs.remove(i);
            self.unname(old);
        }
        self.outputs.push((name, id));
        *self.named.entry(id).or_default() += 1;
    }

    /// Removes output `name` (one that kept a node alive, and followed it, through the
    /// passes); returns the node it names now.
    pub fn remove_output(&mut self, name: &str) -> Option<NodeId> {
        let i = self.outputs.iter().position(|(n, _)| n == name)?;
        let (_, id) = self.outputs.remove(i);
        self.unname(id);
        Some(id)
    }

    /// Whether an output or an update names `id` (it must stay as it is).
    pub fn is_named(&self, id: NodeId) -> bool {
        self.named.contains_key(&id)
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
        // The common case, a new state, costs no string comparisons: the names are
        // unique, so a name is looked for only when its state already has an update.
        if self.update_names.contains(&state) {
            if let Some(i) = self.updates.iter().position(|(n, _)| *n == state) {
                let (_, old) = self.updates.remove(i);
                self.unname(old);
            }
        } else {
            self.update_names.insert(state.clone());
        }
        self.updates.push((state, id));
        *self.named.entry(id).or_default() += 1;
    }

    pub fn updates(&self) -> &[(String, NodeId)] {
        &self.updates
    }

    fn unname(&mut self, id: NodeId) {
        if let Some(n) = self.named.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.named.remove(&id);
            }
        }
    }

    /// Requires every value of input `name` to lie in `0..limit` (the smallest limit
    /// wins when several uses constrain it).
    pub fn limit_index(&mut self, name: &str, limit: usize) {
        match self.index_limits.iter_mut().find(|(n, _)| n == name) {
            Some((_, l)) => *l = (*l).min(limit),
            None => self.index_limits.push((name.to_string(), limit)),
        }
    }

    /// The limit on input `name`'s values (`0..limit`), if the graph sets one.
    pub fn index_limit(&self, name: &str) -> Option<usize> {
        self.index_limits
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, l)| l)
    }

    /// The inputs whose values must lie in `0..limit`, in the order first required.
    pub fn index_limits(&self) -> &[(String, usize)] {
        &self.index_limits
    }

    /// The input `name` is fed into, following reshapes, casts, broadcasts, slices and
    /// transposes back from `id` (`None` when `id` is computed from other values).
    pub fn input_behind(&self, id: NodeId) -> Option<&str> {
        let mut at = id;
        loop {
            match &self.node(at).op {
                Op::Input { name, .. } => return Some(name),
                Op::Reshape(_)
                | Op::Cast(_)
                | Op::Broadcast(_)
                | Op::Slice { .. }
                | Op::Transpose(_) => at = *self.operands(at).first()?,
                _ => return None,
            }
        }
    }

    /// The `input` op named `name`.
    /// The `x` of `cast(cast(x, bf16), f32)` with `x: f32` at `id` (an `f32` value
    /// rounded to `bf16`: mixed precision's matmul operands, which the native backends
    /// round as they pack).
    pub fn bf16_rounding_of(&self, id: NodeId) -> Option<NodeId> {
        if self.node(id).op != Op::Cast(DType::F32) {
            return None;
        }
        let inner = self.operands(id)[0];
        if self.node(inner).op != Op::Cast(DType::BF16) {
            return None;
        }
        let x = self.operands(inner)[0];
        (self.ty(x).dtype == DType::F32).then_some(x)
    }

    pub fn input_named(&self, name: &str) -> Option<NodeId> {
        self.inputs()
            .into_iter()
            .find(|&n| matches!(&self.node(n).op, Op::Input { name: m, .. } if m == name))
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
    pub fn topo_order(&self) -> Result<Vec<NodeId>, IrError> {
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
            return Err(IrError::Cycle {
                graph: self.name.clone(),
            });
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
        if let Some(n) = self.named.remove(&old) {
            for (_, id) in self.outputs.iter_mut().chain(self.updates.iter_mut()) {
                if *id == old {
                    *id = new;
                }
            }
            *self.named.entry(new).or_default() += n;
        }
    }

    /// Removes a node and its edges. Callers make sure nothing uses it.
    pub fn remove(&mut self, id: NodeId) {
        self.graph.remove_node(id.index());
    }

    /// Removes many nodes and their edges at once, in time linear in the graph (one
    /// by one, each edge would be unlinked from its source's list of users, which is
    /// quadratic for a constant with thousands of users). Other nodes keep their ids.
    pub fn remove_all(&mut self, ids: &[NodeId]) {
        if ids.len() < 64 {
            for &id in ids {
                self.remove(id);
            }
            return;
        }
        let gone: std::collections::HashSet<NodeIndex> = ids.iter().map(|i| i.index()).collect();
        let graph = std::mem::take(&mut self.graph);
        self.graph = graph.filter_map_owned(
            |i, node| (!gone.contains(&i)).then_some(node),
            |_, slot| Some(slot),
        );
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

/// Checks that every one of `values` (input `name`) lies in `0..limit`; the error names
/// the first that does not, by its position.
pub fn check_index_limit(name: &str, values: &[i64], limit: usize) -> Result<(), IndexOutOfRange> {
    match values
        .iter()
        .position(|&v| v < 0 || v as u64 >= limit as u64)
    {
        None => Ok(()),
        Some(position) => Err(IndexOutOfRange {
            input: name.to_string(),
            position,
            value: values[position],
            limit,
        }),
    }
}
