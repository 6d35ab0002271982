//! One small graph per op kind and element type, fed with edge values: the unit of the
//! "every op × every type × every engine" tests. [`instance`] matches `OpKind`
//! without a wildcard, so a new op does not compile here until it has a case.

use dnnc_ir::scalar::int_operands_fail;
use dnnc_ir::{BinaryOp, Dist, DistKind, NodeId, Op, OpKind, Window2d};
use dnnc_tensor::{Class, DType, Data, Tensor};

use crate::graphs::Builder;
use crate::values::{edges, int_edges};
use crate::Rng;

/// A tensor of `dtype` and `shape` whose elements run through the edge values of the
/// type (in a random order, repeated as needed).
pub fn edge_tensor(rng: &mut Rng, dtype: DType, shape: &[usize]) -> Tensor {
    let count = edges(dtype).len();
    let n: usize = shape.iter().product();
    let start = rng.below(count);
    let picked: Vec<usize> = (0..n)
        .map(|i| {
            if i < count {
                (start + i) % count
            } else {
                rng.below(count)
            }
        })
        .collect();
    edges_at(dtype, shape, &picked)
}

/// A tensor of `dtype` holding the edge values at positions `picked` of the type's
/// list (integers exactly, [`int_edges`]).
fn edges_at(dtype: DType, shape: &[usize], picked: &[usize]) -> Tensor {
    if dtype.is_int() {
        let vs = int_edges(dtype);
        let data = Data::from_i64(dtype, picked.iter().map(|&i| vs[i]).collect::<Vec<_>>());
        return Tensor::new(dtype, shape.to_vec(), data).expect("a well-formed tensor");
    }
    let vs = edges(dtype);
    tensor(
        dtype,
        shape,
        &picked.iter().map(|&i| vs[i]).collect::<Vec<_>>(),
    )
}

/// A tensor of `dtype` from `f64` values that convert exactly.
pub fn tensor(dtype: DType, shape: &[usize], values: &[f64]) -> Tensor {
    let data = match dtype.class() {
        Class::Float => Data::from_f64(dtype, values.to_vec()),
        Class::Int => Data::from_i64(dtype, values.iter().map(|&v| v as i64).collect::<Vec<_>>()),
        Class::Bool => Data::Bool(values.iter().map(|&v| v != 0.0).collect()),
    };
    Tensor::new(dtype, shape.to_vec(), data).expect("a well-formed tensor")
}

/// Every pair of `dtype`'s edge values on which `op` is defined (integer division by
/// zero and `0` to a negative power fail at run time), as two tensors of one shape.
pub fn edge_pairs(op: BinaryOp, dtype: DType) -> (Tensor, Tensor) {
    let count = edges(dtype).len();
    let ints = if dtype.is_int() {
        int_edges(dtype)
    } else {
        Vec::new()
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for x in 0..count {
        for y in 0..count {
            if dtype.is_int() && int_operands_fail(op, ints[x], ints[y]).is_some() {
                continue;
            }
            a.push(x);
            b.push(y);
        }
    }
    let shape = [a.len()];
    (edges_at(dtype, &shape, &a), edges_at(dtype, &shape, &b))
}

/// Where an instance's operands come from.
pub enum Feed<'a> {
    /// Inputs holding edge values (or the fixed indices, conditions and keys).
    Edges(&'a mut Rng),
    /// Constants broadcast to the operands' shapes, for constant folding: the value
    /// the function gives for an operand's name, or else the first element of the
    /// tensor the input would hold (a valid index, key or probability).
    Splats(&'a dyn Fn(&str) -> Option<f64>),
}

impl Feed<'_> {
    fn input(&mut self, b: &mut Builder, name: &str, t: Tensor) -> NodeId {
        match self {
            Feed::Edges(_) => b.typed_input(name, t),
            Feed::Splats(value) => {
                let v = value(name).unwrap_or_else(|| t.data.to_f64_vec()[0]);
                let c = b.op(
                    Op::Const {
                        value: v,
                        dtype: t.dtype,
                    },
                    &[],
                );
                if t.shape.is_empty() {
                    c
                } else {
                    b.op(Op::Broadcast(t.shape.clone()), &[c])
                }
            }
        }
    }

    /// An operand of `dtype` and `shape` running through the edge values.
    fn edges(&mut self, b: &mut Builder, name: &str, dtype: DType, shape: &[usize]) -> NodeId {
        let t = match self {
            Feed::Edges(rng) => edge_tensor(rng, dtype, shape),
            Feed::Splats(_) => tensor(dtype, shape, &vec![0.0; shape.iter().product()]),
        };
        self.input(b, name, t)
    }

    /// [`Feed::edges`] without the largest finite values, whose products overflow:
    /// a sum with fused multiply-add then differs in kind (an infinity instead of
    /// NaN), not only by rounding, from one without.
    fn edges_without_overflow(
        &mut self,
        b: &mut Builder,
        name: &str,
        dtype: DType,
        shape: &[usize],
    ) -> NodeId {
        let t = match self {
            Feed::Edges(rng) => {
                let mut t = edge_tensor(rng, dtype, shape);
                if dtype.is_float() {
                    let v: Vec<f64> = t.data.to_f64_vec();
                    let tame = v.iter().map(|&x| {
                        if x.abs() > 1e30 && x.is_finite() {
                            x.signum() * 2.5
                        } else {
                            x
                        }
                    });
                    t = tensor(dtype, shape, &tame.collect::<Vec<_>>());
                }
                t
            }
            Feed::Splats(_) => tensor(dtype, shape, &vec![0.0; shape.iter().product()]),
        };
        self.input(b, name, t)
    }
}

/// The op of `kind` on operands of element type `dtype` (the indexed or converted
/// tensor where an op also reads indices or a key), with its outputs set; `None` when
/// the op's shape rule refuses operands of that type. Some kinds give several outputs
/// (every cast target, reductions over each axis). With [`Feed::Splats`] the sources
/// (`input`, `state`) build nothing.
pub fn instance(kind: OpKind, dtype: DType, mut feed: Feed) -> Option<Builder> {
    let mut b = Builder::new(&format!("{kind}_{dtype}"));
    let splats = matches!(feed, Feed::Splats(_));
    let outs: Vec<NodeId> = match kind {
        OpKind::Input | OpKind::State if splats => return None,
        OpKind::Input => vec![feed.edges(&mut b, "x", dtype, &[4])],
        OpKind::State => {
            let Feed::Edges(rng) = &mut feed else {
                return None;
            };
            let t = edge_tensor(rng, dtype, &[4]);
            let op = Op::State {
                name: "s".into(),
                dtype,
                shape: vec![4],
            };
            b.states.insert("s".into(), t);
            let s = b.g.add(op, &[]).ok()?;
            b.g.add_update("s", s);
            vec![s]
        }
        OpKind::Const => {
            let mut v = Vec::new();
            for value in edges(dtype) {
                v.push(b.g.add(Op::Const { value, dtype }, &[]).ok()?);
            }
            v
        }
        OpKind::Iota => vec![
            b.g.add(
                Op::Iota {
                    dtype,
                    shape: vec![3, 300],
                    axis: 1,
                },
                &[],
            )
            .ok()?,
            b.g.add(
                Op::Iota {
                    dtype,
                    shape: vec![2, 3],
                    axis: 0,
                },
                &[],
            )
            .ok()?,
        ],
        OpKind::Unary(u) => {
            let x = feed.edges(&mut b, "x", dtype, &[edges(dtype).len()]);
            vec![b.g.add(Op::Unary(u), &[x]).ok()?]
        }
        OpKind::Binary(op) => {
            let (x, y) = edge_pairs(op, dtype);
            let x = feed.input(&mut b, "x", x);
            let y = feed.input(&mut b, "y", y);
            vec![b.g.add(Op::Binary(op), &[x, y]).ok()?]
        }
        OpKind::Select => {
            let n = edges(dtype).len();
            let c: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
            let c = feed.input(&mut b, "c", tensor(DType::Bool, &[n], &c));
            let x = feed.edges(&mut b, "x", dtype, &[n]);
            let y = feed.edges(&mut b, "y", dtype, &[n]);
            vec![b.g.add(Op::Select, &[c, x, y]).ok()?]
        }
        OpKind::Cast => {
            let x = feed.edges(&mut b, "x", dtype, &[edges(dtype).len()]);
            let mut v = Vec::new();
            for to in DType::ALL {
                v.push(b.g.add(Op::Cast(to), &[x]).ok()?);
            }
            v
        }
        OpKind::Reshape => {
            let x = feed.edges(&mut b, "x", dtype, &[2, 3, 4]);
            vec![b.g.add(Op::Reshape(vec![4, 6]), &[x]).ok()?]
        }
        OpKind::Transpose => {
            let x = feed.edges(&mut b, "x", dtype, &[2, 3, 4]);
            vec![
                b.g.add(Op::Transpose(vec![2, 0, 1]), &[x]).ok()?,
                b.g.add(Op::Transpose(vec![0, 2, 1]), &[x]).ok()?,
            ]
        }
        OpKind::Broadcast => {
            let x = feed.edges(&mut b, "x", dtype, &[3, 1]);
            vec![b.g.add(Op::Broadcast(vec![2, 3, 4]), &[x]).ok()?]
        }
        OpKind::Slice => {
            let x = feed.edges(&mut b, "x", dtype, &[4, 6]);
            let op = Op::Slice {
                starts: vec![1, 0],
                ends: vec![4, 6],
                steps: vec![2, 3],
            };
            vec![b.g.add(op, &[x]).ok()?]
        }
        OpKind::Concat => {
            let x = feed.edges(&mut b, "x", dtype, &[2, 3]);
            let y = feed.edges(&mut b, "y", dtype, &[2, 2]);
            vec![
                b.g.add(Op::Concat { axis: 1 }, &[x, y]).ok()?,
                b.g.add(Op::Concat { axis: 0 }, &[x, x]).ok()?,
            ]
        }
        OpKind::Pad => {
            let x = feed.edges(&mut b, "x", dtype, &[2, 3]);
            let value = if dtype == DType::Bool { 1.0 } else { 7.0 };
            let op = Op::Pad {
                lo: vec![1, 0],
                hi: vec![0, 2],
                value,
            };
            vec![b.g.add(op, &[x]).ok()?]
        }
        OpKind::Reduce(kind) => {
            let x = feed.edges(&mut b, "x", dtype, &[3, 7]);
            let mut v = Vec::new();
            for (axes, keepdims) in [(vec![1], false), (vec![0], true), (vec![0, 1], false)] {
                let op = Op::Reduce {
                    kind,
                    axes,
                    keepdims,
                };
                v.push(b.g.add(op, &[x]).ok()?);
            }
            v
        }
        OpKind::ArgMax | OpKind::ArgMin => {
            let x = feed.edges(&mut b, "x", dtype, &[3, 7]);
            let mut v = Vec::new();
            for axis in [0, 1] {
                let op = if kind == OpKind::ArgMax {
                    Op::ArgMax { axis }
                } else {
                    Op::ArgMin { axis }
                };
                v.push(b.g.add(op, &[x]).ok()?);
            }
            v
        }
        OpKind::ArgSort => {
            let x = feed.edges(&mut b, "x", dtype, &[3, 7]);
            let mut v = Vec::new();
            for (axis, descending) in [(0, false), (1, false), (1, true)] {
                v.push(b.g.add(Op::ArgSort { axis, descending }, &[x]).ok()?);
            }
            v
        }
        OpKind::MatMul => {
            let x = feed.edges_without_overflow(&mut b, "x", dtype, &[2, 3, 5]);
            let y = feed.edges_without_overflow(&mut b, "y", dtype, &[2, 5, 4]);
            vec![b.g.add(Op::MatMul, &[x, y]).ok()?]
        }
        OpKind::Gather => {
            let x = feed.edges(&mut b, "x", dtype, &[4, 4]);
            let i = feed.input(
                &mut b,
                "i",
                tensor(DType::I64, &[5], &[3.0, 0.0, 2.0, 3.0, 1.0]),
            );
            vec![
                b.g.add(Op::Gather { axis: 0 }, &[x, i]).ok()?,
                b.g.add(Op::Gather { axis: 1 }, &[x, i]).ok()?,
            ]
        }
        OpKind::ScatterAdd => {
            let u = feed.edges(&mut b, "u", dtype, &[5, 3]);
            let i = feed.input(
                &mut b,
                "i",
                tensor(DType::I32, &[5], &[3.0, 0.0, 2.0, 3.0, 1.0]),
            );
            let op = Op::ScatterAdd {
                axis: 0,
                shape: vec![4, 3],
            };
            vec![b.g.add(op, &[u, i]).ok()?]
        }
        OpKind::Random(d) => {
            // The operand is the step key; the other types are refused by the rule.
            let key = feed.input(&mut b, "key", tensor(dtype, &[], &[5.0]));
            let shape = vec![3, 5];
            let (dist, mut operands) = match d {
                DistKind::Uniform => (
                    Dist::Uniform {
                        low: -1.0,
                        high: 2.0,
                    },
                    vec![key],
                ),
                DistKind::Normal => (
                    Dist::Normal {
                        mean: 0.5,
                        std: 2.0,
                    },
                    vec![key],
                ),
                DistKind::Bernoulli => (Dist::Bernoulli, vec![key]),
            };
            if d == DistKind::Bernoulli {
                let p: Vec<f64> = (0..15).map(|i| f64::from(i) / 14.0).collect();
                operands.push(feed.input(&mut b, "p", tensor(DType::F32, &shape, &p)));
            }
            let op = Op::Random {
                dist,
                shape,
                salt: 11,
            };
            vec![b.g.add(op, &operands).ok()?]
        }
        OpKind::StopGradient => {
            let x = feed.edges(&mut b, "x", dtype, &[5]);
            vec![b.g.add(Op::StopGradient, &[x]).ok()?]
        }
        OpKind::Patches => {
            let x = feed.edges(&mut b, "x", dtype, &[2, 2, 4, 5]);
            vec![
                b.g.add(Op::Patches(Window2d::square(3, 1, 1)), &[x]).ok()?,
                b.g.add(Op::Patches(strided()), &[x]).ok()?,
            ]
        }
        OpKind::Fold => {
            let shape = vec![2, 2, 4, 5];
            let win = strided();
            let cols = win.patches_shape(&shape).expect("the window fits");
            let x = feed.edges(&mut b, "x", dtype, &cols);
            vec![b.g.add(Op::Fold { win, shape }, &[x]).ok()?]
        }
    };
    for (i, out) in outs.into_iter().enumerate() {
        b.g.set_output(format!("o{i}"), out);
    }
    let ids = b.g.node_ids();
    assert!(
        ids.iter().any(|&n| b.g.node(n).op.kind() == kind),
        "the `{kind}` instance builds no `{kind}` node"
    );
    Some(b)
}

/// A 2×3 window with stride 2, dilation 2 and uneven padding.
fn strided() -> Window2d {
    Window2d {
        kh: 2,
        kw: 3,
        stride: 2,
        dilation: 2,
        pad_h: (1, 0),
        pad_w: (0, 2),
    }
}
