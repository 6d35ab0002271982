//! Sums of matrix products as one product: `Σᵢ aᵢᵀ·bᵢ = [a₁; …; aₙ]ᵀ·[b₁; …; bₙ]`.
//!
//! The gradient of a weight used at every step of an unrolled loop (a recurrent layer's
//! `W_hh`) is such a sum: one small product per step, `hₜᵀ·dzₜ`, each written out in
//! full and then added up — `n` passes over a `[k, n]` result that mostly lives in
//! memory rather than cache. Joining the operands along the summed axis makes it one
//! product of `n` times the depth, which the matrix kernel runs near its peak, and the
//! partial results are never stored.
//!
//! The pass looks at each maximal tree of float `add`s whose inner nodes have no other
//! user, and joins its leaves of the form `matmul(transpose(a), b)` (rank 2, `a: [mᵢ,
//! k]`, `b: [mᵢ, n]`) when there are at least [`MIN_TERMS`] of them; the other leaves
//! are added to the joined product. Summation order changes (within a product's
//! rounding), nothing else. When the `b`s are already joined by a `concat` along axis 0
//! (an LSTM's gate gradients, joined by autodiff for its input projection), the terms
//! take that order and the product reads that concat instead of a second copy.

use dnnc_ir::{BinaryOp, Graph, NodeId, Op};

use crate::error::PassError;
use crate::pipeline::Pass;

/// Fewer products than this are left alone.
pub const MIN_TERMS: usize = 4;

/// The `sum_of_products` pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct SumOfProducts;

impl Pass for SumOfProducts {
    fn name(&self) -> &'static str {
        "sum_of_products"
    }

    fn run(&self, g: &mut Graph) -> Result<bool, PassError> {
        run(g)
    }
}

fn is_add(g: &Graph, id: NodeId) -> bool {
    g.node(id).op == Op::Binary(BinaryOp::Add) && g.ty(id).dtype.is_float()
}

/// `(a, b)` of a leaf `matmul(transpose(a), b)` of rank 2.
fn product_terms(g: &Graph, id: NodeId) -> Option<(NodeId, NodeId)> {
    if g.node(id).op != Op::MatMul || g.ty(id).shape.len() != 2 {
        return None;
    }
    let ops = g.operands(id);
    let (at, b) = (ops[0], ops[1]);
    if g.node(at).op != Op::Transpose(vec![1, 0]) || g.ty(b).shape.len() != 2 {
        return None;
    }
    Some((g.operands(at)[0], b))
}

/// The leaves of the tree of adds under `root`: operands that are not single-use adds
/// of the same type.
fn leaves(g: &Graph, root: NodeId) -> Vec<NodeId> {
    let ty = g.ty(root).clone();
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        for x in g.operands(id) {
            if is_add(g, x) && g.ty(x) == &ty && g.users(x).len() == 1 && !g.is_named(x) {
                stack.push(x);
            } else {
                out.push(x);
            }
        }
    }
    out
}

/// A `concat` along axis 0 of exactly the distinct `parts`, in some order — of the
/// parts themselves, or of each with a leading axis of 1 added (`[1, m, n]`, joined
/// to `[k, m, n]`) — as the join of the parts (that concat, or it reshaped to
/// `[Σm, n]`), and its order (indices into `parts`). The gradient of a recurrent
/// layer's input projection joins the steps' gate gradients so, and its `W_hh`'s
/// terms multiply the same ones.
fn existing_join(g: &mut Graph, parts: &[NodeId]) -> Option<(Vec<usize>, NodeId)> {
    let first = *parts.first()?;
    let index: std::collections::HashMap<NodeId, usize> =
        parts.iter().enumerate().map(|(i, &p)| (p, i)).collect();
    if index.len() != parts.len() {
        return None;
    }
    // The part behind `o`: `o` itself, or what a reshape adding a leading 1 reads.
    let part = |g: &Graph, o: NodeId| -> Option<usize> {
        if let Some(&i) = index.get(&o) {
            return Some(i);
        }
        let x = *g.operands(o).first()?;
        let lifted = matches!(g.node(o).op, Op::Reshape(_))
            && g.ty(o).shape.first() == Some(&1)
            && g.ty(o).shape[1..] == g.ty(x).shape[..];
        lifted.then(|| index.get(&x).copied()).flatten()
    };
    let users = g.users(first);
    let mut candidates = users.clone();
    for u in users {
        if matches!(g.node(u).op, Op::Reshape(_)) {
            candidates.extend(g.users(u));
        }
    }
    let (order, join) = candidates.into_iter().find_map(|c| {
        let ops = g.operands(c);
        if g.node(c).op != (Op::Concat { axis: 0 }) || ops.len() != parts.len() {
            return None;
        }
        let order: Vec<usize> = ops.iter().map(|&o| part(g, o)).collect::<Option<_>>()?;
        let distinct = order.iter().collect::<std::collections::HashSet<_>>().len() == order.len();
        distinct.then_some((order, c))
    })?;
    let rows: usize = parts.iter().map(|&p| g.ty(p).shape[0]).sum();
    let shape = vec![rows, g.ty(first).shape[1]];
    let join = if g.ty(join).shape == shape {
        join
    } else {
        g.add(Op::Reshape(shape), &[join]).ok()?
    };
    Some((order, join))
}

/// Applies the rewrite to every tree of adds; returns whether any changed.
pub fn run(g: &mut Graph) -> Result<bool, PassError> {
    let mut changed = false;
    for id in g.topo_order()? {
        if !g.contains(id) || !is_add(g, id) {
            continue;
        }
        // Only roots: an add whose one user is an add of its type belongs to that tree.
        let users = g.users(id);
        if let [u] = users.as_slice() {
            if is_add(g, *u) && g.ty(*u) == g.ty(id) && !g.is_named(id) {
                continue;
            }
        }
        let leaves = leaves(g, id);
        let (products, rest): (Vec<NodeId>, Vec<NodeId>) = leaves
            .iter()
            .partition(|&&l| product_terms(g, l).is_some() && g.ty(l) == g.ty(id));
        if products.len() < MIN_TERMS {
            continue;
        }
        let (mut a, b): (Vec<NodeId>, Vec<NodeId>) = products
            .iter()
            .map(|&p| product_terms(g, p).expect("partitioned on it"))
            .unzip();
        // Joined in the order of an existing join of the same `b`s, that one is reused.
        let b = match existing_join(g, &b) {
            Some((order, join)) => {
                a = order.iter().map(|&i| a[i]).collect();
                join
            }
            None => g.add(Op::Concat { axis: 0 }, &b)?,
        };
        let a = g.add(Op::Concat { axis: 0 }, &a)?;
        let at = g.add(Op::Transpose(vec![1, 0]), &[a])?;
        let mut sum = g.add(Op::MatMul, &[at, b])?;
        for r in rest {
            sum = g.add(Op::Binary(BinaryOp::Add), &[sum, r])?;
        }
        debug_assert_eq!(g.ty(sum), g.ty(id));
        g.replace_uses(id, sum);
        g.remove(id);
        changed = true;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnnc_ir::DType;

    fn input(g: &mut Graph, name: &str, shape: &[usize]) -> NodeId {
        g.add(
            Op::Input {
                name: name.into(),
                dtype: DType::F32,
                shape: shape.to_vec(),
            },
            &[],
        )
        .unwrap()
    }

    #[test]
    fn joins_a_chain_of_products_and_keeps_other_terms() {
        let mut g = Graph::new("t");
        let mut sum = input(&mut g, "bias", &[3, 5]);
        for i in 0..5 {
            let a = input(&mut g, &format!("a{i}"), &[2, 3]);
            let b = input(&mut g, &format!("b{i}"), &[2, 5]);
            let at = g.add(Op::Transpose(vec![1, 0]), &[a]).unwrap();
            let p = g.add(Op::MatMul, &[at, b]).unwrap();
            sum = g.add(Op::Binary(BinaryOp::Add), &[sum, p]).unwrap();
        }
        g.set_output("y", sum);
        assert!(run(&mut g).unwrap());
        crate::dce::run(&mut g);
        let muls = g
            .node_ids()
            .into_iter()
            .filter(|&n| g.node(n).op == Op::MatMul)
            .count();
        assert_eq!(muls, 1);
        let y = g.output("y").unwrap();
        assert_eq!(g.ty(y).shape, vec![3, 5]);
        // The `b`s already joined (in another order): that join is read, not a copy.
        let mut g = Graph::new("t");
        let (mut sum, mut bs, mut vals) = (None, Vec::new(), Vec::new());
        for i in 0..4 {
            let a = input(&mut g, &format!("a{i}"), &[2, 3]);
            let b = input(&mut g, &format!("b{i}"), &[2, 5]);
            let at = g.add(Op::Transpose(vec![1, 0]), &[a]).unwrap();
            let p = g.add(Op::MatMul, &[at, b]).unwrap();
            sum = Some(match sum {
                None => p,
                Some(s) => g.add(Op::Binary(BinaryOp::Add), &[s, p]).unwrap(),
            });
            bs.push(b);
            vals.push((a, b));
        }
        bs.reverse();
        // Each part lifted to `[1, 2, 5]` and joined to `[4, 2, 5]` (as autodiff joins
        // a scan's steps) is the same join, reshaped.
        let lifted: Vec<NodeId> = bs
            .iter()
            .map(|&b| g.add(Op::Reshape(vec![1, 2, 5]), &[b]).unwrap())
            .collect();
        let join = g.add(Op::Concat { axis: 0 }, &lifted).unwrap();
        g.set_output("y", sum.unwrap());
        g.set_output("joined", join);
        assert!(run(&mut g).unwrap());
        crate::dce::run(&mut g);
        let y = g.output("y").unwrap();
        let read = g.operands(y)[1];
        assert_eq!(g.node(read).op, Op::Reshape(vec![8, 5]));
        assert_eq!(g.operands(read), vec![join]);
        let at = g.operands(y)[0];
        let a_join = g.operands(at)[0];
        let want: Vec<NodeId> = vals.iter().rev().map(|&(a, _)| a).collect();
        assert_eq!(g.operands(a_join), want);
        let concats = g
            .node_ids()
            .into_iter()
            .filter(|&n| matches!(g.node(n).op, Op::Concat { .. }))
            .count();
        assert_eq!(concats, 2);
        // Too few products: nothing to do.
        let mut g = Graph::new("t");
        let a = input(&mut g, "a", &[2, 3]);
        let b = input(&mut g, "b", &[2, 5]);
        let at = g.add(Op::Transpose(vec![1, 0]), &[a]).unwrap();
        let p = g.add(Op::MatMul, &[at, b]).unwrap();
        let y = g.add(Op::Binary(BinaryOp::Add), &[p, p]).unwrap();
        g.set_output("y", y);
        assert!(!run(&mut g).unwrap());
    }
}
