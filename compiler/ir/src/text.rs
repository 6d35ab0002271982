//! The IR's text form, printed and parsed side by side: [`to_text`] writes a graph one
//! node per line (stable numbering in topological order, so golden files can compare
//! it), [`parse_text`] reads it back. `to_text(&parse_text(&to_text(g))?)` is
//! `to_text(g)` for every graph (a property test checks it on random graphs).

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write;

use crate::error::IrError;
use crate::graph::{Graph, NodeId};
use crate::op::{Dist, DistKind, Op, OpKind};
use crate::shape::TensorType;
use crate::window::Window2d;
use dnnc_tensor::DType;

/// The graph as text, one node per line:
///
/// ```text
/// graph predict {
///   %0 = input "x" : f32[2, 3]
///   %1 = state "W" : f32[3, 4]
///   %2 = matmul %0, %1 : f32[2, 4]
///   output y = %2
/// }
/// ```
pub fn to_text(g: &Graph) -> String {
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids());
    let numbers: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut out = String::new();
    let _ = writeln!(out, "graph {} {{", g.name);
    for &n in &order {
        let node = g.node(n);
        let ops: Vec<String> = g
            .operands(n)
            .iter()
            .map(|o| format!("%{}", numbers[o]))
            .collect();
        let args = if ops.is_empty() {
            String::new()
        } else {
            format!(" {}", ops.join(", "))
        };
        let _ = writeln!(
            out,
            "  %{} = {}{} : {}",
            numbers[&n], node.op, args, node.ty
        );
    }
    for (name, id) in g.outputs() {
        let _ = writeln!(
            out,
            "  output {name} = %{}",
            numbers.get(id).copied().unwrap_or(usize::MAX)
        );
    }
    for (name, id) in g.updates() {
        let _ = writeln!(
            out,
            "  update {name:?} = %{}",
            numbers.get(id).copied().unwrap_or(usize::MAX)
        );
    }
    for (name, limit) in g.index_limits() {
        let _ = writeln!(out, "  limit {name:?} < {limit}");
    }
    out.push_str("}\n");
    out
}

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
    let Some(k) = OpKind::all().into_iter().find(|k| k.name() == kind) else {
        return Err(format!("unknown op `{kind}`"));
    };
    // One arm per kind, without a wildcard: a new op does not compile until it parses.
    let op = match k {
        OpKind::Input => Op::Input {
            name: a.string()?,
            dtype,
            shape,
        },
        OpKind::State => Op::State {
            name: a.string()?,
            dtype,
            shape,
        },
        OpKind::Const => Op::Const {
            value: a.number()?,
            dtype,
        },
        OpKind::Iota => Op::Iota {
            dtype,
            shape,
            axis: a.key("axis")?,
        },
        OpKind::Unary(u) => Op::Unary(u),
        OpKind::Binary(b) => Op::Binary(b),
        OpKind::Select => Op::Select,
        OpKind::MatMul => Op::MatMul,
        OpKind::StopGradient => Op::StopGradient,
        OpKind::Cast => Op::Cast(a.dtype()?),
        OpKind::Reshape => Op::Reshape(a.list()?),
        OpKind::Transpose => Op::Transpose(a.list()?),
        OpKind::Broadcast => Op::Broadcast(a.list()?),
        OpKind::Slice => Op::Slice {
            starts: a.list()?,
            ends: a.list()?,
            steps: a.list()?,
        },
        OpKind::Concat => Op::Concat {
            axis: a.key("axis")?,
        },
        OpKind::Pad => Op::Pad {
            lo: a.list()?,
            hi: a.list()?,
            value: a.key("value")?,
        },
        OpKind::Reduce(kind) => {
            let axes = a.list()?;
            let keepdims = a.flag("keepdims");
            Op::Reduce {
                kind,
                axes,
                keepdims,
            }
        }
        OpKind::ArgMax => Op::ArgMax {
            axis: a.key("axis")?,
        },
        OpKind::ArgMin => Op::ArgMin {
            axis: a.key("axis")?,
        },
        OpKind::ArgSort => Op::ArgSort {
            axis: a.key("axis")?,
            descending: a.flag("descending"),
        },
        OpKind::Gather => Op::Gather {
            axis: a.key("axis")?,
        },
        OpKind::ScatterAdd => Op::ScatterAdd {
            axis: a.key("axis")?,
            shape: a.list()?,
        },
        OpKind::Patches => Op::Patches(a.window()?),
        OpKind::Fold => Op::Fold {
            win: a.window()?,
            shape: a.list()?,
        },
        OpKind::Random(d) => {
            let dist = match d {
                DistKind::Uniform => Dist::Uniform {
                    low: a.key("low")?,
                    high: a.key("high")?,
                },
                DistKind::Normal => Dist::Normal {
                    mean: a.key("mean")?,
                    std: a.key("std")?,
                },
                DistKind::Bernoulli => Dist::Bernoulli,
            };
            Op::Random {
                dist,
                shape,
                salt: a.key("salt")?,
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
pub fn parse_text(text: &str) -> Result<Graph, IrError> {
    parse_lines(text).map_err(|(line, why)| IrError::Parse { line, why })
}

/// [`parse_text`], with errors as the line (0 for the end) and why.
fn parse_lines(text: &str) -> Result<Graph, (usize, String)> {
    let mut g: Option<Graph> = None;
    let mut ids: HashMap<usize, NodeId> = HashMap::new();
    let mut closed = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = |e: String| (i + 1, e);
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
        Some(_) => Err((0, "the graph is not closed with `}`".into())),
        None => Err((0, "no `graph NAME {` found".into())),
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
