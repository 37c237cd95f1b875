//! Mixed-precision training support (`torch.amp`): the [`GradScaler`] that keeps f16
//! gradients from underflowing, with PyTorch's update rule and `state_dict` layout;
//! [`autocast`], the scoped per-thread state the `Linear`/`Conv2d` forwards consult; and the
//! trainer's [`Precision`] (Lightning's `32`, `bf16-mixed`, `16-mixed`).

pub mod autocast;
pub mod grad_scaler;
pub mod precision;

pub use autocast::AutocastGuard;
pub use grad_scaler::{GradScaler, GradScalerConfig};
pub use precision::Precision;
