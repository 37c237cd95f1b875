//! The NCCL communicator (feature `nccl`): gradients are summed by NCCL on the GPUs, the
//! NCCL unique id is handed from rank 0 to the others through MPI (which also provides
//! `broadcast` of host bytes and `barrier`), as PyTorch does with its MPI bootstrap.
//!
//! One process per GPU: rank `r` uses `cuda:(local_rank % device_count)`, the local rank taken
//! from the launcher (`OMPI_COMM_WORLD_LOCAL_RANK`, `MPI_LOCALRANKID`, `SLURM_LOCALID`,
//! `LOCAL_RANK`).

use super::comm::Communicator;
use super::mpi_comm::MpiComm;
use crate::error::{Error, Result};
use candle_core::cuda_backend::cudarc;
use cudarc::driver::CudaStream;
use cudarc::nccl::{Comm, Id, ReduceOp};
use std::sync::{Arc, Mutex};

/// An NCCL communicator over the ranks of an MPI job.
pub struct NcclComm {
    mpi: MpiComm,
    comm: Mutex<Comm>,
    stream: Arc<CudaStream>,
    ordinal: usize,
}

// SAFETY: the NCCL communicator is only used under its mutex (one collective at a time, on
// the stream it was created with); the MPI part is serialised by `MpiComm` itself.
unsafe impl Send for NcclComm {}
// SAFETY: as above.
unsafe impl Sync for NcclComm {}

fn nccl_err(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Distributed {
        detail: format!("NCCL {what} failed: {e:?}"),
    }
}

/// The launcher's local rank of this process (0 when none is set).
pub fn local_rank() -> usize {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "SLURM_LOCALID",
        "LOCAL_RANK",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok()?.parse().ok())
    .unwrap_or(0)
}

impl NcclComm {
    /// Starts MPI, picks this rank's GPU and creates the NCCL communicator.
    ///
    /// # Errors
    /// `K0303` without a usable GPU; `K0802` when MPI or NCCL fail to start.
    pub fn init() -> Result<Self> {
        let mpi = MpiComm::init()?;
        let count = crate::device::cuda::device_count();
        if count == 0 {
            return Err(Error::CudaUnavailable {
                requested: "cuda (NCCL backend)".into(),
                reason: crate::device::cuda::unavailable_reason()
                    .unwrap_or_else(|| "no CUDA device is visible".into()),
            });
        }
        let ordinal = local_rank() % count;
        let device = crate::device::cuda::device(ordinal)?;
        let candle_core::Device::Cuda(cuda) = &device else {
            return Err(Error::Distributed {
                detail: format!("cuda:{ordinal} did not give a CUDA device"),
            });
        };
        let stream = cuda.cuda_stream();
        let mut bytes = [0u8; 128];
        if mpi.rank() == 0 {
            let id = Id::new().map_err(|e| nccl_err("unique id", e))?;
            for (b, c) in bytes.iter_mut().zip(id.internal()) {
                *b = *c as u8;
            }
        }
        mpi.broadcast(&mut bytes, 0)?;
        let mut internal = [0 as std::ffi::c_char; 128];
        for (c, b) in internal.iter_mut().zip(bytes) {
            *c = b as std::ffi::c_char;
        }
        let comm = Comm::from_rank(
            stream.clone(),
            mpi.rank(),
            mpi.world_size(),
            Id::uninit(internal),
        )
        .map_err(|e| nccl_err("communicator init", e))?;
        Ok(NcclComm {
            mpi,
            comm: Mutex::new(comm),
            stream,
            ordinal,
        })
    }

    /// The GPU this rank computes on.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    fn all_reduce<T>(&self, buf: &mut [T]) -> Result<()>
    where
        T: cudarc::driver::DeviceRepr + cudarc::nccl::NcclType + Copy + Default,
    {
        if buf.is_empty() {
            return Ok(());
        }
        let comm = self.comm.lock().unwrap_or_else(|p| p.into_inner());
        let mut dev = self
            .stream
            .clone_htod(buf)
            .map_err(|e| nccl_err("host-to-device copy", e))?;
        comm.all_reduce_in_place(&mut dev, &ReduceOp::Sum)
            .map_err(|e| nccl_err("all-reduce", e))?;
        let host = self
            .stream
            .clone_dtoh(&dev)
            .map_err(|e| nccl_err("device-to-host copy", e))?;
        buf.copy_from_slice(&host);
        Ok(())
    }
}

impl Communicator for NcclComm {
    fn rank(&self) -> usize {
        self.mpi.rank()
    }
    fn world_size(&self) -> usize {
        self.mpi.world_size()
    }
    fn backend(&self) -> &'static str {
        "nccl"
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        self.all_reduce(buf)
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.all_reduce(buf)
    }
    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
        self.mpi.broadcast(buf, root)
    }
    fn barrier(&self) -> Result<()> {
        self.mpi.barrier()
    }
}
