//! `TrainState`: where a run is, explicit so that a checkpoint can save it and a resume can
//! continue bit-exactly.

use crate::rng::GeneratorState;
use serde::{Deserialize, Serialize};

/// The position and running totals of a training run.
///
/// A resume restores this, the model, the optimizer, the scheduler and the RNG (`rng`), then calls
/// [`super::Trainer::fit`] again: the loader restarts epoch `epoch` at batch
/// `step_in_epoch` with the same order (a pure function of `(seed, epoch)`), so the run goes on
/// exactly as if it had not stopped (same thread count assumed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The epoch in progress (0-based); equals the number of completed epochs between epochs.
    pub epoch: usize,
    /// Batches of `epoch` already trained on.
    pub step_in_epoch: usize,
    /// Optimizer steps taken since the start of the run.
    pub global_step: u64,
    /// Best test accuracy seen at the end of an epoch, if any epoch has ended.
    pub best_metric: Option<f64>,
    /// Epoch (1-based) at which `best_metric` was reached.
    pub best_epoch: Option<usize>,
    /// Sum over the epoch's batches of `loss · batch_len` (for the epoch's mean train loss).
    pub epoch_loss_sum: f64,
    /// Correct predictions so far in the epoch.
    pub epoch_correct: usize,
    /// Samples seen so far in the epoch.
    pub epoch_seen: usize,
    /// Seconds spent in the epoch so far (accumulated over interruptions).
    pub epoch_seconds: f64,
    /// Sum of the epoch's total gradient norms (with norm clipping), for their mean.
    pub epoch_grad_norm_sum: f64,
    /// Updates of the epoch that measured a gradient norm.
    pub epoch_grad_norms: usize,
    /// The first group's learning rate when the epoch started (what its metrics report as
    /// `lr`; a per-step schedule has moved it by the time a resumed run reaches the end).
    pub epoch_lr: Option<f64>,
    /// kiln's default generator after the last completed step (dropout masks continue from
    /// here on resume).
    pub rng: GeneratorState,
}

impl TrainState {
    /// The state at the very start of a run, capturing the generator as it is now.
    pub fn start() -> Self {
        TrainState {
            epoch: 0,
            step_in_epoch: 0,
            global_step: 0,
            best_metric: None,
            best_epoch: None,
            epoch_loss_sum: 0.0,
            epoch_correct: 0,
            epoch_seen: 0,
            epoch_seconds: 0.0,
            epoch_grad_norm_sum: 0.0,
            epoch_grad_norms: 0,
            epoch_lr: None,
            rng: crate::rng::get_state(),
        }
    }

    /// Clears the per-epoch totals and moves to the next epoch.
    pub(crate) fn finish_epoch(&mut self) {
        self.epoch += 1;
        self.step_in_epoch = 0;
        self.epoch_loss_sum = 0.0;
        self.epoch_correct = 0;
        self.epoch_seen = 0;
        self.epoch_seconds = 0.0;
        self.epoch_grad_norm_sum = 0.0;
        self.epoch_grad_norms = 0;
        self.epoch_lr = None;
    }
}
