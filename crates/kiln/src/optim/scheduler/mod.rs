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
mod composite;
mod constant;
mod cosine;
mod exponential;
mod interval;
mod linear;
mod multistep;
mod onecycle;
mod plateau;
mod poly;
mod step;
mod warm_restarts;

pub use build::{SCHEDULER_NAMES, SchedulerArgs, build};
pub use composite::{ChainedScheduler, SequentialLr};
pub use constant::ConstantLr;
pub use cosine::CosineAnnealingLr;
pub use exponential::ExponentialLr;
pub use interval::{Interval, PerStep, after_epoch, after_update};
pub use linear::LinearLr;
pub use multistep::MultiStepLr;
pub use onecycle::{AnnealStrategy, OneCycleConfig, OneCycleLr};
pub use plateau::{MinLr, PlateauConfig, PlateauMode, ReduceLrOnPlateau, ThresholdMode};
pub use poly::PolynomialLr;
pub use step::StepLr;
pub use warm_restarts::CosineAnnealingWarmRestarts;

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

    /// Whether [`step_with_metric`](LrScheduler::step_with_metric) is the step to call
    /// (`ReduceLROnPlateau`, which steps on a validation metric).
    fn needs_metric(&self) -> bool {
        false
    }

    /// One step given a metric (PyTorch's `ReduceLROnPlateau.step(metrics)`); the provided
    /// implementation ignores the metric and calls [`step`](LrScheduler::step).
    ///
    /// # Errors
    /// As [`step`](LrScheduler::step).
    fn step_with_metric(&mut self, opt: &mut dyn Optimizer, metric: f64) -> Result<()> {
        let _ = metric;
        self.step(opt)
    }

    /// PyTorch's `_initial_step()`: `_step_count = 0` and one step in initial mode (what
    /// `SequentialLR` runs on the scheduler that starts the sequence).
    ///
    /// # Errors
    /// As [`step`](LrScheduler::step); the provided implementation answers `K0005`.
    fn initial_step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let _ = opt;
        Err(crate::Error::Unsupported {
            what: format!("{} inside SequentialLR", self.name()),
        })
    }

    /// PyTorch's `_update_lr(epoch)`: `last_epoch = epoch` and the rates from the closed
    /// form (`_get_closed_form_lr`, or `get_lr` for a scheduler without one), without
    /// counting a step (what `SequentialLR` does at a milestone, with epoch 0).
    ///
    /// # Errors
    /// `K0003` when the optimizer has another number of groups than the rates; the
    /// provided implementation answers `K0005`.
    fn update_lr_at(&mut self, opt: &mut dyn Optimizer, epoch: i64) -> Result<()> {
        let _ = (opt, epoch);
        Err(crate::Error::Unsupported {
            what: format!("{} inside SequentialLR", self.name()),
        })
    }

    /// `last_epoch -= 1` (SequentialLR's `recursive_undo`; composites pass it to their
    /// children). The provided implementation does nothing.
    fn undo_epoch(&mut self) {}

    /// How often a training loop steps it: [`Interval::Epoch`] (the provided
    /// implementation) unless wrapped in [`PerStep`].
    fn interval(&self) -> Interval {
        Interval::Epoch
    }
}

#[cfg(test)]
mod tests;
