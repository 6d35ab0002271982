//! The native-code backend: graphs compiled to native code with Cranelift.
//!
//! Compiling goes through four stages, each in its own module:
//! 1. [`schedule`]: the steps that compute the live values — fused `f32` elementwise
//!    loops ([`fuse`]), matrix products with transposes read in place and bias/ReLU
//!    epilogues, and Rust kernels for everything else;
//! 2. [`plan`]: memory planning — in-place state updates, one arena for temporaries
//!    with liveness-based sharing;
//! 3. [`program`](build_program): both as a [`dnnc_exec::Program`], the description an
//!    instance is made from (and that `dnnc compile` embeds in static libraries);
//! 4. [`jit`]: Cranelift compiles each loop (`f32x4` with a scalar tail) and an entry
//!    function that calls every step in order with constant buffer addresses; the
//!    same loops go into object files for static libraries ([`object`]). With the
//!    `llvm` feature, `compile_llvm` compiles the same loops with LLVM instead
//!    (512-bit vectors for the host CPU), and the instance sequences the steps.
//!
//! Running is [`dnnc_exec::Instance`]'s job: ports copied in, the entry function run,
//! ports read out; a step allocates nothing.
//!
//! Numerics: elementwise loops and kernels follow [`dnnc_ir::scalar`] and the
//! interpreter's order exactly; matrix products use [`dnnc_kernels::Gemm`] (fused
//! multiply-add, blocked summation), so they differ from the interpreter by rounding —
//! the differential tests state their tolerance.

mod dump;
pub mod error;
mod fuse;
mod jit;
#[cfg(feature = "llvm")]
mod llvm;
mod loop_ops;
pub mod object;
mod plan;
mod schedule;

use std::collections::HashMap;

use dnnc_exec::program::{PortDesc, Stats, StepDesc, ValDesc};
use dnnc_exec::{Call, ExecError, Instance, Program, Store};
use dnnc_ir::Graph;
use dnnc_tensor::Tensor;

use crate::fuse::Group;
use crate::jit::{EntryFn, Jit};
use crate::plan::Place;
use crate::schedule::{Role, Work};

pub use dnnc_kernels::pool::{set_threads, threads};
pub use error::CodegenError;

/// A graph compiled to native code, ready to [`run`](Compiled::run) any number of
/// times. States live inside between runs, so a training loop can
/// [`set_state`](Compiled::set_state) once and then only [`set_input`] and
/// [`execute`](Compiled::execute).
///
/// [`set_input`]: Compiled::set_input
pub struct Compiled {
    code: Code,
    instance: Instance,
    program: Program,
}

/// Owns the machine code of the loops (and, for Cranelift, the entry function).
enum Code {
    Cranelift {
        _jit: Box<Jit>,
        entry: EntryFn,
    },
    /// Steps sequenced from Rust by [`Instance::run`].
    #[cfg(feature = "llvm")]
    Llvm {
        _engine: llvm::Engine,
    },
}

/// Compiles `g`; its states live in the compiled graph.
pub fn compile(g: &Graph) -> Result<Compiled, CodegenError> {
    compile_in(g, None)
}

/// Compiles `g` with its states bound to `store` (shared with the other graphs bound
/// to it) when one is given.
pub fn compile_in(g: &Graph, store: Option<&Store>) -> Result<Compiled, CodegenError> {
    let (program, groups) = build_program(g)?;
    let mut jit = Jit::new().map_err(CodegenError::Cranelift)?;
    for group in &groups {
        jit.declare(g, group).map_err(CodegenError::Cranelift)?;
    }
    let mut instance = Instance::with_store(&program, None, store)?;
    let calls: Vec<Call> = instance.calls();
    let (loops, entry) = jit.finish(&calls).map_err(CodegenError::Cranelift)?;
    instance.set_loops(&loops);
    Ok(Compiled {
        code: Code::Cranelift {
            _jit: Box::new(jit),
            entry,
        },
        instance,
        program,
    })
}

/// Compiles `g` with the LLVM backend: the same schedule and memory plan, loops
/// compiled by LLVM for the host CPU with 512-bit vectors.
#[cfg(feature = "llvm")]
pub fn compile_llvm(g: &Graph) -> Result<Compiled, CodegenError> {
    compile_llvm_in(g, None)
}

/// [`compile_llvm`] with its states bound to `store`, as [`compile_in`].
#[cfg(feature = "llvm")]
pub fn compile_llvm_in(g: &Graph, store: Option<&Store>) -> Result<Compiled, CodegenError> {
    let (program, groups) = build_program(g)?;
    let (engine, loops) = llvm::compile(g, &groups).map_err(CodegenError::Llvm)?;
    let instance = Instance::with_store(&program, Some(&loops), store)?;
    Ok(Compiled {
        code: Code::Llvm { _engine: engine },
        instance,
        program,
    })
}

/// The LLVM IR of `g`'s loops before optimisation (for tests and debugging).
#[cfg(feature = "llvm")]
pub fn llvm_ir(g: &Graph) -> Result<String, CodegenError> {
    let (_, groups) = build_program(g)?;
    llvm::ir_text(g, &groups).map_err(CodegenError::Llvm)
}

/// The schedule and memory plan of `g` as a [`Program`], with the fused group of each
/// of its loop functions (loop `i` computes `groups[i]`).
pub(crate) fn build_program(g: &Graph) -> Result<(Program, Vec<Group>), CodegenError> {
    let mut s = schedule::build(g).map_err(CodegenError::Schedule)?;
    let plan = plan::plan(&mut s);
    let text = dump::schedule(g, &s, &plan);
    // Values no step or port touches (a splat whose every user computes it in its own
    // loop) get no storage.
    let mut used = vec![false; s.vals.len()];
    for w in &s.steps {
        for v in w.reads().into_iter().chain(w.writes()) {
            used[v] = true;
        }
    }
    for p in s.inputs.iter().chain(&s.states).chain(&s.outputs) {
        used[p.val] = true;
    }
    let vals = s
        .vals
        .iter()
        .enumerate()
        .map(|(v, val)| ValDesc {
            dtype: val.dtype,
            len: if used[v] { val.len } else { 0 },
            place: plan.place[v],
            init: match &val.role {
                Role::Const(d) if used[v] => Some(d.clone()),
                _ => None,
            },
        })
        .collect();
    let mut stats = Stats {
        steps: s.steps.len(),
        arena_bytes: plan.arena_bytes,
        unshared_bytes: plan.unshared_bytes,
        in_place_updates: plan
            .place
            .iter()
            .filter(|p| matches!(p, Place::Alias(_)))
            .count(),
        ..Stats::default()
    };
    let mut groups = Vec::new();
    let steps = std::mem::take(&mut s.steps)
        .into_iter()
        .map(|w| match w {
            Work::Loop {
                group,
                leaves,
                stores,
                out,
                n,
            } => {
                stats.loops += 1;
                let mut vals = leaves;
                vals.extend(stores);
                vals.push(out);
                let cost = loop_ops::loop_cost(g, &group.members, vals.len());
                groups.push(group);
                StepDesc::Loop {
                    f: groups.len() - 1,
                    vals,
                    n,
                    cost,
                }
            }
            Work::Kernel { k, args, out } => {
                stats.kernels += 1;
                StepDesc::Kernel { k, args, out }
            }
            Work::MatMul {
                a,
                b,
                out,
                dims,
                bias,
                relu,
                bf16,
            } => {
                stats.matmuls += 1;
                StepDesc::MatMul {
                    a,
                    b,
                    out,
                    dims,
                    bias,
                    relu,
                    bf16,
                }
            }
            Work::Copy { src, dst } => {
                stats.copies += 1;
                StepDesc::Copy { src, dst }
            }
        })
        .collect();
    let port = |p: &schedule::Port| PortDesc {
        name: p.name.clone(),
        val: p.val,
        dtype: p.dtype,
        shape: p.shape.clone(),
    };
    let program = Program {
        name: g.name.clone(),
        vals,
        arena_bytes: plan.arena_bytes,
        steps,
        inputs: s.inputs.iter().map(port).collect(),
        states: s.states.iter().map(port).collect(),
        outputs: s.outputs.iter().map(port).collect(),
        updates: s.updates.iter().map(|&(p, _)| p).collect(),
        index_limits: g.index_limits().to_vec(),
        loop_count: groups.len(),
        stats,
        text,
    };
    Ok((program, groups))
}

impl Compiled {
    /// Whether the graph reads input `name`.
    pub fn has_input(&self, name: &str) -> bool {
        self.instance.has_input(name)
    }

    /// Sets input `name` for the next [`execute`](Compiled::execute).
    pub fn set_input(&mut self, name: &str, t: &Tensor) -> Result<(), ExecError> {
        self.instance.set_input(name, t)
    }

    /// Sets state `name`; it keeps its value (and receives its updates) across runs.
    /// States the graph does not have are ignored.
    pub fn set_state(&mut self, name: &str, t: &Tensor) -> Result<(), ExecError> {
        self.instance.set_state(name, t)
    }

    /// The names of the graph's states.
    pub fn state_names(&self) -> impl Iterator<Item = &str> {
        self.instance.state_names()
    }

    /// The current value of state `name`.
    pub fn state(&self, name: &str) -> Option<Tensor> {
        self.instance.state(name)
    }

    /// Copies the current value of state `name` into `t` (same type), without
    /// allocating.
    pub fn read_state_into(&self, name: &str, t: &mut Tensor) -> Result<(), ExecError> {
        self.instance.read_state_into(name, t)
    }

    /// Runs the compiled graph once on the current inputs and states; states receive
    /// their updates. Allocates nothing.
    pub fn execute(&mut self) -> Result<(), ExecError> {
        let entry = match &self.code {
            Code::Cranelift { entry, .. } => *entry,
            #[cfg(feature = "llvm")]
            Code::Llvm { .. } => return self.instance.run(),
        };
        self.instance.check_inputs()?;
        // SAFETY: the entry function touches only the instance's planned buffers.
        let status = unsafe { entry() };
        if status == 0 {
            Ok(())
        } else {
            Err(ExecError::Kernel(self.instance.take_error()))
        }
    }

    /// The scalar value of output `i` as `f64` (loss and metrics), or `None` if it is
    /// not a one-element tensor.
    pub fn output_scalar(&self, i: usize) -> Option<f64> {
        self.instance.output_scalar(i)
    }

    /// The names of the outputs, in order.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.instance.output_names()
    }

    /// Output `name` as a tensor.
    pub fn output(&self, name: &str) -> Option<Tensor> {
        self.instance.output(name)
    }

    /// The next run's input `to` is this run's output `from` (see `Instance::carry`).
    pub fn carry(&mut self, from: &str, to: &str) -> Result<(), dnnc_exec::ExecError> {
        self.instance.carry(from, to)
    }

    /// Runs the compiled graph: the same contract as the interpreter's `run`, returning
    /// `(outputs, updates)` in the order the graph declares them.
    #[allow(clippy::type_complexity)]
    pub fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
        states: &HashMap<String, Tensor>,
    ) -> Result<(Vec<(String, Tensor)>, Vec<(String, Tensor)>), ExecError> {
        self.instance.set_all(inputs, states)?;
        self.execute()?;
        Ok(self.instance.results())
    }

    /// Runs the schedule `runs` times one step at a time and returns each step's line
    /// of the schedule text with its median time in microseconds (`dnnc bench` with
    /// `DNNC_PROFILE`).
    pub fn profile(&mut self, runs: usize) -> Result<Vec<(String, f64)>, ExecError> {
        let lines: Vec<String> = self
            .program
            .text
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                l.starts_with('s') && l[1..].starts_with(|c: char| c.is_ascii_digit())
            })
            .map(|l| l.trim().to_string())
            .collect();
        let times = self.instance.profile(runs)?;
        Ok(times
            .into_iter()
            .enumerate()
            .map(|(i, t)| (lines.get(i).cloned().unwrap_or_default(), t))
            .collect())
    }

    /// How many elementwise loops the schedule has (after fusion).
    pub fn loop_count(&self) -> usize {
        self.program.stats.loops
    }

    /// How many steps the schedule has.
    pub fn step_count(&self) -> usize {
        self.program.stats.steps
    }

    /// Sizes of the schedule and its memory plan.
    pub fn stats(&self) -> &Stats {
        &self.program.stats
    }

    /// The schedule and memory plan as text (`dnnc compile --emit schedule`).
    pub fn schedule_text(&self) -> &str {
        &self.program.text
    }
}
