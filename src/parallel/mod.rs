//! Training on several devices: `DataParallel` (threads in one process) and, behind the
//! `mpi`/`nccl` features, `DistributedDataParallel`.

mod data_parallel;
mod scatter;

pub use data_parallel::DataParallel;
pub(crate) use data_parallel::from_spec as data_parallel_from_spec;
pub use scatter::chunk_sizes;
