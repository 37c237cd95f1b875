//! Learning-rate schedulers with PyTorch's chainable formulas and `state_dict` layout.
//!
//! A scheduler does not hold the optimizer (Rust's borrow rules); pass it to every
//! [`LrScheduler::step`]. Construction attaches to the optimizer like PyTorch's constructor:
//! each group gets `initial_lr`, and the initial step runs (`last_epoch` becomes 0).
//!
//! ```
//! # use kiln::optim::{Sgd, SgdConfig, Optimizer, scheduler::{LrScheduler, StepLr}};
//! # use kiln::Param;
//! # use candle_core::{Tensor, Device};
//! let w = Param::new(&Tensor::new(&[1f32], &Device::Cpu)?, true)?;
//! let mut opt = Sgd::new(vec![("w".into(), w)], SgdConfig::lr(0.1))?;
//! let mut sched = StepLr::new(&mut opt, 2, 0.5)?;
//! for _ in 0..4 {
//!     // opt.step(&grads)?;
//!     sched.step(&mut opt)?;
//! }
//! assert_eq!(sched.get_last_lr(), &[0.025]);
//! assert_eq!(opt.param_groups()[0].initial_lr, Some(0.1));
//! # Ok::<(), kiln::Error>(())
//! ```

mod base;
mod build;
mod cosine;
mod exponential;
mod multistep;
mod step;

pub use build::{SCHEDULER_NAMES, SchedulerArgs, build};
pub use cosine::CosineAnnealingLr;
pub use exponential::ExponentialLr;
pub use multistep::MultiStepLr;
pub use step::StepLr;

use super::Optimizer;
use crate::error::Result;
use crate::io::Value;

/// A learning-rate scheduler (PyTorch's `LRScheduler`).
pub trait LrScheduler: Send {
    /// PyTorch's class name (`"StepLR"`, `"CosineAnnealingLR"`, …).
    fn name(&self) -> &'static str;

    /// Advances one epoch and writes the new rates into `opt`'s groups (call it after
    /// `opt.step`, as in PyTorch).
    ///
    /// # Errors
    /// `K0003` when a scheduler that needs one rate per group (cosine) finds the optimizer
    /// with another number of groups than when it was attached.
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()>;

    /// The rates the last step set, one per group (PyTorch's `get_last_lr()`).
    fn get_last_lr(&self) -> &[f64];

    /// The index of the last epoch (0 right after construction).
    fn last_epoch(&self) -> i64;

    /// PyTorch's `scheduler.state_dict()`: the scheduler's `__dict__` minus the optimizer,
    /// in its key order (own settings, `base_lrs`, `last_epoch`, `_step_count`,
    /// `_is_initial`, `_get_lr_called_within_step`, `_last_lr`). Rates are written as
    /// floats (PyTorch would keep an `int` learning rate an `int`).
    fn state_dict(&self) -> Value;

    /// Loads a state dict from kiln or PyTorch (its settings replace this scheduler's, as
    /// PyTorch's `__dict__.update` does; the optimizer's rates come from the optimizer's own
    /// state dict).
    ///
    /// # Errors
    /// `K0603` when the dict is not this scheduler's state (a key missing or mistyped).
    fn load_state_dict(&mut self, state: &Value) -> Result<()>;

    /// Takes in the parameter group just appended to `opt` (gradual unfreezing): its current
    /// rate becomes its `initial_lr` and base rate, and from the next `step` on it follows
    /// the schedule from there (every kiln scheduler is chainable, so the new group is scaled
    /// by the same factors as the others). PyTorch leaves such a group out of `base_lrs`.
    ///
    /// # Errors
    /// `K0003` unless `opt` has exactly one group more than the scheduler knows; the provided
    /// implementation answers `K0005`.
    fn add_param_group(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let _ = opt;
        Err(crate::Error::Unsupported {
            what: format!("adding a parameter group under {}", self.name()),
        })
    }
}

#[cfg(test)]
mod tests;
