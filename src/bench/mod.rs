//! Benchmarks run by `kiln bench …` (not tests; figures go to docs/BENCHMARKS.md).

pub mod checkpoint;
pub mod data;
pub mod freeze;
pub mod io;
pub mod parallel;
