//! Benchmarks run by `kiln bench …`, side by side with PyTorch.

pub mod io;
