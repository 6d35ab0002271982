//! Test helpers: a temporary directory removed when dropped.

use std::path::Path;

use dnnc_testing::files::Scratch;

/// A fresh, empty directory under the system temporary directory, unique to this
/// process and `name`, removed with its contents on drop (the test suites' one
/// [`Scratch`]).
pub struct TempDir(Scratch);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        TempDir(Scratch::new(&format!("runtime-{name}")))
    }

    pub fn path(&self) -> &Path {
        self.0.dir()
    }
}
