//! The primitive operations. Every layer, loss and optimizer lowers to these.
//!
//! Each op has exactly one rule per stage: its shape rule in [`crate::shape`], its
//! derivative in the autodiff pass, its evaluation in the reference interpreter.
//! Elementwise ops take operands of identical shape: broadcasting is explicit
//! ([`Op::Broadcast`]), which keeps derivatives and code generation simple.

use std::fmt;

use dnnc_tensor::DType;

use crate::window::Window2d;

/// The number of identifiers given.
macro_rules! count {
    () => { 0usize };
    ($head:ident $($tail:ident)*) => { 1usize + count!($($tail)*) };
}

/// Defines an enum of op variants from one list: the enum, `ALL` (every variant, in
/// order, sized by the list itself) and `name()`. Adding a variant is one line here;
/// every exhaustive `match` on the enum then points at what else must handle it.
macro_rules! op_enum {
    ($(#[$doc:meta])* $vis:vis enum $name:ident { $($v:ident => $n:literal,)* }) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize,
            serde::Deserialize,
        )]
        $vis enum $name {
            $($v,)*
        }

        impl $name {
            /// Every variant, in the order of the definition.
            pub const ALL: [$name; count!($($v)*)] = [$($name::$v,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $($name::$v => $n,)*
                }
            }
        }
    };
}

op_enum! {
    /// Elementwise ops of one operand.
    pub enum UnaryOp {
        Neg => "neg",
        Exp => "exp",
        Log => "log",
        Sqrt => "sqrt",
        Rsqrt => "rsqrt",
        Abs => "abs",
        Sign => "sign",
        Sin => "sin",
        Cos => "cos",
        Tanh => "tanh",
        Erf => "erf",
        Floor => "floor",
        Ceil => "ceil",
        Not => "not",
    }
}

op_enum! {
    /// Elementwise ops of two operands of one shape and element type.
    pub enum BinaryOp {
        Add => "add",
        Sub => "sub",
        Mul => "mul",
        Div => "div",
        Pow => "pow",
        Max => "max",
        Min => "min",
        Rem => "rem",
        Lt => "lt",
        Le => "le",
        Gt => "gt",
        Ge => "ge",
        Eq => "eq",
        Ne => "ne",
        And => "and",
        Or => "or",
    }
}

impl BinaryOp {
    /// The comparisons, which produce `bool`.
    pub const COMPARISONS: [BinaryOp; 6] = [
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::Eq,
        BinaryOp::Ne,
    ];

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

op_enum! {
    /// What a reduction combines with.
    pub enum ReduceKind {
        Sum => "reduce_sum",
        Max => "reduce_max",
        Min => "reduce_min",
    }
}

op_enum! {
    /// The distributions of [`Op::Random`], by kind ([`Dist`] carries their parameters).
    pub enum DistKind {
        Uniform => "random_uniform",
        Normal => "random_normal",
        Bernoulli => "random_bernoulli",
    }
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
    /// The indices that sort each line of `x` along `axis` (ascending, or descending),
    /// stably: equal elements keep their order; NaN sorts as the largest (as
    /// `torch.sort`). `i64`, of `x`'s shape.
    ArgSort {
        axis: usize,
        descending: bool,
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

/// Defines [`OpKind`] from one list of the ops without a family and the families
/// (`Unary(UnaryOp)`, ...), with `all()` and `name()`.
macro_rules! op_kinds {
    (ops { $($s:ident => $sn:literal,)* } families { $($f:ident($t:ident),)* }) => {
        /// What an [`Op`] is, without its attributes: the unit of "every op" in tests
        /// and tables (`OpKind::all()` lists each once).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum OpKind {
            $($s,)*
            $($f($t),)*
        }

        impl OpKind {
            /// Every kind: each op, and each member of each family.
            pub fn all() -> Vec<OpKind> {
                let mut v = vec![$(OpKind::$s,)*];
                $(v.extend($t::ALL.iter().map(|&x| OpKind::$f(x)));)*
                v
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(OpKind::$s => $sn,)*
                    $(OpKind::$f(x) => x.name(),)*
                }
            }
        }
    };
}

op_kinds! {
    ops {
        Input => "input",
        State => "state",
        Const => "const",
        Iota => "iota",
        Select => "select",
        Cast => "cast",
        Reshape => "reshape",
        Transpose => "transpose",
        Broadcast => "broadcast",
        Slice => "slice",
        Concat => "concat",
        Pad => "pad",
        ArgMax => "argmax",
        ArgMin => "argmin",
        ArgSort => "argsort",
        MatMul => "matmul",
        Gather => "gather",
        ScatterAdd => "scatter_add",
        StopGradient => "stop_gradient",
        Patches => "patches",
        Fold => "fold",
    }
    families {
        Unary(UnaryOp),
        Binary(BinaryOp),
        Reduce(ReduceKind),
        Random(DistKind),
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Dist {
    pub fn kind(&self) -> DistKind {
        match self {
            Dist::Uniform { .. } => DistKind::Uniform,
            Dist::Normal { .. } => DistKind::Normal,
            Dist::Bernoulli => DistKind::Bernoulli,
        }
    }
}

impl Op {
    /// What the op is, without its attributes.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Input { .. } => OpKind::Input,
            Op::State { .. } => OpKind::State,
            Op::Const { .. } => OpKind::Const,
            Op::Iota { .. } => OpKind::Iota,
            Op::Unary(u) => OpKind::Unary(*u),
            Op::Binary(b) => OpKind::Binary(*b),
            Op::Select => OpKind::Select,
            Op::Cast(_) => OpKind::Cast,
            Op::Reshape(_) => OpKind::Reshape,
            Op::Transpose(_) => OpKind::Transpose,
            Op::Broadcast(_) => OpKind::Broadcast,
            Op::Slice { .. } => OpKind::Slice,
            Op::Concat { .. } => OpKind::Concat,
            Op::Pad { .. } => OpKind::Pad,
            Op::Reduce { kind, .. } => OpKind::Reduce(*kind),
            Op::ArgMax { .. } => OpKind::ArgMax,
            Op::ArgMin { .. } => OpKind::ArgMin,
            Op::ArgSort { .. } => OpKind::ArgSort,
            Op::MatMul => OpKind::MatMul,
            Op::Gather { .. } => OpKind::Gather,
            Op::ScatterAdd { .. } => OpKind::ScatterAdd,
            Op::Random { dist, .. } => OpKind::Random(dist.kind()),
            Op::StopGradient => OpKind::StopGradient,
            Op::Patches(_) => OpKind::Patches,
            Op::Fold { .. } => OpKind::Fold,
        }
    }

    /// The op's name in the IR text (`matmul`, `reduce_sum`, ...).
    pub fn name(&self) -> &'static str {
        self.kind().name()
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
                write!(
                    f,
                    "{} {}{}",
                    kind.name(),
                    list(axes),
                    if *keepdims { " keepdims" } else { "" }
                )
            }
            Op::ArgMax { axis } => write!(f, "argmax axis={axis}"),
            Op::ArgMin { axis } => write!(f, "argmin axis={axis}"),
            Op::ArgSort { axis, descending } => write!(
                f,
                "argsort axis={axis}{}",
                if *descending { " descending" } else { "" }
            ),
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
            Op::Unary(_) | Op::Binary(_) | Op::Select | Op::MatMul | Op::StopGradient => {
                f.write_str(self.name())
            }
        }
    }
}

/// Whether `perm` swaps the last two axes and keeps the others (a matrix transpose,
/// batched or not).
pub fn swaps_last_two(perm: &[usize]) -> bool {
    let r = perm.len();
    r >= 2
        && perm[r - 2] == r - 1
        && perm[r - 1] == r - 2
        && perm[..r - 2].iter().enumerate().all(|(i, &p)| i == p)
}
