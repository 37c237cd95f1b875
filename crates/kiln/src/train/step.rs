//! How one optimizer update is formed from micro-batches: gradient accumulation
//! (Lightning's `accumulate_grad_batches`) and gradient clipping (`clip_grad_norm_`,
//! `clip_grad_value_`).
//!
//! An update is `micro_step` on each of its micro-batches (forward, loss divided by the
//! accumulation count, backward, gradients added up) followed by `apply_update` (DDP
//! all-reduce, clipping, optimizer step). Under DistributedDataParallel the all-reduce runs
//! once per update, on the summed gradients — what PyTorch's `no_sync()` on the first N-1
//! micro-batches gives. The trainer calls its hooks (and so takes checkpoints) only between
//! updates, so no partial sum ever needs to be saved: a resume re-forms the same groups.
//!
//! Mixed precision (`Trainer::precision`): forward and loss run under autocast. With
//! `16-mixed` the trainer's [`crate::amp::GradScaler`] acts as in Lightning's
//! `MixedPrecision` plugin and PyTorch's AMP recipe: each micro-batch backpropagates
//! `scale · loss / accumulate_grad_batches`; once per update, after the DDP all-reduce, the
//! summed gradients are unscaled (`scaler.unscale_`) and checked for inf/NaN, then clipped
//! (so `clip_grad_norm` sees unscaled gradients), then the optimizer steps unless inf/NaN was
//! found (`scaler.step`), then the scale is updated (`scaler.update`). A skipped update still
//! counts as a step (global step, a per-step LR schedule and the EMA all advance, as Lightning
//! does), clips nothing, reports no gradient norm (so `error_if_nonfinite` never fires on an
//! overflow the scaler handles) and sets [`StepReport::skipped`].

use super::hooks::StepReport;
use super::trainer::{NonFinitePolicy, Trainer};
use crate::data::Batch;
use crate::error::{Context, Error, Result};
use crate::nn::loss::correct;
use crate::optim::Grads;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Gradient accumulation and clipping settings of a run (all off by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepOptions {
    /// Micro-batches whose gradients are summed before each optimizer step (1: none). Each
    /// micro-batch's loss is divided by this number, as in PyTorch's
    /// `(loss / accum).backward()` recipe and Lightning; the last group of an epoch may be
    /// shorter and still steps (divided by the same number, as Lightning does).
    #[serde(default = "one")]
    pub accumulate_grad_batches: usize,
    /// `clip_grad_norm_(params, max_norm)` before each step, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    /// The norm's order (2, or `inf`); JSON holds it as text so that `inf` survives.
    #[serde(default = "two", with = "norm_text")]
    pub clip_grad_norm_type: f64,
    /// Stop with `K0704` when the total norm is NaN or infinite (PyTorch's
    /// `error_if_nonfinite`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error_if_nonfinite: bool,
    /// `clip_grad_value_(params, v)` before each step (after norm clipping), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_value: Option<f64>,
}

fn one() -> usize {
    1
}

fn two() -> f64 {
    2.0
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions {
            accumulate_grad_batches: 1,
            clip_grad_norm: None,
            clip_grad_norm_type: 2.0,
            error_if_nonfinite: false,
            clip_grad_value: None,
        }
    }
}

impl StepOptions {
    /// Whether every setting is off (nothing is written into a configuration).
    pub fn is_default(&self) -> bool {
        *self == StepOptions::default()
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// `K0003` for an accumulation count of 0, a negative or NaN threshold, or a norm order
    /// that is not `p ≥ 0`, `inf` or `-inf`.
    pub fn validate(&self) -> Result<()> {
        if self.accumulate_grad_batches == 0 {
            return Err(Error::invalid(
                "accumulate_grad_batches",
                0,
                "at least 1 (1: no accumulation)",
            ));
        }
        if let Some(v) = self.clip_grad_norm
            && (v.is_nan() || v < 0.0)
        {
            return Err(Error::invalid("clip_grad_norm", v, "a max norm ≥ 0"));
        }
        if let Some(v) = self.clip_grad_value
            && (v.is_nan() || v < 0.0)
        {
            return Err(Error::invalid("clip_grad_value", v, "a value ≥ 0"));
        }
        let p = self.clip_grad_norm_type;
        if p.is_nan() || (p < 0.0 && p != f64::NEG_INFINITY) {
            return Err(Error::invalid(
                "clip_grad_norm_type",
                p,
                "a p ≥ 0, inf or -inf",
            ));
        }
        Ok(())
    }
}

/// Serialises a norm order as text (`"2"`, `"inf"`), reads text or a number.
mod norm_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum NumOrText {
            Num(f64),
            Text(String),
        }
        match NumOrText::deserialize(d)? {
            NumOrText::Num(v) => Ok(v),
            NumOrText::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The micro-batches summed so far for the next update.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    grads: Option<Grads>,
    micro: usize,
    loss_sum: f64,
    correct: usize,
    samples: usize,
    seconds: f64,
}

impl Trainer {
    /// Forward, loss (divided by the accumulation count) and backward on one micro-batch;
    /// its gradients are added to those pending for the next update. Returns the
    /// micro-batch's own report (its undivided loss) without stepping the optimizer.
    ///
    /// # Errors
    /// Errors of the model, the loss or backward; `K0703` for a NaN/inf loss (unless the
    /// policy is `Continue`), in which case nothing is added.
    pub fn micro_step(&mut self, batch: &Batch) -> Result<StepReport> {
        let t0 = Instant::now();
        let x = batch
            .inputs
            .to_device(&self.device)
            .ctx("batch to device")?;
        let y = batch
            .targets
            .to_device(&self.device)
            .ctx("batch to device")?;
        // Forward and loss under the run's autocast (Lightning's training_step scope).
        let (logits, loss) = {
            let _amp = crate::amp::autocast::enter(self.precision.autocast_dtype());
            let logits = self.model.forward(&x)?;
            let loss = (self.loss)(&logits, &y)?;
            (logits, loss)
        };
        // Read once, before anything is applied: bf16/f16/f64 losses come back as f64 exactly.
        let value = loss
            .to_dtype(candle_core::DType::F64)
            .and_then(|l| l.to_scalar::<f64>())
            .ctx("loss value")?;
        if self.on_nonfinite_loss == NonFinitePolicy::Stop {
            self.check_finite(value)?;
        }
        let n = self.step_options.accumulate_grad_batches;
        let scaled = if n > 1 {
            // A true division, as PyTorch's `loss / n` (its backward divides too).
            let d = candle_core::Tensor::new(n as f64, loss.device())
                .and_then(|d| d.to_dtype(loss.dtype()))
                .and_then(|d| loss.broadcast_div(&d))
                .ctx("loss / accumulate_grad_batches")?;
            std::borrow::Cow::Owned(d)
        } else {
            std::borrow::Cow::Borrowed(&loss)
        };
        // 16-mixed: `scaler.scale(loss / n).backward()`.
        let scaled = match &self.grad_scaler {
            Some(s) => std::borrow::Cow::Owned(s.scale(&scaled)?),
            None => scaled,
        };
        let params = self.model.parameters();
        let grads = Grads::backward(&scaled, &params)?;
        let correct = if self.accuracy {
            correct(&logits, &y)?
        } else {
            0
        };
        let p = &mut self.pending;
        match p.grads.as_mut() {
            None => p.grads = Some(grads),
            Some(sum) => sum.accumulate(&grads)?,
        }
        p.micro += 1;
        let report = StepReport {
            // Reported at f32 precision, as the loss has always been logged.
            loss: value as f32 as f64,
            correct,
            batch_len: batch.len(),
            seconds: t0.elapsed().as_secs_f64(),
            grad_norm: None,
            grad_scale: self
                .grad_scaler
                .as_ref()
                .map(crate::amp::GradScaler::get_scale),
            skipped: false,
        };
        p.loss_sum += report.loss * report.batch_len as f64;
        p.correct += correct;
        p.samples += report.batch_len;
        p.seconds += report.seconds;
        Ok(report)
    }

    /// Micro-batches summed since the last update.
    pub fn pending_micro_batches(&self) -> usize {
        self.pending.micro
    }

    /// Applies the pending gradients: DDP all-reduce (once), `clip_grad_norm_`,
    /// `clip_grad_value_`, then the optimizer step and the EMA update; the sums start again. Returns the
    /// update's report: the mean loss and the totals of its micro-batches, and the total
    /// gradient norm before clipping (when norm clipping is on).
    ///
    /// # Errors
    /// `K0003` when no micro-batch is pending; `K0704` for a non-finite norm with
    /// `error_if_nonfinite`; errors of the all-reduce or the optimizer.
    pub fn apply_update(&mut self) -> Result<StepReport> {
        let t0 = Instant::now();
        let pending = std::mem::take(&mut self.pending);
        let Some(mut grads) = pending.grads else {
            return Err(Error::invalid(
                "apply_update",
                "no pending micro-batch",
                "micro_step(batch) before apply_update()",
            ));
        };
        if let Some(ddp) = self
            .model
            .as_any()
            .downcast_ref::<crate::parallel::DistributedDataParallel>()
        {
            ddp.reduce_gradients(&mut grads)?;
        }
        // 16-mixed: `scaler.unscale_(opt)` before clipping (clipping sees true gradients), and
        // no clipping and no optimizer step when they hold inf/NaN.
        let grad_scale = self
            .grad_scaler
            .as_ref()
            .map(crate::amp::GradScaler::get_scale);
        let skipped = match self.grad_scaler.as_mut() {
            Some(s) => s.unscale(&self.model.parameters(), &mut grads)?,
            None => false,
        };
        let opts = &self.step_options;
        let mut grad_norm = None;
        if !skipped && (opts.clip_grad_norm.is_some() || opts.clip_grad_value.is_some()) {
            let params = self.model.parameters();
            if let Some(max) = opts.clip_grad_norm {
                let total = crate::nn::utils::clip_grad_norm(
                    &params,
                    &mut grads,
                    max,
                    opts.clip_grad_norm_type,
                    opts.error_if_nonfinite,
                )
                .map_err(|e| match e {
                    Error::NonFiniteGradNorm {
                        norm_type, norm, ..
                    } => Error::NonFiniteGradNorm {
                        norm_type,
                        norm,
                        at: format!(
                            " at step {} (epoch {}, batch {})",
                            self.state.global_step, self.state.epoch, self.state.step_in_epoch
                        ),
                    },
                    other => other,
                })?;
                grad_norm = Some(total);
            }
            if let Some(v) = opts.clip_grad_value {
                crate::nn::utils::clip_grad_value(&params, &mut grads, v)?;
            }
        }
        if !skipped {
            self.optimizer.step(&grads)?;
        }
        if let Some(s) = self.grad_scaler.as_mut() {
            // once per optimizer update: backoff after a skipped one, growth after
            // growth_interval finite ones
            s.update();
        }
        // The EMA averages after every update, skipped or not (timm's loop does the same).
        if let Some(ema) = self.ema.as_mut() {
            ema.update(crate::train::checkpointing::inner_model(
                self.model.as_ref(),
            ))?;
        }
        let samples = pending.samples.max(1);
        Ok(StepReport {
            loss: pending.loss_sum / samples as f64,
            correct: pending.correct,
            batch_len: pending.samples,
            seconds: pending.seconds + t0.elapsed().as_secs_f64(),
            grad_norm,
            grad_scale,
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_through_json_with_inf() {
        let o = StepOptions {
            accumulate_grad_batches: 4,
            clip_grad_norm: Some(1.0),
            clip_grad_norm_type: f64::INFINITY,
            error_if_nonfinite: true,
            clip_grad_value: Some(0.5),
        };
        let j = serde_json::to_string(&o).unwrap();
        assert!(j.contains("\"inf\""), "{j}");
        let back: StepOptions = serde_json::from_str(&j).unwrap();
        assert_eq!(back, o);
        let d: StepOptions = serde_json::from_str("{}").unwrap();
        assert!(d.is_default());
    }

    #[test]
    fn bad_options_are_k0003() {
        let mut o = StepOptions {
            accumulate_grad_batches: 0,
            ..Default::default()
        };
        assert_eq!(o.validate().unwrap_err().code(), "K0003");
        o.accumulate_grad_batches = 2;
        o.clip_grad_norm = Some(f64::NAN);
        assert_eq!(o.validate().unwrap_err().code(), "K0003");
        o.clip_grad_norm = Some(1.0);
        o.clip_grad_norm_type = -2.0;
        assert_eq!(o.validate().unwrap_err().code(), "K0003");
        o.clip_grad_norm_type = f64::NEG_INFINITY;
        assert!(o.validate().is_ok());
    }
}
