//! Adding adapters to a model (PEFT's `get_peft_model`), freezing everything else, and
//! reading the adapters back out.

use super::{LoraConfig, LoraLayer, select_targets};
use crate::error::{Error, Result};
use crate::nn::{Conv2d, Identity, Linear, Module, StateDict};

/// The prefix PEFT puts before every module path in `adapter_model.safetensors`.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// What [`apply_lora`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoraReport {
    /// Paths of the layers that got an adapter, in model order.
    pub targets: Vec<String>,
    /// Number of adapter parameters (elements of every `lora_A` and `lora_B`).
    pub adapter_params: usize,
}

/// The paths of the layers LoRA can adapt: every Linear and Conv2d, outside existing
/// adapters and outside `exclude` (with their descendants), in model order.
pub fn lora_candidates(model: &dyn Module, exclude: &[String]) -> Vec<String> {
    let lora: Vec<String> = lora_layers(model).into_iter().map(|(n, _)| n).collect();
    let under = |n: &str, roots: &[String]| {
        roots
            .iter()
            .any(|r| n == r || (n.starts_with(r.as_str()) && n[r.len()..].starts_with('.')))
    };
    model
        .named_modules()
        .into_iter()
        .filter(|(n, m)| {
            (m.as_any().is::<Linear>() || m.as_any().is::<Conv2d>())
                && !under(n, &lora)
                && !under(n, exclude)
        })
        .map(|(n, _)| n)
        .collect()
}

/// The adapted layers with their paths, in model order.
pub fn lora_layers(model: &dyn Module) -> Vec<(String, &LoraLayer)> {
    model
        .named_modules()
        .into_iter()
        .filter_map(|(n, m)| m.as_any().downcast_ref::<LoraLayer>().map(|l| (n, l)))
        .collect()
}

/// Wraps every Linear/Conv2d layer `cfg.target_modules` selects in a [`LoraLayer`] with a
/// fresh adapter (`lora_A` Kaiming-uniform from kiln's generator, `lora_B` zeros), as
/// PEFT's `get_peft_model`. Parameters are not frozen here: see [`mark_only_lora_trainable`].
///
/// # Errors
/// `K0742` for invalid settings, a target that cannot be adapted or is also listed in
/// `modules_to_save`; `K0741` for patterns that select no layer; `K0402` for a pattern that
/// does not compile; `K0404` for a `modules_to_save` entry that is not a submodule.
pub fn apply_lora(model: &mut dyn Module, cfg: &LoraConfig) -> Result<LoraReport> {
    cfg.validate()?;
    for m in &cfg.modules_to_save {
        model.get_submodule(m)?;
    }
    let all = lora_candidates(model, &[]);
    let candidates = lora_candidates(model, &cfg.modules_to_save);
    let targets = match select_targets(&cfg.target_modules, &candidates) {
        Ok(t) => t,
        Err(e) => {
            // A pattern that only selects a module of `modules_to_save`: say so.
            if let Ok(t) = select_targets(&cfg.target_modules, &all)
                && let Some(m) = t.iter().find(|t| !candidates.contains(t))
            {
                return Err(Error::LoraConfig {
                    what: format!("target '{m}'"),
                    got: "also in modules_to_save (trained and saved in full)".into(),
                    expected: "a layer outside modules_to_save (CLI: pass --keep-head to adapt the head with LoRA)".into(),
                });
            }
            return Err(e);
        }
    };
    wrap_all(model, &targets, cfg)
}

/// Wraps exactly the layers at `paths` (used when loading a saved adapter, whose
/// `target_modules` are full paths).
///
/// # Errors
/// As [`apply_lora`]; `K0741` for a path that is not a Linear/Conv2d layer of the model.
pub fn apply_lora_to(
    model: &mut dyn Module,
    paths: &[String],
    cfg: &LoraConfig,
) -> Result<LoraReport> {
    cfg.validate()?;
    let candidates = lora_candidates(model, &cfg.modules_to_save);
    let missing: Vec<String> = paths
        .iter()
        .filter(|p| !candidates.contains(p))
        .map(|p| format!("'{p}'"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::LoraNoMatch {
            patterns: missing.join(", "),
            available: candidates.join(", "),
        });
    }
    wrap_all(model, paths, cfg)
}

fn wrap_all(model: &mut dyn Module, targets: &[String], cfg: &LoraConfig) -> Result<LoraReport> {
    // Check every target before changing anything.
    for t in targets {
        check_target(t, model.get_submodule(t)?)?;
    }
    let mut adapter_params = 0;
    for (i, t) in targets.iter().enumerate() {
        match wrap_one(model, t, cfg) {
            Ok(n) => adapter_params += n,
            Err(e) => {
                // Leave the model as it was: unwrap the layers wrapped so far.
                for done in &targets[..i] {
                    unwrap_one(model, done)?;
                }
                return Err(e);
            }
        }
    }
    Ok(LoraReport {
        targets: targets.to_vec(),
        adapter_params,
    })
}

/// Wraps one layer: the adapter is built first, so a failure leaves the layer in place.
fn wrap_one(model: &mut dyn Module, t: &str, cfg: &LoraConfig) -> Result<usize> {
    // Fails without changing anything when the parent's field cannot hold another type
    // (a `Conv2d`-typed field of a `#[derive(Module)]` struct: K0406).
    let adapter = super::layer::LoraAdapter::new(t, model.get_submodule(t)?, cfg)?;
    let old = model.replace_submodule(t, Box::new(Identity))?;
    let layer = LoraLayer::assemble(old, adapter);
    let n = layer.lora_a()?.elem_count() + layer.lora_b()?.elem_count();
    model.replace_submodule(t, Box::new(layer))?;
    Ok(n)
}

fn unwrap_one(model: &mut dyn Module, t: &str) -> Result<()> {
    let old = model.replace_submodule(t, Box::new(Identity))?;
    match LoraLayer::from_boxed(old) {
        Ok(l) => model.replace_submodule(t, l.into_base()).map(|_| ()),
        Err(other) => model.replace_submodule(t, other).map(|_| ()),
    }
}

fn check_target(name: &str, m: &dyn Module) -> Result<()> {
    let bad = |got: String, expected: &str| Error::LoraConfig {
        what: format!("target '{name}'"),
        got,
        expected: expected.into(),
    };
    if let Some(c) = m.as_any().downcast_ref::<Conv2d>() {
        let cc = c.config();
        if cc.groups != 1 || cc.dilation != 1 || c.is_padding_same() {
            return Err(bad(
                format!(
                    "a Conv2d with groups={}, dilation={}{}",
                    cc.groups,
                    cc.dilation,
                    if c.is_padding_same() {
                        ", padding='same'"
                    } else {
                        ""
                    }
                ),
                "a Conv2d with groups=1, dilation=1 and numeric padding",
            ));
        }
        return Ok(());
    }
    if m.as_any().is::<Linear>() {
        return Ok(());
    }
    Err(bad(
        format!("a {}", m.type_name()),
        "a Linear or Conv2d layer",
    ))
}

/// Whether the parameter `name` belongs to an adapter (`….lora_A.weight`, `….lora_B.weight`).
pub fn is_adapter_param(name: &str) -> bool {
    name.contains(".lora_A.") || name.contains(".lora_B.")
}

fn under_any(name: &str, roots: &[String]) -> bool {
    roots
        .iter()
        .any(|r| name.starts_with(r.as_str()) && name[r.len()..].starts_with('.'))
}

/// PEFT's `mark_only_lora_as_trainable` with `bias="none"` plus `modules_to_save`: freezes
/// every parameter that is neither an adapter's nor under a `modules_to_save` module, and
/// makes those trainable. Returns the names of the frozen parameters.
///
/// # Errors
/// `K0742` when the model has no adapter.
pub fn mark_only_lora_trainable(
    model: &dyn Module,
    modules_to_save: &[String],
) -> Result<Vec<String>> {
    if lora_layers(model).is_empty() {
        return Err(Error::LoraConfig {
            what: "model".into(),
            got: "without adapters".into(),
            expected: "a model with LoRA layers (call apply_lora first)".into(),
        });
    }
    let mut frozen = Vec::new();
    for (n, p) in model.named_parameters() {
        let train = is_adapter_param(&n) || under_any(&n, modules_to_save);
        p.set_requires_grad(train)?;
        if !train {
            frozen.push(n);
        }
    }
    Ok(frozen)
}

/// The adapter's tensors in PEFT's layout: `base_model.model.<path>.lora_A.weight` and
/// `.lora_B.weight` for every adapted layer, then every parameter and persistent buffer of
/// the `modules_to_save` modules as `base_model.model.<module>.<name>` (what PEFT's
/// `get_peft_model_state_dict` returns).
///
/// # Errors
/// `K0404` for a `modules_to_save` entry that is not a submodule.
pub fn adapter_state_dict(model: &dyn Module, modules_to_save: &[String]) -> Result<StateDict> {
    let mut sd = StateDict::new();
    for (path, l) in lora_layers(model) {
        sd.insert(
            format!("{PEFT_PREFIX}{path}.lora_A.weight"),
            l.lora_a()?.detached(),
        );
        sd.insert(
            format!("{PEFT_PREFIX}{path}.lora_B.weight"),
            l.lora_b()?.detached(),
        );
    }
    for m in modules_to_save {
        let sub = model.get_submodule(m)?;
        for (k, v) in sub.state_dict().iter() {
            sd.insert(format!("{PEFT_PREFIX}{m}.{k}"), v.clone());
        }
    }
    Ok(sd)
}

/// PEFT's `merge_and_unload`: replaces every [`LoraLayer`] by its base layer with the update
/// merged into the weight (`W += B·A · alpha/r`), so the model is plain again (same keys
/// as before [`apply_lora`]). Returns the merged paths.
///
/// # Errors
/// Backend errors.
pub fn merge_and_unload(model: &mut dyn Module) -> Result<Vec<String>> {
    let paths: Vec<String> = lora_layers(model).into_iter().map(|(n, _)| n).collect();
    for p in &paths {
        let old = model.replace_submodule(p, Box::new(Identity))?;
        let layer = match LoraLayer::from_boxed(old) {
            Ok(l) => l,
            Err(_) => {
                return Err(Error::invalid(
                    "merge_and_unload",
                    p,
                    "a LoRA layer (the model changed while merging)",
                ));
            }
        };
        let merged = layer.merged_weight()?;
        let base = layer.into_base();
        if let Some((_, w)) = base.local_params().into_iter().find(|(n, _)| n == "weight") {
            w.set(&merged)?;
        }
        model.replace_submodule(p, base)?;
    }
    Ok(paths)
}
