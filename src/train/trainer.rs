//! `Trainer`: the training loop (`fit`), one training step and evaluation.

use super::config::TrainConfig;
use super::hooks::{Hook, StepReport};
use super::metrics::EpochMetrics;
use super::state::TrainState;
use crate::data::{Batch, DataLoader};
use crate::error::{Context, Result};
use crate::finetune::{PretrainedReport, UnfreezeSchedule, frozen_batchnorm_to_eval};
use crate::nn::Module;
use crate::nn::loss::{correct, cross_entropy};
use crate::optim::scheduler::LrScheduler;
use crate::optim::{Grads, Optimizer};
use crate::rng;
use candle_core::Device;
use std::time::Instant;

/// Batch size used for evaluation (it changes nothing but speed and memory).
pub const EVAL_BATCH_SIZE: usize = 512;

/// A model, its optimizer, the data and the run's position.
pub struct Trainer {
    /// The run's hyper-parameters.
    pub config: TrainConfig,
    /// The model being trained.
    pub model: Box<dyn Module>,
    /// Its optimizer (over the model's trainable parameters).
    pub optimizer: Box<dyn Optimizer>,
    /// The learning-rate scheduler, stepped after each epoch, if any.
    pub scheduler: Option<Box<dyn LrScheduler>>,
    /// Training batches (shuffled, seeded with `config.seed`).
    pub train_loader: DataLoader,
    /// Test batches (never shuffled).
    pub test_loader: DataLoader,
    /// Where the run is.
    pub state: TrainState,
    /// The device batches are moved to (the model must already be there).
    pub device: Device,
    /// Under DistributedDataParallel: the communicator, used to sum the epoch's training
    /// totals over ranks so every rank reports the global train loss and accuracy.
    pub comm: Option<std::sync::Arc<dyn crate::parallel::Communicator>>,
    /// Gradual unfreezing: steps applied at the start of their epoch (empty: none).
    pub unfreeze: UnfreezeSchedule,
    /// What loading the pretrained weights did (fine-tuning runs with `from`).
    pub pretrained: Option<PretrainedReport>,
}

impl Trainer {
    /// Takes the model out (leaving an `Identity` in its place), to wrap it — in
    /// `DataParallel` or DDP — and put the wrapper back in `self.model`.
    pub fn take_model(&mut self) -> Box<dyn Module> {
        std::mem::replace(&mut self.model, Box::new(crate::nn::Identity))
    }

    /// Runs the remaining epochs (from `state.epoch`, batch `state.step_in_epoch`) up to
    /// `config.epochs`, calling the hooks, and returns the metrics of the epochs it ran.
    ///
    /// The model is put in training mode for the training batches and in evaluation mode for
    /// the test set; the scheduler (if any) steps after each epoch's evaluation, as in
    /// PyTorch's `for epoch: train(); test(); scheduler.step()`.
    ///
    /// # Errors
    /// Any error of a step, of evaluation or of a hook.
    pub fn fit(&mut self, hooks: &mut [&mut dyn Hook]) -> Result<Vec<EpochMetrics>> {
        let mut out = Vec::new();
        rng::set_state(&self.state.rng)?;
        while self.state.epoch < self.config.epochs {
            let epoch = self.state.epoch;
            let due = self.unfreeze.due_at(epoch + 1, 0);
            self.apply_unfreeze(due)?;
            let lr = self.optimizer.param_groups().first().map_or(0.0, |g| g.lr);
            for h in hooks.iter_mut() {
                h.on_epoch_start(self)?;
            }
            let started = Instant::now();
            let seconds_before = self.state.epoch_seconds;
            self.model.train(true);
            if self.config.finetune.as_ref().is_some_and(|f| f.bn_eval) {
                frozen_batchnorm_to_eval(self.model.as_ref());
            }
            let loader = self.train_loader.clone();
            for batch in loader.epoch_from(epoch as u64, self.state.step_in_epoch)? {
                let report = self.train_step(&batch?)?;
                let s = &mut self.state;
                s.step_in_epoch += 1;
                s.global_step += 1;
                s.epoch_loss_sum += report.loss * report.batch_len as f64;
                s.epoch_correct += report.correct;
                s.epoch_seen += report.batch_len;
                s.epoch_seconds = seconds_before + started.elapsed().as_secs_f64();
                s.rng = rng::get_state();
                for h in hooks.iter_mut() {
                    h.on_step(self, &report)?;
                }
            }
            let (test_loss, test_acc) = self.evaluate()?;
            let (loss_sum, correct, seen) = self.epoch_totals()?;
            let s = &self.state;
            let seen = seen.max(1.0);
            let metrics = EpochMetrics {
                epoch: epoch + 1,
                train_loss: loss_sum / seen,
                test_loss,
                test_acc,
                lr,
                seconds: seconds_before + started.elapsed().as_secs_f64(),
                train_acc: correct / seen,
                global_step: s.global_step,
            };
            if self.state.best_metric.is_none_or(|b| test_acc > b) {
                self.state.best_metric = Some(test_acc);
                self.state.best_epoch = Some(epoch + 1);
            }
            if let Some(s) = self.scheduler.as_mut() {
                s.step(self.optimizer.as_mut())?;
            }
            self.state.finish_epoch();
            self.state.rng = rng::get_state();
            for h in hooks.iter_mut() {
                h.on_epoch_end(self, &metrics)?;
            }
            out.push(metrics);
        }
        Ok(out)
    }

    /// Applies the first `due` unfreezing steps that are not applied yet (see
    /// [`UnfreezeSchedule::due_at`]): `fit` calls it at the start of each epoch, a resume
    /// before it loads the optimizer state. Returns how many it applied.
    ///
    /// # Errors
    /// Errors of the optimizer or the scheduler when adding a group.
    pub fn apply_unfreeze(&mut self, due: usize) -> Result<usize> {
        let model = crate::train::checkpointing::inner_model(self.model.as_ref());
        let done = self.unfreeze.apply_first(
            due,
            model,
            self.optimizer.as_mut(),
            self.scheduler.as_deref_mut(),
        )?;
        Ok(done.len())
    }

    /// One optimizer step on `batch`: forward, cross-entropy, backward, update.
    ///
    /// # Errors
    /// Errors of the model, the loss, backward or the optimizer.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepReport> {
        let t0 = Instant::now();
        let x = batch
            .inputs
            .to_device(&self.device)
            .ctx("batch to device")?;
        let y = batch
            .targets
            .to_device(&self.device)
            .ctx("batch to device")?;
        let logits = self.model.forward(&x)?;
        let loss = cross_entropy(&logits, &y)?;
        let params = self.model.parameters();
        let mut grads = Grads::backward(&loss, &params)?;
        if let Some(ddp) = self
            .model
            .as_any()
            .downcast_ref::<crate::parallel::DistributedDataParallel>()
        {
            ddp.reduce_gradients(&mut grads)?;
        }
        self.optimizer.step(&grads)?;
        // bf16/f16 models give a loss in their dtype: read it as f32.
        let loss = loss
            .to_dtype(candle_core::DType::F32)
            .and_then(|l| l.to_scalar::<f32>())
            .ctx("loss value")? as f64;
        Ok(StepReport {
            loss,
            correct: correct(&logits, &y)?,
            batch_len: batch.len(),
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// The epoch's training totals `(loss_sum, correct, seen)`, summed over ranks under DDP.
    fn epoch_totals(&self) -> Result<(f64, f64, f64)> {
        let s = &self.state;
        let mut v = [
            s.epoch_loss_sum,
            s.epoch_correct as f64,
            s.epoch_seen as f64,
        ];
        if let Some(c) = &self.comm {
            c.all_reduce_sum_f64(&mut v)?;
        }
        Ok((v[0], v[1], v[2]))
    }

    /// Mean loss and accuracy on the test set, in evaluation mode (the previous mode is
    /// restored afterwards).
    ///
    /// # Errors
    /// Errors of the model or the loss.
    pub fn evaluate(&self) -> Result<(f64, f64)> {
        let was_training = self.model.is_training();
        self.model.eval();
        let result = evaluate(self.model.as_ref(), &self.test_loader, &self.device);
        self.model.train(was_training);
        result
    }
}

/// Mean cross-entropy and accuracy of `model` over every batch of `loader` (epoch 0's order),
/// in whatever mode the model is in.
///
/// # Errors
/// Errors of the model or the loss; `K0101` for an empty loader.
pub fn evaluate(model: &dyn Module, loader: &DataLoader, device: &Device) -> Result<(f64, f64)> {
    let (mut loss_sum, mut right, mut seen) = (0.0f64, 0usize, 0usize);
    for batch in loader.epoch(0)? {
        let batch = batch?;
        let x = batch.inputs.to_device(device).ctx("batch to device")?;
        let y = batch.targets.to_device(device).ctx("batch to device")?;
        let logits = model.forward(&x)?.detach();
        let loss = cross_entropy(&logits, &y)?
            .to_dtype(candle_core::DType::F32)
            .and_then(|l| l.to_scalar::<f32>())
            .ctx("loss value")?;
        loss_sum += loss as f64 * batch.len() as f64;
        right += correct(&logits, &y)?;
        seen += batch.len();
    }
    let n = seen.max(1) as f64;
    Ok((loss_sum / n, right as f64 / n))
}
