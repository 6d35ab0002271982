//! The native-code backend: graphs compiled to a linear schedule of steps over
//! preallocated typed buffers (`f32`, `i64` for every integer dtype, `bool`, as in
//! [`dnnc_tensor::Data`]).
//!
//! - `f32` elementwise ops (the unary ops, `add`/`sub`/`mul`/`div`/`pow`/`max`/`min`/
//!   `rem`, and broadcasts of a one-element tensor) become loops JIT-compiled with
//!   Cranelift ([`jit`]). Chains of single-user elementwise nodes of one shape are fused
//!   into one loop ([`fuse`]). Loops whose ops Cranelift has as `f32x4` instructions are
//!   vectorised with a scalar tail; ops without one (`exp`, `log`, `sin`, `cos`, `tanh`,
//!   `erf`, `sign`, `pow`) call Rust helpers from a scalar loop.
//! - Every other op runs a Rust kernel on typed buffers ([`ops`]): integer and `bool`
//!   arithmetic, comparisons, `select`, `cast`, `transpose`/`broadcast`/`slice`/
//!   `concat`/`pad`, reductions, `argmax`/`argmin`, `matmul`, `gather`/`scatter_add`
//!   and the counter-based random draws ([`dnnc_ir::rng`]).
//! - `reshape` and `stop_gradient` alias their operand's buffer; `const` and `iota` are
//!   buffers filled at compile time.
//!
//! Every kernel follows [`dnnc_ir::scalar`] and the interpreter's evaluation order
//! (row-major `f32` accumulation, i-k-j matmul without fused multiply-add, wrapping
//! integers with floor division), so results match the reference interpreter bit for
//! bit except for the sign of a zero from `max`/`min` of `+0` and `-0`.

mod fuse;
mod jit;
mod kernels;
mod ops;

use std::collections::HashMap;

use dnnc_ir::{DType, Graph, NodeId, Op};
use dnnc_tensor::{Data, Tensor};

use crate::fuse::plan;
use crate::jit::{Jit, LoopFn};
use crate::kernels::{affine, broadcast_strides, reduce_strides, strides, transpose_strides};
use crate::ops::Kernel;

/// One step of the schedule. Buffers are named by their index in [`Compiled::buffers`].
enum Step {
    /// A fused elementwise loop: `f(ptrs)` with one pointer per buffer in `bufs`.
    Loop { f: LoopFn, bufs: Vec<usize> },
    /// A Rust kernel reading the buffers `args` and overwriting `dst`.
    Kernel {
        k: Kernel,
        args: Vec<usize>,
        dst: usize,
    },
}

/// A named tensor read into or written out of a buffer.
struct Port {
    name: String,
    buf: usize,
    dtype: DType,
    shape: Vec<usize>,
}

/// A graph compiled to native code, ready to [`run`](Compiled::run) any number of times.
pub struct Compiled {
    /// Owns the machine code that the [`Step::Loop`]s point into.
    _jit: Jit,
    buffers: Vec<Data>,
    inputs: Vec<Port>,
    states: Vec<Port>,
    steps: Vec<Step>,
    outputs: Vec<Port>,
    updates: Vec<Port>,
}

/// Compiles `g`.
pub fn compile(g: &Graph) -> Result<Compiled, String> {
    Compiled::new(g)
}

/// `n` zeros of `dtype`'s storage.
fn zeros(dtype: DType, n: usize) -> Data {
    match dtype {
        DType::F32 => Data::F32(vec![0.0; n]),
        DType::Bool => Data::Bool(vec![false; n]),
        DType::I64 | DType::I32 | DType::U8 => Data::I64(vec![0; n]),
    }
}

/// `values` stored as `dtype`, converted as the interpreter converts constants.
fn from_f64(dtype: DType, values: impl Iterator<Item = f64>) -> Data {
    match dtype {
        DType::F32 => Data::F32(values.map(|v| v as f32).collect()),
        DType::Bool => Data::Bool(values.map(|v| v != 0.0).collect()),
        DType::I64 | DType::I32 | DType::U8 => Data::I64(
            values
                .map(|v| dnnc_ir::scalar::fit(dtype, v as i64))
                .collect(),
        ),
    }
}

/// `(before, size, after)` of `shape` around `axis`.
fn split_at_axis(shape: &[usize], axis: usize) -> ops::Dims {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

impl Compiled {
    fn new(g: &Graph) -> Result<Compiled, String> {
        let live = g.live();
        let order: Vec<NodeId> = g
            .topo_order()?
            .into_iter()
            .filter(|n| live.contains(n))
            .collect();
        let groups = plan(g, &order, &live);

        let mut jit = Jit::new()?;
        let mut buffers: Vec<Data> = Vec::new();
        let mut buf_of: HashMap<NodeId, usize> = HashMap::new();
        let mut inputs = Vec::new();
        let mut states = Vec::new();
        // Loops are compiled together at the end; their function pointers are patched in
        // then.
        let mut pending: Vec<(usize, usize)> = Vec::new();
        let mut steps: Vec<Step> = Vec::new();

        for &id in &order {
            let node = g.node(id);
            let shape = node.ty.shape.clone();
            let dtype = node.ty.dtype;
            let n = node.ty.numel();
            let operands = g.operands(id);
            let arg_shape = |i: usize| g.ty(operands[i]).shape.clone();
            let kernel = match &node.op {
                Op::Input { name, .. } | Op::State { name, .. } => {
                    buffers.push(zeros(dtype, n));
                    let buf = buffers.len() - 1;
                    buf_of.insert(id, buf);
                    let port = Port {
                        name: name.clone(),
                        buf,
                        dtype,
                        shape,
                    };
                    if matches!(node.op, Op::Input { .. }) {
                        inputs.push(port);
                    } else {
                        states.push(port);
                    }
                    continue;
                }
                Op::Const { value, .. } => {
                    buffers.push(from_f64(dtype, std::iter::once(*value)));
                    buf_of.insert(id, buffers.len() - 1);
                    continue;
                }
                Op::Iota { axis, .. } => {
                    let (_, size, after) = split_at_axis(&shape, *axis);
                    buffers.push(from_f64(dtype, (0..n).map(|i| ((i / after) % size) as f64)));
                    buf_of.insert(id, buffers.len() - 1);
                    continue;
                }
                Op::Reshape(_) | Op::StopGradient => {
                    buf_of.insert(id, buf_of[&operands[0]]);
                    continue;
                }
                _ if fuse::is_elementwise(g, id) => {
                    // Only a group's root gets a buffer and a step.
                    let Some(group) = groups.get(&id) else {
                        continue;
                    };
                    buffers.push(zeros(dtype, n));
                    let out = buffers.len() - 1;
                    buf_of.insert(id, out);
                    let mut bufs: Vec<usize> = group.leaves.iter().map(|l| buf_of[l]).collect();
                    bufs.push(out);
                    let f = jit.declare(g, group)?;
                    pending.push((steps.len(), f));
                    steps.push(Step::Loop {
                        f: jit::placeholder,
                        bufs,
                    });
                    continue;
                }
                Op::Unary(u) => Kernel::Unary(*u, dtype),
                Op::Binary(b) => Kernel::Binary(*b, dtype),
                Op::Select => Kernel::Select,
                Op::Cast(to) => Kernel::Cast(*to),
                Op::Transpose(perm) => {
                    Kernel::Take(affine(&shape, &transpose_strides(&arg_shape(0), perm), 0))
                }
                Op::Broadcast(to) => {
                    Kernel::Take(affine(&shape, &broadcast_strides(&arg_shape(0), to), 0))
                }
                Op::Slice { starts, steps, .. } => {
                    let s = strides(&arg_shape(0));
                    let offset = starts.iter().zip(&s).map(|(a, b)| a * b).sum();
                    let st: Vec<usize> = steps.iter().zip(&s).map(|(a, b)| a * b).collect();
                    Kernel::Take(affine(&shape, &st, offset))
                }
                Op::Concat { axis } => {
                    let s = strides(&shape);
                    let mut at = 0;
                    let mut index = Vec::new();
                    for i in 0..operands.len() {
                        let x = arg_shape(i);
                        index.push(affine(&x, &s, at * s[*axis]));
                        at += x[*axis];
                    }
                    Kernel::Concat(index)
                }
                Op::Pad { lo, value, .. } => {
                    let s = strides(&shape);
                    let offset = lo.iter().zip(&s).map(|(a, b)| a * b).sum();
                    Kernel::Pad {
                        fill: from_f64(dtype, std::iter::repeat_n(*value, n)),
                        index: affine(&arg_shape(0), &s, offset),
                    }
                }
                Op::Reduce { kind, axes, .. } => {
                    let x = arg_shape(0);
                    Kernel::Reduce {
                        kind: *kind,
                        dtype,
                        index: affine(&x, &reduce_strides(&x, axes), 0),
                        n,
                    }
                }
                Op::ArgMax { axis } | Op::ArgMin { axis } => Kernel::Arg {
                    max: matches!(node.op, Op::ArgMax { .. }),
                    dims: split_at_axis(&arg_shape(0), *axis),
                },
                Op::MatMul => {
                    let (a, b) = (arg_shape(0), arg_shape(1));
                    let r = a.len();
                    Kernel::MatMul([a[..r - 2].iter().product(), a[r - 2], a[r - 1], b[r - 1]])
                }
                Op::Gather { axis } => Kernel::Gather(split_at_axis(&arg_shape(0), *axis)),
                Op::ScatterAdd { axis, shape: to } => Kernel::ScatterAdd {
                    dims: split_at_axis(to, *axis),
                    dtype,
                    n,
                },
                Op::Random { dist, salt, .. } => Kernel::Random {
                    dist: *dist,
                    n,
                    salt: *salt,
                },
            };
            buffers.push(zeros(dtype, n));
            let dst = buffers.len() - 1;
            buf_of.insert(id, dst);
            let args = operands.iter().map(|o| buf_of[o]).collect();
            steps.push(Step::Kernel {
                k: kernel,
                args,
                dst,
            });
        }
        let fns = jit.finish()?;
        for (at, f) in pending {
            if let Step::Loop { f: slot, .. } = &mut steps[at] {
                *slot = fns[f];
            }
        }
        let port = |named: &[(String, NodeId)]| -> Vec<Port> {
            named
                .iter()
                .map(|(name, id)| Port {
                    name: name.clone(),
                    buf: buf_of[id],
                    dtype: g.ty(*id).dtype,
                    shape: g.ty(*id).shape.clone(),
                })
                .collect()
        };
        let outputs = port(g.outputs());
        let updates = port(g.updates());
        Ok(Compiled {
            _jit: jit,
            buffers,
            inputs,
            states,
            steps,
            outputs,
            updates,
        })
    }

    /// Runs the compiled graph: the same contract as the interpreter's `run`, returning
    /// `(outputs, updates)` in the order the graph declares them.
    #[allow(clippy::type_complexity)]
    pub fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
        states: &HashMap<String, Tensor>,
    ) -> Result<(Vec<(String, Tensor)>, Vec<(String, Tensor)>), String> {
        for (ports, given, what) in [
            (&self.inputs, inputs, "input"),
            (&self.states, states, "state"),
        ] {
            for p in ports {
                let t = given
                    .get(&p.name)
                    .ok_or_else(|| format!("missing {what} `{}`", p.name))?;
                let in_range = match &t.data {
                    Data::I64(v) => v.iter().all(|&x| dnnc_ir::scalar::fit(p.dtype, x) == x),
                    _ => true,
                };
                let fits = t.dtype == p.dtype
                    && t.shape == p.shape
                    && in_range
                    && std::mem::discriminant(&t.data)
                        == std::mem::discriminant(&self.buffers[p.buf])
                    && t.data.len() == self.buffers[p.buf].len();
                if !fits {
                    return Err(format!(
                        "{what} `{}` should be {}{:?}, found {}{:?}",
                        p.name, p.dtype, p.shape, t.dtype, t.shape
                    ));
                }
                match (&mut self.buffers[p.buf], &t.data) {
                    (Data::F32(b), Data::F32(d)) => b.copy_from_slice(d),
                    (Data::I64(b), Data::I64(d)) => b.copy_from_slice(d),
                    (Data::Bool(b), Data::Bool(d)) => b.copy_from_slice(d),
                    _ => unreachable!("storage kinds were checked"),
                }
            }
        }
        for step in &self.steps {
            match step {
                Step::Loop { f, bufs } => {
                    let ptrs: Vec<*mut f32> = bufs
                        .iter()
                        .map(|&b| match &mut self.buffers[b] {
                            Data::F32(v) => v.as_mut_ptr(),
                            _ => unreachable!("loops read and write f32 buffers"),
                        })
                        .collect();
                    // SAFETY: `f` was compiled for exactly these buffers: it reads
                    // `bufs[..n-1]` and writes the last, all `f32` and within their
                    // lengths, and the output buffer is distinct from every input.
                    unsafe { f(ptrs.as_ptr()) };
                }
                Step::Kernel { k, args, dst } => {
                    let mut out = std::mem::replace(&mut self.buffers[*dst], Data::F32(Vec::new()));
                    let ins: Vec<&Data> = args.iter().map(|&a| &self.buffers[a]).collect();
                    let r = k.exec(&ins, &mut out);
                    self.buffers[*dst] = out;
                    r?;
                }
            }
        }
        let collect = |ports: &[Port]| -> Vec<(String, Tensor)> {
            ports
                .iter()
                .map(|p| {
                    let t = Tensor {
                        dtype: p.dtype,
                        shape: p.shape.clone(),
                        data: self.buffers[p.buf].clone(),
                    };
                    (p.name.clone(), t)
                })
                .collect()
        };
        Ok((collect(&self.outputs), collect(&self.updates)))
    }

    /// How many elementwise loops the schedule has (after fusion).
    pub fn loop_count(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Loop { .. }))
            .count()
    }

    /// How many steps the schedule has.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }
}
