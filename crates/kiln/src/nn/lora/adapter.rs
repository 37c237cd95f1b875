//! Adapters on disk in PEFT's layout: a directory with `adapter_config.json` and
//! `adapter_model.safetensors` (what `PeftModel.save_pretrained` writes and
//! `PeftModel.from_pretrained` reads).
//!
//! `adapter_config.json` holds PEFT's `LoraConfig` fields, sorted and indented as PEFT
//! writes them (`peft_type: "LORA"`, `r`, `lora_alpha`, `lora_dropout`, `target_modules` — the
//! full paths of the adapted layers —, `modules_to_save`, `bias: "none"`, …);
//! `adapter_model.safetensors` holds `base_model.model.<path>.lora_A.weight` `[r, in(, kh,
//! kw)]`, `….lora_B.weight` `[out, r(, 1, 1)]` and the `modules_to_save` tensors, with
//! safetensors metadata `{"format": "pt"}`.

use super::{
    LoraConfig, PEFT_PREFIX, adapter_state_dict, apply_lora, apply_lora_to, is_adapter_param,
    lora_candidates, lora_layers,
};
use crate::error::{Error, Result, shape_str};
use crate::io::{
    LoadOptions, TensorValue, atomic_write_bytes, load_state_dict_file, save_safetensors,
};
use crate::nn::{Module, StateDict};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The adapter's configuration file name.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// The adapter's weights file name.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// Largest `adapter_config.json` kiln reads.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A saved adapter's configuration: the LoRA settings (with `target_modules` as saved) and
/// the base model it was trained from.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterConfig {
    /// The LoRA settings.
    pub lora: LoraConfig,
    /// `base_model_name_or_path`, if recorded.
    pub base_model_name_or_path: Option<String>,
}

fn adapter_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::LoraAdapter {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// PEFT's `adapter_config.json` text for `cfg` whose adapted layers are `targets`.
pub fn adapter_config_json(cfg: &LoraConfig, targets: &[String], base: Option<&str>) -> String {
    let alpha = if cfg.alpha.fract() == 0.0 && cfg.alpha.abs() < 1e15 {
        json!(cfg.alpha as i64)
    } else {
        json!(cfg.alpha)
    };
    let mut m: BTreeMap<&str, Json> = BTreeMap::new();
    m.insert("alpha_pattern", json!({}));
    m.insert("auto_mapping", Json::Null);
    m.insert("base_model_name_or_path", json!(base));
    m.insert("bias", json!("none"));
    m.insert("fan_in_fan_out", json!(false));
    m.insert("inference_mode", json!(true));
    m.insert("init_lora_weights", json!(true));
    m.insert("layer_replication", Json::Null);
    m.insert("layers_pattern", Json::Null);
    m.insert("layers_to_transform", Json::Null);
    m.insert("lora_alpha", alpha);
    m.insert("loftq_config", json!({}));
    m.insert("lora_dropout", json!(cfg.dropout));
    m.insert("megatron_config", Json::Null);
    m.insert("megatron_core", json!("megatron.core"));
    m.insert(
        "modules_to_save",
        if cfg.modules_to_save.is_empty() {
            Json::Null
        } else {
            json!(cfg.modules_to_save)
        },
    );
    m.insert("peft_type", json!("LORA"));
    m.insert("r", json!(cfg.r));
    m.insert("rank_pattern", json!({}));
    m.insert("revision", Json::Null);
    m.insert("target_modules", json!(targets));
    m.insert("task_type", Json::Null);
    m.insert("use_dora", json!(false));
    m.insert("use_rslora", json!(false));
    // `json!` of a BTreeMap keeps the sorted order (PEFT: json.dumps(..., sort_keys=True)).
    serde_json::to_string_pretty(&m).unwrap_or_default()
}

/// Saves `model`'s adapters into `dir` in PEFT's layout (creating `dir`), with the
/// `modules_to_save` of `cfg`; `base` is recorded as `base_model_name_or_path`. Returns the
/// path of `adapter_model.safetensors`.
///
/// # Errors
/// `K0742` when the model has no adapter; `K0404` for a `modules_to_save` entry that is not
/// a submodule; `K0002` on I/O failure.
pub fn save_adapter(
    model: &dyn Module,
    cfg: &LoraConfig,
    dir: &Path,
    base: Option<&str>,
) -> Result<PathBuf> {
    let targets: Vec<String> = lora_layers(model).into_iter().map(|(n, _)| n).collect();
    if targets.is_empty() {
        return Err(Error::LoraConfig {
            what: "model".into(),
            got: "without adapters".into(),
            expected: "a model with LoRA layers (call apply_lora first)".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let sd = adapter_state_dict(model, &cfg.modules_to_save)?;
    let values: Vec<(String, TensorValue)> = sd
        .iter()
        .map(|(k, t)| Ok((k.to_string(), TensorValue::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let refs: Vec<(String, &TensorValue)> = values.iter().map(|(k, v)| (k.clone(), v)).collect();
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let weights = dir.join(ADAPTER_WEIGHTS);
    save_safetensors(&refs, &meta, &weights)?;
    let text = adapter_config_json(cfg, &targets, base);
    atomic_write_bytes(&dir.join(ADAPTER_CONFIG), text.as_bytes())?;
    Ok(weights)
}

/// Reads `dir/adapter_config.json` (or the file itself when `dir` is a file).
///
/// # Errors
/// `K0002` when it cannot be read; `K0743` when it is not a LoRA config kiln can apply
/// (another `peft_type`, `bias` other than `"none"`, DoRA, rsLoRA, `fan_in_fan_out`,
/// per-layer rank or alpha patterns) or a field is missing or mistyped.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig> {
    let path = if dir.is_dir() {
        dir.join(ADAPTER_CONFIG)
    } else {
        dir.to_path_buf()
    };
    let len = std::fs::metadata(&path)
        .map_err(|e| Error::io("reading", &path, e))?
        .len();
    if len > MAX_CONFIG_BYTES {
        return Err(adapter_err(
            &path,
            format!("{len} bytes is larger than the {MAX_CONFIG_BYTES} a config may have"),
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
    let v: Json = serde_json::from_str(&text)
        .map_err(|e| adapter_err(&path, format!("is not valid JSON: {e}")))?;
    let field = |k: &str| v.get(k).filter(|x| !x.is_null());
    let peft_type = field("peft_type").and_then(Json::as_str).unwrap_or("");
    if peft_type != "LORA" {
        return Err(adapter_err(
            &path,
            format!("peft_type is '{peft_type}', kiln reads LORA adapters"),
        ));
    }
    let r = field("r")
        .and_then(Json::as_u64)
        .ok_or_else(|| adapter_err(&path, "r is missing or not a non-negative integer"))?;
    let alpha = field("lora_alpha")
        .and_then(Json::as_f64)
        .ok_or_else(|| adapter_err(&path, "lora_alpha is missing or not a number"))?;
    let dropout = match field("lora_dropout") {
        None => 0.0,
        Some(d) => d
            .as_f64()
            .ok_or_else(|| adapter_err(&path, "lora_dropout is not a number"))?,
    };
    let targets = match field("target_modules") {
        Some(Json::String(s)) => vec![format!("re:{s}")],
        Some(Json::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| adapter_err(&path, "target_modules holds a non-string"))
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(adapter_err(
                &path,
                "target_modules is missing (a list of module names)",
            ));
        }
    };
    let modules_to_save = match field("modules_to_save") {
        None => Vec::new(),
        Some(Json::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| adapter_err(&path, "modules_to_save holds a non-string"))
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(adapter_err(&path, "modules_to_save is not a list")),
    };
    let bias = field("bias").and_then(Json::as_str).unwrap_or("none");
    if bias != "none" {
        return Err(adapter_err(
            &path,
            format!("bias is '{bias}'; kiln applies bias='none' adapters only"),
        ));
    }
    for flag in ["use_dora", "use_rslora", "fan_in_fan_out"] {
        if field(flag).and_then(Json::as_bool) == Some(true) {
            return Err(adapter_err(
                &path,
                format!("{flag} is true; kiln applies plain LoRA only"),
            ));
        }
    }
    for pat in ["rank_pattern", "alpha_pattern"] {
        if field(pat)
            .and_then(Json::as_object)
            .is_some_and(|o| !o.is_empty())
        {
            return Err(adapter_err(
                &path,
                format!("{pat} sets per-layer values; kiln applies one r and alpha to all"),
            ));
        }
    }
    let lora = LoraConfig {
        r: usize::try_from(r).unwrap_or(usize::MAX),
        alpha,
        dropout,
        target_modules: targets,
        modules_to_save,
    };
    lora.validate()?;
    Ok(AdapterConfig {
        lora,
        base_model_name_or_path: field("base_model_name_or_path")
            .and_then(Json::as_str)
            .map(str::to_string),
    })
}

/// Reads `dir/adapter_model.safetensors` with the `base_model.model.` prefix removed: keys
/// `<path>.lora_A.weight`, `<path>.lora_B.weight` and the `modules_to_save` tensors.
///
/// # Errors
/// Loading errors; `K0743` for a key without PEFT's prefix.
pub fn read_adapter_weights(dir: &Path) -> Result<StateDict> {
    let path = dir.join(ADAPTER_WEIGHTS);
    let sd = load_state_dict_file(&path, &LoadOptions::new().map_location("cpu"))?;
    let mut out = StateDict::new();
    for (k, t) in sd.iter() {
        let bare = k.strip_prefix(PEFT_PREFIX).ok_or_else(|| {
            adapter_err(
                &path,
                format!("key '{k}' does not start with PEFT's '{PEFT_PREFIX}'"),
            )
        })?;
        // PEFT < 0.7 and some tools keep the adapter name: `lora_A.default.weight`.
        let bare = bare
            .replace(".lora_A.default.", ".lora_A.")
            .replace(".lora_B.default.", ".lora_B.");
        out.insert(bare, t.clone());
    }
    Ok(out)
}

/// Loads a saved adapter into `model`: adds the adapters first when the model has none
/// (same layers, rank, alpha and dropout as saved), then copies `lora_A`, `lora_B` and the
/// `modules_to_save` tensors in place. Every key is checked before anything is copied.
/// Trainability is left as the wrapping made it (call [`super::mark_only_lora_trainable`]
/// to train on).
///
/// # Errors
/// As [`read_adapter_config`] and [`read_adapter_weights`]; `K0743` listing missing,
/// unexpected and mismatched keys, or adapters of another rank than the saved ones;
/// `K0741`/`K0742` when the saved targets do not fit the model.
pub fn load_adapter(model: &mut dyn Module, dir: &Path) -> Result<AdapterConfig> {
    let cfg = read_adapter_config(dir)?;
    let sd = read_adapter_weights(dir)?;
    let weights = dir.join(ADAPTER_WEIGHTS);
    let existing = lora_layers(model);
    if existing.is_empty() {
        let candidates = lora_candidates(model, &cfg.lora.modules_to_save);
        let exact = cfg
            .lora
            .target_modules
            .iter()
            .all(|t| candidates.contains(t));
        if exact {
            apply_lora_to(model, &cfg.lora.target_modules, &cfg.lora)?;
        } else {
            apply_lora(model, &cfg.lora)?;
        }
    } else if let Some((n, l)) = existing.iter().find(|(_, l)| l.rank() != cfg.lora.r) {
        return Err(adapter_err(
            &weights,
            format!(
                "the model's adapter at {n} has rank {}, the saved one rank {}",
                l.rank(),
                cfg.lora.r
            ),
        ));
    }
    let own = model.state_dict();
    let mut problems = Vec::new();
    for (k, t) in sd.iter() {
        match own.get(k) {
            None => problems.push(format!("unexpected key {k}")),
            Some(m) if m.dims() != t.dims() => problems.push(format!(
                "{k}: {} in the file, {} in the model",
                shape_str(t.dims()),
                shape_str(m.dims())
            )),
            Some(_) => {}
        }
    }
    for k in own.keys() {
        if is_adapter_param(k) && !sd.contains_key(k) {
            problems.push(format!("missing key {k}"));
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(8);
        return Err(adapter_err(
            &weights,
            format!(
                "{n} problem(s) fitting it to the model: {}",
                problems.join("; ")
            ),
        ));
    }
    model.load_state_dict(&sd, false)?;
    Ok(cfg)
}
