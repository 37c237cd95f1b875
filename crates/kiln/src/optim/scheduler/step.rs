//! `StepLR`: multiply every group's rate by `gamma` every `step_size` epochs.

use super::LrScheduler;
use super::base::{self, Base};
use crate::error::Result;
use crate::io::Value;
use crate::optim::Optimizer;

/// `torch.optim.lr_scheduler.StepLR`: at each epoch that is a non-zero multiple of
/// `step_size`, `lr = lr * gamma` (chainable: it scales the group's current rate).
#[derive(Clone, Debug, PartialEq)]
pub struct StepLr {
    step_size: i64,
    gamma: f64,
    base: Base,
}

impl StepLr {
    /// Attaches to `opt` and performs PyTorch's initial step (`last_epoch` becomes 0, each
    /// group gets `initial_lr`).
    ///
    /// # Errors
    /// `K0003` when `step_size` is 0 or `gamma` is not finite (PyTorch accepts both and fails
    /// or produces NaN later).
    pub fn new(opt: &mut dyn Optimizer, step_size: usize, gamma: f64) -> Result<Self> {
        base::check_positive("StepLR step_size", step_size)?;
        base::check_finite("StepLR gamma", gamma)?;
        let mut s = StepLr {
            step_size: step_size as i64,
            gamma,
            base: Base::attach(opt),
        };
        s.initial_step(opt)?;
        Ok(s)
    }
}

impl LrScheduler for StepLr {
    fn name(&self) -> &'static str {
        "StepLR"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let (step_size, gamma) = (self.step_size, self.gamma);
        self.base.step(opt, |b, lrs| {
            Ok(if b.last_epoch == 0 || b.last_epoch % step_size != 0 {
                lrs.to_vec()
            } else {
                lrs.iter().map(|lr| lr * gamma).collect()
            })
        })
    }

    base::common_methods!("StepLR");

    fn update_lr_at(&mut self, opt: &mut dyn Optimizer, epoch: i64) -> Result<()> {
        let (step_size, gamma) = (self.step_size, self.gamma);
        self.base.update_at(opt, epoch, |b| {
            let n = b.last_epoch.div_euclid(step_size) as f64;
            b.base_lrs.iter().map(|lr| lr * gamma.powf(n)).collect()
        })
    }

    fn state_dict(&self) -> Value {
        self.base.entries(vec![
            ("step_size", Value::Int(self.step_size)),
            ("gamma", Value::Float(self.gamma)),
        ])
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        let d = base::as_dict(state, "StepLR")?;
        let step_size = base::int(d, "StepLR", "step_size")?;
        if step_size < 1 {
            return Err(crate::Error::OptimizerState {
                detail: format!("StepLR state has step_size={step_size}; it must be at least 1"),
            });
        }
        let gamma = base::float(d, "StepLR", "gamma")?;
        let b = Base::load(d, "StepLR", &["step_size", "gamma"])?;
        *self = StepLr {
            step_size,
            gamma,
            base: b,
        };
        Ok(())
    }
}
