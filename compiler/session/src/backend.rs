//! Backends turn a graph into something that runs: the reference interpreter, and
//! native code from Cranelift (`dnnc-codegen`), behind one trait.

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
    /// The reference interpreter.
    Interp,
    /// Native code from Cranelift (`dnnc-codegen`): fused `f32x4` loops for
    /// elementwise work, Rust kernels for the rest; not yet tuned for speed.
    Cranelift,
}

impl BackendKind {
    pub fn parse(s: &str) -> Result<BackendKind, String> {
        match s {
            "interp" => Ok(BackendKind::Interp),
            "cranelift" => Ok(BackendKind::Cranelift),
            "llvm" => Err("backend `llvm` is not available in this release; use `--backend interp` or `cranelift`".into()),
            other => Err(format!("unknown backend `{other}`; the backends are: interp, cranelift")),
        }
    }

    pub fn compile(self, g: Graph) -> Result<Box<dyn Executable>, String> {
        match self {
            BackendKind::Interp => Ok(Box::new(Interpreted { g })),
            BackendKind::Cranelift => Ok(Box::new(Native(dnnc_codegen::compile(&g)?))),
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

struct Native(dnnc_codegen::Compiled);

impl Executable for Native {
    fn run(
        &mut self,
        inputs: &HashMap<String, Tensor>,
        states: &HashMap<String, Tensor>,
    ) -> Result<RunResult, String> {
        let (outputs, updates) = self.0.run(inputs, states)?;
        Ok(RunResult { outputs, updates })
    }
}
