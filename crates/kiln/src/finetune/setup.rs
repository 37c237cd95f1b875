//! `FinetuneConfig`: what turns a freshly built model into a fine-tuning run — pretrained
//! weights around a new head, frozen parameters, per-pattern parameter groups, an unfreezing
//! schedule — and [`prepare`], which applies it. `kiln finetune` stores it in the run's
//! [`crate::train::TrainConfig`], so `kiln train`'s loop, checkpoints and resume serve both.

use super::{
    GroupRule, PretrainedReport, Selector, UnfreezeRule, UnfreezeSchedule, freeze, load_pretrained,
    param_groups,
};
use crate::error::Result;
use crate::io::{LoadOptions, load_state_dict_file};
use crate::nn::Module;
use crate::optim::GroupSpec;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The fine-tuning part of a run's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    /// Pretrained weights: a state dict or checkpoint (`.pt`, `.pth`, `.safetensors`) or a
    /// whole-model file. None: start from the model's initialisation.
    #[serde(default)]
    pub from: Option<PathBuf>,
    /// The head (a submodule path, `fc` for kiln's models): built with the run's number of
    /// classes and left at its new initialisation.
    pub head: String,
    /// Load the pretrained head too when its shapes fit (same number of classes).
    #[serde(default)]
    pub keep_head: bool,
    /// Patterns of parameters to freeze.
    #[serde(default)]
    pub freeze: Vec<String>,
    /// `PATTERN=LR` parameter groups.
    #[serde(default)]
    pub groups: Vec<GroupRule>,
    /// Gradual unfreezing.
    #[serde(default)]
    pub unfreeze: Vec<UnfreezeRule>,
    /// Keep BatchNorm layers whose parameters are all frozen in eval mode (running
    /// statistics untouched).
    #[serde(default)]
    pub bn_eval: bool,
    /// Allow freezing parameters the pretrained file did not provide (they stay at their
    /// random initialisation); without it that is `K0408`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_frozen_random: bool,
    /// LoRA fine-tuning: adapters on the targeted layers, everything else frozen except
    /// `modules_to_save` (the new head). The model must already carry the adapters when
    /// [`prepare`] runs ([`crate::nn::lora::apply_lora`]; [`crate::train::build_trainer`]
    /// adds them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<crate::nn::lora::LoraConfig>,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig {
            from: None,
            head: "fc".into(),
            keep_head: false,
            freeze: Vec::new(),
            groups: Vec::new(),
            unfreeze: Vec::new(),
            bn_eval: false,
            allow_frozen_random: false,
            lora: None,
        }
    }
}

/// What [`prepare`] did and what the optimizer needs.
#[derive(Debug)]
pub struct Prepared {
    /// The load report (None without `from`).
    pub report: Option<PretrainedReport>,
    /// Names of the frozen parameters.
    pub frozen: Vec<String>,
    /// The optimizer's parameter groups (see [`param_groups`]).
    pub groups: Vec<GroupSpec>,
    /// The planned unfreezing.
    pub schedule: UnfreezeSchedule,
}

/// Applies `cfg` to `model` (already built with the run's number of classes): loads the
/// pretrained weights non-strictly, skipping the head unless `keep_head`; with `lora`,
/// freezes everything but the adapters and `modules_to_save`; freezes; builds the
/// parameter groups and plans the unfreezing (`base_lr` sets its default rate).
///
/// # Errors
/// Loading errors; `K0401` when the file shares no key with the model; `K0408` when a frozen
/// parameter was not loaded from the file (unless `allow_frozen_random`); `K0402` for a pattern
/// that selects nothing; `K0404` when the model has no `head`; `K0601`/`K0602` for bad groups;
/// `K0742` when `lora` is set but the model carries no adapter.
pub fn prepare(model: &dyn Module, cfg: &FinetuneConfig, base_lr: f64) -> Result<Prepared> {
    model.get_submodule(&cfg.head)?;
    let report = match &cfg.from {
        None => None,
        Some(path) => {
            let sd = load_state_dict_file(path, &LoadOptions::new().map_location("cpu"))?;
            let head = Selector::new(&[cfg.head.as_str()])?;
            let skip = (!cfg.keep_head && sd.keys().any(|k| head.matches(k))).then_some(&head);
            let mut r = load_pretrained(model, &sd, skip)?;
            if r.report.loaded.is_empty() {
                return Err(r.report.to_error(model.type_name()));
            }
            if cfg.lora.is_some() {
                // Fresh adapters are not expected in a pretrained file.
                r.report
                    .missing_keys
                    .retain(|k| !crate::nn::lora::is_adapter_param(k));
            }
            Some(r)
        }
    };
    let mut frozen = match &cfg.lora {
        Some(l) => crate::nn::lora::mark_only_lora_trainable(model, &l.modules_to_save)?,
        None => Vec::new(),
    };
    if !cfg.freeze.is_empty() {
        for n in freeze(model, &Selector::new(&cfg.freeze)?)? {
            if !frozen.contains(&n) {
                frozen.push(n);
            }
        }
    }
    if let (Some(r), false) = (&report, cfg.allow_frozen_random) {
        let random: Vec<&String> = frozen
            .iter()
            .filter(|n| !r.report.loaded.contains(n))
            .collect();
        if !random.is_empty() {
            let names = random
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(crate::Error::FrozenNotLoaded {
                names,
                count: random.len(),
            });
        }
    }
    let groups = param_groups(model, &cfg.groups)?;
    let schedule = UnfreezeSchedule::plan(model, &cfg.unfreeze, base_lr)?;
    Ok(Prepared {
        report,
        frozen,
        groups,
        schedule,
    })
}
