//! Plain text as training data for character-level language models.
//!
//! The file is read as UTF-8 (or as bytes with [`TextOptions::bytes`]). Its vocabulary
//! is the sorted set of distinct characters of the whole file (as nanoGPT's
//! `shakespeare_char`), so every part of the file — training and test — encodes with
//! the same ids; a byte-level vocabulary is the 256 byte values. The part
//! `[from, to)` (fractions of the length, by position: `0.0..0.9` for training,
//! `0.9..1.0` for testing) is cut into windows of `window` characters that overlap by
//! one (window `i` starts at `i · (window - 1)`), so the targets of a window — its
//! characters shifted by one — cover the part once: `i32 [N, window]`.

use std::path::Path;

use crate::{DType, Data, DataError, Header, Tensor};

/// How a text file becomes windows of character ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TextOptions {
    /// Characters per window (at least 2: an input and its next character).
    pub window: usize,
    /// Where the part of the file starts, in millionths of its length.
    pub from_ppm: u32,
    /// Where the part ends (excluded), in millionths of its length.
    pub to_ppm: u32,
    /// Bytes instead of characters (vocabulary 0..=255).
    pub bytes: bool,
}

/// The vocabulary of a text: its distinct characters, sorted (for bytes, every byte
/// value as the character of the same number).
pub fn vocabulary(text: &str, bytes: bool) -> Vec<char> {
    if bytes {
        return (0u8..=255).map(char::from).collect();
    }
    let mut v: Vec<char> = text.chars().collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn read(path: &Path) -> Result<String, DataError> {
    let bytes =
        std::fs::read(path).map_err(|e| DataError::new(path, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        DataError::new(
            path,
            format!(
                "is not UTF-8 text (byte {} is invalid); read it with `bytes = true`",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// The vocabulary of the file at `path` (what [`load`] returns beside the windows),
/// without cutting it into windows.
pub fn file_vocabulary(path: &Path, bytes: bool) -> Result<Vec<char>, DataError> {
    if bytes {
        return Ok(vocabulary("", true));
    }
    Ok(vocabulary(&read(path)?, false))
}

/// The units (characters or bytes) of the file.
fn units(path: &Path, bytes: bool) -> Result<(Vec<u32>, Vec<char>), DataError> {
    if bytes {
        let raw =
            std::fs::read(path).map_err(|e| DataError::new(path, format!("cannot read: {e}")))?;
        return Ok((
            raw.into_iter().map(u32::from).collect(),
            vocabulary("", true),
        ));
    }
    let text = read(path)?;
    let vocab = vocabulary(&text, false);
    let ids = text
        .chars()
        .map(|c| vocab.binary_search(&c).map(|i| i as u32).unwrap_or(0))
        .collect();
    Ok((ids, vocab))
}

/// The range of unit positions of the part.
fn part(len: usize, opts: &TextOptions) -> (usize, usize) {
    let at = |ppm: u32| ((len as u128 * u128::from(ppm)) / 1_000_000) as usize;
    (at(opts.from_ppm).min(len), at(opts.to_ppm).min(len))
}

fn windows(path: &Path, len: usize, opts: &TextOptions) -> Result<usize, DataError> {
    if opts.window < 2 {
        return Err(DataError::new(path, "a window needs at least 2 characters"));
    }
    if opts.from_ppm >= opts.to_ppm || opts.to_ppm > 1_000_000 {
        return Err(DataError::new(
            path,
            "the part `from`..`to` must satisfy 0 <= from < to <= 1",
        ));
    }
    let (a, b) = part(len, opts);
    let n = b - a;
    if n < opts.window {
        return Err(DataError::new(
            path,
            format!(
                "the part holds {n} characters, fewer than one window of {}",
                opts.window
            ),
        ));
    }
    Ok((n - 1) / (opts.window - 1))
}

/// The element type and shape the file gives: `i32 [N, window]`.
pub fn probe(path: &Path, opts: &TextOptions) -> Result<Header, DataError> {
    let len = if opts.bytes {
        std::fs::metadata(path)
            .map_err(|e| DataError::new(path, format!("cannot read: {e}")))?
            .len() as usize
    } else {
        read(path)?.chars().count()
    };
    let n = windows(path, len, opts)?;
    Ok(Header {
        elem: DType::I32,
        shape: vec![n as u64, opts.window as u64],
    })
}

/// The windows of the part, and the file's vocabulary.
pub fn load(path: &Path, opts: &TextOptions) -> Result<(Tensor, Vec<char>), DataError> {
    let (ids, vocab) = units(path, opts.bytes)?;
    let n = windows(path, ids.len(), opts)?;
    let (start, _) = part(ids.len(), opts);
    let w = opts.window;
    let mut out = Vec::with_capacity(n * w);
    for i in 0..n {
        let at = start + i * (w - 1);
        out.extend(ids[at..at + w].iter().map(|&v| v as i32));
    }
    let t = Tensor {
        dtype: DType::I32,
        shape: vec![n, w],
        data: Data::I32(out),
    };
    Ok((t, vocab))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempPath;

    fn file(text: &str) -> TempPath {
        TempPath::with_bytes("text.txt", text.as_bytes())
    }

    fn opts(window: usize, from: f64, to: f64) -> TextOptions {
        TextOptions {
            window,
            from_ppm: (from * 1e6) as u32,
            to_ppm: (to * 1e6) as u32,
            bytes: false,
        }
    }

    #[test]
    fn windows_overlap_by_one_and_share_the_vocabulary() {
        let p = file("abcabcabcd");
        assert_eq!(vocabulary("abcabcabcd", false), vec!['a', 'b', 'c', 'd']);
        let (t, v) = load(p.path(), &opts(4, 0.0, 1.0)).unwrap();
        assert_eq!(v.len(), 4);
        // 10 characters, windows of 4 starting every 3: 0..4, 3..7, 6..10.
        assert_eq!(t.shape, vec![3, 4]);
        assert_eq!(t.data, Data::I32(vec![0, 1, 2, 0, 0, 1, 2, 0, 0, 1, 2, 3]));
        assert_eq!(
            probe(p.path(), &opts(4, 0.0, 1.0)).unwrap().shape,
            vec![3, 4]
        );
        // The last 40 %: "abcd" (positions 6..10), one window, ids of the whole file.
        let (t, _) = load(p.path(), &opts(4, 0.6, 1.0)).unwrap();
        assert_eq!(t.data, Data::I32(vec![0, 1, 2, 3]));
    }

    #[test]
    fn bad_parts_and_short_texts_are_errors() {
        let p = file("abc");
        let e = load(p.path(), &opts(8, 0.0, 1.0)).unwrap_err();
        assert!(e.message.contains("fewer than one window of 8"), "{e}");
        let e = probe(p.path(), &opts(2, 0.9, 0.1)).unwrap_err();
        assert!(e.message.contains("from < to"), "{e}");
        let bad = TempPath::with_bytes("bad.txt", &[0x61, 0xff, 0x62]);
        assert!(load(bad.path(), &opts(2, 0.0, 1.0))
            .unwrap_err()
            .message
            .contains("not UTF-8"));
        let bytes = TextOptions {
            bytes: true,
            ..opts(2, 0.0, 1.0)
        };
        let (t, v) = load(bad.path(), &bytes).unwrap();
        assert_eq!(
            (t.data, v.len()),
            (Data::I32(vec![0x61, 0xff, 0xff, 0x62]), 256)
        );
    }
}
