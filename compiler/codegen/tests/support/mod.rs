//! What the codegen tests share: a deterministic generator, a graph builder, random
//! graphs, random feeds for a graph, the stated tolerance, and the examples' graphs.
//! Each test binary uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceKind, UnaryOp};
use dnnc_lower::Mode;
use dnnc_sema::RootDatabase;
use dnnc_session::steps::{forward, train_step, PassOptions};
use dnnc_tensor::{Data, Tensor};

/// SplitMix64: a small deterministic generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[-2, 2)`.
    pub fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
    }

    /// Uniform in `[-1, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    pub fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        Tensor::f32(shape.to_vec(), (0..n).map(|_| self.f32()).collect()).unwrap()
    }
}

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

    pub fn shape(&self, id: NodeId) -> Vec<usize> {
        self.g.ty(id).shape.clone()
    }
}

/// The stated tolerance: matrix products use fused multiply-add and blocked
/// summation, so they (and what is computed from them) may differ from the
/// interpreter by rounding; everything else agrees bit for bit. Relative 1e-4 plus
/// absolute 1e-4 (cancellation in a sum can leave a small result with the absolute
/// error of its large terms).
pub fn close(a: f32, b: f32) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
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

/// Whether `x` and `y` agree bit for bit, up to the sign of zero and NaN payloads.
pub fn same(x: f32, y: f32) -> bool {
    x == y || (x.is_nan() && y.is_nan())
}

pub type Results = (Vec<(String, Tensor)>, Vec<(String, Tensor)>);

/// Compares `got` against `want` element by element with `ok`; returns how many `f32`
/// elements were compared and how many agreed bit for bit. Integer and `bool` results
/// must agree exactly.
pub fn agree(
    what: &str,
    got: &Results,
    want: &Results,
    ok: fn(f32, f32) -> bool,
) -> (usize, usize) {
    let (mut n, mut exact) = (0, 0);
    for (got, want) in [(&got.0, &want.0), (&got.1, &want.1)] {
        assert_eq!(got.len(), want.len(), "{what}");
        for ((gn, gt), (wn, wt)) in got.iter().zip(want) {
            assert_eq!(gn, wn, "{what}");
            assert_eq!(
                (gt.dtype, &gt.shape),
                (wt.dtype, &wt.shape),
                "{what}: `{gn}`"
            );
            match (&gt.data, &wt.data) {
                (Data::F32(gv), Data::F32(wv)) => {
                    for (i, (&x, &y)) in gv.iter().zip(wv).enumerate() {
                        assert!(ok(x, y), "{what}: `{gn}`[{i}]: compiled {x}, reference {y}");
                        n += 1;
                        exact += usize::from(same(x, y));
                    }
                }
                (gd, wd) => assert_eq!(gd, wd, "{what}: `{gn}`"),
            }
        }
    }
    (n, exact)
}

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
                let cmp = [
                    BinaryOp::Lt,
                    BinaryOp::Le,
                    BinaryOp::Gt,
                    BinaryOp::Ge,
                    BinaryOp::Eq,
                    BinaryOp::Ne,
                ][rng.below(6)];
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

/// How many classes integer labels may name: the smallest `iota` axis of the graph
/// (the one-hot encodings of the labels), or 2.
pub fn classes(g: &Graph) -> i64 {
    g.node_ids()
        .into_iter()
        .filter_map(|id| match &g.node(id).op {
            Op::Iota { shape, axis, .. } => Some(shape[*axis] as i64),
            _ => None,
        })
        .filter(|&n| n > 1)
        .min()
        .unwrap_or(2)
}

/// Random values for every input and state of `g`: floats in `[-1, 1)` (non-negative
/// for states, which include second moments), labels as valid class indices, `step`
/// in `0..3` and any `rng_key`.
#[allow(clippy::type_complexity)]
pub fn feeds(
    g: &Graph,
    rng: &mut Rng,
    value: fn(&mut Rng) -> f32,
) -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    let k = classes(g);
    let (mut inputs, mut states) = (HashMap::new(), HashMap::new());
    for id in g.node_ids() {
        let (name, dtype, shape, is_state) = match &g.node(id).op {
            Op::Input { name, dtype, shape } => (name, *dtype, shape, false),
            Op::State { name, dtype, shape } => (name, *dtype, shape, true),
            _ => continue,
        };
        let n: usize = shape.iter().product();
        let data = match dtype {
            DType::F32 => Data::F32(
                (0..n)
                    .map(|_| {
                        let x = value(rng);
                        if is_state {
                            x.abs()
                        } else {
                            x
                        }
                    })
                    .collect(),
            ),
            DType::Bool => Data::Bool((0..n).map(|_| rng.next() & 1 == 1).collect()),
            _ => Data::from_i64(
                dtype,
                (0..n)
                    .map(|_| match name.as_str() {
                        "step" => (rng.next() % 3) as i64,
                        "rng_key" => rng.next() as i64,
                        _ => (rng.next() % k as u64) as i64,
                    })
                    .collect::<Vec<_>>(),
            ),
        };
        let t = Tensor::new(dtype, shape.clone(), data).unwrap();
        if is_state {
            states.insert(name.clone(), t);
        } else {
            inputs.insert(name.clone(), t);
        }
    }
    (inputs, states)
}

/// The train (for 3 steps per epoch), eval and predict graphs of `examples/FILE` at
/// batch `batch`, named `"FILE train"`, `"FILE eval"`, `"FILE predict"`.
pub fn example_graphs(file: &str, batch: usize) -> Vec<(String, Graph)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(file);
    let db = RootDatabase::new();
    let src = db.open(&path).unwrap();
    let job = dnnc_session::job(&db, src).unwrap();
    let opts = PassOptions {
        verify: true,
        dump_after: None,
    };
    let train = train_step(job.db, job.file, job.item, &job.cfg, 3, batch, &opts).unwrap();
    let mut graphs = vec![(format!("{file} train"), train.graph)];
    for (mode, name) in [(Mode::Eval, "eval"), (Mode::Predict, "predict")] {
        let l = forward(job.db, job.file, job.item, mode, batch, &opts).unwrap();
        graphs.push((format!("{file} {name}"), l.graph));
    }
    graphs
}
