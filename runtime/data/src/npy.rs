//! Reader and `f32` writer for NumPy `.npy` files (format versions 1.0, 2.0 and 3.0).
//!
//! A `.npy` file is the magic `\x93NUMPY`, a version byte pair, a little-endian header
//! length (u16 for 1.0, u32 for 2.0 and 3.0), a Python dict literal with `descr`,
//! `fortran_order` and `shape`, and then the raw elements. Supported dtypes are `u1`, `i1`,
//! `i2`, `i4`, `i8`, `f4` and `f8` in any byte order (`<`, `>`, `|`, `=`); C order only.

use std::io::{BufReader, Read};
use std::path::Path;

use crate::fileio::{open, read_full, read_up_to, to_usize};
use crate::pylit::{self, Value};
use crate::tensor::{checked_element_count, decode, format_shape, tensor_of, ByteOrder};
use crate::{DType, DataError, Header, Tensor};

/// The first six bytes of every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The largest header dict accepted, in bytes.
const MAX_HEADER_LEN: u64 = 1 << 20;

/// Reads the element type and shape of a `.npy` file.
///
/// Only the header is read; the payload size is checked against the file size.
pub fn probe(path: &Path) -> Result<Header, DataError> {
    let (file, file_len) = open(path)?;
    let mut reader = BufReader::new(file);
    let parsed = read_header(path, &mut reader)?;
    check_payload_len(path, &parsed, file_len.saturating_sub(parsed.header_len))?;
    Ok(parsed.header)
}

/// Reads a whole `.npy` file.
pub fn load(path: &Path) -> Result<Tensor, DataError> {
    let (file, file_len) = open(path)?;
    let mut reader = BufReader::new(file);
    let parsed = read_header(path, &mut reader)?;
    check_payload_len(path, &parsed, file_len.saturating_sub(parsed.header_len))?;
    to_usize(path, parsed.payload_len)?;
    let bytes = read_up_to(
        &mut reader,
        parsed.payload_len.saturating_add(1),
        parsed.payload_len,
    )
    .map_err(|e| DataError::io(path, "cannot read", &e))?;
    check_payload_len(path, &parsed, bytes.len() as u64)?;
    let data = decode(parsed.header.elem, &bytes, parsed.order);
    tensor_of(path, &parsed.header, data)
}

/// Writes `data` with the given shape as a version 1.0 `'<f4'` C-order `.npy` file.
///
/// The file is written atomically ([`crate::files::write_atomically`]): a reader never
/// sees a half-written file, and a device or FIFO at `path` is refused, not replaced.
pub fn save_f32(path: &Path, shape: &[u64], data: &[f32]) -> Result<(), DataError> {
    let count = checked_element_count(shape).map_err(|m| DataError::new(path, m))?;
    if count != data.len() as u64 {
        return Err(DataError::new(
            path,
            format!(
                "cannot save: shape {} has {count} elements but {} values were given",
                format_shape(shape),
                data.len()
            ),
        ));
    }
    let header = v1_header("<f4", shape).ok_or_else(|| {
        DataError::new(
            path,
            "cannot save: the shape is too long for a version 1.0 header",
        )
    })?;
    let mut bytes = Vec::with_capacity(header.len() + data.len() * 4);
    bytes.extend_from_slice(&header);
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    crate::files::write_atomically(path, &bytes)
        .map_err(|e| DataError::io(path, "cannot write the file", &e))
}

/// Builds the magic, version, length and padded dict of a version 1.0 header, or `None` if
/// the dict would not fit in the u16 length field.
fn v1_header(descr: &str, shape: &[u64]) -> Option<Vec<u8>> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad with spaces so that the data starts on a 64-byte boundary; end with a newline.
    let prefix = MAGIC.len() + 2 + 2;
    let unpadded = prefix + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    dict.push('\n');
    let len = u16::try_from(dict.len()).ok()?;
    let mut out = Vec::with_capacity(prefix + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    Some(out)
}

/// A validated `.npy` header.
struct Parsed {
    header: Header,
    order: ByteOrder,
    /// Bytes before the payload: magic, version, length field and dict.
    header_len: u64,
    /// Bytes of element data the header declares.
    payload_len: u64,
}

fn read_header(path: &Path, r: &mut impl Read) -> Result<Parsed, DataError> {
    let err = |m: String| DataError::new(path, m);
    let io_err = |e: std::io::Error| DataError::io(path, "cannot read", &e);

    let mut lead = [0u8; 8];
    let n = read_full(r, &mut lead).map_err(io_err)?;
    if n == 0 {
        return Err(err("empty file, expected a NumPy .npy file".into()));
    }
    let magic_len = n.min(MAGIC.len());
    if lead[..magic_len] != MAGIC[..magic_len] {
        return Err(err(
            "bad magic: not a NumPy .npy file (expected it to start with \\x93NUMPY)".into(),
        ));
    }
    if n < lead.len() {
        return Err(err(format!(
            "truncated: the file holds only {n} bytes, too short for a .npy header"
        )));
    }
    let (major, minor) = (lead[6], lead[7]);
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(err(format!(
                "unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)"
            )))
        }
    };
    let mut len_buf = [0u8; 4];
    let n = read_full(r, &mut len_buf[..len_bytes]).map_err(io_err)?;
    if n < len_bytes {
        return Err(err("truncated: the file ends inside the .npy header".into()));
    }
    let dict_len = u64::from(u32::from_le_bytes(len_buf));
    if dict_len > MAX_HEADER_LEN {
        return Err(err(format!(
            "header length {dict_len} is implausibly large (at most {MAX_HEADER_LEN} bytes accepted); the file is probably corrupt"
        )));
    }
    let dict_bytes = read_up_to(&mut *r, dict_len, dict_len).map_err(io_err)?;
    if (dict_bytes.len() as u64) < dict_len {
        return Err(err(format!(
            "truncated: the header says its dict is {dict_len} bytes but the file ends after {}",
            dict_bytes.len()
        )));
    }
    let text = if major >= 3 {
        String::from_utf8(dict_bytes).map_err(|_| err("header dict is not valid UTF-8".into()))?
    } else {
        // Versions 1.0 and 2.0 use latin-1, which maps bytes to the first 256 code points.
        dict_bytes.iter().map(|&b| char::from(b)).collect()
    };
    let dict = pylit::parse(&text).map_err(|m| err(format!("malformed header dict: {m}")))?;
    if !matches!(dict, Value::Dict(_)) {
        return Err(err(format!(
            "malformed header: expected a dict, found {}",
            dict.to_python()
        )));
    }
    let missing = |key: &str| err(format!("header dict has no '{key}' key"));

    let (elem, order) = match dict.get("descr").ok_or_else(|| missing("descr"))? {
        Value::Str(s) => parse_descr(s).ok_or_else(|| {
            err(format!(
                "unsupported numpy dtype '{s}' (supported: u1, i1, i2, i4, i8, f4, f8)"
            ))
        })?,
        other => {
            return Err(err(format!(
                "unsupported numpy dtype {}: structured arrays are not supported",
                other.to_python()
            )))
        }
    };
    match dict
        .get("fortran_order")
        .ok_or_else(|| missing("fortran_order"))?
    {
        Value::Bool(false) => {}
        Value::Bool(true) => return Err(err("fortran-order arrays are not supported".into())),
        other => {
            return Err(err(format!(
                "header 'fortran_order' must be True or False, found {}",
                other.to_python()
            )))
        }
    }
    let shape_value = dict.get("shape").ok_or_else(|| missing("shape"))?;
    let bad_shape = || {
        err(format!(
            "header 'shape' must be a tuple of non-negative integers, found {}",
            shape_value.to_python()
        ))
    };
    let Value::Tuple(items) = shape_value else {
        return Err(bad_shape());
    };
    let mut shape = Vec::with_capacity(items.len().min(64));
    for item in items {
        match item {
            Value::Int(d) => shape.push(u64::try_from(*d).map_err(|_| bad_shape())?),
            _ => return Err(bad_shape()),
        }
    }
    let count = checked_element_count(&shape).map_err(err)?;
    Ok(Parsed {
        header: Header { elem, shape },
        order,
        header_len: MAGIC.len() as u64 + 2 + len_bytes as u64 + dict_len,
        // At most 2^34 elements of at most 8 bytes: cannot overflow.
        payload_len: count * elem.size_bytes() as u64,
    })
}

/// Parses a simple dtype string such as `'<f4'` or `'|u1'`.
fn parse_descr(descr: &str) -> Option<(DType, ByteOrder)> {
    let (prefix, code) = match descr.as_bytes().first() {
        Some(c @ (b'<' | b'>' | b'|' | b'=')) => (Some(*c), &descr[1..]),
        _ => (None, descr),
    };
    let elem = match code {
        "u1" => DType::U8,
        "i1" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "f4" => DType::F32,
        "f8" => DType::F64,
        _ => return None,
    };
    let order = match prefix {
        Some(b'<') => ByteOrder::Little,
        Some(b'>') => ByteOrder::Big,
        // '|' means "not applicable", which only makes sense for one-byte types.
        Some(b'|') if elem.size_bytes() != 1 => return None,
        _ => ByteOrder::native(),
    };
    Some((elem, order))
}

fn check_payload_len(path: &Path, parsed: &Parsed, available: u64) -> Result<(), DataError> {
    let expected = parsed.payload_len;
    if available == expected {
        return Ok(());
    }
    let declared = format!(
        "shape {} of {} ({expected} bytes)",
        format_shape(&parsed.header.shape),
        parsed.header.elem
    );
    let hl = parsed.header_len;
    let msg = if available < expected {
        format!(
            "truncated: header says {declared} but the file holds {available} bytes after its {hl}-byte header"
        )
    } else {
        format!(
            "header says {declared} but the file holds {available} bytes after its {hl}-byte header ({} bytes of trailing data)",
            available - expected
        )
    };
    Err(DataError::new(path, msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempPath;
    use crate::Data;

    /// Builds a `.npy` image with the given version, dict and payload.
    fn npy_bytes(version: (u8, u8), dict: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[version.0, version.1]);
        if version.0 == 1 {
            out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(dict.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn dict(descr: &str, shape: &str) -> String {
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n")
    }

    #[test]
    fn save_then_probe_and_load() {
        let f = TempPath::new("round.npy");
        let data = [1.0f32, -2.5, 3.25, 0.0, 1e-7, f32::MAX];
        save_f32(f.path(), &[2, 3], &data).unwrap();
        let bytes = std::fs::read(f.path()).unwrap();
        assert_eq!(bytes.len(), 128 + 24, "header is padded to 64 bytes");
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(bytes[127], b'\n');
        let h = probe(f.path()).unwrap();
        assert_eq!(
            h,
            Header {
                elem: DType::F32,
                shape: vec![2, 3]
            }
        );
        let t = load(f.path()).unwrap();
        assert_eq!(t.data, Data::F32(data.to_vec()));
        assert_eq!(t.data.to_f32_vec(), data.to_vec());
        let mut tmp = f.path().as_os_str().to_os_string();
        tmp.push(".tmp");
        assert!(!Path::new(&tmp).exists());
    }

    #[test]
    fn save_scalar_vector_and_empty() {
        let f = TempPath::new("shapes.npy");
        save_f32(f.path(), &[], &[4.5]).unwrap();
        let t = load(f.path()).unwrap();
        assert_eq!(t.shape, Vec::<usize>::new());
        assert_eq!(t.data.to_f32_vec(), vec![4.5]);
        save_f32(f.path(), &[3], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(probe(f.path()).unwrap().shape, vec![3]);
        save_f32(f.path(), &[0, 5], &[]).unwrap();
        assert!(load(f.path()).unwrap().data.is_empty());
    }

    #[test]
    fn save_rejects_mismatched_length() {
        let f = TempPath::new("bad.npy");
        let e = save_f32(f.path(), &[2, 2], &[1.0]).unwrap_err();
        assert!(e.message.contains("4 elements but 1 values"), "{e}");
        assert!(!f.path().exists());
    }

    #[test]
    fn save_into_missing_directory_fails_cleanly() {
        let p = std::env::temp_dir()
            .join("dnnc-data-no-such-dir")
            .join("x.npy");
        let e = save_f32(&p, &[1], &[1.0]).unwrap_err();
        assert_eq!(e.path, p);
        assert!(e.message.contains("cannot write"), "{e}");
    }

    #[test]
    fn every_dtype_and_byte_order() {
        let cases: Vec<(&str, Vec<u8>, Data)> = vec![
            ("|u1", vec![1, 255], Data::U8(vec![1, 255])),
            ("<u1", vec![1, 255], Data::U8(vec![1, 255])),
            ("|i1", vec![1, 255], Data::I8(vec![1, -1])),
            (
                "<i2",
                [-2i16, 300].iter().flat_map(|v| v.to_le_bytes()).collect(),
                Data::I16(vec![-2, 300]),
            ),
            (
                ">i2",
                [-2i16, 300].iter().flat_map(|v| v.to_be_bytes()).collect(),
                Data::I16(vec![-2, 300]),
            ),
            (
                "<i4",
                [-7i32, 1 << 20]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                Data::I32(vec![-7, 1 << 20]),
            ),
            (
                ">i8",
                [-7i64, 1 << 40]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                Data::I64(vec![-7, 1 << 40]),
            ),
            (
                "<i8",
                [-7i64, 1 << 40]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                Data::I64(vec![-7, 1 << 40]),
            ),
            (
                ">f4",
                [0.5f32, -8.0]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                Data::F32(vec![0.5, -8.0]),
            ),
            (
                "<f8",
                [0.1f64, -1e300]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                Data::F64(vec![0.1, -1e300]),
            ),
            (
                ">f8",
                [0.1f64, -1e300]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                Data::F64(vec![0.1, -1e300]),
            ),
        ];
        for (descr, payload, expected) in cases {
            let f = TempPath::with_bytes(
                "dtype.npy",
                &npy_bytes((1, 0), &dict(descr, "(2,)"), &payload),
            );
            let h = probe(f.path()).unwrap();
            assert_eq!(h.elem, expected.dtype(), "{descr}");
            assert_eq!(h.shape, vec![2]);
            let t = load(f.path()).unwrap();
            assert_eq!(t.data, expected, "{descr}");
        }
    }

    #[test]
    fn f64_keeps_its_element_type() {
        // 0.1 and 1e300 are not representable in f32: widening through f32 would show.
        let values = [0.1f64, -1e300, f64::MIN_POSITIVE, 3.0];
        let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f = TempPath::with_bytes(
            "f64.npy",
            &npy_bytes((1, 0), &dict("<f8", "(2, 2)"), &payload),
        );
        let t = load(f.path()).unwrap();
        assert_eq!(t.dtype, DType::F64);
        assert_eq!(t.shape, vec![2, 2]);
        assert_eq!(
            t.data,
            Data::F64(values.to_vec()),
            "not narrowed or widened"
        );
        assert_eq!(
            crate::header_of(&t),
            Header {
                elem: DType::F64,
                shape: vec![2, 2]
            }
        );
        assert_eq!(crate::non_finite(&t), None);
    }

    #[test]
    fn versions_two_and_three() {
        let payload: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        for version in [(2, 0), (3, 0)] {
            let f = TempPath::with_bytes(
                "v.npy",
                &npy_bytes(version, &dict("<f4", "(1, 2)"), &payload),
            );
            assert_eq!(load(f.path()).unwrap().data.to_f32_vec(), vec![1.0, 2.0]);
        }
        let f = TempPath::with_bytes("v4.npy", &npy_bytes((4, 0), &dict("<f4", "(2,)"), &payload));
        let e = probe(f.path()).unwrap_err();
        assert!(
            e.message.contains("unsupported .npy format version 4.0"),
            "{e}"
        );
    }

    #[test]
    fn unsupported_dtypes() {
        for descr in ["<c8", "<u2", "|f4", "<U10", "O"] {
            let f =
                TempPath::with_bytes("c.npy", &npy_bytes((1, 0), &dict(descr, "(1,)"), &[0; 16]));
            let e = probe(f.path()).unwrap_err();
            assert!(
                e.message
                    .starts_with(&format!("unsupported numpy dtype '{descr}'")),
                "{e}"
            );
        }
        let structured = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }";
        let f = TempPath::with_bytes("s.npy", &npy_bytes((1, 0), structured, &[0; 4]));
        let e = probe(f.path()).unwrap_err();
        assert!(e.message.contains("structured arrays"), "{e}");
    }

    #[test]
    fn fortran_order_is_rejected() {
        let d = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }";
        let f = TempPath::with_bytes("f.npy", &npy_bytes((1, 0), d, &[0; 16]));
        let e = load(f.path()).unwrap_err();
        assert_eq!(e.message, "fortran-order arrays are not supported");
    }

    #[test]
    fn malformed_headers() {
        let cases = [
            ("{'descr': '<f4', 'shape': (2,)}", "no 'fortran_order' key"),
            ("{'descr': '<f4', 'fortran_order': False}", "no 'shape' key"),
            ("{'fortran_order': False, 'shape': (2,)}", "no 'descr' key"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                "non-negative",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': 3}",
                "tuple",
            ),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
                "True or False",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
                "malformed header dict",
            ),
            ("[1, 2]", "expected a dict"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}",
                "2^34",
            ),
        ];
        for (d, needle) in cases {
            let f = TempPath::with_bytes("m.npy", &npy_bytes((1, 0), d, &[0; 8]));
            let e = probe(f.path()).unwrap_err();
            assert!(e.message.contains(needle), "{d}: {e}");
        }
    }

    #[test]
    fn truncated_and_trailing() {
        let f = TempPath::with_bytes("t.npy", &npy_bytes((1, 0), &dict("<f4", "(10,)"), &[0; 12]));
        let e = probe(f.path()).unwrap_err();
        assert!(
            e.message.starts_with(
                "truncated: header says shape [10] of f32 (40 bytes) but the file holds 12 bytes"
            ),
            "{e}"
        );
        assert_eq!(load(f.path()).unwrap_err(), e);
        let f = TempPath::with_bytes("l.npy", &npy_bytes((1, 0), &dict("<f4", "(1,)"), &[0; 6]));
        let e = load(f.path()).unwrap_err();
        assert!(e.message.contains("2 bytes of trailing data"), "{e}");

        let full = npy_bytes((1, 0), &dict("<f4", "(1,)"), &[0; 4]);
        for cut in [3, 7, 9, 20] {
            let f = TempPath::with_bytes("cut.npy", &full[..cut]);
            let e = probe(f.path()).unwrap_err();
            assert!(e.message.contains("truncated"), "cut at {cut}: {e}");
        }
        // A v2 header claiming a 4 GiB dict is rejected without allocating it.
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&[2, 0, 0xff, 0xff, 0xff, 0xff]);
        let f = TempPath::with_bytes("huge.npy", &huge);
        assert!(probe(f.path())
            .unwrap_err()
            .message
            .contains("implausibly large"));
    }

    #[test]
    fn not_npy_empty_and_missing() {
        let f = TempPath::with_bytes("x.npy", b"PK\x03\x04 this is a zip");
        let e = probe(f.path()).unwrap_err();
        assert!(e.message.starts_with("bad magic"), "{e}");
        let f = TempPath::with_bytes("e.npy", b"");
        assert!(probe(f.path()).unwrap_err().message.contains("empty file"));
        let p = std::env::temp_dir().join("dnnc-data-missing-file.npy");
        let e = load(&p).unwrap_err();
        assert!(e.to_string().contains("dnnc-data-missing-file.npy"), "{e}");
    }

    #[test]
    fn python2_long_dims_and_latin1() {
        let d = "{'descr': '<i2', 'fortran_order': False, 'shape': (1L, 2L), 'x': '\u{e9}'}";
        // Encode as latin-1: every char here is below 256.
        let latin1: Vec<u8> = d.chars().map(|c| c as u8).collect();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(latin1.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&latin1);
        bytes.extend_from_slice(&[1, 0, 2, 0]);
        let f = TempPath::with_bytes("p2.npy", &bytes);
        assert_eq!(load(f.path()).unwrap().data, Data::I16(vec![1, 2]));
    }
}
