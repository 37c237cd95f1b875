//! When a training loop steps a scheduler: once per epoch or after every optimizer update
//! (Lightning's `interval`).

use super::LrScheduler;
use crate::error::{Error, Result};
use crate::io::Value;
use crate::optim::Optimizer;

/// How often a training loop steps a scheduler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// After each epoch (PyTorch's `for epoch: train(); test(); scheduler.step()`).
    #[default]
    Epoch,
    /// After each optimizer update (`optimizer.step(); scheduler.step()` per batch, as
    /// OneCycleLR expects).
    Step,
}

impl Interval {
    /// Parses `epoch` or `step`.
    ///
    /// # Errors
    /// `K0003` for anything else.
    pub fn parse(text: &str) -> Result<Interval> {
        match text {
            "epoch" => Ok(Interval::Epoch),
            "step" => Ok(Interval::Step),
            other => Err(Error::invalid("lr interval", other, "epoch or step")),
        }
    }

    /// `epoch` or `step`.
    pub fn name(self) -> &'static str {
        match self {
            Interval::Epoch => "epoch",
            Interval::Step => "step",
        }
    }
}

/// A scheduler stepped after every optimizer update: [`LrScheduler::interval`] answers
/// [`Interval::Step`]; everything else (name, state dict) is the inner scheduler's, so a
/// checkpoint holds exactly PyTorch's state dict.
pub struct PerStep(pub Box<dyn LrScheduler>);

impl LrScheduler for PerStep {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.0.step(opt)
    }
    fn get_last_lr(&self) -> &[f64] {
        self.0.get_last_lr()
    }
    fn last_epoch(&self) -> i64 {
        self.0.last_epoch()
    }
    fn state_dict(&self) -> Value {
        self.0.state_dict()
    }
    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        self.0.load_state_dict(state)
    }
    fn add_param_group(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.0.add_param_group(opt)
    }
    fn needs_metric(&self) -> bool {
        self.0.needs_metric()
    }
    fn step_with_metric(&mut self, opt: &mut dyn Optimizer, metric: f64) -> Result<()> {
        self.0.step_with_metric(opt, metric)
    }
    fn initial_step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.0.initial_step(opt)
    }
    fn update_lr_at(&mut self, opt: &mut dyn Optimizer, epoch: i64) -> Result<()> {
        self.0.update_lr_at(opt, epoch)
    }
    fn undo_epoch(&mut self) {
        self.0.undo_epoch()
    }
    fn interval(&self) -> Interval {
        Interval::Step
    }
}

/// What a training loop does after each optimizer update: steps `scheduler` when it runs
/// per step (a metric-driven one never does: it waits for the epoch's metric).
///
/// # Errors
/// The scheduler's.
pub fn after_update(
    scheduler: Option<&mut (dyn LrScheduler + '_)>,
    opt: &mut dyn Optimizer,
) -> Result<()> {
    match scheduler {
        Some(s) if s.interval() == Interval::Step && !s.needs_metric() => s.step(opt),
        _ => Ok(()),
    }
}

/// What a training loop does at the end of an epoch: steps an epoch-interval scheduler,
/// and a metric-driven one (`ReduceLROnPlateau`) with `metric` (the epoch's test loss).
///
/// # Errors
/// The scheduler's.
pub fn after_epoch(
    scheduler: Option<&mut (dyn LrScheduler + '_)>,
    opt: &mut dyn Optimizer,
    metric: f64,
) -> Result<()> {
    match scheduler {
        Some(s) if s.needs_metric() => s.step_with_metric(opt, metric),
        Some(s) if s.interval() == Interval::Epoch => s.step(opt),
        _ => Ok(()),
    }
}
