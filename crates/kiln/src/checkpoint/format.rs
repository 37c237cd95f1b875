//! What a checkpoint holds and how it is laid out: a plain dict in the shape of PyTorch's
//! own checkpoint recipe (`model_state_dict`, `optimizer_state_dict`, `epoch`, `loss`) plus
//! kiln's keys for an exact resume, so `torch.load(path)` reads it and a PyTorch model and
//! optimizer can `load_state_dict` its parts.

use crate::error::{Error, Result};
use crate::io::value::{Dict, state_dict_to_value, value_to_state_dict};
use crate::io::{LoadOptions, Value};
use crate::nn::StateDict;
use crate::rng::GeneratorState;
use candle_core::Device;

/// Version of kiln's checkpoint layout (bumped on incompatible changes).
pub const FORMAT_VERSION: i64 = 1;

/// Where a run stands: enough to continue the data order exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The epoch being trained (0-based) when the checkpoint was taken.
    pub epoch: usize,
    /// Batches of `epoch` already done (0 at an epoch boundary).
    pub step_in_epoch: usize,
    /// Optimizer steps done since the start of the run.
    pub global_step: usize,
}

/// Running sums of the epoch in progress, so its metrics come out the same after a resume.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochAccum {
    /// Sum of per-batch mean losses times batch sizes.
    pub loss_sum: f64,
    /// Correct predictions so far.
    pub correct: usize,
    /// Samples seen so far.
    pub seen: usize,
}

/// Everything needed to continue a run exactly.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The model's state dict.
    pub model: StateDict,
    /// The optimizer's state dict (PyTorch layout).
    pub optimizer: Value,
    /// The LR scheduler's state dict, if any.
    pub scheduler: Option<Value>,
    /// Position in the run.
    pub progress: Progress,
    /// Completed epochs (PyTorch recipe's `epoch`: the last finished epoch, or -1 if none).
    pub epoch: i64,
    /// The last loss (PyTorch recipe's `loss`).
    pub loss: f64,
    /// kiln's RNG state.
    pub rng: Option<GeneratorState>,
    /// Seeds set on CUDA devices, if any.
    pub cuda_seed: Option<u64>,
    /// Best monitored metric so far.
    pub best_metric: Option<f64>,
    /// Sums of the epoch in progress.
    pub accum: EpochAccum,
    /// The run's configuration as JSON (hyper-parameters), to refuse incompatible resumes.
    pub config: Option<serde_json::Value>,
    /// Other state (e.g. a fine-tuning unfreeze schedule), as a value.
    pub extra: Option<Value>,
}

fn f(v: f64) -> Value {
    Value::Float(v)
}

fn i(v: usize) -> Value {
    Value::Int(v as i64)
}

impl Checkpoint {
    /// A checkpoint of a model and optimizer with everything else at its default.
    pub fn new(model: StateDict, optimizer: Value) -> Self {
        Checkpoint {
            model,
            optimizer,
            scheduler: None,
            progress: Progress::default(),
            epoch: -1,
            loss: f64::NAN,
            rng: None,
            cuda_seed: None,
            best_metric: None,
            accum: EpochAccum::default(),
            config: None,
            extra: None,
        }
    }

    /// The dict `torch.save` would write for this checkpoint.
    ///
    /// # Errors
    /// `K0005` for a tensor dtype kiln cannot save.
    pub fn to_value(&self) -> Result<Value> {
        let mut d = Dict::default();
        d.insert("epoch", Value::Int(self.epoch));
        d.insert("model_state_dict", state_dict_to_value(&self.model)?);
        d.insert("optimizer_state_dict", self.optimizer.clone());
        d.insert("loss", f(self.loss));
        d.insert(
            "scheduler_state_dict",
            self.scheduler.clone().unwrap_or(Value::None),
        );
        let rng = match &self.rng {
            Some(r) => Value::dict([
                ("seed_hex", Value::Str(r.seed_hex.clone())),
                ("stream", Value::Int(r.stream as i64)),
                ("word_pos", Value::Str(r.word_pos.to_string())),
            ]),
            None => Value::None,
        };
        let kiln = Value::dict([
            ("format_version", Value::Int(FORMAT_VERSION)),
            ("kiln_version", Value::Str(env!("CARGO_PKG_VERSION").into())),
            ("epoch", i(self.progress.epoch)),
            ("step_in_epoch", i(self.progress.step_in_epoch)),
            ("global_step", i(self.progress.global_step)),
            ("rng_state", rng),
            (
                "cuda_seed",
                self.cuda_seed
                    .map(|s| Value::Str(s.to_string()))
                    .unwrap_or(Value::None),
            ),
            (
                "best_metric",
                self.best_metric.map(f).unwrap_or(Value::None),
            ),
            (
                "epoch_accum",
                Value::dict([
                    ("loss_sum", f(self.accum.loss_sum)),
                    ("correct", i(self.accum.correct)),
                    ("seen", i(self.accum.seen)),
                ]),
            ),
            (
                "config",
                self.config
                    .as_ref()
                    .map(|c| Value::Str(c.to_string()))
                    .unwrap_or(Value::None),
            ),
            ("extra", self.extra.clone().unwrap_or(Value::None)),
        ]);
        d.insert("kiln", kiln);
        Ok(Value::Dict(d))
    }

    /// Reads a checkpoint dict, kiln's or one written by PyTorch's recipe (then the kiln
    /// fields take their defaults and the run continues after `epoch`). Tensors are created
    /// on `device`.
    ///
    /// # Errors
    /// `K0507` naming the missing or malformed key; `K0702` for a newer format version.
    pub fn from_value(v: &Value, device: &Device, path: &str) -> Result<Self> {
        let schema = |detail: String| Error::Schema {
            path: path.to_string(),
            detail,
        };
        let d = v.as_dict().ok_or_else(|| {
            schema(format!(
                "a checkpoint is a dict with model_state_dict and optimizer_state_dict; found a {}",
                v.type_name()
            ))
        })?;
        let model_v = d
            .get("model_state_dict")
            .or_else(|| d.get("state_dict"))
            .ok_or_else(|| {
                schema(format!(
                    "no 'model_state_dict' key (keys: {})",
                    keys_of(d).join(", ")
                ))
            })?;
        let model = value_to_state_dict(model_v, device).map_err(|e| match e {
            Error::Schema { detail, .. } => schema(format!("model_state_dict: {detail}")),
            other => other,
        })?;
        let optimizer = d
            .get("optimizer_state_dict")
            .or_else(|| d.get("optimizer"))
            .cloned()
            .ok_or_else(|| {
                schema(format!(
                    "no 'optimizer_state_dict' key (keys: {})",
                    keys_of(d).join(", ")
                ))
            })?;
        let epoch = d.get("epoch").and_then(Value::as_i64).unwrap_or(-1);
        let loss = d.get("loss").and_then(loss_of).unwrap_or(f64::NAN);
        let scheduler = match d
            .get("scheduler_state_dict")
            .or_else(|| d.get("lr_scheduler"))
        {
            None | Some(Value::None) => None,
            Some(s) => Some(s.clone()),
        };
        let mut ck = Checkpoint {
            model,
            optimizer,
            scheduler,
            progress: Progress {
                epoch: (epoch + 1).max(0) as usize,
                step_in_epoch: 0,
                global_step: 0,
            },
            epoch,
            loss,
            rng: None,
            cuda_seed: None,
            best_metric: None,
            accum: EpochAccum::default(),
            config: None,
            extra: None,
        };
        let Some(k) = d.get("kiln").and_then(Value::as_dict) else {
            return Ok(ck);
        };
        let int = |key: &str| k.get(key).and_then(Value::as_i64);
        let version = int("format_version").unwrap_or(0);
        if version > FORMAT_VERSION {
            return Err(Error::ResumeMismatch {
                field: "checkpoint format version".into(),
                checkpoint: version.to_string(),
                current: format!("{FORMAT_VERSION} (kiln {})", env!("CARGO_PKG_VERSION")),
            });
        }
        let us = |key: &str| -> Result<usize> {
            int(key)
                .and_then(|x| usize::try_from(x).ok())
                .ok_or_else(|| schema(format!("kiln.{key} is missing or negative")))
        };
        ck.progress = Progress {
            epoch: us("epoch")?,
            step_in_epoch: us("step_in_epoch")?,
            global_step: us("global_step")?,
        };
        if let Some(r) = k.get("rng_state").and_then(Value::as_dict) {
            let seed_hex = r
                .get("seed_hex")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let stream = r.get("stream").and_then(Value::as_i64).unwrap_or(0) as u64;
            let word_pos = r
                .get("word_pos")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<u128>().ok())
                .ok_or_else(|| schema("kiln.rng_state.word_pos is malformed".into()))?;
            ck.rng = Some(GeneratorState {
                seed_hex: seed_hex.to_string(),
                stream,
                word_pos,
            });
        }
        ck.cuda_seed = k
            .get("cuda_seed")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        ck.best_metric = k.get("best_metric").and_then(Value::as_f64);
        if let Some(a) = k.get("epoch_accum").and_then(Value::as_dict) {
            ck.accum = EpochAccum {
                loss_sum: a.get("loss_sum").and_then(Value::as_f64).unwrap_or(0.0),
                correct: a.get("correct").and_then(Value::as_i64).unwrap_or(0).max(0) as usize,
                seen: a.get("seen").and_then(Value::as_i64).unwrap_or(0).max(0) as usize,
            };
        }
        if let Some(c) = k.get("config").and_then(Value::as_str) {
            ck.config = Some(
                serde_json::from_str(c)
                    .map_err(|e| schema(format!("kiln.config is not valid JSON: {e}")))?,
            );
        }
        ck.extra = match k.get("extra") {
            None | Some(Value::None) => None,
            Some(x) => Some(x.clone()),
        };
        Ok(ck)
    }

    /// Loads a checkpoint file (`.pt`) or directory (safetensors + JSON).
    ///
    /// # Errors
    /// As [`crate::io::load`] and [`Checkpoint::from_value`].
    pub fn load(path: &std::path::Path, opts: &LoadOptions, device: &Device) -> Result<Self> {
        let value = if path.is_dir() {
            super::dir_format::load_dir(path, opts)?
        } else {
            crate::io::load(path, opts)?
        };
        Checkpoint::from_value(&value, device, &path.display().to_string())
    }
}

fn loss_of(v: &Value) -> Option<f64> {
    match v {
        Value::Tensor(t) => t
            .to_tensor(&Device::Cpu)
            .ok()
            .and_then(|t| t.to_dtype(candle_core::DType::F64).ok())
            .and_then(|t| t.flatten_all().ok())
            .and_then(|t| t.to_vec1::<f64>().ok())
            .and_then(|v| v.first().copied()),
        other => other.as_f64(),
    }
}

fn keys_of(d: &Dict) -> Vec<String> {
    d.entries
        .iter()
        .map(|(k, _)| crate::io::value::key_string(k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    #[test]
    fn round_trip_through_value() {
        let mut sd = StateDict::new();
        sd.insert("w", Tensor::new(&[1f32, 2.], &Device::Cpu).unwrap());
        let mut ck = Checkpoint::new(sd, Value::dict([("state", Value::dict::<&str>([]))]));
        ck.progress = Progress {
            epoch: 2,
            step_in_epoch: 5,
            global_step: 77,
        };
        ck.epoch = 1;
        ck.loss = 0.5;
        ck.rng = Some(crate::rng::Generator::new(3).state());
        ck.best_metric = Some(0.9);
        ck.accum = EpochAccum {
            loss_sum: 1.5,
            correct: 3,
            seen: 10,
        };
        ck.config = Some(serde_json::json!({"model": "lenet", "lr": 0.1}));
        let v = ck.to_value().unwrap();
        let back = Checkpoint::from_value(&v, &Device::Cpu, "x").unwrap();
        assert_eq!(back.progress, ck.progress);
        assert_eq!(back.rng, ck.rng);
        assert_eq!(back.accum, ck.accum);
        assert_eq!(back.config, ck.config);
        assert_eq!(back.best_metric, Some(0.9));
        assert_eq!(back.epoch, 1);
    }

    #[test]
    fn pytorch_recipe_without_kiln_keys_resumes_after_epoch() {
        let mut sd = StateDict::new();
        sd.insert("w", Tensor::new(&[1f32], &Device::Cpu).unwrap());
        let v = Value::dict([
            ("epoch", Value::Int(1)),
            ("model_state_dict", state_dict_to_value(&sd).unwrap()),
            ("optimizer_state_dict", Value::dict::<&str>([])),
            ("loss", Value::Float(0.3)),
        ]);
        let ck = Checkpoint::from_value(&v, &Device::Cpu, "x").unwrap();
        assert_eq!(ck.progress.epoch, 2);
        assert_eq!(ck.progress.step_in_epoch, 0);
        assert!(ck.rng.is_none());
    }

    #[test]
    fn missing_keys_are_named() {
        let e = Checkpoint::from_value(
            &Value::dict([("epoch", Value::Int(1))]),
            &Device::Cpu,
            "c.pt",
        )
        .unwrap_err();
        assert_eq!(e.code(), "K0507");
        assert!(e.to_string().contains("model_state_dict") && e.to_string().contains("c.pt"));
    }
}
