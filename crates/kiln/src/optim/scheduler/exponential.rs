//! `ExponentialLR`: multiply every group's rate by `gamma` every epoch.

use super::LrScheduler;
use super::base::{self, Base};
use crate::error::Result;
use crate::io::Value;
use crate::optim::Optimizer;

/// `torch.optim.lr_scheduler.ExponentialLR`: `lr = lr * gamma` at every step after the
/// initial one (chainable).
#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialLr {
    gamma: f64,
    base: Base,
}

impl ExponentialLr {
    /// Attaches to `opt` and performs PyTorch's initial step (which leaves the rates as they
    /// are).
    ///
    /// # Errors
    /// `K0003` when `gamma` is not finite.
    pub fn new(opt: &mut dyn Optimizer, gamma: f64) -> Result<Self> {
        base::check_finite("ExponentialLR gamma", gamma)?;
        let mut s = ExponentialLr {
            gamma,
            base: Base::attach(opt),
        };
        s.base.step(opt, |_, lrs| Ok(lrs.to_vec()))?;
        Ok(s)
    }
}

impl LrScheduler for ExponentialLr {
    fn name(&self) -> &'static str {
        "ExponentialLR"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let gamma = self.gamma;
        self.base
            .step(opt, |_, lrs| Ok(lrs.iter().map(|lr| lr * gamma).collect()))
    }

    fn get_last_lr(&self) -> &[f64] {
        &self.base.last_lr
    }

    fn add_param_group(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.base.add_group(opt, "ExponentialLR")
    }

    fn last_epoch(&self) -> i64 {
        self.base.last_epoch
    }

    fn state_dict(&self) -> Value {
        self.base.entries(vec![("gamma", Value::Float(self.gamma))])
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        let d = base::as_dict(state, "ExponentialLR")?;
        let gamma = base::float(d, "ExponentialLR", "gamma")?;
        let b = Base::load(d, "ExponentialLR", &["gamma"])?;
        *self = ExponentialLr { gamma, base: b };
        Ok(())
    }
}
