//! The processes of a data-parallel run and the collectives between them.
//!
//! A run is one process, or — in a `dnnc` built with the `mpi` feature and started
//! by `mpirun -n N` — N processes (ranks) of MPI's world communicator. [`init`] joins
//! the world once per process (MPI itself is per process, so the world is a
//! process-wide value: [`world`]); [`finalize`] or [`abort`] ends it.
//!
//! Every collective runs under a watchdog: a process that waits longer than the
//! run's timeout for the others (a rank that hung, a network that failed) ends every
//! process with a message instead of hanging. A rank that dies is noticed by
//! `mpirun`, which ends the others.
//!
//! Without the feature, a `dnnc` that finds itself started by a launcher as one of
//! several processes says so instead of running N copies of a one-process run.

#[cfg(feature = "mpi")]
mod mpi_world;
#[cfg(feature = "mpi")]
mod watchdog;

use std::sync::OnceLock;
use std::time::Duration;

/// Why the processes of a run cannot work together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DistError {
    /// Started by a launcher as one of `size` processes, but built without MPI.
    NoMpi { size: usize },
    /// MPI could not be initialised (or was initialised twice).
    Init(String),
    /// The processes hold different things (files, weights, parameters).
    Mismatch(String),
}

impl std::fmt::Display for DistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DistError::NoMpi { size } => write!(
                f,
                "this process is one of {size} started by a launcher (mpirun), but this dnnc was built without MPI: build it with `cargo build --release --features mpi` (needs libopenmpi-dev), or run one process"
            ),
            DistError::Init(why) => write!(f, "MPI could not start: {why}"),
            DistError::Mismatch(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DistError {}

/// An element type the processes can sum (`f32`, `f64`).
#[cfg(feature = "mpi")]
pub trait Element: Copy + mpi::datatype::Equivalence {}
/// An element type the processes can sum (`f32`, `f64`).
#[cfg(not(feature = "mpi"))]
pub trait Element: Copy {}
impl Element for f32 {}
impl Element for f64 {}

/// One process's place in the run.
pub struct World {
    rank: usize,
    size: usize,
    #[cfg(feature = "mpi")]
    mpi: Option<mpi_world::MpiWorld>,
    #[cfg(feature = "mpi")]
    watchdog: Option<watchdog::Watchdog>,
}

static WORLD: OnceLock<World> = OnceLock::new();

/// The run's processes: those [`init`] joined, or this process alone.
pub fn world() -> &'static World {
    WORLD.get_or_init(World::single)
}

/// How many processes a launcher (`mpirun`, `srun`, MPICH's `mpiexec`) started, from
/// the environment it gives them; `None` when none did.
pub fn launched_size() -> Option<usize> {
    // Per-process variables only: Slurm sets `SLURM_NTASKS` in a whole allocation, but
    // `SLURM_STEP_NUM_TASKS` only in the processes `srun` starts.
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_SIZE",
        "SLURM_STEP_NUM_TASKS",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

/// Whether this `dnnc` can join several processes (was built with the `mpi` feature).
pub const HAS_MPI: bool = cfg!(feature = "mpi");

/// Joins the run's processes: MPI's world when a launcher started this process
/// (and the `mpi` feature is on), else this process alone. Collectives that wait
/// longer than `timeout` end every process. Call once, before [`world`].
pub fn init(timeout: Duration) -> Result<&'static World, DistError> {
    let launched = launched_size().unwrap_or(1);
    let w = if launched > 1 {
        World::joined(timeout, launched)?
    } else {
        World::single()
    };
    WORLD
        .set(w)
        .map_err(|_| DistError::Init("the processes were joined twice".into()))?;
    Ok(world())
}

/// Ends MPI normally (every process must call it, after its last collective).
pub fn finalize() {
    #[cfg(feature = "mpi")]
    if let Some(w) = WORLD.get() {
        if let Some(d) = &w.watchdog {
            d.stop();
        }
        if w.mpi.is_some() {
            mpi_world::finalize();
        }
    }
}

/// Ends every process of the run with exit status `code` (after an error on one of
/// them); returns only in a run of one process.
pub fn abort(code: i32) {
    #[cfg(feature = "mpi")]
    if let Some(m) = WORLD.get().and_then(|w| w.mpi.as_ref()) {
        m.abort(code);
    }
    let _ = code;
}

impl World {
    fn single() -> World {
        World {
            rank: 0,
            size: 1,
            #[cfg(feature = "mpi")]
            mpi: None,
            #[cfg(feature = "mpi")]
            watchdog: None,
        }
    }

    #[cfg(feature = "mpi")]
    fn joined(timeout: Duration, _launched: usize) -> Result<World, DistError> {
        let m = mpi_world::MpiWorld::init()?;
        let (rank, size) = (m.rank(), m.size());
        Ok(World {
            rank,
            size,
            watchdog: (size > 1).then(|| watchdog::Watchdog::start(rank, size, timeout)),
            mpi: Some(m),
        })
    }

    #[cfg(not(feature = "mpi"))]
    fn joined(_timeout: Duration, launched: usize) -> Result<World, DistError> {
        Err(DistError::NoMpi { size: launched })
    }

    /// This process's rank, 0 to `size - 1`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// How many processes the run has.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this process writes the run's files and prints its progress.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Runs collective `f` (named `what` in a timeout's message) under the watchdog.
    #[cfg(feature = "mpi")]
    fn guarded<T>(&self, what: &'static str, f: impl FnOnce() -> T) -> T {
        match &self.watchdog {
            Some(d) => {
                d.arm(what);
                let t = f();
                d.disarm();
                t
            }
            None => f(),
        }
    }

    /// Sets `sum` to the element-wise sum of every process's `part` (of one length
    /// everywhere); in a run of one process, to `part`.
    pub fn sum<T: Element>(&self, part: &[T], sum: &mut [T], what: &'static str) {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            if self.size > 1 {
                return self.guarded(what, || m.sum(part, sum));
            }
        }
        let _ = what;
        sum.copy_from_slice(part);
    }

    /// Every process's `value`, by rank.
    pub fn gather_u64(&self, value: u64, what: &'static str) -> Vec<u64> {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            if self.size > 1 {
                return self.guarded(what, || m.gather_u64(value));
            }
        }
        let _ = what;
        vec![value]
    }

    /// Fails unless every process passes the same `value` (a hash of what `what`
    /// names), naming the first rank that differs from rank 0.
    pub fn check_same(&self, value: u64, what: &'static str) -> Result<(), DistError> {
        let all = self.gather_u64(value, what);
        match all.iter().position(|&v| v != all[0]) {
            None => Ok(()),
            Some(r) => Err(DistError::Mismatch(format!(
                "the {} processes do not hold the same {what}: rank {r} differs from rank 0",
                self.size
            ))),
        }
    }
}

/// The part of `n` items that rank `rank` of `size` takes: contiguous, the first
/// `n % size` ranks one more, so every item is taken once and the shards differ in
/// size by at most one (some are empty when `n < size`).
pub fn shard(n: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let (each, extra) = (n / size, n % size);
    let start = rank * each + rank.min(extra);
    start..start + each + usize::from(rank < extra)
}

/// FNV-1a, a stable 64-bit hash of bytes (the same in every process and build).
pub fn hash_bytes(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The start value of [`hash_bytes`].
pub const HASH_START: u64 = 0xcbf2_9ce4_8422_2325;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_item_once() {
        for n in 0..20 {
            for size in 1..6 {
                let mut next = 0;
                for r in 0..size {
                    let s = shard(n, r, size);
                    assert_eq!(s.start, next, "n {n} size {size} rank {r}");
                    assert!(s.len() == n / size || s.len() == n / size + 1);
                    next = s.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn one_process_is_its_own_world() {
        let w = World::single();
        assert_eq!((w.rank(), w.size(), w.is_root()), (0, 1, true));
        let mut v = [0.0f32; 2];
        w.sum(&[1.0, 2.0], &mut v, "a test");
        assert_eq!(v, [1.0, 2.0]);
        assert_eq!(w.gather_u64(7, "a test"), vec![7]);
        assert!(w.check_same(7, "a test").is_ok());
    }

    #[test]
    fn hashes_are_stable() {
        assert_eq!(hash_bytes(b"", HASH_START), HASH_START);
        assert_eq!(hash_bytes(b"a", HASH_START), 0xaf63_dc4c_8601_ec8c);
    }
}
