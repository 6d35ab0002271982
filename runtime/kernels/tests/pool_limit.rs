//! A job that asks for fewer threads than the pool has workers runs on threads
//! numbered below what it asked for: per-thread scratch sized by the request (a
//! product's packing workspaces) is never indexed past its end. Its own test binary,
//! so that the pool is made here, larger than the job.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dnnc_kernels::pool;

fn busy(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

#[test]
fn jobs_use_only_the_threads_they_ask_for() {
    pool::set_threads(4);
    // Makes the pool: the caller and three workers.
    pool::run(64, 4, &|_, _| busy(Duration::from_micros(50)));
    for _ in 0..20 {
        let highest = AtomicUsize::new(0);
        pool::run(256, 2, &|t, _| {
            highest.fetch_max(t, Ordering::Relaxed);
            busy(Duration::from_micros(20));
        });
        assert!(
            highest.load(Ordering::Relaxed) < 2,
            "a job of 2 threads ran on thread {}",
            highest.load(Ordering::Relaxed)
        );
    }
}
