//! Per-epoch metrics and the `metrics.jsonl` log.

use super::hooks::Hook;
use super::trainer::Trainer;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Reads `null` (how JSON writes NaN and infinities) back as NaN, so a diverged run's log
/// stays readable.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// What one epoch produced; one line of `metrics.jsonl`. NaN values (a diverged loss, no
/// accuracy for regression, no evaluation set) are written as `null` and read back as NaN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, 1-based (the first epoch is 1).
    pub epoch: usize,
    /// Mean training loss over the epoch's samples (in training mode, before each step).
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f64,
    /// Mean test loss (evaluation mode).
    #[serde(deserialize_with = "nan_if_null")]
    pub test_loss: f64,
    /// Test accuracy in `[0, 1]`.
    #[serde(deserialize_with = "nan_if_null")]
    pub test_acc: f64,
    /// Learning rate used during the epoch.
    #[serde(deserialize_with = "nan_if_null")]
    pub lr: f64,
    /// Wall-clock seconds of the epoch (training and evaluation).
    #[serde(deserialize_with = "nan_if_null")]
    pub seconds: f64,
    /// Training accuracy over the epoch (in training mode).
    #[serde(deserialize_with = "nan_if_null")]
    pub train_acc: f64,
    /// Optimizer steps since the start of the run, at the end of the epoch.
    pub global_step: u64,
    /// The trainer's named metrics on the evaluation set (empty: none).
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub metrics: indexmap::IndexMap<String, f64>,
    /// Mean total gradient norm (before clipping) over the epoch's updates, when gradient
    /// norm clipping is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
}

/// Appends one JSON line per epoch to a file (a [`Hook`]).
pub struct MetricsLog {
    path: PathBuf,
}

impl MetricsLog {
    /// A log at `path`; with `fresh` the file is emptied first (a new run), otherwise lines are
    /// appended (a resumed run).
    ///
    /// # Errors
    /// `K0002` when the file cannot be created.
    pub fn new(path: impl Into<PathBuf>, fresh: bool) -> Result<Self> {
        let path = path.into();
        if fresh {
            std::fs::write(&path, b"").map_err(|e| Error::io("create", &path, e))?;
        }
        Ok(MetricsLog { path })
    }

    /// Appends one line.
    ///
    /// # Errors
    /// `K0002` when the file cannot be written.
    pub fn append(&self, m: &EpochMetrics) -> Result<()> {
        let line = serde_json::to_string(m).map_err(|e| Error::invalid("metrics", e, "JSON"))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io("open", &self.path, e))?;
        writeln!(f, "{line}").map_err(|e| Error::io("write", &self.path, e))?;
        f.flush().map_err(|e| Error::io("write", &self.path, e))
    }

    /// Reads every line of a metrics file.
    ///
    /// # Errors
    /// `K0002` when it cannot be read; `K0103` for a line that is not an [`EpochMetrics`].
    pub fn read(path: &Path) -> Result<Vec<EpochMetrics>> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| Error::BadData {
                    source_name: path.display().to_string(),
                    detail: format!("line {}: {e}", i + 1),
                })
            })
            .collect()
    }
}

impl Hook for MetricsLog {
    fn on_epoch_end(&mut self, _t: &Trainer, m: &EpochMetrics) -> Result<()> {
        self.append(m)
    }
}
