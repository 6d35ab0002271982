//! The native-code backend, first step: graphs whose tensors are all `f32`, compiled to a
//! linear schedule of steps over preallocated buffers.
//!
//! - Elementwise ops (the `f32` unary ops, `add`/`sub`/`mul`/`div`/`pow`/`max`/`min`/
//!   `rem`, and broadcasts of a one-element tensor) become loops JIT-compiled with
//!   Cranelift ([`jit`]). Chains of single-user elementwise nodes of one shape are fused
//!   into one loop ([`fuse`]). Loops whose ops Cranelift has as `f32x4` instructions are
//!   vectorised with a scalar tail; ops without one (`exp`, `log`, `sin`, `cos`, `tanh`,
//!   `erf`, `sign`, `pow`) call Rust helpers from a scalar loop.
//! - `matmul`, `reduce`, `transpose` and general `broadcast` run Rust kernels ([`kernels`]).
//! - `reshape` and `stop_gradient` alias their operand's buffer; `const` is a buffer
//!   filled at compile time.
//!
//! Every kernel follows [`dnnc_ir::scalar`] and the interpreter's evaluation order
//! (row-major `f32` accumulation, i-k-j matmul without fused multiply-add), so results
//! match the reference interpreter bit for bit except for the sign of a zero from
//! `max`/`min` of `+0` and `-0`.

mod fuse;
mod jit;
mod kernels;

use std::collections::HashMap;

use dnnc_ir::{DType, Graph, NodeId, Op, ReduceKind};
use dnnc_tensor::Tensor;

use crate::fuse::plan;
use crate::jit::{Jit, LoopFn};
use crate::kernels::{affine, broadcast_strides, reduce_strides, transpose_strides};

/// One step of the schedule. Buffers are named by their index in [`Compiled::buffers`].
enum Step {
    /// A fused elementwise loop: `f(ptrs)` with one pointer per buffer in `bufs`.
    Loop { f: LoopFn, bufs: Vec<usize> },
    /// `dst[i] = src[index[i]]` (transpose, broadcast).
    Gather {
        src: usize,
        dst: usize,
        index: Vec<usize>,
    },
    /// `dst[index[i]] = op(dst[index[i]], src[i])` from `init`, in row-major order.
    Reduce {
        kind: ReduceKind,
        src: usize,
        dst: usize,
        index: Vec<usize>,
    },
    /// Batched `[B, M, K] @ [B, K, N]`.
    MatMul {
        a: usize,
        b: usize,
        c: usize,
        dims: [usize; 4],
    },
}

/// A named tensor read into or written out of a buffer.
struct Port {
    name: String,
    buf: usize,
    shape: Vec<usize>,
}

/// A graph compiled to native code, ready to [`run`](Compiled::run) any number of times.
pub struct Compiled {
    /// Owns the machine code that the [`Step::Loop`]s point into.
    _jit: Jit,
    buffers: Vec<Vec<f32>>,
    inputs: Vec<Port>,
    states: Vec<Port>,
    steps: Vec<Step>,
    outputs: Vec<Port>,
    updates: Vec<Port>,
}

/// Compiles `g` (every live tensor `f32`).
pub fn compile(g: &Graph) -> Result<Compiled, String> {
    Compiled::new(g)
}

impl Compiled {
    fn new(g: &Graph) -> Result<Compiled, String> {
        let live = g.live();
        let order: Vec<NodeId> = g
            .topo_order()?
            .into_iter()
            .filter(|n| live.contains(n))
            .collect();
        for &id in &order {
            let node = g.node(id);
            if node.ty.dtype != DType::F32 {
                return Err(format!(
                    "codegen: `{}` (%{}) has type {}; only f32 graphs are supported",
                    node.op.kind(),
                    id.raw(),
                    node.ty
                ));
            }
            if !supported(&node.op) {
                return Err(format!(
                    "codegen: op `{}` (%{}) is not supported yet",
                    node.op.kind(),
                    id.raw()
                ));
            }
        }
        let groups = plan(g, &order, &live);

        let mut jit = Jit::new()?;
        let mut buffers: Vec<Vec<f32>> = Vec::new();
        let mut buf_of: HashMap<NodeId, usize> = HashMap::new();
        let new_buf = |buffers: &mut Vec<Vec<f32>>, n: usize| {
            buffers.push(vec![0.0; n]);
            buffers.len() - 1
        };
        let mut inputs = Vec::new();
        let mut states = Vec::new();
        // Loops are compiled together at the end; their function pointers are patched in
        // then.
        let mut pending: Vec<(usize, usize)> = Vec::new();
        let mut steps: Vec<Step> = Vec::new();

        for &id in &order {
            let node = g.node(id);
            let shape = node.ty.shape.clone();
            let operand_buf =
                |buf_of: &HashMap<NodeId, usize>, i: usize| -> usize { buf_of[&g.operands(id)[i]] };
            match &node.op {
                Op::Input { name, .. } | Op::State { name, .. } => {
                    let buf = new_buf(&mut buffers, node.ty.numel());
                    buf_of.insert(id, buf);
                    let port = Port {
                        name: name.clone(),
                        buf,
                        shape,
                    };
                    if matches!(node.op, Op::Input { .. }) {
                        inputs.push(port);
                    } else {
                        states.push(port);
                    }
                }
                Op::Const { value, .. } => {
                    buffers.push(vec![*value as f32]);
                    buf_of.insert(id, buffers.len() - 1);
                }
                Op::Reshape(_) | Op::StopGradient => {
                    let src = operand_buf(&buf_of, 0);
                    buf_of.insert(id, src);
                }
                Op::Transpose(perm) => {
                    let x = g.ty(g.operands(id)[0]);
                    let index = affine(&shape, &transpose_strides(&x.shape, perm));
                    let src = operand_buf(&buf_of, 0);
                    let dst = new_buf(&mut buffers, node.ty.numel());
                    buf_of.insert(id, dst);
                    steps.push(Step::Gather { src, dst, index });
                }
                Op::Broadcast(to) if !fuse::is_elementwise(g, id) => {
                    let x = g.ty(g.operands(id)[0]);
                    let index = affine(&shape, &broadcast_strides(&x.shape, to));
                    let src = operand_buf(&buf_of, 0);
                    let dst = new_buf(&mut buffers, node.ty.numel());
                    buf_of.insert(id, dst);
                    steps.push(Step::Gather { src, dst, index });
                }
                Op::Reduce { kind, axes, .. } => {
                    let x = g.ty(g.operands(id)[0]);
                    let index = affine(&x.shape, &reduce_strides(&x.shape, axes));
                    let src = operand_buf(&buf_of, 0);
                    let dst = new_buf(&mut buffers, node.ty.numel());
                    buf_of.insert(id, dst);
                    steps.push(Step::Reduce {
                        kind: *kind,
                        src,
                        dst,
                        index,
                    });
                }
                Op::MatMul => {
                    let a = g.ty(g.operands(id)[0]);
                    let b = g.ty(g.operands(id)[1]);
                    let r = a.rank();
                    let dims = [
                        a.shape[..r - 2].iter().product(),
                        a.shape[r - 2],
                        a.shape[r - 1],
                        b.shape[r - 1],
                    ];
                    let (ab, bb) = (operand_buf(&buf_of, 0), operand_buf(&buf_of, 1));
                    let c = new_buf(&mut buffers, node.ty.numel());
                    buf_of.insert(id, c);
                    steps.push(Step::MatMul {
                        a: ab,
                        b: bb,
                        c,
                        dims,
                    });
                }
                _ => {
                    // Elementwise: only a group's root gets a buffer and a step.
                    let Some(group) = groups.get(&id) else {
                        continue;
                    };
                    let out = new_buf(&mut buffers, node.ty.numel());
                    buf_of.insert(id, out);
                    let mut bufs: Vec<usize> = group.leaves.iter().map(|l| buf_of[l]).collect();
                    bufs.push(out);
                    let f = jit.declare(g, group)?;
                    pending.push((steps.len(), f));
                    steps.push(Step::Loop {
                        f: jit::placeholder,
                        bufs,
                    });
                }
            }
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
                let data = match (t.dtype, t.as_f32()) {
                    (DType::F32, Some(d)) if t.shape == p.shape && d.len() == t.len() => d,
                    _ => {
                        return Err(format!(
                            "{what} `{}` should be f32{:?}, found {}{:?}",
                            p.name, p.shape, t.dtype, t.shape
                        ))
                    }
                };
                self.buffers[p.buf].copy_from_slice(data);
            }
        }
        for step in &self.steps {
            match step {
                Step::Loop { f, bufs } => {
                    let ptrs: Vec<*mut f32> =
                        bufs.iter().map(|&b| self.buffers[b].as_mut_ptr()).collect();
                    // SAFETY: `f` was compiled for exactly these buffers: it reads
                    // `bufs[..n-1]` and writes the last, all within their lengths, and
                    // the output buffer is distinct from every input.
                    unsafe { f(ptrs.as_ptr()) };
                }
                Step::Gather { src, dst, index } => {
                    let mut out = std::mem::take(&mut self.buffers[*dst]);
                    kernels::gather(&self.buffers[*src], index, &mut out);
                    self.buffers[*dst] = out;
                }
                Step::Reduce {
                    kind,
                    src,
                    dst,
                    index,
                } => {
                    let mut out = std::mem::take(&mut self.buffers[*dst]);
                    kernels::reduce(*kind, &self.buffers[*src], index, &mut out);
                    self.buffers[*dst] = out;
                }
                Step::MatMul { a, b, c, dims } => {
                    let mut out = std::mem::take(&mut self.buffers[*c]);
                    kernels::matmul(&self.buffers[*a], &self.buffers[*b], *dims, &mut out);
                    self.buffers[*c] = out;
                }
            }
        }
        let collect = |ports: &[Port]| -> Vec<(String, Tensor)> {
            ports
                .iter()
                .map(|p| {
                    let t = Tensor {
                        dtype: DType::F32,
                        shape: p.shape.clone(),
                        data: dnnc_tensor::Data::F32(self.buffers[p.buf].clone()),
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

/// Ops this backend compiles (for `f32` operands).
fn supported(op: &Op) -> bool {
    match op {
        Op::Input { .. }
        | Op::State { .. }
        | Op::Const { .. }
        | Op::Reshape(_)
        | Op::Transpose(_)
        | Op::Broadcast(_)
        | Op::Reduce { .. }
        | Op::MatMul
        | Op::StopGradient => true,
        Op::Unary(u) => fuse::unary_supported(*u),
        Op::Binary(b) => fuse::binary_supported(*b),
        _ => false,
    }
}
