//! Running passes in order: the [`Pass`] trait, the [`Pipeline`] that runs a list of
//! passes (optionally to a fixpoint), verifying the graph after every pass and dumping
//! it on request ([`PipelineOptions`]), and [`parse_text`], the inverse of
//! [`dnnc_ir::print::to_text`], so that tests and tools can read graphs back.
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

use std::collections::HashMap;
use std::fmt;

use dnnc_ir::print::to_text;
use dnnc_ir::{
    BinaryOp, DType, Dist, Graph, NodeId, Op, ReduceKind, TensorType, UnaryOp, Window2d,
};

use crate::{const_fold, cse, dce, simplify};

/// A transformation of a graph.
pub trait Pass {
    /// The pass's name, as listed in [`PASS_NAMES`] and used by `--dump-after`.
    fn name(&self) -> &'static str;

    /// Transforms `g` in place; returns whether anything changed. An `Err` means the pass
    /// could not run on this graph (the graph may then be partly transformed).
    fn run(&self, g: &mut Graph) -> Result<bool, String>;
}

/// Every pass name the driver accepts for `--dump-after` (besides `all`). `autodiff` and
/// `optimizer` are run by the driver itself, not through [`by_name`].
pub const PASS_NAMES: &[&str] = &[
    "autodiff",
    "optimizer",
    "strip_stop_gradient",
    "simplify",
    "const_fold",
    "cse",
    "dce",
];

/// The clean-up pass called `name` (`None` for unknown names and for `autodiff` and
/// `optimizer`, which take arguments and are run by the driver).
pub fn by_name(name: &str) -> Option<Box<dyn Pass>> {
    Some(match name {
        "strip_stop_gradient" => Box::new(simplify::StripStopGradient),
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
    pub fn check(&self) -> Result<(), String> {
        match &self.dump_after {
            Some(d) if d != "all" && !PASS_NAMES.contains(&d.as_str()) => Err(format!(
                "unknown pass `{d}` to dump after; expected `all` or one of {}",
                PASS_NAMES.join(", ")
            )),
            _ => Ok(()),
        }
    }

    /// What the pipeline does after each pass, for passes the driver runs itself
    /// (`autodiff`, `optimizer`): verifies `g` if asked to, then dumps it if asked to.
    pub fn after_pass(&mut self, pass: &str, g: &Graph) -> Result<(), String> {
        if self.verify {
            if let Err(errors) = dnnc_ir::verify(g) {
                return Err(format!(
                    "the graph `{}` is malformed after pass `{pass}`:\n  {}",
                    g.name,
                    errors.join("\n  ")
                ));
            }
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

    /// The clean-ups after autodiff: `strip_stop_gradient`, `simplify`, `const_fold`,
    /// `cse`, `dce`, repeated to a fixpoint (at most [`Self::STANDARD_MAX_ROUNDS`] rounds).
    pub fn standard() -> Pipeline {
        let mut p = Pipeline::cleanups();
        p.passes.insert(0, Box::new(simplify::StripStopGradient));
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
    pub fn run(&self, g: &mut Graph, opts: &mut PipelineOptions) -> Result<(), String> {
        self.run_counting(g, opts).map(|_| ())
    }

    /// [`Pipeline::run`], returning how many rounds ran.
    pub fn run_counting(&self, g: &mut Graph, opts: &mut PipelineOptions) -> Result<usize, String> {
        opts.check()?;
        let mut rounds = 0;
        while rounds < self.max_rounds {
            rounds += 1;
            let mut changed_any = false;
            for pass in &self.passes {
                let name = pass.name();
                let changed = pass
                    .run(g)
                    .map_err(|e| format!("pass `{name}` failed on `{}`: {e}", g.name))?;
                changed_any |= changed;
                if opts.verify {
                    if let Err(errors) = dnnc_ir::verify(g) {
                        return Err(format!(
                            "the graph `{}` is malformed after pass `{name}`:\n  {}",
                            g.name,
                            errors.join("\n  ")
                        ));
                    }
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

// ---------------------------------------------------------------------------------------
// Reading the text form back.

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// `%12`
    Ref(usize),
    /// A bare word: a keyword, a number, a dtype, `key` of `key=value`.
    Word(String),
    /// A quoted string, unescaped.
    Str(String),
    /// One of `[ ] , : = { }`.
    Sym(char),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ref(n) => write!(f, "%{n}"),
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Str(s) => write!(f, "{s:?}"),
            Tok::Sym(c) => write!(f, "`{c}`"),
        }
    }
}

const SYMS: &str = "[],:={}";

fn tokenize(line: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if SYMS.contains(c) {
            chars.next();
            toks.push(Tok::Sym(c));
        } else if c == '"' {
            chars.next();
            toks.push(Tok::Str(unescape(&mut chars)?));
        } else if c == '%' {
            chars.next();
            let mut digits = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(d);
                chars.next();
            }
            let n = digits
                .parse()
                .map_err(|_| "`%` must be followed by a node number".to_string())?;
            toks.push(Tok::Ref(n));
        } else {
            let mut word = String::new();
            while let Some(&d) = chars
                .peek()
                .filter(|d| !d.is_whitespace() && !SYMS.contains(**d) && **d != '"' && **d != '%')
            {
                word.push(d);
                chars.next();
            }
            toks.push(Tok::Word(word));
        }
    }
    Ok(toks)
}

/// The rest of a string literal in Rust's `Debug` escaping, after the opening quote.
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let mut s = String::new();
    loop {
        match chars.next() {
            None => return Err("unterminated string".into()),
            Some('"') => return Ok(s),
            Some('\\') => match chars.next() {
                Some('n') => s.push('\n'),
                Some('r') => s.push('\r'),
                Some('t') => s.push('\t'),
                Some('0') => s.push('\0'),
                Some(c @ ('\\' | '"' | '\'')) => s.push(c),
                Some('u') => {
                    if chars.next() != Some('{') {
                        return Err("bad `\\u` escape".into());
                    }
                    let mut hex = String::new();
                    for c in chars.by_ref() {
                        if c == '}' {
                            break;
                        }
                        hex.push(c);
                    }
                    let c = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("bad `\\u{{{hex}}}` escape"))?;
                    s.push(c);
                }
                other => return Err(format!("unknown escape `\\{}`", other.unwrap_or(' '))),
            },
            Some(c) => s.push(c),
        }
    }
}

/// A cursor over the attribute tokens of one node.
struct Attrs<'t> {
    toks: &'t [Tok],
    pos: usize,
}

impl<'t> Attrs<'t> {
    fn next(&mut self) -> Result<&'t Tok, String> {
        let t = self
            .toks
            .get(self.pos)
            .ok_or_else(|| "missing attribute".to_string())?;
        self.pos += 1;
        Ok(t)
    }

    fn sym(&mut self, c: char) -> Result<(), String> {
        match self.next()? {
            Tok::Sym(d) if *d == c => Ok(()),
            t => Err(format!("expected `{c}`, found {t}")),
        }
    }

    fn word(&mut self) -> Result<&'t str, String> {
        match self.next()? {
            Tok::Word(w) => Ok(w),
            t => Err(format!("expected a word, found {t}")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        match self.next()? {
            Tok::Str(s) => Ok(s.clone()),
            t => Err(format!("expected a quoted name, found {t}")),
        }
    }

    fn number<T: std::str::FromStr>(&mut self) -> Result<T, String> {
        let w = self.word()?;
        w.parse()
            .map_err(|_| format!("`{w}` is not a valid number here"))
    }

    /// `key=value`.
    fn key<T: std::str::FromStr>(&mut self, key: &str) -> Result<T, String> {
        let w = self.word()?;
        if w != key {
            return Err(format!("expected `{key}=`, found `{w}`"));
        }
        self.sym('=')?;
        self.number()
    }

    fn dtype(&mut self) -> Result<DType, String> {
        let w = self.word()?;
        DType::from_name(w).ok_or_else(|| format!("unknown element type `{w}`"))
    }

    /// `[1, 2, 3]`.
    fn list(&mut self) -> Result<Vec<usize>, String> {
        self.sym('[')?;
        let mut v = Vec::new();
        if self.toks.get(self.pos) == Some(&Tok::Sym(']')) {
            self.pos += 1;
            return Ok(v);
        }
        loop {
            v.push(self.number()?);
            match self.next()? {
                Tok::Sym(']') => return Ok(v),
                Tok::Sym(',') => {}
                t => return Err(format!("expected `,` or `]`, found {t}")),
            }
        }
    }

    /// `key=[1, 2]`.
    fn key_list(&mut self, key: &str) -> Result<Vec<usize>, String> {
        let w = self.word()?;
        if w != key {
            return Err(format!("expected `{key}=`, found `{w}`"));
        }
        self.sym('=')?;
        self.list()
    }

    /// A window as [`Window2d`] prints it.
    fn window(&mut self) -> Result<Window2d, String> {
        let k = self.key_list("k")?;
        let (stride, dilation) = (self.key("stride")?, self.key("dilation")?);
        let pad = self.key_list("pad")?;
        match (&k[..], &pad[..]) {
            (&[kh, kw], &[t, b, l, r]) => Ok(Window2d {
                kh,
                kw,
                stride,
                dilation,
                pad_h: (t, b),
                pad_w: (l, r),
            }),
            _ => Err("a window needs `k=[KH, KW]` and `pad=[top, bottom, left, right]`".into()),
        }
    }

    /// Consumes `flag` if it comes next.
    fn flag(&mut self, flag: &str) -> bool {
        if matches!(self.toks.get(self.pos), Some(Tok::Word(w)) if w == flag) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn end(&self) -> Result<(), String> {
        match self.toks.get(self.pos) {
            None => Ok(()),
            Some(t) => Err(format!("unexpected {t}")),
        }
    }
}

/// The op of a node line, from its kind, its attributes and its declared type (which
/// carries what the printer leaves out: the dtype and shape of inputs, constants and
/// random draws).
fn parse_op(kind: &str, a: &mut Attrs<'_>, ty: &TensorType) -> Result<Op, String> {
    let (dtype, shape) = (ty.dtype, ty.shape.clone());
    let op = match kind {
        "input" => Op::Input {
            name: a.string()?,
            dtype,
            shape,
        },
        "state" => Op::State {
            name: a.string()?,
            dtype,
            shape,
        },
        "const" => Op::Const {
            value: a.number()?,
            dtype,
        },
        "iota" => Op::Iota {
            dtype,
            shape,
            axis: a.key("axis")?,
        },
        "select" => Op::Select,
        "matmul" => Op::MatMul,
        "stop_gradient" => Op::StopGradient,
        "cast" => Op::Cast(a.dtype()?),
        "reshape" => Op::Reshape(a.list()?),
        "transpose" => Op::Transpose(a.list()?),
        "broadcast" => Op::Broadcast(a.list()?),
        "slice" => Op::Slice {
            starts: a.list()?,
            ends: a.list()?,
            steps: a.list()?,
        },
        "concat" => Op::Concat {
            axis: a.key("axis")?,
        },
        "pad" => Op::Pad {
            lo: a.list()?,
            hi: a.list()?,
            value: a.key("value")?,
        },
        "reduce_sum" | "reduce_max" | "reduce_min" => {
            let kind = match kind {
                "reduce_sum" => ReduceKind::Sum,
                "reduce_max" => ReduceKind::Max,
                _ => ReduceKind::Min,
            };
            let axes = a.list()?;
            let keepdims = a.flag("keepdims");
            Op::Reduce {
                kind,
                axes,
                keepdims,
            }
        }
        "argmax" => Op::ArgMax {
            axis: a.key("axis")?,
        },
        "argmin" => Op::ArgMin {
            axis: a.key("axis")?,
        },
        "gather" => Op::Gather {
            axis: a.key("axis")?,
        },
        "scatter_add" => Op::ScatterAdd {
            axis: a.key("axis")?,
            shape: a.list()?,
        },
        "patches" => Op::Patches(a.window()?),
        "fold" => Op::Fold {
            win: a.window()?,
            shape: a.list()?,
        },
        "random_uniform" => Op::Random {
            dist: Dist::Uniform {
                low: a.key("low")?,
                high: a.key("high")?,
            },
            shape,
            salt: a.key("salt")?,
        },
        "random_normal" => Op::Random {
            dist: Dist::Normal {
                mean: a.key("mean")?,
                std: a.key("std")?,
            },
            shape,
            salt: a.key("salt")?,
        },
        "random_bernoulli" => Op::Random {
            dist: Dist::Bernoulli,
            shape,
            salt: a.key("salt")?,
        },
        other => {
            if let Some(&u) = UnaryOp::ALL.iter().find(|u| u.name() == other) {
                Op::Unary(u)
            } else if let Some(&b) = BinaryOp::ALL.iter().find(|b| b.name() == other) {
                Op::Binary(b)
            } else {
                return Err(format!("unknown op `{other}`"));
            }
        }
    };
    a.end()?;
    Ok(op)
}

/// `f32[2, 3]`.
fn parse_type(toks: &[Tok]) -> Result<TensorType, String> {
    let mut a = Attrs { toks, pos: 0 };
    let dtype = a.dtype()?;
    let shape = a.list()?;
    a.end()?;
    Ok(TensorType::new(dtype, shape))
}

/// One node line: `%3 = add %1, %2 : f32[2]`.
fn parse_node(toks: &[Tok], g: &mut Graph, ids: &mut HashMap<usize, NodeId>) -> Result<(), String> {
    let Some(Tok::Ref(number)) = toks.first() else {
        return Err("expected `%N = ...`".into());
    };
    if toks.get(1) != Some(&Tok::Sym('=')) {
        return Err(format!("expected `=` after %{number}"));
    }
    let Some(Tok::Word(kind)) = toks.get(2) else {
        return Err(format!("expected an op after `%{number} =`"));
    };
    let colon = toks
        .iter()
        .rposition(|t| *t == Tok::Sym(':'))
        .ok_or_else(|| format!("%{number} has no `: type`"))?;
    let ty = parse_type(&toks[colon + 1..])?;
    let body = &toks[3..colon];
    let first_ref = body
        .iter()
        .position(|t| matches!(t, Tok::Ref(_)))
        .unwrap_or(body.len());
    let mut operands = Vec::new();
    for (i, t) in body[first_ref..].iter().enumerate() {
        match (i % 2, t) {
            (0, Tok::Ref(r)) => operands.push(
                *ids.get(r)
                    .ok_or_else(|| format!("%{number} uses %{r}, which is not defined above"))?,
            ),
            (1, Tok::Sym(',')) => {}
            _ => return Err(format!("unexpected {t} in the operands of %{number}")),
        }
    }
    if matches!(body.last(), Some(Tok::Sym(','))) {
        return Err(format!("trailing `,` in the operands of %{number}"));
    }
    let mut attrs = Attrs {
        toks: &body[..first_ref],
        pos: 0,
    };
    let op = parse_op(kind, &mut attrs, &ty).map_err(|e| format!("%{number} (`{kind}`): {e}"))?;
    let id = g
        .add(op, &operands)
        .map_err(|e| format!("%{number}: {e}"))?;
    if *g.ty(id) != ty {
        return Err(format!(
            "%{number} is declared {ty} but its shape rule gives {}",
            g.ty(id)
        ));
    }
    if ids.insert(*number, id).is_some() {
        return Err(format!("%{number} is defined twice"));
    }
    Ok(())
}

/// Reads a graph in the format of [`dnnc_ir::print::to_text`]. Blank lines and lines
/// starting with `#` or `//` are ignored. Nodes must be defined before they are used
/// (the printer's topological order guarantees it); every node's declared type must be
/// what its shape rule gives. `to_text(&parse_text(&to_text(g))?)` is `to_text(g)`.
pub fn parse_text(text: &str) -> Result<Graph, String> {
    let mut g: Option<Graph> = None;
    let mut ids: HashMap<usize, NodeId> = HashMap::new();
    let mut closed = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = |e: String| format!("line {}: {e}", i + 1);
        if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        if closed {
            return Err(at(format!("text after the end of the graph: `{line}`")));
        }
        let Some(graph) = g.as_mut() else {
            let name = line
                .strip_prefix("graph ")
                .and_then(|l| l.strip_suffix('{'))
                .ok_or_else(|| at("expected `graph NAME {`".into()))?;
            g = Some(Graph::new(name.trim()));
            continue;
        };
        if line == "}" {
            closed = true;
        } else if let Some(rest) = line.strip_prefix("output ") {
            let (name, target) = rest
                .rsplit_once(" = %")
                .ok_or_else(|| at("expected `output NAME = %N`".into()))?;
            let id = node_ref(target, &ids).map_err(at)?;
            graph.set_output(name, id);
        } else if let Some(rest) = line.strip_prefix("update ") {
            let (name, target) = rest
                .rsplit_once(" = %")
                .ok_or_else(|| at("expected `update \"NAME\" = %N`".into()))?;
            let toks = tokenize(name).map_err(at)?;
            let [Tok::Str(name)] = toks.as_slice() else {
                return Err(at("the state of an update is a quoted name".into()));
            };
            let id = node_ref(target, &ids).map_err(at)?;
            graph.add_update(name.clone(), id);
        } else if let Some(rest) = line.strip_prefix("limit ") {
            let (name, limit) = rest
                .rsplit_once(" < ")
                .ok_or_else(|| at("expected `limit \"INPUT\" < N`".into()))?;
            let toks = tokenize(name).map_err(at)?;
            let [Tok::Str(name)] = toks.as_slice() else {
                return Err(at("the input of a limit is a quoted name".into()));
            };
            let limit: usize = limit
                .trim()
                .parse()
                .map_err(|_| at(format!("`{limit}` is not a limit")))?;
            graph.limit_index(name, limit);
        } else {
            let toks = tokenize(line).map_err(at)?;
            parse_node(&toks, graph, &mut ids).map_err(at)?;
        }
    }
    match g {
        Some(g) if closed => Ok(g),
        Some(_) => Err("the graph is not closed with `}`".into()),
        None => Err("no `graph NAME {` found".into()),
    }
}

fn node_ref(text: &str, ids: &HashMap<usize, NodeId>) -> Result<NodeId, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("`%{text}` is not a node reference"))?;
    ids.get(&n)
        .copied()
        .ok_or_else(|| format!("%{n} is not defined"))
}
