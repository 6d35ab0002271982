//! The single error type of the crate: a file path plus a message saying what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem reading a data file.
///
/// Displays as `{path}: {message}`, for example
/// `data/x.idx: bad magic number 0x00000a03, expected an IDX file (0x0000080X)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    /// The file the problem was found in.
    pub path: PathBuf,
    /// What is wrong, in lowercase without a trailing period.
    pub message: String,
}

impl DataError {
    /// Creates an error about `path`.
    pub fn new(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Creates an error about `path` from an I/O failure, prefixed with what was being done.
    pub(crate) fn io(path: &Path, doing: &str, err: &std::io::Error) -> Self {
        DataError::new(path, format!("{doing}: {err}"))
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for DataError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_path_and_message() {
        let e = DataError::new("data/x.idx", "not gzip");
        assert_eq!(e.to_string(), "data/x.idx: not gzip");
    }
}
