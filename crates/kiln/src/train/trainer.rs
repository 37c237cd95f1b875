//! `Trainer`: the training loop (`fit`), one training step and evaluation.

use super::config::TrainConfig;
use super::hooks::{Hook, StepReport};
use super::metrics::EpochMetrics;
use super::setup::RunSetup;
use super::state::TrainState;
use crate::data::{Batch, DataLoader};
use crate::error::{Context, Error, Result};
use crate::finetune::{PretrainedReport, UnfreezeSchedule, frozen_batchnorm_to_eval};
use crate::nn::Module;
use crate::nn::loss::{correct, cross_entropy};
use crate::optim::Optimizer;
use crate::optim::scheduler::{LrScheduler, after_epoch, after_update};
use crate::rng;
use candle_core::{Device, Tensor};
use indexmap::IndexMap;
use std::sync::Arc;
use std::time::Instant;

/// A loss: the model's outputs and the batch's targets → a scalar tensor to minimise
/// (`kiln::nn::loss::cross_entropy`, `mse_loss`, or any closure of the two).
pub type LossFn = Arc<dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + Sync>;

/// A metric: outputs and targets of one evaluation batch → its mean value over the batch
/// (kiln weights batches by their size, so the epoch's value is the mean over samples).
pub type MetricFn = Arc<dyn Fn(&Tensor, &Tensor) -> Result<f64> + Send + Sync>;

/// What a training step does when its loss is NaN or infinite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonFinitePolicy {
    /// Stop with `K0703` naming the step and the learning rate, before the step is applied
    /// (the model, the last checkpoint and `metrics.jsonl` stay as they were).
    #[default]
    Stop,
    /// Apply the step anyway and go on, as a plain PyTorch loop would.
    Continue,
}

/// Batch size used for evaluation (it changes nothing but speed and memory).
pub const EVAL_BATCH_SIZE: usize = 512;

/// A model, its optimizer, the data and the run's position.
pub struct Trainer {
    /// The `kiln train` configuration the run was built from (None for a run built with
    /// [`Trainer::builder`]); stored in checkpoints and compared on resume.
    pub config: Option<TrainConfig>,
    /// Epochs to train in total.
    pub epochs: usize,
    /// The loss minimised by each step.
    pub loss: LossFn,
    /// Whether to count correct predictions (classification: outputs `[B, C]`, integer
    /// targets `[B]`); off for regression.
    pub accuracy: bool,
    /// Named metrics computed on the evaluation set after each epoch.
    pub metrics: Vec<(String, MetricFn)>,
    /// Keep frozen BatchNorm layers in evaluation mode while training (fine-tuning).
    pub bn_eval: bool,
    /// What a NaN or infinite training loss does (default: stop with `K0703`).
    pub on_nonfinite_loss: NonFinitePolicy,
    /// What was built (model spec, optimizer and groups, data order): written into
    /// checkpoints and compared on resume.
    pub setup: RunSetup,
    /// Hooks the trainer owns (added with [`super::TrainerBuilder::hook`]), called before
    /// the hooks passed to [`Trainer::fit_with`].
    pub hooks: Vec<Box<dyn Hook>>,
    /// The model being trained.
    pub model: Box<dyn Module>,
    /// Its optimizer (over the model's trainable parameters).
    pub optimizer: Box<dyn Optimizer>,
    /// Gradient accumulation and clipping (see [`super::step`]).
    pub step_options: super::step::StepOptions,
    /// The exponential moving average of the weights, updated after every optimizer step,
    /// if any (see [`super::ema`]).
    pub ema: Option<super::ema::Ema>,
    /// When to validate (every N updates or at each epoch's end) and what to monitor.
    pub validation: super::validation::ValidationConfig,
    /// The early-stopping state, when `validation.early_stopping` is set.
    pub early_stopping: Option<super::early_stopping::EarlyStopping>,
    /// Mixed precision (Lightning's `precision`): the autocast dtype every forward runs
    /// under (training and evaluation), see [`crate::amp::Precision`].
    pub precision: crate::amp::Precision,
    /// The dynamic loss scale of a `16-mixed` run (None otherwise): the loss is scaled before
    /// backward, the gradients unscaled before clipping, an update with inf/NaN gradients
    /// skipped; saved in checkpoints (extra key `grad_scaler`, PyTorch's `state_dict`).
    pub grad_scaler: Option<crate::amp::GradScaler>,
    /// Gradients summed over the micro-batches of the update in progress.
    pub(crate) pending: super::step::Pending,
    /// The run lock of the checkpoint directory (`TrainerBuilder::checkpoint_dir`), held from
    /// `build()` until `fit` returns.
    pub(crate) run_lock: Option<super::run_lock::RunLock>,
    /// The learning-rate scheduler, stepped after each epoch, if any.
    pub scheduler: Option<Box<dyn LrScheduler>>,
    /// Training batches (shuffled, seeded with `config.seed`).
    pub train_loader: DataLoader,
    /// Evaluation batches (never shuffled), if there is an evaluation set.
    pub test_loader: Option<DataLoader>,
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

    /// Runs the remaining epochs with the trainer's own hooks (see [`Trainer::fit_with`]).
    ///
    /// # Errors
    /// Any error of a step, of evaluation or of a hook.
    pub fn fit(&mut self) -> Result<Vec<EpochMetrics>> {
        self.fit_with(&mut [])
    }

    /// Runs the remaining epochs (from `state.epoch`, batch `state.step_in_epoch`) up to
    /// `epochs`, calling the trainer's hooks and then `hooks`, and returns the metrics of the
    /// epochs it ran.
    ///
    /// The model is put in training mode for the training batches and in evaluation mode for
    /// the test set; the scheduler (if any) steps after each epoch's evaluation, as in
    /// PyTorch's `for epoch: train(); test(); scheduler.step()`.
    ///
    /// # Errors
    /// Any error of a step, of evaluation or of a hook.
    pub fn fit_with(&mut self, extra: &mut [&mut dyn Hook]) -> Result<Vec<EpochMetrics>> {
        let mut owned = std::mem::take(&mut self.hooks);
        let result = {
            let mut hooks: Vec<&mut dyn Hook> = owned
                .iter_mut()
                .map(|h| h.as_mut() as &mut dyn Hook)
                .collect();
            for h in extra.iter_mut() {
                hooks.push(&mut **h);
            }
            let ran = self.fit_hooks(&mut hooks);
            let mut ended = Ok(());
            for h in hooks.iter_mut() {
                let r = h.on_fit_end(self);
                if ended.is_ok() {
                    ended = r;
                }
            }
            ran.and_then(|m| ended.map(|()| m))
        };
        owned.append(&mut self.hooks);
        self.hooks = owned;
        // The run is over (finished or failed): another run may take the directory.
        self.run_lock = None;
        result
    }

    fn fit_hooks(&mut self, hooks: &mut [&mut dyn Hook]) -> Result<Vec<EpochMetrics>> {
        let mut out = Vec::new();
        rng::set_state(&self.state.rng)?;
        while self.state.epoch < self.epochs {
            // stopped early: a run resumed after the stop only finishes the stopping epoch
            if self.is_stopped() && self.state.step_in_epoch == 0 {
                break;
            }
            let epoch = self.state.epoch;
            let due = self.unfreeze.due_at(epoch + 1, 0);
            self.apply_unfreeze(due)?;
            let current_lr = self.optimizer.param_groups().first().map_or(0.0, |g| g.lr);
            let lr = *self.state.epoch_lr.get_or_insert(current_lr);
            for h in hooks.iter_mut() {
                h.on_epoch_start(self)?;
            }
            let started = Instant::now();
            let seconds_before = self.state.epoch_seconds;
            self.model.train(true);
            if self.bn_eval {
                frozen_batchnorm_to_eval(self.model.as_ref());
            }
            let loader = self.train_loader.clone();
            let batches = loader.num_batches();
            let accumulate = self.step_options.accumulate_grad_batches.max(1);
            // (a run stopped mid-epoch and resumed runs none of the epoch's remaining batches)
            let start = if self.is_stopped() {
                batches
            } else {
                self.state.step_in_epoch
            };
            for batch in loader.epoch_from(epoch as u64, start)? {
                let micro = self.micro_step(&batch?)?;
                let s = &mut self.state;
                s.step_in_epoch += 1;
                s.epoch_loss_sum += micro.loss * micro.batch_len as f64;
                s.epoch_correct += micro.correct;
                s.epoch_seen += micro.batch_len;
                // An update after every `accumulate` micro-batches, and at the epoch's end.
                if self.pending_micro_batches() < accumulate && self.state.step_in_epoch < batches {
                    continue;
                }
                let report = self.apply_update()?;
                after_update(self.scheduler.as_deref_mut(), self.optimizer.as_mut())?;
                let s = &mut self.state;
                s.global_step += 1;
                if let Some(g) = report.grad_norm {
                    s.epoch_grad_norm_sum += g;
                    s.epoch_grad_norms += 1;
                }
                let stop = self.validate_if_due(hooks)?;
                let s = &mut self.state;
                s.epoch_seconds = seconds_before + started.elapsed().as_secs_f64();
                s.rng = rng::get_state();
                for h in hooks.iter_mut() {
                    h.on_step(self, &report)?;
                }
                if stop {
                    break;
                }
            }
            let eval = self.evaluate_with_ema()?;
            if self.validation.every_steps.is_none() {
                self.after_validation(hooks, eval.clone(), false)?;
            }
            let (test_loss, test_acc) = (eval.loss, eval.accuracy.unwrap_or(f64::NAN));
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
                train_acc: if self.accuracy {
                    correct / seen
                } else {
                    f64::NAN
                },
                global_step: s.global_step,
                metrics: eval.metrics,
                grad_norm: (s.epoch_grad_norms > 0)
                    .then(|| s.epoch_grad_norm_sum / s.epoch_grad_norms as f64),
            };
            // Higher is better: accuracy, or the negated loss when there is none.
            let score = eval.accuracy.unwrap_or(-test_loss);
            if !score.is_nan() && self.state.best_metric.is_none_or(|b| score > b) {
                self.state.best_metric = Some(score);
                self.state.best_epoch = Some(epoch + 1);
            }
            after_epoch(
                self.scheduler.as_deref_mut(),
                self.optimizer.as_mut(),
                test_loss,
            )?;
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

    /// One optimizer step on `batch`: forward, loss, backward, update (with the gradients of
    /// any micro-batches still pending from [`Trainer::micro_step`]); `fit` itself groups
    /// `accumulate_grad_batches` micro-batches per update.
    ///
    /// # Errors
    /// Errors of the model, the loss, backward or the optimizer.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepReport> {
        self.micro_step(batch)?;
        self.apply_update()
    }

    /// `K0703` when the loss value `v` is NaN or infinite, naming the step, the batch and the
    /// learning rates.
    pub(crate) fn check_finite(&self, v: f64) -> Result<()> {
        if v.is_finite() {
            return Ok(());
        }
        let lrs: Vec<f64> = self.optimizer.param_groups().iter().map(|g| g.lr).collect();
        let lr = match lrs.as_slice() {
            [one] => format!("{one}"),
            many => format!("{many:?} (one per parameter group)"),
        };
        Err(Error::NonFiniteLoss {
            loss: v,
            step: self.state.global_step,
            epoch: self.state.epoch,
            batch: self.state.step_in_epoch,
            lr,
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

    /// Mean loss and accuracy (NaN without accuracy) on the evaluation set, in evaluation
    /// mode (the previous mode is restored afterwards); NaN for both without an evaluation set.
    ///
    /// # Errors
    /// Errors of the model or the loss.
    pub fn evaluate(&self) -> Result<(f64, f64)> {
        let r = self.evaluate_all()?;
        Ok((r.loss, r.accuracy.unwrap_or(f64::NAN)))
    }

    /// Loss, accuracy and every named metric on the evaluation set (see [`Self::evaluate`]).
    ///
    /// # Errors
    /// Errors of the model, the loss or a metric.
    pub fn evaluate_all(&self) -> Result<EvalResult> {
        let Some(loader) = &self.test_loader else {
            return Ok(EvalResult {
                loss: f64::NAN,
                accuracy: None,
                metrics: self
                    .metrics
                    .iter()
                    .map(|(n, _)| (n.clone(), f64::NAN))
                    .collect(),
            });
        };
        let was_training = self.model.is_training();
        self.model.eval();
        // Lightning evaluates under the run's autocast too.
        let _amp = crate::amp::autocast::enter(self.precision.autocast_dtype());
        let result = evaluate_with(
            self.model.as_ref(),
            loader,
            &self.device,
            &self.loss,
            self.accuracy,
            &self.metrics,
        );
        self.model.train(was_training);
        result
    }
}

/// What an evaluation pass measured.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalResult {
    /// Mean loss over the samples.
    pub loss: f64,
    /// Accuracy in `[0, 1]`, when counted.
    pub accuracy: Option<f64>,
    /// Each named metric, averaged over the samples.
    pub metrics: IndexMap<String, f64>,
}

/// Mean cross-entropy and accuracy of `model` over every batch of `loader` (epoch 0's order),
/// in whatever mode the model is in.
///
/// # Errors
/// Errors of the model or the loss; `K0101` for an empty loader.
pub fn evaluate(model: &dyn Module, loader: &DataLoader, device: &Device) -> Result<(f64, f64)> {
    let ce: LossFn = Arc::new(cross_entropy);
    let r = evaluate_with(model, loader, device, &ce, true, &[])?;
    Ok((r.loss, r.accuracy.unwrap_or(f64::NAN)))
}

/// Mean `loss`, accuracy (when `accuracy`) and `metrics` of `model` over every batch of
/// `loader` (epoch 0's order), in whatever mode the model is in.
///
/// # Errors
/// Errors of the model, the loss or a metric.
pub fn evaluate_with(
    model: &dyn Module,
    loader: &DataLoader,
    device: &Device,
    loss_fn: &LossFn,
    accuracy: bool,
    metrics: &[(String, MetricFn)],
) -> Result<EvalResult> {
    let (mut loss_sum, mut right, mut seen) = (0.0f64, 0usize, 0usize);
    let mut sums = vec![0.0f64; metrics.len()];
    for batch in loader.epoch(0)? {
        let batch = batch?;
        let x = batch.inputs.to_device(device).ctx("batch to device")?;
        let y = batch.targets.to_device(device).ctx("batch to device")?;
        let logits = model.forward(&x)?.detach();
        let loss = loss_fn(&logits, &y)?
            .to_dtype(candle_core::DType::F32)
            .and_then(|l| l.to_scalar::<f32>())
            .ctx("loss value")?;
        let n = batch.len() as f64;
        loss_sum += loss as f64 * n;
        if accuracy {
            right += correct(&logits, &y)?;
        }
        for (sum, (_, m)) in sums.iter_mut().zip(metrics) {
            *sum += m(&logits, &y)? * n;
        }
        seen += batch.len();
    }
    let n = seen.max(1) as f64;
    Ok(EvalResult {
        loss: loss_sum / n,
        accuracy: accuracy.then(|| right as f64 / n),
        metrics: metrics
            .iter()
            .zip(sums)
            .map(|((name, _), s)| (name.clone(), s / n))
            .collect(),
    })
}
