//! Head replacement and loading pretrained weights around a new head.

use super::Selector;
use crate::error::{Error, Result, shape_str};
use crate::nn::{Linear, LoadReport, Module, StateDict};

/// Replaces the `Linear` at `path` (e.g. `"fc"`) with a freshly initialised
/// `Linear(in_features, num_outputs)`; returns the old layer.
///
/// # Errors
/// `K0404` when `path` is not a submodule; `K0003` when it is not a `Linear`.
pub fn replace_linear_head(
    model: &mut dyn Module,
    path: &str,
    num_outputs: usize,
) -> Result<Box<dyn Module>> {
    let old = model.get_submodule(path)?;
    let lin = old.as_any().downcast_ref::<Linear>().ok_or_else(|| {
        Error::invalid(
            "head",
            format!("{path} is a {}", old.type_name()),
            "a Linear layer (replace other heads with Module::replace_submodule)",
        )
    })?;
    let new = Linear::new(lin.in_features(), num_outputs, lin.bias().is_some())?;
    model.replace_submodule(path, Box::new(new))
}

/// What [`load_pretrained`] did.
#[derive(Clone, Debug, Default)]
pub struct PretrainedReport {
    /// The underlying report (loaded, missing, unexpected, mismatched keys).
    pub report: LoadReport,
    /// Keys left out by the `skip` selector.
    pub skipped: Vec<String>,
}

impl PretrainedReport {
    /// One line per key that was not loaded, with the reason.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for k in &self.skipped {
            out.push(format!("skipped {k}: excluded by the skip pattern"));
        }
        for m in &self.report.mismatched {
            out.push(format!(
                "skipped {}: shape {} in the checkpoint, {} in the model (a replaced head keeps its new initialisation)",
                m.key,
                shape_str(&m.checkpoint),
                shape_str(&m.model)
            ));
        }
        for k in &self.report.missing_keys {
            out.push(format!(
                "not in the checkpoint: {k} (keeps its initialisation)"
            ));
        }
        for k in &self.report.unexpected_keys {
            out.push(format!("ignored {k}: the model has no such key"));
        }
        out
    }
}

/// Loads pretrained weights non-strictly: keys selected by `skip` are left out, keys whose
/// shapes differ (a new head) are skipped and reported, everything else is copied in place.
///
/// # Errors
/// `K0402` for a skip pattern that selects no key of `state_dict`.
pub fn load_pretrained(
    model: &dyn Module,
    state_dict: &StateDict,
    skip: Option<&Selector>,
) -> Result<PretrainedReport> {
    let mut skipped = Vec::new();
    let sd = match skip {
        None => state_dict.clone(),
        Some(sel) => {
            let keys: Vec<&str> = state_dict.keys().collect();
            skipped = sel.select(&keys)?;
            state_dict.clone().filter(|k| !sel.matches(k))
        }
    };
    let mut report = model.load_state_dict(&sd, false)?;
    // Keys filtered out by `skip` show up as missing; report them as skipped instead.
    report.missing_keys.retain(|k| !skipped.contains(k));
    Ok(PretrainedReport { report, skipped })
}
