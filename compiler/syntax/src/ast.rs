//! The abstract syntax tree of a `.dnn` file. Every node carries its byte [`Span`].
//!
//! The tree is plain data (no salsa, no interning) so that the parser, the formatter
//! and the checker can share it. A declaration that failed to parse becomes
//! [`ItemKind::Error`], keeping its name when one could be read, so that uses of it
//! elsewhere do not produce a second, misleading error.

pub use dnnc_diagnostics::Span;

/// An identifier with its span.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    pub text: String,
    pub span: Span,
}

/// A parsed file: its top-level declarations in source order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Module {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Text of the `///` lines above the item, without the slashes.
    pub doc: Option<String>,
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ItemKind {
    Use(UseDecl),
    Layer(LayerDef),
    Fn(FnDef),
    Dataset(DatasetDef),
    Train(TrainDef),
    /// A declaration that did not parse; `name` is set when its header was readable.
    Error {
        name: Option<Name>,
    },
}

impl Item {
    /// The name this item defines in its module, if any.
    pub fn defined_name(&self) -> Option<&Name> {
        match &self.kind {
            ItemKind::Use(_) => None,
            ItemKind::Layer(l) => Some(&l.name),
            ItemKind::Fn(f) => Some(&f.name),
            ItemKind::Dataset(d) => Some(&d.name),
            ItemKind::Train(_) => None,
            ItemKind::Error { name } => name.as_ref(),
        }
    }
}

/// `use std::nn::{Dense, relu}`, `use std::nn::Dense` or `use mylayers::*`.
#[derive(Clone, Debug, PartialEq)]
pub struct UseDecl {
    /// The module path (`std::nn`), without the imported names.
    pub path: Vec<Name>,
    pub imports: UseImports,
}

#[derive(Clone, Debug, PartialEq)]
pub enum UseImports {
    Names(Vec<Name>),
    Glob(Span),
}

/// `layer Name(hparams) { members }` or `model Name(hparams) { members }`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerDef {
    pub is_model: bool,
    pub name: Name,
    pub hparams: Vec<HParam>,
    pub members: Vec<Member>,
}

/// A hyperparameter: `hidden: Int = 256`.
#[derive(Clone, Debug, PartialEq)]
pub struct HParam {
    pub doc: Option<String>,
    pub name: Name,
    pub ty: Name,
    pub default: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub doc: Option<String>,
    pub kind: MemberKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MemberKind {
    /// `param W: [inp, out] = glorot_uniform`, or `buffer mean: [C] = zeros`: state
    /// that is never trained, changed only by `assign` in the training step.
    Param {
        name: Name,
        ty: TypeExpr,
        init: Expr,
        frozen: Option<Span>,
        buffer: bool,
    },
    /// `fc1 = Dense(784, hidden) from "fc1.safetensors" frozen`
    SubLayer(Binding),
    Fn(FnDef),
}

/// A named sub-layer or model: `name = Layer(args) [from "weights"] [frozen]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub name: Name,
    pub value: Expr,
    pub from: Option<StrLit>,
    /// `from "file" at "prefix"`: the sub-tree of the file's tensors to load.
    pub at: Option<StrLit>,
    pub frozen: Option<Span>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StrLit {
    pub value: String,
    pub span: Span,
}

/// `fn name(params) -> ret { body }`
#[derive(Clone, Debug, PartialEq)]
pub struct FnDef {
    pub name: Name,
    pub params: Vec<FnParam>,
    pub ret: Option<TypeExpr>,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FnParam {
    pub name: Name,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
}

/// A type as written: `f32[B, 784]`, `[B, ..S]`, `i32`, `Int`, `(f32[B], f32[B])`.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    pub kind: TypeExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TypeExprKind {
    /// `dtype[dims]`; the element type defaults to `f32` when omitted.
    Tensor {
        dtype: Option<Name>,
        dims: Vec<DimExpr>,
    },
    /// A bare name: an element type (a scalar tensor) or `Int`/`Float`/`Bool`/`Str`.
    Named(Name),
    Tuple(Vec<TypeExpr>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum DimExpr {
    /// `..S`: zero or more dimensions bound to `S`.
    Pack(Name),
    Expr(Expr),
}

/// `dataset name { split = (field: expr, ...) ... }`
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetDef {
    pub name: Name,
    pub splits: Vec<Split>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub doc: Option<String>,
    pub name: Name,
    pub fields: Vec<(Name, Expr)>,
    pub span: Span,
}

/// `train Target(args) on dataset { items }`
#[derive(Clone, Debug, PartialEq)]
pub struct TrainDef {
    /// A model to instantiate (single-model form) or the run's name (multi-model form).
    pub name: Name,
    pub args: Option<Vec<Arg>>,
    pub args_span: Option<Span>,
    pub dataset: Name,
    pub items: Vec<TrainItem>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainItem {
    pub doc: Option<String>,
    pub kind: TrainItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TrainItemKind {
    /// `model G = Generator(latent = 64)`
    Model(Binding),
    Let(Let),
    /// `batch = 128`, `loss = ...`
    Field(Name, Expr),
    /// `step name { ... }`
    Step {
        name: Name,
        items: Vec<StepItem>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepItem {
    pub kind: StepItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepItemKind {
    Let(Let),
    Field(Name, Expr),
    /// `update D, E with adam(lr = 2e-4)`
    Update {
        models: Vec<Name>,
        optimizer: Expr,
    },
}

/// `{ let a = ...; value }`
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub lets: Vec<Let>,
    pub value: Box<Expr>,
    pub span: Span,
}

/// `let pattern [: type] = value`
#[derive(Clone, Debug, PartialEq)]
pub struct Let {
    pub pattern: Pattern,
    pub ty: Option<TypeExpr>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    Name(Name),
    Tuple(Vec<Pattern>, Span),
}

impl Pattern {
    pub fn span(&self) -> Span {
        match self {
            Pattern::Name(n) => n.span,
            Pattern::Tuple(_, s) => *s,
        }
    }

    /// The names the pattern binds, left to right.
    pub fn names(&self) -> Vec<&Name> {
        match self {
            Pattern::Name(n) => vec![n],
            Pattern::Tuple(ps, _) => ps.iter().flat_map(Pattern::names).collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    MatMul,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::MatMul => "@",
            BinOp::Pow => "**",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Name(Name),
    Tuple(Vec<Expr>),
    /// `(name = value, ...)`: named fields, used for settings such as `early_stop`.
    Record(Vec<(Name, Expr)>),
    List(Vec<Expr>),
    Unary(UnOp, Box<Expr>),
    Binary {
        op: BinOp,
        op_span: Span,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `lhs |> rhs`: `rhs(lhs)`, or `f(lhs, args)` when `rhs` is the call `f(args)`.
    Pipe(Box<Expr>, Box<Expr>),
    Call {
        callee: Box<Expr>,
        args: Vec<Arg>,
    },
    Field(Box<Expr>, Name),
    Index(Box<Expr>, Vec<IndexItem>),
    If {
        cond: Box<Expr>,
        then: Block,
        els: Option<Box<Expr>>,
    },
    Block(Block),
    /// `scan(x in xs, h = h0) { body }`
    Scan {
        item: Name,
        over: Box<Expr>,
        carries: Vec<(Name, Expr)>,
        body: Block,
    },
    /// An expression that did not parse (its error was reported already).
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Name>,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub enum IndexItem {
    /// `...`: all remaining axes.
    Ellipsis(Span),
    /// `start:stop:step`, each part optional.
    Slice {
        start: Option<Box<Expr>>,
        stop: Option<Box<Expr>>,
        step: Option<Box<Expr>>,
        span: Span,
    },
    Index(Expr),
}
