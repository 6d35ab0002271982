//! A tiny fixed thread pool for the kernels: `threads - 1` workers plus the caller, one
//! job at a time, no allocation per job.
//!
//! A job is a number of chunks; threads claim chunks one at a time, so a worker that
//! is late (asleep, or its core taken by another process) simply claims fewer — the
//! caller never waits for a chunk nobody has started. It can only wait for a chunk a
//! worker started and then lost its core in the middle of. Waits are weighed against
//! the caller's own work over windows of 10 ms of it: a vCPU the host takes away for a
//! millisecond now and then costs little, while another process busy on the other
//! core makes the caller wait longer than it works; then the pool runs jobs on the
//! caller alone for a while (20 ms at first, doubling up to a second while it
//! persists) and tries again. So large kernels use both cores when both are free, and
//! are not slower than one thread when only one is. (Counting single late jobs
//! instead, as this pool first did, sent an LSTM's training step — hundreds of short
//! jobs — onto one core most of the time on a VM whose vCPUs pause now and then.)
//!
//! Rayon's `join` from a thread outside its pool pushes onto a global queue that
//! allocates now and then; a training step must allocate nothing after its first run.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// The chunk function of the current job: `f(thread, chunk)`.
type ChunkFn = dyn Fn(usize, usize) + Sync;

struct Shared {
    /// Generation of the latest job, for sleeping workers.
    slot: Mutex<u64>,
    wake: Condvar,
    /// Generation of the latest job, read by spinning workers without the lock.
    generation: AtomicU64,
    /// `generation << 32 | chunks << 16 | next`: the next chunk to claim.
    claim: AtomicU64,
    /// Chunks of the current job finished.
    done: AtomicUsize,
    /// The current job's function; written only while no chunk of it can be claimed.
    job: UnsafeCell<Option<*const ChunkFn>>,
    /// How many threads the current job may use: workers numbered from this on
    /// claim none of its chunks (a job's per-thread scratch, such as a product's
    /// packing workspaces, is sized by it, and the pool may have more workers).
    limit: AtomicUsize,
    /// Serialises callers, and holds the contention state.
    busy: Mutex<Backoff>,
    workers: usize,
    /// Workers that have started running.
    started: AtomicUsize,
    /// Workers asleep on [`Shared::wake`] (not spinning).
    sleeping: AtomicUsize,
}

// SAFETY: `job` is written by the one caller holding `busy` while no chunk is
// claimable, and read by workers only after claiming a chunk of that job.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// When the pool runs on the caller alone because workers keep being late.
struct Backoff {
    solo_until: Option<Instant>,
    /// The caller's own work and its waits for workers in the current window.
    own: Duration,
    waited: Duration,
    /// The next pause; doubles while windows keep losing, back to the first after one
    /// that does not.
    next_pause: Duration,
}

/// Waits are judged over windows of this much of the caller's own work: a worker's
/// vCPU that the host takes away for a millisecond now and then costs little over a
/// window, one that another process keeps busy costs more than it brings.
const WINDOW: Duration = Duration::from_millis(10);
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

impl Backoff {
    /// Counts one job in which the caller worked `own` and then waited `waited` for
    /// workers. Two threads beat one while the caller waits less than it works itself
    /// (with even shares, one thread alone would take about twice its own time).
    /// Judged per window, not per job: when a window's waits exceed its work, the
    /// pool runs alone for a pause, longer for each losing window in a row.
    fn record(&mut self, own: Duration, waited: Duration, now: Instant) {
        self.own += own;
        self.waited += waited;
        if self.own < WINDOW && self.waited < WINDOW {
            return;
        }
        if self.waited > self.own {
            self.solo_until = Some(now + self.next_pause);
            self.next_pause = (self.next_pause * 2).min(LONGEST_PAUSE);
        } else {
            self.next_pause = FIRST_PAUSE;
        }
        self.own = Duration::ZERO;
        self.waited = Duration::ZERO;
    }
}

static POOL: OnceLock<&'static Shared> = OnceLock::new();

/// Chunks are at most 2¹⁶ − 1.
const MAX_CHUNKS: usize = (1 << 16) - 1;

fn pool(workers: usize) -> &'static Shared {
    POOL.get_or_init(|| {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            slot: Mutex::new(0),
            wake: Condvar::new(),
            generation: AtomicU64::new(0),
            claim: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            limit: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            sleeping: AtomicUsize::new(0),
            busy: Mutex::new(Backoff {
                solo_until: None,
                own: Duration::ZERO,
                waited: Duration::ZERO,
                next_pause: FIRST_PAUSE,
            }),
            workers,
        }));
        let mut spawned = 0;
        for tid in 1..=workers {
            // A pool that cannot start its threads runs everything on the caller.
            if std::thread::Builder::new()
                .name(format!("dnnc-kernel-{tid}"))
                .spawn(move || worker(shared, tid))
                .is_ok()
            {
                spawned += 1;
            }
        }
        // Wait (a little) until the workers run: a thread allocates as it starts, and
        // that must happen now, during a first run, not in a later one (a busy machine
        // can delay a new thread's start by milliseconds).
        let deadline = Instant::now() + Duration::from_secs(2);
        while shared.started.load(Ordering::Acquire) < spawned && Instant::now() < deadline {
            std::thread::yield_now();
        }
        shared
    })
}

/// Claims the next chunk of job `generation`, if any is left.
fn claim(shared: &Shared, generation: u64) -> Option<usize> {
    let mut w = shared.claim.load(Ordering::Acquire);
    loop {
        let (gen, chunks, next) = (w >> 32, (w >> 16) & 0xffff, w & 0xffff);
        if gen != generation & 0xffff_ffff || next >= chunks {
            return None;
        }
        match shared
            .claim
            .compare_exchange_weak(w, w + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Some(next as usize),
            Err(now) => w = now,
        }
    }
}

/// Runs claimed chunks of job `generation` until none is left (none for a worker
/// numbered beyond the job's limit).
fn work(shared: &Shared, generation: u64, tid: usize) {
    if tid >= shared.limit.load(Ordering::Acquire) {
        return;
    }
    while let Some(chunk) = claim(shared, generation) {
        // SAFETY: a chunk of this job is claimed and not finished, so the caller is
        // still inside `run` and the function is alive.
        let f = unsafe { &*(*shared.job.get()).expect("a job is set while claimable") };
        f(tid, chunk);
        shared.done.fetch_add(1, Ordering::AcqRel);
    }
}

fn worker(shared: &'static Shared, tid: usize) {
    shared.started.fetch_add(1, Ordering::AcqRel);
    let mut seen = 0u64;
    loop {
        // Spin a while: the next kernel of a step usually follows within microseconds,
        // and a recurrent step's serial stretches (its gates, a concatenation of every
        // time step) take hundreds. A worker woken from sleep is often placed on the
        // caller's core first and runs its chunk only once the caller waits.
        let spin_until = Instant::now() + Duration::from_millis(2);
        let mut spins = 0u32;
        while shared.generation.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && Instant::now() >= spin_until {
                shared.sleeping.fetch_add(1, Ordering::AcqRel);
                let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
                while *slot == seen {
                    slot = shared.wake.wait(slot).unwrap_or_else(|e| e.into_inner());
                }
                shared.sleeping.fetch_sub(1, Ordering::AcqRel);
                break;
            }
        }
        seen = shared.generation.load(Ordering::Acquire);
        work(shared, seen, tid);
    }
}

/// Runs `f(thread, chunk)` for every chunk in `0..chunks`, spread over up to
/// `threads_wanted` threads (the caller is thread 0; others are numbered from 1 below
/// `threads_wanted`), and returns when all have finished.
pub fn run(chunks: usize, threads_wanted: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    let chunks = chunks.min(MAX_CHUNKS);
    let solo = || {
        for c in 0..chunks {
            f(0, c);
        }
    };
    if chunks <= 1 || threads_wanted <= 1 {
        return solo();
    }
    let shared = pool(threads().max(threads_wanted) - 1);
    if shared.workers == 0 {
        return solo();
    }
    let mut backoff = shared.busy.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(until) = backoff.solo_until {
        if Instant::now() < until {
            drop(backoff);
            return solo();
        }
        backoff.solo_until = None;
    }
    let generation = shared.generation.load(Ordering::Relaxed) + 1;
    shared.done.store(0, Ordering::Release);
    let woken = shared.sleeping.load(Ordering::Acquire) > 0;
    // SAFETY (lifetime erasure): the pointer is used only for claimed chunks, and this
    // function returns only when every chunk is finished.
    let f_ptr: *const (dyn Fn(usize, usize) + Sync + '_) = f;
    let f_ptr = unsafe {
        std::mem::transmute::<*const (dyn Fn(usize, usize) + Sync + '_), *const ChunkFn>(f_ptr)
    };
    unsafe { *shared.job.get() = Some(f_ptr) };
    shared.limit.store(threads_wanted, Ordering::Release);
    shared.claim.store(
        (generation & 0xffff_ffff) << 32 | (chunks as u64) << 16,
        Ordering::Release,
    );
    shared.generation.store(generation, Ordering::Release);
    {
        let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
        *slot = generation;
    }
    shared.wake.notify_all();
    let started = Instant::now();
    work(shared, generation, 0);
    let own = started.elapsed();
    let mut spins = 0u32;
    while shared.done.load(Ordering::Acquire) < chunks {
        spins += 1;
        if spins < 4096 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    let waited = started.elapsed() - own;
    // The wait for a worker that had to be woken (it sleeps after 2 ms without work)
    // is left out: it may have started on the caller's core. The caller's own work
    // still counts, so a window of such jobs is judged on the others' waits.
    let counted = if woken { Duration::ZERO } else { waited };
    backoff.record(own, counted, Instant::now());
    unsafe { *shared.job.get() = None };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Backoff {
        Backoff {
            solo_until: None,
            own: Duration::ZERO,
            waited: Duration::ZERO,
            next_pause: FIRST_PAUSE,
        }
    }

    #[test]
    fn a_rare_hiccup_does_not_stop_the_workers() {
        // 200 jobs of 50 µs each; one waited 2 ms for a worker whose vCPU was away.
        let mut b = fresh();
        let now = Instant::now();
        for i in 0..200 {
            let waited = if i == 7 { 2000 } else { 5 };
            b.record(
                Duration::from_micros(50),
                Duration::from_micros(waited),
                now,
            );
        }
        assert!(b.solo_until.is_none());
        assert_eq!(b.next_pause, FIRST_PAUSE);
    }

    #[test]
    fn a_busy_other_core_sends_the_pool_solo_for_longer_and_longer() {
        // Every job waits 4 ms (the worker's core is timesliced with another process).
        let mut b = fresh();
        let now = Instant::now();
        let mut pauses = Vec::new();
        for _ in 0..4 {
            b.solo_until = None;
            for _ in 0..3 {
                b.record(Duration::from_micros(500), Duration::from_millis(4), now);
            }
            pauses.push(b.solo_until.expect("solo after a losing window") - now);
        }
        assert_eq!(
            pauses,
            [20, 40, 80, 160].map(Duration::from_millis).to_vec()
        );
        // A window without losses resets the pause.
        for _ in 0..30 {
            b.record(Duration::from_micros(500), Duration::from_micros(10), now);
        }
        assert_eq!(b.next_pause, FIRST_PAUSE);
    }

    #[test]
    fn every_chunk_runs_once() {
        set_threads(2);
        for chunks in [1, 2, 3, 8, 100] {
            for _ in 0..200 {
                let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
                run(chunks, 2, &|t, c| {
                    assert!(t < 2);
                    hits[c].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
        let one = AtomicUsize::new(0);
        run(5, 1, &|t, _| {
            assert_eq!(t, 0);
            one.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(one.load(Ordering::Relaxed), 5);
    }
}
