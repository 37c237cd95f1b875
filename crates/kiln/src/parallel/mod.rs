//! Training on several devices: `DataParallel` (threads in one process) and
//! `DistributedDataParallel` (one process per device over MPI or NCCL).

pub mod comm;
mod data_parallel;
mod ddp;
#[cfg(feature = "mpi")]
mod mpi_comm;
#[cfg(feature = "nccl")]
mod nccl_comm;
mod sampler;
mod scatter;

pub use comm::{Communicator, SingleProcess, ThreadGroup, connect, launcher_env};
pub use data_parallel::DataParallel;
pub(crate) use data_parallel::from_spec as data_parallel_from_spec;
pub use ddp::{DdpOptions, DistributedDataParallel, NoSync};
#[cfg(feature = "mpi")]
pub use mpi_comm::MpiComm;
#[cfg(feature = "nccl")]
pub use nccl_comm::{NcclComm, local_rank};
pub use sampler::DistributedSampler;
pub use scatter::chunk_sizes;
