//! A tiny fixed thread pool for the kernels: `threads - 1` parked workers plus the
//! caller, one job at a time, no allocation per job.
//!
//! Rayon's `join` from a thread outside its pool pushes onto a global queue that
//! allocates now and then; a training step must allocate nothing after its first run,
//! so the kernels use this pool instead. Workers spin briefly after each job (steps run
//! many kernels back to back) and then sleep on a condition variable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How many threads kernels use (the caller included); 0 until first asked.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// The number of threads kernels split large work over: `set_threads`, else the CPUs
/// this process may run on.
pub fn threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            THREADS.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}

/// Sets the number of threads for large kernels (at least 1).
pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// A job: a borrowed closure, valid while its `run` call lasts.
#[derive(Clone, Copy)]
struct Job {
    f: *const (dyn Fn(usize) + Sync),
    parts: usize,
}

// SAFETY: the closure is `Sync` and outlives every use (the caller waits for all
// workers before returning).
unsafe impl Send for Job {}

struct Shared {
    /// The current job and its generation number.
    slot: Mutex<(u64, Option<Job>)>,
    wake: Condvar,
    /// Generation of the latest job, read by spinning workers without the lock.
    generation: AtomicUsize,
    /// Parts of the current job not yet finished by workers.
    pending: AtomicUsize,
    /// Serialises callers: one job at a time.
    busy: Mutex<()>,
    workers: usize,
}

static POOL: OnceLock<&'static Shared> = OnceLock::new();

/// The pool, started on first use with `workers` helper threads.
fn pool(workers: usize) -> &'static Shared {
    POOL.get_or_init(|| {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            slot: Mutex::new((0, None)),
            wake: Condvar::new(),
            generation: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            busy: Mutex::new(()),
            workers,
        }));
        for tid in 1..=workers {
            std::thread::Builder::new()
                .name(format!("dnnc-kernel-{tid}"))
                .spawn(move || worker(shared, tid))
                .expect("spawning a kernel thread");
        }
        shared
    })
}

fn worker(shared: &'static Shared, tid: usize) {
    let mut seen = 0usize;
    loop {
        // Spin a little: the next kernel of a step usually follows within microseconds.
        let spin_until = Instant::now() + Duration::from_micros(200);
        let mut spins = 0u32;
        while shared.generation.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 256 == 0 && Instant::now() >= spin_until {
                break;
            }
        }
        let job = {
            let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
            while slot.0 as usize == seen {
                slot = shared.wake.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
            seen = slot.0 as usize;
            slot.1
        };
        if let Some(job) = job {
            if tid < job.parts {
                // SAFETY: see `Job`: the caller is blocked in `run` until `pending`
                // reaches zero, so the closure is alive.
                let f = unsafe { &*job.f };
                f(tid);
            }
            shared.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Runs `f(0)`, …, `f(parts - 1)`, each on its own thread (the caller runs part 0), and
/// returns when all have finished. With `parts <= 1` it just calls `f(0)`.
pub fn run(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    if parts <= 1 {
        f(0);
        return;
    }
    let shared = pool(threads().max(parts) - 1);
    let parts = parts.min(shared.workers + 1);
    let _one_at_a_time = shared.busy.lock().unwrap_or_else(|e| e.into_inner());
    shared.pending.store(shared.workers, Ordering::Release);
    {
        let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.0 += 1;
        // SAFETY (lifetime erasure): the pointer is only used until `pending` is zero,
        // which this function waits for below.
        let f: *const (dyn Fn(usize) + Sync + '_) = f;
        let f: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
        slot.1 = Some(Job { f, parts });
        shared.generation.store(slot.0 as usize, Ordering::Release);
        shared.wake.notify_all();
    }
    f(0);
    let mut spins = 0u32;
    while shared.pending.load(Ordering::Acquire) != 0 {
        // A worker that lost its core to another process gets it back sooner if the
        // caller stops spinning.
        spins += 1;
        if spins < 4096 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once() {
        set_threads(2);
        for _ in 0..1000 {
            let hits: Vec<AtomicUsize> = (0..2).map(|_| AtomicUsize::new(0)).collect();
            run(2, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
        let one = AtomicUsize::new(0);
        run(1, &|_| {
            one.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(one.load(Ordering::Relaxed), 1);
    }
}
