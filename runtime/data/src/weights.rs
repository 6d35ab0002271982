//! The header of a safetensors file (the weights format of checkpoints): each tensor's
//! name, element type and shape, read without the tensors' data — what the checker
//! needs to tell whether pretrained weights (`from "file"`) fit a layer.

use std::io::Read;
use std::path::Path;

use dnnc_tensor::DType;

use crate::fileio::{open, read_full, read_up_to};
use crate::DataError;

/// The largest header a safetensors file may have (the format's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A tensor's entry in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// The tensor's name (`fc1.W`).
    pub name: String,
    /// Its element type.
    pub dtype: DType,
    /// Its dimensions, outermost first.
    pub shape: Vec<u64>,
}

/// The tensors of the safetensors file at `path`, sorted by name.
pub fn probe(path: &Path) -> Result<Vec<TensorEntry>, DataError> {
    let (mut file, len) = open(path)?;
    let mut head = [0u8; 8];
    let got =
        read_full(&mut file, &mut head).map_err(|e| DataError::io(path, "cannot read", &e))?;
    if got < 8 {
        return Err(DataError::new(
            path,
            "is not a safetensors file: shorter than 8 bytes",
        ));
    }
    let n = u64::from_le_bytes(head);
    if n > MAX_HEADER_BYTES || n > len.saturating_sub(8) {
        return Err(DataError::new(
            path,
            format!("is not a safetensors file: its header claims {n} bytes"),
        ));
    }
    let bytes = read_up_to((&mut file).take(n), n, n)
        .map_err(|e| DataError::io(path, "cannot read the header", &e))?;
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| DataError::new(path, format!("has a header that is not JSON: {e}")))?;
    let serde_json::Value::Object(map) = json else {
        return Err(DataError::new(
            path,
            "has a header that is not a JSON object",
        ));
    };
    let mut out = Vec::new();
    for (name, entry) in map {
        if name == "__metadata__" {
            continue;
        }
        let bad = |why: &str| DataError::new(path, format!("tensor `{name}`: {why}"));
        let dtype = match entry.get("dtype").and_then(|d| d.as_str()) {
            Some("F32") => DType::F32,
            Some("F64") => DType::F64,
            Some("F16") => DType::F16,
            Some("BF16") => DType::BF16,
            Some("I8") => DType::I8,
            Some("U8") => DType::U8,
            Some("I16") => DType::I16,
            Some("I32") => DType::I32,
            Some("I64") => DType::I64,
            Some("BOOL") => DType::Bool,
            Some(other) => return Err(bad(&format!("unsupported element type `{other}`"))),
            None => return Err(bad("no `dtype`")),
        };
        let shape = entry
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|dims| {
                dims.iter()
                    .map(|d| d.as_u64())
                    .collect::<Option<Vec<u64>>>()
            })
            .ok_or_else(|| bad("no valid `shape`"))?;
        out.push(TensorEntry { name, dtype, shape });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, extra: usize) -> tempfile_lite::Path {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(vec![0u8; extra]);
        tempfile_lite::write(&bytes)
    }

    /// A tiny self-removing scratch file (the crate has no dev-dependencies).
    mod tempfile_lite {
        pub struct Path(pub std::path::PathBuf);
        impl Drop for Path {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        pub fn write(bytes: &[u8]) -> Path {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!(
                "dnnc-weights-probe-{}-{k}.safetensors",
                std::process::id()
            ));
            std::fs::write(&p, bytes).unwrap();
            Path(p)
        }
    }

    #[test]
    fn reads_names_types_and_shapes() {
        let f = file(
            r#"{"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a.W":{"dtype":"BF16","shape":[2,3],"data_offsets":[8,20]},"__metadata__":{"x":"y"}}"#,
            20,
        );
        let t = probe(&f.0).unwrap();
        assert_eq!(
            t,
            vec![
                TensorEntry {
                    name: "a.W".into(),
                    dtype: DType::BF16,
                    shape: vec![2, 3]
                },
                TensorEntry {
                    name: "b".into(),
                    dtype: DType::F32,
                    shape: vec![2]
                }
            ]
        );
    }

    #[test]
    fn lying_or_broken_headers_are_errors() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend(b"{}");
        let f = tempfile_lite::write(&bytes);
        assert!(probe(&f.0).unwrap_err().message.contains("claims"));
        let f = file("not json", 0);
        assert!(probe(&f.0).unwrap_err().message.contains("not JSON"));
        let f = file(r#"{"a":{"dtype":"Q7","shape":[1]}}"#, 0);
        assert!(probe(&f.0).unwrap_err().message.contains("`Q7`"));
    }
}
