//! A [`Program`] made real: storage allocated, kernels expanded, steps ready to run any
//! number of times without allocating.
//!
//! Steps run in order either from Rust ([`Instance::run`]) or from a JIT-compiled entry
//! function that calls [`run_step`] and the loop functions directly
//! ([`Instance::calls`]). Every raw pointer here points into blocks the instance owns;
//! an instance is used by one thread at a time (`&mut self` to run), and separate
//! instances share nothing.

use std::cell::UnsafeCell;

use dnnc_ir::{DType, IndexOutOfRange};
use dnnc_kernels::{pool, Epilogue, Gemm, MatRef};
use dnnc_tensor::Tensor;

use crate::buffer::{Block, In, View};
use crate::error::ExecError;
use crate::ops::Kernel;
use crate::program::{Place, Program, StepDesc};
use crate::store::{Slot, Store};

/// A compiled loop: reads and writes the buffers whose pointers it is given, for
/// elements `start..end`.
pub type LoopFn = unsafe extern "C" fn(*const *mut f32, i64, i64);

/// Loops of at least this many units of work (elements × cost per element) split
/// across threads: a plain sum from 32768 elements, the gates of an LSTM step
/// (three sigmoids and two tanh per element) from a few thousand.
pub const PARALLEL_LOOP: usize = 1 << 17;

/// Whether a loop over `n` elements at `cost` units each splits across threads.
pub fn loop_splits(n: usize, cost: usize) -> bool {
    n.saturating_mul(cost) >= PARALLEL_LOOP
}

/// One step as it runs.
pub enum Exec {
    /// A large loop, split across threads (small ones are called directly).
    Loop {
        f: LoopFn,
        /// Its number in the program.
        number: usize,
        ptrs: Box<[*mut f32]>,
        n: usize,
        /// Units of work in all (see [`PARALLEL_LOOP`]).
        work: usize,
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
    /// `i8` products accumulated in `i32` (operands stored row by row).
    MatMulI8 {
        gemm: UnsafeCell<dnnc_kernels::int8::GemmI8>,
        a: *const i8,
        b: *const i8,
        c: *mut i32,
        strides: [usize; 3],
        batch: usize,
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

/// Runs `f` over `0..n`, in chunks of whole vectors across threads when its `work` is
/// large.
///
/// # Safety
/// `f` must be a loop compiled for the buffers `ptrs` points to, each at least `n`
/// elements (or one, for splatted leaves).
unsafe fn run_loop(f: LoopFn, ptrs: *const *mut f32, n: usize, work: usize) {
    let threads = pool::threads()
        .min(work / (PARALLEL_LOOP / 2))
        .min(n / 64)
        .max(1);
    if threads == 1 {
        f(ptrs, 0, n as i64);
        return;
    }
    let chunks = 4 * threads;
    let ptrs = Ptrs(ptrs);
    pool::run(chunks, threads, &move |_, c| {
        let at = |c: usize| (n / 16 * c / chunks * 16).min(n);
        let (s, e) = (at(c), if c + 1 == chunks { n } else { at(c + 1) });
        f(ptrs.get(), s as i64, e as i64);
    });
}

/// Kernels with at most this many operands (every kernel but a long `concat`; the
/// gradient of a pooling window of 2×2 or 3×3 is a concat of one operand per offset)
/// read them from the stack.
const INLINE_ARGS: usize = 9;

/// Runs one step (a pointer to an [`Exec`]); called by JIT entry functions. Returns 0
/// on success, 1 if a kernel failed (its message is kept in the step).
///
/// # Safety
/// `step` must point to an `Exec` of a live [`Instance`] not running elsewhere.
pub unsafe extern "C" fn run_step(step: *const u8) -> i32 {
    let step = &*(step as *const Exec);
    match step {
        Exec::Loop {
            f, ptrs, n, work, ..
        } => {
            run_loop(*f, ptrs.as_ptr(), *n, *work);
            0
        }
        Exec::Kernel {
            k,
            args,
            out,
            error,
        } => {
            let ins: [In<'_>; INLINE_ARGS];
            let mut more = Vec::new();
            let args: &[In<'_>] = if args.len() <= INLINE_ARGS {
                ins = std::array::from_fn(|i| args.get(i).map_or(In::F32(&[]), |v| v.input()));
                &ins[..args.len()]
            } else {
                // Only a `concat` of many operands: allocates.
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
            (*gemm.get()).run_batch(*batch, (*a, *b, *c), *strides, *ep);
            0
        }
        Exec::MatMulI8 {
            gemm,
            a,
            b,
            c,
            strides,
            batch,
        } => {
            let gemm = &mut *gemm.get();
            for i in 0..*batch {
                gemm.run(
                    a.add(i * strides[0]),
                    b.add(i * strides[1]),
                    c.add(i * strides[2]),
                );
            }
            0
        }
        Exec::Copy { src, dst, bytes } => {
            std::ptr::copy_nonoverlapping(*src, *dst, *bytes);
            0
        }
    }
}

/// A step as an entry function calls it.
pub enum Call {
    /// Loop function number `f` over `0..n` with these buffers.
    Loop {
        f: usize,
        ptrs: *const *mut f32,
        n: usize,
    },
    /// `run_step(ctx)`.
    Step { ctx: *const u8 },
}

/// A named tensor read into or written out of a fixed buffer.
struct Port {
    name: String,
    view: View,
    dtype: DType,
    shape: Vec<usize>,
}

/// A program with its storage and steps.
pub struct Instance {
    /// Steps, boxed so their addresses stay put.
    steps: Box<[Exec]>,
    /// Small loops, called directly: (loop number, buffer pointers, n).
    direct: Vec<(usize, Box<[*mut f32]>, usize)>,
    /// In schedule order: a direct loop (index into `direct`) or a step.
    order: Vec<(bool, usize)>,
    loops: Vec<LoopFn>,
    _blocks: Vec<Block>,
    /// The store's blocks this instance's states live in (kept alive with it).
    _slots: Vec<std::sync::Arc<Slot>>,
    inputs: Vec<Port>,
    states: Vec<Port>,
    outputs: Vec<Port>,
    updates: Vec<usize>,
    /// Integer input ports (by index into `inputs`) whose values must lie in
    /// `0..limit`.
    limits: Vec<(usize, usize)>,
    /// State ports by name (a model may have tens of thousands).
    state_index: std::collections::HashMap<String, usize>,
}

// SAFETY: the raw pointers point into blocks the instance owns; `&mut self` to run.
unsafe impl Send for Instance {}

/// A program description that does not hold together.
fn program(why: String) -> ExecError {
    ExecError::Program(why)
}

/// Stands in for a loop until its code exists.
unsafe extern "C" fn placeholder(_: *const *mut f32, _: i64, _: i64) {}

impl Instance {
    /// Allocates and fills the storage of `p` and prepares its steps. `loops` are the
    /// compiled loop functions in the program's numbering; without them (the JIT
    /// compiles them afterwards) call [`Instance::set_loops`] before running.
    pub fn new(p: &Program, loops: Option<&[LoopFn]>) -> Result<Instance, ExecError> {
        Instance::with_store(p, loops, None)
    }

    /// [`Instance::new`], with the program's states bound to `store` by name (made
    /// there, zeroed, when the store has none yet) instead of owned: instances bound to
    /// one store read and update the same states.
    pub fn with_store(
        p: &Program,
        loops: Option<&[LoopFn]>,
        store: Option<&Store>,
    ) -> Result<Instance, ExecError> {
        if let Some(l) = loops {
            if l.len() != p.loop_count {
                return Err(program(format!(
                    "the program needs {} loop functions, {} were given",
                    p.loop_count,
                    l.len()
                )));
            }
        }
        // What the storage will take, checked against the machine before any of it is
        // allocated.
        let mut need = dnnc_tensor::memory::MemoryNeed::new();
        need.add("temporaries", p.arena_bytes as u128);
        let state_vals: std::collections::HashMap<usize, &crate::program::PortDesc> = match store {
            Some(_) => p.states.iter().map(|d| (d.val, d)).collect(),
            None => std::collections::HashMap::new(),
        };
        let mut slots = Vec::new();
        for (v, val) in p.vals.iter().enumerate() {
            if val.place == Place::Own && !state_vals.contains_key(&v) {
                need.add(
                    "parameters, state and ports",
                    (val.len as u128).saturating_mul(val.dtype.size_bytes() as u128),
                );
            }
        }
        need.check("the compiled graph")?;
        let mut blocks = Vec::new();
        let arena = Block::new(p.arena_bytes)?;
        let arena_ptr = arena.ptr();
        blocks.push(arena);
        let mut views: Vec<Option<View>> = vec![None; p.vals.len()];
        for (v, val) in p.vals.iter().enumerate() {
            let ptr = match val.place {
                Place::Own if state_vals.contains_key(&v) => {
                    let d = state_vals[&v];
                    let slot = store
                        .expect("states are only bound with a store")
                        .bind(&d.name, d.dtype, &d.shape)?;
                    if slot.len != val.len || slot.dtype != val.dtype {
                        return Err(program(format!(
                            "state `{}` does not fit its value",
                            d.name
                        )));
                    }
                    let ptr = slot.view().ptr;
                    slots.push(slot);
                    ptr
                }
                Place::Own => {
                    let bytes = val
                        .len
                        .checked_mul(val.dtype.size_bytes())
                        .ok_or_else(|| program(format!("value {v}: its size overflows")))?;
                    let b = Block::new(bytes)?;
                    let ptr = b.ptr();
                    if let Some(data) = &val.init {
                        if data.dtype() != val.dtype || data.len() != val.len {
                            return Err(program(format!("value {v}: its constant does not fit")));
                        }
                        let view = View {
                            dtype: val.dtype,
                            ptr,
                            len: val.len,
                        };
                        // SAFETY: a fresh block of the right size.
                        unsafe { view.write(data) };
                    }
                    blocks.push(b);
                    ptr
                }
                Place::Arena(off) => {
                    let end = val
                        .len
                        .checked_mul(val.dtype.size_bytes())
                        .and_then(|b| b.checked_add(off));
                    if end.is_none_or(|e| e > p.arena_bytes.max(64)) && val.len > 0 {
                        return Err(program(format!("value {v} lies outside the arena")));
                    }
                    // SAFETY: checked to be within the arena.
                    unsafe { arena_ptr.add(off) }
                }
                Place::Alias(_) => continue,
            };
            views[v] = Some(View {
                dtype: val.dtype,
                ptr,
                len: val.len,
            });
        }
        for v in 0..p.vals.len() {
            if let Place::Alias(to) = p.vals[v].place {
                views[v] = *views.get(to).ok_or_else(|| {
                    program(format!("value {v} aliases a value that does not exist"))
                })?;
            }
        }
        let view = |v: usize| -> Result<View, ExecError> {
            views
                .get(v)
                .copied()
                .flatten()
                .ok_or_else(|| program(format!("value {v} has no storage")))
        };
        let loop_fn = |f: usize| -> Result<LoopFn, ExecError> {
            if f >= p.loop_count {
                return Err(program(format!("loop {f} does not exist")));
            }
            Ok(loops.map_or(placeholder as LoopFn, |l| l[f]))
        };

        let mut steps = Vec::new();
        let mut direct = Vec::new();
        let mut order = Vec::new();
        for s in &p.steps {
            match s {
                StepDesc::Loop { f, vals, n, cost } => {
                    let ptrs: Box<[*mut f32]> = vals
                        .iter()
                        .map(|&v| view(v).map(|v| v.ptr as *mut f32))
                        .collect::<Result<_, _>>()?;
                    let work = n.saturating_mul(*cost);
                    if loop_splits(*n, *cost) {
                        order.push((false, steps.len()));
                        steps.push(Exec::Loop {
                            f: loop_fn(*f)?,
                            number: *f,
                            ptrs,
                            n: *n,
                            work,
                        });
                    } else {
                        loop_fn(*f)?;
                        order.push((true, direct.len()));
                        direct.push((*f, ptrs, *n));
                    }
                }
                StepDesc::Kernel { k, args, out } => {
                    order.push((false, steps.len()));
                    steps.push(Exec::Kernel {
                        k: Kernel::from_desc(k).map_err(program)?,
                        args: args.iter().map(|&a| view(a)).collect::<Result<_, _>>()?,
                        out: view(*out)?,
                        error: UnsafeCell::new(None),
                    });
                }
                StepDesc::MatMul {
                    a,
                    b,
                    out,
                    dims,
                    bias,
                    relu,
                    bf16,
                } => {
                    let [batch, m, k, n] = *dims;
                    if view(a.val)?.dtype == DType::I8 {
                        if a.transposed
                            || b.transposed
                            || a.offset != 0
                            || b.offset != 0
                            || bias.is_some()
                            || *relu
                        {
                            return Err(ExecError::Program(
                                "an i8 product reads its operands as stored, with no epilogue"
                                    .into(),
                            ));
                        }
                        order.push((false, steps.len()));
                        steps.push(Exec::MatMulI8 {
                            gemm: UnsafeCell::new(dnnc_kernels::int8::GemmI8::new(m, n, k)),
                            a: view(a.val)?.ptr as *const i8,
                            b: view(b.val)?.ptr as *const i8,
                            c: view(*out)?.ptr as *mut i32,
                            strides: [m * k, k * n, m * n],
                            batch,
                        });
                        continue;
                    }
                    let operand = |o: &crate::program::Operand, rows: usize, cols: usize| {
                        // A transposed operand is stored as `[cols, rows]`.
                        let (rs, cs) = if o.transposed {
                            (1, rows as isize)
                        } else {
                            (cols as isize, 1)
                        };
                        let v = view(o.val)?;
                        let end = batch
                            .checked_mul(rows * cols)
                            .and_then(|n| n.checked_add(o.offset));
                        if v.dtype != DType::F32 || end.is_none_or(|e| e > v.len) {
                            return Err(program(format!(
                                "a product's operand {} does not fit its value",
                                o.val
                            )));
                        }
                        Ok(MatRef {
                            // SAFETY: checked to lie within the value.
                            ptr: unsafe { (v.ptr as *const f32).add(o.offset) },
                            rs,
                            cs,
                        })
                    };
                    order.push((false, steps.len()));
                    steps.push(Exec::MatMul {
                        gemm: UnsafeCell::new(if *bf16 {
                            Gemm::bf16(m, n, k)
                        } else {
                            Gemm::new(m, n, k)
                        }),
                        a: operand(a, m, k)?,
                        b: operand(b, k, n)?,
                        c: view(*out)?.ptr as *mut f32,
                        strides: [m * k, k * n, m * n],
                        batch,
                        ep: Epilogue {
                            accumulate: false,
                            bias: bias
                                .map(|v| view(v).map(|v| v.ptr as *const f32))
                                .transpose()?,
                            relu: *relu,
                        },
                    });
                }
                StepDesc::Copy { src, dst } => {
                    let (src, dst) = (view(*src)?, view(*dst)?);
                    order.push((false, steps.len()));
                    steps.push(Exec::Copy {
                        src: src.ptr,
                        dst: dst.ptr,
                        bytes: src.bytes().min(dst.bytes()),
                    });
                }
            }
        }
        let port = |d: &crate::program::PortDesc| -> Result<Port, ExecError> {
            Ok(Port {
                name: d.name.clone(),
                view: view(d.val)?,
                dtype: d.dtype,
                shape: d.shape.clone(),
            })
        };
        let inputs: Vec<Port> = p.inputs.iter().map(port).collect::<Result<_, _>>()?;
        let limits = p
            .index_limits
            .iter()
            .filter_map(|(name, limit)| {
                let i = inputs.iter().position(|q| &q.name == name)?;
                Some((i, *limit))
            })
            .collect();
        let states: Vec<Port> = p.states.iter().map(port).collect::<Result<_, _>>()?;
        let state_index = states
            .iter()
            .enumerate()
            .map(|(i, q)| (q.name.clone(), i))
            .collect();
        Ok(Instance {
            steps: steps.into_boxed_slice(),
            direct,
            order,
            loops: loops.map(<[LoopFn]>::to_vec).unwrap_or_default(),
            _blocks: blocks,
            _slots: slots,
            inputs,
            states,
            outputs: p.outputs.iter().map(port).collect::<Result<_, _>>()?,
            updates: p.updates.clone(),
            limits,
            state_index,
        })
    }

    /// Supplies the loop functions (in the program's numbering) once they are compiled.
    pub fn set_loops(&mut self, loops: &[LoopFn]) {
        self.loops = loops.to_vec();
        for step in self.steps.iter_mut() {
            if let Exec::Loop { f, number, .. } = step {
                *f = loops[*number];
            }
        }
    }

    /// The steps in order, as an entry function should call them.
    pub fn calls(&self) -> Vec<Call> {
        self.order
            .iter()
            .map(|&(is_direct, i)| {
                if is_direct {
                    let (f, ptrs, n) = &self.direct[i];
                    Call::Loop {
                        f: *f,
                        ptrs: ptrs.as_ptr(),
                        n: *n,
                    }
                } else {
                    Call::Step {
                        ctx: &self.steps[i] as *const Exec as *const u8,
                    }
                }
            })
            .collect()
    }

    /// The message of the kernel that failed in the last run.
    pub fn take_error(&mut self) -> String {
        self.steps
            .iter_mut()
            .find_map(|e| match e {
                Exec::Kernel { error, .. } => error.get_mut().take(),
                _ => None,
            })
            .unwrap_or_else(|| "a step failed".to_string())
    }

    /// Runs step `k` of the schedule; 0 on success.
    fn call(&self, k: usize) -> i32 {
        let (is_direct, i) = self.order[k];
        // SAFETY: the steps were built for this instance's storage, and loops are set
        // (checked by the callers' assertion in `run` or by construction).
        unsafe {
            if is_direct {
                let (f, ptrs, n) = &self.direct[i];
                (self.loops[*f])(ptrs.as_ptr(), 0, *n as i64);
                0
            } else {
                run_step(&self.steps[i] as *const Exec as *const u8)
            }
        }
    }

    /// Runs every step in order from Rust (static libraries; the JIT calls its entry
    /// function instead). Allocates nothing.
    pub fn run(&mut self) -> Result<(), ExecError> {
        assert!(
            !self.loops.is_empty() || self.direct.is_empty(),
            "loops are set before running"
        );
        self.check_inputs()?;
        for k in 0..self.order.len() {
            if self.call(k) != 0 {
                return Err(ExecError::Kernel(self.take_error()));
            }
        }
        Ok(())
    }

    /// Checks the inputs' index limits (class labels, embedding rows) before a run.
    pub fn check_inputs(&self) -> Result<(), ExecError> {
        for &(i, limit) in &self.limits {
            let p = &self.inputs[i];
            // SAFETY: no run is in progress (`&self`); the view is the port's buffer.
            let values = unsafe { p.view.input() };
            if values.dtype().is_int() {
                let bad = (0..values.len())
                    .map(|i| values.i64_at(i))
                    .position(|v| v < 0 || v as u64 >= limit as u64);
                if let Some(position) = bad {
                    return Err(ExecError::OutOfRange(IndexOutOfRange {
                        input: p.name.clone(),
                        position,
                        value: values.i64_at(position),
                        limit,
                    }));
                }
            }
        }
        Ok(())
    }

    /// Runs the steps one at a time `runs` times; each step's median time in
    /// microseconds, in schedule order.
    pub fn profile(&mut self, runs: usize) -> Result<Vec<f64>, ExecError> {
        let mut times = vec![Vec::with_capacity(runs); self.order.len()];
        for _ in 0..runs.max(1) {
            for (k, times) in times.iter_mut().enumerate() {
                let t = std::time::Instant::now();
                let status = self.call(k);
                times.push(t.elapsed().as_secs_f64() * 1e6);
                if status != 0 {
                    return Err(ExecError::Kernel(self.take_error()));
                }
            }
        }
        Ok(times
            .into_iter()
            .map(|mut t| {
                t.sort_by(f64::total_cmp);
                t[t.len() / 2]
            })
            .collect())
    }

    /// Copies `t` into port `p`, after checking its type.
    fn fill(p: &Port, t: &Tensor, what: &'static str) -> Result<(), ExecError> {
        let fits = t.dtype == p.dtype
            && t.shape == p.shape
            && t.data.dtype() == p.view.dtype
            && t.data.len() == p.view.len;
        if !fits {
            return Err(ExecError::Feed {
                what,
                name: p.name.clone(),
                why: format!(
                    "should be {}{:?}, found {}{:?}",
                    p.dtype, p.shape, t.dtype, t.shape
                ),
            });
        }
        // SAFETY: the port's buffer is not in use between runs.
        unsafe { p.view.write(&t.data) };
        Ok(())
    }

    /// Whether the program reads input `name`.
    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|p| p.name == name)
    }

    /// Sets input `name` for the next run.
    pub fn set_input(&mut self, name: &str, t: &Tensor) -> Result<(), ExecError> {
        let p = self
            .inputs
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ExecError::Feed {
                what: "input",
                name: name.to_string(),
                why: "is not an input of the graph".into(),
            })?;
        Self::fill(p, t, "input")
    }

    /// Sets input `to` for the next run to what output `from` holds after this one,
    /// without leaving the instance (a decoder's carried state). Both must have the
    /// same element type and shape.
    pub fn carry(&mut self, from: &str, to: &str) -> Result<(), ExecError> {
        let feed = |why: String| ExecError::Feed {
            what: "input",
            name: to.to_string(),
            why,
        };
        let o = self
            .outputs
            .iter()
            .find(|p| p.name == from)
            .ok_or_else(|| feed(format!("cannot be carried from `{from}`: no such output")))?;
        let i = self
            .inputs
            .iter()
            .find(|p| p.name == to)
            .ok_or_else(|| feed("is not an input of the graph".into()))?;
        if (o.dtype, &o.shape, o.view.dtype) != (i.dtype, &i.shape, i.view.dtype) {
            return Err(feed(format!(
                "is {}{:?} but output `{from}` is {}{:?}",
                i.dtype, i.shape, o.dtype, o.shape
            )));
        }
        // SAFETY: both views are whole buffers of the arena of the same size, not in
        // use between runs; `copy` allows them to overlap.
        unsafe { std::ptr::copy(o.view.ptr, i.view.ptr, o.view.bytes()) };
        Ok(())
    }

    /// Input `name`'s buffer, to be written in place (`f32` inputs).
    pub fn input_f32_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        let p = self.inputs.iter().find(|p| p.name == name)?;
        // SAFETY: no run is in progress; the borrow of `self` keeps runs out.
        match unsafe { p.view.output() } {
            crate::buffer::Out::F32(o) => Some(o),
            _ => None,
        }
    }

    /// Input `name`'s buffer, of its element type, to be written in place.
    pub fn input_mut(&mut self, name: &str) -> Option<crate::buffer::Out<'_>> {
        let p = self.inputs.iter().find(|p| p.name == name)?;
        // SAFETY: as above.
        Some(unsafe { p.view.output() })
    }

    /// Sets state `name`; it keeps its value (and receives its updates) across runs.
    /// States the program does not have are ignored.
    pub fn set_state(&mut self, name: &str, t: &Tensor) -> Result<(), ExecError> {
        match self.state_port(name) {
            Some(p) => Self::fill(p, t, "state"),
            None => Ok(()),
        }
    }

    fn state_port(&self, name: &str) -> Option<&Port> {
        self.state_index.get(name).map(|&i| &self.states[i])
    }

    /// The names of the program's states.
    pub fn state_names(&self) -> impl Iterator<Item = &str> {
        self.states.iter().map(|p| p.name.as_str())
    }

    /// The current value of state `name`.
    pub fn state(&self, name: &str) -> Option<Tensor> {
        self.state_port(name).map(|p| Tensor {
            dtype: p.dtype,
            shape: p.shape.clone(),
            // SAFETY: no run is in progress.
            data: unsafe { p.view.read() },
        })
    }

    /// Copies the current value of state `name` into `t` (same type), without
    /// allocating.
    pub fn read_state_into(&self, name: &str, t: &mut Tensor) -> Result<(), ExecError> {
        let feed = |why: &str| ExecError::Feed {
            what: "state",
            name: name.to_string(),
            why: why.to_string(),
        };
        let p = self
            .state_port(name)
            .ok_or_else(|| feed("is not a state of the graph"))?;
        // SAFETY: no run is in progress.
        let src = unsafe { p.view.input() };
        let misfit = || feed("does not fit the given tensor");
        if src.len() != t.data.len() {
            return Err(misfit());
        }
        dnnc_tensor::with_same!(t.data.as_slice_mut(), src, SliceMut, Slice, d, s => {
            d.copy_from_slice(s)
        }, else return Err(misfit()));
        Ok(())
    }

    /// The scalar value of output `i` as `f64`, if it has one element.
    pub fn output_scalar(&self, i: usize) -> Option<f64> {
        let p = self.outputs.get(i)?;
        if p.view.len != 1 {
            return None;
        }
        // SAFETY: no run is in progress.
        Some(unsafe { p.view.input() }.f64_at(0))
    }

    /// Output `name`'s `f32` elements, borrowed.
    pub fn output_f32(&self, name: &str) -> Option<&[f32]> {
        let p = self.outputs.iter().find(|p| p.name == name)?;
        // SAFETY: no run is in progress; the borrow of `self` keeps runs out.
        match unsafe { p.view.input() } {
            In::F32(v) => Some(v),
            _ => None,
        }
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

    fn tensor(p: &Port) -> (String, Tensor) {
        let t = Tensor {
            dtype: p.dtype,
            shape: p.shape.clone(),
            // SAFETY: no run is in progress.
            data: unsafe { p.view.read() },
        };
        (p.name.clone(), t)
    }

    /// Sets every input and state from the maps (the interpreter's contract).
    pub fn set_all(
        &mut self,
        inputs: &std::collections::HashMap<String, Tensor>,
        states: &std::collections::HashMap<String, Tensor>,
    ) -> Result<(), ExecError> {
        for (ports, given, what) in [
            (&self.inputs, inputs, "input"),
            (&self.states, states, "state"),
        ] {
            for p in ports {
                let t = given.get(&p.name).ok_or_else(|| ExecError::Feed {
                    what,
                    name: p.name.clone(),
                    why: "is missing".into(),
                })?;
                Self::fill(p, t, what)?;
            }
        }
        Ok(())
    }

    /// Every output and every updated state, in the program's order.
    #[allow(clippy::type_complexity)]
    pub fn results(&self) -> (Vec<(String, Tensor)>, Vec<(String, Tensor)>) {
        let outputs = self.outputs.iter().map(Self::tensor).collect();
        let updates = self
            .updates
            .iter()
            .map(|&s| Self::tensor(&self.states[s]))
            .collect();
        (outputs, updates)
    }
}
