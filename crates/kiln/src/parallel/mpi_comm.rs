//! The Open MPI communicator (feature `mpi`).

use super::comm::Communicator;
use crate::error::{Error, Result};
use mpi::Threading;
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use std::sync::Mutex;

struct Inner {
    // Dropping the universe calls MPI_Finalize, so it lives exactly as long as the
    // communicator.
    _universe: Universe,
    world: SimpleCommunicator,
}

/// `MPI_COMM_WORLD` of an `mpirun`-started job.
pub struct MpiComm {
    inner: Mutex<Inner>,
    rank: usize,
    size: usize,
}

// SAFETY: MPI is initialised with `Threading::Serialized` (checked in `init`), which allows
// calls from any thread as long as no two are concurrent; every call goes through the mutex.
unsafe impl Send for MpiComm {}
// SAFETY: as above — all access to the MPI handles is serialised by `inner`'s mutex.
unsafe impl Sync for MpiComm {}

impl MpiComm {
    /// Initialises MPI (once per process) and opens the world communicator.
    ///
    /// # Errors
    /// `K0802` when MPI was already initialised or lacks serialized-threading support.
    pub fn init() -> Result<Self> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::Distributed {
                detail: "MPI is already initialised in this process".into(),
            })?;
        if threading < Threading::Serialized {
            return Err(Error::Distributed {
                detail: format!(
                    "the MPI library provides threading level {threading:?}; kiln needs Serialized"
                ),
            });
        }
        let world = universe.world();
        let rank = world.rank().max(0) as usize;
        let size = world.size().max(1) as usize;
        Ok(MpiComm {
            inner: Mutex::new(Inner {
                _universe: universe,
                world,
            }),
            rank,
            size,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Communicator for MpiComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.size
    }
    fn backend(&self) -> &'static str {
        "mpi"
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        let send = buf.to_vec();
        self.lock()
            .world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        let send = buf.to_vec();
        self.lock()
            .world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }
    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
        if root >= self.size {
            return Err(Error::Distributed {
                detail: format!("broadcast root {root} is not a rank of {}", self.size),
            });
        }
        let g = self.lock();
        g.world.process_at_rank(root as i32).broadcast_into(buf);
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        self.lock().world.barrier();
        Ok(())
    }
}
