//! The rebuild fns of issue 14's layers: transposed convolutions, GroupNorm, InstanceNorm2d,
//! RMSNorm, the 1-d and adaptive poolings, Upsample, Unflatten, Dropout1d/2d and
//! torchvision's StochasticDepth.

use super::super::tree::ModuleNode;
use super::attrs::{
    bad, flag, float, has_param, int, ints, opt_float, require, square, string, uint, uints,
};
use super::basic::pool_common;
use crate::error::Result;
use crate::io::value::Value;
use crate::nn::ModuleSpec;
use serde_json::Value as Json;

/// `ConvTranspose1d` / `ConvTranspose2d`: one value per attribute for every side.
pub(super) fn conv_transpose(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let mode = string(n, "padding_mode", "zeros")?;
    require(n, mode == "zeros", format_args!("padding_mode='{mode}'"))?;
    require(n, flag(n, "transposed", true)?, "transposed=False")?;
    Ok(ModuleSpec::new(&n.class_name())
        .with("in_channels", uint(n, "in_channels")?)
        .with("out_channels", uint(n, "out_channels")?)
        .with("kernel_size", square(n, "kernel_size")?)
        .with("stride", square(n, "stride")?)
        .with("padding", square(n, "padding")?)
        .with("output_padding", square(n, "output_padding")?)
        .with("dilation", square(n, "dilation")?)
        .with("groups", uint(n, "groups")?)
        .with("bias", has_param(n, "bias")))
}

/// `GroupNorm(num_groups, num_channels, eps, affine)`; `bias` from the parameters.
pub(super) fn group_norm(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let affine = flag(n, "affine", true)?;
    Ok(ModuleSpec::new("GroupNorm")
        .with("num_groups", uint(n, "num_groups")?)
        .with("num_channels", uint(n, "num_channels")?)
        .with("eps", float(n, "eps")?)
        .with("affine", affine)
        .with("bias", !affine || has_param(n, "bias")))
}

/// `InstanceNorm2d(num_features, eps, momentum, affine, track_running_stats)`.
pub(super) fn instance_norm(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let affine = flag(n, "affine", false)?;
    let momentum = match opt_float(n, "momentum")? {
        Some(m) => Json::from(m),
        None => Json::Null,
    };
    Ok(ModuleSpec::new("InstanceNorm2d")
        .with("num_features", uint(n, "num_features")?)
        .with("eps", float(n, "eps")?)
        .with("momentum", momentum)
        .with("affine", affine)
        .with(
            "track_running_stats",
            flag(n, "track_running_stats", false)?,
        )
        .with("bias", !affine || has_param(n, "bias")))
}

/// `RMSNorm(normalized_shape, eps=None, elementwise_affine)`.
pub(super) fn rms_norm(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let eps = match opt_float(n, "eps")? {
        Some(e) => Json::from(e),
        None => Json::Null,
    };
    Ok(ModuleSpec::new("RMSNorm")
        .with(
            "normalized_shape",
            Json::from(uints(n, "normalized_shape")?),
        )
        .with("eps", eps)
        .with("elementwise_affine", flag(n, "elementwise_affine", true)?))
}

/// `MaxPool1d` (dilation kept; `return_indices` refused).
pub(super) fn max_pool1d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    require(n, !flag(n, "return_indices", false)?, "return_indices=True")?;
    Ok(pool_common(n, "MaxPool1d")?.with("dilation", square(n, "dilation")?))
}

/// `AvgPool1d` (kiln's counts the padding, PyTorch's default).
pub(super) fn avg_pool1d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    require(
        n,
        flag(n, "count_include_pad", true)?,
        "count_include_pad=False",
    )?;
    pool_common(n, "AvgPool1d")
}

/// The integer `output_size` of an adaptive pooling (`None` entries refused).
fn output_size(n: &ModuleNode<'_>) -> Result<Vec<usize>> {
    uints(n, "output_size").map_err(|_| {
        bad(
            n,
            "an output_size that is not all integers (None keeps a side)",
        )
    })
}

/// `AdaptiveAvgPool1d(output_size)`.
pub(super) fn adaptive_avg_pool1d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let o = output_size(n)?;
    let [o] = o.as_slice() else {
        return Err(bad(n, format_args!("output_size={o:?}")));
    };
    Ok(ModuleSpec::new("AdaptiveAvgPool1d").with("output_size", *o))
}

/// `AdaptiveMaxPool2d(output_size)` (`return_indices` refused).
pub(super) fn adaptive_max_pool2d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    require(n, !flag(n, "return_indices", false)?, "return_indices=True")?;
    Ok(ModuleSpec::new("AdaptiveMaxPool2d").with("output_size", Json::from(output_size(n)?)))
}

/// `Upsample`, `UpsamplingNearest2d`, `UpsamplingBilinear2d`: `size` or one `scale_factor`
/// for every side, `mode` nearest or bilinear, `align_corners`; `recompute_scale_factor`
/// refused (kiln maps coordinates with the given factor).
pub(super) fn upsample(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let mode = string(n, "mode", "nearest")?;
    require(
        n,
        matches!(mode, "nearest" | "bilinear"),
        format_args!("mode='{mode}'"),
    )?;
    require(
        n,
        matches!(
            n.attr("recompute_scale_factor"),
            None | Some(Value::None | Value::Bool(false))
        ),
        "recompute_scale_factor set",
    )?;
    let mut s = ModuleSpec::new("Upsample").with("mode", mode);
    match n.attr("align_corners") {
        None | Some(Value::None) => {}
        Some(_) => s = s.with("align_corners", flag(n, "align_corners", false)?),
    }
    match n.attr("scale_factor") {
        None | Some(Value::None) => {
            s = s.with("size", Json::from(uints(n, "size")?));
        }
        Some(Value::Tuple(items) | Value::List(items)) => {
            let f: Vec<f64> = items.iter().filter_map(Value::as_f64).collect();
            match f.as_slice() {
                [a, rest @ ..] if f.len() == items.len() && rest.iter().all(|b| b == a) => {
                    s = s.with("scale_factor", *a);
                }
                _ => return Err(bad(n, "a scale_factor that differs between sides")),
            }
        }
        Some(_) => s = s.with("scale_factor", float(n, "scale_factor")?),
    }
    Ok(s)
}

/// `Unflatten(dim, unflattened_size)` (a tuple of ints; named shapes refused).
pub(super) fn unflatten(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let sizes = ints(n, "unflattened_size").map_err(|_| {
        bad(
            n,
            "an unflattened_size that is not a tuple of ints (a named shape)",
        )
    })?;
    Ok(ModuleSpec::new("Unflatten")
        .with("dim", int(n, "dim")?)
        .with("unflattened_size", Json::from(sizes)))
}

/// `Dropout`, `Dropout1d`, `Dropout2d`: `p` and `inplace`.
pub(super) fn dropout(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new(&n.class_name())
        .with("p", float(n, "p")?)
        .with("inplace", flag(n, "inplace", false)?))
}

/// torchvision's `StochasticDepth(p, mode)`.
pub(super) fn stochastic_depth(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let mode = string(n, "mode", "row")?;
    require(
        n,
        matches!(mode, "row" | "batch"),
        format_args!("mode='{mode}'"),
    )?;
    Ok(ModuleSpec::new("StochasticDepth")
        .with("p", float(n, "p")?)
        .with("mode", mode))
}
