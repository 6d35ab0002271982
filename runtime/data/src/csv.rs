//! Reader for numeric CSV files: an optional header row, then rows of numbers read as `f32`.
//!
//! Every row must have the same number of columns (as the header row, when there is one).
//! Fields may be surrounded by spaces and may be double-quoted (`"1.5"`, with `""` for a
//! literal quote in header names). Blank lines are only allowed at the end of the file.
//! Errors give 1-based line and column numbers.

use std::borrow::Cow;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::fileio::open;
use crate::tensor::tensor_of;
use crate::{DType, Data, DataError, Header, Tensor};

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Whether the first line is a header row of column names (skipped, but its column
    /// count is enforced).
    pub has_header: bool,
    /// The field separator, an ASCII byte other than `"`, `\r` and `\n`.
    pub delimiter: u8,
}

impl Default for CsvOptions {
    /// A header row and comma-separated fields.
    fn default() -> Self {
        CsvOptions {
            has_header: true,
            delimiter: b',',
        }
    }
}

/// Reads the shape `[rows, cols]` of a CSV file; the element type is always `f32`.
///
/// The whole file is scanned and every field checked, so a file that probes cleanly also
/// loads cleanly.
pub fn probe(path: &Path, opts: &CsvOptions) -> Result<Header, DataError> {
    let (rows, cols) = scan(path, opts, |_| {})?;
    Ok(Header {
        elem: DType::F32,
        shape: vec![rows, cols],
    })
}

/// Reads a whole CSV file as an `f32` tensor of shape `[rows, cols]`.
pub fn load(path: &Path, opts: &CsvOptions) -> Result<Tensor, DataError> {
    let mut values = Vec::new();
    let (rows, cols) = scan(path, opts, |v| values.push(v))?;
    let header = Header {
        elem: DType::F32,
        shape: vec![rows, cols],
    };
    tensor_of(path, &header, Data::F32(values))
}

/// Reads the file line by line, passing each number to `sink` in row-major order, and
/// returns `(rows, cols)`.
fn scan(
    path: &Path,
    opts: &CsvOptions,
    mut sink: impl FnMut(f32),
) -> Result<(u64, u64), DataError> {
    let delim = opts.delimiter;
    if !delim.is_ascii() || matches!(delim, b'"' | b'\r' | b'\n') {
        return Err(DataError::new(
            path,
            format!(
                "unsupported CSV delimiter {:?} (must be an ASCII character other than a quote or newline)",
                char::from(delim)
            ),
        ));
    }
    let err = |m: String| DataError::new(path, m);
    let (file, _) = open(path)?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut line_no: u64 = 0;
    let mut first_blank: Option<u64> = None;
    let mut header_seen = false;
    // The expected column count and the line that set it.
    let mut expected: Option<(usize, u64)> = None;
    let mut rows: u64 = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::io(path, "cannot read", &e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let mut bytes = buf.as_slice();
        if let Some(rest) = bytes.strip_suffix(b"\n") {
            bytes = rest;
        }
        if let Some(rest) = bytes.strip_suffix(b"\r") {
            bytes = rest;
        }
        if line_no == 1 {
            if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
                bytes = rest; // UTF-8 byte order mark
            }
        }
        let line = std::str::from_utf8(bytes)
            .map_err(|_| err(format!("line {line_no}: not valid UTF-8 text")))?;
        if line.trim().is_empty() {
            first_blank.get_or_insert(line_no);
            continue;
        }
        if let Some(blank) = first_blank {
            return Err(err(format!(
                "line {blank}: empty line (blank lines are only allowed at the end of the file)"
            )));
        }
        let mut fields = Vec::new();
        split_fields(line, delim, &mut fields)
            .map_err(|(col, m)| err(format!("line {line_no} column {col}: {m}")))?;
        if opts.has_header && !header_seen {
            header_seen = true;
            expected = Some((fields.len(), line_no));
            continue;
        }
        match expected {
            None => expected = Some((fields.len(), line_no)),
            Some((cols, from)) if cols != fields.len() => {
                let source = if opts.has_header {
                    format!("the header on line {from} has {cols}")
                } else {
                    format!("line {from} has {cols}")
                };
                return Err(err(format!(
                    "line {line_no}: expected {cols} columns, found {} ({source})",
                    fields.len()
                )));
            }
            Some(_) => {}
        }
        for (i, field) in fields.iter().enumerate() {
            let v = parse_number(field)
                .map_err(|m| err(format!("line {line_no} column {}: {m}", i + 1)))?;
            sink(v);
        }
        rows += 1;
    }
    match expected {
        Some((cols, _)) => Ok((rows, cols as u64)),
        None if line_no == 0 => Err(err("empty file".into())),
        None => Err(err("the file has only blank lines".into())),
    }
}

/// Splits one line into fields, unquoting double-quoted ones. On error returns the 1-based
/// column number and a message.
fn split_fields<'a>(
    line: &'a str,
    delim: u8,
    out: &mut Vec<Cow<'a, str>>,
) -> Result<(), (usize, String)> {
    let bytes = line.as_bytes();
    let mut pos = 0;
    loop {
        let col = out.len() + 1;
        // Skip leading spaces (but not a space delimiter).
        while pos < bytes.len() && bytes[pos] != delim && matches!(bytes[pos], b' ' | b'\t') {
            pos += 1;
        }
        if pos < bytes.len() && bytes[pos] == b'"' {
            let (text, next) =
                quoted(line, pos).ok_or((col, "unterminated quoted field".to_string()))?;
            out.push(text);
            pos = next;
            while pos < bytes.len() && bytes[pos] != delim && matches!(bytes[pos], b' ' | b'\t') {
                pos += 1;
            }
            if pos < bytes.len() && bytes[pos] != delim {
                return Err((col, "unexpected text after a closing quote".to_string()));
            }
        } else {
            let end = bytes[pos..]
                .iter()
                .position(|&b| b == delim)
                .map_or(bytes.len(), |i| pos + i);
            // `pos` and `end` sit next to ASCII bytes, so they are char boundaries.
            out.push(Cow::Borrowed(line[pos..end].trim()));
            pos = end;
        }
        if pos >= bytes.len() {
            return Ok(());
        }
        pos += 1; // the delimiter
    }
}

/// Reads a quoted field starting at the `"` at `start`; returns its text and the position
/// after the closing quote, or `None` if the quote is never closed.
fn quoted(line: &str, start: usize) -> Option<(Cow<'_, str>, usize)> {
    let bytes = line.as_bytes();
    let mut pos = start + 1;
    let mut owned: Option<String> = None;
    let mut chunk_start = pos;
    loop {
        let rel = bytes.get(pos..)?.iter().position(|&b| b == b'"')?;
        let q = pos + rel;
        if bytes.get(q + 1) == Some(&b'"') {
            let s = owned.get_or_insert_with(String::new);
            s.push_str(&line[chunk_start..=q]);
            pos = q + 2;
            chunk_start = pos;
            continue;
        }
        let text = match owned {
            Some(mut s) => {
                s.push_str(&line[chunk_start..q]);
                Cow::Owned(s)
            }
            None => Cow::Borrowed(&line[chunk_start..q]),
        };
        return Some((text, q + 1));
    }
}

/// Parses one field as an `f32`, explaining what is wrong otherwise.
fn parse_number(field: &str) -> Result<f32, String> {
    let field = field.trim();
    if field.is_empty() {
        return Err("empty field, expected a number".to_string());
    }
    match field.parse::<f32>() {
        Ok(v) if v.is_infinite() && !field.to_ascii_lowercase().contains("inf") => {
            Err(format!("'{}' is out of range for f32", shorten(field)))
        }
        Ok(v) => Ok(v),
        Err(_) => Err(format!("'{}' is not a number", shorten(field))),
    }
}

/// Cuts long field text down for messages.
fn shorten(text: &str) -> Cow<'_, str> {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => Cow::Owned(format!("{}...", &text[..i])),
        None => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempPath;

    fn no_header() -> CsvOptions {
        CsvOptions {
            has_header: false,
            ..CsvOptions::default()
        }
    }

    #[test]
    fn defaults() {
        let o = CsvOptions::default();
        assert!(o.has_header);
        assert_eq!(o.delimiter, b',');
    }

    #[test]
    fn header_and_rows() {
        let f = TempPath::with_bytes("a.csv", b"x,y,label\n1,2.5,0\n-3,4e2,1\n");
        let opts = CsvOptions::default();
        let h = probe(f.path(), &opts).unwrap();
        assert_eq!(
            h,
            Header {
                elem: DType::F32,
                shape: vec![2, 3]
            }
        );
        let t = load(f.path(), &opts).unwrap();
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.data, Data::F32(vec![1.0, 2.5, 0.0, -3.0, 400.0, 1.0]));
    }

    #[test]
    fn no_header_crlf_spaces_quotes_and_no_final_newline() {
        let f = TempPath::with_bytes("b.csv", b" 1 , \"2\" ,3\r\n4,5,  6");
        let t = load(f.path(), &no_header()).unwrap();
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.data.to_f32_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn other_delimiters_and_quoted_header() {
        let f = TempPath::with_bytes("c.tsv", b"\xef\xbb\xbf\"a\tb\"\t\"say \"\"hi\"\"\"\n1\t2\n");
        let opts = CsvOptions {
            has_header: true,
            delimiter: b'\t',
        };
        assert_eq!(
            load(f.path(), &opts).unwrap().data.to_f32_vec(),
            vec![1.0, 2.0]
        );
        let f = TempPath::with_bytes("d.csv", b"1;2\n3;4\n");
        let opts = CsvOptions {
            has_header: false,
            delimiter: b';',
        };
        assert_eq!(probe(f.path(), &opts).unwrap().shape, vec![2, 2]);
        let bad = CsvOptions {
            has_header: false,
            delimiter: b'"',
        };
        assert!(probe(f.path(), &bad)
            .unwrap_err()
            .message
            .contains("delimiter"));
    }

    #[test]
    fn trailing_blank_lines_allowed_but_not_inner_ones() {
        let f = TempPath::with_bytes("e.csv", b"1,2\n3,4\n\n  \n");
        assert_eq!(probe(f.path(), &no_header()).unwrap().shape, vec![2, 2]);
        let f = TempPath::with_bytes("f.csv", b"1,2\n\n3,4\n");
        let e = probe(f.path(), &no_header()).unwrap_err();
        assert!(e.message.starts_with("line 2: empty line"), "{e}");
    }

    #[test]
    fn ragged_rows() {
        let mut text = String::from("a,b,c,d,e\n");
        for _ in 0..15 {
            text.push_str("1,2,3,4,5\n");
        }
        text.push_str("1,2,3,4\n");
        let f = TempPath::with_bytes("g.csv", text.as_bytes());
        let e = load(f.path(), &CsvOptions::default()).unwrap_err();
        assert!(
            e.message
                .starts_with("line 17: expected 5 columns, found 4"),
            "{e}"
        );
        let f = TempPath::with_bytes("h.csv", b"1,2\n3,4,5\n");
        let e = probe(f.path(), &no_header()).unwrap_err();
        assert_eq!(
            e.message,
            "line 2: expected 2 columns, found 3 (line 1 has 2)"
        );
        // Header with a different column count than the data.
        let f = TempPath::with_bytes("i.csv", b"a,b,c\n1,2\n");
        let e = probe(f.path(), &CsvOptions::default()).unwrap_err();
        assert!(e.message.contains("the header on line 1 has 3"), "{e}");
    }

    #[test]
    fn non_numbers() {
        let f = TempPath::with_bytes("j.csv", b"a,b\n1,2\n3,abc\n");
        let e = load(f.path(), &CsvOptions::default()).unwrap_err();
        assert_eq!(e.message, "line 3 column 2: 'abc' is not a number");
        assert!(e
            .to_string()
            .ends_with("j.csv: line 3 column 2: 'abc' is not a number"));
        let f = TempPath::with_bytes("k.csv", b"1,,3\n");
        let e = load(f.path(), &no_header()).unwrap_err();
        assert_eq!(e.message, "line 1 column 2: empty field, expected a number");
        let f = TempPath::with_bytes("l.csv", b"1,1e50\n");
        let e = load(f.path(), &no_header()).unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
        // Without has_header a header row is just a row of non-numbers.
        let f = TempPath::with_bytes("m.csv", b"x,y\n1,2\n");
        let e = load(f.path(), &no_header()).unwrap_err();
        assert_eq!(e.message, "line 1 column 1: 'x' is not a number");
        let long = format!("1,{}\n", "z".repeat(100));
        let f = TempPath::with_bytes("n.csv", long.as_bytes());
        let e = load(f.path(), &no_header()).unwrap_err();
        assert!(e.message.len() < 100, "{e}");
    }

    #[test]
    fn quoting_errors_and_bad_utf8() {
        let f = TempPath::with_bytes("o.csv", b"1,\"2\n");
        let e = load(f.path(), &no_header()).unwrap_err();
        assert_eq!(e.message, "line 1 column 2: unterminated quoted field");
        let f = TempPath::with_bytes("p.csv", b"\"1\"x,2\n");
        let e = load(f.path(), &no_header()).unwrap_err();
        assert!(e.message.contains("after a closing quote"), "{e}");
        let f = TempPath::with_bytes("q.csv", b"1,2\n\xff\xfe,3\n");
        let e = load(f.path(), &no_header()).unwrap_err();
        assert_eq!(e.message, "line 2: not valid UTF-8 text");
    }

    #[test]
    fn empty_header_only_and_missing() {
        let f = TempPath::with_bytes("r.csv", b"");
        assert_eq!(
            probe(f.path(), &CsvOptions::default()).unwrap_err().message,
            "empty file"
        );
        let f = TempPath::with_bytes("s.csv", b"\n\n");
        assert!(probe(f.path(), &no_header()).is_err());
        let f = TempPath::with_bytes("t.csv", b"a,b,c\n");
        let t = load(f.path(), &CsvOptions::default()).unwrap();
        assert_eq!(t.shape, vec![0, 3]);
        assert!(t.data.is_empty());
        let p = std::env::temp_dir().join("dnnc-data-missing.csv");
        let e = load(&p, &CsvOptions::default()).unwrap_err();
        assert_eq!(e.path, p);
        assert!(e.to_string().contains("dnnc-data-missing.csv"));
    }

    #[test]
    fn special_values() {
        let f = TempPath::with_bytes("u.csv", b"nan,inf,-inf,.5,+2\n");
        let v = load(f.path(), &no_header()).unwrap().data.to_f32_vec();
        assert!(v[0].is_nan());
        assert_eq!(&v[1..], &[f32::INFINITY, f32::NEG_INFINITY, 0.5, 2.0]);
    }
}
