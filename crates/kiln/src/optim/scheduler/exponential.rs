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
        s.initial_step(opt)?;
        Ok(s)
    }
}

impl LrScheduler for ExponentialLr {
    fn name(&self) -> &'static str {
        "ExponentialLR"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let gamma = self.gamma;
        self.base.step(opt, |b, lrs| {
            Ok(if b.is_initial {
                lrs.to_vec()
            } else {
                lrs.iter().map(|lr| lr * gamma).collect()
            })
        })
    }

    base::common_methods!("ExponentialLR");

    fn update_lr_at(&mut self, opt: &mut dyn Optimizer, epoch: i64) -> Result<()> {
        let gamma = self.gamma;
        self.base.update_at(opt, epoch, |b| {
            b.base_lrs
                .iter()
                .map(|lr| lr * gamma.powf(b.last_epoch as f64))
                .collect()
        })
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
