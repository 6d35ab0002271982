//! What a fused `f32` loop computes for each elementwise op, in one exhaustive `match`
//! per op family: fusion reads it to decide what may join a loop, and both loop
//! compilers (Cranelift in `jit.rs`, LLVM in `llvm.rs`) match on it without wildcards,
//! so a new `UnaryOp` or `BinaryOp` is a compile error here, and then in each of them,
//! until its loop code is written.

use dnnc_exec::helpers::Helper;
use dnnc_ir::vmath::MathFn;
use dnnc_ir::{BinaryOp, UnaryOp};

/// How a loop computes a unary op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnaryCode {
    Neg,
    Abs,
    Sqrt,
    Rsqrt,
    Floor,
    Ceil,
    /// A `dnnc_ir::vmath` program, translated op by op (vectorised).
    Math(MathFn),
    /// A Rust helper, so that rounding matches the interpreter's.
    Call(Helper),
    /// Not an `f32` op: never fused.
    NotInLoops,
}

/// The loop code of a unary op.
pub(crate) fn unary(u: UnaryOp) -> UnaryCode {
    match u {
        UnaryOp::Neg => UnaryCode::Neg,
        UnaryOp::Abs => UnaryCode::Abs,
        UnaryOp::Sqrt => UnaryCode::Sqrt,
        UnaryOp::Rsqrt => UnaryCode::Rsqrt,
        UnaryOp::Floor => UnaryCode::Floor,
        UnaryOp::Ceil => UnaryCode::Ceil,
        UnaryOp::Sign => UnaryCode::Math(MathFn::Sign),
        UnaryOp::Exp => UnaryCode::Math(MathFn::Exp),
        UnaryOp::Log => UnaryCode::Math(MathFn::Log),
        UnaryOp::Sin => UnaryCode::Call(Helper::Sin),
        UnaryOp::Cos => UnaryCode::Call(Helper::Cos),
        UnaryOp::Tanh => UnaryCode::Math(MathFn::Tanh),
        UnaryOp::Erf => UnaryCode::Math(MathFn::Erf),
        UnaryOp::Not => UnaryCode::NotInLoops,
    }
}

/// A comparison, computed as a lane mask with the interpreter's semantics (ordered,
/// except `ne`, which is true for NaN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compare {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// How a loop computes a binary op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryCode {
    Add,
    Sub,
    Mul,
    Div,
    /// NaN-propagating (`dnnc_ir::scalar::max`).
    Max,
    Min,
    /// `a - b·floor(a/b)`, evaluated as written.
    Rem,
    Call(Helper),
    /// Computed only as the condition of a `select` in the same loop.
    Compare(Compare),
    NotInLoops,
}

/// The loop code of a binary op.
pub(crate) fn binary(b: BinaryOp) -> BinaryCode {
    match b {
        BinaryOp::Add => BinaryCode::Add,
        BinaryOp::Sub => BinaryCode::Sub,
        BinaryOp::Mul => BinaryCode::Mul,
        BinaryOp::Div => BinaryCode::Div,
        BinaryOp::Max => BinaryCode::Max,
        BinaryOp::Min => BinaryCode::Min,
        BinaryOp::Rem => BinaryCode::Rem,
        BinaryOp::Pow => BinaryCode::Call(Helper::Pow),
        BinaryOp::Lt => BinaryCode::Compare(Compare::Lt),
        BinaryOp::Le => BinaryCode::Compare(Compare::Le),
        BinaryOp::Gt => BinaryCode::Compare(Compare::Gt),
        BinaryOp::Ge => BinaryCode::Compare(Compare::Ge),
        BinaryOp::Eq => BinaryCode::Compare(Compare::Eq),
        BinaryOp::Ne => BinaryCode::Compare(Compare::Ne),
        BinaryOp::And | BinaryOp::Or => BinaryCode::NotInLoops,
    }
}

/// Cost units per element of a loop with these members that reads and writes
/// `values` buffers: one per value read or written, plus the members' arithmetic.
pub(crate) fn loop_cost(g: &dnnc_ir::Graph, members: &[dnnc_ir::NodeId], values: usize) -> usize {
    members.iter().map(|&m| cost(g, m)).sum::<usize>() + values
}

/// Relative cost units per element of a loop's member `id` (a vectorised
/// transcendental is worth several arithmetic ops, a helper call more), so large loops
/// of heavy math split across threads earlier than cheap ones do.
fn cost(g: &dnnc_ir::Graph, id: dnnc_ir::NodeId) -> usize {
    match &g.node(id).op {
        dnnc_ir::Op::Unary(u) => match unary(*u) {
            UnaryCode::Math(_) => 8,
            UnaryCode::Call(_) => 20,
            UnaryCode::Sqrt | UnaryCode::Rsqrt => 2,
            UnaryCode::Neg
            | UnaryCode::Abs
            | UnaryCode::Floor
            | UnaryCode::Ceil
            | UnaryCode::NotInLoops => 1,
        },
        dnnc_ir::Op::Binary(b) => match binary(*b) {
            BinaryCode::Call(_) => 20,
            BinaryCode::Div | BinaryCode::Rem => 2,
            BinaryCode::Add
            | BinaryCode::Sub
            | BinaryCode::Mul
            | BinaryCode::Max
            | BinaryCode::Min
            | BinaryCode::Compare(_)
            | BinaryCode::NotInLoops => 1,
        },
        _ => 1,
    }
}
