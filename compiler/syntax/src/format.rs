//! The code formatter behind `dnnc fmt` and the language server's formatting request.
//!
//! [`format`] refuses text that does not parse cleanly, so broken code is never
//! rewritten. For valid text it is a token-stream pretty-printer, not an AST printer:
//! the file is lexed into words, numbers, strings, punctuation, comments and newlines,
//! and the same tokens are written back with normalised whitespace. Every comment —
//! line, `///`/`//!` doc and block comment — therefore survives exactly (only trailing
//! whitespace and `\r` are removed from it).
//!
//! The house style it produces:
//!
//! - indentation is four spaces per open `{`; a line inside a multi-line `(…)` or `[…]`
//!   is indented one level more than the line that opened the bracket, or — when the
//!   author aligned it just after the opening bracket (`train = (image: …,` /
//!   `label: …)`) — kept aligned there; a line continuing an expression (it starts with
//!   a binary operator or `.`, or the previous line ends with one) gets one extra level;
//! - the author's line breaks are kept; runs of blank lines collapse to one, blank
//!   lines after `{`/`(`/`[` and before a closing bracket go, a blank line separates
//!   top-level declarations (consecutive `use` lines may stay together), a declaration
//!   that shares a line with the end of the previous one moves to its own line, and the
//!   file ends with exactly one newline (CRLF becomes LF);
//! - one space around binary operators (`+ - * / % @ ** == != < <= > >= && || |> = ->`)
//!   and after `,`, `;` and `:`; none inside brackets, before `,`/`;`/`:`, around `.`,
//!   `::`, after `..`/`...`, after a unary `-`/`!`, between a callee and its `(` or `[`,
//!   and around `:` in an index (`x[:, 1:3]`); `{ … }` blocks have a space inside,
//!   `use a::{b, c}` groups do not;
//! - `=` signs that the author aligned on consecutive statement lines of a block
//!   (`fc1  = Dense(…)` / `head = Dense(…)`) stay aligned, as do trailing comments
//!   aligned on consecutive lines; elsewhere a trailing comment follows one space.
//!
//! The result is checked before it is returned: it must lex to the same tokens and
//! parse without diagnostics, or [`format`] reports an internal error instead.

use std::fmt;
use std::sync::Arc;

/// Why [`format`] declined to format a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    pub message: String,
    /// Byte offset in the input the message refers to.
    pub offset: usize,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for FormatError {}

/// Formats a whole `.dnn` file in the house style.
///
/// Returns an error, and formats nothing, when [`crate::parse`] reports any diagnostic.
pub fn format(text: &str) -> Result<String, FormatError> {
    let file: Arc<str> = Arc::from("<format>");
    let parsed = crate::parse(&file, text);
    if let Some(d) = parsed.diagnostics.first() {
        return Err(FormatError {
            message: d.message.clone(),
            offset: d.primary.span.start as usize,
        });
    }
    let tokens = lex(text);
    let out = Layout::run(&tokens);
    // A safety net: whitespace is all the formatter may change.
    let internal = |what: &str| FormatError {
        message: format!("internal formatter error: the output {what}; the file was left as it is"),
        offset: 0,
    };
    let again = lex(&out);
    let significant = |t: &&Token| t.kind != Kind::Newline;
    if !tokens
        .iter()
        .filter(significant)
        .map(|t| (t.kind, &t.text))
        .eq(again.iter().filter(significant).map(|t| (t.kind, &t.text)))
    {
        return Err(internal("changed the tokens"));
    }
    if !crate::parse(&file, &out).diagnostics.is_empty() {
        return Err(internal("does not parse"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Lexing

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Word,
    Number,
    Str,
    Punct,
    LineComment,
    BlockComment,
    Newline,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    /// The token's text; comments without trailing whitespace or `\r`.
    text: String,
    /// Input column (in characters) where the token starts and just after it ends.
    col: usize,
    end_col: usize,
}

impl Token {
    fn is(&self, punct: &str) -> bool {
        self.kind == Kind::Punct && self.text == punct
    }

    fn is_comment(&self) -> bool {
        matches!(self.kind, Kind::LineComment | Kind::BlockComment)
    }

    fn is_opener(&self) -> bool {
        self.kind == Kind::Punct && matches!(self.text.as_str(), "(" | "[" | "{")
    }

    fn is_closer(&self) -> bool {
        self.kind == Kind::Punct && matches!(self.text.as_str(), ")" | "]" | "}")
    }
}

const PUNCT3: &[&str] = &["..."];
const PUNCT2: &[&str] = &[
    "|>", "->", "::", "..", "**", "==", "!=", "<=", ">=", "&&", "||",
];
const BINARY: &[&str] = &[
    "+", "-", "*", "/", "%", "@", "**", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "|>", "=",
    "->",
];
const ITEM_KEYWORDS: &[&str] = &["use", "layer", "model", "fn", "dataset", "train"];

/// The column reached after writing `text` from column `col`.
fn advance(col: usize, text: &str) -> usize {
    match text.rfind('\n') {
        Some(i) => text[i + 1..].chars().count(),
        None => col + text.chars().count(),
    }
}

/// Splits `text` into tokens. Total: any byte sequence lexes, so the token check in
/// [`format`] is meaningful even for odd input.
fn lex(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut line_start = 0;
    // Columns are counted incrementally from the previous token, not from the line
    // start, so that a very long line does not make lexing quadratic.
    let (mut seen, mut seen_col) = (0, 0);
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let kind = match b {
            b'\n' => Kind::Newline,
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => Kind::Newline,
            b' ' | b'\t' | b'\r' | b'\x0c' => {
                i += 1;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                Kind::LineComment
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |j| i + 2 + j + 2);
                Kind::BlockComment
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' && bytes.get(i + 1).is_some_and(|&c| c != b'\n') {
                        2
                    } else {
                        1
                    };
                }
                if bytes.get(i) == Some(&b'"') {
                    i += 1;
                }
                Kind::Str
            }
            b'0'..=b'9' => {
                let digits = |i: &mut usize| {
                    while *i < bytes.len() && (bytes[*i].is_ascii_digit() || bytes[*i] == b'_') {
                        *i += 1;
                    }
                };
                digits(&mut i);
                if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                    digits(&mut i);
                }
                if matches!(bytes.get(i), Some(b'e' | b'E')) {
                    let sign = usize::from(matches!(bytes.get(i + 1), Some(b'+' | b'-')));
                    if bytes.get(i + 1 + sign).is_some_and(u8::is_ascii_digit) {
                        i += 1 + sign;
                        digits(&mut i);
                    }
                }
                // Anything glued on (`2abc`) stays part of the token.
                while i < bytes.len() && ident(bytes[i]) {
                    i += 1;
                }
                Kind::Number
            }
            _ if ident(b) => {
                while i < bytes.len() && ident(bytes[i]) {
                    i += 1;
                }
                Kind::Word
            }
            _ => {
                let rest = &text[i..];
                let len = PUNCT3
                    .iter()
                    .chain(PUNCT2)
                    .find(|p| rest.starts_with(**p))
                    .map_or_else(
                        || rest.chars().next().map_or(1, char::len_utf8),
                        |p| p.len(),
                    );
                i += len;
                Kind::Punct
            }
        };
        if kind == Kind::Newline {
            i += if b == b'\r' { 2 } else { 1 };
        }
        let raw = &text[start..i];
        if seen < line_start {
            (seen, seen_col) = (line_start, 0);
        }
        let col = seen_col + text[seen..start].chars().count();
        let text = match kind {
            Kind::Newline => "\n".to_string(),
            Kind::LineComment => raw.trim_end().to_string(),
            Kind::BlockComment => raw
                .split('\n')
                .map(|l| l.trim_end_matches([' ', '\t', '\r']))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => raw.to_string(),
        };
        let end_col = advance(col, &text);
        if let Some(nl) = raw.rfind('\n') {
            line_start = start + nl + 1;
        }
        (seen, seen_col) = (start, col);
        tokens.push(Token {
            kind,
            text,
            col,
            end_col,
        });
    }
    tokens
}

// ---------------------------------------------------------------------------------
// Token roles

/// What the formatter needs to know about each token beyond its text.
#[derive(Clone, Copy, Debug, Default)]
struct Role {
    /// `if`, `else`, `let`, `in` of `scan(x in xs)`, `with` of `update a with opt`.
    keyword: bool,
    /// A prefix `-` or `!`.
    unary: bool,
    /// A binary operator (including `=` and `->`).
    binary: bool,
    /// `*` in `use m::*`.
    glob: bool,
    /// `[` opening an index or a tensor type (`x[0]`, `f32[B]`), not a list or shape.
    index: bool,
    /// `{` of `use m::{a, b}`.
    use_group: bool,
    /// The previous and the next token that are neither comments nor newlines.
    prev: Option<usize>,
    next: Option<usize>,
}

fn roles(tokens: &[Token]) -> Vec<Role> {
    let mut roles = vec![Role::default(); tokens.len()];
    let mut sig: Vec<usize> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_comment() || t.kind == Kind::Newline {
            continue;
        }
        let back = |n: usize| sig.len().checked_sub(n).map(|k| &tokens[sig[k]]);
        let mut role = Role {
            prev: sig.last().copied(),
            ..Role::default()
        };
        let ends_expr = |j: usize, roles: &[Role]| {
            let p = &tokens[j];
            match p.kind {
                Kind::Number | Kind::Str => true,
                Kind::Word => !roles[j].keyword,
                Kind::Punct => p.is_closer() || roles[j].glob,
                _ => false,
            }
        };
        match (t.kind, t.text.as_str()) {
            (Kind::Word, "if" | "else" | "let") => role.keyword = true,
            (Kind::Word, "in") => {
                role.keyword = back(1).is_some_and(|p| p.kind == Kind::Word)
                    && back(2).is_some_and(|p| p.is("("))
                    && back(3).is_some_and(|p| p.kind == Kind::Word && p.text == "scan");
            }
            (Kind::Word, "with") => {
                let before = sig
                    .iter()
                    .rev()
                    .map(|&j| &tokens[j])
                    .find(|p| !(p.is(",") || p.kind == Kind::Word && p.text != "update"));
                role.keyword = before.is_some_and(|p| p.kind == Kind::Word);
            }
            (Kind::Punct, "-") => role.unary = !role.prev.is_some_and(|p| ends_expr(p, &roles)),
            (Kind::Punct, "!") => role.unary = true,
            (Kind::Punct, "*") => role.glob = back(1).is_some_and(|p| p.is("::")),
            (Kind::Punct, "[") => {
                role.index = i > 0 && {
                    let p = &tokens[i - 1];
                    match p.kind {
                        Kind::Word => !roles[i - 1].keyword,
                        Kind::Str => true,
                        Kind::Punct => p.is(")") || p.is("]"),
                        _ => false,
                    }
                };
            }
            (Kind::Punct, "{") => role.use_group = back(1).is_some_and(|p| p.is("::")),
            _ => {}
        }
        role.binary =
            t.kind == Kind::Punct && BINARY.contains(&t.text.as_str()) && !role.unary && !role.glob;
        roles[i] = role;
        sig.push(i);
    }
    let mut next = None;
    for (i, t) in tokens.iter().enumerate().rev() {
        roles[i].next = next;
        if !t.is_comment() && t.kind != Kind::Newline {
            next = Some(i);
        }
    }
    roles
}

// ---------------------------------------------------------------------------------
// Layout

/// One input line: indices of its tokens (no newlines) and the blank lines above it.
struct Line {
    tokens: Vec<usize>,
    blank_before: bool,
}

/// Cuts the token stream into lines, and a line in two where a declaration starts
/// right after the `}` or `;` that ends the previous one.
fn lines(tokens: &[Token]) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    let mut newlines = 0;
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        if t.kind == Kind::Newline {
            newlines += 1;
            continue;
        }
        let split = match lines.last() {
            None => true,
            Some(_) if newlines > 0 => true,
            Some(line) => {
                depth == 0
                    && t.kind == Kind::Word
                    && ITEM_KEYWORDS.contains(&t.text.as_str())
                    && line
                        .tokens
                        .iter()
                        .rev()
                        .map(|&j| &tokens[j])
                        .find(|p| !p.is_comment())
                        .is_some_and(|p| p.is("}") || p.is(";"))
            }
        };
        if split {
            lines.push(Line {
                tokens: Vec::new(),
                blank_before: newlines > 1,
            });
        }
        newlines = 0;
        lines.last_mut().expect("pushed above").tokens.push(i);
        if t.is_opener() {
            depth += 1;
        } else if t.is_closer() {
            depth = depth.saturating_sub(1);
        }
    }
    lines
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpenKind {
    Paren,
    Index,
    List,
    Block,
    UseGroup,
}

/// An open bracket while laying out.
struct Open {
    kind: OpenKind,
    id: usize,
    /// Indentation of the line that opened it (see `base` in [`Layout::pass`]).
    line_indent: usize,
    /// The input line that opened it.
    line: usize,
    /// Input column of the token right after it on its line, if any.
    visual_in: Option<usize>,
    /// Output column just after it.
    visual_out: usize,
}

/// What the alignment passes need to know about one laid-out line.
#[derive(Clone, Debug, Default)]
struct LineInfo {
    blank_before: bool,
    comment_only: bool,
    /// Depth and id of the innermost bracket the line belongs to (0, 0 at top level).
    owner: (usize, usize),
    /// A statement line directly inside a block (or at top level).
    statement: bool,
    /// `(natural output column, input column)` of the line's binding `=`.
    eq: Option<(usize, usize)>,
    /// `(output column where code ends, input gap, input column)` of a trailing comment.
    trailing: Option<(usize, usize, usize)>,
}

struct Layout<'a> {
    tokens: &'a [Token],
    roles: Vec<Role>,
    lines: Vec<Line>,
}

impl<'a> Layout<'a> {
    fn run(tokens: &'a [Token]) -> String {
        let layout = Layout {
            tokens,
            roles: roles(tokens),
            lines: lines(tokens),
        };
        let n = layout.lines.len();
        let none = vec![0; n];
        let (_, first) = layout.pass(&none, &none);
        let eq_pads = eq_pads(&first);
        let (_, second) = layout.pass(&eq_pads, &none);
        let comment_cols = comment_cols(&second);
        layout.pass(&eq_pads, &comment_cols).0
    }

    /// Lays the file out once, with `eq_pads[l]` extra spaces before line `l`'s binding
    /// `=` and its trailing comment at column `comment_cols[l]` (0: one space after code).
    fn pass(&self, eq_pads: &[usize], comment_cols: &[usize]) -> (String, Vec<LineInfo>) {
        let toks = self.tokens;
        // One entry per input line, with whether a blank line goes above it.
        let mut out: Vec<(String, OutKind, bool)> = Vec::new();
        let mut infos: Vec<LineInfo> = Vec::with_capacity(self.lines.len());
        let mut stack: Vec<Open> = Vec::new();
        let mut next_id = 1;
        let mut last_ends_open = false;
        let mut last_item: Option<&str> = None;
        for (l, line) in self.lines.iter().enumerate() {
            let first = &toks[line.tokens[0]];
            let lead = line.tokens.iter().copied().find(|&i| !toks[i].is_comment());
            let comment_only = lead.is_none();
            let leading_closers = line
                .tokens
                .iter()
                .take_while(|&&i| toks[i].is_closer())
                .count();
            let top_level = stack.is_empty();

            // Indentation.
            let look = lead.or_else(|| self.roles[*line.tokens.last().expect("non-empty")].next);
            let continuation = look.is_some_and(|t| self.continuation(t));
            let indent = if leading_closers > 0 {
                stack.last().map_or(0, |o| o.line_indent)
            } else {
                match stack.last() {
                    None => 4 * usize::from(continuation),
                    Some(o) if o.kind == OpenKind::Block => {
                        o.line_indent + 4 + 4 * usize::from(continuation)
                    }
                    Some(o) if o.visual_in == Some(first.col) => o.visual_out,
                    Some(o) => o.line_indent + 4,
                }
            };
            let owner_depth = stack.len().saturating_sub(leading_closers);
            let owner = stack[..owner_depth].last();
            let owner_is_block = owner.is_none_or(|o| o.kind == OpenKind::Block);

            // Blank lines.
            let mut blank = line.blank_before && !out.is_empty() && !last_ends_open;
            if leading_closers > 0 {
                blank = false;
            }
            let item = lead
                .filter(|&t| {
                    top_level
                        && toks[t].kind == Kind::Word
                        && ITEM_KEYWORDS.contains(&toks[t].text.as_str())
                })
                .map(|t| toks[t].text.as_str());
            if let Some(kw) = item {
                // The comment lines right above a declaration belong to it: the blank
                // line separating it from the previous declaration goes above them.
                let blank_at =
                    |at: usize, out: &[(String, OutKind, bool)]| out.get(at).map_or(blank, |o| o.2);
                let mut at = out.len();
                while at > 0 && !blank_at(at, &out) && out[at - 1].1 == OutKind::TopComment {
                    at -= 1;
                }
                let after_code = at > 0 && !blank_at(at, &out) && out[at - 1].1 == OutKind::Code;
                let both_use = last_item == Some("use") && kw == "use";
                if after_code && !both_use {
                    match out.get_mut(at) {
                        Some(o) => {
                            o.2 = true;
                            infos[at].blank_before = true;
                        }
                        None => blank = true,
                    }
                }
                last_item = Some(kw);
            }

            // The tokens.
            let mut info = LineInfo {
                blank_before: blank,
                comment_only,
                owner: (owner_depth, owner.map_or(0, |o| o.id)),
                statement: owner_is_block && leading_closers == 0 && !continuation && !comment_only,
                ..LineInfo::default()
            };
            // What brackets opened on this line are relative to: the line's indentation,
            // less the continuation level of a `-> Type {` line (or of the type after a
            // line ending in `->`), and back to the level of
            // an earlier line once a bracket opened there closes (`    b: [N]) -> [N] {`).
            let arrow = lead.is_some_and(|t| {
                toks[t].is("->") || self.roles[t].prev.is_some_and(|p| toks[p].is("->"))
            });
            let mut base = if continuation && arrow {
                indent.saturating_sub(4)
            } else {
                indent
            };
            let mut text = " ".repeat(indent);
            let mut col = indent;
            let mut fresh: Option<usize> = None;
            let mut rel_depth = 0usize;
            let mut eq_seen = false;
            let last = line.tokens.len() - 1;
            for (j, &ti) in line.tokens.iter().enumerate() {
                let t = &toks[ti];
                if let Some(k) = fresh.take() {
                    if !t.is_closer() && t.kind != Kind::LineComment {
                        stack[k].visual_in = Some(t.col);
                    }
                }
                let top = stack.last().map(|o| o.kind);
                let binding = info.statement && !eq_seen && rel_depth == 0 && t.is("=");
                if binding {
                    eq_seen = true;
                }
                if j > 0 {
                    let prev_ti = line.tokens[j - 1];
                    let spaces = if t.is_comment() && j == last {
                        let code_end = col;
                        let gap = t.col.saturating_sub(toks[prev_ti].end_col).max(1);
                        info.trailing = Some((code_end, gap, t.col));
                        match comment_cols[l] {
                            0 => 1,
                            c => c.saturating_sub(code_end).max(1),
                        }
                    } else if binding {
                        info.eq = Some((col + 1, t.col));
                        1 + eq_pads[l]
                    } else {
                        usize::from(self.space(prev_ti, ti, top))
                    };
                    text.extend(std::iter::repeat_n(' ', spaces));
                    col += spaces;
                }
                text.push_str(&t.text);
                col = advance(col, &t.text);
                if t.is_closer() {
                    if let Some(o) = stack.pop() {
                        if o.line != l {
                            base = o.line_indent;
                        }
                    }
                    rel_depth = rel_depth.saturating_sub(1);
                } else if t.is_opener() {
                    let role = self.roles[ti];
                    let kind = match t.text.as_str() {
                        "(" => OpenKind::Paren,
                        "[" if role.index => OpenKind::Index,
                        "[" => OpenKind::List,
                        _ if role.use_group => OpenKind::UseGroup,
                        _ => OpenKind::Block,
                    };
                    stack.push(Open {
                        kind,
                        id: next_id,
                        line_indent: base,
                        line: l,
                        visual_in: None,
                        visual_out: col,
                    });
                    next_id += 1;
                    fresh = Some(stack.len() - 1);
                    rel_depth += 1;
                }
            }
            last_ends_open = line
                .tokens
                .iter()
                .rev()
                .map(|&i| &toks[i])
                .find(|t| !t.is_comment())
                .is_some_and(Token::is_opener);
            let kind = match (comment_only, top_level) {
                (true, true) => OutKind::TopComment,
                (true, false) => OutKind::Comment,
                (false, _) => OutKind::Code,
            };
            out.push((text, kind, blank));
            infos.push(info);
        }
        let mut s = String::new();
        for (text, _, blank) in &out {
            if *blank {
                s.push('\n');
            }
            s.push_str(text);
            s.push('\n');
        }
        (s, infos)
    }

    /// Whether a line starting with token `t` continues the expression of the line
    /// before: it starts with a binary operator or `.`, or the line before ends with one.
    fn continuation(&self, t: usize) -> bool {
        let role = self.roles[t];
        role.binary
            || self.tokens[t].is(".")
            || role
                .prev
                .is_some_and(|p| self.roles[p].binary || self.roles[p].unary)
    }

    /// Whether one space separates tokens `p` and `c` on a line; `top` is the innermost
    /// open bracket before `c`.
    fn space(&self, p: usize, c: usize, top: Option<OpenKind>) -> bool {
        let (prev, cur) = (&self.tokens[p], &self.tokens[c]);
        let (pr, cr) = (self.roles[p], self.roles[c]);
        let after_open = prev.is("(") || prev.is("[") || prev.is("{") && pr.use_group;
        if cur.is_comment() {
            return cur.kind == Kind::LineComment || !after_open;
        }
        let closes_tight = cur.is(",") || cur.is(";") || cur.is(")") || cur.is("]");
        if prev.kind == Kind::BlockComment {
            let tight =
                closes_tight || cur.is(":") || cur.is("}") && top == Some(OpenKind::UseGroup);
            return !tight;
        }
        if closes_tight {
            return false;
        }
        if cur.is("}") {
            return top == Some(OpenKind::Block) && !prev.is("{");
        }
        if prev.is("(") || prev.is("[") {
            return false;
        }
        if prev.is("{") {
            return !pr.use_group;
        }
        if prev.is(",") || prev.is(";") {
            return true;
        }
        if cur.is(":") {
            // `x[: :2]` must not become `x[::2]`, which lexes differently.
            return prev.is(":");
        }
        if prev.is(":") {
            return top != Some(OpenKind::Index);
        }
        if cur.is(".") || cur.is("::") {
            return false;
        }
        if pr.unary && prev.is("-") && cur.is("-") {
            return true; // `- -x`, not `--x`
        }
        if prev.is(".") || prev.is("::") || prev.is("..") || prev.is("...") || pr.unary {
            return false;
        }
        if cur.is("(") {
            let callee = match prev.kind {
                Kind::Word => !pr.keyword,
                _ => prev.is(")") || prev.is("]"),
            };
            return !callee;
        }
        if cur.is("[") {
            return !cr.index;
        }
        true
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutKind {
    Code,
    /// A comment-only line at top level.
    TopComment,
    Comment,
}

/// Extra spaces before each line's binding `=`: lines of one block whose `=` the
/// author aligned (same input column, consecutive statement lines, no blank line
/// between; comment lines and the insides of multi-line expressions do not interrupt)
/// are aligned to the rightmost of their natural columns.
fn eq_pads(infos: &[LineInfo]) -> Vec<usize> {
    let mut pads = vec![0; infos.len()];
    let mut run: Vec<usize> = Vec::new();
    let mut run_owner = (0, 0);
    let mut run_col = 0;
    let flush = |run: &mut Vec<usize>, pads: &mut Vec<usize>| {
        if run.len() >= 2 {
            let target = run
                .iter()
                .filter_map(|&l| infos[l].eq)
                .map(|e| e.0)
                .max()
                .unwrap_or(0);
            for &l in run.iter() {
                if let Some((natural, _)) = infos[l].eq {
                    pads[l] = target - natural;
                }
            }
        }
        run.clear();
    };
    for (l, info) in infos.iter().enumerate() {
        if info.blank_before {
            flush(&mut run, &mut pads);
        }
        if !run.is_empty() {
            let nested = info.owner.0 > run_owner.0;
            let inside = info.owner == run_owner && !info.statement;
            if info.comment_only || nested || inside {
                continue;
            }
            match info.eq {
                Some((_, input)) if info.owner == run_owner && input == run_col => {
                    run.push(l);
                    continue;
                }
                _ => flush(&mut run, &mut pads),
            }
        }
        if let (true, Some((_, input))) = (info.statement, info.eq) {
            run.push(l);
            run_owner = info.owner;
            run_col = input;
        }
    }
    flush(&mut run, &mut pads);
    pads
}

/// Output columns of trailing comments that the author aligned on consecutive lines:
/// the furthest of "where the code ends plus the author's gap" over the group.
fn comment_cols(infos: &[LineInfo]) -> Vec<usize> {
    let mut cols = vec![0; infos.len()];
    let mut run: Vec<usize> = Vec::new();
    let mut run_col = 0;
    let flush = |run: &mut Vec<usize>, cols: &mut Vec<usize>| {
        if run.len() >= 2 {
            let target = run
                .iter()
                .filter_map(|&l| infos[l].trailing)
                .map(|(end, gap, _)| end + gap)
                .max()
                .unwrap_or(0);
            for &l in run.iter() {
                cols[l] = target;
            }
        }
        run.clear();
    };
    for (l, info) in infos.iter().enumerate() {
        match info.trailing {
            Some((_, _, input)) if !info.blank_before && !run.is_empty() && input == run_col => {
                run.push(l);
            }
            Some((_, _, input)) => {
                flush(&mut run, &mut cols);
                run.push(l);
                run_col = input;
            }
            None => flush(&mut run, &mut cols),
        }
    }
    flush(&mut run, &mut cols);
    cols
}
