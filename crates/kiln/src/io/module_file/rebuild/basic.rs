//! The rebuild fns of the first layers: Linear, Conv1d/2d, BatchNorm, LayerNorm, Embedding,
//! the activations, Dropout, Flatten, the 2-d poolings and torchvision's ResNet.

use super::super::tree::ModuleNode;
use super::attrs::{bad, flag, float, has_param, int, ints, require, square, uint};
use crate::error::Result;
use crate::io::value::Value;
use crate::nn::ModuleSpec;
use serde_json::Value as Json;

pub(super) fn linear(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new("Linear")
        .with("in_features", uint(n, "in_features")?)
        .with("out_features", uint(n, "out_features")?)
        .with("bias", has_param(n, "bias")))
}

pub(super) fn conv2d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let mode = n
        .attr("padding_mode")
        .and_then(Value::as_str)
        .unwrap_or("zeros");
    require(n, mode == "zeros", format_args!("padding_mode='{mode}'"))?;
    let kernel: Vec<usize> = ints(n, "kernel_size")?
        .iter()
        .map(|&k| usize::try_from(k).map_err(|_| bad(n, format_args!("kernel_size {k}"))))
        .collect::<Result<_>>()?;
    let dilation = square(n, "dilation")?;
    let padding = match n.attr("padding") {
        Some(Value::Str(s)) if s == "valid" => 0,
        Some(Value::Str(s)) if s == "same" => {
            // Symmetric only when every dilation·(k − 1) is even and equal.
            let pads: Vec<usize> = kernel.iter().map(|k| dilation * (k - 1)).collect();
            require(
                n,
                pads.iter().all(|p| p % 2 == 0 && *p == pads[0]),
                "padding='same' that pads unevenly",
            )?;
            pads.first().copied().unwrap_or(0) / 2
        }
        _ => square(n, "padding")?,
    };
    Ok(ModuleSpec::new("Conv2d")
        .with("in_channels", uint(n, "in_channels")?)
        .with("out_channels", uint(n, "out_channels")?)
        .with("kernel_size", Json::from(kernel))
        .with("stride", square(n, "stride")?)
        .with("padding", padding)
        .with("dilation", dilation)
        .with("groups", uint(n, "groups")?)
        .with("bias", has_param(n, "bias")))
}

pub(super) fn conv1d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let mode = n
        .attr("padding_mode")
        .and_then(Value::as_str)
        .unwrap_or("zeros");
    require(n, mode == "zeros", format_args!("padding_mode='{mode}'"))?;
    let padding = match n.attr("padding") {
        Some(Value::Str(s)) if s == "valid" => Json::from(0),
        Some(Value::Str(s)) if s == "same" => Json::from("same"),
        _ => Json::from(square(n, "padding")?),
    };
    Ok(ModuleSpec::new("Conv1d")
        .with("in_channels", uint(n, "in_channels")?)
        .with("out_channels", uint(n, "out_channels")?)
        .with("kernel_size", square(n, "kernel_size")?)
        .with("stride", square(n, "stride")?)
        .with("padding", padding)
        .with("dilation", square(n, "dilation")?)
        .with("groups", uint(n, "groups")?)
        .with("bias", has_param(n, "bias")))
}

pub(super) fn batch_norm(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let affine = flag(n, "affine", true)?;
    require(
        n,
        !affine || has_param(n, "bias"),
        "affine=True, bias=False",
    )?;
    let momentum = match n.attr("momentum") {
        None | Some(Value::None) => Json::Null,
        Some(_) => Json::from(float(n, "momentum")?),
    };
    let name = n.class_name();
    Ok(ModuleSpec::new(&name)
        .with("num_features", uint(n, "num_features")?)
        .with("eps", float(n, "eps")?)
        .with("momentum", momentum)
        .with("affine", affine)
        .with("track_running_stats", flag(n, "track_running_stats", true)?))
}

pub(super) fn layer_norm(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let shape: Vec<usize> = ints(n, "normalized_shape")?
        .iter()
        .map(|&k| usize::try_from(k).map_err(|_| bad(n, format_args!("normalized_shape {k}"))))
        .collect::<Result<_>>()?;
    let affine = flag(n, "elementwise_affine", true)?;
    Ok(ModuleSpec::new("LayerNorm")
        .with("normalized_shape", Json::from(shape))
        .with("eps", float(n, "eps")?)
        .with("elementwise_affine", affine)
        .with("bias", affine && has_param(n, "bias")))
}

pub(super) fn embedding(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    require(
        n,
        matches!(n.attr("max_norm"), None | Some(Value::None)),
        "max_norm set (renormalising lookups)",
    )?;
    let pad = match n.attr("padding_idx") {
        None | Some(Value::None) => Json::Null,
        Some(_) => Json::from(int(n, "padding_idx")?),
    };
    Ok(ModuleSpec::new("Embedding")
        .with("num_embeddings", uint(n, "num_embeddings")?)
        .with("embedding_dim", uint(n, "embedding_dim")?)
        .with("padding_idx", pad))
}

pub(super) fn gelu(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let a = n
        .attr("approximate")
        .and_then(Value::as_str)
        .unwrap_or("none");
    Ok(ModuleSpec::new("GELU").with("approximate", a))
}

pub(super) fn inplace(n: &ModuleNode<'_>, ty: &str) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new(ty).with("inplace", flag(n, "inplace", false)?))
}

pub(super) fn leaky_relu(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new("LeakyReLU")
        .with("negative_slope", float(n, "negative_slope")?)
        .with("inplace", flag(n, "inplace", false)?))
}

pub(super) fn elu(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new("ELU")
        .with("alpha", float(n, "alpha")?)
        .with("inplace", flag(n, "inplace", false)?))
}

pub(super) fn softplus(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new("Softplus")
        .with("beta", float(n, "beta")?)
        .with("threshold", float(n, "threshold")?))
}

pub(super) fn softmax(n: &ModuleNode<'_>, ty: &str) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new(ty).with("dim", int(n, "dim")?))
}

pub(super) fn flatten(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let end = int(n, "end_dim")?;
    require(n, end == -1, format_args!("end_dim={end}"))?;
    Ok(ModuleSpec::new("Flatten").with("start_dim", uint(n, "start_dim")?))
}

/// `kernel_size`, `stride` (`None`: the kernel) and `padding` of a 1-d or square 2-d pooling;
/// `ceil_mode` refused.
pub(super) fn pool_common(n: &ModuleNode<'_>, ty: &str) -> Result<ModuleSpec> {
    require(n, !flag(n, "ceil_mode", false)?, "ceil_mode=True")?;
    let k = square(n, "kernel_size")?;
    let stride = match n.attr("stride") {
        None | Some(Value::None) => k,
        _ => square(n, "stride")?,
    };
    Ok(ModuleSpec::new(ty)
        .with("kernel_size", k)
        .with("stride", stride)
        .with("padding", square(n, "padding")?))
}

pub(super) fn max_pool2d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    require(n, square(n, "dilation")? == 1, "dilation other than 1")?;
    require(n, !flag(n, "return_indices", false)?, "return_indices=True")?;
    pool_common(n, "MaxPool2d")
}

pub(super) fn avg_pool2d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    require(
        n,
        flag(n, "count_include_pad", true)?,
        "count_include_pad=False",
    )?;
    require(
        n,
        matches!(n.attr("divisor_override"), None | Some(Value::None)),
        "divisor_override set",
    )?;
    pool_common(n, "AvgPool2d")
}

pub(super) fn adaptive_avg_pool2d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let o = ints(n, "output_size").map_err(|_| {
        bad(
            n,
            "an output_size that is not all integers (None keeps a side)",
        )
    })?;
    let o: Vec<usize> = o
        .iter()
        .map(|&k| usize::try_from(k).map_err(|_| bad(n, format_args!("output_size {k}"))))
        .collect::<Result<_>>()?;
    Ok(ModuleSpec::new("AdaptiveAvgPool2d").with("output_size", Json::from(o)))
}

pub(super) fn resnet(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let child = |name: &str| {
        n.children
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, c)| c.as_ref())
            .ok_or_else(|| bad(n, format_args!("no '{name}' submodule")))
    };
    let (num_classes, in_channels) = (
        uint(child("fc")?, "out_features")?,
        uint(child("conv1")?, "in_channels")?,
    );
    // kiln's ResNet keeps its configuration in the skip field `cfg`; the layers themselves
    // are rebuilt from the file's children (any widths and depths).
    Ok(ModuleSpec::new("ResNet")
        .with("num_classes", num_classes)
        .with("in_channels", in_channels)
        .with(
            "cfg",
            serde_json::json!({ "num_classes": num_classes, "in_channels": in_channels }),
        ))
}
