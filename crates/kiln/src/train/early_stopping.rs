//! Early stopping and the best model (Lightning's `EarlyStopping(monitor, min_delta,
//! patience, mode)` + `ModelCheckpoint(monitor)`): after every validation the monitored
//! value is compared with the best so far; an improvement by more than `min_delta` resets
//! the wait count (and the run writes its best-model file), `patience` validations in a row
//! without one stop the run. The state (`best_score`, `wait_count`, `stopped_epoch`,
//! `patience`: Lightning's `state_dict` keys) is part of every checkpoint, so a resumed run
//! stops where the uninterrupted one does.
//!
//! ```
//! use kiln::train::early_stopping::{EarlyStopping, EarlyStoppingConfig};
//! let mut es = EarlyStopping::new(EarlyStoppingConfig {
//!     patience: Some(2),
//!     ..EarlyStoppingConfig::monitor("test_loss")
//! }).unwrap();
//! assert!(es.check(1.0, 1, 10).improved);
//! assert!(!es.check(1.0, 1, 20).stop); // no improvement: wait 1
//! assert!(es.check(1.5, 2, 30).stop); // wait 2 = patience: stop
//! ```

use crate::error::{Error, Result};
use crate::io::Value;
use serde::{Deserialize, Serialize};

/// Checkpoint `extra` key of the early-stopping state.
pub const EARLY_STOPPING_KEY: &str = "early_stopping";

/// Whether lower or higher values of the monitored quantity are better (the checkpoint
/// manager's ranking mode: one `--monitor` serves both).
pub use crate::checkpoint::MonitorMode;

/// What to monitor and when to stop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingConfig {
    /// The validation quantity: `test_loss` (alias `val_loss`), `test_acc` (`val_acc`),
    /// `ema_test_loss`, `ema_test_acc`, or the name of a trainer metric.
    pub monitor: String,
    /// Validations without improvement before the run stops; `None` only tracks the best
    /// (and writes the best-model file).
    pub patience: Option<usize>,
    /// The least change that counts as an improvement (absolute, ≥ 0).
    pub min_delta: f64,
    /// Lower or higher is better; `None`: [`MonitorMode::for_name`].
    pub mode: Option<MonitorMode>,
}

impl EarlyStoppingConfig {
    /// Tracks `monitor` without stopping (`patience: None`, `min_delta: 0`).
    pub fn monitor(name: &str) -> Self {
        EarlyStoppingConfig {
            monitor: name.to_string(),
            patience: None,
            min_delta: 0.0,
            mode: None,
        }
    }

    /// The mode in effect.
    pub fn mode(&self) -> MonitorMode {
        self.mode
            .unwrap_or_else(|| MonitorMode::for_name(&self.monitor))
    }

    /// The monitored name with Lightning's `val_` aliases mapped to kiln's `test_`.
    pub fn key(&self) -> &str {
        match self.monitor.as_str() {
            "val_loss" => "test_loss",
            "val_acc" => "test_acc",
            other => other,
        }
    }

    /// `K0003` for a negative or non-finite `min_delta`, a patience of 0 or an empty name.
    ///
    /// # Errors
    /// As above.
    pub fn validate(&self) -> Result<()> {
        if self.monitor.is_empty() {
            return Err(Error::invalid(
                "--monitor",
                "''",
                "a validation quantity such as test_loss or test_acc",
            ));
        }
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return Err(Error::invalid(
                "--min-delta",
                self.min_delta,
                "a finite value ≥ 0",
            ));
        }
        if self.patience == Some(0) {
            return Err(Error::invalid(
                "--early-stopping-patience",
                0,
                "at least 1 validation",
            ));
        }
        Ok(())
    }
}

/// What one check decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// The value improved on the best by more than `min_delta` (it is the new best).
    pub improved: bool,
    /// The run should stop (patience exhausted, or a non-finite value).
    pub stop: bool,
}

/// The early-stopping state of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    /// The settings.
    pub config: EarlyStoppingConfig,
    /// The best monitored value so far (`+inf` for min, `-inf` for max before any).
    pub best_score: f64,
    /// Validations since the last improvement.
    pub wait_count: usize,
    /// The (1-based) epoch in which the run stopped, 0 while it has not.
    pub stopped_epoch: usize,
    /// The global step of the best value, if any.
    pub best_step: Option<u64>,
}

impl EarlyStopping {
    /// A fresh state.
    ///
    /// # Errors
    /// `K0003` for invalid settings (see [`EarlyStoppingConfig::validate`]).
    pub fn new(config: EarlyStoppingConfig) -> Result<Self> {
        config.validate()?;
        let best_score = match config.mode() {
            MonitorMode::Min => f64::INFINITY,
            MonitorMode::Max => f64::NEG_INFINITY,
        };
        Ok(EarlyStopping {
            config,
            best_score,
            wait_count: 0,
            stopped_epoch: 0,
            best_step: None,
        })
    }

    /// Whether the run has stopped.
    pub fn stopped(&self) -> bool {
        self.stopped_epoch > 0
    }

    /// Lightning's `_evaluate_stopping_criteria`: a non-finite value stops at once
    /// (`check_finite`); `current` improves when `current + min_delta < best` (min) or
    /// `current - min_delta > best` (max); otherwise the wait count grows and reaching
    /// `patience` stops. `epoch` is 1-based, `step` the global step of the validation.
    pub fn check(&mut self, current: f64, epoch: usize, step: u64) -> Decision {
        if !current.is_finite() {
            let stop = self.config.patience.is_some();
            if stop {
                self.stopped_epoch = epoch;
            }
            return Decision {
                improved: false,
                stop,
            };
        }
        let d = self.config.min_delta;
        let improved = match self.config.mode() {
            MonitorMode::Min => current + d < self.best_score,
            MonitorMode::Max => current - d > self.best_score,
        };
        if improved {
            self.best_score = current;
            self.wait_count = 0;
            self.best_step = Some(step);
            return Decision {
                improved,
                stop: false,
            };
        }
        self.wait_count += 1;
        let stop = self.config.patience.is_some_and(|p| self.wait_count >= p);
        if stop {
            self.stopped_epoch = epoch;
        }
        Decision { improved, stop }
    }

    /// The state as a checkpoint value: Lightning's `EarlyStopping.state_dict()` keys
    /// (`wait_count`, `stopped_epoch`, `best_score`, `patience`) and `best_step`.
    pub fn to_value(&self) -> Value {
        Value::dict([
            ("wait_count", Value::Int(self.wait_count as i64)),
            ("stopped_epoch", Value::Int(self.stopped_epoch as i64)),
            ("best_score", Value::Float(self.best_score)),
            (
                "patience",
                Value::Int(self.config.patience.map_or(0, |p| p as i64)),
            ),
            (
                "best_step",
                self.best_step.map_or(Value::None, |s| Value::Int(s as i64)),
            ),
        ])
    }

    /// Restores the state [`Self::to_value`] wrote.
    ///
    /// # Errors
    /// `K0003` when a key is missing or of the wrong type.
    pub fn load_value(&mut self, v: &Value) -> Result<()> {
        let bad = |what: &str| {
            Error::invalid(
                "checkpoint early-stopping entry",
                format!("{what} missing or not a number"),
                "kiln's early-stopping state",
            )
        };
        let int = |k: &str| -> Result<usize> {
            v.get(k)
                .and_then(Value::as_i64)
                .filter(|i| *i >= 0)
                .map(|i| i as usize)
                .ok_or_else(|| bad(k))
        };
        self.wait_count = int("wait_count")?;
        self.stopped_epoch = int("stopped_epoch")?;
        self.best_score = v
            .get("best_score")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad("best_score"))?;
        self.best_step = v
            .get("best_step")
            .and_then(Value::as_i64)
            .map(|s| s.max(0) as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(patience: usize, min_delta: f64, monitor: &str) -> EarlyStopping {
        EarlyStopping::new(EarlyStoppingConfig {
            patience: Some(patience),
            min_delta,
            ..EarlyStoppingConfig::monitor(monitor)
        })
        .unwrap()
    }

    /// Lightning: `monitor_op(current - min_delta, best)` with `min_delta` negated for min.
    #[test]
    fn min_delta_must_be_exceeded() {
        let mut e = es(2, 0.1, "test_loss");
        assert!(e.check(1.0, 1, 1).improved);
        // 0.95 is better, but not by more than 0.1
        let d = e.check(0.95, 2, 2);
        assert_eq!((d.improved, d.stop, e.wait_count), (false, false, 1));
        assert_eq!(e.best_score, 1.0);
        let d = e.check(0.85, 3, 3);
        assert!(d.improved && e.wait_count == 0);
        e.check(0.9, 4, 4);
        let d = e.check(0.8, 5, 5);
        assert!(d.stop && e.stopped_epoch == 5 && e.best_step == Some(3));
    }

    #[test]
    fn accuracy_is_maximised_and_nan_stops() {
        let mut e = es(3, 0.0, "val_acc");
        assert_eq!(e.config.mode(), MonitorMode::Max);
        assert_eq!(e.config.key(), "test_acc");
        assert!(e.check(0.5, 1, 1).improved);
        assert!(!e.check(0.4, 1, 2).improved);
        assert!(e.check(f64::NAN, 2, 3).stop);
    }

    #[test]
    fn state_round_trips_and_bad_settings_are_k0003() {
        let mut e = es(2, 0.0, "test_loss");
        e.check(0.5, 1, 7);
        e.check(0.6, 1, 8);
        let mut f = es(2, 0.0, "test_loss");
        f.load_value(&e.to_value()).unwrap();
        assert_eq!(e, f);
        for c in [
            EarlyStoppingConfig {
                min_delta: -1.0,
                ..EarlyStoppingConfig::monitor("test_loss")
            },
            EarlyStoppingConfig {
                patience: Some(0),
                ..EarlyStoppingConfig::monitor("test_loss")
            },
            EarlyStoppingConfig::monitor(""),
        ] {
            assert_eq!(EarlyStopping::new(c).unwrap_err().code(), "K0003");
        }
    }
}
