//! The salsa database: source files as inputs, loaded on demand.
//!
//! [`SourceFile`] is the only input. Files reached through `use` are read from disk (or
//! from the embedded stdlib) the first time a query asks for them; an editor replaces
//! a file's text with [`RootDatabase::set_text`], and salsa recomputes only what
//! depends on it. Data-file headers probed by the checker are cached here too (not
//! tracked: a changed data file needs a new database).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use salsa::Setter;

use crate::stdlib;

/// One `.dnn` source file.
#[salsa::input(debug)]
pub struct SourceFile {
    /// The file's identity: a canonical path, or `<std>/NAME.dnn`.
    #[returns(ref)]
    pub path: PathBuf,
    /// How diagnostics name the file.
    #[returns(ref)]
    pub name: Arc<str>,
    #[returns(ref)]
    pub text: String,
    /// Byte offset of the first byte that was not valid UTF-8 (replaced in `text`).
    pub invalid_utf8_at: Option<u32>,
}

/// How the checker reads a data file's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loader {
    Idx,
    Npy,
    Csv { header: bool },
    Text(dnnc_data::text::TextOptions),
}

#[salsa::db]
pub trait Db: salsa::Database {
    /// The file a `use` path names, relative to `from`; `None` when it does not exist.
    fn resolve_module(&self, from: SourceFile, path: &[&str]) -> Option<SourceFile>;
    /// The element type and shape stored in a data file.
    fn probe_data(&self, path: &Path, loader: Loader) -> Result<dnnc_data::Header, String>;
    /// The tensors of a safetensors file (names, element types, shapes), cached.
    fn probe_weights(
        &self,
        path: &Path,
    ) -> Result<Arc<Vec<dnnc_data::weights::TensorEntry>>, String>;
    /// Declarations parsed before, so that re-parsing after an edit is cheap.
    fn chunk_cache(&self) -> &dnnc_syntax::ChunkCache;
}

pub type FileId = SourceFile;

/// A probed header, or why the file could not be read.
type ProbeResult = Result<dnnc_data::Header, String>;

/// A probed safetensors header, or why the file could not be read.
type WeightsProbe = Result<Arc<Vec<dnnc_data::weights::TensorEntry>>, String>;

/// The database used by the driver and the language server.
#[salsa::db]
#[derive(Clone, Default)]
pub struct RootDatabase {
    storage: salsa::Storage<Self>,
    files: Arc<Mutex<HashMap<PathBuf, SourceFile>>>,
    data: Arc<Mutex<HashMap<(PathBuf, Loader), ProbeResult>>>,
    weights: Arc<Mutex<HashMap<PathBuf, WeightsProbe>>>,
    chunks: Arc<dnnc_syntax::ChunkCache>,
}

#[salsa::db]
impl salsa::Database for RootDatabase {}

/// Names of the queries salsa executed, in order (see [`RootDatabase::with_query_log`]).
pub type QueryLog = Arc<Mutex<Vec<String>>>;

impl RootDatabase {
    /// A database for one-shot runs (`dnnc check`, `dnnc train`).
    pub fn new() -> RootDatabase {
        RootDatabase {
            chunks: Arc::new(dnnc_syntax::ChunkCache::disabled()),
            ..RootDatabase::default()
        }
    }

    /// A database for an editor: re-parsing after an edit reuses unchanged declarations.
    pub fn for_editor() -> RootDatabase {
        RootDatabase::default()
    }

    /// A database that records every query it executes (not those it reuses), for
    /// tests of incrementality.
    pub fn with_query_log() -> (RootDatabase, QueryLog) {
        let log: QueryLog = Arc::default();
        let sink = log.clone();
        let storage = salsa::Storage::new(Some(Box::new(move |event: salsa::Event| {
            if let salsa::EventKind::WillExecute { database_key } = event.kind {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("{database_key:?}"));
            }
        })));
        let db = RootDatabase {
            storage,
            ..RootDatabase::default()
        };
        (db, log)
    }

    /// Opens a file given by the user; `name` is how diagnostics will call it.
    pub fn open(&self, path: &Path) -> std::io::Result<SourceFile> {
        let key = path.canonicalize()?;
        if let Some(f) = self.lock_files().get(&key) {
            return Ok(*f);
        }
        let bytes = dnnc_data::files::read_regular(path, dnnc_data::files::MAX_SOURCE_BYTES)?;
        let name: Arc<str> = Arc::from(path.display().to_string());
        Ok(self.insert(key, name, bytes))
    }

    /// Adds a file from memory (tests, the language server's unsaved buffers).
    pub fn add_text(&self, path: &Path, text: &str) -> SourceFile {
        let name: Arc<str> = Arc::from(path.display().to_string());
        let key = absolute(path);
        if let Some(f) = self.lock_files().get(&key).copied() {
            return f;
        }
        self.insert(key, name, text.as_bytes().to_vec())
    }

    /// Replaces the text of a file (an editor's change).
    pub fn set_text(&mut self, file: SourceFile, text: String) {
        file.set_invalid_utf8_at(self).to(None);
        file.set_text(self).to(text);
    }

    /// Every file loaded so far.
    pub fn files(&self) -> Vec<SourceFile> {
        self.lock_files().values().copied().collect()
    }

    fn lock_files(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, SourceFile>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, key: PathBuf, name: Arc<str>, bytes: Vec<u8>) -> SourceFile {
        let (text, invalid) = match String::from_utf8(bytes) {
            Ok(t) => (t, None),
            Err(e) => {
                let at = e.utf8_error().valid_up_to() as u32;
                (String::from_utf8_lossy(e.as_bytes()).into_owned(), Some(at))
            }
        };
        let f = SourceFile::new(self, key.clone(), name, text, invalid);
        self.lock_files().insert(key, f);
        f
    }
}

fn absolute(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    })
}

#[salsa::db]
impl Db for RootDatabase {
    fn resolve_module(&self, from: SourceFile, path: &[&str]) -> Option<SourceFile> {
        if let ["std", module] = path {
            let key = PathBuf::from(format!("<std>/{module}.dnn"));
            if let Some(f) = self.lock_files().get(&key) {
                return Some(*f);
            }
            let text = stdlib::source(module)?;
            let name: Arc<str> = Arc::from(key.display().to_string());
            return Some(self.insert(key, name, text.as_bytes().to_vec()));
        }
        if path.first() == Some(&"std") || path.is_empty() {
            return None;
        }
        let rel: PathBuf = path.iter().collect::<PathBuf>().with_extension("dnn");
        let from_path = from.path(self);
        if from_path.starts_with("<std>") {
            return None;
        }
        let dir = from_path.parent().unwrap_or(Path::new("."));
        let target = dir.join(&rel);
        let key = target.canonicalize().ok()?;
        if let Some(f) = self.lock_files().get(&key) {
            return Some(*f);
        }
        let bytes =
            dnnc_data::files::read_regular(&key, dnnc_data::files::MAX_SOURCE_BYTES).ok()?;
        let from_name = from.name(self);
        let name_dir = Path::new(&**from_name).parent().unwrap_or(Path::new(""));
        let name: Arc<str> = Arc::from(name_dir.join(&rel).display().to_string());
        Some(self.insert(key, name, bytes))
    }

    fn chunk_cache(&self) -> &dnnc_syntax::ChunkCache {
        &self.chunks
    }

    fn probe_weights(&self, path: &Path) -> WeightsProbe {
        let mut cache = self.weights.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                dnnc_data::weights::probe(path)
                    .map(Arc::new)
                    .map_err(|e| e.message)
            })
            .clone()
    }

    fn probe_data(&self, path: &Path, loader: Loader) -> Result<dnnc_data::Header, String> {
        let key = (path.to_path_buf(), loader);
        let mut cache = self.data.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(key)
            .or_insert_with(|| {
                let r = match loader {
                    Loader::Idx => dnnc_data::idx::probe(path),
                    Loader::Npy => dnnc_data::npy::probe(path),
                    Loader::Csv { header } => {
                        let opts = dnnc_data::csv::CsvOptions {
                            has_header: header,
                            ..Default::default()
                        };
                        dnnc_data::csv::probe(path, &opts)
                    }
                    Loader::Text(opts) => dnnc_data::text::probe(path, &opts),
                };
                r.map_err(|e| e.message)
            })
            .clone()
    }
}
