//! The thread count of kiln's kernels, fixed once per process.
//!
//! `kiln train --threads N` and `kiln bench train --threads N` set it at start-up (through
//! `kiln::train::threads::set_threads`). A library user who sets nothing gets, on first use,
//! `RAYON_NUM_THREADS` if set, else rayon's global pool size — read once, never per op.
//! Results never depend on it: kernels only split work over independent outputs.

use gemm::Parallelism;
use std::sync::atomic::{AtomicUsize, Ordering};

/// 0 until set or first read.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Fixes the kernels' thread count (values below 1 count as 1).
pub fn set_compute_threads(threads: usize) {
    THREADS.store(threads.max(1), Ordering::Relaxed);
}

/// The kernels' thread count, fixed on first use when nobody set it.
pub fn compute_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => {
            let n = std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(rayon::current_num_threads)
                .max(1);
            // Another thread may have set it meanwhile; keep whichever came first.
            match THREADS.compare_exchange(0, n, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => n,
                Err(set) => set,
            }
        }
        n => n,
    }
}

/// The GEMM parallelism for the current thread count.
pub(crate) fn gemm_parallelism() -> Parallelism {
    match compute_threads() {
        1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// Whether a loop over `work` elements is worth splitting over threads.
pub(crate) fn parallel_for(work: usize) -> bool {
    work >= 1 << 15 && compute_threads() > 1
}
