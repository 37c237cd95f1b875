//! Python pickle, the subset a weights file uses: an allow-list-only reader (protocols 2–5)
//! and a protocol-2 writer whose output PyTorch's `weights_only` unpickler accepts.

mod construct;
pub mod globals;
pub mod limits;
pub mod ops;
pub mod reader;
pub mod writer;

pub use reader::{StorageSource, Unpickled, unpickle, unpickle_with};
pub use writer::{Pickled, pickle};

#[cfg(test)]
mod tests;
