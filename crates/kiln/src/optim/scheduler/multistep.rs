//! `MultiStepLR`: multiply every group's rate by `gamma` at each milestone epoch.

use super::LrScheduler;
use super::base::{self, Base};
use crate::error::{Error, Result};
use crate::io::{Dict, Value};
use crate::optim::Optimizer;

/// `torch.optim.lr_scheduler.MultiStepLR`: at an epoch listed `n` times in `milestones`,
/// `lr = lr * gamma ** n` (chainable).
///
/// PyTorch keeps `milestones` as a `collections.Counter` (epoch → count, in first-seen
/// order). kiln's file `Value` has no Counter, so `state_dict()` writes a plain dict with the
/// same items in the same order; PyTorch's `get_lr` only uses `in` and `[]` on it, which a
/// dict supports (only the deprecated `step(epoch)` path calls `Counter.elements()`).
/// `load_state_dict` accepts that dict (or a list of epochs).
#[derive(Clone, Debug, PartialEq)]
pub struct MultiStepLr {
    /// `(epoch, count)` in first-seen order, like the Counter.
    milestones: Vec<(i64, i64)>,
    gamma: f64,
    base: Base,
}

fn counter(epochs: impl IntoIterator<Item = i64>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for e in epochs {
        match out.iter_mut().find(|(m, _)| *m == e) {
            Some((_, n)) => *n += 1,
            None => out.push((e, 1)),
        }
    }
    out
}

impl MultiStepLr {
    /// Attaches to `opt` and performs PyTorch's initial step (a milestone at epoch 0 applies
    /// right away, as in PyTorch).
    ///
    /// # Errors
    /// `K0003` when `gamma` is not finite. Milestones need not be sorted (a Counter is not).
    pub fn new(opt: &mut dyn Optimizer, milestones: &[usize], gamma: f64) -> Result<Self> {
        base::check_finite("MultiStepLR gamma", gamma)?;
        let mut s = MultiStepLr {
            milestones: counter(milestones.iter().map(|&m| m as i64)),
            gamma,
            base: Base::attach(opt),
        };
        s.initial_step(opt)?;
        Ok(s)
    }

    /// The milestones as `(epoch, count)` pairs.
    pub fn milestones(&self) -> &[(i64, i64)] {
        &self.milestones
    }
}

impl LrScheduler for MultiStepLr {
    fn name(&self) -> &'static str {
        "MultiStepLR"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let gamma = self.gamma;
        let milestones = &self.milestones;
        self.base.step(opt, |b, lrs| {
            Ok(match milestones.iter().find(|(m, _)| *m == b.last_epoch) {
                None => lrs.to_vec(),
                // Python: group["lr"] * gamma ** count (float ** int is C pow)
                Some((_, n)) => lrs.iter().map(|lr| lr * gamma.powf(*n as f64)).collect(),
            })
        })
    }

    base::common_methods!("MultiStepLR");

    fn update_lr_at(&mut self, opt: &mut dyn Optimizer, epoch: i64) -> Result<()> {
        let gamma = self.gamma;
        let milestones = &self.milestones;
        self.base.update_at(opt, epoch, |b| {
            // bisect_right(sorted(milestones.elements()), last_epoch)
            let n: i64 = milestones
                .iter()
                .filter(|(m, _)| *m <= b.last_epoch)
                .map(|(_, n)| *n)
                .sum();
            b.base_lrs
                .iter()
                .map(|lr| lr * gamma.powf(n as f64))
                .collect()
        })
    }

    fn state_dict(&self) -> Value {
        let counter = Value::Dict(Dict {
            entries: self
                .milestones
                .iter()
                .map(|(m, n)| (Value::Int(*m), Value::Int(*n)))
                .collect(),
            ordered: false,
            metadata: None,
        });
        self.base.entries(vec![
            ("milestones", counter),
            ("gamma", Value::Float(self.gamma)),
        ])
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        let d = base::as_dict(state, "MultiStepLR")?;
        let bad = |what: String| Error::OptimizerState { detail: what };
        let milestones = match base::need(d, "MultiStepLR", "milestones")? {
            Value::Dict(c) => c
                .entries
                .iter()
                .map(|(k, v)| match (k, v) {
                    (Value::Int(m), Value::Int(n)) => Ok((*m, *n)),
                    _ => Err(bad(format!(
                        "MultiStepLR milestones must map int epochs to int counts, found {}: {}",
                        k.type_name(),
                        v.type_name()
                    ))),
                })
                .collect::<Result<Vec<_>>>()?,
            Value::List(items) | Value::Tuple(items) => counter(
                items
                    .iter()
                    .map(|x| match x {
                        Value::Int(m) => Ok(*m),
                        other => Err(bad(format!(
                            "MultiStepLR milestones must be ints, found a {}",
                            other.type_name()
                        ))),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            other => {
                return Err(bad(format!(
                    "MultiStepLR milestones is a {}, expected a Counter (dict)",
                    other.type_name()
                )));
            }
        };
        let gamma = base::float(d, "MultiStepLR", "gamma")?;
        let b = Base::load(d, "MultiStepLR", &["milestones", "gamma"])?;
        *self = MultiStepLr {
            milestones,
            gamma,
            base: b,
        };
        Ok(())
    }
}
