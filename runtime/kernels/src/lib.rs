//! The runtime's compute kernels, shared by the JIT and (later) static libraries:
//! single-precision matrix multiplication with fused epilogues ([`gemm`], long
//! dot products in [`dot`]) and the
//! small thread pool large kernels split their work over ([`pool`]).
//!
//! Nothing here depends on the compiler: kernels take raw, strided views of buffers.

pub mod dot;
pub mod gemm;
pub mod pool;

pub use gemm::{Epilogue, Gemm, MatRef};
