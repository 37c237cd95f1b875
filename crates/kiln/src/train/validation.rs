//! Validation while training: at the end of each epoch, or every N optimizer updates
//! (`--val-every-steps`, Lightning's `val_check_interval`), with early stopping and the best
//! model (see [`super::early_stopping`]).
//!
//! With `every_steps` the monitored value is checked at those validations only (the epoch's
//! evaluation still fills `metrics.jsonl`); without it, at the end of every epoch. A stop
//! decided mid-epoch ends the epoch there (its metrics cover the batches it ran) and the run.

use super::early_stopping::{Decision, EarlyStopping, EarlyStoppingConfig};
use super::hooks::Hook;
use super::trainer::{EvalResult, Trainer};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// When to validate and what to monitor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationConfig {
    /// Validate after every `every_steps` optimizer updates (counted over the whole run, as
    /// `global_step`), besides the evaluation at each epoch's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_steps: Option<u64>,
    /// Early stopping and best-model tracking, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingConfig>,
}

impl ValidationConfig {
    /// Nothing beyond the end-of-epoch evaluation.
    pub fn is_default(&self) -> bool {
        *self == ValidationConfig::default()
    }

    /// `K0003` for `every_steps` of 0 or invalid early-stopping settings.
    ///
    /// # Errors
    /// As above.
    pub fn validate(&self) -> Result<()> {
        if self.every_steps == Some(0) {
            return Err(Error::invalid(
                "--val-every-steps",
                0,
                "at least 1 optimizer update",
            ));
        }
        if let Some(e) = &self.early_stopping {
            e.validate()?;
        }
        Ok(())
    }
}

/// One validation, as hooks see it ([`Hook::on_validation_end`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Validation {
    /// The (1-based) epoch in progress.
    pub epoch: usize,
    /// Optimizer updates so far.
    pub global_step: u64,
    /// Whether it ran inside the epoch (`every_steps`) rather than at its end.
    pub mid_epoch: bool,
    /// What the evaluation measured (with `ema_test_*` in `metrics` when there is an EMA).
    pub eval: EvalResult,
    /// The monitored value, with early stopping.
    pub monitored: Option<f64>,
    /// Whether it is the best so far (the best-model file is written).
    pub improved: bool,
    /// Whether the run stops after it.
    pub stop: bool,
}

/// The value of `key` in `eval`: `test_loss`, `test_acc` or a named metric (the EMA's
/// `ema_test_loss` / `ema_test_acc` among them).
pub fn monitored_value(eval: &EvalResult, key: &str) -> Option<f64> {
    match key {
        "test_loss" => Some(eval.loss),
        "test_acc" => eval.accuracy,
        other => eval.metrics.get(other).copied(),
    }
}

impl Trainer {
    /// Whether early stopping has stopped the run.
    pub fn is_stopped(&self) -> bool {
        self.early_stopping
            .as_ref()
            .is_some_and(EarlyStopping::stopped)
    }

    /// `K0003` when the monitored name is none of the values a validation measures, or
    /// there is no evaluation set to measure it on.
    pub(crate) fn check_monitor(&self) -> Result<()> {
        let Some(es) = &self.early_stopping else {
            return Ok(());
        };
        let mut known = vec!["test_loss".to_string()];
        if self.accuracy {
            known.push("test_acc".into());
        }
        known.extend(self.metrics.iter().map(|(n, _)| n.clone()));
        if self.ema.is_some() {
            known.push("ema_test_loss".into());
            if self.accuracy {
                known.push("ema_test_acc".into());
            }
        }
        if self.test_loader.is_none() {
            return Err(Error::invalid(
                "early stopping",
                format!("monitor {}", es.config.monitor),
                "an evaluation set to validate on (early stopping and the best model need one)",
            ));
        }
        if !known.iter().any(|k| k == es.config.key()) {
            return Err(Error::invalid(
                "--monitor",
                &es.config.monitor,
                format!("one of {} (or val_loss / val_acc)", known.join(", ")),
            ));
        }
        Ok(())
    }

    /// The evaluation of the raw weights, with the EMA weights' loss and accuracy added to
    /// its metrics as `ema_test_loss` / `ema_test_acc` when there is an EMA.
    ///
    /// # Errors
    /// Errors of the model, the loss or a metric.
    pub fn evaluate_with_ema(&self) -> Result<EvalResult> {
        let mut eval = self.evaluate_all()?;
        if let Some(ema) = &self.ema {
            let inner = crate::train::checkpointing::inner_model(self.model.as_ref());
            let e = ema.with_weights(inner, || self.evaluate_all())?;
            eval.metrics.insert("ema_test_loss".into(), e.loss);
            if let Some(a) = e.accuracy {
                eval.metrics.insert("ema_test_acc".into(), a);
            }
        }
        Ok(eval)
    }

    /// Checks the monitored value of `eval` (when there is early stopping) and tells the
    /// hooks; returns whether the run stops.
    pub(crate) fn after_validation(
        &mut self,
        hooks: &mut [&mut dyn Hook],
        eval: EvalResult,
        mid_epoch: bool,
    ) -> Result<bool> {
        let epoch = self.state.epoch + 1;
        let step = self.state.global_step;
        let (monitored, d) = match &mut self.early_stopping {
            Some(es) => {
                let v = monitored_value(&eval, es.config.key());
                (v, es.check(v.unwrap_or(f64::NAN), epoch, step))
            }
            None => (
                None,
                Decision {
                    improved: false,
                    stop: false,
                },
            ),
        };
        let v = Validation {
            epoch,
            global_step: step,
            mid_epoch,
            eval,
            monitored,
            improved: d.improved,
            stop: d.stop,
        };
        for h in hooks.iter_mut() {
            h.on_validation_end(self, &v)?;
        }
        Ok(d.stop)
    }

    /// The mid-epoch validation due after the update just counted, if `every_steps` asks
    /// for one now; the model goes back to its training mode (frozen BatchNorm layers stay
    /// in evaluation mode). Returns whether the run stops.
    pub(crate) fn validate_if_due(&mut self, hooks: &mut [&mut dyn Hook]) -> Result<bool> {
        let Some(n) = self.validation.every_steps else {
            return Ok(false);
        };
        if self.state.global_step % n != 0 {
            return Ok(false);
        }
        let eval = self.evaluate_with_ema()?;
        if self.bn_eval {
            crate::finetune::frozen_batchnorm_to_eval(self.model.as_ref());
        }
        self.after_validation(hooks, eval, true)
    }
}
