//! `CosineAnnealingWarmRestarts` (SGDR): cosine annealing restarted every `T_i` epochs.

use super::LrScheduler;
use super::base::{self, Base};
use crate::error::{Error, Result};
use crate::io::Value;
use crate::optim::Optimizer;
use std::f64::consts::PI;

/// `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts` as torch 2.15 computes it:
/// `lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2`, where `T_cur`
/// counts the epochs since the last restart and `T_i` (starting at `T_0`) is multiplied by
/// `T_mult` at each restart. Like PyTorch's own `step()`, it does not count `_step_count`
/// (it stays 0). Only the epoch-less `step()` exists (PyTorch's deprecated `step(epoch)`
/// with fractional epochs is not offered).
#[derive(Clone, Debug, PartialEq)]
pub struct CosineAnnealingWarmRestarts {
    t_0: i64,
    t_i: i64,
    t_mult: i64,
    eta_min: f64,
    t_cur: i64,
    base: Base,
}

fn check(t_0: i64, t_mult: i64, eta_min: f64) -> Result<()> {
    if t_0 < 1 {
        return Err(Error::invalid(
            "CosineAnnealingWarmRestarts T_0",
            t_0,
            "a positive integer (PyTorch: ValueError)",
        ));
    }
    if t_mult < 1 {
        return Err(Error::invalid(
            "CosineAnnealingWarmRestarts T_mult",
            t_mult,
            "an integer >= 1 (PyTorch: ValueError)",
        ));
    }
    base::check_finite("CosineAnnealingWarmRestarts eta_min", eta_min)
}

impl CosineAnnealingWarmRestarts {
    /// Attaches to `opt` and performs PyTorch's initial step (epoch 0: `T_cur = 0`, the
    /// rates stay at their base values). PyTorch's defaults: `T_mult = 1`, `eta_min = 0.0`.
    ///
    /// # Errors
    /// `K0003` when `t_0` or `t_mult` is 0 or `eta_min` is not finite.
    pub fn new(opt: &mut dyn Optimizer, t_0: usize, t_mult: usize, eta_min: f64) -> Result<Self> {
        check(t_0 as i64, t_mult as i64, eta_min)?;
        let mut s = CosineAnnealingWarmRestarts {
            t_0: t_0 as i64,
            t_i: t_0 as i64,
            t_mult: t_mult as i64,
            eta_min,
            t_cur: -1,
            base: Base::attach(opt),
        };
        s.initial_step(opt)?;
        Ok(s)
    }

    /// PyTorch's `get_lr()`.
    fn rates(&self) -> Vec<f64> {
        let eta_min = self.eta_min;
        let c = (PI * self.t_cur as f64 / self.t_i as f64).cos();
        self.base
            .base_lrs
            .iter()
            .map(|base| eta_min + (base - eta_min) * (1.0 + c) / 2.0)
            .collect()
    }

    fn write(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let values = self.rates();
        base::check_groups(opt, values.len())?;
        for (i, lr) in values.into_iter().enumerate() {
            opt.set_lr(i, lr);
        }
        self.base.last_lr = base::group_lrs(opt);
        Ok(())
    }
}

impl LrScheduler for CosineAnnealingWarmRestarts {
    fn name(&self) -> &'static str {
        "CosineAnnealingWarmRestarts"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let epoch = if self.base.last_epoch < 0 {
            // PyTorch: `epoch = 0`, then the explicit-epoch branch with epoch < T_0
            self.t_i = self.t_0;
            self.t_cur = 0;
            0
        } else {
            self.t_cur += 1;
            if self.t_cur >= self.t_i {
                self.t_cur %= self.t_i;
                self.t_i = self.t_i.saturating_mul(self.t_mult);
            }
            self.base.last_epoch + 1
        };
        self.base.last_epoch = epoch;
        self.write(opt)
    }

    base::common_methods!("CosineAnnealingWarmRestarts");

    fn update_lr_at(&mut self, opt: &mut dyn Optimizer, epoch: i64) -> Result<()> {
        // no closed form in PyTorch: `get_lr()` with the current T_cur
        self.base.last_epoch = epoch;
        self.write(opt)
    }

    fn state_dict(&self) -> Value {
        self.base.entries(vec![
            ("T_0", Value::Int(self.t_0)),
            ("T_i", Value::Int(self.t_i)),
            ("T_mult", Value::Int(self.t_mult)),
            ("eta_min", Value::Float(self.eta_min)),
            ("T_cur", Value::Int(self.t_cur)),
        ])
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        const N: &str = "CosineAnnealingWarmRestarts";
        let d = base::as_dict(state, N)?;
        let t_0 = base::int(d, N, "T_0")?;
        let t_i = base::int(d, N, "T_i")?;
        let t_mult = base::int(d, N, "T_mult")?;
        let eta_min = base::float(d, N, "eta_min")?;
        let t_cur = base::int(d, N, "T_cur")?;
        check(t_0, t_mult, eta_min).map_err(|e| base::state_error(e.to_string()))?;
        if t_i < 1 {
            return Err(base::state_error(format!(
                "{N} state has T_i={t_i}; it must be at least 1"
            )));
        }
        let b = Base::load(d, N, &["T_0", "T_i", "T_mult", "eta_min", "T_cur"])?;
        *self = CosineAnnealingWarmRestarts {
            t_0,
            t_i,
            t_mult,
            eta_min,
            t_cur,
            base: b,
        };
        Ok(())
    }
}
