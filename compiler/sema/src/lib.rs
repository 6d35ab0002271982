//! The semantic model of `.dnn`: a salsa database with name resolution, type and shape
//! inference, and the embedded standard library.
//!
//! Queries, from the bottom up: [`scope::parse`] (per file), [`scope::module_items`] and
//! [`scope::file_scope`] (names), [`items::layer_hparams`], [`items::layer_sig`] and
//! [`items::fn_sig`] (per declaration signatures), [`data::dataset_sig`],
//! [`train::train_sig`], [`check::check_item`] (bodies, per declaration) and
//! [`check::file_diagnostics`]. The driver and the language server share them.

pub mod augment;
pub mod builtins;
pub mod check;
pub mod checker;
pub mod data;
pub mod db;
pub mod dim;
pub mod infer;
pub mod items;
pub mod pretrained;
pub mod recursion;
pub mod scope;
pub mod settings;
pub mod stdlib;
pub mod suggest;
pub mod train;
pub mod ty;
pub mod unify;
pub mod window;

pub use check::{file_diagnostics, type_at};
pub use db::{Db, RootDatabase, SourceFile};
