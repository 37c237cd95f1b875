//! `TrainConfig`: every hyper-parameter of a training run, serialisable (a checkpoint stores
//! it so a resume can check that nothing changed).

use crate::error::{Error, Result};
use crate::optim::scheduler::Interval;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which optimizer `kiln train` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// `torch.optim.SGD` (momentum, weight decay).
    Sgd,
    /// `torch.optim.Adam` (L2 weight decay added to the gradient).
    Adam,
    /// `torch.optim.AdamW` (decoupled weight decay).
    AdamW,
    /// `torch.optim.RMSprop` (momentum 0, not centered).
    RMSprop,
    /// `torch.optim.Adagrad`.
    Adagrad,
    /// `torch.optim.Adamax`.
    Adamax,
    /// `torch.optim.NAdam` (L2 weight decay).
    NAdam,
    /// `torch.optim.RAdam` (L2 weight decay).
    RAdam,
}

impl OptimizerKind {
    /// The lowercase name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
            OptimizerKind::RMSprop => "rmsprop",
            OptimizerKind::Adagrad => "adagrad",
            OptimizerKind::Adamax => "adamax",
            OptimizerKind::NAdam => "nadam",
            OptimizerKind::RAdam => "radam",
        }
    }

    /// kiln's default learning rate for this optimizer: 0.03 for SGD (tuned on digits with
    /// momentum 0.9, batch 16 and the cosine schedule), else PyTorch's (1e-3 for Adam,
    /// AdamW and RAdam, 1e-2 for RMSprop and Adagrad, 2e-3 for Adamax and NAdam).
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerKind::Sgd => DEFAULT_SGD_LR,
            OptimizerKind::RMSprop | OptimizerKind::Adagrad => 1e-2,
            OptimizerKind::Adamax | OptimizerKind::NAdam => 2e-3,
            OptimizerKind::Adam | OptimizerKind::AdamW | OptimizerKind::RAdam => 1e-3,
        }
    }

    /// PyTorch's default `weight_decay` for this optimizer (0.01 for AdamW, else 0).
    pub fn default_weight_decay(self) -> f64 {
        match self {
            OptimizerKind::AdamW => 0.01,
            _ => 0.0,
        }
    }

    /// Every kind, in the order `--help` lists them.
    pub const ALL: [OptimizerKind; 8] = [
        OptimizerKind::Sgd,
        OptimizerKind::Adam,
        OptimizerKind::AdamW,
        OptimizerKind::RMSprop,
        OptimizerKind::Adagrad,
        OptimizerKind::Adamax,
        OptimizerKind::NAdam,
        OptimizerKind::RAdam,
    ];

    /// Parses `sgd`, `adam`, `adamw`, `rmsprop`, `adagrad`, `adamax`, `nadam` or `radam`
    /// (case-insensitive).
    ///
    /// # Errors
    /// `K0003` listing the accepted names.
    pub fn parse(text: &str) -> Result<Self> {
        let lower = text.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                Error::invalid("optimizer", text, format!("one of {}", names.join(", ")))
            })
    }
}

/// A learning-rate schedule, built by [`super::optimizers::build_scheduler`] from
/// `kiln::optim::scheduler` and stepped per epoch or per optimizer step
/// ([`TrainConfig::lr_interval`]; `ReduceLROnPlateau` always steps on the epoch's test loss).
/// Parsed from `step:STEP_SIZE[:GAMMA]`, `cosine[:T_MAX]`, `onecycle[:MAX_LR]`,
/// `linear[:WARMUP]`, `plateau[:PATIENCE]`, `poly[:POWER]`, `warm-restarts:T0[:T_MULT]` or
/// `none`. Lengths count epochs or steps, as the interval does.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SchedulerSpec {
    /// `StepLR(step_size, gamma)`: `lr · gamma^⌊epoch / step_size⌋`.
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Multiplicative factor.
        gamma: f64,
    },
    /// `CosineAnnealingLR(T_max, eta_min=0)`: `lr · (1 + cos(π·epoch/T_max)) / 2`.
    Cosine {
        /// Half-period in epochs; `None` means the run's number of epochs.
        t_max: Option<usize>,
    },
    /// `OneCycleLR(max_lr, total_steps = the run's length)` with PyTorch's other defaults
    /// (cosine, `pct_start = 0.3`, momentum cycled).
    OneCycle {
        /// Peak rate; `None` means the configured `lr`.
        max_lr: Option<f64>,
    },
    /// A linear warm-up: `LinearLR(start_factor, end_factor = 1, total_iters = warmup)`.
    Linear {
        /// Length of the warm-up (PyTorch's default 5).
        warmup: usize,
        /// Starting factor (PyTorch's default 1/3).
        start_factor: f64,
    },
    /// `ReduceLROnPlateau(mode="min", factor, patience)` on the test loss.
    Plateau {
        /// Epochs without improvement before reducing (PyTorch's default 10).
        patience: usize,
        /// Multiplier on a plateau (PyTorch's default 0.1).
        factor: f64,
    },
    /// `PolynomialLR(total_iters = the run's length, power)`.
    Poly {
        /// Exponent (PyTorch's default 1.0).
        power: f64,
    },
    /// `CosineAnnealingWarmRestarts(T_0, T_mult, eta_min = 0)`.
    #[serde(rename = "warm-restarts")]
    WarmRestarts {
        /// Length of the first period.
        t_0: usize,
        /// Growth of the period at each restart.
        t_mult: usize,
    },
}

impl SchedulerSpec {
    /// Parses `step:10`, `step:10:0.5`, `cosine`, `cosine:30`, `onecycle`, `onecycle:0.1`,
    /// `linear`, `linear:100`, `plateau`, `plateau:3`, `poly`, `poly:2`,
    /// `warm-restarts:10`, `warm-restarts:10:2`; `none` gives `Ok(None)`.
    ///
    /// # Errors
    /// `K0003` with the accepted forms.
    pub fn parse(text: &str) -> Result<Option<Self>> {
        let bad = || {
            Error::invalid(
                "scheduler",
                text,
                "step:STEP_SIZE[:GAMMA] (e.g. step:5:0.5), cosine[:T_MAX], onecycle[:MAX_LR], \
                 linear[:WARMUP], plateau[:PATIENCE], poly[:POWER], warm-restarts:T0[:T_MULT] or none",
            )
        };
        let parts: Vec<&str> = text.split(':').collect();
        let num = |s: &str| -> Result<usize> {
            match s.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad()),
            }
        };
        let real = |s: &str| -> Result<f64> {
            match s.parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
                _ => Err(bad()),
            }
        };
        match parts.as_slice() {
            ["none"] => Ok(None),
            ["step", s] | ["step", s, _] => {
                let step_size: usize = s.parse().map_err(|_| bad())?;
                let gamma: f64 = match parts.get(2) {
                    Some(g) => g.parse().map_err(|_| bad())?,
                    None => 0.1,
                };
                if step_size == 0 || !(gamma.is_finite() && gamma > 0.0) {
                    return Err(bad());
                }
                Ok(Some(SchedulerSpec::Step { step_size, gamma }))
            }
            ["cosine"] => Ok(Some(SchedulerSpec::Cosine { t_max: None })),
            ["cosine", t] => Ok(Some(SchedulerSpec::Cosine {
                t_max: Some(num(t)?),
            })),
            ["onecycle"] => Ok(Some(SchedulerSpec::OneCycle { max_lr: None })),
            ["onecycle", m] => Ok(Some(SchedulerSpec::OneCycle {
                max_lr: Some(real(m)?),
            })),
            ["linear"] | ["linear", _] => Ok(Some(SchedulerSpec::Linear {
                warmup: parts.get(1).map_or(Ok(5), |w| num(w))?,
                start_factor: 1.0 / 3.0,
            })),
            ["plateau"] | ["plateau", _] => Ok(Some(SchedulerSpec::Plateau {
                patience: match parts.get(1) {
                    Some(p) => p.parse().map_err(|_| bad())?,
                    None => 10,
                },
                factor: 0.1,
            })),
            ["poly"] | ["poly", _] => Ok(Some(SchedulerSpec::Poly {
                power: parts.get(1).map_or(Ok(1.0), |p| real(p))?,
            })),
            ["warm-restarts", t] | ["warm-restarts", t, _] => {
                Ok(Some(SchedulerSpec::WarmRestarts {
                    t_0: num(t)?,
                    t_mult: parts.get(2).map_or(Ok(1), |m| num(m))?,
                }))
            }
            _ => Err(bad()),
        }
    }
}

/// Every hyper-parameter of a run of `kiln train`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Architecture: `mlp`, `lenet` or a torchvision zoo name ([`crate::models::ARCHITECTURES`]).
    pub model: String,
    /// Number of epochs.
    pub epochs: usize,
    /// Training batch size.
    pub batch_size: usize,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (ignored by Adam/AdamW).
    pub momentum: f64,
    /// Weight decay (L2 for SGD/Adam, decoupled for AdamW).
    pub weight_decay: f64,
    /// Seed of initialisation, dropout and shuffling.
    pub seed: u64,
    /// Optional learning-rate schedule.
    pub scheduler: Option<SchedulerSpec>,
    /// When the schedule steps: after each epoch (the default) or after each optimizer
    /// update (Lightning's `interval`).
    #[serde(default)]
    pub lr_interval: Interval,
    /// Compute threads (set once at start-up).
    pub threads: usize,
    /// Device: `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    /// Drop the last incomplete training batch.
    pub drop_last: bool,
    /// Output directory (`metrics.jsonl`, `model.safetensors`, `curves.png`).
    pub out: PathBuf,
    /// Train and test on these digit classes only, relabelled `0..k` in the order given
    /// (None: all ten).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<i64>>,
    /// Keep only this many training images of each class, chosen by a shuffle seeded with
    /// `seed`; the test set is then every other image of the classes (see
    /// [`super::data::train_test`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_class: Option<usize>,
    /// Outputs of the model (None: the number of classes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<usize>,
    /// Fine-tuning: pretrained weights, frozen parameters, parameter groups, unfreezing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finetune: Option<crate::finetune::FinetuneConfig>,
    /// Train on this data source instead of the embedded digits (see [`DataConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataConfig>,
    /// Data-loading threads (0: the training thread builds the batches). The batches do not
    /// depend on it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub workers: usize,
    /// What a NaN or infinite loss does: stop with `K0703` (default) or continue.
    #[serde(default, skip_serializing_if = "is_stop")]
    pub on_nan: crate::train::NonFinitePolicy,
    /// Gradient accumulation and clipping (`--accumulate-grad-batches`, `--clip-grad-norm`,
    /// `--clip-grad-value`).
    #[serde(default, skip_serializing_if = "crate::train::StepOptions::is_default")]
    pub step: crate::train::StepOptions,
    /// Exponential moving average of the weights (`--ema-decay`, `--ema-warmup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<crate::train::EmaConfig>,
    /// Validation every N updates and early stopping (`--val-every-steps`, `--monitor`,
    /// `--early-stopping-patience`, `--min-delta`).
    #[serde(
        default,
        skip_serializing_if = "crate::train::ValidationConfig::is_default"
    )]
    pub validation: crate::train::ValidationConfig,
    /// Mixed precision (`--precision 32|bf16-mixed|16-mixed`, Lightning's names; absent from
    /// the JSON when `32`, so configurations written before it compare equal).
    #[serde(default, skip_serializing_if = "crate::amp::Precision::is_default")]
    pub precision: crate::amp::Precision,
    /// The GradScaler's settings of a `16-mixed` run (`--grad-scaler-init-scale`,
    /// `--grad-scaler-growth-interval`; None: PyTorch's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_scaler: Option<crate::amp::GradScalerConfig>,
}

fn is_stop(p: &crate::train::NonFinitePolicy) -> bool {
    *p == crate::train::NonFinitePolicy::Stop
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The input transform of an image source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransformKind {
    /// torchvision's ImageNet presets: training `imagenet_train(S)` (random resized crop,
    /// flip, normalise), evaluation `imagenet_eval(S)` (resize, centre crop, normalise).
    Imagenet,
    /// The samples as read (image folders are still resized and centre-cropped to S×S so
    /// that they batch).
    None,
}

impl TransformKind {
    /// Parses `imagenet` or `none`.
    ///
    /// # Errors
    /// `K0003` for another name.
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "imagenet" => Ok(TransformKind::Imagenet),
            "none" => Ok(TransformKind::None),
            _ => Err(Error::invalid("transform", text, "imagenet or none")),
        }
    }
}

/// A data source for a run (`kiln train --data PATH`), read with
/// [`crate::data::sources::open`]. Every field but `path` changes the samples, so resume
/// compares them all (`data` is in the must-match list).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// The source: an image folder, a `.csv`, MNIST / Fashion-MNIST IDX files, CIFAR
    /// batches or a tensors file.
    pub path: PathBuf,
    /// The format (None: detected from the path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<crate::data::sources::DataFormat>,
    /// Fraction of the training samples held out for evaluation (None: 0.2 when the source
    /// has no validation or test split of its own, else 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_split: Option<f64>,
    /// The CSV target column.
    #[serde(default = "default_target")]
    pub target: String,
    /// Classification or regression (None: decided from the data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::data::Task>,
    /// Side of the square images fed to the model (None: 224 for image folders, the
    /// source's own size otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    /// The transform (None: `imagenet` for image folders, `none` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<TransformKind>,
    /// Leave out images that fail to decode instead of failing.
    #[serde(default)]
    pub skip_bad_images: bool,
}

fn default_target() -> String {
    "target".into()
}

/// Default side of image-folder samples.
pub const DEFAULT_IMAGE_SIZE: usize = 224;
/// Default held-out fraction for sources without a validation or test split.
pub const DEFAULT_VAL_SPLIT: f64 = 0.2;

impl DataConfig {
    /// `path` with every other field at its default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataConfig {
            path: path.into(),
            format: None,
            val_split: None,
            target: default_target(),
            task: None,
            image_size: None,
            transform: None,
            skip_bad_images: false,
        }
    }
}

/// Default number of epochs.
pub const DEFAULT_EPOCHS: usize = 15;
/// Default batch size.
pub const DEFAULT_BATCH_SIZE: usize = 16;
/// Default learning rate of SGD (the default optimizer).
pub const DEFAULT_SGD_LR: f64 = 0.03;
/// Default optimizer.
pub const DEFAULT_OPTIMIZER: OptimizerKind = OptimizerKind::Sgd;
/// Default SGD momentum.
pub const DEFAULT_MOMENTUM: f64 = 0.9;
/// Default schedule: cosine annealing over the run's epochs.
pub const DEFAULT_SCHEDULER: SchedulerSpec = SchedulerSpec::Cosine { t_max: None };
/// Default thread count (1 is fastest for digits-sized models; see docs/BENCHMARKS.md).
pub const DEFAULT_THREADS: usize = 1;

impl TrainConfig {
    /// The defaults for `model`: `kiln train --model MODEL` with no other flag — SGD, lr 0.03,
    /// momentum 0.9, batch 16, cosine schedule, 15 epochs, seed 0, 1 thread. Tuned so LeNet
    /// reaches ≥ 97 % and the MLP ≥ 95 % test accuracy for every seed tried (docs/BENCHMARKS.md).
    pub fn for_model(model: &str) -> Self {
        TrainConfig {
            model: model.to_string(),
            epochs: DEFAULT_EPOCHS,
            batch_size: DEFAULT_BATCH_SIZE,
            optimizer: DEFAULT_OPTIMIZER,
            lr: DEFAULT_OPTIMIZER.default_lr(),
            momentum: DEFAULT_MOMENTUM,
            weight_decay: DEFAULT_OPTIMIZER.default_weight_decay(),
            seed: 0,
            scheduler: Some(DEFAULT_SCHEDULER),
            lr_interval: Interval::Epoch,
            threads: DEFAULT_THREADS,
            device: "cpu".into(),
            drop_last: false,
            out: PathBuf::from("runs").join(model),
            classes: None,
            per_class: None,
            num_classes: None,
            finetune: None,
            data: None,
            workers: 0,
            on_nan: Default::default(),
            step: Default::default(),
            ema: None,
            validation: Default::default(),
            precision: Default::default(),
            grad_scaler: None,
        }
    }

    /// The digit classes the run uses (all ten unless `classes` is set).
    pub fn class_list(&self) -> Vec<i64> {
        self.classes
            .clone()
            .unwrap_or_else(|| (0..crate::data::digits::NUM_CLASSES as i64).collect())
    }

    /// The model's number of outputs: `num_classes`, else the number of classes used.
    pub fn outputs(&self) -> usize {
        self.num_classes.unwrap_or(self.class_list().len())
    }

    /// Checks ranges and names.
    ///
    /// # Errors
    /// `K0003` for an unknown model, zero epochs/batch size/threads, a negative or non-finite
    /// learning rate, momentum outside `[0, 1)` or negative weight decay.
    pub fn validate(&self) -> Result<()> {
        if !crate::models::ARCHITECTURES.contains(&self.model.as_str()) {
            return Err(Error::invalid(
                "model",
                &self.model,
                format!("one of {}", crate::models::ARCHITECTURES.join(", ")),
            ));
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", 0, "at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", 0, "at least 1"));
        }
        crate::train::threads::check_threads(self.threads)?;
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(Error::invalid(
                "lr",
                self.lr,
                "a finite value >= 0 (PyTorch: Invalid learning rate)",
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::invalid(
                "momentum",
                self.momentum,
                "a value in [0, 1)",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid(
                "weight_decay",
                self.weight_decay,
                "a finite value >= 0",
            ));
        }
        self.step.validate()?;
        if let Some(e) = &self.ema {
            e.validate()?;
        }
        if let Some(g) = self.grad_scaler {
            if !self.precision.uses_grad_scaler() {
                return Err(Error::invalid(
                    "grad_scaler",
                    format!("GradScaler settings with --precision {}", self.precision),
                    "--precision 16-mixed (only f16 autocast scales the loss)",
                ));
            }
            crate::amp::GradScaler::new(g)?;
        }
        self.validate_data()?;
        parse_device(&self.device).map(|_| ())
    }

    fn validate_data(&self) -> Result<()> {
        if let Some(d) = &self.data {
            if self.classes.is_some() || self.per_class.is_some() {
                return Err(Error::invalid(
                    "classes",
                    "--classes/--per-class with --data",
                    "digit selection only for the embedded digits (leave out --data)",
                ));
            }
            if let Some(v) = d.val_split
                && !(0.0..1.0).contains(&v)
            {
                return Err(Error::invalid("val_split", v, "a fraction in [0, 1)"));
            }
            if d.image_size == Some(0) {
                return Err(Error::invalid("image_size", 0, "at least 1"));
            }
            if self.num_classes == Some(0) {
                return Err(Error::invalid("num_classes", 0, "at least 1"));
            }
            return Ok(());
        }
        let n = crate::data::digits::NUM_CLASSES as i64;
        if let Some(c) = &self.classes {
            if c.is_empty() {
                return Err(Error::invalid("classes", "(none)", "at least one digit"));
            }
            for (i, d) in c.iter().enumerate() {
                if !(0..n).contains(d) || c[..i].contains(d) {
                    return Err(Error::invalid(
                        "classes",
                        format!("{c:?}"),
                        format!("distinct digits between 0 and {}", n - 1),
                    ));
                }
            }
        }
        if self.per_class == Some(0) {
            return Err(Error::invalid("per_class", 0, "at least 1"));
        }
        let used = self.class_list().len();
        if let Some(k) = self.num_classes
            && k < used
        {
            return Err(Error::invalid(
                "num_classes",
                k,
                format!("at least the {used} classes trained on"),
            ));
        }
        Ok(())
    }
}

/// Parses a list of digit classes: `5-9`, `0,2,4`, `0-2,7`.
///
/// # Errors
/// `K0003` for text that is no such list.
pub fn parse_classes(text: &str) -> Result<Vec<i64>> {
    let bad = || Error::invalid("classes", text, "digits or ranges, e.g. 5-9 or 0,2,4-6");
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let a: i64 = a.trim().parse().map_err(|_| bad())?;
                let b: i64 = b.trim().parse().map_err(|_| bad())?;
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// Parses `cpu`, `cuda` or `cuda:N` into a device.
///
/// # Errors
/// `K0305` for text that is no device; `K0303` for CUDA when kiln was built without the
/// `cuda` feature or the device cannot be opened.
pub fn parse_device(text: &str) -> Result<Device> {
    let t = text.trim().to_ascii_lowercase();
    if t == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match t.as_str() {
        "cuda" => Some(0),
        _ => t
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok()),
    };
    let Some(ordinal) = ordinal else {
        return Err(Error::Parse {
            what: "device",
            text: text.to_string(),
            expected: "cpu, cuda, cuda:N".into(),
        });
    };
    open_cuda(text, ordinal)
}

#[cfg(feature = "cuda")]
fn open_cuda(text: &str, ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(|e| Error::CudaUnavailable {
        requested: text.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(text: &str, _ordinal: usize) -> Result<Device> {
    Err(Error::CudaUnavailable {
        requested: text.to_string(),
        reason: "this kiln was built without the `cuda` feature (rebuild with --features cuda)"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_json() {
        let mut c = TrainConfig::for_model("lenet");
        c.scheduler = SchedulerSpec::parse("step:5:0.5").unwrap();
        let s = serde_json::to_string(&c).unwrap();
        assert!(s.contains("\"optimizer\":\"sgd\""));
        let back: TrainConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(back, c);
        c.validate().unwrap();
    }

    #[test]
    fn schedules_parse() {
        let s = SchedulerSpec::parse("step:2").unwrap().unwrap();
        assert_eq!(
            s,
            SchedulerSpec::Step {
                step_size: 2,
                gamma: 0.1
            }
        );
        let c = SchedulerSpec::parse("cosine:20").unwrap().unwrap();
        assert_eq!(c, SchedulerSpec::Cosine { t_max: Some(20) });
        assert_eq!(SchedulerSpec::parse("none").unwrap(), None);
        assert_eq!(
            SchedulerSpec::parse("triangle").unwrap_err().code(),
            "K0003"
        );
        assert_eq!(
            SchedulerSpec::parse("warm-restarts:10:2").unwrap(),
            Some(SchedulerSpec::WarmRestarts { t_0: 10, t_mult: 2 })
        );
        assert_eq!(
            SchedulerSpec::parse("onecycle:0.5").unwrap(),
            Some(SchedulerSpec::OneCycle { max_lr: Some(0.5) })
        );
        assert_eq!(
            SchedulerSpec::parse("warm-restarts").unwrap_err().code(),
            "K0003"
        );
        assert_eq!(SchedulerSpec::parse("step:0").unwrap_err().code(), "K0003");
    }

    #[test]
    fn devices_parse_and_cuda_without_the_feature_is_k0303() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert_eq!(parse_device("gpu0").unwrap_err().code(), "K0305");
        if !cfg!(feature = "cuda") {
            let e = parse_device("cuda:1").unwrap_err();
            assert_eq!(e.code(), "K0303");
            assert!(e.to_string().contains("cuda:1"));
        }
    }

    #[test]
    fn classes_parse_and_validate() {
        assert_eq!(parse_classes("5-9").unwrap(), [5, 6, 7, 8, 9]);
        assert_eq!(parse_classes("0, 2,4-5").unwrap(), [0, 2, 4, 5]);
        for bad in ["", "a", "9-5", "1-"] {
            assert_eq!(parse_classes(bad).unwrap_err().code(), "K0003", "{bad}");
        }
        let mut c = TrainConfig::for_model("lenet");
        assert_eq!(c.outputs(), 10);
        c.classes = Some(vec![5, 6, 7]);
        assert_eq!(c.outputs(), 3);
        c.validate().unwrap();
        // Old configurations (no data fields) still parse and compare equal.
        let plain = serde_json::to_string(&TrainConfig::for_model("lenet")).unwrap();
        assert!(!plain.contains("classes"));
        for bad in [vec![5, 5], vec![10], vec![]] {
            c.classes = Some(bad);
            assert_eq!(c.validate().unwrap_err().code(), "K0003");
        }
        c.classes = Some(vec![5, 6, 7]);
        c.num_classes = Some(2);
        assert_eq!(c.validate().unwrap_err().code(), "K0003");
    }

    #[test]
    fn bad_values_are_k0003() {
        let mut c = TrainConfig::for_model("lenet");
        c.momentum = 1.5;
        assert_eq!(c.validate().unwrap_err().code(), "K0003");
        let mut c = TrainConfig::for_model("vgg");
        assert_eq!(c.validate().unwrap_err().code(), "K0003");
        c.model = "mlp".into();
        c.lr = -1.0;
        assert_eq!(c.validate().unwrap_err().code(), "K0003");
    }
}
