//! A JSON Lines log: one JSON object per line, flushed after each line so that a crash or
//! a `tail -f` never sees half a record.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A problem creating or writing a log file.
///
/// Displays as `{path}: cannot {doing}: {source}`.
#[derive(Debug)]
pub struct LogError {
    /// The log file.
    pub path: PathBuf,
    /// What was being done (`"create the log"`, `"write to the log"`).
    pub doing: &'static str,
    /// The underlying error.
    pub source: io::Error,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: cannot {}: {}",
            self.path.display(),
            self.doing,
            self.source
        )
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A JSON Lines log file.
#[derive(Debug)]
pub struct JsonlLog {
    path: PathBuf,
    file: File,
}

impl JsonlLog {
    /// Creates the file `path`, truncating it if it exists.
    pub fn create(path: &Path) -> Result<JsonlLog, LogError> {
        let file = File::create(path).map_err(|source| LogError {
            path: path.to_path_buf(),
            doing: "create the log",
            source,
        })?;
        Ok(JsonlLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `obj` as one line and flushes it. (JSON has no NaN or infinity; `serde_json`
    /// turns such floats into `null` when building a [`serde_json::Value`].)
    pub fn write(&mut self, obj: serde_json::Value) -> Result<(), LogError> {
        let mut line = obj.to_string();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|source| LogError {
                path: self.path.clone(),
                doing: "write to the log",
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use serde_json::json;

    #[test]
    fn writes_one_flushed_line_per_record() {
        let dir = TempDir::new("log-lines");
        let path = dir.path().join("train.jsonl");
        std::fs::write(&path, "old contents\n").unwrap();
        let mut log = JsonlLog::create(&path).unwrap();
        assert_eq!(log.path(), path);
        log.write(json!({"epoch": 1, "train.loss": 0.5})).unwrap();
        // Visible before the log is dropped: every line is flushed.
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        log.write(json!({"epoch": 2, "note": "a\nb", "nan": f64::NAN}))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["train.loss"], json!(0.5));
        assert_eq!(lines[1]["note"], json!("a\nb"));
        assert_eq!(lines[1]["nan"], json!(null));
    }

    #[test]
    fn errors_name_the_file() {
        let dir = TempDir::new("log-error");
        let path = dir.path().join("missing/dir/train.jsonl");
        let e = JsonlLog::create(&path).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("{}: cannot create the log: ", path.display())),
            "{shown}"
        );
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
    }
}
