//! Autocast: `torch.autocast(device_type, dtype)` as a scoped, per-thread state.
//!
//! While an [`AutocastGuard`] is alive on a thread, the layers in PyTorch's
//! lower-precision list — `Linear`, `Conv2d` (and so everything built of them: the zoo, LeNet,
//! the MLP) — compute as PyTorch's autocast does: their input, weight and bias are rounded to
//! the autocast dtype (`bf16` or `f16`), the product is accumulated in f32, and the output is
//! rounded to the autocast dtype once. Everything else (activations, pooling, normalisation,
//! the loss, reductions) computes in f32 on those values, as PyTorch's f32-list ops (losses,
//! `softmax`, …) do.
//!
//! How: kiln keeps the values in f32 *carriers* holding numbers exactly representable in
//! the autocast dtype (`t.to_dtype(bf16).to_dtype(f32)`), so every kiln kernel keeps working
//! unchanged; since candle's `to_dtype` has a backward, the gradients flow back through
//! the same casts and are rounded to the autocast dtype exactly where PyTorch's bf16/f16
//! gradients are (the gradient of a layer's output, input and weight), then reach the f32
//! master weights as f32. Master weights and optimizer state never leave f32.
//!
//! The one difference from PyTorch: ops outside the lower-precision list that PyTorch runs
//! *in* the input's dtype (ReLU, max-pool, BatchNorm, residual adds on bf16 tensors) return
//! f32 here instead of rounding their result to bf16 (ReLU, max-pool and flatten are exact on
//! bf16 values anyway). f64 tensors are never cast (PyTorch's autocast casts only f32).
//!
//! ```
//! use kiln::amp::autocast;
//! use kiln::candle::{DType, Device, Tensor};
//! let x = Tensor::new(&[1.0f32 + 1.0 / 256.0], &Device::Cpu).unwrap();
//! {
//!     let _g = autocast::enter(Some(DType::BF16));
//!     let r = autocast::round(&x).unwrap(); // bf16 keeps 8 significant bits
//!     assert_eq!(r.to_vec1::<f32>().unwrap(), [1.0]);
//! }
//! // the guard is gone: nothing is rounded
//! assert_eq!(autocast::round(&x).unwrap().to_vec1::<f32>().unwrap(), [1.0 + 1.0 / 256.0]);
//! ```

use crate::error::{Context, Result};
use candle_core::{DType, Tensor};
use std::cell::Cell;

thread_local! {
    static AUTOCAST: Cell<Option<DType>> = const { Cell::new(None) };
}

/// The autocast dtype of this thread (`None`: autocast off, the default).
pub fn current() -> Option<DType> {
    AUTOCAST.with(Cell::get)
}

/// Restores the previous autocast state when dropped (guards nest).
#[must_use = "autocast is only on while the guard lives"]
#[derive(Debug)]
pub struct AutocastGuard {
    previous: Option<DType>,
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        AUTOCAST.with(|c| c.set(self.previous));
    }
}

/// Turns autocast to `dtype` on this thread (`None` turns it off, as
/// `torch.autocast(..., enabled=False)`) until the guard drops. Only `BF16` and `F16` are
/// lower-precision dtypes; any other dtype turns autocast off.
pub fn enter(dtype: Option<DType>) -> AutocastGuard {
    let dtype = dtype.filter(|d| matches!(d, DType::BF16 | DType::F16));
    let previous = AUTOCAST.with(|c| c.replace(dtype));
    AutocastGuard { previous }
}

/// Runs `f` with autocast set to `dtype` (see [`enter`]).
pub fn with<T>(dtype: Option<DType>, f: impl FnOnce() -> T) -> T {
    let _g = enter(dtype);
    f()
}

/// `t` rounded to the autocast dtype and carried as f32 (a differentiable cast both ways),
/// when autocast is on and `t` is f32; `t` itself otherwise.
///
/// # Errors
/// Errors of the casts.
pub fn round(t: &Tensor) -> Result<Tensor> {
    match current() {
        Some(dt) => round_to(t, dt),
        None => Ok(t.clone()),
    }
}

/// [`round`] of an optional tensor.
///
/// # Errors
/// Errors of the casts.
pub fn round_opt(t: Option<&Tensor>) -> Result<Option<Tensor>> {
    t.map(round).transpose()
}

/// `t` rounded to `dtype` and carried as f32, when `t` is f32.
///
/// # Errors
/// Errors of the casts.
pub fn round_to(t: &Tensor, dtype: DType) -> Result<Tensor> {
    if t.dtype() != DType::F32 {
        return Ok(t.clone());
    }
    t.to_dtype(dtype)
        .and_then(|h| h.to_dtype(DType::F32))
        .ctx("autocast")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn guards_nest_and_restore() {
        assert_eq!(current(), None);
        {
            let _a = enter(Some(DType::BF16));
            assert_eq!(current(), Some(DType::BF16));
            {
                let _b = enter(None);
                assert_eq!(current(), None);
                let _c = enter(Some(DType::F32));
                assert_eq!(current(), None, "f32 is no autocast dtype");
            }
            assert_eq!(current(), Some(DType::BF16));
            // another thread has its own state
            std::thread::spawn(|| assert_eq!(current(), None))
                .join()
                .unwrap();
        }
        assert_eq!(current(), None);
    }

    #[test]
    fn gradients_pass_through_the_casts_rounded() {
        let v = Var::from_tensor(&Tensor::new(&[3.0f32], &Device::Cpu).unwrap()).unwrap();
        let k = Tensor::new(&[1.0f32 + 1.0 / 512.0], &Device::Cpu).unwrap();
        let y = with(Some(DType::BF16), || round(v.as_tensor()))
            .unwrap()
            .mul(&k)
            .unwrap()
            .sum_all()
            .unwrap();
        let g = y.backward().unwrap();
        let gv = g.get(v.as_tensor()).unwrap();
        assert_eq!(gv.dtype(), DType::F32);
        // d/dv = k, rounded to bf16 on its way back: 1 + 2^-9 → 1
        assert_eq!(gv.to_vec1::<f32>().unwrap(), [1.0]);
        let f64t = Tensor::new(&[0.1f64], &Device::Cpu).unwrap();
        let r = with(Some(DType::F16), || round(&f64t)).unwrap();
        assert_eq!(r.to_vec1::<f64>().unwrap(), [0.1], "f64 is never cast");
    }
}
