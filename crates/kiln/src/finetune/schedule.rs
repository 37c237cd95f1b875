//! Gradual unfreezing (Lightning's `BackboneFinetuning`): at the start of a given epoch the
//! frozen backbone (or the part a pattern selects) is unfrozen and joins the optimizer as a
//! new parameter group with its own learning rate.
//!
//! The schedule is planned up front from the model's frozen parameters, so a rule that would
//! unfreeze nothing fails before training starts. Which steps have been applied is a pure
//! function of the run's position (epoch, batch within the epoch): a resume re-applies them
//! before loading the optimizer state, so the checkpoint's extra groups (with their momentum
//! or Adam moments) fit and the run continues bit-exactly.

use super::Selector;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::optim::scheduler::LrScheduler;
use serde::{Deserialize, Serialize};

/// Learning rate of an unfrozen group when the rule names none, as a fraction of the base
/// learning rate (Lightning's `backbone_initial_ratio_lr`).
pub const DEFAULT_UNFREEZE_LR_RATIO: f64 = 0.1;

/// One `EPOCH[:PATTERN][=LR]` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnfreezeRule {
    /// 0-based epoch at whose start the parameters are unfrozen (`3`: after three epochs).
    pub epoch: usize,
    /// Which frozen parameters (None: every parameter still frozen then).
    pub pattern: Option<String>,
    /// Their learning rate (None: [`DEFAULT_UNFREEZE_LR_RATIO`] × the base rate).
    pub lr: Option<f64>,
}

impl UnfreezeRule {
    /// Parses `EPOCH`, `EPOCH=LR`, `EPOCH:PATTERN` or `EPOCH:PATTERN=LR` (e.g. `3`,
    /// `3=1e-3`, `2:layer4=1e-4`). A trailing `=X` is a learning rate only when `X` is a
    /// number, so a regex may contain `=`.
    ///
    /// # Errors
    /// `K0003` for a missing epoch or a bad learning rate; `K0402` for a bad pattern.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "unfreeze-at",
                text,
                "EPOCH[:PATTERN][=LR], e.g. 3, 3=1e-3 or 2:layer4=1e-4",
            )
        };
        let (head, rest) = match text.split_once(':') {
            Some((e, r)) => (e, Some(r)),
            None => (text, None),
        };
        let split_lr = |s: &str| -> Result<(String, Option<f64>)> {
            match s.rsplit_once('=') {
                Some((p, lr)) => match lr.trim().parse::<f64>() {
                    Ok(v) if v.is_finite() && v >= 0.0 => Ok((p.to_string(), Some(v))),
                    Ok(_) => Err(bad()),
                    Err(_) => Ok((s.to_string(), None)),
                },
                None => Ok((s.to_string(), None)),
            }
        };
        let (epoch_text, pattern, lr) = match rest {
            None => {
                let (e, lr) = split_lr(head)?;
                (e, None, lr)
            }
            Some(r) => {
                let (p, lr) = split_lr(r)?;
                (head.to_string(), Some(p), lr)
            }
        };
        let epoch: usize = epoch_text.trim().parse().map_err(|_| bad())?;
        if let Some(p) = &pattern {
            if p.trim().is_empty() {
                return Err(bad());
            }
            Selector::new(&[p.as_str()])?;
        }
        Ok(UnfreezeRule { epoch, pattern, lr })
    }
}

/// One planned unfreezing: at the start of `epoch`, `names` join the optimizer with `lr`.
#[derive(Clone, Debug, PartialEq)]
pub struct UnfreezeStep {
    /// 0-based epoch.
    pub epoch: usize,
    /// The parameters unfrozen, in the model's order.
    pub names: Vec<String>,
    /// The new group's learning rate.
    pub lr: f64,
}

/// The planned steps and how many have been applied.
#[derive(Clone, Debug, Default)]
pub struct UnfreezeSchedule {
    steps: Vec<UnfreezeStep>,
    applied: usize,
}

impl UnfreezeSchedule {
    /// Plans `rules` (applied in epoch order; rules of the same epoch in the given order)
    /// against the parameters of `model` frozen now.
    ///
    /// # Errors
    /// `K0402` when a rule's pattern selects no parameter still frozen at its epoch (or none
    /// at all), or when a rule without pattern finds nothing frozen.
    pub fn plan(model: &dyn Module, rules: &[UnfreezeRule], base_lr: f64) -> Result<Self> {
        let params = model.named_parameters();
        let mut frozen: Vec<String> = params
            .iter()
            .filter(|(_, p)| !p.requires_grad())
            .map(|(n, _)| n.clone())
            .collect();
        let mut order: Vec<&UnfreezeRule> = rules.iter().collect();
        order.sort_by_key(|r| r.epoch);
        let mut steps = Vec::with_capacity(order.len());
        for r in order {
            let pattern = r.pattern.as_deref().unwrap_or("*");
            let names: Vec<String> = match &r.pattern {
                None => frozen.clone(),
                Some(p) => {
                    let sel = Selector::new(&[p.as_str()])?;
                    let all: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
                    sel.select(&all)?;
                    frozen.iter().filter(|n| sel.matches(n)).cloned().collect()
                }
            };
            if names.is_empty() {
                return Err(Error::Pattern {
                    pattern: pattern.to_string(),
                    problem: format!(
                        "selects no frozen parameter at epoch {}: nothing to unfreeze (freeze the backbone first: kiln::finetune::freeze, CLI --freeze)",
                        r.epoch
                    ),
                });
            }
            frozen.retain(|n| !names.contains(n));
            steps.push(UnfreezeStep {
                epoch: r.epoch,
                names,
                lr: r.lr.unwrap_or(DEFAULT_UNFREEZE_LR_RATIO * base_lr),
            });
        }
        Ok(UnfreezeSchedule { steps, applied: 0 })
    }

    /// The planned steps, in the order they apply.
    pub fn steps(&self) -> &[UnfreezeStep] {
        &self.steps
    }

    /// How many steps have been applied.
    pub fn applied(&self) -> usize {
        self.applied
    }

    /// How many steps a run at `epoch`, `step_in_epoch` batches into it, has applied (steps
    /// apply at the start of their epoch, before its first batch).
    pub fn due_at(&self, epoch: usize, step_in_epoch: usize) -> usize {
        let limit = epoch + usize::from(step_in_epoch > 0);
        self.steps.iter().filter(|s| s.epoch < limit).count()
    }

    /// Applies the pending steps among the first `count`: unfreezes their parameters in
    /// `model` and appends each as a group to `opt` (and to `scheduler`, which then scales
    /// it like the other groups). Returns the steps it applied.
    ///
    /// # Errors
    /// Errors of the optimizer (`K0602` if a parameter is already in a group) or the
    /// scheduler.
    pub fn apply_first(
        &mut self,
        count: usize,
        model: &dyn Module,
        opt: &mut dyn Optimizer,
        mut scheduler: Option<&mut (dyn LrScheduler + '_)>,
    ) -> Result<Vec<UnfreezeStep>> {
        let mut done = Vec::new();
        let params = model.named_parameters();
        while self.applied < count.min(self.steps.len()) {
            let step = self.steps[self.applied].clone();
            let group: Vec<(String, crate::nn::Param)> = params
                .iter()
                .filter(|(n, _)| step.names.contains(n))
                .cloned()
                .collect();
            for (_, p) in &group {
                p.set_requires_grad(true)?;
            }
            opt.add_param_group(group, Some(step.lr))?;
            if let Some(s) = scheduler.as_deref_mut() {
                s.add_param_group(opt)?;
            }
            self.applied += 1;
            done.push(step);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finetune::freeze;
    use crate::models::{LeNet, LeNetConfig};

    #[test]
    fn rules_parse() {
        let r = |t: &str| UnfreezeRule::parse(t).unwrap();
        assert_eq!(
            r("3"),
            UnfreezeRule {
                epoch: 3,
                pattern: None,
                lr: None
            }
        );
        assert_eq!(r("3=1e-3").lr, Some(1e-3));
        let x = r("2:layer4=1e-4");
        assert_eq!(
            (x.epoch, x.pattern.as_deref(), x.lr),
            (2, Some("layer4"), Some(1e-4))
        );
        assert_eq!(r("1:re:a=b").pattern.as_deref(), Some("re:a=b"));
        for bad in ["", "x", "1=-1", "1:=0.1", "-1"] {
            assert_eq!(
                UnfreezeRule::parse(bad).unwrap_err().code(),
                "K0003",
                "{bad}"
            );
        }
        assert_eq!(UnfreezeRule::parse("1:^fc(").unwrap_err().code(), "K0402");
    }

    #[test]
    fn plan_consumes_frozen_parameters_in_epoch_order() {
        let m = LeNet::new(LeNetConfig::default()).unwrap();
        freeze(&m, &Selector::new(&["conv*", "fc1", "fc2"]).unwrap()).unwrap();
        let rules = [
            UnfreezeRule::parse("4").unwrap(),
            UnfreezeRule::parse("2:fc2=0.5").unwrap(),
        ];
        let s = UnfreezeSchedule::plan(&m, &rules, 0.03).unwrap();
        assert_eq!(s.steps()[0].names, ["fc2.weight", "fc2.bias"]);
        assert_eq!(s.steps()[1].epoch, 4);
        assert_eq!(s.steps()[1].names.len(), 6);
        assert!((s.steps()[1].lr - 0.003).abs() < 1e-15);
        assert_eq!((s.due_at(2, 0), s.due_at(2, 1), s.due_at(5, 0)), (0, 1, 2));
        // fc is trainable: nothing to unfreeze.
        let e = UnfreezeSchedule::plan(&m, &[UnfreezeRule::parse("1:fc").unwrap()], 0.1);
        assert_eq!(e.unwrap_err().code(), "K0402");
    }
}
