//! Head replacement and loading pretrained weights around a new head.

use super::Selector;
use crate::error::{Error, Result, shape_str};
use crate::nn::{Linear, LoadReport, Module, StateDict};
use candle_core::{DType, Tensor};

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
    /// First-convolution weights adapted to another number of input channels (loaded, and
    /// listed in `report.loaded` too).
    pub adapted: Vec<AdaptedConv>,
}

/// A convolution weight whose input channels were adapted when loading (timm's
/// `adapt_input_conv`).
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptedConv {
    /// The state-dict key (e.g. `conv1.weight`).
    pub key: String,
    /// Input channels in the file.
    pub from: usize,
    /// Input channels of the model.
    pub to: usize,
}

impl AdaptedConv {
    /// `conv1.weight: adapted from 3 to 1 input channels (summed RGB filters)`.
    pub fn describe(&self) -> String {
        let how = if self.to == 1 {
            "summed RGB filters".to_string()
        } else {
            format!(
                "RGB filters repeated {} times, first {} kept, scaled by 3/{}",
                self.to.div_ceil(3),
                self.to,
                self.to
            )
        };
        format!(
            "{}: adapted from {} to {} input channels ({how})",
            self.key, self.from, self.to
        )
    }
}

/// timm's `adapt_input_conv` for a `[out, 3, kh, kw]` weight and `in_chans` input
/// channels: 1 sums the filters over the input-channel axis; other counts repeat the three
/// channels `ceil(in_chans / 3)` times, keep the first `in_chans` and multiply by
/// `3 / in_chans`. Computed in f32 and cast back to the weight's dtype.
///
/// # Errors
/// `K0003` for a weight that is not `[out, 3, kh, kw]` or `in_chans == 0`.
pub fn adapt_input_conv(weight: &Tensor, in_chans: usize) -> Result<Tensor> {
    let dims = weight.dims();
    if dims.len() != 4 || dims[1] != 3 || in_chans == 0 {
        return Err(Error::invalid(
            "adapt_input_conv",
            format!("weight {} to {in_chans} channels", shape_str(dims)),
            "a [out, 3, kh, kw] weight and at least one input channel",
        ));
    }
    let dtype = weight.dtype();
    let w = weight.to_dtype(DType::F32)?;
    let out = if in_chans == 1 {
        w.sum_keepdim(1)?
    } else if in_chans == 3 {
        w
    } else {
        let repeat = in_chans.div_ceil(3);
        let parts = vec![w; repeat];
        Tensor::cat(&parts, 1)?
            .narrow(1, 0, in_chans)?
            .affine(3.0 / in_chans as f64, 0.0)?
    };
    Ok(out.to_dtype(dtype)?.contiguous()?)
}

impl PretrainedReport {
    /// One line per key that was not loaded, with the reason.
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self.adapted.iter().map(AdaptedConv::describe).collect();
        for k in &self.skipped {
            out.push(format!("skipped {k}: excluded by the skip pattern"));
        }
        for m in &self.report.mismatched {
            out.push(format!(
                "skipped {}: shape {} in the checkpoint, {} in the model (keeps the model's initialisation)",
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

/// Loads pretrained weights non-strictly: keys selected by `skip` are left out; a 4-d
/// weight with 3 input channels in the file and another count in the model (a first
/// convolution pretrained on RGB, data with 1 or 4 channels) is adapted with
/// [`adapt_input_conv`] and loaded; other keys whose shapes differ (a new head) are skipped
/// and reported; everything else is copied in place.
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
    let mut sd = sd;
    let mut adapted = Vec::new();
    let own = model.state_dict();
    let keys: Vec<String> = sd.keys().map(str::to_string).collect();
    for k in keys {
        let (Some(file), Some(mine)) = (sd.get(&k), own.get(&k)) else {
            continue;
        };
        let (f, m) = (file.dims(), mine.dims());
        if f.len() == 4
            && m.len() == 4
            && f[1] == 3
            && m[1] != 3
            && f[0] == m[0]
            && f[2..] == m[2..]
        {
            let w = adapt_input_conv(file, m[1])?;
            sd.insert(k.clone(), w);
            adapted.push(AdaptedConv {
                key: k,
                from: 3,
                to: m[1],
            });
        }
    }
    let mut report = model.load_state_dict(&sd, false)?;
    // Keys filtered out by `skip` show up as missing; report them as skipped instead.
    report.missing_keys.retain(|k| !skipped.contains(k));
    Ok(PretrainedReport {
        report,
        skipped,
        adapted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn adapt_input_conv_matches_timm() {
        let w = Tensor::arange(0f32, 24.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 2, 2))
            .unwrap();
        let one = adapt_input_conv(&w, 1).unwrap();
        assert_eq!(one.dims(), [2, 1, 2, 2]);
        let v = one.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Out 0, position 0: 0 + 4 + 8.
        assert_eq!(v[0], 12.0);
        let four = adapt_input_conv(&w, 4).unwrap();
        assert_eq!(four.dims(), [2, 4, 2, 2]);
        let v = four.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Channel 3 repeats channel 0, all scaled by 3/4.
        assert_eq!(v[0], 0.0);
        assert_eq!(v[12], 0.0);
        assert_eq!(v[13], 0.75);
        assert_eq!(v[4], 4.0 * 0.75);
        assert!(adapt_input_conv(&w.narrow(1, 0, 2).unwrap(), 1).is_err());
        let a = AdaptedConv {
            key: "conv1.weight".into(),
            from: 3,
            to: 1,
        };
        assert_eq!(
            a.describe(),
            "conv1.weight: adapted from 3 to 1 input channels (summed RGB filters)"
        );
    }
}
