//! MPI's world communicator through rsmpi: joining, the three collectives a
//! data-parallel run needs, and ending.

use std::sync::Mutex;

use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;

use crate::DistError;

/// MPI ends when the universe is dropped: [`finalize`] takes it from here.
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

pub struct MpiWorld {
    rank: usize,
    size: usize,
}

impl MpiWorld {
    pub fn init() -> Result<MpiWorld, DistError> {
        // Only the main thread calls MPI (the kernels' threads never do).
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| DistError::Init("MPI was initialised already".into()))?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        *UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()) = Some(universe);
        Ok(MpiWorld { rank, size })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    fn comm(&self) -> SimpleCommunicator {
        SimpleCommunicator::world()
    }

    pub fn sum<T: crate::Element>(&self, part: &[T], sum: &mut [T]) {
        self.comm()
            .all_reduce_into(part, sum, SystemOperation::sum());
    }

    pub fn gather_u64(&self, value: u64) -> Vec<u64> {
        let mut all = vec![0u64; self.size];
        self.comm().all_gather_into(&value, &mut all[..]);
        all
    }

    pub fn abort(&self, code: i32) -> ! {
        self.comm().abort(code)
    }
}

/// Ends MPI (once; later calls do nothing).
pub fn finalize() {
    let u = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(u);
}
