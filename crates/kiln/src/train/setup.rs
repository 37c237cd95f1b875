//! `RunSetup`: what a run was really built from — the model's architecture, the optimizer
//! and its groups, the scheduler, the data order. A checkpoint stores it; a resume compares
//! the setup it built with the stored one and refuses (`K0702`) naming the first difference,
//! in the words of whoever built the run (no CLI flags involved).

use crate::data::DataLoader;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::optim::scheduler::LrScheduler;
use serde::{Deserialize, Serialize};

/// The extra key of a checkpoint that holds the setup (as JSON text).
pub const SETUP_KEY: &str = "setup";

/// One optimizer parameter group as built.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupSetup {
    /// Parameter names, in order.
    pub params: Vec<String>,
    /// The learning rate it was built with.
    pub lr: f64,
}

/// What a run was built from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSetup {
    /// The model's architecture (its [`crate::nn::ModuleSpec`] as JSON).
    pub model: serde_json::Value,
    /// The optimizer's class name (`SGD`, `Adam`, `AdamW`).
    pub optimizer: String,
    /// Its parameter groups as built.
    pub groups: Vec<GroupSetup>,
    /// The scheduler's class name, if any.
    pub scheduler: Option<String>,
    /// Training batch size.
    pub batch_size: usize,
    /// The shuffling seed.
    pub seed: u64,
    /// Whether training batches are shuffled.
    pub shuffle: bool,
    /// Whether the last incomplete batch is dropped.
    pub drop_last: bool,
    /// Number of training samples.
    pub train_samples: usize,
    /// Gradient accumulation and clipping.
    #[serde(default)]
    pub step: super::step::StepOptions,
    /// The weight average's settings, if any.
    #[serde(default)]
    pub ema: Option<super::ema::EmaConfig>,
    /// Validation interval and early stopping.
    #[serde(default)]
    pub validation: super::validation::ValidationConfig,
    /// Mixed precision (absent from the JSON when `32`, so older checkpoints read as `32`).
    #[serde(default, skip_serializing_if = "crate::amp::Precision::is_default")]
    pub precision: crate::amp::Precision,
}

impl RunSetup {
    /// The setup of a freshly built run (before any step or resume).
    pub fn of(
        model: &dyn Module,
        optimizer: &dyn Optimizer,
        scheduler: Option<&dyn LrScheduler>,
        train: &DataLoader,
    ) -> Self {
        RunSetup {
            model: serde_json::to_value(model.spec()).unwrap_or(serde_json::Value::Null),
            optimizer: optimizer.name().to_string(),
            groups: optimizer
                .param_groups()
                .iter()
                .map(|g| GroupSetup {
                    params: g.names.clone(),
                    lr: g.initial_lr.unwrap_or(g.lr),
                })
                .collect(),
            scheduler: scheduler.map(|s| s.name().to_string()),
            batch_size: train.batch_size(),
            seed: train.seed_value(),
            shuffle: train.is_shuffled(),
            drop_last: train.drops_last(),
            train_samples: train.dataset().len(),
            step: Default::default(),
            ema: None,
            validation: Default::default(),
            precision: Default::default(),
        }
    }

    /// Refuses a resume whose setup differs from the checkpoint's (`saved`).
    ///
    /// # Errors
    /// `K0702` naming the first difference and both values.
    pub fn check_resume(&self, saved: &RunSetup) -> Result<()> {
        let differs = |field: &str, checkpoint: String, current: String| {
            Err(Error::ResumeMismatch {
                field: field.to_string(),
                checkpoint,
                current,
            })
        };
        if saved.model != self.model {
            return differs(
                "model architecture",
                short(&saved.model),
                short(&self.model),
            );
        }
        if saved.optimizer != self.optimizer {
            return differs("optimizer", saved.optimizer.clone(), self.optimizer.clone());
        }
        if saved.groups.len() != self.groups.len() {
            return differs(
                "optimizer parameter groups",
                format!("{} groups", saved.groups.len()),
                format!("{} groups", self.groups.len()),
            );
        }
        for (i, (a, b)) in saved.groups.iter().zip(&self.groups).enumerate() {
            if a.params != b.params {
                return differs(
                    &format!("parameters of optimizer group {i}"),
                    format!("{} tensors ({})", a.params.len(), first_names(&a.params)),
                    format!("{} tensors ({})", b.params.len(), first_names(&b.params)),
                );
            }
            if a.lr.to_bits() != b.lr.to_bits() {
                return differs(
                    &format!("learning rate of optimizer group {i}"),
                    a.lr.to_string(),
                    b.lr.to_string(),
                );
            }
        }
        if saved.scheduler != self.scheduler {
            let name = |s: &Option<String>| s.clone().unwrap_or_else(|| "none".into());
            return differs("scheduler", name(&saved.scheduler), name(&self.scheduler));
        }
        let pairs = [
            (
                "batch size",
                saved.batch_size as u64,
                self.batch_size as u64,
            ),
            ("seed", saved.seed, self.seed),
            (
                "training samples",
                saved.train_samples as u64,
                self.train_samples as u64,
            ),
            ("shuffle", saved.shuffle as u64, self.shuffle as u64),
            ("drop_last", saved.drop_last as u64, self.drop_last as u64),
        ];
        for (field, a, b) in pairs {
            if a != b {
                return differs(field, a.to_string(), b.to_string());
            }
        }
        if saved.step != self.step {
            let text = |s: &super::step::StepOptions| {
                serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
            };
            return differs(
                "gradient accumulation / clipping",
                text(&saved.step),
                text(&self.step),
            );
        }
        if saved.ema != self.ema {
            let text = |e: &Option<super::ema::EmaConfig>| match e {
                Some(e) => format!("decay {}, warm-up {}", e.decay, e.warmup),
                None => "none".into(),
            };
            return differs("EMA of the weights", text(&saved.ema), text(&self.ema));
        }
        if saved.precision != self.precision {
            return differs(
                "precision",
                saved.precision.to_string(),
                self.precision.to_string(),
            );
        }
        if saved.validation != self.validation {
            let text = |v: &super::validation::ValidationConfig| {
                serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"))
            };
            return differs(
                "validation / early stopping",
                text(&saved.validation),
                text(&self.validation),
            );
        }
        Ok(())
    }
}

fn first_names(names: &[String]) -> String {
    let mut s = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        s.push_str(", …");
    }
    s
}

fn short(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    } else {
        s
    }
}
