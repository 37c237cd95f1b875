//! `Trainer::builder(model, train_set)`: the training loop for any model and any data.
//!
//! ```no_run
//! use kiln::nn::{Linear, Module};
//! use kiln::data::TensorDataset;
//! use kiln::optim::SgdConfig;
//! use kiln::train::{OptimizerChoice, Trainer};
//! # fn main() -> kiln::Result<()> {
//! let x = kiln::candle::Tensor::zeros((64, 4), kiln::candle::DType::F32, &kiln::candle::Device::Cpu)?;
//! let data = TensorDataset::new("toy", &x, vec![0; 64])?;
//! let mut trainer = Trainer::builder(Linear::new(4, 2, true)?, data)
//!     .optimizer(OptimizerChoice::Sgd(SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() }))
//!     .batch_size(16)
//!     .epochs(3)
//!     .checkpoint_dir("runs/toy/checkpoints")
//!     .build()?;
//! let metrics = trainer.fit()?;
//! # Ok(()) }
//! ```

use super::checkpointing::{CheckpointHook, restore};
use super::hooks::Hook;
use super::setup::RunSetup;
use super::state::TrainState;
use super::trainer::{EVAL_BATCH_SIZE, LossFn, MetricFn, Trainer};
use crate::checkpoint::{Checkpoint, CheckpointManager, Policy, Resume};
use crate::data::{DataLoader, Dataset};
use crate::error::{Error, Result};
use crate::finetune::{PretrainedReport, UnfreezeSchedule};
use crate::io::LoadOptions;
use crate::nn::Module;
use crate::optim::scheduler::LrScheduler;
use crate::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, Adamax, AdamaxConfig, GroupSpec, NAdam,
    NAdamConfig, Optimizer, RAdam, RAdamConfig, RMSprop, RMSpropConfig, Sgd, SgdConfig,
};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Anything that can be the trainer's model: a module by value, or already boxed.
pub trait IntoModel {
    /// The model, boxed.
    fn into_model(self) -> Box<dyn Module>;
}

impl<M: Module> IntoModel for M {
    fn into_model(self) -> Box<dyn Module> {
        Box::new(self)
    }
}

impl IntoModel for Box<dyn Module> {
    fn into_model(self) -> Box<dyn Module> {
        self
    }
}

/// Anything that can be a data set: a data set by value, or already shared.
pub trait IntoDataset {
    /// The data set, shared.
    fn into_dataset(self) -> Arc<dyn Dataset>;
}

impl<D: Dataset + 'static> IntoDataset for D {
    fn into_dataset(self) -> Arc<dyn Dataset> {
        Arc::new(self)
    }
}

impl IntoDataset for Arc<dyn Dataset> {
    fn into_dataset(self) -> Arc<dyn Dataset> {
        self
    }
}

/// The optimizer a builder makes over the model's trainable parameters (or the given groups).
pub enum OptimizerChoice {
    /// `torch.optim.SGD`.
    Sgd(SgdConfig),
    /// `torch.optim.Adam`.
    Adam(AdamConfig),
    /// `torch.optim.AdamW` (use [`AdamConfig::adamw`] for PyTorch's defaults).
    AdamW(AdamConfig),
    /// `torch.optim.RMSprop`.
    RMSprop(RMSpropConfig),
    /// `torch.optim.Adagrad`.
    Adagrad(AdagradConfig),
    /// `torch.optim.Adamax`.
    Adamax(AdamaxConfig),
    /// `torch.optim.NAdam`.
    NAdam(NAdamConfig),
    /// `torch.optim.RAdam`.
    RAdam(RAdamConfig),
    /// Any optimizer built from the parameter groups.
    Custom(OptimizerFn),
}

/// Makes an optimizer from the parameter groups ([`OptimizerChoice::Custom`]).
pub type OptimizerFn = Box<dyn FnOnce(Vec<GroupSpec>) -> Result<Box<dyn Optimizer>>>;

impl OptimizerChoice {
    fn build(self, groups: Vec<GroupSpec>) -> Result<Box<dyn Optimizer>> {
        Ok(match self {
            OptimizerChoice::Sgd(c) => Box::new(Sgd::with_groups(groups, c)?),
            OptimizerChoice::Adam(c) => Box::new(Adam::with_groups(groups, c)?),
            OptimizerChoice::AdamW(c) => Box::new(AdamW::with_groups(groups, c)?),
            OptimizerChoice::RMSprop(c) => Box::new(RMSprop::with_groups(groups, c)?),
            OptimizerChoice::Adagrad(c) => Box::new(Adagrad::with_groups(groups, c)?),
            OptimizerChoice::Adamax(c) => Box::new(Adamax::with_groups(groups, c)?),
            OptimizerChoice::NAdam(c) => Box::new(NAdam::with_groups(groups, c)?),
            OptimizerChoice::RAdam(c) => Box::new(RAdam::with_groups(groups, c)?),
            OptimizerChoice::Custom(f) => f(groups)?,
        })
    }
}

/// A scheduler made once the optimizer exists (None: no scheduler).
pub type SchedulerFn = Box<dyn FnOnce(&mut dyn Optimizer) -> Result<Option<Box<dyn LrScheduler>>>>;

/// Builds a [`Trainer`]; every setting has PyTorch's usual default (SGD lr 0.01, batch 64,
/// shuffled, cross-entropy with accuracy for integer targets, 1 epoch, seed 0, CPU).
pub struct TrainerBuilder {
    model: Box<dyn Module>,
    train: Arc<dyn Dataset>,
    eval: Option<Arc<dyn Dataset>>,
    optimizer: OptimizerChoice,
    groups: Option<Vec<GroupSpec>>,
    scheduler: Option<SchedulerFn>,
    loss: Option<LossFn>,
    accuracy: Option<bool>,
    workers: usize,
    metrics: Vec<(String, MetricFn)>,
    hooks: Vec<Box<dyn Hook>>,
    batch_size: usize,
    eval_batch_size: usize,
    epochs: usize,
    seed: u64,
    shuffle: bool,
    drop_last: bool,
    device: Device,
    checkpoint_dir: Option<PathBuf>,
    policy: Policy,
    resume: Option<Resume>,
    bn_eval: bool,
    on_nonfinite_loss: super::trainer::NonFinitePolicy,
    reseed: bool,
    unfreeze: UnfreezeSchedule,
    pretrained: Option<PretrainedReport>,
    step: super::step::StepOptions,
    ema: Option<super::ema::EmaConfig>,
    validation: super::validation::ValidationConfig,
    precision: crate::amp::Precision,
    grad_scaler: Option<crate::amp::GradScalerConfig>,
}

impl Trainer {
    /// A builder for a trainer of `model` on `train_set`.
    pub fn builder(model: impl IntoModel, train_set: impl IntoDataset) -> TrainerBuilder {
        TrainerBuilder {
            model: model.into_model(),
            train: train_set.into_dataset(),
            eval: None,
            optimizer: OptimizerChoice::Sgd(SgdConfig::default()),
            groups: None,
            scheduler: None,
            loss: None,
            accuracy: None,
            workers: 0,
            metrics: Vec::new(),
            hooks: Vec::new(),
            batch_size: 64,
            eval_batch_size: EVAL_BATCH_SIZE,
            epochs: 1,
            seed: 0,
            shuffle: true,
            drop_last: false,
            device: Device::Cpu,
            checkpoint_dir: None,
            policy: Policy::default(),
            resume: None,
            bn_eval: false,
            on_nonfinite_loss: Default::default(),
            reseed: true,
            unfreeze: UnfreezeSchedule::default(),
            pretrained: None,
            step: Default::default(),
            ema: None,
            validation: Default::default(),
            precision: Default::default(),
            grad_scaler: None,
        }
    }
}

impl TrainerBuilder {
    /// The optimizer (SGD with PyTorch's defaults otherwise).
    pub fn optimizer(mut self, choice: OptimizerChoice) -> Self {
        self.optimizer = choice;
        self
    }

    /// Parameter groups instead of one group of every trainable parameter (e.g. from
    /// [`crate::finetune::param_groups`]).
    pub fn param_groups(mut self, groups: Vec<GroupSpec>) -> Self {
        self.groups = Some(groups);
        self
    }

    /// A learning-rate scheduler, made from the optimizer and stepped after each epoch:
    /// `.scheduler(|opt| Ok(Box::new(StepLr::new(opt, 5, 0.1)?)))`.
    pub fn scheduler(
        mut self,
        make: impl FnOnce(&mut dyn Optimizer) -> Result<Box<dyn LrScheduler>> + 'static,
    ) -> Self {
        self.scheduler = Some(Box::new(move |opt| make(opt).map(Some)));
        self
    }

    /// [`Self::scheduler`] with a maker that may decide on no scheduler.
    pub fn scheduler_opt(
        mut self,
        make: impl FnOnce(&mut dyn Optimizer) -> Result<Option<Box<dyn LrScheduler>>> + 'static,
    ) -> Self {
        self.scheduler = Some(Box::new(make));
        self
    }

    /// The loss of outputs and targets (cross-entropy by default):
    /// `.loss(kiln::nn::loss::mse_loss)` for regression.
    pub fn loss(
        mut self,
        loss: impl Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + Sync + 'static,
    ) -> Self {
        self.loss = Some(Arc::new(loss));
        self
    }

    /// Whether to count accuracy (default: when the training targets are integers).
    pub fn accuracy(mut self, on: bool) -> Self {
        self.accuracy = Some(on);
        self
    }

    /// A named metric computed on the evaluation set after each epoch (the mean of the
    /// closure's per-batch value, weighted by batch size); logged in `EpochMetrics::metrics`.
    pub fn metric(
        mut self,
        name: impl Into<String>,
        metric: impl Fn(&Tensor, &Tensor) -> Result<f64> + Send + Sync + 'static,
    ) -> Self {
        self.metrics.push((name.into(), Arc::new(metric)));
        self
    }

    /// The evaluation set (`test_loss`, `test_acc` and the metrics after each epoch).
    pub fn eval_set(mut self, eval: impl IntoDataset) -> Self {
        self.eval = Some(eval.into_dataset());
        self
    }

    /// A hook called at each step and epoch (a logger, early stopping, …).
    pub fn hook(mut self, hook: impl Hook + 'static) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }

    /// Training batch size (64).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Evaluation batch size (512; it changes nothing but speed and memory).
    pub fn eval_batch_size(mut self, n: usize) -> Self {
        self.eval_batch_size = n;
        self
    }

    /// Epochs to train (1).
    pub fn epochs(mut self, n: usize) -> Self {
        self.epochs = n;
        self
    }

    /// The run's seed: kiln's generator is seeded with it when the trainer is built (so it
    /// decides dropout masks) and it orders the training batches (0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Whether [`Self::build`] re-seeds kiln's generator with the seed (true). `kiln train`
    /// seeds it before building the model instead, so initialisation draws from it too.
    pub fn seed_generator(mut self, on: bool) -> Self {
        self.reseed = on;
        self
    }

    /// Shuffle the training batches each epoch (true).
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// Data-loading threads for the training and evaluation loaders
    /// ([`DataLoader::workers`]; 0, the default, loads in the training thread).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Drop the last incomplete training batch (false).
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }

    /// The device the model is moved to and batches are sent to (CPU).
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// What a NaN or infinite loss does: stop with `K0703` (the default, before the step is
    /// applied) or continue as a plain PyTorch loop would.
    pub fn on_nonfinite_loss(mut self, policy: super::trainer::NonFinitePolicy) -> Self {
        self.on_nonfinite_loss = policy;
        self
    }

    /// Sum the gradients of `n` micro-batches before each optimizer step (Lightning's
    /// `accumulate_grad_batches`; each loss is divided by `n`). 1 (the default) steps after
    /// every batch.
    pub fn accumulate_grad_batches(mut self, n: usize) -> Self {
        self.step.accumulate_grad_batches = n;
        self
    }

    /// `torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)` before each step (norm
    /// type 2.0 is PyTorch's default; `f64::INFINITY` for the max norm); the total norm is
    /// reported in [`super::StepReport::grad_norm`] and `metrics.jsonl`.
    pub fn clip_grad_norm(mut self, max_norm: f64, norm_type: f64) -> Self {
        self.step.clip_grad_norm = Some(max_norm);
        self.step.clip_grad_norm_type = norm_type;
        self
    }

    /// `torch.nn.utils.clip_grad_value_(params, clip_value)` before each step.
    pub fn clip_grad_value(mut self, clip_value: f64) -> Self {
        self.step.clip_grad_value = Some(clip_value);
        self
    }

    /// Keep an exponential moving average of the weights (AveragedModel / timm ModelEmaV3
    /// semantics, see [`super::ema`]): evaluated after each epoch beside the raw weights and
    /// kept in checkpoints.
    pub fn ema(mut self, config: super::ema::EmaConfig) -> Self {
        self.ema = Some(config);
        self
    }

    /// Early stopping (Lightning's `EarlyStopping`) and best-model tracking on a validation
    /// quantity (see [`super::early_stopping`]); the trainer's `fit` stops when patience runs
    /// out, and a run's output folder gets `model_best.safetensors`.
    pub fn early_stopping(mut self, config: super::early_stopping::EarlyStoppingConfig) -> Self {
        self.validation.early_stopping = Some(config);
        self
    }

    /// Validate every `n` optimizer updates (besides each epoch's end); early stopping then
    /// checks at those validations (see [`super::validation`]).
    pub fn val_every_steps(mut self, n: u64) -> Self {
        self.validation.every_steps = Some(n);
        self
    }

    /// All validation settings at once.
    pub fn validation(mut self, config: super::validation::ValidationConfig) -> Self {
        self.validation = config;
        self
    }

    /// An optional [`Self::ema`].
    pub fn ema_opt(mut self, config: Option<super::ema::EmaConfig>) -> Self {
        self.ema = config;
        self
    }

    /// All accumulation and clipping settings at once.
    pub fn step_options(mut self, options: super::step::StepOptions) -> Self {
        self.step = options;
        self
    }

    /// Mixed precision, Lightning's `Trainer(precision=...)` (default
    /// [`crate::amp::Precision::F32`], f32 throughout): `Bf16Mixed` runs every forward under
    /// bf16 autocast, `F16Mixed` under f16 autocast with a [`crate::amp::GradScaler`] (see
    /// [`Self::grad_scaler`] and [`super::step`]). Master weights and optimizer state stay
    /// f32; checkpoints record the precision and a resume with another one is refused
    /// (`K0702`).
    pub fn precision(mut self, precision: crate::amp::Precision) -> Self {
        self.precision = precision;
        self
    }

    /// The GradScaler's settings of a `16-mixed` run (PyTorch's defaults otherwise: init
    /// scale 2^16, growth 2, backoff 0.5, interval 2000); `build()` refuses them (`K0003`)
    /// with another precision.
    pub fn grad_scaler(mut self, config: crate::amp::GradScalerConfig) -> Self {
        self.grad_scaler = Some(config);
        self
    }

    /// An optional [`Self::grad_scaler`].
    pub fn grad_scaler_opt(mut self, config: Option<crate::amp::GradScalerConfig>) -> Self {
        self.grad_scaler = config;
        self
    }

    /// Keep frozen BatchNorm layers in evaluation mode while training.
    pub fn frozen_batchnorm_eval(mut self, on: bool) -> Self {
        self.bn_eval = on;
        self
    }

    /// Write checkpoints into `dir` (by default at the end of every epoch; see
    /// [`Self::checkpoint_policy`]). `build()` takes the directory's run lock
    /// ([`super::run_lock`]; `K0730` while another live run holds it) and the trainer keeps
    /// it until `fit` returns.
    pub fn checkpoint_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }

    /// When and how to checkpoint (with [`Self::checkpoint_dir`]).
    pub fn checkpoint_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Resume from a checkpoint in the checkpoint directory (`Resume::Last`, `Resume::Auto`)
    /// or a path; the resumed run continues bit-exactly.
    pub fn resume(mut self, resume: Resume) -> Self {
        self.resume = Some(resume);
        self
    }

    /// Gradual unfreezing steps (fine-tuning).
    pub fn unfreeze(mut self, schedule: UnfreezeSchedule) -> Self {
        self.unfreeze = schedule;
        self
    }

    /// What loading pretrained weights did, kept for reports.
    pub fn pretrained(mut self, report: Option<PretrainedReport>) -> Self {
        self.pretrained = report;
        self
    }

    /// Builds the trainer: moves the model to the device, makes the optimizer, scheduler and
    /// loaders, and (with [`Self::resume`]) restores the checkpoint.
    ///
    /// # Errors
    /// `K0601` with no trainable parameter; `K0003` for a bad setting; `K0101` for an empty
    /// data set; `K0701`/`K0702` for a resume that finds nothing or another setup.
    pub fn build(self) -> Result<Trainer> {
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return Err(Error::invalid("batch size", 0, "at least 1"));
        }
        self.step.validate()?;
        if let Some(e) = &self.ema {
            e.validate()?;
        }
        self.validation.validate()?;
        let grad_scaler = match (self.precision.uses_grad_scaler(), self.grad_scaler) {
            (true, c) => Some(crate::amp::GradScaler::new(c.unwrap_or_default())?),
            (false, None) => None,
            (false, Some(_)) => {
                return Err(Error::invalid(
                    "grad_scaler",
                    format!("GradScaler settings with precision {}", self.precision),
                    "precision 16-mixed (only f16 autocast scales the loss)",
                ));
            }
        };
        self.model.to_device(&self.device)?;
        let groups = match self.groups {
            Some(g) => g,
            None => vec![GroupSpec::new(self.model.trainable_parameters())],
        };
        let mut optimizer = self.optimizer.build(groups)?;
        let scheduler = match self.scheduler {
            Some(make) => make(optimizer.as_mut())?,
            None => None,
        };
        let accuracy = match self.accuracy {
            Some(a) => a,
            None => integer_targets(self.train.as_ref())?,
        };
        let train_loader = DataLoader::new(self.train, self.batch_size)?
            .shuffle(self.shuffle)
            .drop_last(self.drop_last)
            .seed(self.seed)
            .workers(self.workers);
        let test_loader = match self.eval {
            Some(e) => Some(DataLoader::new(e, self.eval_batch_size)?.workers(self.workers)),
            None => None,
        };
        let mut setup = RunSetup::of(
            self.model.as_ref(),
            optimizer.as_ref(),
            scheduler.as_deref(),
            &train_loader,
        );
        setup.step = self.step.clone();
        setup.ema = self.ema.clone();
        setup.validation = self.validation.clone();
        setup.precision = self.precision;
        let mut hooks = self.hooks;
        let mut run_lock = None;
        let checkpointing = match &self.checkpoint_dir {
            Some(dir) => {
                let resume_from = match &self.resume {
                    Some(r) => r.resolve(dir)?,
                    None => None,
                };
                // One live run per checkpoint directory (K0730 otherwise), held by the
                // trainer; a fresh run clears everything but the lock.
                let lock = super::run_lock::RunLock::acquire(dir)?;
                if resume_from.is_none() {
                    super::run_lock::clear_except_lock(dir)?;
                }
                run_lock = Some(lock);
                // The checkpoint resumed from survives even when the index does not list it.
                let keep: Vec<&Path> = resume_from.iter().map(|p| p.as_path()).collect();
                let manager = CheckpointManager::keeping(dir, self.policy.clone(), &keep)?;
                hooks.push(Box::new(CheckpointHook::new(
                    Some(self.policy.clone()),
                    Some(manager),
                    None,
                    None,
                )));
                resume_from
            }
            None => match &self.resume {
                Some(Resume::Path(p)) => Some(p.clone()),
                Some(_) => {
                    return Err(Error::invalid(
                        "resume",
                        "last/auto without a checkpoint directory",
                        "a checkpoint_dir(...) to look in, or Resume::Path",
                    ));
                }
                None => None,
            },
        };
        if self.reseed {
            crate::rng::manual_seed(self.seed);
        }
        let mut trainer = Trainer {
            config: None,
            epochs: self.epochs,
            loss: self
                .loss
                .unwrap_or_else(|| Arc::new(crate::nn::loss::cross_entropy)),
            accuracy,
            metrics: self.metrics,
            bn_eval: self.bn_eval,
            on_nonfinite_loss: self.on_nonfinite_loss,
            setup,
            hooks,
            model: self.model,
            optimizer,
            scheduler,
            train_loader,
            test_loader,
            state: TrainState::start(),
            device: self.device,
            comm: None,
            unfreeze: self.unfreeze,
            pretrained: self.pretrained,
            step_options: self.step,
            pending: Default::default(),
            precision: self.precision,
            grad_scaler,
            ema: self.ema.map(super::ema::Ema::new),
            early_stopping: match &self.validation.early_stopping {
                Some(c) => Some(super::early_stopping::EarlyStopping::new(c.clone())?),
                None => None,
            },
            validation: self.validation,
            run_lock,
        };
        trainer.check_monitor()?;
        if let Some(path) = checkpointing {
            let ck = Checkpoint::load(
                &path,
                &LoadOptions::new()
                    .map_location(crate::device::device_name(&trainer.device).as_str()),
                &trainer.device,
            )?;
            restore(&mut trainer, &ck)?;
        }
        Ok(trainer)
    }
}

/// Whether the first training sample's target is an integer (a class index).
fn integer_targets(ds: &dyn Dataset) -> Result<bool> {
    if ds.is_empty() {
        return Ok(true);
    }
    let (_, t) = ds.get_batch(&[0])?;
    Ok(t.dtype().is_int())
}
