//! Backends turn a graph into something that runs: the reference interpreter, and
//! native code from Cranelift or (with the `llvm` feature) LLVM (`dnnc-codegen`),
//! behind one trait.
//!
//! Every executable is compiled against a run's [`StateStore`]: it reads its states
//! (parameters, buffers, optimizer slots) from the store and [`step`](Executable::step)
//! writes their updates back — in place for native code, whose graphs bind the store's
//! blocks directly, so a native training step copies in only its batch and allocates
//! nothing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::error::RunError;
use crate::store::StateStore;

use dnnc_ir::Graph;
use dnnc_tensor::Tensor;

/// A compiled graph bound to a run's [`StateStore`].
pub trait Executable {
    /// Runs once with these inputs (names the graph does not read are ignored); the
    /// graph reads its states from the store and writes their updates back.
    fn step(&mut self, inputs: &[(&str, &Tensor)]) -> Result<(), RunError>;

    /// The names of the outputs, in order.
    fn output_names(&self) -> Vec<String>;

    /// Output `i` of the last [`step`](Executable::step) as a number, if it is a
    /// scalar.
    fn output_scalar(&self, i: usize) -> Option<f64>;

    /// Output `name` of the last [`step`](Executable::step).
    fn output(&self, name: &str) -> Option<Tensor>;
    /// Makes the last run's output `from` the next run's input `to` (a carried state),
    /// without a copy through a [`Tensor`] where the backend can.
    fn carry(&mut self, from: &str, to: &str) -> Result<(), RunError>;

    /// Per-step median times in microseconds with a description of each step, where
    /// the backend can tell (the native one).
    fn profile(&mut self, _runs: usize) -> Result<Vec<(String, f64)>, RunError> {
        Err(RunError::NotRunnable(
            "this backend has no per-step profile".into(),
        ))
    }
}

/// Which backend runs the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// The reference interpreter.
    Interp,
    /// Native code from Cranelift (`dnnc-codegen`): fused `f32x4` loops, AVX-512 matrix
    /// products, one arena, one entry function.
    Cranelift,
    /// Native code from LLVM (`dnnc-codegen` with the `llvm` feature): the same
    /// schedule, loops over 512-bit vectors for the host CPU.
    #[cfg(feature = "llvm")]
    Llvm,
}

#[cfg(feature = "llvm")]
const NAMES: &str = "interp, cranelift, llvm";
#[cfg(not(feature = "llvm"))]
const NAMES: &str = "interp, cranelift";

impl BackendKind {
    pub fn parse(s: &str) -> Result<BackendKind, RunError> {
        match s {
            "interp" => Ok(BackendKind::Interp),
            "cranelift" => Ok(BackendKind::Cranelift),
            #[cfg(feature = "llvm")]
            "llvm" => Ok(BackendKind::Llvm),
            #[cfg(not(feature = "llvm"))]
            "llvm" => Err(RunError::NotRunnable("backend `llvm` is not in this build of dnnc: build it with `--features llvm` (needs LLVM 14), or use `--backend interp` or `cranelift`".into())),
            other => Err(RunError::NotRunnable(format!("unknown backend `{other}`; the backends are: {NAMES}"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Interp => "interp",
            BackendKind::Cranelift => "cranelift",
            #[cfg(feature = "llvm")]
            BackendKind::Llvm => "llvm",
        }
    }

    /// Whether this backend runs native code (and binds a native [`StateStore`]).
    pub fn is_native(self) -> bool {
        self != BackendKind::Interp
    }

    /// Compiles `g` with its states in `store` (states the store lacks are made there,
    /// zeroed: optimizer slots and counters).
    pub fn compile(self, g: Graph, store: &StateStore) -> Result<Box<dyn Executable>, RunError> {
        match (self, store) {
            (BackendKind::Interp, StateStore::Host(states)) => {
                {
                    let mut states = states.borrow_mut();
                    for s in g.states() {
                        if let dnnc_ir::Op::State { name, dtype, shape } = &g.node(s).op {
                            states
                                .entry(name.clone())
                                .or_insert_with(|| Tensor::zeros(*dtype, shape.clone()));
                        }
                    }
                }
                Ok(Box::new(Interpreted {
                    g,
                    states: states.clone(),
                    last: Vec::new(),
                    carried: HashMap::new(),
                }))
            }
            (BackendKind::Cranelift, StateStore::Native(s)) => {
                Ok(Box::new(Native(dnnc_codegen::compile_in(&g, Some(s))?)))
            }
            #[cfg(feature = "llvm")]
            (BackendKind::Llvm, StateStore::Native(s)) => Ok(Box::new(Native(
                dnnc_codegen::compile_llvm_in(&g, Some(s))?,
            ))),
            _ => Err(RunError::Internal(format!(
                "the {} backend cannot bind this kind of state store",
                self.name()
            ))),
        }
    }

    /// An empty state store of the kind this backend binds.
    pub fn store(self) -> StateStore {
        StateStore::new(self.is_native())
    }
}

/// The schedule and memory plan the native backend makes of `g`, as text.
pub fn schedule_text(g: &Graph) -> Result<String, RunError> {
    Ok(dnnc_codegen::compile(g)?.schedule_text().to_string())
}

/// Sets how many threads native kernels use.
pub fn set_threads(n: usize) {
    dnnc_codegen::set_threads(n);
}

/// How many threads native kernels use.
pub fn threads() -> usize {
    dnnc_codegen::threads()
}

fn scalar_of(t: &Tensor) -> Option<f64> {
    if t.data.len() != 1 {
        return None;
    }
    Some(t.data.as_slice().f64_at(0))
}

struct Interpreted {
    g: Graph,
    states: Rc<RefCell<HashMap<String, Tensor>>>,
    last: Vec<(String, Tensor)>,
    /// Inputs set by [`Executable::carry`], until given anew.
    carried: HashMap<String, Tensor>,
}

impl Executable for Interpreted {
    fn step(&mut self, inputs: &[(&str, &Tensor)]) -> Result<(), RunError> {
        let mut inputs: HashMap<String, Tensor> = inputs
            .iter()
            .map(|(k, v)| (k.to_string(), (*v).clone()))
            .collect();
        self.carried.retain(|k, _| !inputs.contains_key(k));
        for (k, v) in &self.carried {
            inputs.insert(k.clone(), v.clone());
        }
        let out = dnnc_interp::run(&self.g, &inputs, &self.states.borrow())?;
        let mut states = self.states.borrow_mut();
        for (k, v) in out.updates {
            states.insert(k, v);
        }
        self.last = out.outputs;
        Ok(())
    }

    fn output_names(&self) -> Vec<String> {
        self.g.outputs().iter().map(|(n, _)| n.clone()).collect()
    }

    fn output_scalar(&self, i: usize) -> Option<f64> {
        scalar_of(&self.last.get(i)?.1)
    }

    fn output(&self, name: &str) -> Option<Tensor> {
        self.last
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
    }

    fn carry(&mut self, from: &str, to: &str) -> Result<(), RunError> {
        let t = self.output(from).ok_or_else(|| {
            RunError::Internal(format!(
                "cannot carry `{from}`: the graph has no such output"
            ))
        })?;
        self.carried.insert(to.to_string(), t);
        Ok(())
    }
}

struct Native(dnnc_codegen::Compiled);

impl Executable for Native {
    fn step(&mut self, inputs: &[(&str, &Tensor)]) -> Result<(), RunError> {
        for (name, t) in inputs {
            // Inputs the graph does not read (a key for dropout it lacks) are ignored.
            if self.0.has_input(name) {
                self.0.set_input(name, t)?;
            }
        }
        Ok(self.0.execute()?)
    }

    fn output_names(&self) -> Vec<String> {
        self.0.output_names().map(str::to_string).collect()
    }

    fn output_scalar(&self, i: usize) -> Option<f64> {
        self.0.output_scalar(i)
    }

    fn output(&self, name: &str) -> Option<Tensor> {
        self.0.output(name)
    }

    fn carry(&mut self, from: &str, to: &str) -> Result<(), RunError> {
        Ok(self.0.carry(from, to)?)
    }

    fn profile(&mut self, runs: usize) -> Result<Vec<(String, f64)>, RunError> {
        Ok(self.0.profile(runs)?)
    }
}
