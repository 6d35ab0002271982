//! What the test suites share, so that there is one copy of each: a deterministic
//! generator ([`Rng`]), random tensors of every element type and edge values
//! ([`values`]), a graph builder and random graphs ([`graphs`]), the stated tolerances
//! ([`tolerance`]), and scratch folders and `.npy` files ([`files`]). A test-only
//! crate: nothing outside `[dev-dependencies]` uses it.

pub mod files;
pub mod graphs;
pub mod instances;
pub mod tolerance;
pub mod values;

/// SplitMix64: a small deterministic generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[-2, 2)`.
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
    }

    /// Uniform in `[-1, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    /// Uniform in `[lo, hi)`.
    pub fn float(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }

    /// An `f32` tensor of `shape` with elements uniform in `[-2, 2)`.
    pub fn tensor(&mut self, shape: &[usize]) -> dnnc_tensor::Tensor {
        let n = shape.iter().product();
        dnnc_tensor::Tensor::f32(shape.to_vec(), (0..n).map(|_| self.f32()).collect()).unwrap()
    }
}
