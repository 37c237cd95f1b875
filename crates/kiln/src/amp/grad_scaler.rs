//! `torch.amp.GradScaler`: dynamic loss scaling.
//!
//! The loss is multiplied by `scale` before backward; before the optimizer step the
//! gradients are multiplied by `1/scale` (computed as PyTorch does: the f32 scale's
//! reciprocal in f64, rounded to f32) and checked for NaN/inf. A step whose gradients hold
//! one is skipped and the scale is multiplied by `backoff_factor`; after `growth_interval`
//! finite steps in a row it is multiplied by `growth_factor` (when the result is finite).
//! This is `_amp_foreach_non_finite_check_and_unscale_` + `_amp_update_scale_`, with the
//! scale held in f32 as PyTorch's `_scale` tensor is.
//!
//! ```
//! use kiln::amp::{GradScaler, GradScalerConfig};
//! let mut s = GradScaler::new(GradScalerConfig { growth_interval: 2, ..Default::default() }).unwrap();
//! assert_eq!(s.get_scale(), 65536.0);
//! s.record_found_inf(true);
//! s.update();
//! assert_eq!(s.get_scale(), 32768.0); // a skipped step halves the scale
//! ```

use crate::error::{Context, Error, Result};
use crate::io::Value;
use crate::nn::Param;
use crate::optim::{Grads, Optimizer};
use candle_core::{DType, Tensor};

/// The settings of a [`GradScaler`] (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GradScalerConfig {
    /// The first scale (`init_scale`, 2^16).
    pub init_scale: f64,
    /// Factor after `growth_interval` finite steps (2.0).
    pub growth_factor: f64,
    /// Factor after a step with NaN/inf gradients (0.5).
    pub backoff_factor: f64,
    /// Finite steps in a row before the scale grows (2000).
    pub growth_interval: u64,
}

impl Default for GradScalerConfig {
    fn default() -> Self {
        GradScalerConfig {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

/// Dynamic loss scaling (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct GradScaler {
    config: GradScalerConfig,
    /// The current scale, an f32 as PyTorch's `_scale`.
    scale: f32,
    /// Finite steps since the last growth or backoff (`_growth_tracker`).
    growth_tracker: u64,
    /// Whether the gradients of the step in progress held NaN/inf (`None`: not unscaled).
    found_inf: Option<bool>,
}

impl GradScaler {
    /// A scaler at `config.init_scale`.
    ///
    /// # Errors
    /// `K0003` as PyTorch's asserts: `growth_factor > 1`, `0 < backoff_factor < 1`,
    /// `growth_interval ≥ 1`, a finite positive `init_scale`.
    pub fn new(config: GradScalerConfig) -> Result<Self> {
        if !(config.init_scale.is_finite() && config.init_scale > 0.0) {
            return Err(Error::invalid(
                "GradScaler init_scale",
                config.init_scale,
                "a finite value > 0",
            ));
        }
        if config.growth_factor.is_nan() || config.growth_factor <= 1.0 {
            return Err(Error::invalid(
                "GradScaler growth_factor",
                config.growth_factor,
                "> 1.0 (PyTorch: assert growth_factor > 1.0)",
            ));
        }
        if config.backoff_factor.is_nan()
            || config.backoff_factor <= 0.0
            || config.backoff_factor >= 1.0
        {
            return Err(Error::invalid(
                "GradScaler backoff_factor",
                config.backoff_factor,
                "in (0, 1) (PyTorch: assert backoff_factor < 1.0)",
            ));
        }
        if config.growth_interval == 0 {
            return Err(Error::invalid(
                "GradScaler growth_interval",
                0,
                "at least 1",
            ));
        }
        Ok(GradScaler {
            scale: config.init_scale as f32,
            config,
            growth_tracker: 0,
            found_inf: None,
        })
    }

    /// The settings.
    pub fn config(&self) -> &GradScalerConfig {
        &self.config
    }

    /// The current scale (`scaler.get_scale()`).
    pub fn get_scale(&self) -> f64 {
        f64::from(self.scale)
    }

    /// Finite steps since the last change of the scale (`_growth_tracker`).
    pub fn growth_tracker(&self) -> u64 {
        self.growth_tracker
    }

    /// `scaler.scale(loss)`: `loss * scale`. A 0-dim loss is promoted to f32 (PyTorch's
    /// promotion of two 0-dim tensors); a larger output keeps its dtype.
    ///
    /// # Errors
    /// Errors of the multiplication.
    pub fn scale(&self, loss: &Tensor) -> Result<Tensor> {
        let (x, dtype) = if loss.rank() == 0 {
            (
                loss.to_dtype(DType::F32).ctx("GradScaler.scale")?,
                DType::F32,
            )
        } else {
            (loss.clone(), loss.dtype())
        };
        let s = Tensor::new(self.scale, x.device())
            .and_then(|s| s.to_dtype(dtype))
            .ctx("GradScaler.scale")?;
        x.broadcast_mul(&s).ctx("GradScaler.scale")
    }

    /// PyTorch's `inv_scale = scale.double().reciprocal().float()`.
    fn inv_scale(&self) -> f32 {
        (1.0 / f64::from(self.scale)) as f32
    }

    /// `scaler.unscale_(optimizer)`: multiplies the gradients of `params` by `1/scale` in
    /// their own dtype and records whether any of them held NaN/inf. Returns that.
    ///
    /// # Errors
    /// `K0003` when called twice for one step (PyTorch: "unscale_() has already been called
    /// on this optimizer since the last update()"); errors of the arithmetic.
    pub fn unscale(&mut self, params: &[Param], grads: &mut Grads) -> Result<bool> {
        if self.found_inf.is_some() {
            return Err(Error::invalid(
                "GradScaler.unscale",
                "a second call before update()",
                "one unscale per step (PyTorch: unscale_() has already been called since the last update())",
            ));
        }
        let inv = self.inv_scale();
        let mut found = false;
        for p in params {
            let Some(g) = grads.get(p) else { continue };
            let g64 = g.to_dtype(DType::F64).ctx("GradScaler.unscale")?;
            let finite = g64
                .abs()
                .and_then(|a| a.flatten_all())
                .and_then(|a| a.to_vec1::<f64>())
                .ctx("GradScaler.unscale")?
                .iter()
                .all(|v| v.is_finite());
            found |= !finite;
            let c = Tensor::new(inv, g.device())
                .and_then(|c| c.to_dtype(g.dtype()))
                .ctx("GradScaler.unscale")?;
            let u = g.broadcast_mul(&c).ctx("GradScaler.unscale")?;
            grads.insert(p.id(), u);
        }
        self.found_inf = Some(found);
        Ok(found)
    }

    /// Records the non-finite check of a step done elsewhere (e.g. summed over ranks).
    pub fn record_found_inf(&mut self, found: bool) {
        self.found_inf = Some(self.found_inf.unwrap_or(false) | found);
    }

    /// `scaler.step(optimizer)`: unscales first when that has not happened yet, then runs
    /// `optimizer.step` unless a gradient held NaN/inf. Returns whether it stepped.
    ///
    /// # Errors
    /// Errors of unscaling or of the optimizer.
    pub fn step(
        &mut self,
        optimizer: &mut dyn Optimizer,
        params: &[Param],
        grads: &mut Grads,
    ) -> Result<bool> {
        let found = match self.found_inf {
            Some(f) => f,
            None => self.unscale(params, grads)?,
        };
        if found {
            return Ok(false);
        }
        optimizer.step(grads)?;
        Ok(true)
    }

    /// `scaler.update()`: `_amp_update_scale_` — backoff after a step with NaN/inf, growth
    /// after `growth_interval` finite steps in a row (kept only when finite). A step that was
    /// never unscaled counts as finite.
    pub fn update(&mut self) {
        let found = self.found_inf.take().unwrap_or(false);
        if found {
            self.scale = (f64::from(self.scale) * self.config.backoff_factor) as f32;
            self.growth_tracker = 0;
            return;
        }
        let successful = self.growth_tracker + 1;
        if successful == self.config.growth_interval {
            let grown = (f64::from(self.scale) * self.config.growth_factor) as f32;
            if grown.is_finite() {
                self.scale = grown;
            }
            self.growth_tracker = 0;
        } else {
            self.growth_tracker = successful;
        }
    }

    /// `scaler.state_dict()`: `{"scale", "growth_factor", "backoff_factor",
    /// "growth_interval", "_growth_tracker"}`, PyTorch's keys and Python types.
    pub fn state_dict(&self) -> Value {
        Value::dict([
            ("scale", Value::Float(f64::from(self.scale))),
            ("growth_factor", Value::Float(self.config.growth_factor)),
            ("backoff_factor", Value::Float(self.config.backoff_factor)),
            (
                "growth_interval",
                Value::Int(self.config.growth_interval as i64),
            ),
            ("_growth_tracker", Value::Int(self.growth_tracker as i64)),
        ])
    }

    /// `scaler.load_state_dict(sd)`: the scale, the factors, the interval and the tracker.
    ///
    /// # Errors
    /// `K0003` for a missing key, a value of the wrong type, or settings `new` refuses.
    pub fn load_state_dict(&mut self, sd: &Value) -> Result<()> {
        let bad = |k: &str| {
            Error::invalid(
                "GradScaler state_dict",
                format!("'{k}' missing or not a number"),
                "PyTorch's keys scale, growth_factor, backoff_factor, growth_interval, _growth_tracker",
            )
        };
        let f = |k: &str| sd.get(k).and_then(Value::as_f64).ok_or_else(|| bad(k));
        let i = |k: &str| {
            sd.get(k)
                .and_then(Value::as_i64)
                .filter(|v| *v >= 0)
                .map(|v| v as u64)
                .ok_or_else(|| bad(k))
        };
        let config = GradScalerConfig {
            init_scale: f("scale")?,
            growth_factor: f("growth_factor")?,
            backoff_factor: f("backoff_factor")?,
            growth_interval: i("growth_interval")?,
        };
        let mut s = GradScaler::new(config)?;
        s.growth_tracker = i("_growth_tracker")?;
        s.config.init_scale = self.config.init_scale;
        *self = s;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `_amp_update_scale_` by hand: growth after `growth_interval` finite steps, backoff
    /// (and a reset tracker) on inf, growth refused when it overflows f32.
    #[test]
    fn update_rule_is_pytorchs() {
        let mut s = GradScaler::new(GradScalerConfig {
            init_scale: 8.0,
            growth_interval: 3,
            ..Default::default()
        })
        .unwrap();
        for _ in 0..2 {
            s.update();
        }
        assert_eq!((s.get_scale(), s.growth_tracker()), (8.0, 2));
        s.update();
        assert_eq!((s.get_scale(), s.growth_tracker()), (16.0, 0));
        s.update();
        s.record_found_inf(true);
        s.update();
        assert_eq!((s.get_scale(), s.growth_tracker()), (8.0, 0));
        let mut big = GradScaler::new(GradScalerConfig {
            init_scale: f64::from(f32::MAX),
            growth_interval: 1,
            ..Default::default()
        })
        .unwrap();
        big.update();
        assert_eq!(big.get_scale(), f64::from(f32::MAX));
        assert_eq!(big.growth_tracker(), 0);
    }

    #[test]
    fn state_dict_round_trips_and_bad_settings_are_k0003() {
        let mut s = GradScaler::new(GradScalerConfig::default()).unwrap();
        s.update();
        s.record_found_inf(true);
        s.update();
        s.update();
        let mut t = GradScaler::new(GradScalerConfig::default()).unwrap();
        t.load_state_dict(&s.state_dict()).unwrap();
        assert_eq!(s, t);
        for c in [
            GradScalerConfig {
                growth_factor: 1.0,
                ..Default::default()
            },
            GradScalerConfig {
                backoff_factor: 1.0,
                ..Default::default()
            },
            GradScalerConfig {
                growth_interval: 0,
                ..Default::default()
            },
            GradScalerConfig {
                init_scale: f64::INFINITY,
                ..Default::default()
            },
        ] {
            assert_eq!(GradScaler::new(c).unwrap_err().code(), "K0003");
        }
    }
}
