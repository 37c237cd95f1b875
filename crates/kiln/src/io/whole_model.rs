//! Whole-model files: architecture and weights in one file, rebuilt with no code specific to
//! the model.
//!
//! PyTorch's `torch.save(model)` pickles the model object: loading it imports the model's
//! class by name and runs arbitrary pickled code, fails when the class has moved
//! ("Can't get attribute 'Net' on module '__main__'"), and is refused by
//! `torch.load(weights_only=True)`. kiln instead stores a *declarative* spec — a versioned
//! JSON tree of registered type names and constructor arguments ([`ModuleSpec`]) — next to
//! an ordinary state dict. Loading looks each type up in the registry (built-ins and
//! architectures registered by name); nothing in the file is executed, and an unknown name
//! is a clear error (`K0403`) listing what is registered.
//!
//! In `.pt` form the file is a normal `torch.save` zip whose object is a plain dict
//! `{"kiln_format": "whole-model", "format_version": 1, "spec": <JSON string>,
//! "training": bool, "state_dict": OrderedDict}`, so `torch.load(path)` (weights-only) reads
//! it too. In `.safetensors` form the same keys go to `__metadata__` and the tensors are
//! the state dict.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! use kiln::io::{LoadOptions, load_model, save_model};
//! use kiln::nn::{Linear, Module};
//! let model = Linear::new(4, 2, true)?;
//! let path = dir.path().join("linear.pt");
//! save_model(&model, &path)?;
//! let back = load_model(&path, &LoadOptions::new())?;
//! assert_eq!(back.type_name(), "Linear");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::load::{Format, LoadOptions, load_file};
use super::safetensors::flat_tensors;
use super::save::save_safetensors;
use super::value::{Value, state_dict_to_value, value_to_state_dict};
use crate::error::{Error, Result};
use crate::nn::{Module, ModuleSpec, registry};
use std::collections::BTreeMap;
use std::path::Path;

/// The `kiln_format` marker of whole-model files.
pub const MARKER: &str = "whole-model";
/// The version written; files with a higher version are refused.
pub const FORMAT_VERSION: i64 = 1;

/// Saves `model`'s spec and state dict to `path` (`.safetensors` or PyTorch zip).
///
/// # Errors
/// `K0002` on I/O failure; backend errors copying the weights.
pub fn save_model(model: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let spec = serde_json::to_string(&model.spec()).map_err(|e| Error::BadSpec {
        detail: format!("cannot serialise the spec: {e}"),
    })?;
    let sd = state_dict_to_value(&model.state_dict())?;
    match Format::for_path(path) {
        Format::Safetensors => {
            let mut meta = BTreeMap::new();
            meta.insert("kiln_format".to_string(), MARKER.to_string());
            meta.insert("format_version".to_string(), FORMAT_VERSION.to_string());
            meta.insert("spec".to_string(), spec);
            meta.insert("training".to_string(), model.is_training().to_string());
            save_safetensors(&flat_tensors(&sd)?, &meta, path)
        }
        _ => {
            let v = Value::dict([
                ("kiln_format", Value::Str(MARKER.into())),
                ("format_version", Value::Int(FORMAT_VERSION)),
                ("spec", Value::Str(spec)),
                ("training", Value::Bool(model.is_training())),
                ("state_dict", sd),
            ]);
            super::save::save_as(&v, path, Format::TorchZip)
        }
    }
}

fn schema(path: &str, detail: impl Into<String>) -> Error {
    Error::Schema {
        path: path.to_string(),
        detail: detail.into(),
    }
}

/// Rebuilds a model saved by [`save_model`]: the spec is built through the registry, the
/// weights loaded strictly, the training flag restored.
///
/// # Errors
/// `K0403` for an architecture that is not registered (naming it and the registered ones);
/// `K0507` for a file that is not a whole-model file or is from a newer format version;
/// `K0405` for a bad spec; `K0401` when the weights do not fit the rebuilt model; plus
/// the errors of [`super::load()`].
pub fn load_model(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Box<dyn Module>> {
    let path = path.as_ref();
    let p = path.display().to_string();
    let loaded = load_file(path, opts)?;
    let (marker, version, spec, training, sd) = match loaded.format {
        Format::Safetensors => {
            let m = &loaded.metadata;
            (
                m.get("kiln_format").cloned(),
                m.get("format_version").and_then(|v| v.parse::<i64>().ok()),
                m.get("spec").cloned(),
                m.get("training").map(|t| t == "true"),
                &loaded.value,
            )
        }
        _ => {
            let v = &loaded.value;
            let sd = v.get("state_dict").ok_or_else(|| {
                schema(&p, "not a whole-model file (no 'state_dict'); it holds a state dict or checkpoint: build the model and use load_state_dict")
            })?;
            (
                v.get("kiln_format")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                v.get("format_version").and_then(Value::as_i64),
                v.get("spec").and_then(Value::as_str).map(str::to_string),
                v.get("training").and_then(Value::as_bool),
                sd,
            )
        }
    };
    if marker.as_deref() != Some(MARKER) {
        return Err(schema(
            &p,
            "not a kiln whole-model file (no kiln_format = \"whole-model\"): build the model yourself and load the weights with load_state_dict",
        ));
    }
    match version {
        Some(v) if (1..=FORMAT_VERSION).contains(&v) => {}
        other => {
            return Err(schema(
                &p,
                format!(
                    "whole-model format version {other:?}; this kiln reads versions 1..={FORMAT_VERSION} (upgrade kiln)"
                ),
            ));
        }
    }
    let spec: ModuleSpec =
        serde_json::from_str(spec.as_deref().unwrap_or_default()).map_err(|e| Error::BadSpec {
            detail: format!("spec in '{p}' does not parse: {e}"),
        })?;
    let model = registry::build_in(&spec, &p)?;
    let mut location = "cpu".to_string();
    sd.visit_tensors(&mut |_, t| location = t.storage.location.clone());
    let device = super::map_location::device_for(&location, &p)?;
    let sd = value_to_state_dict(sd, &device).map_err(|e| match e {
        Error::Schema { detail, .. } => schema(&p, detail),
        other => other,
    })?;
    model.to_device(&device)?;
    model.load_state_dict(&sd, true)?;
    if let Some(t) = training {
        model.train(t);
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ModuleSpec;

    #[test]
    fn unknown_architecture_names_it_and_the_registered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.pt");
        let spec = serde_json::to_string(&ModuleSpec::new("FooNet2")).unwrap();
        let v = Value::dict([
            ("kiln_format", Value::Str(MARKER.into())),
            ("format_version", Value::Int(1)),
            ("spec", Value::Str(spec)),
            ("state_dict", Value::dict(Vec::<(String, Value)>::new())),
        ]);
        crate::io::save(&v, &path).unwrap();
        let e = load_model(&path, &LoadOptions::new()).err().unwrap();
        assert_eq!(e.code(), "K0403");
        let msg = e.to_string();
        assert!(
            msg.contains("FooNet2") && msg.contains("Linear") && msg.contains("odd.pt"),
            "{msg}"
        );
    }

    #[test]
    fn newer_version_and_plain_state_dict_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v9.pt");
        let v = Value::dict([
            ("kiln_format", Value::Str(MARKER.into())),
            ("format_version", Value::Int(9)),
            ("spec", Value::Str("{}".into())),
            ("state_dict", Value::dict(Vec::<(String, Value)>::new())),
        ]);
        crate::io::save(&v, &path).unwrap();
        let e = load_model(&path, &LoadOptions::new()).err().unwrap();
        assert_eq!(e.code(), "K0507");
        assert!(e.to_string().contains("version"), "{e}");
        let sd_path = dir.path().join("sd.pt");
        let lin = crate::nn::Linear::new(2, 2, true).unwrap();
        crate::io::save_state_dict(&lin.state_dict(), &sd_path).unwrap();
        let e = load_model(&sd_path, &LoadOptions::new()).err().unwrap();
        assert_eq!(e.code(), "K0507");
    }
}
