//! Python pickle, the subset a weights file uses: an allow-list-only reader (protocols 2–5)
//! and a protocol-2 writer whose output PyTorch's `weights_only` unpickler accepts.

mod construct;
pub mod danger;
pub mod globals;
pub mod limits;
pub mod ops;
pub mod reader;
mod structural;
pub mod writer;

pub use reader::{
    Keyed, Mode, StorageSource, Unpickled, scan_globals, unpickle, unpickle_mode, unpickle_record,
    unpickle_with,
};
pub use writer::{Pickled, pickle};

#[cfg(test)]
mod tests;
