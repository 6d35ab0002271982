//! Cuts a file into top-level declarations before parsing, and reports lexical errors.
//!
//! pest stops at the first error, so parsing a whole file at once would lose every
//! declaration after a typo. The splitter scans the text once (aware of strings and
//! comments), tracks bracket depth, and starts a new chunk at each top-level keyword
//! (`use`, `layer`, `model`, `fn`, `dataset`, `train`) at depth 0 — or at any depth when
//! the keyword starts a line, which recovers from an unclosed `{`. Doc comments just
//! above a keyword belong to its chunk. Problems that make pest's own message useless
//! (an unterminated comment or string, control bytes, nesting beyond [`MAX_DEPTH`],
//! unbalanced delimiters) are reported here, and the chunk is marked `poisoned` so it
//! is not parsed again for a second, noisier error.

use dnnc_diagnostics::{codes, Diagnostic, Span};
use std::sync::Arc;

/// Deepest bracket nesting accepted; deeper input is rejected instead of recursing.
pub const MAX_DEPTH: usize = 128;

const ITEM_KEYWORDS: &[&str] = &["use", "layer", "model", "fn", "dataset", "train"];

/// One top-level declaration's text range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub span: Span,
    /// A lexical error was reported inside; do not hand the chunk to pest.
    pub poisoned: bool,
}

/// Splits `text` into chunks, appending lexical diagnostics to `diags`.
pub fn split(file: &Arc<str>, text: &str, diags: &mut Vec<Diagnostic>) -> Vec<Chunk> {
    Splitter {
        file,
        text,
        bytes: text.as_bytes(),
        pos: 0,
        chunks: Vec::new(),
        current: None,
        doc_start: None,
        stack: Vec::new(),
        last: 0,
        diags,
    }
    .run()
}

struct Splitter<'a> {
    file: &'a Arc<str>,
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    chunks: Vec<Chunk>,
    current: Option<Chunk>,
    /// Start of a run of `///` lines at depth 0 not yet attached to a chunk.
    doc_start: Option<usize>,
    /// Open brackets: (byte, offset).
    stack: Vec<(u8, usize)>,
    /// The last token byte seen (`}` or `;` end a declaration), 0 at a line start.
    last: u8,
    diags: &'a mut Vec<Diagnostic>,
}

impl Splitter<'_> {
    fn run(mut self) -> Vec<Chunk> {
        while self.pos < self.bytes.len() {
            let b = self.bytes[self.pos];
            match b {
                b'\n' => {
                    self.pos += 1;
                    if self.stack.is_empty() {
                        self.last = 0;
                    }
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'/' if self.peek(1) == Some(b'/') => self.line_comment(),
                b'/' if self.peek(1) == Some(b'*') => self.block_comment(),
                b'"' => {
                    self.touch();
                    self.string();
                }
                b'(' | b'[' | b'{' => {
                    self.touch();
                    self.stack.push((b, self.pos));
                    if self.stack.len() > MAX_DEPTH {
                        self.error(
                            Diagnostic::error(
                                codes::NESTING_TOO_DEEP,
                                self.file,
                                Span::new(self.pos, self.pos + 1),
                                format!("brackets nested more than {MAX_DEPTH} levels deep"),
                            )
                            .with_label("too deep")
                            .with_help("split the expression with `let` bindings"),
                        );
                        self.skip_to_next_item();
                        continue;
                    }
                    self.pos += 1;
                }
                b')' | b']' | b'}' => {
                    self.touch();
                    let open = match b {
                        b')' => b'(',
                        b']' => b'[',
                        _ => b'{',
                    };
                    match self.stack.last() {
                        Some(&(o, _)) if o == open => {
                            self.stack.pop();
                        }
                        Some(&(o, at)) => {
                            let d = Diagnostic::error(
                                codes::UNBALANCED_DELIMITER,
                                self.file,
                                Span::new(self.pos, self.pos + 1),
                                format!("mismatched closing delimiter `{}`", b as char),
                            )
                            .with_label("does not close the open delimiter")
                            .with_secondary(
                                self.file,
                                Span::new(at, at + 1),
                                format!("`{}` opened here", o as char),
                            );
                            self.error(d);
                            self.stack.pop();
                        }
                        None => {
                            let d = Diagnostic::error(
                                codes::UNBALANCED_DELIMITER,
                                self.file,
                                Span::new(self.pos, self.pos + 1),
                                format!("unexpected closing delimiter `{}`", b as char),
                            )
                            .with_label("nothing is open here");
                            self.error(d);
                        }
                    }
                    self.pos += 1;
                }
                _ if b.is_ascii_alphabetic() || b == b'_' => self.word(),
                _ if b < 0x20 || b == 0x7f => {
                    self.touch();
                    let what = if b == 0 {
                        "a NUL byte".to_string()
                    } else {
                        format!("the control byte 0x{b:02x}")
                    };
                    let d = Diagnostic::error(
                        codes::INVALID_SOURCE_BYTES,
                        self.file,
                        Span::new(self.pos, self.pos + 1),
                        format!("source holds {what}"),
                    )
                    .with_label("not allowed in source text")
                    .with_note(".dnn files are UTF-8 text; is this a binary file?");
                    self.error(d);
                    self.skip_to_next_item();
                }
                _ => {
                    self.touch();
                    // Advance by a whole UTF-8 character.
                    let len = self.text[self.pos..]
                        .chars()
                        .next()
                        .map_or(1, char::len_utf8);
                    self.pos += len;
                }
            }
        }
        self.finish_chunk(self.bytes.len());
        self.chunks
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    /// Notes that a token starts at `self.pos`: opens a chunk if none is open.
    fn touch(&mut self) {
        self.last = self.bytes.get(self.pos).copied().unwrap_or(b' ');
        if self.current.is_none() {
            let start = self.doc_start.take().unwrap_or(self.pos);
            self.current = Some(Chunk {
                span: Span::new(start, start),
                poisoned: false,
            });
        } else if self.stack.is_empty() {
            self.doc_start = None;
        }
    }

    fn finish_chunk(&mut self, end: usize) {
        if let Some(&(open, at)) = self.stack.first() {
            let close = match open {
                b'(' => ')',
                b'[' => ']',
                _ => '}',
            };
            let d = Diagnostic::error(
                codes::UNBALANCED_DELIMITER,
                self.file,
                Span::new(at, at + 1),
                format!("unclosed delimiter `{}`", open as char),
            )
            .with_label("never closed")
            .with_help(format!("add `{close}` where the declaration ends"));
            self.error(d);
        }
        if let Some(mut chunk) = self.current.take() {
            chunk.span.end = end as u32;
            self.chunks.push(chunk);
        }
        self.stack.clear();
    }

    fn error(&mut self, d: Diagnostic) {
        let chunk = self.current.get_or_insert(Chunk {
            span: Span::new(self.pos, self.pos),
            poisoned: false,
        });
        if !chunk.poisoned {
            chunk.poisoned = true;
            self.diags.push(d);
        }
    }

    fn line_comment(&mut self) {
        let is_doc = self.peek(2) == Some(b'/') && self.peek(3) != Some(b'/');
        if is_doc && self.stack.is_empty() && self.doc_start.is_none() {
            let at_line_start = self.text[..self.pos]
                .rsplit('\n')
                .next()
                .is_some_and(|l| l.trim().is_empty());
            if at_line_start {
                self.doc_start = Some(self.pos);
            }
        }
        while self.pos < self.bytes.len() && self.bytes[self.pos] != b'\n' {
            self.pos += 1;
        }
    }

    fn block_comment(&mut self) {
        let start = self.pos;
        match self.text[self.pos + 2..].find("*/") {
            Some(i) => self.pos += 2 + i + 2,
            None => {
                self.touch();
                let d = Diagnostic::error(
                    codes::UNTERMINATED_COMMENT,
                    self.file,
                    Span::new(start, start + 2),
                    "unterminated block comment",
                )
                .with_label("comment starts here and never ends")
                .with_help("close it with `*/`");
                self.error(d);
                self.pos = self.bytes.len();
            }
        }
    }

    fn string(&mut self) {
        let start = self.pos;
        self.pos += 1;
        while self.pos < self.bytes.len() {
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return;
                }
                b'\\' if self.peek(1) != Some(b'\n') => self.pos += 2,
                b'\n' | b'\\' => break,
                _ => self.pos += 1,
            }
        }
        self.pos = self.pos.min(self.bytes.len());
        let d = Diagnostic::error(
            codes::UNTERMINATED_STRING,
            self.file,
            Span::new(start, start + 1),
            "unterminated string literal",
        )
        .with_label("string starts here")
        .with_help("close it with `\"` on the same line");
        self.error(d);
    }

    fn word(&mut self) {
        let start = self.pos;
        while self.pos < self.bytes.len()
            && (self.bytes[self.pos].is_ascii_alphanumeric() || self.bytes[self.pos] == b'_')
        {
            self.pos += 1;
        }
        let word = &self.text[start..self.pos];
        let at_column_0 = start == 0 || self.bytes[start - 1] == b'\n';
        // At depth 0 a keyword starts a declaration when it is the first token of its
        // line or follows `}` or `;`; inside brackets (an unclosed `{`) only when it sits
        // in column 0 and is followed by a name and what a declaration has next.
        let starts_item = ITEM_KEYWORDS.contains(&word)
            && if self.stack.is_empty() {
                matches!(self.last, 0 | b'}' | b';')
            } else {
                at_column_0 && self.looks_like_header(word)
            };
        if starts_item {
            let chunk_start = self.doc_start.take().unwrap_or(start);
            self.finish_chunk(chunk_start);
            self.current = Some(Chunk {
                span: Span::new(chunk_start, chunk_start),
                poisoned: false,
            });
            self.last = b'a';
        } else {
            let saved = self.pos;
            self.pos = start;
            self.touch();
            self.pos = saved;
        }
    }

    /// After a keyword at `self.pos`: ` Name` then `(`/`{` (or `on` for `train`).
    fn looks_like_header(&self, keyword: &str) -> bool {
        if keyword == "use" {
            return true;
        }
        let rest = self.text[self.pos..].trim_start_matches([' ', '\t']);
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if name_len == 0 {
            return false;
        }
        let after = rest[name_len..].trim_start();
        after.starts_with('(')
            || after.starts_with('{')
            || (keyword == "train" && after.starts_with("on"))
    }

    /// After a fatal lexical error: skip to the next line that starts an item.
    fn skip_to_next_item(&mut self) {
        loop {
            match self.text[self.pos..].find('\n') {
                None => {
                    self.pos = self.bytes.len();
                    return;
                }
                Some(i) => {
                    self.pos += i + 1;
                    let rest = &self.text[self.pos..];
                    let starts_item = ITEM_KEYWORDS.iter().any(|k| {
                        rest.starts_with(k)
                            && !rest[k.len()..]
                                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                    });
                    if starts_item || rest.starts_with("///") {
                        self.stack.clear();
                        return;
                    }
                }
            }
        }
    }
}
