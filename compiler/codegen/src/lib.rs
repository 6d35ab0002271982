//! The native-code backend: a graph compiled into one native function over fixed
//! buffers.
//!
//! Compiling goes through four stages, each in its own module:
//! 1. [`schedule`]: the steps that compute the live values — fused `f32` elementwise
//!    loops ([`fuse`]), matrix products with transposes read in place and bias/ReLU
//!    epilogues, and Rust kernels ([`ops`]) for everything else;
//! 2. [`plan`]: memory planning — in-place state updates, one arena for temporaries
//!    with liveness-based sharing;
//! 3. [`jit`]: Cranelift compiles each loop (`f32x4` with a scalar tail) and an entry
//!    function that calls every step in order with constant buffer addresses;
//! 4. running: ports are copied in, the entry function runs, ports are read out. A
//!    step allocates nothing: buffers, packing space and index maps are made once.
//!
//! Numerics: elementwise loops and kernels follow [`dnnc_ir::scalar`] and the
//! interpreter's order exactly; matrix products use [`dnnc_kernels::Gemm`] (fused
//! multiply-add, blocked summation), so they differ from the interpreter by rounding —
//! the differential tests state their tolerance.

mod buffer;
mod dump;
mod fuse;
mod jit;
mod kernels;
mod ops;
mod plan;
mod schedule;

use std::cell::UnsafeCell;
use std::collections::HashMap;

use dnnc_ir::{DType, Graph};
use dnnc_kernels::{pool, Epilogue, Gemm, MatRef};
use dnnc_tensor::{Data, Tensor};

use crate::buffer::{kind_of, Block, View};
use crate::jit::{Call, EntryFn, Jit, LoopFn};
use crate::ops::Kernel;
use crate::plan::Place;
use crate::schedule::{Role, Work};

pub use dnnc_kernels::pool::{set_threads, threads};

/// Loops over at least this many elements split across threads.
const PARALLEL_LOOP: usize = 1 << 15;

/// One step as it runs.
enum Exec {
    /// A loop large enough to split across threads (small ones are called directly).
    Loop {
        f: LoopFn,
        ptrs: Box<[*mut f32]>,
        n: usize,
    },
    Kernel {
        k: Kernel,
        args: Box<[View]>,
        out: View,
        error: UnsafeCell<Option<String>>,
    },
    MatMul {
        gemm: UnsafeCell<Gemm>,
        a: MatRef,
        b: MatRef,
        c: *mut f32,
        /// Elements between consecutive matrices of `a`, `b` and `c`.
        strides: [usize; 3],
        batch: usize,
        ep: Epilogue,
    },
    Copy {
        src: *const u8,
        dst: *mut u8,
        bytes: usize,
    },
}

/// A raw pointer the pool's threads may share.
#[derive(Clone, Copy)]
struct Ptrs(*const *mut f32);
unsafe impl Send for Ptrs {}
unsafe impl Sync for Ptrs {}
impl Ptrs {
    fn get(self) -> *const *mut f32 {
        self.0
    }
}

/// Runs one step; called by the entry function. Returns 0 on success.
unsafe extern "C" fn run_step(step: *const u8) -> i32 {
    let step = &*(step as *const Exec);
    match step {
        Exec::Loop { f, ptrs, n } => {
            let (f, n) = (*f, *n);
            let threads = pool::threads().min(n / (PARALLEL_LOOP / 2)).max(1);
            // Chunks of whole vectors; threads claim them as they come.
            let chunks = if threads > 1 { 4 * threads } else { 1 };
            let ptrs = Ptrs(ptrs.as_ptr());
            pool::run(chunks, threads, &move |_, c| {
                let at = |c: usize| (n / 16 * c / chunks * 16).min(n);
                let (s, e) = (at(c), if c + 1 == chunks { n } else { at(c + 1) });
                f(ptrs.get(), s as i64, e as i64);
            });
            0
        }
        Exec::Kernel {
            k,
            args,
            out,
            error,
        } => {
            let ins: [buffer::In<'_>; 3];
            let mut more = Vec::new();
            let args: &[buffer::In<'_>] = if args.len() <= 3 {
                let pick = |i: usize| args.get(i).map_or(buffer::In::F32(&[]), |v| v.input());
                ins = [pick(0), pick(1), pick(2)];
                &ins[..args.len()]
            } else {
                more.extend(args.iter().map(|v| v.input()));
                &more
            };
            match k.exec(args, out.output()) {
                Ok(()) => 0,
                Err(e) => {
                    *error.get() = Some(e);
                    1
                }
            }
        }
        Exec::MatMul {
            gemm,
            a,
            b,
            c,
            strides,
            batch,
            ep,
        } => {
            let gemm = &mut *gemm.get();
            for i in 0..*batch {
                let a = MatRef {
                    ptr: a.ptr.add(i * strides[0]),
                    ..*a
                };
                let b = MatRef {
                    ptr: b.ptr.add(i * strides[1]),
                    ..*b
                };
                gemm.run(a, b, c.add(i * strides[2]), *ep);
            }
            0
        }
        Exec::Copy { src, dst, bytes } => {
            std::ptr::copy_nonoverlapping(*src, *dst, *bytes);
            0
        }
    }
}

/// A named tensor read into or written out of a fixed buffer.
struct Port {
    name: String,
    view: View,
    dtype: DType,
    shape: Vec<usize>,
}

/// Sizes of a compiled schedule.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub steps: usize,
    pub loops: usize,
    pub matmuls: usize,
    pub kernels: usize,
    pub copies: usize,
    /// Bytes of the arena of temporaries.
    pub arena_bytes: usize,
    /// What the temporaries would take without sharing.
    pub unshared_bytes: usize,
    /// State updates computed in place.
    pub in_place_updates: usize,
}

/// A graph compiled to native code, ready to [`run`](Compiled::run) any number of
/// times. States live inside between runs, so a training loop can
/// [`set_state`](Compiled::set_state) once and then only [`set_input`] and
/// [`execute`](Compiled::execute).
///
/// [`set_input`]: Compiled::set_input
pub struct Compiled {
    /// Owns the machine code of the loops and the entry function.
    _jit: Jit,
    entry: EntryFn,
    /// Steps, boxed so their addresses (baked into the entry function) stay put.
    steps: Box<[Exec]>,
    _blocks: Vec<Block>,
    _loop_ptrs: Vec<Box<[*mut f32]>>,
    inputs: Vec<Port>,
    states: Vec<Port>,
    outputs: Vec<Port>,
    /// `(state port, …)`: after a run, the state's buffer holds its update.
    updates: Vec<usize>,
    stats: Stats,
    dump: String,
    /// The steps as the entry function calls them, for [`Compiled::profile`].
    calls: Vec<Direct>,
}

/// A step called from Rust rather than from the entry function.
enum Direct {
    Loop(LoopFn, *const *mut f32, usize),
    Native(unsafe extern "C" fn(*const u8) -> i32, *const u8),
}

// SAFETY: all raw pointers point into memory the `Compiled` owns; it is used by one
// thread at a time (`&mut self` to run).
unsafe impl Send for Compiled {}

/// Compiles `g`.
pub fn compile(g: &Graph) -> Result<Compiled, String> {
    Compiled::new(g)
}

impl Compiled {
    fn new(g: &Graph) -> Result<Compiled, String> {
        let mut s = schedule::build(g)?;
        let plan = plan::plan(&mut s);
        let dump = dump::schedule(g, &s, &plan);

        // Storage.
        let mut blocks = Vec::new();
        let arena = Block::new(plan.arena_bytes);
        let arena_ptr = arena.ptr();
        blocks.push(arena);
        let mut views: Vec<Option<View>> = vec![None; s.vals.len()];
        for (v, val) in s.vals.iter().enumerate() {
            let ptr = match plan.place[v] {
                Place::Own => {
                    let b = Block::new(val.len * val.kind.size());
                    let p = b.ptr();
                    if let Role::Const(data) = &val.role {
                        let view = View {
                            kind: val.kind,
                            ptr: p,
                            len: val.len,
                        };
                        // SAFETY: a fresh block of the right size.
                        unsafe { view.write(data) };
                    }
                    blocks.push(b);
                    p
                }
                // SAFETY: the planner keeps every offset within the arena.
                Place::Arena(off) => unsafe { arena_ptr.add(off) },
                Place::Alias(_) => continue,
            };
            views[v] = Some(View {
                kind: val.kind,
                ptr,
                len: val.len,
            });
        }
        for v in 0..s.vals.len() {
            if let Place::Alias(to) = plan.place[v] {
                views[v] = views[to];
            }
        }
        let view = |v: usize| views[v].expect("every value has a place");

        // Steps. Small loops are called by the entry function directly; everything
        // else goes through `run_step` with its `Exec` as context.
        let mut jit = Jit::new()?;
        let mut execs: Vec<Exec> = Vec::new();
        let mut loop_ptrs: Vec<Box<[*mut f32]>> = Vec::new();
        enum Spec {
            Direct { f: usize, ptrs: usize, n: usize },
            Step(usize),
        }
        let mut specs: Vec<Spec> = Vec::new();
        let mut big_loops: Vec<(usize, usize)> = Vec::new();
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
        for w in std::mem::take(&mut s.steps) {
            match w {
                Work::Loop {
                    group,
                    leaves,
                    stores,
                    out,
                    n,
                } => {
                    stats.loops += 1;
                    let f = jit.declare(g, &group)?;
                    let ptrs: Box<[*mut f32]> = leaves
                        .iter()
                        .chain(&stores)
                        .chain(std::iter::once(&out))
                        .map(|&v| view(v).ptr as *mut f32)
                        .collect();
                    if n >= PARALLEL_LOOP {
                        big_loops.push((execs.len(), f));
                        specs.push(Spec::Step(execs.len()));
                        execs.push(Exec::Loop {
                            f: placeholder,
                            ptrs,
                            n,
                        });
                    } else {
                        specs.push(Spec::Direct {
                            f,
                            ptrs: loop_ptrs.len(),
                            n,
                        });
                        loop_ptrs.push(ptrs);
                    }
                }
                Work::Kernel { k, args, out } => {
                    stats.kernels += 1;
                    specs.push(Spec::Step(execs.len()));
                    execs.push(Exec::Kernel {
                        k,
                        args: args.iter().map(|&a| view(a)).collect(),
                        out: view(out),
                        error: UnsafeCell::new(None),
                    });
                }
                Work::MatMul {
                    a,
                    b,
                    out,
                    dims,
                    bias,
                    relu,
                } => {
                    stats.matmuls += 1;
                    let [batch, m, k, n] = dims;
                    let operand = |o: schedule::Operand, rows: usize, cols: usize| {
                        // A transposed operand is stored as `[cols, rows]`.
                        let (rs, cs) = if o.transposed {
                            (1, rows as isize)
                        } else {
                            (cols as isize, 1)
                        };
                        MatRef {
                            ptr: view(o.val).ptr as *const f32,
                            rs,
                            cs,
                        }
                    };
                    specs.push(Spec::Step(execs.len()));
                    execs.push(Exec::MatMul {
                        gemm: UnsafeCell::new(Gemm::new(m, n, k)),
                        a: operand(a, m, k),
                        b: operand(b, k, n),
                        c: view(out).ptr as *mut f32,
                        strides: [m * k, k * n, m * n],
                        batch,
                        ep: Epilogue {
                            accumulate: false,
                            bias: bias.map(|v| view(v).ptr as *const f32),
                            relu,
                        },
                    });
                }
                Work::Copy { src, dst } => {
                    stats.copies += 1;
                    let (src, dst) = (view(src), view(dst));
                    specs.push(Spec::Step(execs.len()));
                    execs.push(Exec::Copy {
                        src: src.ptr,
                        dst: dst.ptr,
                        bytes: src.bytes(),
                    });
                }
            }
        }
        let mut steps: Box<[Exec]> = execs.into_boxed_slice();
        let calls: Vec<Call> = specs
            .iter()
            .map(|spec| match *spec {
                Spec::Direct { f, ptrs, n } => Call::Loop {
                    f,
                    ptrs: loop_ptrs[ptrs].as_ptr(),
                    n,
                },
                Spec::Step(i) => Call::Native {
                    f: run_step,
                    ctx: &steps[i] as *const Exec as *const u8,
                },
            })
            .collect();
        let (fns, entry) = jit.finish(&calls)?;
        for (at, f) in big_loops {
            if let Exec::Loop { f: slot, .. } = &mut steps[at] {
                *slot = fns[f];
            }
        }
        let calls: Vec<Direct> = calls
            .into_iter()
            .map(|c| match c {
                Call::Loop { f, ptrs, n } => Direct::Loop(fns[f], ptrs, n),
                Call::Native { f, ctx } => Direct::Native(f, ctx),
            })
            .collect();
        let port = |p: &schedule::Port| Port {
            name: p.name.clone(),
            view: view(p.val),
            dtype: p.dtype,
            shape: p.shape.clone(),
        };
        Ok(Compiled {
            _jit: jit,
            entry,
            steps,
            _blocks: blocks,
            _loop_ptrs: loop_ptrs,
            inputs: s.inputs.iter().map(port).collect(),
            states: s.states.iter().map(port).collect(),
            outputs: s.outputs.iter().map(port).collect(),
            updates: s.updates.iter().map(|&(p, _)| p).collect(),
            stats,
            dump,
            calls,
        })
    }

    /// Runs the schedule `runs` times one step at a time and returns each step's line
    /// of the schedule text with its median time in microseconds (`dnnc bench
    /// --profile`).
    pub fn profile(&mut self, runs: usize) -> Result<Vec<(String, f64)>, String> {
        let lines: Vec<String> = self
            .dump
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                l.starts_with('s') && l[1..].starts_with(|c: char| c.is_ascii_digit())
            })
            .map(|l| l.trim().to_string())
            .collect();
        let mut times = vec![Vec::with_capacity(runs); self.calls.len()];
        for _ in 0..runs.max(1) {
            for (i, call) in self.calls.iter().enumerate() {
                let t = std::time::Instant::now();
                // SAFETY: the same calls the entry function makes, in the same order.
                let status = unsafe {
                    match *call {
                        Direct::Loop(f, ptrs, n) => {
                            f(ptrs, 0, n as i64);
                            0
                        }
                        Direct::Native(f, ctx) => f(ctx),
                    }
                };
                times[i].push(t.elapsed().as_secs_f64() * 1e6);
                if status != 0 {
                    return Err(format!("codegen: step {i} failed"));
                }
            }
        }
        Ok(times
            .into_iter()
            .enumerate()
            .map(|(i, mut t)| {
                t.sort_by(f64::total_cmp);
                (lines.get(i).cloned().unwrap_or_default(), t[t.len() / 2])
            })
            .collect())
    }

    /// Copies `t` into the input or state port `p`, after checking its type.
    fn fill(p: &Port, t: &Tensor, what: &str) -> Result<(), String> {
        let in_range = match &t.data {
            Data::I64(v) => v.iter().all(|&x| dnnc_ir::scalar::fit(p.dtype, x) == x),
            _ => true,
        };
        let fits = t.dtype == p.dtype
            && t.shape == p.shape
            && in_range
            && kind_of(&t.data) == p.view.kind
            && t.data.len() == p.view.len;
        if !fits {
            return Err(format!(
                "{what} `{}` should be {}{:?}, found {}{:?}",
                p.name, p.dtype, p.shape, t.dtype, t.shape
            ));
        }
        // SAFETY: the port's buffer is not in use between runs.
        unsafe { p.view.write(&t.data) };
        Ok(())
    }

    /// Sets input `name` for the next [`execute`](Compiled::execute).
    pub fn set_input(&mut self, name: &str, t: &Tensor) -> Result<(), String> {
        let p = self
            .inputs
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("the graph has no input `{name}`"))?;
        Self::fill(p, t, "input")
    }

    /// Whether the graph reads input `name`.
    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|p| p.name == name)
    }

    /// Sets state `name`; it keeps its value (and receives its updates) across runs.
    /// States the graph does not have are ignored.
    pub fn set_state(&mut self, name: &str, t: &Tensor) -> Result<(), String> {
        match self.states.iter().find(|p| p.name == name) {
            Some(p) => Self::fill(p, t, "state"),
            None => Ok(()),
        }
    }

    /// The names of the graph's states.
    pub fn state_names(&self) -> impl Iterator<Item = &str> {
        self.states.iter().map(|p| p.name.as_str())
    }

    /// The current value of state `name`.
    pub fn state(&self, name: &str) -> Option<Tensor> {
        self.states.iter().find(|p| p.name == name).map(|p| Tensor {
            dtype: p.dtype,
            shape: p.shape.clone(),
            // SAFETY: no run is in progress.
            data: unsafe { p.view.read() },
        })
    }

    /// Copies the current value of state `name` into `t` (same type), without
    /// allocating.
    pub fn read_state_into(&self, name: &str, t: &mut Tensor) -> Result<(), String> {
        let p = self
            .states
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("the graph has no state `{name}`"))?;
        // SAFETY: no run is in progress.
        match (unsafe { p.view.input() }, &mut t.data) {
            (buffer::In::F32(s), Data::F32(d)) if d.len() == s.len() => d.copy_from_slice(s),
            (buffer::In::I64(s), Data::I64(d)) if d.len() == s.len() => d.copy_from_slice(s),
            (buffer::In::Bool(s), Data::Bool(d)) if d.len() == s.len() => d.copy_from_slice(s),
            _ => return Err(format!("state `{name}` does not fit the given tensor")),
        }
        Ok(())
    }

    /// Runs the compiled graph once on the current inputs and states; states receive
    /// their updates. Allocates nothing.
    pub fn execute(&mut self) -> Result<(), String> {
        // SAFETY: the entry function touches only the buffers planned for it.
        let status = unsafe { (self.entry)() };
        if status == 0 {
            return Ok(());
        }
        let at = status as usize - 1;
        let msg = self
            .steps
            .iter_mut()
            .find_map(|e| match e {
                Exec::Kernel { error, .. } => error.get_mut().take(),
                _ => None,
            })
            .unwrap_or_else(|| format!("codegen: step {at} failed"));
        Err(msg)
    }

    /// The scalar value of output `i` as `f64` (loss and metrics), or `None` if it is
    /// not a one-element tensor.
    pub fn output_scalar(&self, i: usize) -> Option<f64> {
        let p = self.outputs.get(i)?;
        if p.view.len != 1 {
            return None;
        }
        // SAFETY: no run is in progress.
        Some(match unsafe { p.view.input() } {
            buffer::In::F32(v) => f64::from(v[0]),
            buffer::In::I64(v) => v[0] as f64,
            buffer::In::Bool(v) => f64::from(u8::from(v[0])),
        })
    }

    /// The names of the outputs, in order.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().map(|p| p.name.as_str())
    }

    /// Output `name` as a tensor.
    pub fn output(&self, name: &str) -> Option<Tensor> {
        self.outputs
            .iter()
            .find(|p| p.name == name)
            .map(|p| Tensor {
                dtype: p.dtype,
                shape: p.shape.clone(),
                // SAFETY: no run is in progress.
                data: unsafe { p.view.read() },
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
                Self::fill(p, t, what)?;
            }
        }
        self.execute()?;
        let tensor = |p: &Port| {
            let t = Tensor {
                dtype: p.dtype,
                shape: p.shape.clone(),
                // SAFETY: the run has finished.
                data: unsafe { p.view.read() },
            };
            (p.name.clone(), t)
        };
        let outputs = self.outputs.iter().map(tensor).collect();
        let updates = self
            .updates
            .iter()
            .map(|&s| tensor(&self.states[s]))
            .collect();
        Ok((outputs, updates))
    }

    /// How many elementwise loops the schedule has (after fusion).
    pub fn loop_count(&self) -> usize {
        self.stats.loops
    }

    /// How many steps the schedule has.
    pub fn step_count(&self) -> usize {
        self.stats.steps
    }

    /// Sizes of the schedule and its memory plan.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The schedule and memory plan as text (`dnnc compile --emit schedule`).
    pub fn schedule_text(&self) -> &str {
        &self.dump
    }
}

/// Stands in for a large loop until the module is finalised.
unsafe extern "C" fn placeholder(_: *const *mut f32, _: i64, _: i64) {}
