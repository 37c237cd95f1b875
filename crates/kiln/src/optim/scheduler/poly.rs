//! `PolynomialLR`: polynomial decay to 0 over `total_iters`.

use super::LrScheduler;
use super::base::{self, Base};
use crate::error::{Error, Result};
use crate::io::Value;
use crate::optim::Optimizer;

/// `torch.optim.lr_scheduler.PolynomialLR`, chainable as in torch 2.15's `get_lr`: up to
/// `total_iters`, `lr * ((1 - e / total_iters) / (1 - (e - 1) / total_iters)) ** power`,
/// after it unchanged. Closed form (inside `SequentialLR`):
/// `base_lr * (1 - min(total_iters, e) / total_iters) ** power`. `power` is written as a
/// float (PyTorch keeps an `int` power an `int`).
#[derive(Clone, Debug, PartialEq)]
pub struct PolynomialLr {
    total_iters: i64,
    power: f64,
    base: Base,
}

fn check(total_iters: i64, power: f64) -> Result<()> {
    if total_iters < 1 {
        return Err(Error::invalid(
            "PolynomialLR total_iters",
            total_iters,
            "at least 1 (PyTorch divides by it)",
        ));
    }
    base::check_finite("PolynomialLR power", power)
}

impl PolynomialLr {
    /// Attaches to `opt` and performs PyTorch's initial step (which leaves the rates as they
    /// are). PyTorch's defaults: `total_iters = 5`, `power = 1.0`.
    ///
    /// # Errors
    /// `K0003` when `total_iters` is 0 or `power` is not finite.
    pub fn new(opt: &mut dyn Optimizer, total_iters: usize, power: f64) -> Result<Self> {
        check(total_iters as i64, power)?;
        let mut s = PolynomialLr {
            total_iters: total_iters as i64,
            power,
            base: Base::attach(opt),
        };
        s.initial_step(opt)?;
        Ok(s)
    }
}

impl LrScheduler for PolynomialLr {
    fn name(&self) -> &'static str {
        "PolynomialLR"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let (total, power) = (self.total_iters as f64, self.power);
        let t = self.total_iters;
        self.base.step(opt, |b, lrs| {
            let e = b.last_epoch;
            Ok(if b.is_initial || e > t {
                lrs.to_vec()
            } else {
                let decay = ((1.0 - e as f64 / total) / (1.0 - (e - 1) as f64 / total)).powf(power);
                lrs.iter().map(|lr| lr * decay).collect()
            })
        })
    }

    base::common_methods!("PolynomialLR");

    fn update_lr_at(&mut self, opt: &mut dyn Optimizer, epoch: i64) -> Result<()> {
        let (t, power) = (self.total_iters, self.power);
        self.base.update_at(opt, epoch, |b| {
            let m = t.min(b.last_epoch) as f64;
            b.base_lrs
                .iter()
                .map(|lr| lr * (1.0 - m / t as f64).powf(power))
                .collect()
        })
    }

    fn state_dict(&self) -> Value {
        self.base.entries(vec![
            ("total_iters", Value::Int(self.total_iters)),
            ("power", Value::Float(self.power)),
        ])
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        const N: &str = "PolynomialLR";
        let d = base::as_dict(state, N)?;
        let total_iters = base::int(d, N, "total_iters")?;
        let power = base::float(d, N, "power")?;
        check(total_iters, power).map_err(|e| base::state_error(e.to_string()))?;
        let b = Base::load(d, N, &["total_iters", "power"])?;
        *self = PolynomialLr {
            total_iters,
            power,
            base: b,
        };
        Ok(())
    }
}
