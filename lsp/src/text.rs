//! Positions: LSP's line/UTF-16 column pairs and the compiler's byte offsets, and the
//! identifier under a cursor.

use tower_lsp_server::ls_types::{Position, Range};

use dnnc_diagnostics::Span;

/// The byte offset of `pos` in `text` (clamped to the text).
pub fn offset(text: &str, pos: Position) -> usize {
    let mut line_start = 0;
    for _ in 0..pos.line {
        match text[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return text.len(),
        }
    }
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let mut units = 0u32;
    for (i, c) in text[line_start..line_end].char_indices() {
        if units >= pos.character {
            return line_start + i;
        }
        units += c.len_utf16() as u32;
    }
    line_end
}

/// The LSP position of byte `offset`.
pub fn position(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let mut o = offset;
    while o > 0 && !text.is_char_boundary(o) {
        o -= 1;
    }
    let before = &text[..o];
    let line = before.matches('\n').count() as u32;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let character = before[line_start..]
        .chars()
        .map(|c| c.len_utf16() as u32)
        .sum();
    Position { line, character }
}

pub fn range(text: &str, span: Span) -> Range {
    Range {
        start: position(text, span.start as usize),
        end: position(text, span.end as usize),
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier touching `offset`, with its span.
pub fn ident_at(text: &str, offset: usize) -> Option<(String, Span)> {
    let offset = offset.min(text.len());
    let start = text[..offset]
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_ident(*c))
        .last()
        .map_or(offset, |(i, _)| i);
    let end = text[offset..]
        .char_indices()
        .find(|(_, c)| !is_ident(*c))
        .map_or(text.len(), |(i, _)| offset + i);
    let word = &text[start..end];
    (!word.is_empty() && !word.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| (word.to_string(), Span::new(start, end)))
}

/// Byte ranges of comments and strings, where identifiers are not names.
pub fn trivia(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let s = i;
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                out.push((s, i));
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let s = i;
                i = text[i + 2..].find("*/").map_or(b.len(), |j| i + 2 + j + 2);
                out.push((s, i));
            }
            b'"' => {
                let s = i;
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push((s, i));
            }
            _ => i += 1,
        }
    }
    out
}

/// Every identifier token outside comments and strings.
pub fn identifiers(text: &str) -> Vec<(usize, usize)> {
    let skip = trivia(text);
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    let mut k = 0;
    while i < b.len() {
        while k < skip.len() && skip[k].1 <= i {
            k += 1;
        }
        if k < skip.len() && skip[k].0 <= i {
            i = skip[k].1;
            continue;
        }
        if (b[i].is_ascii_alphabetic() || b[i] == b'_') && (i == 0 || !is_ident(b[i - 1] as char)) {
            let s = i;
            while i < b.len() && is_ident(b[i] as char) {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_with_utf16() {
        let t = "ab\nx é 𝄞 y\n";
        for o in [0, 1, 3, 5, 8, 13, t.len()] {
            assert_eq!(offset(t, position(t, o)), o, "offset {o}");
        }
        assert_eq!(
            position(t, 13),
            Position {
                line: 1,
                character: 7
            }
        );
    }

    #[test]
    fn finds_identifiers_outside_comments() {
        let t = "fc1 = Dense(3) // Dense\n\"Dense\" x";
        let ids: Vec<&str> = identifiers(t).iter().map(|&(s, e)| &t[s..e]).collect();
        assert_eq!(ids, ["fc1", "Dense", "x"]);
        assert_eq!(ident_at(t, 8).unwrap().0, "Dense");
    }
}
