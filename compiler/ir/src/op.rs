//! The primitive operations. Every layer, loss and optimizer lowers to these.
//!
//! Each op has exactly one rule per stage: its shape rule in [`crate::shape`], its
//! derivative in the autodiff pass, its evaluation in the reference interpreter.
//! Elementwise ops take operands of identical shape: broadcasting is explicit
//! ([`Op::Broadcast`]), which keeps derivatives and code generation simple.

use std::fmt;

use dnnc_tensor::DType;

use crate::window::Window2d;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Abs,
    Sign,
    Sin,
    Cos,
    Tanh,
    Erf,
    Floor,
    Ceil,
    Not,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 14] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tanh,
        UnaryOp::Erf,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Not,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Erf => "erf",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Not => "not",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Rem,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 16] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Rem,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::And,
        BinaryOp::Or,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Rem => "rem",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        }
    }

    /// Comparisons produce `bool`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Eq | BinaryOp::Ne
        )
    }

    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ReduceKind {
    Sum,
    Max,
    Min,
}

/// Distributions of the counter-based random ops.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Dist {
    Uniform {
        low: f64,
        high: f64,
    },
    Normal {
        mean: f64,
        std: f64,
    },
    /// Takes the probability tensor as its second operand.
    Bernoulli,
}

/// A primitive operation with its attributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A tensor fed for each step (a batch field, the step counter).
    Input {
        name: String,
        dtype: DType,
        shape: Vec<usize>,
    },
    /// Persistent state: a parameter or an optimizer's moment, updated in place.
    State {
        name: String,
        dtype: DType,
        shape: Vec<usize>,
    },
    /// A scalar constant.
    Const {
        value: f64,
        dtype: DType,
    },
    /// `0, 1, 2, ...` along `axis` of `shape`.
    Iota {
        dtype: DType,
        shape: Vec<usize>,
        axis: usize,
    },
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `select(cond, a, b)`, all the same shape.
    Select,
    Cast(DType),
    Reshape(Vec<usize>),
    Transpose(Vec<usize>),
    /// NumPy broadcasting of the operand (right-aligned) to `shape`.
    Broadcast(Vec<usize>),
    /// Per axis `start..end` by `step`.
    Slice {
        starts: Vec<usize>,
        ends: Vec<usize>,
        steps: Vec<usize>,
    },
    Concat {
        axis: usize,
    },
    /// Per axis `lo`/`hi` elements of `value` added.
    Pad {
        lo: Vec<usize>,
        hi: Vec<usize>,
        value: f64,
    },
    Reduce {
        kind: ReduceKind,
        axes: Vec<usize>,
        keepdims: bool,
    },
    ArgMax {
        axis: usize,
    },
    ArgMin {
        axis: usize,
    },
    /// `[.., M, K] @ [.., K, N]` with equal batch dimensions.
    MatMul,
    /// NumPy `take`: operands `(x, indices)`.
    Gather {
        axis: usize,
    },
    /// Adds `updates` into zeros of `shape` at `indices` along `axis`: operands
    /// `(updates, indices)`; the transpose of [`Op::Gather`].
    ScatterAdd {
        axis: usize,
        shape: Vec<usize>,
    },
    /// Counter-based random numbers: operand 0 is the `i64` step key; `salt` tells
    /// draws apart. Reproducible from the seed, the step and the salt alone.
    Random {
        dist: Dist,
        shape: Vec<usize>,
        salt: u64,
    },
    /// The identity, through which no gradient flows.
    StopGradient,
    /// im2col: the windows of `x: [N, C, H, W]` as `[C, KH, KW, N, OH, OW]`, zero
    /// outside `x` ([`crate::window`]).
    Patches(Window2d),
    /// col2im, the transpose of [`Op::Patches`]: sums `[C, KH, KW, N, OH, OW]` columns
    /// back into `shape = [N, C, H, W]`.
    Fold {
        win: Window2d,
        shape: Vec<usize>,
    },
}

/// Every kind of op, one representative each, for tests that must cover them all.
pub fn op_kinds() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = vec![
        "input",
        "state",
        "const",
        "iota",
        "select",
        "cast",
        "reshape",
        "transpose",
        "broadcast",
        "slice",
        "concat",
        "pad",
        "reduce_sum",
        "reduce_max",
        "reduce_min",
        "argmax",
        "argmin",
        "matmul",
        "gather",
        "scatter_add",
        "random_uniform",
        "random_normal",
        "random_bernoulli",
        "stop_gradient",
        "patches",
        "fold",
    ];
    v.extend(UnaryOp::ALL.iter().map(|u| u.name()));
    v.extend(BinaryOp::ALL.iter().map(|b| b.name()));
    v
}

impl Op {
    /// The op's kind as listed by [`op_kinds`].
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::State { .. } => "state",
            Op::Const { .. } => "const",
            Op::Iota { .. } => "iota",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Select => "select",
            Op::Cast(_) => "cast",
            Op::Reshape(_) => "reshape",
            Op::Transpose(_) => "transpose",
            Op::Broadcast(_) => "broadcast",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::Pad { .. } => "pad",
            Op::Reduce {
                kind: ReduceKind::Sum,
                ..
            } => "reduce_sum",
            Op::Reduce {
                kind: ReduceKind::Max,
                ..
            } => "reduce_max",
            Op::Reduce {
                kind: ReduceKind::Min,
                ..
            } => "reduce_min",
            Op::ArgMax { .. } => "argmax",
            Op::ArgMin { .. } => "argmin",
            Op::MatMul => "matmul",
            Op::Gather { .. } => "gather",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::Random {
                dist: Dist::Uniform { .. },
                ..
            } => "random_uniform",
            Op::Random {
                dist: Dist::Normal { .. },
                ..
            } => "random_normal",
            Op::Random {
                dist: Dist::Bernoulli,
                ..
            } => "random_bernoulli",
            Op::StopGradient => "stop_gradient",
            Op::Patches(_) => "patches",
            Op::Fold { .. } => "fold",
        }
    }

    /// How many operands the op takes (`None`: any number, for concat).
    pub fn arity(&self) -> Option<usize> {
        Some(match self {
            Op::Input { .. } | Op::State { .. } | Op::Const { .. } | Op::Iota { .. } => 0,
            Op::Binary(_) | Op::MatMul | Op::Gather { .. } | Op::ScatterAdd { .. } => 2,
            Op::Select => 3,
            Op::Concat { .. } => return None,
            Op::Random {
                dist: Dist::Bernoulli,
                ..
            } => 2,
            _ => 1,
        })
    }

    /// Ops without side effects whose result depends only on their operands and
    /// attributes (safe to deduplicate and fold).
    pub fn is_pure(&self) -> bool {
        !matches!(
            self,
            Op::Input { .. } | Op::State { .. } | Op::Random { .. }
        )
    }
}

fn list(v: &[usize]) -> String {
    let parts: Vec<String> = v.iter().map(usize::to_string).collect();
    format!("[{}]", parts.join(", "))
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Input { name, .. } => write!(f, "input {name:?}"),
            Op::State { name, .. } => write!(f, "state {name:?}"),
            Op::Const { value, .. } => write!(f, "const {value:?}"),
            Op::Iota { axis, .. } => write!(f, "iota axis={axis}"),
            Op::Cast(d) => write!(f, "cast {d}"),
            Op::Reshape(s) => write!(f, "reshape {}", list(s)),
            Op::Transpose(p) => write!(f, "transpose {}", list(p)),
            Op::Broadcast(s) => write!(f, "broadcast {}", list(s)),
            Op::Slice {
                starts,
                ends,
                steps,
            } => write!(f, "slice {} {} {}", list(starts), list(ends), list(steps)),
            Op::Concat { axis } => write!(f, "concat axis={axis}"),
            Op::Pad { lo, hi, value } => write!(f, "pad {} {} value={value:?}", list(lo), list(hi)),
            Op::Reduce {
                kind,
                axes,
                keepdims,
            } => {
                let k = match kind {
                    ReduceKind::Sum => "sum",
                    ReduceKind::Max => "max",
                    ReduceKind::Min => "min",
                };
                write!(
                    f,
                    "reduce_{k} {}{}",
                    list(axes),
                    if *keepdims { " keepdims" } else { "" }
                )
            }
            Op::ArgMax { axis } => write!(f, "argmax axis={axis}"),
            Op::ArgMin { axis } => write!(f, "argmin axis={axis}"),
            Op::Gather { axis } => write!(f, "gather axis={axis}"),
            Op::ScatterAdd { axis, shape } => write!(f, "scatter_add axis={axis} {}", list(shape)),
            Op::Patches(w) => write!(f, "patches {w}"),
            Op::Fold { win, shape } => write!(f, "fold {win} {}", list(shape)),
            Op::Random { dist, salt, .. } => match dist {
                Dist::Uniform { low, high } => {
                    write!(f, "random_uniform low={low:?} high={high:?} salt={salt}")
                }
                Dist::Normal { mean, std } => {
                    write!(f, "random_normal mean={mean:?} std={std:?} salt={salt}")
                }
                Dist::Bernoulli => write!(f, "random_bernoulli salt={salt}"),
            },
            other => f.write_str(other.kind()),
        }
    }
}
