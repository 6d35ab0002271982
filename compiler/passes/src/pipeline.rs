//! Running passes in order: the [`Pass`] trait, the [`Pipeline`] that runs a list of
//! passes (optionally to a fixpoint), verifying the graph after every pass and dumping
//! it on request ([`PipelineOptions`]: the one verify-and-dump path, also used by the
//! session for the stages it runs itself, `lower`, `autodiff` and `optimizer`).
//!
//! The standard clean-up pipeline ([`Pipeline::standard`]) is meant to run after
//! autodiff and the optimizer pass:
//!
//! ```text
//! strip_stop_gradient → simplify → const_fold → cse → dce   (repeated until nothing changes,
//!                                                            at most 8 rounds)
//! ```
//!
//! `simplify` first, so that folding sees `x * 1` already gone; `const_fold` before
//! `cse`, so that folded constants are merged; `dce` last, to sweep what the others left
//! unused. Each pass reports whether it changed the graph; a round in which none did ends
//! the loop.

use crate::error::PassError;
use std::fmt;

use dnnc_ir::text::to_text;
use dnnc_ir::Graph;

use crate::{const_fold, cse, dce, products, simplify};

/// A transformation of a graph.
pub trait Pass {
    /// The pass's name, as listed in [`PASS_NAMES`] and used by `--dump-after`.
    fn name(&self) -> &'static str;

    /// Transforms `g` in place; returns whether anything changed. An `Err` means the pass
    /// could not run on this graph (the graph may then be partly transformed).
    fn run(&self, g: &mut Graph) -> Result<bool, PassError>;
}

/// Every pass name the driver accepts for `--dump-after` (besides `all`), in the order
/// they run. `lower`, `autodiff` and `optimizer` are stages the session runs itself
/// (reporting them through [`PipelineOptions::after_pass`]), not through [`by_name`].
pub const PASS_NAMES: &[&str] = &[
    "lower",
    "autodiff",
    "optimizer",
    "precision",
    "strip_stop_gradient",
    "sum_of_products",
    "simplify",
    "const_fold",
    "cse",
    "dce",
];

/// The clean-up pass called `name` (`None` for unknown names and for `autodiff`,
/// `optimizer` and `precision`, which depend on the train block and are run by the
/// session).
pub fn by_name(name: &str) -> Option<Box<dyn Pass>> {
    Some(match name {
        "strip_stop_gradient" => Box::new(simplify::StripStopGradient),
        "sum_of_products" => Box::new(products::SumOfProducts),
        "simplify" => Box::new(simplify::Simplify),
        "const_fold" => Box::new(const_fold::ConstFold),
        "cse" => Box::new(cse::Cse),
        "dce" => Box::new(dce::Dce),
        _ => return None,
    })
}

/// A sink for graph dumps: `(pass name, graph text)`.
pub type DumpSink = Box<dyn FnMut(&str, &str)>;

/// How a [`Pipeline`] runs.
pub struct PipelineOptions {
    /// Run [`dnnc_ir::verify()`] after every pass and fail, naming the pass, if the graph is
    /// malformed. On by default in debug builds.
    pub verify: bool,
    /// Dump the graph after the pass of this name, or after every pass for `"all"`.
    pub dump_after: Option<String>,
    /// Where dumps go; `None` prints them to stderr.
    pub dump: Option<DumpSink>,
}

impl Default for PipelineOptions {
    fn default() -> PipelineOptions {
        PipelineOptions {
            verify: cfg!(debug_assertions),
            dump_after: None,
            dump: None,
        }
    }
}

impl fmt::Debug for PipelineOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineOptions")
            .field("verify", &self.verify)
            .field("dump_after", &self.dump_after)
            .field("dump", &self.dump.as_ref().map(|_| "<sink>"))
            .finish()
    }
}

impl PipelineOptions {
    /// Options that verify after every pass and dump nothing.
    pub fn verifying() -> PipelineOptions {
        PipelineOptions {
            verify: true,
            ..PipelineOptions::default()
        }
    }

    /// Whether the graph should be dumped after the pass called `pass`.
    pub fn wants_dump(&self, pass: &str) -> bool {
        matches!(&self.dump_after, Some(d) if d == "all" || d == pass)
    }

    /// Checks `dump_after` names a known pass (or `all`).
    pub fn check(&self) -> Result<(), PassError> {
        match &self.dump_after {
            Some(d) if d != "all" && !PASS_NAMES.contains(&d.as_str()) => {
                Err(PassError::UnknownPass(d.clone()))
            }
            _ => Ok(()),
        }
    }

    /// What the pipeline does after each pass, for passes the driver runs itself
    /// (`autodiff`, `optimizer`): verifies `g` if asked to, then dumps it if asked to.
    pub fn after_pass(&mut self, pass: &str, g: &Graph) -> Result<(), PassError> {
        if self.verify {
            verified(g, pass)?;
        }
        if self.wants_dump(pass) {
            self.emit_dump(pass, g);
        }
        Ok(())
    }

    fn emit_dump(&mut self, pass: &str, g: &Graph) {
        let text = to_text(g);
        match &mut self.dump {
            Some(sink) => sink(pass, &text),
            None => eprint!("// after {pass}\n{text}"),
        }
    }
}

/// An ordered list of passes, run once or repeated until none changes the graph.
pub struct Pipeline {
    passes: Vec<Box<dyn Pass>>,
    /// How many rounds at most; 1 runs every pass once.
    max_rounds: usize,
}

impl Default for Pipeline {
    fn default() -> Pipeline {
        Pipeline::new()
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("passes", &self.names())
            .field("max_rounds", &self.max_rounds)
            .finish()
    }
}

impl Pipeline {
    /// The round limit of [`Pipeline::standard`].
    pub const STANDARD_MAX_ROUNDS: usize = 8;

    /// An empty pipeline that runs each pass once.
    pub fn new() -> Pipeline {
        Pipeline {
            passes: Vec::new(),
            max_rounds: 1,
        }
    }

    /// The clean-ups after autodiff: `strip_stop_gradient`, `sum_of_products`,
    /// `simplify`, `const_fold`, `cse`, `dce`, repeated to a fixpoint (at most
    /// [`Self::STANDARD_MAX_ROUNDS`] rounds).
    pub fn standard() -> Pipeline {
        let mut p = Pipeline::cleanups();
        p.passes.insert(0, Box::new(simplify::StripStopGradient));
        p.passes.insert(1, Box::new(products::SumOfProducts));
        p
    }

    /// [`Pipeline::standard`] without `strip_stop_gradient`: safe before autodiff.
    pub fn cleanups() -> Pipeline {
        Pipeline::new()
            .then(Box::new(simplify::Simplify))
            .then(Box::new(const_fold::ConstFold))
            .then(Box::new(cse::Cse))
            .then(Box::new(dce::Dce))
            .rounds(Pipeline::STANDARD_MAX_ROUNDS)
    }

    /// Appends a pass.
    pub fn then(mut self, pass: Box<dyn Pass>) -> Pipeline {
        self.passes.push(pass);
        self
    }

    /// Repeats the passes until a round changes nothing, at most `max` rounds.
    pub fn rounds(mut self, max: usize) -> Pipeline {
        self.max_rounds = max.max(1);
        self
    }

    /// The names of the passes, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs the passes on `g`. After every pass the graph is verified (if
    /// `opts.verify`) and dumped (if `opts.dump_after` names the pass or is `all`; a pass
    /// is dumped after its first run and after every later run that changed the graph).
    pub fn run(&self, g: &mut Graph, opts: &mut PipelineOptions) -> Result<(), PassError> {
        self.run_counting(g, opts).map(|_| ())
    }

    /// [`Pipeline::run`], returning how many rounds ran.
    pub fn run_counting(
        &self,
        g: &mut Graph,
        opts: &mut PipelineOptions,
    ) -> Result<usize, PassError> {
        opts.check()?;
        let mut rounds = 0;
        while rounds < self.max_rounds {
            rounds += 1;
            let mut changed_any = false;
            for pass in &self.passes {
                let name = pass.name();
                let changed = pass.run(g)?;
                changed_any |= changed;
                if opts.verify {
                    verified(g, name)?;
                }
                if opts.wants_dump(name) && (changed || rounds == 1) {
                    opts.emit_dump(name, g);
                }
            }
            if !changed_any {
                break;
            }
        }
        Ok(rounds)
    }
}

/// `Ok` if the verifier accepts `g` after pass `pass`.
fn verified(g: &Graph, pass: &str) -> Result<(), PassError> {
    dnnc_ir::verify(g).map_err(|problems| PassError::Invalid {
        graph: g.name.clone(),
        after: pass.to_string(),
        problems,
    })
}
