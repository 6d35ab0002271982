//! The graph IR of dnnc: a small set of primitive tensor ops ([`op`]) with one shape
//! rule each ([`shape`]), the [`Graph`] that holds them, the [`verify`]er run after every
//! pass, the text form, printed and parsed ([`text`]), graphviz output ([`dot`]), and
//! the typed [`Port`]s the compiler adds (loss, step counter, random key, ...).
//!
//! Shapes are concrete: a model is lowered once per batch size, as JAX and XLA do,
//! which keeps passes, memory planning and code generation simple.

pub mod dot;
pub mod elementwise;
pub mod error;
pub mod graph;
pub mod layout;
pub mod op;
pub mod port;
pub mod rng;
pub mod scalar;
pub mod shape;
pub mod text;
pub mod verify;
pub mod vmath;
pub mod window;

pub use dnnc_tensor::DType;
pub use error::{IndexOutOfRange, IrError};
pub use graph::{check_index_limit, Graph, Node, NodeId};
pub use op::{BinaryOp, Dist, DistKind, Op, OpKind, ReduceKind, UnaryOp};
pub use port::Port;
pub use shape::TensorType;
pub use verify::verify;
pub use window::Window2d;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_prints_and_verifies_a_small_graph() {
        let mut g = Graph::new("predict");
        let x = g
            .add(
                Op::Input {
                    name: "x".into(),
                    dtype: DType::F32,
                    shape: vec![2, 3],
                },
                &[],
            )
            .unwrap();
        let w = g
            .add(
                Op::State {
                    name: "W".into(),
                    dtype: DType::F32,
                    shape: vec![3, 4],
                },
                &[],
            )
            .unwrap();
        let y = g.add(Op::MatMul, &[x, w]).unwrap();
        g.set_output("y", y);
        assert!(verify(&g).is_ok());
        let text = text::to_text(&g);
        assert!(text.contains("%2 = matmul %0, %1 : f32[2, 4]"), "{text}");
        assert!(dot::to_dot(&g).starts_with("digraph"));
        assert!(g.add(Op::MatMul, &[w, x]).is_err());
    }

    #[test]
    fn replacing_uses_keeps_operand_order() {
        let mut g = Graph::new("t");
        let a = g
            .add(
                Op::Input {
                    name: "a".into(),
                    dtype: DType::F32,
                    shape: vec![2],
                },
                &[],
            )
            .unwrap();
        let b = g
            .add(
                Op::Input {
                    name: "b".into(),
                    dtype: DType::F32,
                    shape: vec![2],
                },
                &[],
            )
            .unwrap();
        let s = g.add(Op::Binary(BinaryOp::Sub), &[a, b]).unwrap();
        let n = g.add(Op::Unary(UnaryOp::Neg), &[a]).unwrap();
        g.set_output("s", s);
        g.replace_uses(a, n);
        assert_eq!(g.operands(s), vec![n, b]);
        assert_eq!(g.operands(n), vec![a]);
        assert!(verify(&g).is_ok());
    }
}
