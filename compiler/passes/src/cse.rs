//! Common-subexpression elimination: of two pure nodes with the same op, the same
//! operands and the same type, the later one is replaced by the earlier.
//!
//! Only [`Op::is_pure`] ops take part: never `input`, `state` or `random` (two draws
//! with equal attributes are still two draws). Nodes are visited in topological order,
//! so that by the time a node is looked at its operands are already deduplicated and
//! whole duplicated subgraphs merge in one sweep.
//!
//! Ops are compared by their `Debug` form, in which every `f64` attribute is written
//! in its shortest round-trip form: equal attributes mean equal bits, so `pad` values
//! `0.0` and `-0.0` stay apart (`Op`'s `PartialEq` would merge them). Constants are
//! compared by the element they hold in their dtype (bitwise for `f32`): `const 0.1`
//! and `const 0.10000000149011612` are the same `f32` and merge, `const 0.0` and
//! `const -0.0` do not, and NaN constants merge (they evaluate alike up to the NaN
//! payload, which nothing in dnnc observes). The operands of `add`, `mul`, `eq`, `ne`, `and` and `or`
//! are compared as an unordered pair: those ops are exactly commutative (`max` and `min`
//! are not quite, on zeros of different sign).

use crate::error::PassError;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use dnnc_ir::{BinaryOp, Graph, NodeId, Op, TensorType};

use crate::const_fold::Scalar;
use crate::pipeline::Pass;

/// The `cse` pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cse;

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run(&self, g: &mut Graph) -> Result<bool, PassError> {
        run(g)
    }
}

fn is_commutative(op: &Op) -> bool {
    matches!(
        op,
        Op::Binary(
            BinaryOp::Add
                | BinaryOp::Mul
                | BinaryOp::Eq
                | BinaryOp::Ne
                | BinaryOp::And
                | BinaryOp::Or
        )
    )
}

/// What two nodes must share to be merged.
#[derive(PartialEq, Eq, Hash)]
struct Key {
    op: String,
    operands: Vec<NodeId>,
    ty: TensorType,
}

/// Merges duplicated pure nodes; returns whether any were.
pub fn run(g: &mut Graph) -> Result<bool, PassError> {
    let mut seen: HashMap<Key, NodeId> = HashMap::new();
    let mut merged: Vec<NodeId> = Vec::new();
    for id in g.topo_order()? {
        let node = g.node(id);
        if !node.op.is_pure() {
            continue;
        }
        let mut operands = g.operands(id);
        if is_commutative(&node.op) {
            operands.sort_unstable();
        }
        let op = match node.op {
            // By the element held: `const 0.1` and `const 0.10000000149011612` are one
            // f32, and `const 0.5 : i64` is `const 0.0 : i64`.
            Op::Const { value, dtype } => {
                format!("const {dtype} {:?}", Scalar::from_const(value, dtype))
            }
            _ => format!("{:?}", node.op),
        };
        let key = Key {
            op,
            operands,
            ty: node.ty.clone(),
        };
        match seen.entry(key) {
            Entry::Occupied(first) => {
                g.replace_uses(id, *first.get());
                merged.push(id);
            }
            Entry::Vacant(slot) => {
                slot.insert(id);
            }
        }
    }
    // Removed together: thousands of copies of a splat would cost quadratic time
    // one by one.
    g.remove_all(&merged);
    Ok(!merged.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnnc_ir::text::to_text;
    use dnnc_ir::{DType, Dist, UnaryOp};

    fn input(g: &mut Graph, name: &str) -> NodeId {
        let op = Op::Input {
            name: name.into(),
            dtype: DType::F32,
            shape: vec![2],
        };
        g.add(op, &[]).unwrap()
    }

    #[test]
    fn merges_duplicated_subgraphs_and_commuted_operands() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x");
        let y = input(&mut g, "y");
        let e1 = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
        let e2 = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
        let a1 = g.add(Op::Binary(BinaryOp::Add), &[e1, y]).unwrap();
        let a2 = g.add(Op::Binary(BinaryOp::Add), &[y, e2]).unwrap();
        let s1 = g.add(Op::Binary(BinaryOp::Sub), &[a1, y]).unwrap();
        let s2 = g.add(Op::Binary(BinaryOp::Sub), &[y, a2]).unwrap();
        g.set_output("p", s1);
        g.set_output("q", s2);
        assert!(run(&mut g).unwrap());
        assert!(dnnc_ir::verify(&g).is_ok());
        assert_eq!(g.len(), 6);
        assert_eq!(g.operands(g.output("q").unwrap()), vec![y, a1]);
        assert!(!run(&mut g).unwrap());
    }

    #[test]
    fn keeps_inputs_randoms_and_signed_zeros_apart() {
        let mut g = Graph::new("t");
        let k = g
            .add(
                Op::Const {
                    value: 0.0,
                    dtype: DType::I64,
                },
                &[],
            )
            .unwrap();
        let random = Op::Random {
            dist: Dist::Uniform {
                low: 0.0,
                high: 1.0,
            },
            shape: vec![2],
            salt: 3,
        };
        let r1 = g.add(random.clone(), &[k]).unwrap();
        let r2 = g.add(random, &[k]).unwrap();
        let z1 = g
            .add(
                Op::Const {
                    value: 0.0,
                    dtype: DType::F32,
                },
                &[],
            )
            .unwrap();
        let z2 = g
            .add(
                Op::Const {
                    value: -0.0,
                    dtype: DType::F32,
                },
                &[],
            )
            .unwrap();
        let n1 = g
            .add(
                Op::Const {
                    value: f64::NAN,
                    dtype: DType::F32,
                },
                &[],
            )
            .unwrap();
        let n2 = g
            .add(
                Op::Const {
                    value: f64::NAN,
                    dtype: DType::F32,
                },
                &[],
            )
            .unwrap();
        for (i, n) in [r1, r2, z1, z2, n1, n2].into_iter().enumerate() {
            g.set_output(format!("o{i}"), n);
        }
        assert!(run(&mut g).unwrap());
        assert_eq!(g.len(), 6, "{}", to_text(&g));
        assert_eq!(g.output("o5"), Some(n1));
        assert_ne!(g.output("o0"), g.output("o1"));
        assert_ne!(g.output("o2"), g.output("o3"));
    }
}
