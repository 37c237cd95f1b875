//! Optimizers and learning-rate schedulers with PyTorch's update rules and `state_dict`
//! layout.

pub mod grads;
pub mod optimizer;

pub use grads::Grads;
pub use optimizer::{Optimizer, ParamGroup};
