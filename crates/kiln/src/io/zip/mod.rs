//! The zip container of PyTorch files: a bounds-checked reader and an aligned STORED writer.

pub mod reader;
pub mod writer;

pub use reader::{
    Entry, FileSource, SliceSource, Source, Verified, ZipIndex, check_crc, read_entry, verify_all,
};
pub use writer::{ALIGNMENT, ZipWriter};
