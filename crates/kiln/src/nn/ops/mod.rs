//! kiln's own CPU kernels, as candle custom ops with their own backward.
//!
//! candle 0.11's generic CPU kernels lose most of a small training step to overheads: a
//! convolution does one tiny matmul per image, its input gradient is a transposed convolution
//! of tiny dot products (computed even for the data tensor), bias gradients go through a
//! generic sum over axes, max-pool backward is a chain of seven ops, and every op's gradient
//! costs a `zeros_like` plus an `add` in candle's gradient store. kiln owns its layers, so it
//! owns their kernels here (see `docs/BENCHMARKS.md` for the profiles that guided each one):
//!
//! - [`conv2d()`]: batched im2col + one GEMM per group forward; GEMM weight and input
//!   gradients; no input gradient for a tensor that needs none (the data), no weight gradient
//!   for a frozen weight.
//! - [`linear()`]: `x Wᵀ + b` as one GEMM into a bias-filled output; strided GEMM gradients.
//! - [`max_pool2d()`]: keeps the arg-max of each window for the backward.
//! - [`relu()`]: PyTorch's gradient (zero where the output is not positive) in one pass.
//! - [`cross_entropy()`]: log-softmax + NLL (mean) forward and backward in one op.
//! - [`batch_norm_train()`]: training-mode batch normalisation (batch statistics) in one op.
//!
//! Every kernel handles `f32` and `f64` CPU tensors; the callers (layers, losses) fall back
//! to candle's ops for other dtypes and devices, so CUDA keeps working. Kernels are
//! deterministic and their results do not depend on the thread count: work is split only
//! over independent outputs, never inside a sum.

mod batch_norm;
mod conv2d;
mod cpu;
mod cross_entropy;
mod gemm;
mod im2col;
mod linear;
mod max_pool;
mod reduce;
mod relu;
mod threads;

pub use batch_norm::{BatchStats, batch_norm_train};
pub use conv2d::conv2d;
pub use cross_entropy::cross_entropy;
pub use linear::linear;
pub use max_pool::max_pool2d;
pub use relu::relu;
pub use threads::{compute_threads, set_compute_threads};

use candle_core::{DType, Tensor};

/// Whether kiln's kernels handle these tensors: all on the CPU, all `f32` or all `f64`.
pub fn supported(ts: &[&Tensor]) -> bool {
    let Some(first) = ts.first() else {
        return false;
    };
    matches!(first.dtype(), DType::F32 | DType::F64)
        && ts
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == first.dtype())
}

#[cfg(test)]
mod test_util;
