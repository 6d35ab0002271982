//! Test helpers: unique temporary file paths and folders that clean up after themselves.

use std::path::{Path, PathBuf};

use dnnc_testing::files::Scratch;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A file path under the system temp directory, removed (with any `.tmp` or `.tmp-<pid>`
/// sibling) on drop.
pub struct TempPath(PathBuf);

impl TempPath {
    /// A fresh, unique path whose file name ends in `name`.
    pub fn new(name: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let file = format!("dnnc-data-test-{}-{n}-{name}", std::process::id());
        TempPath(std::env::temp_dir().join(file))
    }

    /// A fresh path holding `bytes`.
    pub fn with_bytes(name: &str, bytes: &[u8]) -> Self {
        let p = TempPath::new(name);
        std::fs::write(&p.0, bytes).unwrap();
        p
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        for suffix in [".tmp".to_string(), format!(".tmp-{}", std::process::id())] {
            let mut tmp = self.0.clone().into_os_string();
            tmp.push(suffix);
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// A fresh, empty folder under the system temp directory, removed with its contents on
/// drop (the test suites' one [`Scratch`]).
pub struct TempDir(Scratch);

impl TempDir {
    /// A fresh, unique folder whose name ends in `name`.
    pub fn new(name: &str) -> Self {
        TempDir(Scratch::new(&format!("data-{name}")))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.0.dir()
    }
}

/// Gzip-compresses `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}
