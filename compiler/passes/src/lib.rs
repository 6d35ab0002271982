//! Passes over the graph IR. [`autodiff`] adds reverse-mode gradients, [`optimizer`]
//! turns gradients into in-place updates of parameters and optimizer state (with the
//! learning-rate schedule), and the clean-ups ([`const_fold`], [`cse`], [`dce`],
//! [`simplify`]) tidy the result. [`pipeline`] runs passes in order, verifying the
//! graph after each one and dumping it on request.

pub mod autodiff;
pub mod const_fold;
pub mod cse;
pub mod dce;
pub mod error;
pub mod optimizer;
pub mod pipeline;
pub mod precision;
pub mod products;
pub mod quantize;
pub mod simplify;
mod vjp;

pub use error::PassError;
