//! The whole `kiln train` job: seed, data, model, optimizer, loop, and the files in `out`.

use super::builder::OptimizerChoice;
use super::checkpointing::{CheckpointHook, inner_model, restore, truncate_metrics};
use super::config::{TrainConfig, parse_device};
use super::hooks::Hook;
use super::metrics::{EpochMetrics, MetricsLog};
use super::optimizers;
use super::save::save_state_dict;
use super::trainer::Trainer;
use crate::checkpoint::{Checkpoint, CheckpointManager, Policy, Resume};
use crate::error::{Error, Result};
use crate::finetune::UnfreezeSchedule;
use crate::io::LoadOptions;
use crate::optim::GroupSpec;
use crate::rng;
use std::path::PathBuf;

/// File names written into the output directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The final state dict.
pub const MODEL_FILE: &str = "model.safetensors";
/// The final exponential moving average of the weights (with `--ema-decay`).
pub const EMA_MODEL_FILE: &str = "model_ema.safetensors";
/// The adapters of a LoRA fine-tune, in PEFT's layout (`adapter_config.json` +
/// `adapter_model.safetensors`).
pub const ADAPTER_DIR: &str = "adapter";

/// What a finished run left behind.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Metrics of every epoch.
    pub epochs: Vec<EpochMetrics>,
    /// Path of `model.safetensors`.
    pub model_path: PathBuf,
    /// Path of `metrics.jsonl`.
    pub metrics_path: PathBuf,
}

impl RunSummary {
    /// Test accuracy after the last epoch.
    pub fn final_test_acc(&self) -> f64 {
        self.epochs.last().map_or(0.0, |m| m.test_acc)
    }
}

/// Builds a [`Trainer`] for `cfg` on its data ([`super::data::run_data`]: the embedded
/// digits, or `cfg.data`, which also sets the model's outputs, input channels and size): seeds kiln's generator with
/// `cfg.seed`, builds the model (its initialisation draws from that generator), applies the
/// fine-tuning setup if any (pretrained weights, freezing, parameter groups, unfreezing
/// schedule: [`crate::finetune::prepare`]), the optimizer and the loaders (training shuffled
/// with `cfg.seed`, test in order).
///
/// # Errors
/// `K0003` for a bad configuration; `K0303`/`K0305` for a bad device; loading and pattern
/// errors of the fine-tuning setup.
pub fn build_trainer(cfg: &TrainConfig) -> Result<Trainer> {
    cfg.validate()?;
    let device = parse_device(&cfg.device)?;
    let data = super::data::run_data(cfg)?;
    let (train, test) = (data.train.clone(), data.test.clone());
    rng::manual_seed(cfg.seed);
    let mut model =
        crate::models::build(&cfg.model, data.outputs, data.in_channels, data.image_size)?;
    model.to_device(&device)?;
    if let Some(l) = cfg.finetune.as_ref().and_then(|f| f.lora.as_ref()) {
        crate::nn::lora::apply_lora(model.as_mut(), l)?;
    }
    let (groups, unfreeze, pretrained) = match &cfg.finetune {
        None => (
            vec![GroupSpec::new(model.trainable_parameters())],
            UnfreezeSchedule::default(),
            None,
        ),
        Some(ft) => {
            let p = crate::finetune::prepare(model.as_ref(), ft, cfg.lr)?;
            (p.groups, p.schedule, p.report)
        }
    };
    let mut optimizer = Some(optimizers::build_groups(cfg, groups)?);
    let sched_cfg = cfg.clone();
    // the loader's batches per epoch (what a per-step schedule counts)
    let n = train.len();
    let bs = cfg.batch_size.max(1);
    let batches = if cfg.drop_last {
        n / bs
    } else {
        n.div_ceil(bs)
    };
    // one scheduler step per optimizer update: every N micro-batches and at the epoch's end
    let steps_per_epoch = batches.div_ceil(cfg.step.accumulate_grad_batches.max(1));
    let mut b = Trainer::builder(model, train);
    if data.task == crate::data::Task::Regression {
        b = b.loss(regression_loss).accuracy(false);
    }
    let mut t = b
        .optimizer(OptimizerChoice::Custom(Box::new(move |_| {
            optimizer
                .take()
                .ok_or_else(|| Error::invalid("optimizer", "built twice", "one build"))
        })))
        .eval_set(test)
        .batch_size(cfg.batch_size)
        .drop_last(cfg.drop_last)
        .workers(cfg.workers)
        .seed(cfg.seed)
        .seed_generator(false)
        .epochs(cfg.epochs)
        .device(device)
        .frozen_batchnorm_eval(cfg.finetune.as_ref().is_some_and(|f| f.bn_eval))
        .on_nonfinite_loss(cfg.on_nan)
        .step_options(cfg.step.clone())
        .precision(cfg.precision)
        .grad_scaler_opt(cfg.grad_scaler)
        .ema_opt(cfg.ema.clone())
        .validation(cfg.validation.clone())
        .unfreeze(unfreeze)
        .pretrained(pretrained)
        .scheduler_opt(move |opt| {
            optimizers::build_scheduler_with(&sched_cfg, opt, Some(steps_per_epoch))
        })
        .build()?;
    t.config = Some(cfg.clone());
    Ok(t)
}

/// `mse_loss` of the outputs and targets, with `[B, 1]` outputs compared to `[B]` targets
/// as `[B]`.
fn regression_loss(
    out: &candle_core::Tensor,
    target: &candle_core::Tensor,
) -> Result<candle_core::Tensor> {
    let out = if out.rank() == 2 && out.dim(1)? == 1 && target.rank() == 1 {
        out.flatten_all()?
    } else {
        out.clone()
    };
    let target = target.to_dtype(out.dtype())?;
    crate::nn::loss::mse_loss(&out, &target)
}

/// What a fine-tuning setup did, for the console: the pretrained file's load report (what
/// was skipped and why), the frozen parameters, the optimizer's groups and the unfreezing
/// schedule. Empty for a plain training run.
pub fn describe_setup(t: &Trainer) -> Vec<String> {
    let Some(ft) = t.config.as_ref().and_then(|c| c.finetune.as_ref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let (Some(r), Some(from)) = (&t.pretrained, &ft.from) {
        out.push(format!(
            "loaded {} tensors from {}",
            r.report.loaded.len(),
            from.display()
        ));
        out.extend(r.describe().into_iter().map(|l| format!("  {l}")));
    }
    if let Some(l) = &ft.lora {
        let layers = crate::nn::lora::lora_layers(inner_model(t.model.as_ref()));
        let n: usize = layers
            .iter()
            .map(|(_, l)| {
                l.lora_a().map_or(0, |p| p.elem_count()) + l.lora_b().map_or(0, |p| p.elem_count())
            })
            .sum();
        let names: Vec<&str> = layers.iter().map(|(p, _)| p.as_str()).collect();
        out.push(format!(
            "LoRA r={} alpha={} dropout={}: adapters on {} ({n} values){}",
            l.r,
            l.alpha,
            l.dropout,
            names.join(", "),
            if l.modules_to_save.is_empty() {
                String::new()
            } else {
                format!("; trained in full: {}", l.modules_to_save.join(", "))
            }
        ));
    }
    let params = t.model.named_parameters();
    let frozen = params.iter().filter(|(_, p)| !p.requires_grad()).count();
    out.push(format!(
        "frozen: {frozen} of {} parameter tensors; optimizer groups:",
        params.len()
    ));
    let rules = &ft.groups;
    let groups = t.optimizer.param_groups();
    let offset = groups.len().saturating_sub(rules.len());
    for (i, g) in groups.iter().enumerate() {
        let what = match i.checked_sub(offset).and_then(|r| rules.get(r)) {
            Some(rule) => format!("'{}'", rule.pattern),
            None => "the other trainable parameters".into(),
        };
        let n: usize = g.params.iter().map(|p| p.elem_count()).sum();
        out.push(format!(
            "  group {i}: {what}: {} tensors, {n} values, lr {:.3e}",
            g.params.len(),
            g.lr
        ));
    }
    for s in t.unfreeze.steps() {
        out.push(format!(
            "  at epoch {}: unfreeze {} tensors as a new group with lr {:.3e}",
            s.epoch + 1,
            s.names.len(),
            s.lr
        ));
    }
    out
}

/// How a run is carried out, beyond its hyper-parameters: checkpointing, resume, crash
/// simulation, devices and distribution. None of these change the numbers a run produces
/// (so none is compared on resume).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Hide the progress bar.
    pub quiet: bool,
    /// When and what to checkpoint (None: no checkpoints).
    pub checkpoint: Option<Policy>,
    /// Resume from a checkpoint (`auto`, `last` or a path).
    pub resume: Option<Resume>,
    /// Abort the process right after this global step (simulated crash).
    pub crash_after_steps: Option<u64>,
    /// Run DataParallel over these devices (e.g. `cpu,cpu`).
    pub devices: Option<Vec<String>>,
    /// Distributed backend (`mpi`, `nccl`): one process per rank, started by a launcher.
    pub distributed: Option<String>,
    /// Under DDP: check after every step that all ranks hold identical parameters.
    pub ddp_verify: bool,
    /// Write TensorBoard event files into `out/tensorboard` ([`TENSORBOARD_DIR`], see
    /// [`super::TensorBoardHook`]); a fresh run first removes the event files a previous run
    /// left there, a resumed run adds a new file.
    pub tensorboard: bool,
}

/// Sub-directory of the output directory holding TensorBoard event files.
pub const TENSORBOARD_DIR: &str = "tensorboard";

/// Sub-directory of the output directory holding checkpoints.
pub const CHECKPOINT_DIR: &str = "checkpoints";

/// Runs `kiln train`: trains `cfg` from scratch and writes `metrics.jsonl` (one line per
/// epoch, appended as each ends) and `model.safetensors` (the final state dict) into
/// `cfg.out` (created if needed); the `kiln` command adds its progress bar and `curves.png`. For hooks of your own, call
/// [`build_trainer`] and [`Trainer::fit`] directly.
///
/// # Errors
/// Configuration, training and I/O errors.
pub fn run(cfg: &TrainConfig, quiet: bool) -> Result<RunSummary> {
    run_with(
        cfg,
        &RunOptions {
            quiet,
            ..Default::default()
        },
    )
}

/// Under NCCL each rank computes on its own GPU: `cuda:(local rank % device count)`.
fn nccl_config(cfg: &TrainConfig) -> TrainConfig {
    #[cfg_attr(not(feature = "nccl"), allow(unused_mut))]
    let mut c = cfg.clone();
    #[cfg(feature = "nccl")]
    {
        let n = crate::device::cuda::device_count().max(1);
        c.device = format!("cuda:{}", crate::parallel::local_rank() % n);
    }
    c
}

/// [`run`] with checkpointing, resume, crash simulation, DataParallel or DDP.
///
/// With `resume`, the checkpoint's model, optimizer, scheduler, position and RNG are
/// restored and the run continues as if it had never stopped; `metrics.jsonl` keeps the
/// lines of the epochs the checkpoint had completed. A fresh run (no resume, or `auto` with
/// no checkpoint) replaces the directory's previous checkpoints. Under `distributed`, rank 0
/// writes every file and all ranks meet at a barrier after each checkpoint.
///
/// # Errors
/// Configuration, training and I/O errors; `K0702` for a resume with another
/// configuration; `K0701` when `resume` names no checkpoint; `K0801` for a distributed
/// backend that is not built in; `K0730` when another live run holds `cfg.out`
/// ([`super::run_lock`]).
pub fn run_with(cfg: &TrainConfig, opts: &RunOptions) -> Result<RunSummary> {
    run_with_hooks(cfg, opts, Vec::new())
}

/// [`run_with`] with hooks of the caller's (a progress view, a logger), called on rank 0
/// after kiln's metrics log and before the checkpoint hook.
///
/// # Errors
/// As [`run_with`], plus the hooks' errors.
pub fn run_with_hooks(
    cfg: &TrainConfig,
    opts: &RunOptions,
    extra_hooks: Vec<Box<dyn Hook>>,
) -> Result<RunSummary> {
    let comm = match &opts.distributed {
        Some(backend) => Some(crate::parallel::connect(backend)?),
        None => {
            if let Some((launcher, _, size)) = crate::parallel::launcher_env()
                && size > 1
            {
                return Err(Error::BackendNotBuilt {
                    backend: "none".into(),
                    launcher: format!(
                        " ({launcher} started {size} processes, but --distributed was not given: each would train alone and overwrite the others' files; add --distributed mpi)"
                    ),
                });
            }
            None
        }
    };
    let rank0 = comm.as_ref().is_none_or(|c| c.rank() == 0);
    if cfg
        .finetune
        .as_ref()
        .is_some_and(|f| !f.unfreeze.is_empty())
        && (comm.is_some() || opts.devices.is_some())
    {
        return Err(Error::Unsupported {
            what: "gradual unfreezing (--unfreeze-at) with --devices or --distributed".into(),
        });
    }
    let nccl_cfg;
    let cfg = match comm.as_ref().map(|c| c.backend()) {
        Some("nccl") => {
            nccl_cfg = nccl_config(cfg);
            &nccl_cfg
        }
        _ => cfg,
    };
    let mut trainer = build_trainer(cfg)?;
    if rank0 && !opts.quiet {
        for line in describe_setup(&trainer) {
            println!("{line}");
        }
    }
    if let Some(c) = &comm {
        trainer.train_loader = trainer
            .train_loader
            .clone()
            .distributed(c.world_size(), c.rank())?;
    }
    // One live run per directory (K0730 otherwise); rank 0 holds it for all ranks. Under the
    // lock, temporaries of a killed run's atomic writes are its leftovers, never a live write.
    let _lock = if rank0 {
        let l = super::run_lock::RunLock::acquire(&cfg.out)?;
        super::run_lock::remove_temporaries(&cfg.out);
        Some(l)
    } else {
        std::fs::create_dir_all(&cfg.out)
            .map_err(|e| Error::io("create directory", &cfg.out, e))?;
        None
    };
    let ckpt_dir = cfg.out.join(CHECKPOINT_DIR);
    let metrics_path = cfg.out.join(METRICS_FILE);
    let resume_from = match &opts.resume {
        Some(r) => r.resolve(&ckpt_dir)?,
        None => None,
    };
    let fresh = resume_from.is_none();
    if let Some(path) = &resume_from {
        let ck = Checkpoint::load(
            path,
            &LoadOptions::new().map_location(crate::device::device_name(&trainer.device).as_str()),
            &trainer.device,
        )?;
        restore(&mut trainer, &ck)?;
        if rank0 && !opts.quiet {
            eprintln!(
                "resuming from {} (epoch {}, batch {}, step {})",
                path.display(),
                ck.progress.epoch + 1,
                ck.progress.step_in_epoch,
                ck.progress.global_step
            );
        }
        if rank0 {
            truncate_metrics(&metrics_path, ck.progress.epoch)?;
            super::best::truncate_validations(
                &cfg.out,
                ck.progress.global_step as u64,
                ck.progress.step_in_epoch,
            )?;
        }
        if let Some(c) = &comm {
            // Each rank resumes with its own running totals of the epoch (a checkpoint
            // written without DDP gives rank 0 its totals and the others none).
            let a = super::checkpointing::ddp_epoch_accum(&ck, c.rank(), c.world_size())
                .unwrap_or(if rank0 { ck.accum } else { Default::default() });
            trainer.state.epoch_loss_sum = a.loss_sum;
            trainer.state.epoch_correct = a.correct;
            trainer.state.epoch_seen = a.seen;
        }
    } else if rank0 && opts.checkpoint.is_some() && ckpt_dir.exists() {
        std::fs::remove_dir_all(&ckpt_dir).map_err(|e| Error::io("clear", &ckpt_dir, e))?;
    }
    if let Some(c) = &comm {
        c.barrier()?;
        let model = trainer.take_model();
        trainer.model = Box::new(crate::parallel::DistributedDataParallel::new(
            model,
            c.clone(),
            crate::parallel::DdpOptions::default(),
        )?);
        trainer.comm = Some(c.clone());
    } else if let Some(devices) = &opts.devices {
        let ids: Vec<&str> = devices.iter().map(String::as_str).collect();
        let model = trainer.take_model();
        trainer.model = Box::new(crate::parallel::DataParallel::new(model, &ids, None)?);
    }
    let manager = match &opts.checkpoint {
        Some(policy) if rank0 => {
            let keep: Vec<&std::path::Path> = resume_from.iter().map(|p| p.as_path()).collect();
            Some(CheckpointManager::keeping(
                &ckpt_dir,
                policy.clone(),
                &keep,
            )?)
        }
        _ => None,
    };
    let mut ckpt = CheckpointHook::new(
        opts.checkpoint.clone(),
        manager,
        opts.crash_after_steps,
        comm.clone(),
    );
    let mut hooks: Vec<Box<dyn Hook>> = Vec::new();
    if let (Some(c), true) = (&comm, opts.ddp_verify) {
        hooks.push(Box::new(super::ddp_verify::DdpVerify::new(c.clone())));
    }
    if rank0 {
        hooks.push(Box::new(MetricsLog::new(&metrics_path, fresh)?));
        if !cfg.validation.is_default() {
            hooks.push(Box::new(super::best::BestModelHook::new(&cfg.out, fresh)?));
        }
        if opts.tensorboard {
            let dir = cfg.out.join(TENSORBOARD_DIR);
            if fresh {
                super::tensorboard::remove_event_files(&dir)?;
            }
            hooks.push(Box::new(super::TensorBoardHook::new(&dir)?));
        }
        hooks.extend(extra_hooks);
    }
    let mut hook_refs: Vec<&mut dyn Hook> = hooks
        .iter_mut()
        .map(|h| h.as_mut() as &mut dyn Hook)
        .collect();
    hook_refs.push(&mut ckpt);
    // The checkpoint hook waits for its background writes in `on_fit_end`.
    let ran = trainer.fit_with(&mut hook_refs)?;
    drop(hook_refs);
    if let (Some(c), true) = (&comm, opts.ddp_verify) {
        if c.rank() == 0 && !opts.quiet {
            eprintln!(
                "ddp-verify: all {} ranks held bit-identical parameters after every step",
                c.world_size()
            );
        }
    }
    if let (true, false, Some(es)) = (rank0, opts.quiet, trainer.early_stopping.as_ref()) {
        if es.stopped() {
            eprintln!(
                "early stopping: {} did not improve by more than {} for {} validations; \
                 stopped in epoch {} (best {} at step {})",
                es.config.monitor,
                es.config.min_delta,
                es.wait_count,
                es.stopped_epoch,
                es.best_score,
                es.best_step.map_or("-".into(), |s| s.to_string())
            );
        }
    }
    let model_path = cfg.out.join(MODEL_FILE);
    let epochs = if metrics_path.exists() && rank0 {
        MetricsLog::read(&metrics_path)?
    } else {
        ran
    };
    if rank0 {
        save_state_dict(
            &inner_model(trainer.model.as_ref()).state_dict(),
            &model_path,
        )?;
        if let Some(ema) = trainer.ema.as_ref().filter(|e| e.updates() > 0) {
            save_state_dict(&ema.state_dict(), &cfg.out.join(EMA_MODEL_FILE))?;
        }
        if let Some(ft) = cfg.finetune.as_ref()
            && let Some(l) = ft.lora.as_ref()
        {
            let base = ft.from.as_ref().map(|p| p.display().to_string());
            crate::nn::lora::save_adapter(
                inner_model(trainer.model.as_ref()),
                l,
                &cfg.out.join(ADAPTER_DIR),
                base.as_deref(),
            )?;
        }
    }
    if let Some(c) = &comm {
        c.barrier()?;
    }
    Ok(RunSummary {
        epochs,
        model_path,
        metrics_path,
    })
}
