//! The `.dnn` syntax: grammar, AST and an error-tolerant parser.
//!
//! [`parse`] never fails: it returns a [`ast::Module`] holding every declaration it
//! could read plus diagnostics for the rest. This crate knows nothing about salsa,
//! name resolution or shapes.

pub mod ast;
mod build;
pub mod format;
mod pest_errors;
mod shift;
mod split;

use std::collections::HashMap;
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
    parse_cached(file, text, &ChunkCache::disabled())
}

/// Declarations parsed before, by their text, so that re-parsing a file after an edit
/// only parses the declarations that changed. Entries are relative to the
/// declaration's start and shifted into place on use.
#[derive(Default)]
pub struct ChunkCache {
    map: std::sync::Mutex<HashMap<ChunkKey, (ast::Item, Vec<Diagnostic>)>>,
    /// A one-shot run (`dnnc check`) parses each file once and skips the bookkeeping.
    disabled: bool,
}

impl ChunkCache {
    /// A cache that stores nothing: parsing behaves exactly like [`parse`].
    pub fn disabled() -> ChunkCache {
        ChunkCache {
            disabled: true,
            ..ChunkCache::default()
        }
    }
}

/// A declaration's file and text.
type ChunkKey = (Arc<str>, String);

/// [`parse`], reusing (and refreshing) `cache`. The result is the same as [`parse`]'s.
pub fn parse_cached(file: &Arc<str>, text: &str, cache: &ChunkCache) -> Parsed {
    let mut diagnostics = Vec::new();
    let chunks = split::split(file, text, &mut diagnostics);
    let mut items = Vec::new();
    let mut map = cache.map.lock().unwrap_or_else(|e| e.into_inner());
    let mut used: Vec<ChunkKey> = Vec::new();
    for chunk in chunks {
        let slice = &text[chunk.span.range()];
        if slice.trim().is_empty() {
            continue;
        }
        if chunk.poisoned {
            items.push(build::error_item(slice, chunk.span));
            continue;
        }
        if cache.disabled {
            match build::parse_item(file, slice, chunk.span.start as usize, &mut diagnostics) {
                Some(item) => items.push(item),
                None => items.push(build::error_item(slice, chunk.span)),
            }
            continue;
        }
        let key = (file.clone(), slice.to_string());
        let (mut item, mut diags) = match map.get(&key) {
            Some(hit) => hit.clone(),
            None => {
                let mut local = Vec::new();
                let item = match build::parse_item(file, slice, 0, &mut local) {
                    Some(item) => item,
                    None => build::error_item(slice, Span::new(0, slice.len())),
                };
                map.insert(key.clone(), (item.clone(), local.clone()));
                (item, local)
            }
        };
        used.push(key);
        shift::shift_item(&mut item, chunk.span.start);
        for d in &mut diags {
            for l in std::iter::once(&mut d.primary).chain(d.secondary.iter_mut()) {
                if l.file == *file {
                    l.span.start += chunk.span.start;
                    l.span.end += chunk.span.start;
                }
            }
        }
        items.push(item);
        diagnostics.extend(diags);
    }
    // Keep only this file's current declarations (and every other file's).
    let used: std::collections::HashSet<ChunkKey> = used.into_iter().collect();
    map.retain(|k, _| k.0 != *file || used.contains(k));
    diagnostics.sort_by_key(|d| d.primary.span.start);
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
