//! `CosineAnnealingLR` with PyTorch's recursive (chainable) formula.

use super::LrScheduler;
use super::base::{self, Base};
use crate::error::{Error, Result};
use crate::io::Value;
use crate::optim::Optimizer;
use std::f64::consts::PI;

/// `torch.optim.lr_scheduler.CosineAnnealingLR`, computed as torch 2.15's `get_lr` does:
/// recursively from each group's current rate,
/// `lr = (1 + cos(pi * e / T_max)) / (1 + cos(pi * (e - 1) / T_max)) * (lr - eta_min) + eta_min`,
/// with PyTorch's special case at `(e - 1 - T_max) % (2 * T_max) == 0` (the restart point,
/// where the ratio would divide by zero), and the closed form when resuming with
/// `_step_count == 1 and last_epoch > 0`. Past `T_max` the rate rises again (no clamp), as
/// in PyTorch.
#[derive(Clone, Debug, PartialEq)]
pub struct CosineAnnealingLr {
    t_max: i64,
    eta_min: f64,
    base: Base,
}

impl CosineAnnealingLr {
    /// Attaches to `opt` and performs PyTorch's initial step (which leaves the rates as they
    /// are).
    ///
    /// # Errors
    /// `K0003` when `t_max` is 0 or `eta_min` is not finite (PyTorch would divide by zero
    /// at the first step).
    pub fn new(opt: &mut dyn Optimizer, t_max: usize, eta_min: f64) -> Result<Self> {
        base::check_positive("CosineAnnealingLR T_max", t_max)?;
        base::check_finite("CosineAnnealingLR eta_min", eta_min)?;
        let mut s = CosineAnnealingLr {
            t_max: t_max as i64,
            eta_min,
            base: Base::attach(opt),
        };
        s.initial_step(opt)?;
        Ok(s)
    }
}

impl LrScheduler for CosineAnnealingLr {
    fn name(&self) -> &'static str {
        "CosineAnnealingLR"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let (t_max, eta_min) = (self.t_max, self.eta_min);
        let groups = opt.param_groups().len();
        if groups != self.base.base_lrs.len() {
            return Err(Error::invalid(
                "optimizer param groups",
                groups,
                format!(
                    "{} as when CosineAnnealingLR was attached (PyTorch: zip() arguments differ in length)",
                    self.base.base_lrs.len()
                ),
            ));
        }
        self.base.step(opt, |b, lrs| {
            let e = b.last_epoch;
            let t = t_max as f64;
            Ok(if b.is_initial {
                lrs.to_vec()
            } else if b.step_count == 1 && e > 0 {
                b.base_lrs
                    .iter()
                    .map(|base| {
                        eta_min + (base - eta_min) * (1.0 + ((e as f64) * PI / t).cos()) / 2.0
                    })
                    .collect()
            } else if (e - 1 - t_max).rem_euclid(2 * t_max) == 0 {
                b.base_lrs
                    .iter()
                    .zip(lrs)
                    .map(|(base, lr)| lr + (base - eta_min) * (1.0 - (PI / t).cos()) / 2.0)
                    .collect()
            } else {
                lrs.iter()
                    .map(|lr| {
                        (1.0 + (PI * (e as f64) / t).cos())
                            / (1.0 + (PI * ((e - 1) as f64) / t).cos())
                            * (lr - eta_min)
                            + eta_min
                    })
                    .collect()
            })
        })
    }

    base::common_methods!("CosineAnnealingLR");

    fn update_lr_at(&mut self, opt: &mut dyn Optimizer, epoch: i64) -> Result<()> {
        let (t_max, eta_min) = (self.t_max as f64, self.eta_min);
        self.base.update_at(opt, epoch, |b| {
            let e = b.last_epoch as f64;
            b.base_lrs
                .iter()
                .map(|base| eta_min + (base - eta_min) * (1.0 + (PI * e / t_max).cos()) / 2.0)
                .collect()
        })
    }

    fn state_dict(&self) -> Value {
        self.base.entries(vec![
            ("T_max", Value::Int(self.t_max)),
            ("eta_min", Value::Float(self.eta_min)),
        ])
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        let d = base::as_dict(state, "CosineAnnealingLR")?;
        let t_max = base::int(d, "CosineAnnealingLR", "T_max")?;
        if t_max < 1 {
            return Err(Error::OptimizerState {
                detail: format!("CosineAnnealingLR state has T_max={t_max}; it must be at least 1"),
            });
        }
        let eta_min = base::float(d, "CosineAnnealingLR", "eta_min")?;
        let b = Base::load(d, "CosineAnnealingLR", &["T_max", "eta_min"])?;
        *self = CosineAnnealingLr {
            t_max,
            eta_min,
            base: b,
        };
        Ok(())
    }
}
