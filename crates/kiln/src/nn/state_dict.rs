//! `StateDict`: an ordered map from dotted names to tensors, plus PyTorch's `_metadata`.
//!
//! Order is part of the format: PyTorch writes keys in registration order and optimizers
//! refer to parameters by position, so every operation here keeps insertion order.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! let mut sd = kiln::StateDict::new();
//! sd.insert("module.fc.weight", Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu)?);
//! let sd = sd.strip_prefix("module.");
//! assert_eq!(sd.keys().collect::<Vec<_>>(), ["fc.weight"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::{Context, Error, Result, shape_str};
use candle_core::{DType, Device, Tensor};
use indexmap::IndexMap;

/// Ordered name → tensor map with PyTorch's per-module `_metadata` (module prefix → version).
#[derive(Clone, Debug, Default)]
pub struct StateDict {
    entries: IndexMap<String, Tensor>,
    /// PyTorch's `state_dict._metadata`: module prefix (`""`, `"fc"`, `"layer1.0.bn1"`) → `version`.
    pub metadata: Option<IndexMap<String, i64>>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts (or replaces, keeping its position) a tensor.
    pub fn insert(&mut self, key: impl Into<String>, value: Tensor) {
        self.entries.insert(key.into(), value);
    }

    /// The tensor stored under `key`.
    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.entries.get(key)
    }

    /// Removes `key`, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Tensor> {
        self.entries.shift_remove(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of elements over all tensors.
    pub fn numel(&self) -> usize {
        self.entries.values().map(|t| t.elem_count()).sum()
    }

    /// Whether every key starts with `prefix` (and there is at least one key).
    pub fn all_have_prefix(&self, prefix: &str) -> bool {
        !self.entries.is_empty() && self.entries.keys().all(|k| k.starts_with(prefix))
    }

    /// Removes `prefix` from the keys that carry it (like PyTorch's
    /// `consume_prefix_in_state_dict_if_present`); other keys are kept as they are.
    pub fn strip_prefix(self, prefix: &str) -> Self {
        let entries = self
            .entries
            .into_iter()
            .map(|(k, v)| match k.strip_prefix(prefix) {
                Some(rest) => (rest.to_string(), v),
                None => (k, v),
            })
            .collect();
        let metadata = self.metadata.map(|m| {
            let bare = prefix.trim_end_matches('.');
            m.into_iter()
                .map(|(k, v)| {
                    if k == bare {
                        (String::new(), v)
                    } else {
                        (k.strip_prefix(prefix).map(str::to_string).unwrap_or(k), v)
                    }
                })
                .collect()
        });
        StateDict { entries, metadata }
    }

    /// Adds `prefix` to every key (e.g. `module.` for a DataParallel model).
    pub fn add_prefix(self, prefix: &str) -> Self {
        let entries = self
            .entries
            .into_iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v))
            .collect();
        let metadata = self.metadata.map(|m| {
            m.into_iter()
                .map(|(k, v)| {
                    if k.is_empty() {
                        (prefix.trim_end_matches('.').to_string(), v)
                    } else {
                        (format!("{prefix}{k}"), v)
                    }
                })
                .collect()
        });
        StateDict { entries, metadata }
    }

    /// Renames keys with a regex substitution (`$1` etc. refer to groups); keys that do not
    /// match are kept. Two keys renamed to one name is an error.
    ///
    /// # Errors
    /// `K0402` for an invalid regex; `K0003` when the renaming collides.
    pub fn rename_regex(self, pattern: &str, replacement: &str) -> Result<Self> {
        let re = regex::Regex::new(pattern).map_err(|e| Error::Pattern {
            pattern: pattern.to_string(),
            problem: format!("is not a valid regex: {e}"),
        })?;
        let mut out = IndexMap::with_capacity(self.entries.len());
        for (k, v) in self.entries {
            let nk = re.replace(&k, replacement).into_owned();
            if out.contains_key(&nk) {
                return Err(Error::invalid(
                    "key rename",
                    format!("'{k}' -> '{nk}'"),
                    "renamed keys must stay unique",
                ));
            }
            out.insert(nk, v);
        }
        Ok(StateDict {
            entries: out,
            metadata: self.metadata,
        })
    }

    /// Keeps only the keys for which `keep` is true.
    pub fn filter(self, mut keep: impl FnMut(&str) -> bool) -> Self {
        StateDict {
            entries: self.entries.into_iter().filter(|(k, _)| keep(k)).collect(),
            metadata: self.metadata,
        }
    }

    /// Moves every tensor to `device`.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        self.map(|_, t| t.to_device(device).ctx("StateDict::to_device"))
    }

    /// Casts floating-point tensors to `dtype`; integer and bool tensors keep theirs (as in
    /// PyTorch's `module.to(dtype)`).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        self.map(|_, t| {
            if t.dtype().is_float() {
                t.to_dtype(dtype).ctx("StateDict::to_dtype")
            } else {
                Ok(t.clone())
            }
        })
    }

    /// Applies `f` to every tensor, keeping keys and metadata.
    pub fn map(&self, mut f: impl FnMut(&str, &Tensor) -> Result<Tensor>) -> Result<Self> {
        let mut entries = IndexMap::with_capacity(self.entries.len());
        for (k, v) in &self.entries {
            entries.insert(k.clone(), f(k, v)?);
        }
        Ok(StateDict {
            entries,
            metadata: self.metadata.clone(),
        })
    }

    /// A one-line-per-key listing: `name [shape] dtype`.
    pub fn describe(&self) -> String {
        self.iter()
            .map(|(k, t)| format!("{k} {} {:?}", shape_str(t.dims()), t.dtype()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl FromIterator<(String, Tensor)> for StateDict {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> Self {
        StateDict {
            entries: iter.into_iter().collect(),
            metadata: None,
        }
    }
}

impl IntoIterator for StateDict {
    type Item = (String, Tensor);
    type IntoIter = indexmap::map::IntoIter<String, Tensor>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// A key whose shape in the file differs from the model's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The key.
    pub key: String,
    /// Shape in the state dict being loaded.
    pub checkpoint: Vec<usize>,
    /// Shape in the model.
    pub model: Vec<usize>,
}

/// What `load_state_dict` found: PyTorch's `_IncompatibleKeys` plus shape mismatches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Keys the model has and the state dict lacks (not loaded).
    pub missing_keys: Vec<String>,
    /// Keys the state dict has and the model lacks (ignored).
    pub unexpected_keys: Vec<String>,
    /// Keys present in both with different shapes (skipped in non-strict mode).
    pub mismatched: Vec<ShapeMismatch>,
    /// Keys whose values were copied into the model.
    pub loaded: Vec<String>,
}

impl LoadReport {
    /// True when every key matched.
    pub fn is_clean(&self) -> bool {
        self.missing_keys.is_empty()
            && self.unexpected_keys.is_empty()
            && self.mismatched.is_empty()
    }

    /// The error strict loading raises, worded like PyTorch's, with a hint when the
    /// DataParallel `module.` prefix explains the mismatch.
    pub fn to_error(&self, model: &str) -> Error {
        let quote = |ks: &[String]| {
            ks.iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut msgs = Vec::new();
        if !self.missing_keys.is_empty() {
            msgs.push(format!(
                "Missing key(s) in state_dict: {}. ",
                quote(&self.missing_keys)
            ));
        }
        if !self.unexpected_keys.is_empty() {
            msgs.push(format!(
                "Unexpected key(s) in state_dict: {}. ",
                quote(&self.unexpected_keys)
            ));
        }
        for m in &self.mismatched {
            msgs.push(format!(
                "size mismatch for {}: copying a param with shape {} from checkpoint, the shape in current model is {}.",
                m.key,
                shape_str(&m.checkpoint),
                shape_str(&m.model)
            ));
        }
        if let Some(note) = self.prefix_note() {
            msgs.push(note);
        }
        Error::StateDictMismatch {
            model: model.to_string(),
            missing: self.missing_keys.clone().into(),
            unexpected: self.unexpected_keys.clone().into(),
            mismatched: self.mismatched.iter().map(|m| m.key.clone()).collect(),
            message: format!(
                "Error(s) in loading state_dict for {model}:\n\t{}",
                msgs.join("\n\t")
            ),
        }
    }

    /// Explains a mismatch caused by the DataParallel `module.` prefix, if that is the cause.
    pub fn prefix_note(&self) -> Option<String> {
        let strip = |k: &String| k.strip_prefix("module.").map(str::to_string);
        let unexpected_stripped: Vec<String> =
            self.unexpected_keys.iter().filter_map(strip).collect();
        if !unexpected_stripped.is_empty()
            && unexpected_stripped
                .iter()
                .any(|k| self.missing_keys.contains(k))
        {
            return Some(
                "Note: the state dict's keys carry the DataParallel prefix 'module.' that the model's keys lack; strip it with StateDict::strip_prefix(\"module.\") (CLI: kiln convert --strip-prefix module.)".into(),
            );
        }
        let missing_stripped: Vec<String> = self.missing_keys.iter().filter_map(strip).collect();
        if !missing_stripped.is_empty()
            && missing_stripped
                .iter()
                .any(|k| self.unexpected_keys.contains(k))
        {
            return Some(
                "Note: the model's keys carry the prefix 'module.' (it is wrapped in DataParallel) but the state dict's do not; load into model.module() or use StateDict::add_prefix(\"module.\")".into(),
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: usize) -> Tensor {
        Tensor::zeros(n, DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn prefix_round_trip_keeps_order() {
        let mut sd = StateDict::new();
        sd.insert("b", t(1));
        sd.insert("a", t(2));
        let p = sd.clone().add_prefix("module.");
        assert_eq!(p.keys().collect::<Vec<_>>(), ["module.b", "module.a"]);
        let back = p.strip_prefix("module.");
        assert_eq!(back.keys().collect::<Vec<_>>(), ["b", "a"]);
    }

    #[test]
    fn regex_rename_and_collision() {
        let mut sd = StateDict::new();
        sd.insert("features.0.weight", t(1));
        sd.insert("features.0.bias", t(1));
        let r = sd
            .clone()
            .rename_regex(r"^features\.0\.", "conv1.")
            .unwrap();
        assert_eq!(r.keys().collect::<Vec<_>>(), ["conv1.weight", "conv1.bias"]);
        assert!(sd.clone().rename_regex(r".*", "x").is_err());
        assert_eq!(sd.rename_regex("(", "x").unwrap_err().code(), "K0402");
    }

    #[test]
    fn error_wording_matches_pytorch() {
        let r = LoadReport {
            missing_keys: vec!["fc.weight".into()],
            unexpected_keys: vec!["module.fc.weight".into()],
            mismatched: vec![ShapeMismatch {
                key: "fc.bias".into(),
                checkpoint: vec![10],
                model: vec![5],
            }],
            loaded: vec![],
        };
        let msg = r.to_error("LeNet").to_string();
        assert!(msg.starts_with("Error(s) in loading state_dict for LeNet:\n\tMissing key(s) in state_dict: \"fc.weight\". \n\tUnexpected key(s) in state_dict: \"module.fc.weight\". \n\tsize mismatch for fc.bias: copying a param with shape [10] from checkpoint, the shape in current model is [5]."), "{msg}");
        assert!(msg.contains("DataParallel prefix"), "{msg}");
    }
}
