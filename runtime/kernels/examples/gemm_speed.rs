//! Prints the speed of the matrix products of the MNIST MLP's training step and
//! inference: `cargo run --release -p dnnc-kernels --example gemm_speed [threads]`.

use std::time::Instant;

use dnnc_kernels::{pool, Epilogue, Gemm, MatRef};

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    pool::set_threads(threads);
    // (m, k, n, A transposed, B transposed, what)
    let shapes = [
        (128, 784, 256, false, false, "fc1 forward"),
        (128, 256, 256, false, false, "fc2 forward"),
        (128, 256, 10, false, false, "head forward"),
        (128, 10, 256, false, true, "head dx"),
        (256, 128, 10, true, false, "head dW"),
        (128, 256, 256, false, true, "fc2 dx"),
        (256, 128, 256, true, false, "fc2 dW"),
        (784, 128, 256, true, false, "fc1 dW"),
        (1, 784, 256, false, false, "fc1 batch 1"),
        (256, 784, 256, false, false, "fc1 batch 256"),
    ];
    let mut total = 0.0;
    for (m, k, n, at, bt, what) in shapes {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let ar = MatRef::dense(a.as_ptr(), m, k, at);
        let br = MatRef::dense(b.as_ptr(), k, n, bt);
        let mut g = Gemm::new(m, n, k);
        let mut times = Vec::new();
        for _ in 0..201 {
            let t = Instant::now();
            unsafe { g.run(ar, br, c.as_mut_ptr(), Epilogue::default()) };
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        if !what.contains("batch") {
            total += med;
        }
        println!(
            "{what:14} {m:4}x{k:4}x{n:4}  {:8.1} us  {:6.1} GFLOP/s",
            med * 1e6,
            2.0 * (m * n * k) as f64 / med / 1e9
        );
    }
    println!("train-step matmuls: {:.3} ms", total * 1e3);
}
