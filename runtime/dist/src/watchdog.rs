//! The bounded wait: a thread that ends every process when this one has waited in a
//! collective longer than the run's timeout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Watchdog {
    shared: Arc<Shared>,
}

struct Shared {
    started: Instant,
    timeout_ms: u64,
    /// Milliseconds after `started` when the armed collective times out; 0: none.
    deadline_ms: AtomicU64,
    what: Mutex<&'static str>,
    stopped: AtomicBool,
}

impl Watchdog {
    pub fn start(rank: usize, size: usize, timeout: Duration) -> Watchdog {
        let shared = Arc::new(Shared {
            started: Instant::now(),
            timeout_ms: timeout.as_millis().clamp(1, u128::from(u64::MAX / 2)) as u64,
            deadline_ms: AtomicU64::new(0),
            what: Mutex::new(""),
            stopped: AtomicBool::new(false),
        });
        let s = shared.clone();
        let watch = move || loop {
            std::thread::sleep(Duration::from_millis(100));
            if s.stopped.load(Ordering::Relaxed) {
                return;
            }
            let d = s.deadline_ms.load(Ordering::Relaxed);
            if d != 0 && s.started.elapsed().as_millis() as u64 > d {
                let what = *s.what.lock().unwrap_or_else(|e| e.into_inner());
                eprintln!(
                    "error[E1600]: rank {rank} of {size}: waited {:.0} s for the other processes in {what}; one of them hung or the network failed, so every process ends (`--mpi-timeout` sets the wait)",
                    s.timeout_ms as f64 / 1000.0
                );
                // MPI may not be called from this thread while the main thread waits
                // in a collective (the world is joined `Funneled`), and `exit` would run
                // MPI's exit handlers: end this process at once; `mpirun` notices and
                // ends the others.
                // SAFETY: `_exit` takes no pointers and never returns.
                unsafe { libc::_exit(1) }
            }
        };
        // Without the thread there would be no bound on the wait: a run that cannot
        // start it must not start.
        std::thread::Builder::new()
            .name("dnnc-watchdog".into())
            .spawn(watch)
            .expect("the watchdog thread starts");
        Watchdog { shared }
    }

    /// A collective named `what` starts now.
    pub fn arm(&self, what: &'static str) {
        let s = &self.shared;
        *s.what.lock().unwrap_or_else(|e| e.into_inner()) = what;
        let now = s.started.elapsed().as_millis() as u64;
        s.deadline_ms.store(now + s.timeout_ms, Ordering::Relaxed);
    }

    /// The collective ended.
    pub fn disarm(&self) {
        self.shared.deadline_ms.store(0, Ordering::Relaxed);
    }

    /// No more collectives: the thread ends.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::Relaxed);
    }
}
