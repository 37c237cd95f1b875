//! Sets the compute thread count once, at start-up.
//!
//! kiln's kernels (`kiln::nn::ops`) read their thread count from a value fixed once; candle's
//! remaining ops read `RAYON_NUM_THREADS` on every matmul (and, when unset, re-read the CPU
//! list, which cost a quarter of a small training step); rayon's global pool is sized once.
//! Setting all three once, before any tensor work, fixes the count for the whole process.
//! Results do not depend on it (kiln's kernels and the GEMM never split a sum over threads).

use crate::error::{Error, Result};

/// The most compute threads kiln accepts: 4 per available core, and never more than 1024.
/// More only adds scheduling and memory (each thread has its own stack and GEMM buffers); a
/// `--threads 100000` is a typo, refused before a single thread is spawned.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (4 * cores).clamp(4, 1024)
}

/// `K0003` unless `1 <= threads <= max_threads()`.
///
/// # Errors
/// `K0003` naming the value and the bound.
pub fn check_threads(threads: usize) -> Result<()> {
    let max = max_threads();
    if threads == 0 || threads > max {
        return Err(Error::invalid(
            "threads",
            threads,
            format!("between 1 and {max} (4 per core of this machine)"),
        ));
    }
    Ok(())
}

/// Sets `RAYON_NUM_THREADS`, kiln's kernel thread count
/// ([`crate::nn::ops::set_compute_threads`]) and rayon's global pool to `threads` threads.
///
/// If rayon's pool was already built with another size, the environment variable still
/// governs candle's kernels.
///
/// # Errors
/// `K0003` for `threads == 0` or above [`max_threads`].
///
/// # Safety
/// Writes the process environment: call it first thing in `main`, while no other thread
/// exists (no other thread may read or write the environment concurrently).
pub unsafe fn set_threads(threads: usize) -> Result<()> {
    check_threads(threads)?;
    // SAFETY: the caller guarantees no other thread touches the environment (see # Safety).
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    crate::nn::ops::set_compute_threads(threads);
    // Building the global pool fails only if it already exists; the variable above still
    // decides candle's thread count, so that case is not an error.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .ok();
    keep_freed_memory();
    Ok(())
}

/// Makes the C allocator keep freed memory for reuse instead of returning it to the system.
///
/// A training step allocates and frees the same large buffers (activations, column matrices,
/// gradients: tens of MB each at 224×224) every step. glibc serves every block above its mmap
/// threshold (at most 32 MB) with a fresh `mmap` and unmaps it on free, so each step paid a
/// page fault and a kernel zero-fill per 4 KiB of those buffers again (a ResNet-18 step at
/// 224×224, batch 8: about 270 000 page faults a step). With mmap off and no trimming,
/// freed blocks stay in the heap and the next step reuses them. The process keeps its peak
/// heap until it exits. Called by [`set_threads`] (start-up); a no-op off glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is thread-safe in glibc and
    // takes plain integers.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// The thread count kiln's kernels use (fixed on first use if nobody set it).
pub fn current_threads() -> usize {
    crate::nn::ops::compute_threads()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_are_bounded() {
        assert!(check_threads(1).is_ok());
        assert!(check_threads(max_threads()).is_ok());
        for bad in [0, max_threads() + 1, 100_000, usize::MAX] {
            let e = check_threads(bad).unwrap_err();
            assert_eq!(e.code(), "K0003");
            assert!(e.to_string().contains(&bad.to_string()), "{e}");
        }
    }
}
