//! `LinearLR`: a factor moving linearly from `start_factor` to `end_factor`.

use super::LrScheduler;
use super::base::{self, Base};
use crate::error::{Error, Result};
use crate::io::Value;
use crate::optim::Optimizer;

/// `torch.optim.lr_scheduler.LinearLR`, chainable as in torch 2.15's `get_lr`: at epoch 0
/// `lr * start_factor`, then up to `total_iters`
/// `lr * (1 + (end - start) / (total_iters * start + (epoch - 1) * (end - start)))`, after it
/// unchanged. Closed form (inside `SequentialLR`):
/// `base_lr * (start + (end - start) * min(total_iters, epoch) / total_iters)`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearLr {
    start_factor: f64,
    end_factor: f64,
    total_iters: i64,
    base: Base,
}

fn check(start: f64, end: f64, total_iters: i64) -> Result<()> {
    if !(start > 0.0 && start <= 1.0) {
        return Err(Error::invalid(
            "LinearLR start_factor",
            start,
            "greater than 0 and at most 1 (PyTorch: ValueError)",
        ));
    }
    if !(0.0..=1.0).contains(&end) {
        return Err(Error::invalid(
            "LinearLR end_factor",
            end,
            "between 0 and 1 (PyTorch: ValueError)",
        ));
    }
    if total_iters < 1 {
        return Err(Error::invalid(
            "LinearLR total_iters",
            total_iters,
            "at least 1 (PyTorch's closed form divides by it)",
        ));
    }
    Ok(())
}

impl LinearLr {
    /// Attaches to `opt` and performs PyTorch's initial step (which applies
    /// `start_factor`). PyTorch's defaults: `start_factor = 1/3`, `end_factor = 1.0`,
    /// `total_iters = 5`.
    ///
    /// # Errors
    /// `K0003` for `start_factor` outside `(0, 1]`, `end_factor` outside `[0, 1]` or
    /// `total_iters == 0`.
    pub fn new(
        opt: &mut dyn Optimizer,
        start_factor: f64,
        end_factor: f64,
        total_iters: usize,
    ) -> Result<Self> {
        check(start_factor, end_factor, total_iters as i64)?;
        let mut s = LinearLr {
            start_factor,
            end_factor,
            total_iters: total_iters as i64,
            base: Base::attach(opt),
        };
        s.initial_step(opt)?;
        Ok(s)
    }
}

impl LrScheduler for LinearLr {
    fn name(&self) -> &'static str {
        "LinearLR"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let (start, end, total) = (self.start_factor, self.end_factor, self.total_iters);
        self.base.step(opt, |b, lrs| {
            let e = b.last_epoch;
            Ok(if e == 0 {
                lrs.iter().map(|lr| lr * start).collect()
            } else if b.is_initial || e > total {
                lrs.to_vec()
            } else {
                let f =
                    1.0 + (end - start) / (total as f64 * start + (e - 1) as f64 * (end - start));
                lrs.iter().map(|lr| lr * f).collect()
            })
        })
    }

    base::common_methods!("LinearLR");

    fn update_lr_at(&mut self, opt: &mut dyn Optimizer, epoch: i64) -> Result<()> {
        let (start, end, total) = (self.start_factor, self.end_factor, self.total_iters);
        self.base.update_at(opt, epoch, |b| {
            let m = total.min(b.last_epoch) as f64;
            b.base_lrs
                .iter()
                .map(|lr| lr * (start + (end - start) * m / total as f64))
                .collect()
        })
    }

    fn state_dict(&self) -> Value {
        self.base.entries(vec![
            ("start_factor", Value::Float(self.start_factor)),
            ("end_factor", Value::Float(self.end_factor)),
            ("total_iters", Value::Int(self.total_iters)),
        ])
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        const N: &str = "LinearLR";
        let d = base::as_dict(state, N)?;
        let start_factor = base::float(d, N, "start_factor")?;
        let end_factor = base::float(d, N, "end_factor")?;
        let total_iters = base::int(d, N, "total_iters")?;
        check(start_factor, end_factor, total_iters)
            .map_err(|e| base::state_error(e.to_string()))?;
        let b = Base::load(d, N, &["start_factor", "end_factor", "total_iters"])?;
        *self = LinearLr {
            start_factor,
            end_factor,
            total_iters,
            base: b,
        };
        Ok(())
    }
}
