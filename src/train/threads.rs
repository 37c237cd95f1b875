//! Sets the compute thread count once, at start-up.
//!
//! candle reads `RAYON_NUM_THREADS` on every matmul (and, when unset, re-reads the CPU list,
//! which costs a quarter of a small training step); rayon's global pool is sized once. Setting
//! both once, before any tensor work, makes the count fixed for the whole process — which a
//! bit-exact resume also needs.

use crate::error::{Error, Result};

/// Sets `RAYON_NUM_THREADS` and builds rayon's global pool with `threads` threads.
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
    // Building the global pool fails only if it already exists; the variable above still
    // decides candle's thread count, so that case is not an error.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .ok();
    Ok(())
}

/// The thread count candle will use (what `RAYON_NUM_THREADS` says, if set).
pub fn current_threads() -> usize {
    candle_core::utils::get_num_threads()
}
