//! Checkpoints: named host tensors stored in [safetensors](https://github.com/huggingface/safetensors)
//! files.
//!
//! [`save`] writes a file atomically: the bytes go to `<path>.tmp-<pid>` in the same
//! directory, are flushed to disk, and the temporary file is renamed over `path`, so a
//! crash never leaves a half-written checkpoint under the real name. [`load`] reads every
//! tensor back; [`load_into`] reads exactly the tensors a model declares and checks their
//! element types and shapes.
//!
//! Element types map one to one, in their own width: `f32` ↔ `F32`, `f64` ↔ `F64`,
//! `f16` ↔ `F16`, `bf16` ↔ `BF16`, `i8`, `u8`, `i16`, `i32`, `i64` ↔ `I8` … `I64`, `bool`
//! ↔ `BOOL`. Files holding other safetensors types (`F8_E4M3`, `U32`, ...) are refused
//! with an error naming the tensor, and so are float tensors holding NaN or infinity.
//!
//! Every failure is a [`CheckpointError`] that displays as `{path}: {what}`, for example
//! ``mlp.safetensors: tensor `fc1.W` has shape [784, 128] but the model expects [784, 256]``.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use dnnc_tensor::{numel, DType, Data, Tensor};
use safetensors::tensor::{SafeTensorError, TensorView};
use safetensors::{Dtype, SafeTensors, View};

/// The largest header a safetensors file may have (the limit the format's reader enforces).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A problem saving or loading a checkpoint: the file and what went wrong.
///
/// Displays as `{path}: {kind}`.
#[derive(Debug)]
pub struct CheckpointError {
    /// The checkpoint file.
    pub path: PathBuf,
    /// What went wrong.
    pub kind: CheckpointErrorKind,
}

/// What went wrong with a checkpoint. Each variant displays as a lowercase message
/// without a trailing period, meant to follow the file name.
#[derive(Debug)]
pub enum CheckpointErrorKind {
    /// An I/O operation failed; `doing` says which (`"read the checkpoint"`, ...).
    Io {
        /// The operation, as the object of "cannot".
        doing: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The file does not start like a safetensors file; the string says why.
    NotSafetensors(String),
    /// The file starts like a safetensors file but is cut short or inconsistent.
    Corrupt(String),
    /// A tensor the model expects is not in the file.
    Missing {
        /// The tensor name.
        name: String,
    },
    /// The file holds a tensor the model does not have.
    Unexpected {
        /// The tensor name.
        name: String,
    },
    /// A tensor has another shape than the model expects.
    ShapeMismatch {
        /// The tensor name.
        name: String,
        /// The shape in the file.
        found: Vec<usize>,
        /// The shape the model expects.
        expected: Vec<usize>,
    },
    /// A tensor has another element type than the model expects.
    DtypeMismatch {
        /// The tensor name.
        name: String,
        /// The element type in the file, in lowercase (`f64`, `bf16`, ...).
        found: String,
        /// The element type the model expects.
        expected: DType,
    },
    /// A finite value of a tensor does not fit the narrower float type it is loaded
    /// into (above 65504 for `f16`).
    OutOfRange {
        /// The tensor name.
        name: String,
        /// The first value that does not fit.
        value: f64,
        /// The element type the model expects.
        expected: DType,
    },
    /// A tensor in the file has an element type dnnc cannot hold.
    UnsupportedDtype {
        /// The tensor name.
        name: String,
        /// The element type in the file, in lowercase.
        dtype: String,
    },
    /// A tensor's contents are invalid: inconsistent with its shape, out of range for its
    /// element type, or (in a file) not a valid encoding.
    InvalidTensor {
        /// The tensor name.
        name: String,
        /// Why, as a phrase following the tensor name.
        reason: String,
    },
    /// Two tensors given to [`save`] have the same name, or a name is reserved.
    BadName {
        /// The tensor name.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The checkpoint could not be encoded.
    Encode(String),
}

impl fmt::Display for CheckpointErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CheckpointErrorKind::*;
        match self {
            Io { doing, source } => write!(f, "cannot {doing}: {source}"),
            NotSafetensors(why) => write!(f, "is not a safetensors file ({why})"),
            Corrupt(why) => write!(f, "is truncated or corrupt ({why})"),
            Missing { name } => write!(f, "is missing tensor `{name}`"),
            Unexpected { name } => write!(f, "has an unexpected tensor `{name}`"),
            ShapeMismatch {
                name,
                found,
                expected,
            } => write!(
                f,
                "tensor `{name}` has shape {found:?} but the model expects {expected:?}"
            ),
            DtypeMismatch {
                name,
                found,
                expected,
            } => write!(
                f,
                "tensor `{name}` has element type {found} but the model expects {expected}"
            ),
            OutOfRange {
                name,
                value,
                expected,
            } => write!(
                f,
                "tensor `{name}` holds {value}, which {expected} cannot hold (it would become infinite)"
            ),
            UnsupportedDtype { name, dtype } => write!(
                f,
                "tensor `{name}` has element type {dtype}, which dnnc does not support \
                 (supported: f32, f64, f16, bf16, i8, u8, i16, i32, i64, bool)"
            ),
            InvalidTensor { name, reason } => write!(f, "tensor `{name}` {reason}"),
            BadName { name, reason } => write!(f, "tensor name `{name}` {reason}"),
            Encode(why) => write!(f, "cannot encode the checkpoint: {why}"),
        }
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.kind)
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            CheckpointErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn err(path: &Path, kind: CheckpointErrorKind) -> CheckpointError {
    CheckpointError {
        path: path.to_path_buf(),
        kind,
    }
}

fn io_err(path: &Path, doing: impl Into<String>, source: io::Error) -> CheckpointError {
    err(
        path,
        CheckpointErrorKind::Io {
            doing: doing.into(),
            source,
        },
    )
}

/// Writes `tensors` to the safetensors file `path`, replacing it atomically.
///
/// Tensor names must be unique and must not be `__metadata__`. Each tensor must be
/// consistent (storage matching its dtype, as many elements as its shape) and, for `i32`
/// and `u8` tensors, hold values in range. Nothing is written when any check fails.
pub fn save(path: &Path, tensors: &[(String, &Tensor)]) -> Result<(), CheckpointError> {
    save_with_metadata(path, tensors, &[])
}

/// [`save`] with string metadata in the file's `__metadata__` (what a run needs beside
/// the tensors, e.g. `dnnc.vocabulary`, the characters of a text model in id order).
pub fn save_with_metadata(
    path: &Path,
    tensors: &[(String, &Tensor)],
    metadata: &[(&str, String)],
) -> Result<(), CheckpointError> {
    let bytes = to_bytes_with_metadata(path, tensors, metadata)?;
    write_atomically(path, &bytes)
}

/// The string metadata of the safetensors file `path` (empty when it has none).
pub fn metadata(path: &Path) -> Result<HashMap<String, String>, CheckpointError> {
    Ok(header(path)?.1)
}

/// The tensor names (sorted) and the string metadata of the safetensors file `path`,
/// without decoding any tensor.
pub fn header(path: &Path) -> Result<(Vec<String>, HashMap<String, String>), CheckpointError> {
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(path, &bytes, e))?;
    let mut names: Vec<String> = file.names().into_iter().map(str::to_string).collect();
    names.sort();
    Ok((names, meta.metadata().clone().unwrap_or_default()))
}

/// The bytes of a safetensors file holding `tensors` (what [`save`] writes; `path`
/// only names the file in errors).
pub fn to_bytes(path: &Path, tensors: &[(String, &Tensor)]) -> Result<Vec<u8>, CheckpointError> {
    to_bytes_with_metadata(path, tensors, &[])
}

fn to_bytes_with_metadata(
    path: &Path,
    tensors: &[(String, &Tensor)],
    metadata: &[(&str, String)],
) -> Result<Vec<u8>, CheckpointError> {
    let mut seen = HashSet::new();
    let mut views = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        if name == "__metadata__" {
            let reason = "is reserved by the safetensors format".to_string();
            return Err(err(
                path,
                CheckpointErrorKind::BadName {
                    name: name.clone(),
                    reason,
                },
            ));
        }
        if !seen.insert(name.as_str()) {
            let reason = "appears more than once".to_string();
            return Err(err(
                path,
                CheckpointErrorKind::BadName {
                    name: name.clone(),
                    reason,
                },
            ));
        }
        let view = encode(tensor).map_err(|reason| {
            err(
                path,
                CheckpointErrorKind::InvalidTensor {
                    name: name.clone(),
                    reason,
                },
            )
        })?;
        views.push((name.as_str(), view));
    }
    let meta: Option<HashMap<String, String>> = (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    });
    safetensors::serialize(views, meta)
        .map_err(|e| err(path, CheckpointErrorKind::Encode(e.to_string())))
}

/// Reads every tensor of the safetensors file `path`, sorted by name.
pub fn load(path: &Path) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    Ok(load_with_metadata(path)?.0)
}

/// [`load`] and the file's string metadata, from one read of the file.
#[allow(clippy::type_complexity)]
pub fn load_with_metadata(
    path: &Path,
) -> Result<(Vec<(String, Tensor)>, HashMap<String, String>), CheckpointError> {
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(path, &bytes, e))?;
    let mut names: Vec<&str> = file.names();
    names.sort_unstable();
    let tensors = names
        .into_iter()
        .map(|name| {
            let view = file.tensor(name).map_err(|e| corrupt(path, &bytes, e))?;
            let tensor = decode(name, &view).map_err(|kind| err(path, kind))?;
            Ok((name.to_string(), tensor))
        })
        .collect::<Result<_, CheckpointError>>()?;
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
}

/// Reads the tensors a model declares from the safetensors file `path`.
///
/// `expected` lists `(name, dtype, shape)` for every parameter; the result holds the
/// tensors in that order. The file must hold exactly these tensors: a missing tensor, a
/// wrong element type, a wrong shape or an extra tensor is an error naming it (the first
/// problem found, checking the expected tensors in order before looking for extra ones).
pub fn load_into(
    path: &Path,
    expected: &[(String, DType, Vec<usize>)],
) -> Result<Vec<Tensor>, CheckpointError> {
    let bytes = read(path)?;
    load_bytes_into(path, &bytes, expected)
}

/// [`load_into`] for a file already in memory (`path` only names it in errors).
pub fn load_bytes_into(
    path: &Path,
    bytes: &[u8],
    expected: &[(String, DType, Vec<usize>)],
) -> Result<Vec<Tensor>, CheckpointError> {
    let file = parse(path, bytes)?;
    let mut views = Vec::with_capacity(expected.len());
    for (name, dtype, shape) in expected {
        let view = match file.tensor(name) {
            Ok(view) => view,
            Err(SafeTensorError::TensorNotFound(_)) => {
                return Err(err(
                    path,
                    CheckpointErrorKind::Missing { name: name.clone() },
                ));
            }
            Err(e) => return Err(corrupt(path, bytes, e)),
        };
        if !dnnc_dtype(view.dtype()).is_some_and(|d| d.loads_as(*dtype)) {
            return Err(err(
                path,
                CheckpointErrorKind::DtypeMismatch {
                    name: name.clone(),
                    found: dtype_name(view.dtype()),
                    expected: *dtype,
                },
            ));
        }
        if view.shape() != shape.as_slice() {
            return Err(err(
                path,
                CheckpointErrorKind::ShapeMismatch {
                    name: name.clone(),
                    found: view.shape().to_vec(),
                    expected: shape.clone(),
                },
            ));
        }
        views.push((name, view));
    }
    let wanted: HashSet<&str> = expected.iter().map(|(name, _, _)| name.as_str()).collect();
    let extra: BTreeSet<&str> = file
        .names()
        .into_iter()
        .filter(|name| !wanted.contains(name))
        .collect();
    if let Some(name) = extra.into_iter().next() {
        let name = name.to_string();
        return Err(err(path, CheckpointErrorKind::Unexpected { name }));
    }
    views
        .into_iter()
        .zip(expected)
        .map(|((name, view), (_, dtype, _))| {
            decode(name, &view)
                .and_then(|t| convert(name, t, *dtype))
                .map_err(|kind| err(path, kind))
        })
        .collect()
}

/// `t` in element type `dtype` (a float narrowed rounds to nearest); a finite value
/// that would become infinite is an error.
pub fn convert(name: &str, t: Tensor, dtype: DType) -> Result<Tensor, CheckpointErrorKind> {
    if t.dtype == dtype {
        return Ok(t);
    }
    let out = t.cast(dtype);
    if dtype.is_float() && dtype.size_bytes() < t.dtype.size_bytes() {
        let (from, to) = (t.data.as_slice(), out.data.as_slice());
        if let Some(i) =
            (0..t.data.len()).find(|&i| from.f64_at(i).is_finite() && !to.f64_at(i).is_finite())
        {
            return Err(CheckpointErrorKind::OutOfRange {
                name: name.to_string(),
                value: from.f64_at(i),
                expected: dtype,
            });
        }
    }
    Ok(out)
}

/// One tensor's bytes, ready for the safetensors encoder.
struct EncodedTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for EncodedTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn safetensors_dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I8 => Dtype::I8,
        DType::U8 => Dtype::U8,
        DType::I16 => Dtype::I16,
        DType::I32 => Dtype::I32,
        DType::I64 => Dtype::I64,
        DType::Bool => Dtype::BOOL,
    }
}

/// The element type of a safetensors dtype, if dnnc has it.
fn dnnc_dtype(dtype: Dtype) -> Option<DType> {
    DType::ALL
        .into_iter()
        .find(|&d| safetensors_dtype(d) == dtype)
}

fn dtype_name(dtype: Dtype) -> String {
    dtype.to_string().to_lowercase()
}

/// Encodes a tensor as little-endian bytes, or says why it cannot be.
fn encode(t: &Tensor) -> Result<EncodedTensor, String> {
    let count = t
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("has shape {:?}, whose size overflows", t.shape))?;
    if count != t.data.len() {
        return Err(format!(
            "holds {} elements but its shape {:?} needs {count}",
            t.data.len(),
            t.shape
        ));
    }
    if t.data.dtype() != t.dtype {
        return Err(format!(
            "is declared {} but holds {} elements",
            t.dtype,
            t.data.dtype()
        ));
    }
    Ok(EncodedTensor {
        dtype: safetensors_dtype(t.dtype),
        shape: t.shape.clone(),
        bytes: t.data.to_le_bytes(),
    })
}

/// Decodes one tensor of a parsed file.
fn decode(name: &str, view: &TensorView<'_>) -> Result<Tensor, CheckpointErrorKind> {
    let bytes = view.data();
    let Some(dtype) = dnnc_dtype(view.dtype()) else {
        return Err(CheckpointErrorKind::UnsupportedDtype {
            name: name.to_string(),
            dtype: dtype_name(view.dtype()),
        });
    };
    if dtype == DType::Bool {
        if let Some(i) = bytes.iter().position(|&b| b > 1) {
            return Err(CheckpointErrorKind::InvalidTensor {
                name: name.to_string(),
                reason: format!(
                    "holds byte {} at element {i}, which is not a bool",
                    bytes[i]
                ),
            });
        }
    }
    let data = Data::from_le_bytes(dtype, bytes);
    // Weights that are not finite would poison every step and prediction.
    if dtype.is_float() {
        if let Some((i, v)) = data
            .to_f64_vec()
            .into_iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
        {
            return Err(CheckpointErrorKind::InvalidTensor {
                name: name.to_string(),
                reason: format!("holds {v} at element {i}; weights must be finite"),
            });
        }
    }
    let shape = view.shape().to_vec();
    if data.len() != numel(&shape) {
        return Err(CheckpointErrorKind::InvalidTensor {
            name: name.to_string(),
            reason: format!(
                "has {} bytes, which do not match its shape {shape:?}",
                bytes.len()
            ),
        });
    }
    Ok(Tensor { dtype, shape, data })
}

/// Reads a checkpoint: a regular file (not a device or FIFO) that fits in the memory
/// available.
fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let limit = dnnc_tensor::memory::available_bytes()
        .map_or(u64::MAX, |b| u64::try_from(b).unwrap_or(u64::MAX));
    dnnc_data::files::read_regular(path, limit).map_err(|e| io_err(path, "read the checkpoint", e))
}

/// The tensor names of a safetensors header in the order written, duplicates included
/// (the format's reader keeps only the last of two equal names, silently).
fn header_names(header: &[u8]) -> Result<Vec<String>, String> {
    struct Names(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Names {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Names, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Names;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Names, A::Error> {
                    let mut names = Vec::new();
                    while let Some(k) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        names.push(k);
                    }
                    Ok(Names(names))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    serde_json::from_slice::<Names>(header)
        .map(|n| n.0)
        .map_err(|e| e.to_string())
}

/// Parses a whole file, turning the format's errors into messages about `path`.
fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>, CheckpointError> {
    let Some(len_field) = bytes.first_chunk::<8>() else {
        let why = format!(
            "it has {} bytes, fewer than the 8-byte header length that starts a safetensors file",
            bytes.len()
        );
        return Err(err(path, CheckpointErrorKind::NotSafetensors(why)));
    };
    let header_len = u64::from_le_bytes(*len_field);
    if header_len > MAX_HEADER_BYTES {
        let why = format!(
            "it starts with a header length of {header_len} bytes, more than the 100 MB limit"
        );
        return Err(err(path, CheckpointErrorKind::NotSafetensors(why)));
    }
    let after = (bytes.len() - 8) as u64;
    if header_len > after {
        let why = format!("the header needs {header_len} bytes but only {after} follow its length");
        return Err(err(path, CheckpointErrorKind::Corrupt(why)));
    }
    let file = SafeTensors::deserialize(bytes).map_err(|e| corrupt(path, bytes, e))?;
    // The header parsed, so it is valid JSON: look for names given twice.
    let header = &bytes[8..8 + header_len as usize];
    if let Ok(names) = header_names(header) {
        let mut seen = HashSet::new();
        if let Some(dup) = names.into_iter().find(|n| !seen.insert(n.clone())) {
            let why = format!("its header names tensor `{dup}` twice");
            return Err(err(path, CheckpointErrorKind::Corrupt(why)));
        }
    }
    Ok(file)
}

/// Maps a safetensors parse error to a checkpoint error.
fn corrupt(path: &Path, bytes: &[u8], e: SafeTensorError) -> CheckpointError {
    let kind = match e {
        SafeTensorError::InvalidHeader(e) => {
            CheckpointErrorKind::NotSafetensors(format!("its header is not UTF-8: {e}"))
        }
        SafeTensorError::InvalidHeaderDeserialization(e) => {
            CheckpointErrorKind::NotSafetensors(format!("its header is not a safetensors header: {e}"))
        }
        SafeTensorError::MetadataIncompleteBuffer => CheckpointErrorKind::Corrupt(format!(
            "the header describes a different amount of tensor data than the {} bytes the file holds",
            bytes.len()
        )),
        SafeTensorError::InvalidOffset(name) => {
            CheckpointErrorKind::Corrupt(format!("the data offsets of tensor `{name}` are invalid"))
        }
        other => CheckpointErrorKind::Corrupt(other.to_string()),
    };
    err(path, kind)
}

/// Writes the checkpoint through [`dnnc_data::files::write_atomically`].
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    dnnc_data::files::write_atomically(path, bytes)
        .map_err(|e| io_err(path, "write the checkpoint", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::fs;

    fn sample() -> Vec<(String, Tensor)> {
        vec![
            (
                "fc1.W".into(),
                Tensor::f32(vec![2, 3], vec![0.5, -1.0, 2.0, 3.25, 0.0, -0.0]).unwrap(),
            ),
            (
                "fc1.b".into(),
                Tensor::f32(vec![3], vec![1e-8, f32::MAX, f32::MIN_POSITIVE]).unwrap(),
            ),
            (
                "step".into(),
                Tensor::new(DType::I64, vec![], Data::I64(vec![i64::MIN])).unwrap(),
            ),
            (
                "idx".into(),
                Tensor::new(DType::I32, vec![2], Data::I32(vec![-5, i32::MAX])).unwrap(),
            ),
            (
                "labels".into(),
                Tensor::new(DType::U8, vec![3, 1], Data::U8(vec![0, 7, 255])).unwrap(),
            ),
            (
                "mask".into(),
                Tensor::new(
                    DType::Bool,
                    vec![2, 2],
                    Data::Bool(vec![true, false, false, true]),
                )
                .unwrap(),
            ),
            ("empty".into(), Tensor::zeros(DType::F32, vec![0, 4])),
        ]
    }

    fn refs(v: &[(String, Tensor)]) -> Vec<(String, &Tensor)> {
        v.iter().map(|(n, t)| (n.clone(), t)).collect()
    }

    fn expected_of(v: &[(String, Tensor)]) -> Vec<(String, DType, Vec<usize>)> {
        v.iter()
            .map(|(n, t)| (n.clone(), t.dtype, t.shape.clone()))
            .collect()
    }

    #[test]
    fn round_trip_every_dtype() {
        let dir = TempDir::new("ckpt-round-trip");
        let path = dir.path().join("mlp.safetensors");
        let tensors = sample();
        save(&path, &refs(&tensors)).unwrap();
        let mut want = tensors.clone();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(load(&path).unwrap(), want);
        // `load_into` returns the tensors in the order the model lists them.
        let got = load_into(&path, &expected_of(&tensors)).unwrap();
        let want: Vec<Tensor> = tensors.into_iter().map(|(_, t)| t).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn floats_load_into_any_float_type_and_nothing_else_converts() {
        let dir = TempDir::new("ckpt-widen");
        let path = dir.path().join("half.safetensors");
        let w = Tensor::f32(vec![2], vec![1.5, -0.25]).unwrap();
        let tensors = vec![
            ("a".to_string(), w.cast(DType::BF16)),
            ("b".to_string(), w.cast(DType::F16)),
        ];
        save(&path, &refs(&tensors)).unwrap();
        let want = vec![
            ("a".to_string(), DType::F32, vec![2]),
            ("b".to_string(), DType::F32, vec![2]),
        ];
        let got = load_into(&path, &want).unwrap();
        assert_eq!(got, vec![w.clone(), w.clone()]);
        // f32 into a bf16 model rounds to nearest (1 + 2^-8 is a tie: to even, 1);
        // integers and floats never mix.
        let f32_path = dir.path().join("full.safetensors");
        let x = Tensor::f32(vec![2], vec![1.003_906_3, 1.011_718_8]).unwrap();
        save(&f32_path, &[("a".to_string(), &x)]).unwrap();
        let got = load_into(&f32_path, &[("a".to_string(), DType::BF16, vec![2])]).unwrap();
        assert_eq!(got[0].dtype, DType::BF16);
        assert_eq!(got[0].to_f32_vec(), vec![1.0, 1.015_625]);
        let e = load_into(&f32_path, &[("a".to_string(), DType::I32, vec![2])]).unwrap_err();
        assert!(e.to_string().contains("`a`"), "{e}");
        // A finite value beyond f16's range would become infinite: refused, named.
        let big = Tensor::f32(vec![2], vec![1.0, 70000.0]).unwrap();
        save(&f32_path, &[("a".to_string(), &big)]).unwrap();
        let e = load_into(&f32_path, &[("a".to_string(), DType::F16, vec![2])]).unwrap_err();
        assert!(e.to_string().contains("`a` holds 70000"), "{e}");
        let ok = load_into(&f32_path, &[("a".to_string(), DType::BF16, vec![2])]).unwrap();
        assert!(ok[0].to_f32_vec()[1].is_finite());
    }

    #[test]
    fn save_is_atomic_and_overwrites() {
        let dir = TempDir::new("ckpt-atomic");
        let path = dir.path().join("mlp.safetensors");
        let tensors = sample();
        save(&path, &refs(&tensors)).unwrap();
        save(&path, &refs(&tensors[..1])).unwrap();
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["mlp.safetensors".to_string()]);
        assert_eq!(load(&path).unwrap().len(), 1);
    }

    #[test]
    fn save_into_missing_directory_fails_cleanly() {
        let dir = TempDir::new("ckpt-nodir");
        let path = dir.path().join("no/such/dir/mlp.safetensors");
        let e = save(&path, &refs(&sample())).unwrap_err();
        assert!(matches!(e.kind, CheckpointErrorKind::Io { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("mlp.safetensors: cannot write the checkpoint"),
            "{e}"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn save_rejects_bad_tensors_and_names() {
        let dir = TempDir::new("ckpt-bad-save");
        let path = dir.path().join("m.safetensors");
        let t = Tensor::f32(vec![2], vec![1.0, 2.0]).unwrap();
        let e = save(&path, &[("a".into(), &t), ("a".into(), &t)]).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("tensor name `a` appears more than once"),
            "{e}"
        );
        let e = save(&path, &[("__metadata__".into(), &t)]).unwrap_err();
        assert!(matches!(e.kind, CheckpointErrorKind::BadName { .. }));

        let short = Tensor {
            dtype: DType::F32,
            shape: vec![3],
            data: Data::F32(vec![1.0]),
        };
        let e = save(&path, &[("w".into(), &short)]).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("tensor `w` holds 1 elements but its shape [3] needs 3"),
            "{e}"
        );
        let wrong = Tensor {
            dtype: DType::I32,
            shape: vec![1],
            data: Data::F32(vec![1.0]),
        };
        let e = save(&path, &[("z".into(), &wrong)]).unwrap_err();
        assert!(
            matches!(e.kind, CheckpointErrorKind::InvalidTensor { .. }),
            "{e}"
        );
        let overflow = Tensor {
            dtype: DType::F32,
            shape: vec![usize::MAX, 2],
            data: Data::F32(vec![]),
        };
        assert!(save(&path, &[("o".into(), &overflow)]).is_err());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing is written"
        );
    }

    #[test]
    fn load_into_names_each_mismatch() {
        let dir = TempDir::new("ckpt-mismatch");
        let path = dir.path().join("mlp.safetensors");
        let w = Tensor::zeros(DType::F32, vec![784, 128]);
        let b = Tensor::zeros(DType::F32, vec![128]);
        save(&path, &[("fc1.W".into(), &w), ("fc1.b".into(), &b)]).unwrap();
        let good = vec![
            ("fc1.W".to_string(), DType::F32, vec![784, 128]),
            ("fc1.b".to_string(), DType::F32, vec![128]),
        ];
        assert_eq!(load_into(&path, &good).unwrap().len(), 2);
        let shown = path.display().to_string();

        let mut shape = good.clone();
        shape[0].2 = vec![784, 256];
        let e = load_into(&path, &shape).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{shown}: tensor `fc1.W` has shape [784, 128] but the model expects [784, 256]"
            )
        );
        assert!(matches!(e.kind, CheckpointErrorKind::ShapeMismatch { .. }));

        let mut dtype = good.clone();
        dtype[1].1 = DType::I64;
        let e = load_into(&path, &dtype).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{shown}: tensor `fc1.b` has element type f32 but the model expects i64")
        );

        let mut missing = good.clone();
        missing.push(("head.b".to_string(), DType::F32, vec![10]));
        let e = load_into(&path, &missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{shown}: is missing tensor `head.b`")
        );

        let e = load_into(&path, &good[..1]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{shown}: has an unexpected tensor `fc1.b`")
        );
        assert!(matches!(e.kind, CheckpointErrorKind::Unexpected { ref name } if name == "fc1.b"));
    }

    #[test]
    fn truncated_files_are_reported() {
        let dir = TempDir::new("ckpt-truncated");
        let path = dir.path().join("m.safetensors");
        save(&path, &refs(&sample())).unwrap();
        let bytes = fs::read(&path).unwrap();
        // Cut in the tensor data, then in the header.
        for cut in [bytes.len() - 3, 20] {
            fs::write(&path, &bytes[..cut]).unwrap();
            let e = load(&path).unwrap_err();
            assert!(matches!(e.kind, CheckpointErrorKind::Corrupt(_)), "{e}");
            assert!(
                e.to_string()
                    .contains("m.safetensors: is truncated or corrupt ("),
                "{e}"
            );
        }
        fs::write(&path, &bytes[..5]).unwrap();
        let e = load(&path).unwrap_err();
        assert!(
            matches!(e.kind, CheckpointErrorKind::NotSafetensors(_)),
            "{e}"
        );
        // Trailing bytes are corruption too.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 4]);
        fs::write(&path, &longer).unwrap();
        assert!(matches!(
            load(&path).unwrap_err().kind,
            CheckpointErrorKind::Corrupt(_)
        ));
    }

    #[test]
    fn garbage_is_not_safetensors() {
        let dir = TempDir::new("ckpt-garbage");
        let path = dir.path().join("weights.safetensors");
        fs::write(&path, b"this is definitely not a checkpoint file").unwrap();
        let e = load(&path).unwrap_err();
        assert!(
            e.to_string()
                .contains("weights.safetensors: is not a safetensors file ("),
            "{e}"
        );
        // A plausible length followed by text that is not JSON.
        let mut bytes = 8u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"\xff\xfe{{{{{{");
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            load(&path).unwrap_err().kind,
            CheckpointErrorKind::NotSafetensors(_)
        ));
        let mut bytes = 8u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"[1,2,3] ");
        fs::write(&path, &bytes).unwrap();
        let e = load_into(&path, &[]).unwrap_err();
        assert!(
            matches!(e.kind, CheckpointErrorKind::NotSafetensors(_)),
            "{e}"
        );
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let dir = TempDir::new("ckpt-missing");
        let path = dir.path().join("absent.safetensors");
        for e in [load(&path).unwrap_err(), load_into(&path, &[]).unwrap_err()] {
            let CheckpointErrorKind::Io { source, .. } = &e.kind else {
                panic!("expected an I/O error, got {e}");
            };
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
            assert!(e
                .to_string()
                .contains("absent.safetensors: cannot read the checkpoint: "));
        }
    }

    #[test]
    fn unsupported_and_invalid_contents() {
        let dir = TempDir::new("ckpt-unsupported");
        let path = dir.path().join("h.safetensors");
        // Half-precision tensors load in their own type.
        let half = [0u8, 0x3c, 0, 0xc0];
        let view = TensorView::new(Dtype::F16, vec![2], &half).unwrap();
        fs::write(&path, safetensors::serialize([("w", view)], None).unwrap()).unwrap();
        let w = &load(&path).unwrap()[0].1;
        assert_eq!(
            (w.dtype, w.data.to_f64_vec()),
            (DType::F16, vec![1.0, -2.0])
        );
        let e8 = [0u8; 2];
        let view = TensorView::new(Dtype::F8_E4M3, vec![2], &e8).unwrap();
        let f8 = dir.path().join("f8.safetensors");
        fs::write(&f8, safetensors::serialize([("w", view)], None).unwrap()).unwrap();
        let e = load(&f8).unwrap_err();
        assert!(
            e.to_string()
                .contains("tensor `w` has element type f8_e4m3, which dnnc does not support"),
            "{e}"
        );
        // f16 widens into f32 (see `half_precision_widens_into_f32_and_nothing_narrows`),
        // not into an integer type.
        let e = load_into(&path, &[("w".into(), DType::I32, vec![2])]).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("tensor `w` has element type f16 but the model expects i32"),
            "{e}"
        );

        let bad_bool = [0u8, 2];
        let view = TensorView::new(Dtype::BOOL, vec![2], &bad_bool).unwrap();
        fs::write(&path, safetensors::serialize([("m", view)], None).unwrap()).unwrap();
        let e = load(&path).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("tensor `m` holds byte 2 at element 1, which is not a bool"),
            "{e}"
        );
    }
}
