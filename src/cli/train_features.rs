//! The `kiln train` flags of how each update is formed (gradient accumulation and clipping)
//! and of the weight average (EMA), validation and early stopping.

use kiln::amp::{GradScalerConfig, Precision};
use kiln::error::{Error, Result};
use kiln::train::{EarlyStoppingConfig, EmaConfig, MonitorMode, StepOptions, ValidationConfig};

/// Gradient accumulation and clipping flags of `kiln train` (and `kiln finetune`).
#[derive(clap::Args, Debug, Clone)]
pub struct StepArgs {
    /// Sum the gradients of N batches before each optimizer step (Lightning's
    /// accumulate_grad_batches; each loss is divided by N, and under --distributed the
    /// gradients are all-reduced once per step). Checkpoint step counts are optimizer steps.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub accumulate_grad_batches: usize,
    /// Clip the total gradient norm to X before each step (torch.nn.utils.clip_grad_norm_);
    /// the norm before clipping is logged (grad_norm in metrics.jsonl).
    #[arg(long, value_name = "X")]
    pub clip_grad_norm: Option<f64>,
    /// Order of that norm: 2 (the default), 1, any p > 0, inf or -inf.
    #[arg(
        long,
        value_name = "P",
        default_value = "2",
        requires = "clip_grad_norm"
    )]
    pub clip_grad_norm_type: String,
    /// Stop with K0704 when the gradient norm is NaN or infinite instead of clipping by it
    /// (PyTorch's error_if_nonfinite=True).
    #[arg(long, requires = "clip_grad_norm")]
    pub error_if_nonfinite: bool,
    /// Clamp every gradient to [-V, V] before each step (torch.nn.utils.clip_grad_value_).
    #[arg(long, value_name = "V")]
    pub clip_grad_value: Option<f64>,
    /// Keep an exponential moving average of the weights with this decay (e.g. 0.999;
    /// torch.optim.swa_utils.AveragedModel): evaluated each epoch (ema_test_loss,
    /// ema_test_acc), saved as model_ema.safetensors and in checkpoints.
    #[arg(long, value_name = "D")]
    pub ema_decay: Option<f64>,
    /// With --ema-decay: timm's warm-up, decay min(D, 1 - k^(-2/3)) at update k.
    #[arg(long, requires = "ema_decay")]
    pub ema_warmup: bool,
    /// Stop when --monitor (a validation value: test_acc, test_loss, val_acc, val_loss,
    /// ema_test_acc, ema_test_loss) has not improved for P validations in a row (Lightning's
    /// EarlyStopping); the best weights are saved as model_best.safetensors.
    #[arg(long, value_name = "P")]
    pub early_stopping_patience: Option<usize>,
    /// With --early-stopping-patience: the least change of the monitored value that counts
    /// as an improvement.
    #[arg(long, value_name = "D", default_value_t = 0.0)]
    pub min_delta: f64,
    /// Validate every N optimizer updates too (Lightning's val_check_interval), one line each
    /// in validation.jsonl; early stopping then checks at these validations.
    #[arg(long, value_name = "N")]
    pub val_every_steps: Option<u64>,
    /// Lightning's precision: 32 (f32 throughout, the default), bf16-mixed (bf16 autocast:
    /// convolutions and linear layers compute on bf16-rounded inputs and weights with f32
    /// accumulation, the loss in f32; weights and optimizer state stay f32) or 16-mixed (f16
    /// autocast plus torch.amp.GradScaler: scaled loss, unscaled gradients before clipping,
    /// steps with inf/NaN gradients skipped). A resume must use the same precision.
    #[arg(long, value_name = "P", default_value = "32", value_parser = ["32", "32-true", "bf16-mixed", "16-mixed"])]
    pub precision: String,
    /// With --precision 16-mixed: the GradScaler's first loss scale (init_scale, default 65536).
    #[arg(long, value_name = "S")]
    pub grad_scaler_init_scale: Option<f64>,
    /// With --precision 16-mixed: finite steps in a row before the scale doubles
    /// (growth_interval, default 2000).
    #[arg(long, value_name = "N")]
    pub grad_scaler_growth_interval: Option<u64>,
}

impl StepArgs {
    /// The options these flags set.
    ///
    /// # Errors
    /// `K0003` for a norm order that is not a number, `inf` or `-inf`, and for out-of-range
    /// values.
    pub fn options(&self) -> Result<StepOptions> {
        let t = self.clip_grad_norm_type.trim();
        let norm_type = match t.to_ascii_lowercase().as_str() {
            "inf" | "+inf" | "infinity" => f64::INFINITY,
            "-inf" | "-infinity" => f64::NEG_INFINITY,
            other => other.parse::<f64>().map_err(|_| {
                Error::invalid(
                    "--clip-grad-norm-type",
                    t,
                    "a number (2, 1, …), inf or -inf",
                )
            })?,
        };
        let o = StepOptions {
            accumulate_grad_batches: self.accumulate_grad_batches,
            clip_grad_norm: self.clip_grad_norm,
            clip_grad_norm_type: norm_type,
            error_if_nonfinite: self.error_if_nonfinite,
            clip_grad_value: self.clip_grad_value,
        };
        o.validate()?;
        Ok(o)
    }

    /// The validation and early-stopping settings these flags set.
    ///
    /// # Errors
    /// `K0003` for a patience or interval of 0, a negative `--min-delta`, or `--min-delta`
    /// without `--early-stopping-patience`. `monitor` is `kiln train --monitor` (which also
    /// ranks the checkpoints).
    pub fn validation(&self, monitor: &str) -> Result<ValidationConfig> {
        let stopping = self.early_stopping_patience.is_some();
        if !stopping && self.min_delta != 0.0 {
            return Err(Error::invalid(
                "--min-delta",
                self.min_delta,
                "--early-stopping-patience P as well",
            ));
        }
        let early_stopping = stopping.then(|| EarlyStoppingConfig {
            monitor: monitor.to_string(),
            patience: self.early_stopping_patience,
            min_delta: self.min_delta,
            mode: Some(MonitorMode::for_name(monitor)),
        });
        let v = ValidationConfig {
            every_steps: self.val_every_steps,
            early_stopping,
        };
        v.validate()?;
        Ok(v)
    }

    /// The precision and the GradScaler settings these flags set.
    ///
    /// # Errors
    /// `K0003` for a GradScaler flag without `--precision 16-mixed` or a value the
    /// GradScaler refuses.
    pub fn precision(&self) -> Result<(Precision, Option<GradScalerConfig>)> {
        let p = Precision::parse(&self.precision)?;
        let set =
            self.grad_scaler_init_scale.is_some() || self.grad_scaler_growth_interval.is_some();
        if !set {
            return Ok((p, None));
        }
        if !p.uses_grad_scaler() {
            let flag = if self.grad_scaler_init_scale.is_some() {
                "--grad-scaler-init-scale"
            } else {
                "--grad-scaler-growth-interval"
            };
            return Err(Error::invalid(
                flag,
                format!("with --precision {p}"),
                "--precision 16-mixed (bf16 and f32 need no loss scaling)",
            ));
        }
        let d = GradScalerConfig::default();
        let c = GradScalerConfig {
            init_scale: self.grad_scaler_init_scale.unwrap_or(d.init_scale),
            growth_interval: self
                .grad_scaler_growth_interval
                .unwrap_or(d.growth_interval),
            ..d
        };
        kiln::amp::GradScaler::new(c)?;
        Ok((p, Some(c)))
    }

    /// The EMA settings these flags set, if any.
    ///
    /// # Errors
    /// `K0003` for a decay outside [0, 1].
    pub fn ema(&self) -> Result<Option<EmaConfig>> {
        let Some(decay) = self.ema_decay else {
            return Ok(None);
        };
        let e = EmaConfig {
            decay,
            warmup: self.ema_warmup,
        };
        e.validate()?;
        Ok(Some(e))
    }
}
