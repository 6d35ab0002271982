//! Backends turn a graph into something that runs. Today: the reference interpreter;
//! compiled backends implement the same trait.

use std::collections::HashMap;

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
    ) -> Result<RunResult, String>;
}

/// Which backend runs the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Interp,
}

impl BackendKind {
    pub fn parse(s: &str) -> Result<BackendKind, String> {
        match s {
            "interp" => Ok(BackendKind::Interp),
            "cranelift" | "llvm" => Err(format!(
                "backend `{s}` is not available in this release; use `--backend interp`"
            )),
            other => Err(format!(
                "unknown backend `{other}`; the backends are: interp"
            )),
        }
    }

    pub fn compile(self, g: Graph) -> Result<Box<dyn Executable>, String> {
        match self {
            BackendKind::Interp => Ok(Box::new(Interpreted { g })),
        }
    }
}

struct Interpreted {
    g: Graph,
}

impl Executable for Interpreted {
    fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
        states: &HashMap<String, Tensor>,
    ) -> Result<RunResult, String> {
        let out = dnnc_interp::run(&self.g, inputs, states).map_err(|e| e.to_string())?;
        Ok(RunResult {
            outputs: out.outputs,
            updates: out.updates,
        })
    }
}
