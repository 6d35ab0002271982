//! Running compiled graphs: a [`Program`] (a schedule and its memory plan, as data)
//! becomes an [`Instance`] (storage allocated, kernels ready) that runs any number of
//! times without allocating.
//!
//! Shared by the JIT (`dnnc-codegen`, which also compiles the loops and an entry
//! function) and by static libraries (`dnnc-capi`, whose loops come from an object
//! file). Numerics follow [`dnnc_ir::scalar`] exactly, except matrix products
//! ([`dnnc_kernels::Gemm`]: fused multiply-add, blocked sums).
//!
//! - [`buffer`]: aligned blocks and typed views;
//! - [`ops`]: the Rust kernels (everything that is not a fused loop or a matmul);
//! - [`maps`]: index maps of data-movement kernels;
//! - [`moves`]: copies between two index maps (a concat reading slices in place);
//! - [`reduce`]: `f32` reductions over axes that are not consecutive;
//! - [`window`]: `patches` and `fold` (im2col, col2im);
//! - [`program`]: the serialisable description;
//! - [`instance`]: storage, steps, ports.

pub mod buffer;
pub mod error;
pub mod helpers;
pub mod instance;
mod json_float;
pub mod library;
pub mod maps;
pub mod moves;
pub mod ops;
pub mod program;
pub mod reduce;
pub mod store;
pub mod window;

pub use error::ExecError;
pub use instance::{loop_splits, run_step, Call, Instance, LoopFn, PARALLEL_LOOP};
pub use program::Program;
pub use store::Store;
