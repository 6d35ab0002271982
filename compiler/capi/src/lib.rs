//! The runtime of static libraries built by `dnnc compile`.
//!
//! A library's object file holds its programs' loops and a description
//! ([`dnnc_exec::library::LibraryDesc`]); its `NAME_*` functions call the
//! `dnnc_capi_*` functions here, which build and run [`dnnc_exec::Instance`]s. This
//! crate is built as a static archive (`libdnnc_capi.a`) that `dnnc compile` bundles
//! with the object.
//!
//! Every exported function checks its arguments, catches panics, and reports failure
//! as a non-zero return (or NULL) with a message for `last_error`: a C caller passing
//! nonsense gets an error, never a crash.
//!
//! - [`model`]: the model behind a `NAME_t *`;
//! - [`ffi`]: the exported functions;
//! - [`idx`]: reading IDX files from C.

pub mod ffi;
pub mod idx;
pub mod model;
