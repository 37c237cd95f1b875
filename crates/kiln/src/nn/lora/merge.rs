//! Merging a saved adapter into a base model's state dict (`kiln convert --merge-lora`):
//! the result is a plain model, keys as the base model's.

use super::{merge_weight, read_adapter_config, read_adapter_weights};
use crate::error::{Error, Result, shape_str};
use crate::nn::StateDict;
use std::path::Path;

/// What [`merge_adapter`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MergeReport {
    /// Layers whose weight got `B·A · alpha/r` added.
    pub merged: Vec<String>,
    /// Keys taken from the adapter's `modules_to_save` tensors (replacing or adding to the
    /// base's).
    pub replaced: Vec<String>,
}

/// Merges the adapter in `dir` into `base` (a base model's state dict): every adapted
/// layer's `weight` becomes `W + B·A · alpha/r` (computed in f64, stored in `W`'s dtype),
/// and the `modules_to_save` tensors replace the base's (a new head may have another shape).
/// Base keys keep their order; keys only the adapter has are appended.
///
/// # Errors
/// As [`read_adapter_config`]/[`read_adapter_weights`]; `K0743` for an adapter layer without
/// its base weight, a `lora_A` without its `lora_B`, ranks other than `r`, or shapes that
/// do not fit the base weight.
pub fn merge_adapter(base: &StateDict, dir: &Path) -> Result<(StateDict, MergeReport)> {
    let cfg = read_adapter_config(dir)?.lora;
    let sd = read_adapter_weights(dir)?;
    let path = dir.join(super::ADAPTER_WEIGHTS);
    let err = |detail: String| Error::LoraAdapter {
        path: path.display().to_string(),
        detail,
    };
    let scaling = cfg.scaling();
    let mut out = base.clone();
    let mut report = MergeReport::default();
    for (k, a) in sd.iter() {
        if let Some(layer) = k.strip_suffix(".lora_A.weight") {
            let bk = format!("{layer}.lora_B.weight");
            let b = sd.get(&bk).ok_or_else(|| err(format!("{k} has no {bk}")))?;
            let wk = format!("{layer}.weight");
            let w = base.get(&wk).ok_or_else(|| {
                err(format!(
                    "the base model has no {wk} for the adapter's {k}; is it the model the adapter was trained on?"
                ))
            })?;
            if a.dims().first() != Some(&cfg.r) {
                return Err(err(format!(
                    "{k} is {}, not rank r={} as adapter_config.json says",
                    shape_str(a.dims()),
                    cfg.r
                )));
            }
            let merged = merge_weight(w, a, b, scaling).map_err(|e| match e {
                Error::LoraAdapter { detail, .. } => err(format!("{layer}: {detail}")),
                other => other,
            })?;
            out.insert(wk, merged);
            report.merged.push(layer.to_string());
        } else if let Some(layer) = k.strip_suffix(".lora_B.weight") {
            let ak = format!("{layer}.lora_A.weight");
            if !sd.contains_key(&ak) {
                return Err(err(format!("{k} has no {ak}")));
            }
        } else {
            out.insert(k.to_string(), a.clone());
            report.replaced.push(k.to_string());
        }
    }
    if report.merged.is_empty() {
        return Err(err("holds no lora_A/lora_B weights".into()));
    }
    Ok((out, report))
}
