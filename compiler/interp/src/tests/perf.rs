//! A timing sanity print for the matmul of MNIST training (not an assertion: timings
//! depend on the machine), with a spot check of the result.

use std::time::Instant;

use dnnc_ir::Op;

use super::{eval1, f32t, pseudo_random};

#[test]
fn matmul_timing_sanity_print() {
    let (m, k, n) = (128, 784, 256);
    let a = pseudo_random(m * k, 1);
    let b = pseudo_random(k * n, 2);
    let (ta, tb) = (f32t(&[m, k], &a), f32t(&[k, n], &b));
    // Through the whole interpreter, graph and input checks included.
    let start = Instant::now();
    let c = eval1(&[ta, tb], |g, x| g.add(Op::MatMul, x)).unwrap();
    let whole = start.elapsed();
    // The kernel alone, best of three.
    let kernel = (0..3)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(crate::matmul::matmul_f32(&a, &b, 1, m, k, n));
            start.elapsed()
        })
        .min()
        .unwrap();
    println!("matmul {m}x{k} @ {k}x{n}: kernel {kernel:?}, through `run` {whole:?}");
    let c = c.as_f32().unwrap();
    for &(i, j) in &[(0, 0), (17, 200), (127, 255)] {
        let want: f64 = (0..k)
            .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
            .sum();
        assert!(
            (f64::from(c[i * n + j]) - want).abs() < 1e-3,
            "c[{i}, {j}] = {}, want {want}",
            c[i * n + j]
        );
    }
}
