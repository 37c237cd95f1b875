//! Hook points of the training loop: where metrics logs, progress bars and (later) a
//! checkpoint manager plug in.

use super::metrics::EpochMetrics;
use super::trainer::Trainer;
use crate::error::Result;

/// What one optimizer step produced (with gradient accumulation: the sums over its
/// micro-batches and their mean loss).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// The step's loss (mean over the batch).
    pub loss: f64,
    /// Correct predictions in the batch.
    pub correct: usize,
    /// Samples in the batch.
    pub batch_len: usize,
    /// Seconds the step took (forward, backward, optimizer).
    pub seconds: f64,
    /// The total gradient norm before clipping, when norm clipping is on (`clip_grad_norm`)
    /// and the update was not skipped.
    pub grad_norm: Option<f64>,
    /// `16-mixed`: the loss scale the update's backward used (None without a GradScaler).
    pub grad_scale: Option<f64>,
    /// `16-mixed`: the GradScaler found inf/NaN gradients and skipped the optimizer step
    /// (the scale backs off; the step still counts, as in Lightning).
    pub skipped: bool,
}

/// Called by [`Trainer::fit`]; every method defaults to doing nothing. At each call the trainer's state is consistent: the model,
/// optimizer, [`super::TrainState`] (including the RNG state) all describe the same moment,
/// so a checkpoint taken here resumes bit-exactly.
pub trait Hook {
    /// After each optimizer step (`trainer.state.step_in_epoch` already counts it).
    ///
    /// # Errors
    /// Any error stops training and is returned by `fit`.
    fn on_step(&mut self, _trainer: &Trainer, _step: &StepReport) -> Result<()> {
        Ok(())
    }

    /// After each epoch's evaluation (`trainer.state.epoch` already counts the epoch).
    ///
    /// # Errors
    /// Any error stops training and is returned by `fit`.
    fn on_epoch_end(&mut self, _trainer: &Trainer, _metrics: &EpochMetrics) -> Result<()> {
        Ok(())
    }

    /// After each validation — every `val_every_steps` updates (before that step's
    /// [`Hook::on_step`]) or at the epoch's end (before [`Hook::on_epoch_end`]); with early
    /// stopping `v.improved` marks a new best (the run writes its best model here).
    ///
    /// # Errors
    /// Any error stops training and is returned by `fit`.
    fn on_validation_end(
        &mut self,
        _trainer: &Trainer,
        _v: &super::validation::Validation,
    ) -> Result<()> {
        Ok(())
    }

    /// Before an epoch starts (or resumes at `trainer.state.step_in_epoch`).
    ///
    /// # Errors
    /// Any error stops training and is returned by `fit`.
    fn on_epoch_start(&mut self, _trainer: &Trainer) -> Result<()> {
        Ok(())
    }

    /// When `fit` returns, whether it finished or failed (background work is waited for
    /// here: an asynchronous checkpoint writer reports its error).
    ///
    /// # Errors
    /// Returned by `fit` when the run itself succeeded.
    fn on_fit_end(&mut self, _trainer: &Trainer) -> Result<()> {
        Ok(())
    }
}
