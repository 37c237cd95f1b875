//! `ConstantLR`: a constant factor on every rate until `total_iters`.

use super::LrScheduler;
use super::base::{self, Base};
use crate::error::{Error, Result};
use crate::io::Value;
use crate::optim::Optimizer;

/// `torch.optim.lr_scheduler.ConstantLR`, chainable as in torch 2.15's `get_lr`: at epoch 0
/// `lr * factor`, at `total_iters` `lr * (1 / factor)`, otherwise unchanged; the closed form
/// (used inside `SequentialLR`) is `base_lr * (factor + (epoch >= total_iters) * (1 - factor))`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstantLr {
    factor: f64,
    total_iters: i64,
    base: Base,
}

impl ConstantLr {
    /// Attaches to `opt` and performs PyTorch's initial step (which applies `factor`).
    /// PyTorch's defaults are `factor = 1/3`, `total_iters = 5`.
    ///
    /// # Errors
    /// `K0003` when `factor` is outside `[0, 1]` (PyTorch's check), or 0 with a
    /// `total_iters` that would divide by it.
    pub fn new(opt: &mut dyn Optimizer, factor: f64, total_iters: usize) -> Result<Self> {
        check(factor, total_iters as i64)?;
        let mut s = ConstantLr {
            factor,
            total_iters: total_iters as i64,
            base: Base::attach(opt),
        };
        s.initial_step(opt)?;
        Ok(s)
    }
}

fn check(factor: f64, total_iters: i64) -> Result<()> {
    if !(0.0..=1.0).contains(&factor) {
        return Err(Error::invalid(
            "ConstantLR factor",
            factor,
            "between 0 and 1 (PyTorch: ValueError)",
        ));
    }
    if factor == 0.0 && total_iters > 0 {
        return Err(Error::invalid(
            "ConstantLR factor",
            factor,
            "above 0 when total_iters > 0 (PyTorch: ZeroDivisionError at total_iters)",
        ));
    }
    Ok(())
}

impl LrScheduler for ConstantLr {
    fn name(&self) -> &'static str {
        "ConstantLR"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let (factor, total) = (self.factor, self.total_iters);
        self.base.step(opt, |b, lrs| {
            Ok(if b.last_epoch == 0 {
                lrs.iter().map(|lr| lr * factor).collect()
            } else if b.last_epoch != total {
                lrs.to_vec()
            } else {
                lrs.iter().map(|lr| lr * (1.0 / factor)).collect()
            })
        })
    }

    base::common_methods!("ConstantLR");

    fn update_lr_at(&mut self, opt: &mut dyn Optimizer, epoch: i64) -> Result<()> {
        let (factor, total) = (self.factor, self.total_iters);
        self.base.update_at(opt, epoch, |b| {
            let reached = if b.last_epoch >= total { 1.0 } else { 0.0 };
            b.base_lrs
                .iter()
                .map(|lr| lr * (factor + reached * (1.0 - factor)))
                .collect()
        })
    }

    fn state_dict(&self) -> Value {
        self.base.entries(vec![
            ("factor", Value::Float(self.factor)),
            ("total_iters", Value::Int(self.total_iters)),
        ])
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        const N: &str = "ConstantLR";
        let d = base::as_dict(state, N)?;
        let factor = base::float(d, N, "factor")?;
        let total_iters = base::int(d, N, "total_iters")?;
        check(factor, total_iters).map_err(|e| base::state_error(e.to_string()))?;
        let b = Base::load(d, N, &["factor", "total_iters"])?;
        *self = ConstantLr {
            factor,
            total_iters,
            base: b,
        };
        Ok(())
    }
}
