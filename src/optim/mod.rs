//! Optimizers and learning-rate schedulers with PyTorch's update rules and `state_dict`
//! layout.

pub mod adam;
pub mod grads;
pub mod group;
mod ops;
pub mod optimizer;
pub mod scheduler;
pub mod sgd;
mod state;

pub use adam::{Adam, AdamConfig, AdamW};
pub use grads::Grads;
pub use group::{GroupOptions, GroupSpec};
pub use optimizer::{Optimizer, ParamGroup};
pub use scheduler::{LrScheduler, SchedulerArgs};
pub use sgd::{Sgd, SgdConfig};
