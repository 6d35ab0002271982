//! A compiled graph as data: its values and where they live, its steps, its ports.
//!
//! The JIT builds a [`Program`] and runs it at once; `dnnc compile` serialises it
//! (JSON) into a static library, whose runtime builds the same [`crate::Instance`]
//! from it. Loops are referred to by index into a table of compiled loop functions.
//! Index maps of data-movement kernels are stored as affine maps and expanded when an
//! instance is made.

use dnnc_ir::{BinaryOp, DType, Dist, ReduceKind, UnaryOp, Window2d};
use dnnc_tensor::Data;
use serde::{Deserialize, Serialize};

/// `offset + Σ_k i_k · strides[k]` over the multi-indices of `shape`, in row-major
/// order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Affine {
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
}

/// `(before, size, after)`: a shape viewed around one axis.
pub type Dims = (usize, usize, usize);

/// A kernel and its compile-time attributes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum KernelDesc {
    /// Elementwise unary op; the dtype is the result's (integers wrap into it).
    Unary(UnaryOp, DType),
    /// Elementwise binary op; the dtype is the result's.
    Binary(BinaryOp, DType),
    Select,
    Cast(DType),
    /// `out[i] = x[index[i]]` (transpose, broadcast, slice).
    Take(Affine),
    /// Operand `j` goes to `out[index[j][i]]`.
    Concat(Vec<Affine>),
    /// A concat whose operands are read through maps (slices read in place): element
    /// `i` of part `j` is `args[j][src(i)]` and goes to `out[dst(i)]`, for each part's
    /// `(src, dst)` ([`crate::moves`]).
    ConcatFrom(Vec<(Affine, Affine)>),
    /// `out = value`, then `out[index[i]] = x[i]`.
    Pad {
        #[serde(with = "crate::json_float::f64_value")]
        value: f64,
        dtype: DType,
        index: Affine,
    },
    /// `out[index[i]] ⊕= x[i]` from the identity; the dtype is the result's.
    Reduce {
        kind: ReduceKind,
        dtype: DType,
        index: Affine,
    },
    /// An `f32` reduction over the middle axis of `(outer, reduced, inner)`.
    ReduceBlock {
        kind: ReduceKind,
        dims: Dims,
    },
    /// An `f32` reduction over the reduced `(size, reduced)` runs of the input
    /// ([`crate::reduce`]).
    ReduceRuns {
        kind: ReduceKind,
        runs: Vec<(usize, bool)>,
    },
    Arg {
        max: bool,
        dims: Dims,
    },
    /// The indices that sort each line along the middle axis of `dims`.
    Sort {
        descending: bool,
        dims: Dims,
    },
    Gather(Dims),
    ScatterAdd {
        dims: Dims,
        dtype: DType,
    },
    Random {
        dist: Dist,
        salt: u64,
    },
    /// im2col of an `[N, C, H, W]` input (`shape`).
    Patches {
        win: Window2d,
        shape: [usize; 4],
    },
    /// col2im into an `[N, C, H, W]` result (`shape`); the dtype is the result's.
    Fold {
        win: Window2d,
        shape: [usize; 4],
        dtype: DType,
    },
}

/// Where a value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Place {
    /// Its own block (inputs, states, constants).
    Own,
    /// At this byte offset of the arena.
    Arena(usize),
    /// In another value's storage (an update computed in place).
    Alias(usize),
}

/// A value: its storage kind, length, place and, for constants, contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValDesc {
    pub dtype: DType,
    pub len: usize,
    pub place: Place,
    #[serde(with = "crate::json_float::data")]
    pub init: Option<Data>,
}

/// A matmul operand: a value read as `[batch, rows, cols]`, perhaps through swapped
/// strides (stored as `[batch, cols, rows]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operand {
    pub val: usize,
    pub transposed: bool,
    /// Where in the value the operand starts, in elements (a contiguous slice read in
    /// place).
    #[serde(default)]
    pub offset: usize,
}

/// One step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StepDesc {
    /// Loop function `f` over `n` elements with these buffers (leaves, stored
    /// members, result), at about `cost` units of work per element (one per value
    /// read or written and per arithmetic op, several per transcendental).
    Loop {
        f: usize,
        vals: Vec<usize>,
        n: usize,
        cost: usize,
    },
    Kernel {
        k: KernelDesc,
        args: Vec<usize>,
        out: usize,
    },
    /// `out = [relu](a·b [+ bias])` for `dims = [batch, m, k, n]`; with `bf16`, of
    /// the operands rounded to `bf16` (`dnnc_kernels::bf16`).
    MatMul {
        a: Operand,
        b: Operand,
        out: usize,
        dims: [usize; 4],
        bias: Option<usize>,
        relu: bool,
        #[serde(default)]
        bf16: bool,
    },
    Copy {
        src: usize,
        dst: usize,
    },
}

/// A named value the caller reads or writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortDesc {
    pub name: String,
    pub val: usize,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// Sizes of a compiled schedule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub steps: usize,
    pub loops: usize,
    pub matmuls: usize,
    pub kernels: usize,
    pub copies: usize,
    /// Bytes of the arena of temporaries.
    pub arena_bytes: usize,
    /// What the temporaries would take without sharing.
    pub unshared_bytes: usize,
    /// State updates computed in place.
    pub in_place_updates: usize,
}

/// A compiled graph as data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub name: String,
    pub vals: Vec<ValDesc>,
    pub arena_bytes: usize,
    pub steps: Vec<StepDesc>,
    pub inputs: Vec<PortDesc>,
    pub states: Vec<PortDesc>,
    pub outputs: Vec<PortDesc>,
    /// State ports whose buffer holds the state's update after a run.
    pub updates: Vec<usize>,
    /// Integer inputs whose values must lie in `0..limit` (checked before each run).
    #[serde(default)]
    pub index_limits: Vec<(String, usize)>,
    /// How many loop functions the steps refer to.
    pub loop_count: usize,
    pub stats: Stats,
    /// The schedule as text (`dnnc compile --emit schedule`).
    pub text: String,
}
