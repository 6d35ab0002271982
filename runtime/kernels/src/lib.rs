//! The runtime's compute kernels, shared by the JIT and (later) static libraries:
//! single-precision matrix multiplication with fused epilogues ([`gemm`], long
//! dot products in [`dot`]) and the
//! small thread pool large kernels split their work over ([`pool`]).
//!
//! Nothing here depends on the compiler: kernels take raw, strided views of buffers.

pub mod bf16;
pub mod dot;
pub mod gemm;
pub mod int8;
pub mod pool;

pub use gemm::{Epilogue, Gemm, MatRef};

/// The ReLU of the epilogues: `max(v, 0)` that keeps NaN (as the interpreter's
/// `max_f32` and PyTorch's `relu` do; `f32::max` would turn NaN into 0).
#[inline(always)]
pub(crate) fn relu(v: f32) -> f32 {
    if v.is_nan() {
        v
    } else {
        v.max(0.0)
    }
}

/// The tests' pseudo-random numbers: `len` draws of a 64-bit linear congruential
/// generator from `seed` (the same sequence everywhere, so failures reproduce).
#[cfg(test)]
pub(crate) fn draws(len: usize, seed: u64) -> impl Iterator<Item = u64> {
    let mut s = seed;
    (0..len).map(move |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s
    })
}
