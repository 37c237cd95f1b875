//! `kiln train`: trains a model on the embedded digits data set, or on a data source
//! (`--data PATH`: image folder, CSV, MNIST, CIFAR, tensors file).

use kiln::checkpoint::{CheckpointFormat, MonitorMode, Policy};
use kiln::error::Result;
use kiln::optim::scheduler::Interval;
use kiln::train::RunOptions;
use kiln::train::config::{
    DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_MOMENTUM, DEFAULT_THREADS, OptimizerKind,
    SchedulerSpec, TrainConfig,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kiln train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Architecture to train.
    #[arg(long, short = 'm', default_value = "lenet", value_parser = clap::builder::PossibleValuesParser::new(kiln::models::ARCHITECTURES))]
    pub model: String,
    /// Number of epochs.
    #[arg(long, short = 'e', default_value_t = DEFAULT_EPOCHS)]
    pub epochs: usize,
    /// Training batch size.
    #[arg(long, short = 'b', default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Optimizer: sgd, adam, adamw, rmsprop, adagrad, adamax, nadam or radam.
    #[arg(long, default_value = "sgd", value_parser = [
        "sgd", "adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam", "radam"
    ])]
    pub optimizer: String,
    /// Base learning rate (default: 0.03 for sgd, else PyTorch's: 1e-3 for adam/adamw/radam,
    /// 1e-2 for rmsprop/adagrad, 2e-3 for adamax/nadam).
    #[arg(long)]
    pub lr: Option<f64>,
    /// SGD momentum (ignored by the other optimizers).
    #[arg(long, default_value_t = DEFAULT_MOMENTUM)]
    pub momentum: f64,
    /// Weight decay (default: as in PyTorch, 0.01 for adamw and 0 for the others).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Seed of initialisation, dropout and shuffling (same seed, same threads → same file).
    #[arg(long, short = 's', default_value_t = 0)]
    pub seed: u64,
    /// Output directory (default: runs/MODEL).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Learning-rate schedule: cosine or cosine:T_MAX (T_MAX defaults to the run's length),
    /// step:STEP_SIZE or step:STEP_SIZE:GAMMA (gamma 0.1 by default), onecycle (peak
    /// --max-lr, default --lr), linear (warm-up over --warmup-steps), plateau (on the test
    /// loss, --patience), poly[:POWER], warm-restarts (period --t0), or none.
    #[arg(long, default_value = "cosine")]
    pub scheduler: String,
    /// When the schedule steps: epoch or step (after every optimizer update). Default: step
    /// for onecycle, epoch otherwise; plateau always steps on the epoch's test loss.
    #[arg(long, value_parser = ["epoch", "step"])]
    pub lr_interval: Option<String>,
    /// Peak rate of --scheduler onecycle (default: --lr).
    #[arg(long)]
    pub max_lr: Option<f64>,
    /// Warm-up length of --scheduler linear, in epochs or steps as --lr-interval counts
    /// (default 5, PyTorch's total_iters).
    #[arg(long, value_name = "N")]
    pub warmup_steps: Option<usize>,
    /// Epochs without improvement before --scheduler plateau reduces the rate (default 10).
    #[arg(long, value_name = "P")]
    pub patience: Option<usize>,
    /// First period of --scheduler warm-restarts (T_0), in epochs or steps.
    #[arg(long, value_name = "N")]
    pub t0: Option<usize>,
    /// Compute threads, set once at start-up for kiln's kernels, candle and rayon (1 is
    /// fastest for the digits models; results do not depend on it).
    #[arg(long, short = 't', default_value_t = DEFAULT_THREADS)]
    pub threads: usize,
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Drop the last incomplete training batch of each epoch.
    #[arg(long)]
    pub drop_last: bool,
    /// Train and test on these digit classes only, relabelled 0..k in the order given
    /// (e.g. 0-4, 5-9, 0,2,4-6).
    #[arg(long, value_name = "DIGITS")]
    pub classes: Option<String>,
    /// Keep only N training images of each class, drawn with --seed; the test set is then
    /// every other image of the classes (test split plus the unused training images).
    #[arg(long, value_name = "N")]
    pub per_class: Option<usize>,
    /// Train on this data source instead of the embedded digits: an image folder (DIR or
    /// DIR/train + DIR/val|test), a .csv, MNIST/Fashion-MNIST IDX files, CIFAR-10/100
    /// batches or a tensors file (.safetensors/.pt with inputs and labels).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Force the format of --data instead of detecting it.
    #[arg(long, value_name = "NAME", requires = "data", value_parser = ["image-folder", "csv", "mnist", "fashion-mnist", "cifar10", "cifar100", "tensors"])]
    pub data_format: Option<String>,
    /// Fraction of the training samples held out for evaluation (default: 0.2 when the
    /// source has no validation or test split of its own, else 0).
    #[arg(long, value_name = "F", requires = "data")]
    pub val_split: Option<f64>,
    /// The CSV target column.
    #[arg(
        long,
        value_name = "COLUMN",
        default_value = "target",
        requires = "data"
    )]
    pub target: String,
    /// Classification or regression (default: decided from the data; a CSV target with
    /// fractional numbers is regression).
    #[arg(long, value_parser = ["classification", "regression"], requires = "data")]
    pub task: Option<String>,
    /// Side of the square images fed to the model (default: 224 for image folders, the
    /// source's own size for MNIST/CIFAR).
    #[arg(long, value_name = "S", requires = "data")]
    pub image_size: Option<usize>,
    /// Input transform: imagenet (training RandomResizedCrop(S) + flip + normalise,
    /// evaluation Resize(S*8/7) + CenterCrop(S) + normalise; the default for image folders)
    /// or none.
    #[arg(long, value_parser = ["imagenet", "none"], requires = "data")]
    pub transform: Option<String>,
    /// Data-loading threads (0: load in the training thread); results do not depend on it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub workers: usize,
    /// A NaN or infinite loss: `stop` (error K0703 naming the step and the learning rate,
    /// before the step is applied) or `continue` as a plain PyTorch loop would.
    #[arg(long, value_parser = ["stop", "continue"], default_value = "stop")]
    pub on_nan: String,
    /// Leave out images that fail to decode (counted) instead of stopping.
    #[arg(long, requires = "data")]
    pub skip_bad_images: bool,
    /// Print nothing but errors (no progress bar, no per-epoch lines).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Resume: `auto` (from OUT/checkpoints/last if it exists, else start fresh), `last`
    /// (error if none), or a checkpoint path (kiln's, or a PyTorch recipe checkpoint).
    #[arg(long)]
    pub resume: Option<String>,
    /// Abort the process abruptly right after this optimizer step (crash simulation).
    #[arg(long)]
    pub crash_after_steps: Option<u64>,
    /// Checkpoint at the end of every N-th epoch (0: never at epoch ends).
    #[arg(long, default_value_t = 1)]
    pub checkpoint_every_epochs: usize,
    /// Also checkpoint every N optimizer steps.
    #[arg(long)]
    pub checkpoint_every_steps: Option<usize>,
    /// Keep the K most recent checkpoints (0: keep all).
    #[arg(long, default_value_t = 2)]
    pub keep_last: usize,
    /// Also keep the K best checkpoints by --monitor.
    #[arg(long, default_value_t = 1)]
    pub keep_best: usize,
    /// Metric that ranks checkpoints (and that --early-stopping-patience watches): test_acc,
    /// train_acc, ema_test_acc (higher is better), test_loss, train_loss, ema_test_loss (lower
    /// is better); val_acc / val_loss are test_acc / test_loss.
    #[arg(long, default_value = "test_acc", value_parser = [
        "test_acc", "test_loss", "train_acc", "train_loss", "val_acc", "val_loss",
        "ema_test_acc", "ema_test_loss",
    ])]
    pub monitor: String,
    /// Checkpoint form: pt (one file torch.load reads) or dir (safetensors + JSON).
    #[arg(long, default_value = "pt", value_parser = ["pt", "dir"])]
    pub checkpoint_format: String,
    /// Write checkpoints in a background thread (training only waits for the snapshot).
    #[arg(long)]
    pub async_checkpoint: bool,
    /// Write no checkpoints.
    #[arg(long)]
    pub no_checkpoint: bool,
    /// DataParallel over these devices, comma-separated (e.g. cpu,cpu or cuda:0,cuda:1).
    #[arg(long, value_delimiter = ',')]
    pub devices: Option<Vec<String>>,
    /// Distributed data parallel over processes started by a launcher (mpirun -np N kiln
    /// train ... --distributed mpi); --batch-size is per process.
    #[arg(long, value_parser = ["mpi", "nccl"])]
    pub distributed: Option<String>,
    /// With --distributed: check after every step that all ranks hold bit-identical
    /// parameters (stops with K0802 if they diverge).
    #[arg(long)]
    pub ddp_verify: bool,
    /// Gradient accumulation and clipping.
    #[command(flatten)]
    pub step: super::train_features::StepArgs,
    /// Write TensorBoard event files into OUT/tensorboard (per step train/loss and lr-<optimizer>, per
    /// epoch every metrics.jsonl value, the hyper-parameters); view with tensorboard --logdir OUT.
    #[arg(long)]
    pub tensorboard: bool,
}

impl Args {
    /// The run's configuration.
    ///
    /// # Errors
    /// `K0003` for a bad value (unknown optimizer or schedule, out-of-range numbers).
    pub fn config(&self) -> Result<TrainConfig> {
        let optimizer = OptimizerKind::parse(&self.optimizer)?;
        let mut cfg = TrainConfig::for_model(&self.model);
        cfg.epochs = self.epochs;
        cfg.batch_size = self.batch_size;
        cfg.optimizer = optimizer;
        cfg.lr = self.lr.unwrap_or(optimizer.default_lr());
        cfg.momentum = self.momentum;
        cfg.weight_decay = self
            .weight_decay
            .unwrap_or(optimizer.default_weight_decay());
        cfg.seed = self.seed;
        cfg.scheduler = self.scheduler_spec()?;
        cfg.lr_interval = match self.lr_interval.as_deref() {
            Some(i) => Interval::parse(i)?,
            None if matches!(cfg.scheduler, Some(SchedulerSpec::OneCycle { .. })) => Interval::Step,
            None => Interval::Epoch,
        };
        cfg.threads = self.threads;
        cfg.device = self.device.clone();
        cfg.drop_last = self.drop_last;
        cfg.classes = self
            .classes
            .as_deref()
            .map(kiln::train::parse_classes)
            .transpose()?;
        cfg.per_class = self.per_class;
        cfg.workers = self.workers;
        cfg.on_nan = if self.on_nan == "continue" {
            kiln::train::NonFinitePolicy::Continue
        } else {
            kiln::train::NonFinitePolicy::Stop
        };
        cfg.data = self.data_config()?;
        cfg.step = self.step.options()?;
        cfg.ema = self.step.ema()?;
        cfg.validation = self.step.validation(&self.monitor)?;
        (cfg.precision, cfg.grad_scaler) = self.step.precision()?;
        if let Some(out) = &self.out {
            cfg.out = out.clone();
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

impl Args {
    /// `--scheduler` with `--max-lr`, `--warmup-steps`, `--patience` and `--t0` applied.
    ///
    /// # Errors
    /// `K0003` for a bad schedule, or one of those flags with a schedule that does not take it.
    pub fn scheduler_spec(&self) -> Result<Option<SchedulerSpec>> {
        let is_warm_restarts = self.scheduler == "warm-restarts" && self.t0.is_some();
        let mut spec = if is_warm_restarts {
            Some(SchedulerSpec::WarmRestarts { t_0: 1, t_mult: 1 })
        } else {
            SchedulerSpec::parse(&self.scheduler)?
        };
        let flags = [
            ("--max-lr", self.max_lr.is_some()),
            ("--warmup-steps", self.warmup_steps.is_some()),
            ("--patience", self.patience.is_some()),
            ("--t0", self.t0.is_some()),
        ];
        let takes = match spec {
            Some(SchedulerSpec::OneCycle { ref mut max_lr }) => {
                if self.max_lr.is_some() {
                    *max_lr = self.max_lr;
                }
                "--max-lr"
            }
            Some(SchedulerSpec::Linear { ref mut warmup, .. }) => {
                if let Some(w) = self.warmup_steps {
                    *warmup = w;
                }
                "--warmup-steps"
            }
            Some(SchedulerSpec::Plateau {
                ref mut patience, ..
            }) => {
                if let Some(p) = self.patience {
                    *patience = p;
                }
                "--patience"
            }
            Some(SchedulerSpec::WarmRestarts { ref mut t_0, .. }) => {
                if let Some(t) = self.t0 {
                    *t_0 = t;
                }
                "--t0"
            }
            _ => "",
        };
        if let Some((flag, _)) = flags.iter().find(|(f, set)| *set && *f != takes) {
            return Err(kiln::Error::invalid(
                "scheduler flag",
                flag,
                format!("a flag of the schedule in use ({})", self.scheduler),
            ));
        }
        if matches!(spec, Some(SchedulerSpec::WarmRestarts { t_0: 0, .. })) {
            return Err(kiln::Error::invalid("--t0", 0, "at least 1"));
        }
        Ok(spec)
    }

    /// The `--data` part of the configuration (None without `--data`).
    ///
    /// # Errors
    /// `K0305` for an unknown format name.
    pub fn data_config(&self) -> Result<Option<kiln::train::DataConfig>> {
        let Some(path) = &self.data else {
            return Ok(None);
        };
        let mut d = kiln::train::DataConfig::new(path);
        d.format = self
            .data_format
            .as_deref()
            .map(kiln::data::sources::DataFormat::parse)
            .transpose()?;
        d.val_split = self.val_split;
        d.target = self.target.clone();
        d.task = self.task.as_deref().map(|t| match t {
            "regression" => kiln::data::Task::Regression,
            _ => kiln::data::Task::Classification,
        });
        d.image_size = self.image_size;
        d.transform = self
            .transform
            .as_deref()
            .map(kiln::train::TransformKind::parse)
            .transpose()?;
        d.skip_bad_images = self.skip_bad_images;
        Ok(Some(d))
    }

    /// Checkpointing, resume, devices and distribution options.
    ///
    /// # Errors
    /// `K0003` for an empty `--resume`.
    pub fn run_options(&self) -> Result<RunOptions> {
        let checkpoint = (!self.no_checkpoint).then(|| Policy {
            every_n_epochs: (self.checkpoint_every_epochs > 0)
                .then_some(self.checkpoint_every_epochs),
            every_n_steps: self.checkpoint_every_steps.filter(|&n| n > 0),
            keep_last: self.keep_last,
            keep_best: self.keep_best,
            monitor: Some(self.monitor.clone()),
            mode: MonitorMode::for_name(&self.monitor),
            format: if self.checkpoint_format == "dir" {
                CheckpointFormat::Dir
            } else {
                CheckpointFormat::Pt
            },
            asynchronous: self.async_checkpoint,
        });
        Ok(RunOptions {
            quiet: self.quiet,
            checkpoint,
            resume: self.resume.as_deref().map(str::parse).transpose()?,
            crash_after_steps: self.crash_after_steps,
            devices: self.devices.clone(),
            distributed: self.distributed.clone(),
            ddp_verify: self.ddp_verify,
            tensorboard: self.tensorboard,
        })
    }
}

/// Runs `kiln train`.
///
/// # Errors
/// Configuration, training and I/O errors.
pub fn run(args: &Args) -> Result<ExitCode> {
    let cfg = args.config()?;
    let opts = args.run_options()?;
    // SAFETY: `kiln train` runs straight from `main`; no other thread exists yet.
    unsafe { kiln::train::threads::set_threads(cfg.threads)? };
    let summary = run_job(&cfg, &opts)?;
    print_summary(args, &summary);
    Ok(ExitCode::SUCCESS)
}

/// The library's run with the CLI's progress view, then `curves.png` (rank 0): what
/// `kiln train` and `kiln finetune` both do.
pub(crate) fn run_job(
    cfg: &kiln::train::TrainConfig,
    opts: &kiln::train::RunOptions,
) -> Result<kiln::train::RunSummary> {
    let progress: Box<dyn kiln::train::Hook> = Box::new(crate::progress::Progress::new(opts.quiet));
    let summary = kiln::train::run_with_hooks(cfg, opts, vec![progress])?;
    if kiln::parallel::launcher_env().is_none_or(|(_, rank, _)| rank == 0) {
        crate::chart::write_curves(&summary.epochs, &curves_path(cfg))?;
    }
    Ok(summary)
}

/// Where `kiln train` draws its loss and accuracy chart.
pub(crate) fn curves_path(cfg: &kiln::train::TrainConfig) -> std::path::PathBuf {
    cfg.out.join(crate::chart::CURVES_FILE)
}

/// The last line of `kiln train` and `kiln finetune` (rank 0, unless quiet).
pub(crate) fn print_summary(args: &Args, summary: &kiln::train::RunSummary) {
    let rank0 = kiln::parallel::launcher_env().is_none_or(|(_, rank, _)| rank == 0);
    if !args.quiet && rank0 {
        let last = summary.epochs.last();
        println!(
            "test accuracy {:.2}% after {} epochs; wrote {}, {}, {}",
            100.0 * summary.final_test_acc(),
            last.map_or(0, |m| m.epoch),
            summary.model_path.display(),
            summary.metrics_path.display(),
            summary
                .metrics_path
                .with_file_name(crate::chart::CURVES_FILE)
                .display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    fn parse(args: &[&str]) -> std::result::Result<Args, clap::Error> {
        T::try_parse_from(std::iter::once("train").chain(args.iter().copied())).map(|t| t.a)
    }

    #[test]
    fn defaults_need_only_the_model() {
        let c = parse(&["--model", "lenet", "--epochs", "15"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(c, TrainConfig::for_model("lenet"));
        assert_eq!(c.out, PathBuf::from("runs/lenet"));
    }

    #[test]
    fn adamw_gets_pytorch_defaults_unless_given() {
        let c = parse(&["--optimizer", "adamw"]).unwrap().config().unwrap();
        assert_eq!((c.weight_decay, c.lr), (0.01, 1e-3));
        let c = parse(&["--scheduler", "none"]).unwrap().config().unwrap();
        assert_eq!(c.scheduler, None);
        let c = parse(&["--optimizer", "adamw", "--weight-decay", "0"]).unwrap();
        assert_eq!(c.config().unwrap().weight_decay, 0.0);
    }

    #[test]
    fn every_optimizer_kind_parses_with_pytorch_lr() {
        for (name, lr) in [
            ("rmsprop", 1e-2),
            ("adagrad", 1e-2),
            ("adamax", 2e-3),
            ("nadam", 2e-3),
            ("radam", 1e-3),
        ] {
            let c = parse(&["--optimizer", name]).unwrap().config().unwrap();
            assert_eq!(
                (c.optimizer.as_str(), c.lr, c.weight_decay),
                (name, lr, 0.0)
            );
        }
    }

    #[test]
    fn scheduler_flags_fill_the_spec() {
        let c = parse(&["--scheduler", "onecycle", "--max-lr", "0.3"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(
            c.scheduler,
            Some(SchedulerSpec::OneCycle { max_lr: Some(0.3) })
        );
        assert_eq!(c.lr_interval, Interval::Step);
        let c = parse(&[
            "--scheduler",
            "linear",
            "--warmup-steps",
            "7",
            "--lr-interval",
            "step",
        ])
        .unwrap()
        .config()
        .unwrap();
        assert!(matches!(
            c.scheduler,
            Some(SchedulerSpec::Linear { warmup: 7, .. })
        ));
        assert_eq!(c.lr_interval, Interval::Step);
        let c = parse(&["--scheduler", "warm-restarts", "--t0", "4"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(
            c.scheduler,
            Some(SchedulerSpec::WarmRestarts { t_0: 4, t_mult: 1 })
        );
        assert_eq!(c.lr_interval, Interval::Epoch);
        let c = parse(&["--scheduler", "plateau", "--patience", "2"]).unwrap();
        assert!(matches!(
            c.config().unwrap().scheduler,
            Some(SchedulerSpec::Plateau { patience: 2, .. })
        ));
        let e = parse(&["--scheduler", "cosine", "--patience", "2"])
            .unwrap()
            .config()
            .unwrap_err();
        assert_eq!(e.code(), "K0003");
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        assert!(parse(&["--model", "vgg"]).is_err());
        assert!(parse(&["--optimizer", "lbfgs"]).is_err());
        let e = parse(&["--scheduler", "triangle"])
            .unwrap()
            .config()
            .unwrap_err();
        assert!(e.is_usage());
        let e = parse(&["--device", "cuda:0"]).unwrap().config();
        if !cfg!(feature = "cuda") {
            assert_eq!(e.unwrap_err().code(), "K0303");
        }
        let e = parse(&["--batch-size", "0"]).unwrap().config().unwrap_err();
        assert_eq!(e.code(), "K0003");
        let e = parse(&["--classes", "3-1"]).unwrap().config().unwrap_err();
        assert_eq!(e.code(), "K0003");
        let e = parse(&["--per-class", "0"]).unwrap().config().unwrap_err();
        assert_eq!(e.code(), "K0003");
    }

    #[test]
    fn classes_and_per_class_reach_the_config() {
        let c = parse(&["--classes", "0-4", "--per-class", "20"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(c.classes, Some(vec![0, 1, 2, 3, 4]));
        assert_eq!((c.per_class, c.outputs()), (Some(20), 5));
    }

    #[test]
    fn tensorboard_flag_reaches_the_run_options() {
        assert!(!parse(&[]).unwrap().run_options().unwrap().tensorboard);
        let o = parse(&["--tensorboard"]).unwrap().run_options().unwrap();
        assert!(o.tensorboard);
    }

    #[test]
    fn data_flags_reach_the_config() {
        let c = parse(&[
            "--data",
            "flowers",
            "--data-format",
            "image-folder",
            "--val-split",
            "0.1",
            "--image-size",
            "64",
            "--transform",
            "none",
            "--workers",
            "2",
            "--skip-bad-images",
        ])
        .unwrap()
        .config()
        .unwrap();
        let d = c.data.clone().unwrap();
        assert_eq!(d.path, PathBuf::from("flowers"));
        assert_eq!(d.format, Some(kiln::data::sources::DataFormat::ImageFolder));
        assert_eq!((d.val_split, d.image_size), (Some(0.1), Some(64)));
        assert_eq!(d.transform, Some(kiln::train::TransformKind::None));
        assert!(d.skip_bad_images);
        assert_eq!(c.workers, 2);
        assert!(parse(&["--image-size", "32"]).is_err(), "needs --data");
        let e = parse(&["--data", "x", "--classes", "0-4"])
            .unwrap()
            .config();
        assert_eq!(e.unwrap_err().code(), "K0003");
    }
}
