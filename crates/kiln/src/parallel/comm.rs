//! Collective communication for DistributedDataParallel: a small trait over existing
//! engines — Open MPI (feature `mpi`), NCCL (feature `nccl`, bootstrapped over MPI) — plus
//! an in-process group of threads used by tests and a single-process stub. kiln does no
//! networking of its own.

use crate::error::{Error, Result};
use std::sync::{Arc, Barrier, Mutex};

/// The collectives DDP needs. All ranks must call each collective in the same order with
/// buffers of the same length.
pub trait Communicator: Send + Sync {
    /// This process's rank, `0..world_size`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn world_size(&self) -> usize;
    /// The engine's name (`mpi`, `nccl`, `threads`, `single`).
    fn backend(&self) -> &'static str;
    /// Element-wise sum over all ranks, in place (same result on every rank).
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()>;
    /// Element-wise sum over all ranks for f64 buffers.
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Copies `root`'s bytes into every rank's `buf` (all ranks pass the same length).
    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()>;
    /// Waits until every rank arrives.
    fn barrier(&self) -> Result<()>;
}

/// World size 1: every collective is the identity.
#[derive(Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn backend(&self) -> &'static str {
        "single"
    }
    fn all_reduce_sum(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_f64(&self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _buf: &mut [u8], _root: usize) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

struct Shared {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<u8>>>,
}

/// Ranks as threads of one process (for tests and for checking DDP logic without MPI).
/// Reductions sum in rank order, so results are deterministic and identical on every rank.
#[derive(Clone)]
pub struct ThreadGroup {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

impl ThreadGroup {
    /// One communicator per rank for a group of `size` threads.
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        let shared = Arc::new(Shared {
            barrier: Barrier::new(size.max(1)),
            slots: Mutex::new(vec![Vec::new(); size.max(1)]),
        });
        (0..size.max(1))
            .map(|rank| ThreadGroup {
                rank,
                size: size.max(1),
                shared: shared.clone(),
            })
            .collect()
    }

    fn exchange(&self, mine: Vec<u8>) -> Vec<Vec<u8>> {
        {
            let mut slots = self.shared.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots[self.rank] = mine;
        }
        self.shared.barrier.wait();
        let all = self
            .shared
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.shared.barrier.wait();
        all
    }
}

fn check_len(got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::Distributed {
            detail: format!("ranks passed buffers of different lengths ({got} vs {want})"),
        });
    }
    Ok(())
}

impl Communicator for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.size
    }
    fn backend(&self) -> &'static str {
        "threads"
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        let mine: Vec<u8> = buf.iter().flat_map(|x| x.to_le_bytes()).collect();
        let all = self.exchange(mine);
        let mut sum = vec![0f32; buf.len()];
        for b in &all {
            check_len(b.len(), buf.len() * 4)?;
            for (s, c) in sum.iter_mut().zip(b.chunks_exact(4)) {
                *s += f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        buf.copy_from_slice(&sum);
        Ok(())
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        let mine: Vec<u8> = buf.iter().flat_map(|x| x.to_le_bytes()).collect();
        let all = self.exchange(mine);
        let mut sum = vec![0f64; buf.len()];
        for b in &all {
            check_len(b.len(), buf.len() * 8)?;
            for (s, c) in sum.iter_mut().zip(b.chunks_exact(8)) {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                *s += f64::from_le_bytes(a);
            }
        }
        buf.copy_from_slice(&sum);
        Ok(())
    }
    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
        let all = self.exchange(buf.to_vec());
        let src = all.get(root).ok_or_else(|| Error::Distributed {
            detail: format!("broadcast root {root} is not a rank of {}", self.size),
        })?;
        check_len(src.len(), buf.len())?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        self.shared.barrier.wait();
        Ok(())
    }
}

/// The rank and world size a launcher (mpirun / srun / torchrun-style env) announces, if any.
pub fn launcher_env() -> Option<(String, usize, usize)> {
    let get = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    for (name, r, s) in [
        (
            "Open MPI (mpirun)",
            "OMPI_COMM_WORLD_RANK",
            "OMPI_COMM_WORLD_SIZE",
        ),
        ("MPICH/PMI (mpirun)", "PMI_RANK", "PMI_SIZE"),
        ("PMIx", "PMIX_RANK", "PMIX_SIZE"),
        ("Slurm (srun)", "SLURM_PROCID", "SLURM_NTASKS"),
    ] {
        if let (Some(rank), Some(size)) = (get(r), get(s)) {
            return Some((name.to_string(), rank, size));
        }
    }
    None
}

/// Opens the communicator for `backend` (`"mpi"` or `"nccl"`).
///
/// # Errors
/// `K0801` when kiln was built without the backend's feature (naming the launcher detected);
/// `K0802` when the engine fails to start.
pub fn connect(backend: &str) -> Result<Arc<dyn Communicator>> {
    #[cfg_attr(all(feature = "mpi", feature = "nccl"), allow(unused_variables))]
    let launcher = launcher_env()
        .map(|(n, r, s)| format!(" (started by {n} as rank {r} of {s})"))
        .unwrap_or_default();
    match backend {
        "mpi" => {
            #[cfg(feature = "mpi")]
            {
                Ok(Arc::new(super::mpi_comm::MpiComm::init()?))
            }
            #[cfg(not(feature = "mpi"))]
            {
                Err(Error::BackendNotBuilt {
                    backend: "mpi".into(),
                    launcher,
                })
            }
        }
        "nccl" => {
            #[cfg(feature = "nccl")]
            {
                Ok(Arc::new(super::nccl_comm::NcclComm::init()?))
            }
            #[cfg(not(feature = "nccl"))]
            {
                Err(Error::BackendNotBuilt {
                    backend: "nccl".into(),
                    launcher,
                })
            }
        }
        other => Err(Error::invalid("distributed backend", other, "mpi or nccl")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_group_reduces_in_rank_order_and_broadcasts() {
        let group = ThreadGroup::new(3);
        let results: Vec<(Vec<f32>, Vec<u8>)> = std::thread::scope(|s| {
            let hs: Vec<_> = group
                .iter()
                .map(|c| {
                    s.spawn(move || {
                        let mut v = vec![c.rank() as f32 + 1.0, 0.5];
                        c.all_reduce_sum(&mut v).unwrap();
                        let mut b = vec![c.rank() as u8; 4];
                        c.broadcast(&mut b, 2).unwrap();
                        c.barrier().unwrap();
                        (v, b)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (v, b) in results {
            assert_eq!(v, vec![6.0, 1.5]);
            assert_eq!(b, vec![2, 2, 2, 2]);
        }
    }

    #[cfg(not(feature = "mpi"))]
    #[test]
    fn mpi_without_feature_is_k0801() {
        let e = connect("mpi").err().unwrap();
        assert_eq!(e.code(), "K0801");
        assert_eq!(connect("gloo").err().unwrap().code(), "K0003");
    }
}
