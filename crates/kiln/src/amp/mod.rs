//! Mixed-precision training support (`torch.amp`): the [`GradScaler`] that keeps f16
//! gradients from underflowing, with PyTorch's update rule and `state_dict` layout.

pub mod grad_scaler;

pub use grad_scaler::{GradScaler, GradScalerConfig};
