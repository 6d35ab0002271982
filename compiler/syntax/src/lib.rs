//! The `.dnn` syntax: grammar, AST and an error-tolerant parser.
//!
//! [`parse`] never fails: it returns a [`ast::Module`] holding every declaration it
//! could read plus diagnostics for the rest. This crate knows nothing about salsa,
//! name resolution or shapes.

pub mod ast;
mod build;
pub mod format;
mod pest_errors;
mod split;

use std::sync::Arc;

use dnnc_diagnostics::{Diagnostic, Span};

pub use split::MAX_DEPTH;

/// The result of parsing one file.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub module: ast::Module,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses `text`, labelling diagnostics with `file`.
pub fn parse(file: &Arc<str>, text: &str) -> Parsed {
    let mut diagnostics = Vec::new();
    let chunks = split::split(file, text, &mut diagnostics);
    let mut items = Vec::new();
    for chunk in chunks {
        let slice = &text[chunk.span.range()];
        if slice.trim().is_empty() {
            continue;
        }
        if chunk.poisoned {
            items.push(build::error_item(slice, chunk.span));
            continue;
        }
        match build::parse_item(file, slice, chunk.span.start as usize, &mut diagnostics) {
            Some(item) => items.push(item),
            None => items.push(build::error_item(slice, chunk.span)),
        }
    }
    Parsed {
        module: ast::Module { items },
        diagnostics,
    }
}

/// Line and column (both 1-based, column in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The span of the whole text, for diagnostics about a file as a whole.
pub fn file_start() -> Span {
    Span::new(0, 0)
}
