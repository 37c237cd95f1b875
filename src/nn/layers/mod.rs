//! The layers kiln ships, with PyTorch's names, defaults and state-dict keys.

pub(crate) mod batchnorm;
pub(crate) mod conv;
mod dropout;
mod linear;
pub(crate) mod pool;
pub(crate) mod sequential;
mod simple;

pub use batchnorm::{BatchNorm, BatchNormKind};
pub use conv::{Conv2d, Conv2dConfig};
pub use dropout::Dropout;
pub use linear::Linear;
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use sequential::Sequential;
pub use simple::{Flatten, Identity, ReLU};

use crate::device::device_name;
use crate::error::{Error, Result};
use candle_core::Tensor;

/// Checks that an input sits on the weights' device and has their dtype.
pub(crate) fn check_input(module: &str, x: &Tensor, weight: &Tensor) -> Result<()> {
    if !x.device().same_device(weight.device()) {
        return Err(Error::DeviceMismatch {
            module: module.to_string(),
            weights: device_name(weight.device()),
            input: device_name(x.device()),
        });
    }
    if x.dtype() != weight.dtype() {
        return Err(Error::DtypeMismatch {
            module: module.to_string(),
            weights: format!(
                "{:?} ({})",
                weight.dtype(),
                crate::device::torch_dtype_word(weight.dtype())
            ),
            input: format!(
                "{:?} ({})",
                x.dtype(),
                crate::device::torch_dtype_word(x.dtype())
            ),
        });
    }
    Ok(())
}

/// `as_any` for a concrete module type.
macro_rules! impl_as_any {
    () => {
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    };
}
pub(crate) use impl_as_any;

/// A training-mode flag with interior mutability (modules are shared immutably).
#[derive(Debug)]
pub(crate) struct ModeFlag(std::sync::atomic::AtomicBool);

impl Default for ModeFlag {
    fn default() -> Self {
        ModeFlag(std::sync::atomic::AtomicBool::new(true))
    }
}

impl ModeFlag {
    pub(crate) fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
    pub(crate) fn set(&self, v: bool) {
        self.0.store(v, std::sync::atomic::Ordering::Relaxed)
    }
}
