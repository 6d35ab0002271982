//! Times the pool on a memory-bound job: `cargo run --release -p dnnc-kernels --example pool_speed`.

use std::time::Instant;

use dnnc_kernels::pool;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_704);
    let mut v = vec![1.0f32; n];
    let p = v.as_mut_ptr() as usize;
    for threads in [1, 2] {
        pool::set_threads(2);
        let mut times = Vec::new();
        for _ in 0..201 {
            let t = Instant::now();
            let chunks = if threads > 1 { 8 } else { 1 };
            pool::run(chunks, threads, &|_, c| {
                let (s, e) = (n * c / chunks, n * (c + 1) / chunks);
                let v = unsafe { std::slice::from_raw_parts_mut((p as *mut f32).add(s), e - s) };
                for x in v {
                    *x = (*x * 1.0001).sqrt();
                }
            });
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        println!("threads {threads}: {:.1} us", times[times.len() / 2]);
    }
}
