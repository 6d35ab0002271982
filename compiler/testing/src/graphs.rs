//! A graph builder that keeps the tensors a graph reads, and random graphs for
//! differential tests.

use std::collections::HashMap;

use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceKind, UnaryOp};
use dnnc_tensor::Tensor;

use crate::Rng;

/// Builds a graph and the tensors it reads.
#[derive(Default)]
pub struct Builder {
    pub g: Graph,
    pub inputs: HashMap<String, Tensor>,
    pub states: HashMap<String, Tensor>,
}

impl Builder {
    pub fn new(name: &str) -> Builder {
        Builder {
            g: Graph::new(name),
            ..Builder::default()
        }
    }

    pub fn input(&mut self, rng: &mut Rng, name: &str, shape: &[usize]) -> NodeId {
        self.inputs.insert(name.into(), rng.tensor(shape));
        self.g
            .add(
                Op::Input {
                    name: name.into(),
                    dtype: DType::F32,
                    shape: shape.to_vec(),
                },
                &[],
            )
            .unwrap()
    }

    pub fn state(&mut self, rng: &mut Rng, name: &str, shape: &[usize]) -> NodeId {
        self.states.insert(name.into(), rng.tensor(shape));
        self.g
            .add(
                Op::State {
                    name: name.into(),
                    dtype: DType::F32,
                    shape: shape.to_vec(),
                },
                &[],
            )
            .unwrap()
    }

    pub fn op(&mut self, op: Op, operands: &[NodeId]) -> NodeId {
        self.g.add(op, operands).unwrap()
    }

    pub fn splat(&mut self, value: f64, shape: &[usize]) -> NodeId {
        let c = self.op(
            Op::Const {
                value,
                dtype: DType::F32,
            },
            &[],
        );
        self.op(Op::Broadcast(shape.to_vec()), &[c])
    }

    /// An input of any element type holding `t`.
    pub fn typed_input(&mut self, name: &str, t: Tensor) -> NodeId {
        let op = Op::Input {
            name: name.into(),
            dtype: t.dtype,
            shape: t.shape.clone(),
        };
        self.inputs.insert(name.into(), t);
        self.op(op, &[])
    }

    /// `value` of `dtype` broadcast to `shape`.
    pub fn konst(&mut self, value: f64, dtype: DType, shape: &[usize]) -> NodeId {
        let c = self.op(Op::Const { value, dtype }, &[]);
        self.op(Op::Broadcast(shape.to_vec()), &[c])
    }

    pub fn shape(&self, id: NodeId) -> Vec<usize> {
        self.g.ty(id).shape.clone()
    }
}

pub const UNARY: [UnaryOp; 13] = [
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
];

pub const BINARY: [BinaryOp; 8] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Max,
    BinaryOp::Min,
    BinaryOp::Pow,
    BinaryOp::Rem,
];

/// A random graph of about `size` nodes over rank-2 (and some rank-1) `f32` tensors
/// (up to 24×70 elements if `big`, else 6×11): elementwise chains, scalar and general
/// broadcasts, matmuls, sums, transposes and reshapes.
pub fn random_graph(seed: u64, size: usize, big: bool) -> Builder {
    let mut rng = Rng(seed);
    let mut b = Builder::new(&format!("random{seed}"));
    let (r, c) = if big {
        (rng.range(1, 24), rng.range(1, 70))
    } else {
        (rng.range(1, 6), rng.range(1, 11))
    };
    let x = b.input(&mut rng, "x", &[r, c]);
    let y = b.input(&mut rng, "y", &[r, c]);
    let s = b.state(&mut rng, "s", &[r, c]);
    let mut pool = vec![x, y, s];
    let mut states = 1;
    while b.g.len() < size {
        let a = pool[rng.below(pool.len())];
        let sa = b.shape(a);
        let new = match rng.below(16) {
            0..=3 => {
                // Keep magnitudes tame now and then, so that not everything overflows.
                let u = if rng.below(3) == 0 {
                    UnaryOp::Tanh
                } else {
                    UNARY[rng.below(UNARY.len())]
                };
                b.op(Op::Unary(u), &[a])
            }
            4..=6 => {
                let same: Vec<NodeId> =
                    pool.iter().copied().filter(|&n| b.shape(n) == sa).collect();
                let other = same[rng.below(same.len())];
                let op = BINARY[rng.below(BINARY.len())];
                b.op(Op::Binary(op), &[a, other])
            }
            7 => {
                let k = b.splat(f64::from(rng.f32()), &sa);
                let op = BINARY[rng.below(BINARY.len())];
                b.op(Op::Binary(op), &[k, a])
            }
            8 | 9 if sa.len() == 2 => {
                let n = rng.range(1, 7);
                let w = b.state(&mut rng, &format!("w{states}"), &[sa[1], n]);
                states += 1;
                b.op(Op::MatMul, &[a, w])
            }
            10 if sa.len() == 2 => {
                let sum = b.op(
                    Op::Reduce {
                        kind: ReduceKind::Sum,
                        axes: vec![1],
                        keepdims: true,
                    },
                    &[a],
                );
                b.op(Op::Broadcast(sa.clone()), &[sum])
            }
            11 if sa.len() == 2 => b.op(Op::Transpose(vec![1, 0]), &[a]),
            14 | 15 => {
                // A select on a comparison (fused into one loop), as in ReLU's
                // derivative; sometimes against a splat, sometimes two values.
                let same: Vec<NodeId> =
                    pool.iter().copied().filter(|&n| b.shape(n) == sa).collect();
                let other = same[rng.below(same.len())];
                let rhs = if rng.below(2) == 0 {
                    b.splat(0.0, &sa)
                } else {
                    other
                };
                let cmp = BinaryOp::COMPARISONS[rng.below(6)];
                let c = b.op(Op::Binary(cmp), &[a, rhs]);
                let zero = b.splat(0.0, &sa);
                b.op(Op::Select, &[c, other, zero])
            }
            12 => {
                let flat = b.op(Op::Reshape(vec![sa.iter().product()]), &[a]);
                if rng.below(2) == 0 {
                    b.op(Op::Reshape(sa.clone()), &[flat])
                } else {
                    flat
                }
            }
            _ if sa.len() == 2 => {
                // A bias-like row vector broadcast over the rows.
                let bias = b.state(&mut rng, &format!("b{states}"), &[sa[1]]);
                states += 1;
                let bb = b.op(Op::Broadcast(sa.clone()), &[bias]);
                b.op(Op::Binary(BinaryOp::Add), &[a, bb])
            }
            _ => {
                let sum = b.op(
                    Op::Reduce {
                        kind: ReduceKind::Sum,
                        axes: vec![0],
                        keepdims: false,
                    },
                    &[a],
                );
                b.op(Op::Broadcast(sa.clone()), &[sum])
            }
        };
        pool.push(new);
    }
    let last = *pool.last().unwrap();
    b.g.set_output("out", last);
    for i in 0..2 {
        let n = pool[rng.below(pool.len())];
        b.g.set_output(format!("o{i}"), n);
    }
    if let Some(&u) = pool.iter().rev().find(|&&n| b.shape(n) == [r, c]) {
        b.g.add_update("s", u);
    }
    b
}
