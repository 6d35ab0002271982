//! Backends turn a graph into something that runs: the reference interpreter, and
//! native code from Cranelift or (with the `llvm` feature) LLVM (`dnnc-codegen`),
//! behind one trait.
//!
//! Two ways to run: [`Executable::run`] takes every input and state and returns every
//! output and update (the interpreter's contract); the resident way keeps states
//! inside the executable — [`load_states`](Executable::load_states) once, then
//! [`step`](Executable::step) per batch, which applies updates in place, and
//! [`store_states`](Executable::store_states) when the host needs them. A native
//! training step run the resident way allocates nothing.

use crate::error::RunError;
use std::collections::HashMap;

use dnnc_exec::ExecError;
use dnnc_interp::InterpError;
use dnnc_ir::Graph;
use dnnc_tensor::Tensor;

/// The results of one run: named outputs, and new values of states.
pub struct RunResult {
    pub outputs: Vec<(String, Tensor)>,
    pub updates: Vec<(String, Tensor)>,
}

/// A compiled graph.
pub trait Executable {
    fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
        states: &HashMap<String, Tensor>,
    ) -> Result<RunResult, RunError>;

    /// Copies the graph's states from `states` into the executable (every state the
    /// graph has must be there).
    fn load_states(&mut self, states: &HashMap<String, Tensor>) -> Result<(), RunError>;

    /// Copies the executable's current states into the entries of `states` (adding
    /// missing ones).
    fn store_states(&self, states: &mut HashMap<String, Tensor>) -> Result<(), RunError>;

    /// Runs once on resident states with these inputs (names the graph does not read
    /// are ignored); states receive their updates.
    fn step(&mut self, inputs: &[(&str, &Tensor)]) -> Result<(), RunError>;

    /// The names of the outputs, in order.
    fn output_names(&self) -> Vec<String>;

    /// Output `i` of the last [`step`](Executable::step) as a number, if it is a
    /// scalar.
    fn output_scalar(&self, i: usize) -> Option<f64>;

    /// Output `name` of the last [`step`](Executable::step).
    fn output(&self, name: &str) -> Option<Tensor>;

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

    pub fn compile(self, g: Graph) -> Result<Box<dyn Executable>, RunError> {
        match self {
            BackendKind::Interp => Ok(Box::new(Interpreted {
                g,
                states: HashMap::new(),
                last: Vec::new(),
            })),
            BackendKind::Cranelift => Ok(Box::new(Native(dnnc_codegen::compile(&g)?))),
            #[cfg(feature = "llvm")]
            BackendKind::Llvm => Ok(Box::new(Native(dnnc_codegen::compile_llvm(&g)?))),
        }
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
    states: HashMap<String, Tensor>,
    last: Vec<(String, Tensor)>,
}

impl Executable for Interpreted {
    fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
        states: &HashMap<String, Tensor>,
    ) -> Result<RunResult, RunError> {
        let out = dnnc_interp::run(&self.g, inputs, states)?;
        Ok(RunResult {
            outputs: out.outputs,
            updates: out.updates,
        })
    }

    fn load_states(&mut self, states: &HashMap<String, Tensor>) -> Result<(), RunError> {
        for s in self.g.states() {
            if let dnnc_ir::Op::State { name, .. } = &self.g.node(s).op {
                let t = states.get(name).ok_or_else(|| InterpError::Missing {
                    what: "state",
                    name: name.clone(),
                })?;
                self.states.insert(name.clone(), t.clone());
            }
        }
        Ok(())
    }

    fn store_states(&self, states: &mut HashMap<String, Tensor>) -> Result<(), RunError> {
        for (k, v) in &self.states {
            states.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    fn step(&mut self, inputs: &[(&str, &Tensor)]) -> Result<(), RunError> {
        let inputs: HashMap<String, Tensor> = inputs
            .iter()
            .map(|(k, v)| (k.to_string(), (*v).clone()))
            .collect();
        let out = dnnc_interp::run(&self.g, &inputs, &self.states)?;
        for (k, v) in out.updates {
            self.states.insert(k, v);
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
}

struct Native(dnnc_codegen::Compiled);

impl Executable for Native {
    fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
        states: &HashMap<String, Tensor>,
    ) -> Result<RunResult, RunError> {
        let (outputs, updates) = self.0.run(inputs, states)?;
        Ok(RunResult { outputs, updates })
    }

    fn load_states(&mut self, states: &HashMap<String, Tensor>) -> Result<(), RunError> {
        let names: Vec<String> = self.0.state_names().map(str::to_string).collect();
        for name in names {
            let t = states.get(&name).ok_or_else(|| ExecError::Feed {
                what: "state",
                name: name.clone(),
                why: "is missing".into(),
            })?;
            self.0.set_state(&name, t)?;
        }
        Ok(())
    }

    fn store_states(&self, states: &mut HashMap<String, Tensor>) -> Result<(), RunError> {
        for name in self.0.state_names() {
            match states.get_mut(name) {
                Some(t) => self.0.read_state_into(name, t)?,
                None => {
                    let t = self
                        .0
                        .state(name)
                        .ok_or_else(|| ExecError::Program(format!("state `{name}` vanished")))?;
                    states.insert(name.to_string(), t);
                }
            }
        }
        Ok(())
    }

    fn step(&mut self, inputs: &[(&str, &Tensor)]) -> Result<(), RunError> {
        for (name, t) in inputs {
            // Inputs the graph does not read (a key for dropout it lacks) are ignored,
            // as `run` ignores them.
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

    fn profile(&mut self, runs: usize) -> Result<Vec<(String, f64)>, RunError> {
        Ok(self.0.profile(runs)?)
    }
}
