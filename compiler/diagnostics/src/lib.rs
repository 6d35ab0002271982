//! Diagnostics as plain data, shared by every stage of the compiler.
//!
//! A [`Diagnostic`] is what a stage reports: a severity, an error code from the
//! [`codes`] catalogue, a message in rustc's style (lowercase, no trailing period), a
//! primary label on the smallest span that shows the problem, secondary labels for the
//! places that contributed, notes and an optional `help`. Rendering lives in the driver
//! (terminal, JSON) and in the language server; this crate knows nothing about either.

pub mod codes;
mod diagnostic;

pub use codes::{explanation, Code, CODES};
pub use diagnostic::{Diagnostic, Label, Severity, Span};
