//! Dead-code elimination: removes every node that no output and no state update
//! depends on ([`Graph::live`]), except `input` and `state` nodes, which stay even when
//! unused because they define the graph's calling convention (what a caller feeds in).

use crate::error::PassError;
use dnnc_ir::{Graph, Op};

use crate::pipeline::Pass;

/// The `dce` pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&self, g: &mut Graph) -> Result<bool, PassError> {
        Ok(run(g))
    }
}

/// Removes the dead nodes; returns whether there were any.
pub fn run(g: &mut Graph) -> bool {
    let live = g.live();
    let dead: Vec<_> = g
        .node_ids()
        .into_iter()
        .filter(|id| !live.contains(id))
        .filter(|&id| !matches!(g.node(id).op, Op::Input { .. } | Op::State { .. }))
        .collect();
    // Every user of a dead node is dead too, so nothing live loses an operand.
    g.remove_all(&dead);
    !dead.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnnc_ir::{BinaryOp, DType, UnaryOp};

    #[test]
    fn removes_dead_nodes_but_keeps_inputs_and_states() {
        let mut g = Graph::new("t");
        let x = g
            .add(
                Op::Input {
                    name: "x".into(),
                    dtype: DType::F32,
                    shape: vec![2],
                },
                &[],
            )
            .unwrap();
        let unused = g
            .add(
                Op::Input {
                    name: "unused".into(),
                    dtype: DType::F32,
                    shape: vec![2],
                },
                &[],
            )
            .unwrap();
        let w = g
            .add(
                Op::State {
                    name: "w".into(),
                    dtype: DType::F32,
                    shape: vec![2],
                },
                &[],
            )
            .unwrap();
        let e = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
        let dead = g.add(Op::Unary(UnaryOp::Log), &[e]).unwrap();
        let dead2 = g.add(Op::Binary(BinaryOp::Add), &[dead, unused]).unwrap();
        let upd = g.add(Op::Binary(BinaryOp::Add), &[w, e]).unwrap();
        g.set_output("e", e);
        g.add_update("w", upd);
        assert!(run(&mut g));
        assert!(dnnc_ir::verify(&g).is_ok());
        assert!(!g.contains(dead) && !g.contains(dead2));
        assert!(g.contains(unused) && g.contains(w) && g.contains(upd));
        assert_eq!(g.len(), 5);
        assert!(!run(&mut g));
    }
}
