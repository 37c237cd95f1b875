//! TensorBoard event files: a small writer (TFRecord framing with CRC-32C, hand-encoded
//! protocol buffers, the HParams plugin) and [`TensorBoardHook`], which logs a run the way
//! PyTorch Lightning's `TensorBoardLogger` + `LearningRateMonitor` lay it out.
//!
//! Files are `events.out.tfevents.<secs>.<host>.<pid>.<n>` in one directory (`kiln train
//! --tensorboard` uses `OUT/tensorboard`); point `tensorboard --logdir OUT` at the run.
//!
//! ```no_run
//! use kiln::train::TensorBoardHook;
//! # fn demo(model: impl kiln::train::IntoModel, data: impl kiln::train::IntoDataset) -> kiln::Result<()> {
//! let hook = TensorBoardHook::new("runs/mlp/tensorboard")?;
//! let mut trainer = kiln::train::Trainer::builder(model, data).hook(hook).build()?;
//! trainer.fit()?;
//! # Ok(()) }
//! ```

pub mod hparams;
pub mod proto;
pub mod record;
pub mod writer;

pub use hparams::HParamValue;
pub use proto::{Event, SummaryValue};
pub use writer::{EventWriter, event_files, read_events, remove_event_files};

use super::hooks::{Hook, StepReport};
use super::metrics::EpochMetrics;
use super::trainer::Trainer;
use crate::error::Result;
use std::path::Path;

/// `Event.file_version` of the first event of every file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Tag of the per-step training loss.
pub const STEP_LOSS_TAG: &str = "train/loss";
/// Tag of the per-update total gradient norm (logged when norm clipping measures it).
pub const STEP_GRAD_NORM_TAG: &str = "train/grad_norm";

/// The epoch-level tags the HParams tab lists as metrics.
const METRIC_TAGS: [&str; 4] = ["test_acc", "test_loss", "train_acc", "train_loss"];

/// A [`Hook`] writing a run as TensorBoard scalars and hyper-parameters.
///
/// - every optimizer step, at step `global_step` (1 after the first step): `train/loss` and
///   the learning rate of every parameter group, named as Lightning's `LearningRateMonitor`
///   names them: `lr-SGD` for one group, `lr-SGD/pg1`, `lr-SGD/pg2`, … for several (the events reach the file at each step, so
///   a checkpoint never covers steps the log lacks);
/// - every epoch, at the epoch's last step: each value of its `metrics.jsonl` line
///   ([`EpochMetrics`]) under the same name (`epoch`, `train_loss`, `test_loss`, `test_acc`,
///   `lr`, `seconds`, `train_acc`) and each named metric as `metrics/<name>`; NaN values (no
///   accuracy for regression, no evaluation set, a diverged loss), which `metrics.jsonl` writes
///   as `null`, are left out;
/// - at the start, the hyper-parameters: the run's [`crate::train::TrainConfig`] flattened
///   ([`hparams::flatten`]) or those given to [`TensorBoardHook::with_hparams`], as the
///   HParams plugin's experiment and session-start summaries; at the end a session-end
///   summary (success when every epoch ran).
///
/// A resumed run appends a new file (as `SummaryWriter` does) that starts with a
/// `SessionLog` START at the first step it trains, so TensorBoard drops what the interrupted
/// run had logged past its checkpoint. Values are stored as `float` (TensorBoard's
/// `simple_value`). Memory stays bounded: events go through a file buffer.
pub struct TensorBoardHook {
    writer: EventWriter,
    hparams: Option<Vec<(String, HParamValue)>>,
    started: bool,
}

impl TensorBoardHook {
    /// A hook writing a new event file in `dir` (created if needed).
    ///
    /// # Errors
    /// `K0002` when the directory or the file cannot be created.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        Ok(TensorBoardHook {
            writer: EventWriter::create(dir.as_ref())?,
            hparams: None,
            started: false,
        })
    }

    /// Logs these hyper-parameters instead of the trainer's configuration (a run built with
    /// [`Trainer::builder`] has none).
    pub fn with_hparams(mut self, hparams: Vec<(String, HParamValue)>) -> Self {
        self.hparams = Some(hparams);
        self
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        self.writer.path()
    }

    /// The learning-rate tags of an optimizer with `groups` groups (Lightning's names).
    pub fn lr_tags(optimizer: &str, groups: usize) -> Vec<String> {
        if groups == 1 {
            vec![format!("lr-{optimizer}")]
        } else {
            (1..=groups)
                .map(|g| format!("lr-{optimizer}/pg{g}"))
                .collect()
        }
    }

    fn start(&mut self, t: &Trainer) -> Result<()> {
        self.started = true;
        let step = t.state.global_step;
        if step > 0 {
            self.writer.session_start(step as i64 + 1)?;
        }
        let hp = match (&self.hparams, &t.config) {
            (Some(h), _) => h.clone(),
            (None, Some(cfg)) => {
                let json = serde_json::to_value(cfg).map_err(|e| {
                    crate::error::Error::invalid("training configuration", e, "JSON")
                })?;
                hparams::flatten(&json)
            }
            (None, None) => Vec::new(),
        };
        if !hp.is_empty() {
            self.writer.add_hparams(&hp, &METRIC_TAGS)?;
        }
        self.writer.flush()
    }
}

impl Hook for TensorBoardHook {
    fn on_epoch_start(&mut self, t: &Trainer) -> Result<()> {
        if !self.started {
            self.start(t)?;
        }
        Ok(())
    }

    fn on_step(&mut self, t: &Trainer, step: &StepReport) -> Result<()> {
        let groups = t.optimizer.param_groups();
        let tags = Self::lr_tags(t.optimizer.name(), groups.len());
        let mut scalars: Vec<(&str, f64)> = vec![(STEP_LOSS_TAG, step.loss)];
        scalars.extend(
            tags.iter()
                .map(String::as_str)
                .zip(groups.iter().map(|g| g.lr)),
        );
        if let Some(g) = step.grad_norm {
            scalars.push((STEP_GRAD_NORM_TAG, g));
        }
        self.writer
            .add_scalars(t.state.global_step as i64, &scalars)?;
        // On disk before a checkpoint of this step can be taken: a run that crashes and
        // resumes from that checkpoint has every step up to it in its first file.
        self.writer.flush()
    }

    fn on_epoch_end(&mut self, _t: &Trainer, m: &EpochMetrics) -> Result<()> {
        let named: Vec<(String, f64)> = m
            .metrics
            .iter()
            .map(|(k, v)| (format!("metrics/{k}"), *v))
            .collect();
        let mut scalars: Vec<(&str, f64)> = vec![
            ("epoch", m.epoch as f64),
            ("train_loss", m.train_loss),
            ("test_loss", m.test_loss),
            ("test_acc", m.test_acc),
            ("lr", m.lr),
            ("seconds", m.seconds),
            ("train_acc", m.train_acc),
        ];
        scalars.extend(named.iter().map(|(k, v)| (k.as_str(), *v)));
        if let Some(g) = m.grad_norm {
            scalars.push(("grad_norm", g));
        }
        scalars.retain(|(_, v)| !v.is_nan());
        self.writer.add_scalars(m.global_step as i64, &scalars)?;
        self.writer.flush()
    }

    fn on_fit_end(&mut self, t: &Trainer) -> Result<()> {
        if self.started {
            self.writer
                .end_session(t.state.global_step as i64, t.state.epoch >= t.epochs)?;
        }
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_tags_are_lightnings() {
        assert_eq!(TensorBoardHook::lr_tags("SGD", 1), ["lr-SGD"]);
        assert_eq!(
            TensorBoardHook::lr_tags("AdamW", 3),
            ["lr-AdamW/pg1", "lr-AdamW/pg2", "lr-AdamW/pg3"]
        );
    }
}
