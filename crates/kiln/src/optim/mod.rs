//! Optimizers and learning-rate schedulers with PyTorch's update rules and `state_dict`
//! layout.
//!
//! [`Sgd`], [`Adam`], [`AdamW`], [`RMSprop`], [`Adagrad`], [`Adamax`], [`NAdam`] and
//! [`RAdam`] follow torch 2.15's single-tensor (`foreach=False`) code line by line (the last
//! five share one implementation, `rule.rs`, and differ only in their update and state). On
//! the CPU they fuse multiply-adds where PyTorch's vectorized kernels do, so given the same
//! gradients their updates match PyTorch's to the last bits (`tests/optim_parity.rs` against
//! fixtures from `scripts/gen_optim_fixtures.py`; the fixtures record the CPU capability,
//! since PyTorch's own kernels round differently on some CPUs: element-wise differences of up
//! to ~7e-6 relative over 20 steps, most elements bit-exact).
//! `state_dict()` produces PyTorch's nested layout with its key order and Python types, and
//! `load_state_dict()` accepts what PyTorch writes.
//!
//! Differences from PyTorch, on purpose:
//! - an optimizer whose parameters are all frozen is `K0601` (PyTorch accepts it); every
//!   group's settings are validated (PyTorch checks only the defaults) and NaN is rejected;
//! - a group option the optimizer does not have is `K0003` (PyTorch stores the stray key);
//! - overridden group keys are written first in the optimizer's own key order (PyTorch keeps
//!   the order of the user's dict); a loaded group keeps its saved order;
//! - groups built by kiln carry no `param_names` (like `SGD(model.parameters())`); a loaded
//!   `param_names` is kept and written back;
//! - `foreach`, `fused`, `capturable`, `differentiable` are kept as loaded but the math is
//!   always the single-tensor path;
//! - loading checks state keys and shapes (`K0603`), where PyTorch would fail at the next
//!   step or silently keep foreign keys;
//! - off the CPU (and for f16/bf16) candle rounds `a + alpha * b` twice where PyTorch's
//!   kernels fuse it: last-bit differences per step.

pub mod adagrad;
pub mod adam;
pub mod adamax;
mod fused_sgd;
pub mod grads;
pub mod group;
pub mod nadam;
mod ops;
pub mod optimizer;
pub mod radam;
pub mod rmsprop;
mod rule;
pub mod scheduler;
pub mod sgd;
mod state;
#[cfg(test)]
mod test_support;

pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig, AdamW};
pub use adamax::{Adamax, AdamaxConfig};
pub use grads::Grads;
pub use group::{GroupOptions, GroupSpec};
pub use nadam::{NAdam, NAdamConfig};
pub use optimizer::{Optimizer, ParamGroup};
pub use radam::{RAdam, RAdamConfig};
pub use rmsprop::{RMSprop, RMSpropConfig};
pub use scheduler::{LrScheduler, SchedulerArgs};
pub use sgd::{Sgd, SgdConfig};
