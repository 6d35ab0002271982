//! The model being written: ONNX nodes and initializers appended in order, fresh value
//! names, and the shapes that ops take as data (constants, or computed from the
//! input's batch at run time).

use std::collections::{BTreeMap, HashMap};

use dnnc_ir::{DType, Graph, NodeId};
use dnnc_tensor::{Data, Tensor};

use crate::batch::Dim;
use crate::proto::{self, attr_int, elem, Msg};
use crate::ExportError;

/// The ONNX element type of `dtype`.
pub(crate) fn elem_of(dtype: DType) -> i64 {
    match dtype {
        DType::F32 => elem::FLOAT,
        DType::F64 => elem::DOUBLE,
        DType::F16 => elem::FLOAT16,
        DType::BF16 => elem::BFLOAT16,
        DType::I8 => elem::INT8,
        DType::U8 => elem::UINT8,
        DType::I16 => elem::INT16,
        DType::I32 => elem::INT32,
        DType::I64 => elem::INT64,
        DType::Bool => elem::BOOL,
    }
}

/// A tensor's elements as ONNX's little-endian `raw_data`.
pub(crate) fn raw(t: &Tensor) -> Vec<u8> {
    match &t.data {
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        Data::BF16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        Data::I8(v) => v.iter().map(|&x| x as u8).collect(),
        Data::U8(v) => v.clone(),
        Data::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Bool(v) => v.iter().map(|&x| u8::from(x)).collect(),
    }
}

/// The model being written.
pub(crate) struct Writer<'a> {
    pub(crate) g: &'a Graph,
    pub(crate) dims: &'a HashMap<NodeId, Vec<Dim>>,
    pub(crate) nodes: Vec<Msg>,
    pub(crate) inits: Vec<Msg>,
    pub(crate) ops: BTreeMap<String, usize>,
    /// The ONNX name of each node's value.
    pub(crate) names: HashMap<NodeId, String>,
    pub(crate) fresh: usize,
    /// The input whose first dimension is the batch, and the `[batch]` tensor made
    /// from it when a shape needs it.
    pub(crate) batch_source: Option<String>,
    pub(crate) batch: Option<String>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(g: &'a Graph, dims: &'a HashMap<NodeId, Vec<Dim>>) -> Writer<'a> {
        Writer {
            g,
            dims,
            nodes: Vec::new(),
            inits: Vec::new(),
            ops: BTreeMap::new(),
            names: HashMap::new(),
            fresh: 0,
            batch_source: None,
            batch: None,
        }
    }

    pub(crate) fn fresh(&mut self, hint: &str) -> String {
        self.fresh += 1;
        format!("{hint}_{}", self.fresh)
    }

    /// Appends node `op` with one output, returned.
    pub(crate) fn emit(&mut self, op: &str, inputs: &[String], attrs: Vec<Msg>) -> String {
        self.emit_n(op, inputs, 1, attrs).remove(0)
    }

    /// `t` as an initializer under a fresh name made from `hint`.
    pub(crate) fn initializer(&mut self, hint: &str, t: &Tensor) -> String {
        let name = self.fresh(hint);
        self.named_initializer(&name, t);
        name
    }

    /// `t` as the initializer `name` (a parameter keeps its own).
    pub(crate) fn named_initializer(&mut self, name: &str, t: &Tensor) {
        self.inits
            .push(proto::tensor(name, elem_of(t.dtype), &t.shape, &raw(t)));
    }

    /// Appends node `op` with `n` outputs, returned.
    pub(crate) fn emit_n(
        &mut self,
        op: &str,
        inputs: &[String],
        n: usize,
        attrs: Vec<Msg>,
    ) -> Vec<String> {
        let outs: Vec<String> = (0..n).map(|_| self.fresh(&op.to_lowercase())).collect();
        self.push_node(op, inputs, &outs, attrs);
        outs
    }

    /// Appends node `op` writing `outputs` (named by the caller), and counts it.
    pub(crate) fn push_node(
        &mut self,
        op: &str,
        inputs: &[String],
        outputs: &[String],
        attrs: Vec<Msg>,
    ) {
        // Node names must be unique in a graph.
        let name = self.fresh(op);
        self.nodes
            .push(proto::node(op, &name, inputs, outputs, attrs));
        *self.ops.entry(op.to_string()).or_default() += 1;
    }

    pub(crate) fn ints(&mut self, vs: &[i64]) -> String {
        let t = Tensor::new(DType::I64, vec![vs.len()], Data::I64(vs.to_vec()))
            .expect("a vector of its own length");
        self.initializer("shape", &t)
    }

    /// The `[batch]` tensor (int64), read from the input at run time.
    pub(crate) fn batch(&mut self) -> Result<String, ExportError> {
        if let Some(b) = &self.batch {
            return Ok(b.clone());
        }
        let src = self.batch_source.clone().ok_or_else(|| {
            ExportError("a shape depends on the batch, but no input starts with the batch".into())
        })?;
        let b = self.emit(
            "Shape",
            &[src],
            vec![attr_int("start", 0), attr_int("end", 1)],
        );
        self.batch = Some(b.clone());
        Ok(b)
    }

    /// A 1-D int64 tensor of `dims` at run time: constants where fixed, `k × batch`
    /// computed from the input. With `minus_one`, a single batch dimension is `-1`
    /// (what `Reshape` infers) and no computation is needed.
    pub(crate) fn shape(&mut self, dims: &[Dim], minus_one: bool) -> Result<String, ExportError> {
        let batched = dims.iter().filter(|d| matches!(d, Dim::Batch(_))).count();
        if batched == 0 || (minus_one && batched == 1) {
            let vs: Vec<i64> = dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n as i64,
                    Dim::Batch(_) => -1,
                })
                .collect();
            return Ok(self.ints(&vs));
        }
        let b = self.batch()?;
        let mut parts = Vec::new();
        let mut fixed = Vec::new();
        for d in dims {
            match d {
                Dim::Fixed(n) => fixed.push(*n as i64),
                Dim::Batch(k) => {
                    if !fixed.is_empty() {
                        parts.push(self.ints(&std::mem::take(&mut fixed)));
                    }
                    if *k == 1 {
                        parts.push(b.clone());
                    } else {
                        let k = self.ints(&[*k as i64]);
                        parts.push(self.emit("Mul", &[b.clone(), k], vec![]));
                    }
                }
            }
        }
        if !fixed.is_empty() {
            parts.push(self.ints(&fixed));
        }
        Ok(self.emit("Concat", &parts, vec![attr_int("axis", 0)]))
    }

    pub(crate) fn name(&self, id: NodeId) -> String {
        self.names[&id].clone()
    }

    pub(crate) fn dims(&self, id: NodeId) -> &[Dim] {
        &self.dims[&id]
    }
}

/// The ONNX form of a value's dimension in a `ValueInfoProto`.
pub(crate) fn info_dim(d: Dim) -> proto::Dim {
    match d {
        Dim::Fixed(n) => proto::Dim::Size(n),
        Dim::Batch(1) => proto::Dim::Named("batch".into()),
        Dim::Batch(k) => proto::Dim::Named(format!("{k}*batch")),
    }
}
