//! An exponential moving average of the model's weights: PyTorch's
//! `torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
//! use_buffers=True)`, with timm's `ModelEmaV3` warm-up as an option.
//!
//! After every optimizer update the average moves towards the model:
//! `ema ← ema + (1 − decay) · (weight − ema)` for every parameter and floating buffer
//! (`torch.lerp`), `ema ← trunc(ema · decay + weight · (1 − decay))` for integer buffers
//! (`num_batches_tracked`), as `get_ema_multi_avg_fn` does. The first update copies the
//! weights. With warm-up the average is timm's `ModelEmaV3(use_warmup=True)`: update `k`
//! (1-based) uses `min(decay, 1 − k^(−2/3))` (`warmup_gamma = 1`, `warmup_power = 2/3`), so
//! early averages follow the model closely, and integer buffers are copied.
//!
//! The average is evaluated beside the raw weights after each epoch (`ema_test_loss`,
//! `ema_test_acc` in `metrics.jsonl`), saved as `model_ema.safetensors` at the end of a run,
//! and kept in checkpoints so that a resume continues it bit-exactly.

use crate::error::{Context, Error, Result};
use crate::io::Value;
use crate::nn::{Module, StateDict};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

/// The checkpoint key (in `extra`) of the average.
pub const EMA_KEY: &str = "ema";

/// EMA settings (`--ema-decay D`, `--ema-warmup`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmaConfig {
    /// The decay: weight of the old average at each update (e.g. 0.999).
    pub decay: f64,
    /// timm's warm-up: `min(decay, 1 − k^(−2/3))` at update `k`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warmup: bool,
}

impl EmaConfig {
    /// Checks the decay.
    ///
    /// # Errors
    /// `K0003` for a decay outside `[0, 1]`.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.decay) {
            return Err(Error::invalid(
                "ema_decay",
                self.decay,
                "a decay in [0, 1] (e.g. 0.999)",
            ));
        }
        Ok(())
    }
}

/// The running average of a model's state dict.
#[derive(Clone, Debug)]
pub struct Ema {
    config: EmaConfig,
    updates: u64,
    weights: Vec<(String, Tensor)>,
}

impl Ema {
    /// An empty average (the first [`Ema::update`] copies the model).
    pub fn new(config: EmaConfig) -> Self {
        Ema {
            config,
            updates: 0,
            weights: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &EmaConfig {
        &self.config
    }

    /// Updates applied so far (PyTorch's `n_averaged`).
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// The decay update number `k` (1-based) uses.
    pub fn decay_at(&self, k: u64) -> f64 {
        if k <= 1 {
            return 0.0;
        }
        if self.config.warmup {
            let d = 1.0 - (k as f64).powf(-2.0 / 3.0);
            d.min(self.config.decay).max(0.0)
        } else {
            self.config.decay
        }
    }

    /// Moves the average towards `model`'s current weights (after an optimizer step).
    ///
    /// # Errors
    /// `K0003` when the model's state-dict keys changed since the last update; candle's errors.
    pub fn update(&mut self, model: &dyn Module) -> Result<()> {
        let sd = model.state_dict();
        let k = self.updates + 1;
        if self.weights.is_empty() {
            self.weights = sd
                .iter()
                .map(|(n, t)| Ok((n.to_string(), t.copy().ctx("EMA copy")?)))
                .collect::<Result<_>>()?;
            self.updates = k;
            return Ok(());
        }
        if sd.len() != self.weights.len() {
            return Err(Error::invalid(
                "EMA",
                format!(
                    "{} tensors, the average has {}",
                    sd.len(),
                    self.weights.len()
                ),
                "the same model at every update",
            ));
        }
        let decay = self.decay_at(k);
        for (name, avg) in &mut self.weights {
            let Some(cur) = sd.get(name) else {
                return Err(Error::invalid(
                    "EMA",
                    format!("the model has no '{name}'"),
                    "the same model at every update",
                ));
            };
            *avg = step(avg, cur, decay, self.config.warmup)?;
        }
        self.updates = k;
        Ok(())
    }

    /// The average as a state dict (empty before the first update).
    pub fn state_dict(&self) -> StateDict {
        self.weights.iter().cloned().collect()
    }

    /// Runs `f` with the average loaded into `model` and puts the model's own weights back
    /// afterwards (also when `f` fails). Without any update yet, `f` sees the model as it is.
    ///
    /// # Errors
    /// Errors of `f` or of loading the weights.
    pub fn with_weights<T>(&self, model: &dyn Module, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if self.weights.is_empty() {
            return f();
        }
        let own: StateDict = model
            .state_dict()
            .iter()
            .map(|(n, t)| Ok((n.to_string(), t.copy().ctx("EMA swap")?)))
            .collect::<Result<_>>()?;
        model.load_state_dict(&self.state_dict(), true)?;
        let out = f();
        model.load_state_dict(&own, true)?;
        out
    }

    /// The checkpoint entry: `{"decay", "warmup", "updates", "weights": {name: tensor}}`.
    ///
    /// # Errors
    /// Errors converting a tensor.
    pub fn to_value(&self) -> Result<Value> {
        let weights = self
            .weights
            .iter()
            .map(|(n, t)| Ok((n.clone(), Value::from_tensor(t)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Value::dict([
            ("decay", Value::Float(self.config.decay)),
            ("warmup", Value::Bool(self.config.warmup)),
            ("updates", Value::Int(self.updates as i64)),
            ("weights", Value::dict(weights)),
        ]))
    }

    /// Restores the average from a checkpoint entry written by [`Ema::to_value`].
    ///
    /// # Errors
    /// `K0702` when the checkpoint's decay or warm-up differ from this run's; `K0003` for a
    /// malformed entry.
    pub fn load_value(&mut self, v: &Value, device: &Device) -> Result<()> {
        let bad = |what: &str| Error::invalid("checkpoint EMA entry", what, "kiln's EMA state");
        let decay = v
            .get("decay")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad("no decay"))?;
        let warmup = matches!(v.get("warmup"), Some(Value::Bool(true)));
        if decay.to_bits() != self.config.decay.to_bits() || warmup != self.config.warmup {
            return Err(Error::ResumeMismatch {
                field: "EMA".into(),
                checkpoint: format!("decay {decay}, warm-up {warmup}"),
                current: format!(
                    "decay {}, warm-up {}",
                    self.config.decay, self.config.warmup
                ),
            });
        }
        let updates = v
            .get("updates")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("no updates"))?;
        let Some(Value::Dict(w)) = v.get("weights") else {
            return Err(bad("no weights"));
        };
        let mut weights = Vec::with_capacity(w.entries.len());
        for (name, t) in &w.entries {
            let name = name
                .as_str()
                .ok_or_else(|| bad("a weight name is not text"))?;
            let t = t
                .as_tensor()
                .ok_or_else(|| bad("a weight is not a tensor"))?;
            weights.push((name.to_string(), t.to_tensor(device)?));
        }
        self.updates = updates.max(0) as u64;
        self.weights = weights;
        Ok(())
    }
}

/// The elements of `t`, flattened.
fn flat<T: candle_core::WithDType>(t: &Tensor) -> Result<Vec<T>> {
    t.flatten_all().and_then(|t| t.to_vec1::<T>()).ctx("EMA")
}

/// PyTorch's vectorised CPU `lerp(start, end, w)`: `fma(w, end − start, start)` for a small
/// weight (`|w| < 0.5`), `fma(w − 1, end − start, end)` otherwise.
fn lerp_values<T: Copy + std::ops::Sub<Output = T>>(
    start: &[T],
    end: &[T],
    w: T,
    small: bool,
    fma: impl Fn(T, T, T) -> T,
    one: T,
) -> Vec<T> {
    let coeff = if small { w } else { w - one };
    start
        .iter()
        .zip(end)
        .map(|(&a, &b)| fma(coeff, b - a, if small { a } else { b }))
        .collect()
}

/// One EMA step of a tensor; integer tensors are copied when `copy_ints` (timm) and mixed
/// then truncated otherwise (AveragedModel).
fn step(avg: &Tensor, cur: &Tensor, decay: f64, copy_ints: bool) -> Result<Tensor> {
    let cur = cur.to_device(avg.device()).ctx("EMA")?;
    if decay == 0.0 {
        return cur.copy().ctx("EMA");
    }
    let w = 1.0 - decay;
    match (avg.device(), avg.dtype()) {
        (Device::Cpu, DType::F32) => {
            let (a, c) = (flat::<f32>(avg)?, flat::<f32>(&cur)?);
            let w = w as f32;
            let out = lerp_values(&a, &c, w, w.abs() < 0.5, |x, y, z| x.mul_add(y, z), 1.0);
            return Tensor::from_vec(out, avg.shape(), avg.device()).ctx("EMA");
        }
        (Device::Cpu, DType::F64) => {
            let (a, c) = (flat::<f64>(avg)?, flat::<f64>(&cur)?);
            let out = lerp_values(&a, &c, w, w.abs() < 0.5, |x, y, z| x.mul_add(y, z), 1.0);
            return Tensor::from_vec(out, avg.shape(), avg.device()).ctx("EMA");
        }
        (_, dt) if dt.is_float() => {
            // Off the CPU: the same formula in two roundings (no fused multiply-add).
            let diff = (&cur - avg).ctx("EMA")?;
            let s = |t: &Tensor, k: f64| {
                Tensor::new(k, t.device())
                    .and_then(|k| k.to_dtype(t.dtype()))
                    .and_then(|k| t.broadcast_mul(&k))
            };
            let out = if w.abs() < 0.5 {
                s(&diff, w).and_then(|d| avg + d)
            } else {
                s(&diff, w - 1.0).and_then(|d| &cur + d)
            };
            return out.ctx("EMA");
        }
        _ if copy_ints => return cur.copy().ctx("EMA"),
        _ => {}
    }
    // `p_ema * decay + p_model * (1 - decay)` of integer tensors is float32 arithmetic in
    // PyTorch (the default dtype), then `copy_` truncates towards zero.
    let (a, c) = (
        flat::<f32>(&avg.to_dtype(DType::F32).ctx("EMA")?)?,
        flat::<f32>(&cur.to_dtype(DType::F32).ctx("EMA")?)?,
    );
    let (d, w) = (decay as f32, w as f32);
    let mixed: Vec<f32> = a
        .iter()
        .zip(&c)
        .map(|(a, c)| (a * d + c * w).trunc())
        .collect();
    Tensor::from_vec(mixed, avg.shape(), &Device::Cpu)
        .and_then(|t| t.to_dtype(avg.dtype()))
        .and_then(|t| t.to_device(avg.device()))
        .ctx("EMA")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Linear;

    #[test]
    fn first_update_copies_then_lerps() {
        crate::rng::manual_seed(0);
        let m = Linear::new(2, 1, false).unwrap();
        let mut e = Ema::new(EmaConfig {
            decay: 0.5,
            warmup: false,
        });
        e.update(&m).unwrap();
        let w0 = m
            .state_dict()
            .get("weight")
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(
            e.state_dict()
                .get("weight")
                .unwrap()
                .to_vec2::<f32>()
                .unwrap(),
            w0
        );
        let zeros: StateDict = [(
            "weight".to_string(),
            Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap(),
        )]
        .into_iter()
        .collect();
        m.load_state_dict(&zeros, true).unwrap();
        e.update(&m).unwrap();
        let w1 = e
            .state_dict()
            .get("weight")
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(w1[0][0], w0[0][0] * 0.5);
        assert_eq!(e.updates(), 2);
        // The swap restores the model's own weights.
        let seen = e
            .with_weights(&m, || {
                Ok(m.state_dict().get("weight").unwrap().to_vec2::<f32>()?)
            })
            .unwrap();
        assert_eq!(seen, w1);
        assert_eq!(
            m.state_dict()
                .get("weight")
                .unwrap()
                .to_vec2::<f32>()
                .unwrap(),
            vec![vec![0f32, 0.0]]
        );
    }

    #[test]
    fn warmup_follows_timm() {
        let e = Ema::new(EmaConfig {
            decay: 0.9,
            warmup: true,
        });
        assert_eq!(e.decay_at(1), 0.0);
        assert!((e.decay_at(2) - (1.0 - 2f64.powf(-2.0 / 3.0))).abs() < 1e-15);
        assert_eq!(e.decay_at(10_000), 0.9);
        assert!(
            EmaConfig {
                decay: 1.5,
                warmup: false
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn integer_buffers_truncate() {
        let a = Tensor::new(&[5i64], &Device::Cpu).unwrap();
        let c = Tensor::new(&[9i64], &Device::Cpu).unwrap();
        // 5·0.9 + 9·0.1 = 5.4 → 5
        assert_eq!(
            step(&a, &c, 0.9, true).unwrap().to_vec1::<i64>().unwrap(),
            vec![9]
        );
        assert_eq!(
            step(&a, &c, 0.9, false).unwrap().to_vec1::<i64>().unwrap(),
            vec![5]
        );
    }
}
