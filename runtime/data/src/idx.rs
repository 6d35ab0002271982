//! Reader for IDX files (the MNIST format), raw or gzip-compressed.
//!
//! An IDX file is big-endian: a magic number `0x00 0x00 TYPE NDIM`, then `NDIM` u32
//! dimensions, then the elements in row-major order. `TYPE` is `0x08` u8, `0x09` i8,
//! `0x0B` i16, `0x0C` i32, `0x0D` f32 or `0x0E` f64. Gzip compression is detected from the
//! content (`1f 8b`), not from the file name.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::fileio::{open, read_full, read_up_to, to_usize};
use crate::tensor::{checked_element_count, decode, tensor_of, ByteOrder};
use crate::{DType, DataError, Header, Tensor};

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most dimensions an IDX header may declare.
const MAX_DIMS: u8 = 8;

/// Reads the element type and shape of an IDX file.
///
/// Only the header is read (and, for gzip files, only the first bytes are decompressed).
/// For uncompressed files the file size is checked against the header, so a truncated file
/// is reported here; for gzip files that check happens in [`load`].
pub fn probe(path: &Path) -> Result<Header, DataError> {
    let mut src = Source::open(path)?;
    let parsed = read_header(path, &mut src)?;
    if !src.gzip {
        let available = src.file_len.saturating_sub(parsed.header_len);
        check_payload_len(path, &src, &parsed, available)?;
    }
    Ok(parsed.header)
}

/// Reads a whole IDX file.
pub fn load(path: &Path) -> Result<Tensor, DataError> {
    let mut src = Source::open(path)?;
    let parsed = read_header(path, &mut src)?;
    if !src.gzip {
        // Fail fast, before reading anything, if the size is wrong.
        let available = src.file_len.saturating_sub(parsed.header_len);
        check_payload_len(path, &src, &parsed, available)?;
    }
    let expected = parsed.payload_len;
    to_usize(path, expected)?;
    let capacity = if src.gzip { 0 } else { expected };
    let gzip = src.gzip;
    let bytes = read_up_to(&mut src.reader, expected.saturating_add(1), capacity).map_err(|e| {
        if gzip {
            DataError::io(path, "truncated or corrupt gzip data", &e)
        } else {
            DataError::io(path, "cannot read", &e)
        }
    })?;
    let got = bytes.len() as u64;
    check_payload_len(path, &src, &parsed, got)?;
    let data = decode(parsed.header.elem, &bytes, ByteOrder::Big);
    tensor_of(path, &parsed.header, data)
}

/// An opened IDX file, positioned at the start of the (decompressed) content.
struct Source {
    reader: Box<dyn Read>,
    gzip: bool,
    file_len: u64,
}

impl Source {
    fn open(path: &Path) -> Result<Source, DataError> {
        let (mut file, file_len) = open(path)?;
        let mut magic = [0u8; 2];
        let n =
            read_full(&mut file, &mut magic).map_err(|e| DataError::io(path, "cannot read", &e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| DataError::io(path, "cannot read", &e))?;
        let gzip = n == 2 && magic == GZIP_MAGIC;
        let reader: Box<dyn Read> = if gzip {
            Box::new(MultiGzDecoder::new(BufReader::new(file)))
        } else {
            Box::new(BufReader::new(file))
        };
        Ok(Source {
            reader,
            gzip,
            file_len,
        })
    }

    /// `"file"` or `"decompressed data"`, for messages.
    fn what(&self) -> &'static str {
        if self.gzip {
            "decompressed data"
        } else {
            "file"
        }
    }
}

/// A validated IDX header.
struct Parsed {
    header: Header,
    /// Bytes taken by the magic number and the dimensions.
    header_len: u64,
    /// Bytes of element data the header declares.
    payload_len: u64,
}

fn read_header(path: &Path, src: &mut Source) -> Result<Parsed, DataError> {
    let gzip = src.gzip;
    let read_err = |e: std::io::Error| {
        if gzip {
            DataError::io(path, "truncated or corrupt gzip data", &e)
        } else {
            DataError::io(path, "cannot read", &e)
        }
    };
    let mut magic = [0u8; 4];
    let n = read_full(&mut src.reader, &mut magic).map_err(read_err)?;
    if n == 0 {
        let msg = if src.gzip {
            "the gzip stream decompresses to nothing, expected an IDX file"
        } else {
            "empty file, expected an IDX file"
        };
        return Err(DataError::new(path, msg));
    }
    if n < 4 {
        return Err(DataError::new(
            path,
            format!(
                "truncated: the {} holds only {n} bytes, too short for an IDX header",
                src.what()
            ),
        ));
    }
    let elem = match (magic[0], magic[1]) {
        (0, 0) => elem_from_code(magic[2]),
        _ => None,
    };
    let Some(elem) = elem else {
        return Err(DataError::new(
            path,
            bad_magic_message(path, src.gzip, magic),
        ));
    };
    let ndim = magic[3];
    if ndim == 0 || ndim > MAX_DIMS {
        return Err(DataError::new(
            path,
            format!("IDX header declares {ndim} dimensions; expected 1 to {MAX_DIMS}"),
        ));
    }
    let header_len = 4 + 4 * u64::from(ndim);
    let mut raw_dims = [0u8; 4 * MAX_DIMS as usize];
    let dims_buf = &mut raw_dims[..4 * usize::from(ndim)];
    let n = read_full(&mut src.reader, dims_buf).map_err(read_err)?;
    if n < dims_buf.len() {
        return Err(DataError::new(
            path,
            format!(
                "truncated: the IDX header declares {ndim} dimensions ({header_len} header bytes) but the {} ends after {} bytes",
                src.what(),
                4 + n
            ),
        ));
    }
    let shape: Vec<u64> = dims_buf
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let count = checked_element_count(&shape).map_err(|m| DataError::new(path, m))?;
    // At most 2^34 elements of at most 8 bytes: cannot overflow.
    let payload_len = count * elem.size_bytes() as u64;
    Ok(Parsed {
        header: Header { elem, shape },
        header_len,
        payload_len,
    })
}

fn elem_from_code(code: u8) -> Option<DType> {
    match code {
        0x08 => Some(DType::U8),
        0x09 => Some(DType::I8),
        0x0B => Some(DType::I16),
        0x0C => Some(DType::I32),
        0x0D => Some(DType::F32),
        0x0E => Some(DType::F64),
        _ => None,
    }
}

fn bad_magic_message(path: &Path, gzip: bool, magic: [u8; 4]) -> String {
    let mut msg = format!(
        "bad magic number 0x{:08x}, expected an IDX file (0x0000080X)",
        u32::from_be_bytes(magic)
    );
    if gzip {
        msg.push_str(" after gzip decompression");
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
    {
        msg.push_str("; the name ends in .gz but the file is not gzip either");
    } else if magic == *b"\x93NUM" {
        msg.push_str("; this looks like a NumPy .npy file");
    }
    msg
}

/// Checks that `available` payload bytes match what the header declares.
fn check_payload_len(
    path: &Path,
    src: &Source,
    parsed: &Parsed,
    available: u64,
) -> Result<(), DataError> {
    let expected = parsed.payload_len;
    if available == expected {
        return Ok(());
    }
    let declared = describe(&parsed.header, expected);
    let hl = parsed.header_len;
    let what = src.what();
    let msg = if available < expected {
        format!(
            "truncated: header says {declared} but the {what} holds {available} bytes after its {hl}-byte header"
        )
    } else if src.gzip {
        format!("header says {declared} but the {what} continues past them (trailing data)")
    } else {
        format!(
            "header says {declared} but the {what} holds {available} bytes after its {hl}-byte header ({} bytes of trailing data)",
            available - expected
        )
    };
    Err(DataError::new(path, msg))
}

/// Describes a header for messages: `8000 images of 28x28 (6272000 bytes)`.
fn describe(header: &Header, bytes: u64) -> String {
    let dims: Vec<String> = header.shape.iter().map(u64::to_string).collect();
    let items = match header.shape.as_slice() {
        [n] => format!("{n} items"),
        [n, _] => format!("{n} rows of {}", dims[1..].join("x")),
        [n, _, _] => format!("{n} images of {}", dims[1..].join("x")),
        [n, ..] => format!("{n} items of {}", dims[1..].join("x")),
        [] => "a scalar".to_string(),
    };
    if header.elem == DType::U8 {
        format!("{items} ({bytes} bytes)")
    } else {
        format!("{items} of {} ({bytes} bytes)", header.elem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{gzip, TempPath};
    use crate::{header_of, Data};

    /// Builds an IDX file image.
    fn idx_bytes(code: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, code, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    fn u8_images() -> Vec<u8> {
        idx_bytes(0x08, &[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255])
    }

    #[test]
    fn raw_round_trip_u8() {
        let f = TempPath::with_bytes("images.idx", &u8_images());
        let h = probe(f.path()).unwrap();
        assert_eq!(h.elem, DType::U8);
        assert_eq!(h.shape, vec![2, 2, 3]);
        let t = load(f.path()).unwrap();
        assert_eq!(header_of(&t), h);
        assert_eq!(
            t.data,
            Data::U8(vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255])
        );
        assert_eq!(t.data.len(), 12);
    }

    #[test]
    fn gzip_round_trip_regardless_of_extension() {
        let f = TempPath::with_bytes("images.idx", &gzip(&u8_images()));
        assert_eq!(probe(f.path()).unwrap().shape, vec![2, 2, 3]);
        assert_eq!(load(f.path()).unwrap().data.len(), 12);
        // And raw content under a .gz name also works.
        let g = TempPath::with_bytes("images.idx.gz", &u8_images());
        assert_eq!(load(g.path()).unwrap().shape, vec![2, 2, 3]);
    }

    #[test]
    fn multi_byte_types_are_big_endian() {
        let mut payload = Vec::new();
        for v in [1i32, -2, 70000] {
            payload.extend_from_slice(&v.to_be_bytes());
        }
        let f = TempPath::with_bytes("i32.idx", &idx_bytes(0x0C, &[3], &payload));
        let t = load(f.path()).unwrap();
        assert_eq!(t.data, Data::I32(vec![1, -2, 70000]));

        let mut payload = Vec::new();
        for v in [1.5f32, -0.25] {
            payload.extend_from_slice(&v.to_be_bytes());
        }
        let f = TempPath::with_bytes("f32.idx", &gzip(&idx_bytes(0x0D, &[1, 2], &payload)));
        let t = load(f.path()).unwrap();
        assert_eq!(t.shape, vec![1, 2]);
        assert_eq!(t.data, Data::F32(vec![1.5, -0.25]));

        let payload: Vec<u8> = [-3i16, 4].iter().flat_map(|v| v.to_be_bytes()).collect();
        let f = TempPath::with_bytes("i16.idx", &idx_bytes(0x0B, &[2], &payload));
        assert_eq!(load(f.path()).unwrap().data, Data::I16(vec![-3, 4]));

        let payload: Vec<u8> = 6.25f64.to_be_bytes().to_vec();
        let f = TempPath::with_bytes("f64.idx", &idx_bytes(0x0E, &[1], &payload));
        assert_eq!(load(f.path()).unwrap().data, Data::F64(vec![6.25]));

        let f = TempPath::with_bytes("i8.idx", &idx_bytes(0x09, &[2], &[0xff, 0x7f]));
        assert_eq!(load(f.path()).unwrap().data, Data::I8(vec![-1, 127]));
    }

    #[test]
    fn i16_big_endian_keeps_its_element_type() {
        let values = [-32768i16, -2, 0, 1, 258, 32767];
        let payload: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        let f = TempPath::with_bytes("i16.idx", &idx_bytes(0x0B, &[2, 3], &payload));
        let h = probe(f.path()).unwrap();
        assert_eq!((h.elem, h.shape.clone()), (DType::I16, vec![2, 3]));
        let t = load(f.path()).unwrap();
        assert_eq!(t.dtype, DType::I16);
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.data, Data::I16(values.to_vec()), "not widened");
        assert_eq!(t.data.dtype(), DType::I16);
        assert_eq!(header_of(&t), h);
    }

    #[test]
    fn zero_sized_dimension_is_fine() {
        let f = TempPath::with_bytes("empty.idx", &idx_bytes(0x08, &[0, 28, 28], &[]));
        let t = load(f.path()).unwrap();
        assert_eq!(t.shape, vec![0, 28, 28]);
        assert!(t.data.is_empty());
    }

    #[test]
    fn truncated_raw_is_caught_by_probe_and_load() {
        let full = idx_bytes(0x08, &[8000, 28, 28], &[7; 1234]);
        let f = TempPath::with_bytes("x.idx", &full);
        let e = probe(f.path()).unwrap_err();
        assert_eq!(e.path, f.path());
        assert!(
            e.message.starts_with(
                "truncated: header says 8000 images of 28x28 (6272000 bytes) but the file holds 1234 bytes"
            ),
            "{e}"
        );
        assert_eq!(load(f.path()).unwrap_err(), e);
    }

    #[test]
    fn truncated_gzip_is_caught_by_load() {
        let full = idx_bytes(0x08, &[100], &[7; 40]);
        let f = TempPath::with_bytes("labels.gz", &gzip(&full));
        // probe does not look at the gzip payload length.
        assert_eq!(probe(f.path()).unwrap().shape, vec![100]);
        let e = load(f.path()).unwrap_err();
        assert!(
            e.message
                .contains("truncated: header says 100 items (100 bytes) but the decompressed data holds 40 bytes"),
            "{e}"
        );
    }

    #[test]
    fn cut_gzip_stream_is_an_error() {
        let full = idx_bytes(0x08, &[2000], &[9; 2000]);
        let gz = gzip(&full);
        let f = TempPath::with_bytes("cut.gz", &gz[..gz.len() / 2]);
        let e = load(f.path()).unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
    }

    #[test]
    fn corrupt_gzip_checksum_is_an_error() {
        let full = idx_bytes(0x08, &[4], &[1, 2, 3, 4]);
        let mut gz = gzip(&full);
        let n = gz.len();
        gz[n - 8] ^= 0xff; // CRC32 of the trailer
        let f = TempPath::with_bytes("crc.gz", &gz);
        let e = load(f.path()).unwrap_err();
        assert!(e.message.contains("gzip"), "{e}");
    }

    #[test]
    fn trailing_data_is_an_error() {
        let f = TempPath::with_bytes("long.idx", &idx_bytes(0x08, &[2], &[1, 2, 3]));
        let e = probe(f.path()).unwrap_err();
        assert!(e.message.contains("1 bytes of trailing data"), "{e}");
        let g = TempPath::with_bytes("long.gz", &gzip(&idx_bytes(0x08, &[2], &[1, 2, 3])));
        let e = load(g.path()).unwrap_err();
        assert!(e.message.contains("trailing data"), "{e}");
    }

    #[test]
    fn bad_magic() {
        let f = TempPath::with_bytes("x.idx", &[0, 0, 0x0a, 3, 0, 0, 0, 1]);
        let e = probe(f.path()).unwrap_err();
        assert_eq!(
            e.message,
            "bad magic number 0x00000a03, expected an IDX file (0x0000080X)"
        );
        assert_eq!(
            e.to_string(),
            format!("{}: {}", f.path().display(), e.message)
        );
    }

    #[test]
    fn garbage_named_gz_is_not_gzip() {
        let f = TempPath::with_bytes("garbage.gz", b"hello, this is text");
        let e = load(f.path()).unwrap_err();
        assert!(e.message.starts_with("bad magic number 0x68656c6c"), "{e}");
        assert!(e.message.contains("not gzip"), "{e}");
    }

    #[test]
    fn gzip_of_garbage_is_bad_magic() {
        let f = TempPath::with_bytes("x.gz", &gzip(b"not an idx file"));
        let e = probe(f.path()).unwrap_err();
        assert!(
            e.message.contains("bad magic") && e.message.contains("after gzip decompression"),
            "{e}"
        );
    }

    #[test]
    fn gzip_magic_followed_by_garbage() {
        let f = TempPath::with_bytes("x.gz", &[0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        let e = probe(f.path()).unwrap_err();
        assert!(e.message.contains("gzip"), "{e}");
    }

    #[test]
    fn empty_and_tiny_files() {
        let f = TempPath::with_bytes("empty.idx", b"");
        let e = probe(f.path()).unwrap_err();
        assert!(e.message.contains("empty file"), "{e}");
        let f = TempPath::with_bytes("tiny.idx", &[0, 0, 8]);
        let e = load(f.path()).unwrap_err();
        assert!(
            e.message.contains("truncated") && e.message.contains("3 bytes"),
            "{e}"
        );
        let f = TempPath::with_bytes("one.idx", &[0x1f]);
        assert!(probe(f.path()).unwrap_err().message.contains("truncated"));
        let f = TempPath::with_bytes("empty.gz", &gzip(b""));
        let e = probe(f.path()).unwrap_err();
        assert!(e.message.contains("decompresses to nothing"), "{e}");
    }

    #[test]
    fn truncated_dimensions() {
        let f = TempPath::with_bytes("dims.idx", &[0, 0, 8, 3, 0, 0, 0, 5, 0]);
        let e = probe(f.path()).unwrap_err();
        assert!(
            e.message.contains("truncated") && e.message.contains("ends after 9 bytes"),
            "{e}"
        );
    }

    #[test]
    fn absurd_headers() {
        let f = TempPath::with_bytes("zero.idx", &[0, 0, 8, 0]);
        let e = probe(f.path()).unwrap_err();
        assert!(e.message.contains("0 dimensions"), "{e}");
        let f = TempPath::with_bytes("nine.idx", &[0, 0, 8, 9]);
        assert!(probe(f.path())
            .unwrap_err()
            .message
            .contains("9 dimensions"));
        // 2^32-1 cubed overflows u64 and is far past 2^34; load must not try to allocate it.
        let huge = idx_bytes(0x0E, &[u32::MAX, u32::MAX, u32::MAX], &[0; 16]);
        let f = TempPath::with_bytes("huge.idx", &gzip(&huge));
        let e = load(f.path()).unwrap_err();
        assert!(e.message.contains("more than 2^34 elements"), "{e}");
        // Within the element limit but far larger than the file: truncated, no huge buffer.
        let big = idx_bytes(0x0E, &[1 << 16, 1 << 16], &[0; 16]);
        let f = TempPath::with_bytes("big.idx", &gzip(&big));
        let e = load(f.path()).unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let p = std::env::temp_dir().join("dnnc-data-definitely-missing.idx");
        let e = probe(&p).unwrap_err();
        assert_eq!(e.path, p);
        assert!(e.to_string().contains("dnnc-data-definitely-missing.idx"));
        assert!(e.message.contains("cannot open"), "{e}");
        assert!(load(&p).is_err());
    }

    #[test]
    fn directory_is_an_error() {
        let e = probe(&std::env::temp_dir()).unwrap_err();
        assert!(e.message.contains("directory"), "{e}");
    }
}
