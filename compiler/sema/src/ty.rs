//! The checker's types: tensors with element types and symbolic shapes, static
//! (compile-time) scalars, tuples, records, layer instances and callable values.

use std::fmt;
use std::sync::Arc;

use crate::dim::Dim;

/// Element types of tensors: the one model every stage shares.
pub use dnnc_tensor::DType;

/// One entry of a shape: a dimension, or a pack `..S` of unknown rank.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DimItem {
    Dim(Dim),
    Pack(Arc<str>),
}

/// A shape: dimensions with at most one pack.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<DimItem>);

impl Shape {
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    pub fn from_dims(dims: impl IntoIterator<Item = Dim>) -> Shape {
        Shape(dims.into_iter().map(DimItem::Dim).collect())
    }

    /// The dimensions, when the shape has no pack.
    pub fn dims(&self) -> Option<Vec<&Dim>> {
        self.0
            .iter()
            .map(|d| match d {
                DimItem::Dim(d) => Some(d),
                DimItem::Pack(_) => None,
            })
            .collect()
    }

    pub fn has_pack(&self) -> bool {
        self.0.iter().any(|d| matches!(d, DimItem::Pack(_)))
    }

    /// The rank when known (no pack).
    pub fn rank(&self) -> Option<usize> {
        (!self.has_pack()).then_some(self.0.len())
    }

    /// The product of all dimensions (packs contribute `size(S)`).
    pub fn numel(&self) -> Option<Dim> {
        let mut n = Dim::constant(1);
        for d in &self.0 {
            let f = match d {
                DimItem::Dim(d) => d.clone(),
                DimItem::Pack(p) => Dim::atom(crate::dim::Atom::PackSize(p.clone())),
            };
            n = n.checked_mul(&f)?;
        }
        Some(n)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match d {
                DimItem::Dim(d) => write!(f, "{d}")?,
                DimItem::Pack(p) => write!(f, "..{p}")?,
            }
        }
        f.write_str("]")
    }
}

/// A tensor type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorTy {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorTy {
    /// `(elements, bytes)` when every dimension is a known number; `None` when some
    /// is symbolic. Computed without overflow (`u128`, saturating).
    pub fn known_size(&self) -> Option<(u128, u128)> {
        let mut n: u128 = 1;
        for d in self.shape.dims()? {
            let c = u128::try_from(d.as_const()?).ok()?;
            n = n.saturating_mul(c);
        }
        Some((n, n.saturating_mul(self.dtype.size_bytes() as u128)))
    }
}

impl fmt::Display for TensorTy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype.name(), self.shape)
    }
}

/// Which declaration a layer, function or dataset value refers to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ItemRef {
    /// The file's display name (for messages) and its index in the database.
    pub file: Arc<str>,
    pub file_id: crate::db::FileId,
    pub index: u32,
    pub name: Arc<str>,
}

/// A static value known at compile time (or symbolic, e.g. a hyperparameter).
#[derive(Clone, Debug, PartialEq)]
pub enum Static {
    Int(Dim),
    Float(f64),
    Bool(bool),
    Str(Arc<str>),
    /// The value of the enclosing layer's hyperparameter of this name (a `Float`,
    /// `Bool` or `Str` forwarded to a sub-layer); fixed when the layer is instantiated.
    Param(Arc<str>),
}

/// A type of a value in the checker.
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    Tensor(TensorTy),
    /// A static integer, with its (possibly symbolic) value when known.
    Int(Option<Dim>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Str(Option<Arc<str>>),
    /// An element type used as a value: `cast(x, f32)`.
    DTypeVal(DType),
    /// A shape used as a value: `shape(x)` or a list of static Ints.
    ShapeVal(Shape),
    Tuple(Vec<Ty>),
    Record(Vec<(Arc<str>, Ty)>),
    List(Vec<Ty>),
    /// A layer type (its constructor): `Dense`.
    LayerCtor(ItemRef),
    /// A layer instance with its hyperparameter values: `Dense(784, 256)`.
    Layer(LayerInst),
    /// A bound method of a layer instance: `enc.encode`.
    Method(LayerInst, Arc<str>),
    /// A user or stdlib function.
    Func(ItemRef),
    /// A builtin primitive.
    Builtin(&'static str),
    /// A setting such as `adam(lr = 1e-3)` or an initialiser; checked by its context.
    Setting(Arc<str>),
    /// A dataset declaration.
    Dataset(ItemRef),
    /// The type of an expression whose error was already reported; accepted anywhere.
    Error,
}

/// A layer instance: which layer, with which hyperparameter values.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInst {
    pub layer: ItemRef,
    pub args: Vec<(Arc<str>, Static)>,
}

impl Ty {
    pub fn tensor(dtype: DType, shape: Shape) -> Ty {
        Ty::Tensor(TensorTy { dtype, shape })
    }

    pub fn scalar(dtype: DType) -> Ty {
        Ty::tensor(dtype, Shape::scalar())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Ty::Error)
    }

    /// A short name for the kind of value, for "expected a tensor, found a layer".
    pub fn kind_name(&self) -> &'static str {
        match self {
            Ty::Tensor(_) => "a tensor",
            Ty::Int(_) => "an `Int`",
            Ty::Float(_) => "a `Float`",
            Ty::Bool(_) => "a `Bool`",
            Ty::Str(_) => "a `Str`",
            Ty::DTypeVal(_) => "an element type",
            Ty::ShapeVal(_) => "a shape",
            Ty::Tuple(_) => "a tuple",
            Ty::Record(_) => "a record",
            Ty::List(_) => "a list",
            Ty::LayerCtor(_) => "a layer type",
            Ty::Layer(_) => "a layer",
            Ty::Method(..) => "a method",
            Ty::Func(_) | Ty::Builtin(_) => "a function",
            Ty::Setting(_) => "a setting",
            Ty::Dataset(_) => "a dataset",
            Ty::Error => "an erroneous value",
        }
    }
}

impl fmt::Display for Static {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Static::Int(d) => write!(f, "{d}"),
            Static::Float(x) => write!(f, "{x:?}"),
            Static::Bool(b) => write!(f, "{b}"),
            Static::Str(s) => write!(f, "{s:?}"),
            Static::Param(p) => f.write_str(p),
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Tensor(t) => write!(f, "{t}"),
            Ty::Int(Some(d)) => write!(f, "Int = {d}"),
            Ty::Int(None) => f.write_str("Int"),
            Ty::Float(Some(x)) => write!(f, "Float = {x:?}"),
            Ty::Float(None) => f.write_str("Float"),
            Ty::Bool(Some(b)) => write!(f, "Bool = {b}"),
            Ty::Bool(None) => f.write_str("Bool"),
            Ty::Str(_) => f.write_str("Str"),
            Ty::DTypeVal(d) => write!(f, "dtype {}", d.name()),
            Ty::ShapeVal(s) => write!(f, "shape {s}"),
            Ty::Tuple(ts) => {
                f.write_str("(")?;
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                if ts.len() == 1 {
                    f.write_str(",")?;
                }
                f.write_str(")")
            }
            Ty::Record(fs) => {
                f.write_str("(")?;
                for (i, (n, t)) in fs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{n}: {t}")?;
                }
                f.write_str(")")
            }
            Ty::List(ts) => {
                f.write_str("[")?;
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    // Inside a list, known values read better than their types.
                    match t {
                        Ty::Int(Some(d)) => write!(f, "{d}")?,
                        Ty::Float(Some(x)) => write!(f, "{x:?}")?,
                        Ty::Bool(Some(b)) => write!(f, "{b}")?,
                        other => write!(f, "{other}")?,
                    }
                }
                f.write_str("]")
            }
            Ty::LayerCtor(r) => write!(f, "layer {}", r.name),
            Ty::Layer(inst) => write!(f, "{inst}"),
            Ty::Method(inst, m) => write!(f, "{inst}.{m}"),
            Ty::Func(r) => write!(f, "fn {}", r.name),
            Ty::Builtin(n) => write!(f, "builtin {n}"),
            Ty::Setting(n) => write!(f, "{n}(...)"),
            Ty::Dataset(r) => write!(f, "dataset {}", r.name),
            Ty::Error => f.write_str("{error}"),
        }
    }
}

impl fmt::Display for LayerInst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.layer.name)?;
        for (i, (n, v)) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n} = {v}")?;
        }
        f.write_str(")")
    }
}
