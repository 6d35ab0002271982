//! Mixed precision (`precision = bf16`): the operands of every `f32` matrix product —
//! forward and backward, convolutions included (they are products of patches) — are
//! rounded to `bf16`, written `cast(cast(x, bf16), f32)`; the products accumulate in
//! `f32` and everything else (element-wise work, reductions, the loss, the optimizer
//! and its `f32` master weights) stays `f32`. The interpreter computes exactly this;
//! the native backends recognise the rounded operands and run a `bf16` kernel that
//! rounds as it packs (`dnnc_kernels::bf16`), so no rounded copy is stored.
//!
//! Run after autodiff (the rounding has no derivative to take) and before the
//! clean-ups, which share the rounding of an operand between its products.

use dnnc_ir::{DType, Graph, NodeId, Op};

use crate::error::PassError;

/// `x` rounded to `bf16` (inside a transpose of the last two axes, so that the product
/// still reads the transposed operand in place).
fn rounded(g: &mut Graph, x: NodeId) -> Result<NodeId, PassError> {
    if g.bf16_rounding_of(x).is_some() {
        return Ok(x);
    }
    if let Op::Transpose(perm) = g.node(x).op.clone() {
        if dnnc_ir::op::swaps_last_two(&perm) {
            let was = g.operands(x)[0];
            let inner = rounded(g, was)?;
            if inner == was {
                return Ok(x);
            }
            return Ok(g.add(Op::Transpose(perm), &[inner])?);
        }
    }
    let b = g.add(Op::Cast(DType::BF16), &[x])?;
    Ok(g.add(Op::Cast(DType::F32), &[b])?)
}

/// Rounds the operands of every `f32` matmul of `g`; returns whether there were any.
pub fn round_matmul_operands(g: &mut Graph) -> Result<bool, PassError> {
    let mut changed = false;
    for id in g.topo_order()? {
        if g.node(id).op != Op::MatMul || g.ty(id).dtype != DType::F32 {
            continue;
        }
        let ops = g.operands(id);
        let (a, b) = (rounded(g, ops[0])?, rounded(g, ops[1])?);
        if (a, b) == (ops[0], ops[1]) {
            continue;
        }
        let m = g.add(Op::MatMul, &[a, b])?;
        g.replace_uses(id, m);
        g.remove(id);
        changed = true;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_both_operands_inside_transposes_once() {
        let mut g = Graph::new("t");
        let x = g
            .add(
                Op::Input {
                    name: "x".into(),
                    dtype: DType::F32,
                    shape: vec![4, 3],
                },
                &[],
            )
            .unwrap();
        let xt = g.add(Op::Transpose(vec![1, 0]), &[x]).unwrap();
        let y = g.add(Op::MatMul, &[xt, x]).unwrap();
        g.set_output("y", y);
        assert!(round_matmul_operands(&mut g).unwrap());
        let y = g.output("y").unwrap();
        let ops = g.operands(y);
        assert!(matches!(g.node(ops[0]).op, Op::Transpose(_)));
        assert_eq!(g.bf16_rounding_of(g.operands(ops[0])[0]), Some(x));
        assert_eq!(g.bf16_rounding_of(ops[1]), Some(x));
        // Already rounded: nothing more.
        assert!(!round_matmul_operands(&mut g).unwrap());
    }
}
