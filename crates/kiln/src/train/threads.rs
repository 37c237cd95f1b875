//! Sets the compute thread count once, at start-up.
//!
//! kiln's kernels (`kiln::nn::ops`) read their thread count from a value fixed once; candle's
//! remaining ops read `RAYON_NUM_THREADS` on every matmul (and, when unset, re-read the CPU
//! list, which cost a quarter of a small training step); rayon's global pool is sized once.
//! Setting all three once, before any tensor work, fixes the count for the whole process.
//! Results do not depend on it (kiln's kernels and the GEMM never split a sum over threads).

use crate::error::{Error, Result};

/// Sets `RAYON_NUM_THREADS`, kiln's kernel thread count
/// ([`crate::nn::ops::set_compute_threads`]) and rayon's global pool to `threads` threads.
///
/// If rayon's pool was already built with another size, the environment variable still
/// governs candle's kernels.
///
/// # Errors
/// `K0003` for `threads == 0`.
///
/// # Safety
/// Writes the process environment: call it first thing in `main`, while no other thread
/// exists (no other thread may read or write the environment concurrently).
pub unsafe fn set_threads(threads: usize) -> Result<()> {
    if threads == 0 {
        return Err(Error::invalid("threads", 0, "at least 1"));
    }
    // SAFETY: the caller guarantees no other thread touches the environment (see # Safety).
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    crate::nn::ops::set_compute_threads(threads);
    // Building the global pool fails only if it already exists; the variable above still
    // decides candle's thread count, so that case is not an error.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .ok();
    Ok(())
}

/// The thread count kiln's kernels use (fixed on first use if nobody set it).
pub fn current_threads() -> usize {
    crate::nn::ops::compute_threads()
}
