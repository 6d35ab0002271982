//! Values during lowering: IR nodes for tensors, concrete statics, and the layer
//! instances, functions and builtins that calls dispatch on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use dnnc_ir::{DType, NodeId};
use dnnc_sema::SourceFile;

/// A layer instance: which declaration, where it sits in the model, and its
/// hyperparameters, all concrete.
#[derive(Debug)]
pub struct LayerVal {
    pub file: SourceFile,
    pub index: u32,
    /// The binding path: `fc1`, `encoder.block2`; empty for the model itself.
    pub path: String,
    pub hparams: HashMap<Arc<str>, Val>,
    pub frozen: bool,
    /// Pretrained weights: the file, and the name prefix its tensors carry.
    pub from: Option<(PathBuf, String)>,
}

#[derive(Clone, Debug)]
pub enum Val {
    T(NodeId),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(Arc<str>),
    Tuple(Vec<Val>),
    List(Vec<Val>),
    Record(Vec<(Arc<str>, Val)>),
    Shape(Vec<usize>),
    DType(DType),
    Layer(Rc<LayerVal>),
    Method(Rc<LayerVal>, Arc<str>),
    Func(SourceFile, u32),
    Builtin(&'static str),
    /// A layer declaration (only instantiated in bindings).
    LayerCtor(SourceFile, u32),
}

impl Val {
    pub fn kind(&self) -> &'static str {
        match self {
            Val::T(_) => "tensor",
            Val::Int(_) => "Int",
            Val::Float(_) => "Float",
            Val::Bool(_) => "Bool",
            Val::Str(_) => "Str",
            Val::Tuple(_) => "tuple",
            Val::List(_) => "list",
            Val::Record(_) => "record",
            Val::Shape(_) => "shape",
            Val::DType(_) => "dtype",
            Val::Layer(_) => "layer",
            Val::Method(..) => "method",
            Val::Func(..) => "function",
            Val::Builtin(_) => "builtin",
            Val::LayerCtor(..) => "layer type",
        }
    }
}
