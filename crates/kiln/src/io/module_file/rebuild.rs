//! Rebuilding pickled modules as kiln modules: a registry `class path → rebuild fn`, each
//! turning one module's pickled attributes (`in_features`, `kernel_size`, `stride`, `eps`,
//! `momentum`, `inplace`…) into a [`ModuleSpec`] that [`crate::nn::registry`] builds.
//! Children are rebuilt recursively and passed in `_modules` order; weights are then loaded
//! strictly from the pickled parameters and buffers. A class, or an attribute value, that
//! kiln cannot reproduce exactly is refused (`K0005`) naming it — never approximated.
//!
//! More classes are one entry each in [`REBUILDERS`] (or [`register`] at run time).

use super::tree::ModuleNode;
use crate::error::{Error, Result};
use crate::io::value::Value;
use crate::nn::{ModuleSpec, NamedSpec};
use serde_json::Value as Json;
use std::sync::{OnceLock, RwLock};

/// Turns one pickled module (its attributes; children come separately) into a spec.
pub type RebuildFn = fn(&ModuleNode<'_>) -> Result<ModuleSpec>;

/// The built-in entries: class path (`module.name`) → rebuild fn.
pub const REBUILDERS: &[(&str, RebuildFn)] = &[
    ("torch.nn.modules.container.Sequential", |_| {
        Ok(ModuleSpec::new("Sequential"))
    }),
    ("torch.nn.modules.container.ModuleList", |_| {
        Ok(ModuleSpec::new("ModuleList"))
    }),
    ("torch.nn.modules.linear.Linear", linear),
    ("torch.nn.modules.linear.Identity", |_| {
        Ok(ModuleSpec::new("Identity"))
    }),
    ("torch.nn.modules.conv.Conv2d", conv2d),
    ("torch.nn.modules.conv.Conv1d", conv1d),
    ("torch.nn.modules.container.ModuleDict", |_| {
        Ok(ModuleSpec::new("ModuleDict"))
    }),
    ("torch.nn.modules.batchnorm.BatchNorm1d", batch_norm),
    ("torch.nn.modules.batchnorm.BatchNorm2d", batch_norm),
    ("torch.nn.modules.normalization.LayerNorm", layer_norm),
    ("torch.nn.modules.sparse.Embedding", embedding),
    ("torch.nn.modules.activation.ReLU", |_| {
        Ok(ModuleSpec::new("ReLU"))
    }),
    ("torch.nn.modules.activation.Sigmoid", |_| {
        Ok(ModuleSpec::new("Sigmoid"))
    }),
    ("torch.nn.modules.activation.Tanh", |_| {
        Ok(ModuleSpec::new("Tanh"))
    }),
    ("torch.nn.modules.activation.GELU", gelu),
    ("torch.nn.modules.activation.SiLU", |n| inplace(n, "SiLU")),
    ("torch.nn.modules.activation.ReLU6", |n| inplace(n, "ReLU6")),
    ("torch.nn.modules.activation.Hardswish", |n| {
        inplace(n, "Hardswish")
    }),
    ("torch.nn.modules.activation.Hardsigmoid", |n| {
        inplace(n, "Hardsigmoid")
    }),
    ("torch.nn.modules.activation.Mish", |n| inplace(n, "Mish")),
    ("torch.nn.modules.activation.LeakyReLU", leaky_relu),
    ("torch.nn.modules.activation.ELU", elu),
    ("torch.nn.modules.activation.Softplus", softplus),
    ("torch.nn.modules.activation.Softmax", |n| {
        softmax(n, "Softmax")
    }),
    ("torch.nn.modules.activation.LogSoftmax", |n| {
        softmax(n, "LogSoftmax")
    }),
    ("torch.nn.modules.dropout.Dropout", dropout),
    ("torch.nn.modules.flatten.Flatten", flatten),
    ("torch.nn.modules.pooling.MaxPool2d", max_pool2d),
    ("torch.nn.modules.pooling.AvgPool2d", avg_pool2d),
    (
        "torch.nn.modules.pooling.AdaptiveAvgPool2d",
        adaptive_avg_pool2d,
    ),
    ("torchvision.models.resnet.ResNet", resnet),
    ("torchvision.models.resnet.BasicBlock", |_| {
        Ok(ModuleSpec::new("BasicBlock"))
    }),
    ("torchvision.models.resnet.Bottleneck", |_| {
        Ok(ModuleSpec::new("Bottleneck"))
    }),
];

fn extra() -> &'static RwLock<Vec<(String, RebuildFn)>> {
    static T: OnceLock<RwLock<Vec<(String, RebuildFn)>>> = OnceLock::new();
    T.get_or_init(|| RwLock::new(Vec::new()))
}

/// Registers (or replaces) the rebuild fn of a class path, e.g. a zoo architecture
/// (`torchvision.models.mobilenetv2.MobileNetV2`) or a user class (`__main__.MyNet`).
pub fn register(class_path: &str, f: RebuildFn) {
    let mut t = extra().write().unwrap_or_else(|p| p.into_inner());
    t.retain(|(k, _)| k != class_path);
    t.push((class_path.to_string(), f));
}

/// The rebuild fn of a class path, if kiln has one.
pub fn rebuilder(class_path: &str) -> Option<RebuildFn> {
    let t = extra().read().unwrap_or_else(|p| p.into_inner());
    if let Some((_, f)) = t.iter().find(|(k, _)| k == class_path) {
        return Some(*f);
    }
    REBUILDERS
        .iter()
        .find(|(k, _)| *k == class_path)
        .map(|(_, f)| *f)
}

/// Whether kiln can rebuild the class (it has an entry and the type is registered).
pub fn can_rebuild(class_path: &str) -> bool {
    rebuilder(class_path).is_some() || super::zoo::is_zoo_class(class_path)
}

/// The spec tree of a pickled module tree; `path` names the file in errors.
///
/// # Errors
/// `K0005` naming the first class kiln has no entry for, or an attribute value it cannot
/// reproduce (`ceil_mode=True`, `padding_mode='reflect'`…).
pub fn spec_tree(n: &ModuleNode<'_>, path: &str) -> Result<ModuleSpec> {
    let class = n.class_path();
    let f = rebuilder(&class).ok_or_else(|| Error::Unsupported {
        what: format!(
            "rebuilding {class} (in '{path}') as a kiln module: kiln has no rebuild entry for this class; `kiln convert` and `kiln inspect` still read its state dict"
        ),
    })?;
    let mut spec = f(n).map_err(|e| match e {
        Error::Unsupported { what } => Error::Unsupported {
            what: format!("{what} (module {class} in '{path}')"),
        },
        other => other,
    })?;
    for (name, c) in &n.children {
        let Some(c) = c else {
            return Err(Error::Unsupported {
                what: format!("rebuilding {class} (in '{path}'): its submodule '{name}' is None"),
            });
        };
        spec.children.push(NamedSpec {
            name: name.clone(),
            module: spec_tree(c, path)?,
        });
    }
    Ok(spec)
}

fn bad(n: &ModuleNode<'_>, what: impl std::fmt::Display) -> Error {
    Error::Unsupported {
        what: format!("{} with {what}", n.class_name()),
    }
}

fn int(n: &ModuleNode<'_>, key: &str) -> Result<i64> {
    n.attr(key)
        .and_then(Value::as_i64)
        .filter(|_| !matches!(n.attr(key), Some(Value::Bool(_))))
        .ok_or_else(|| {
            bad(
                n,
                format_args!("attribute '{key}' missing or not an integer"),
            )
        })
}

fn uint(n: &ModuleNode<'_>, key: &str) -> Result<usize> {
    let v = int(n, key)?;
    usize::try_from(v).map_err(|_| bad(n, format_args!("{key}={v}")))
}

fn float(n: &ModuleNode<'_>, key: &str) -> Result<f64> {
    n.attr(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| bad(n, format_args!("attribute '{key}' missing or not a number")))
}

fn flag(n: &ModuleNode<'_>, key: &str, default: bool) -> Result<bool> {
    match n.attr(key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad(n, format_args!("attribute '{key}' is not a bool"))),
    }
}

/// An int or a tuple of ints.
fn ints(n: &ModuleNode<'_>, key: &str) -> Result<Vec<i64>> {
    match n.attr(key) {
        Some(Value::Tuple(items) | Value::List(items)) => items
            .iter()
            .map(|x| {
                x.as_i64()
                    .ok_or_else(|| bad(n, format_args!("a non-integer in '{key}'")))
            })
            .collect(),
        Some(Value::Int(i)) => Ok(vec![*i]),
        _ => Err(bad(
            n,
            format_args!("attribute '{key}' missing or not an int tuple"),
        )),
    }
}

/// An int or a tuple whose entries are all equal (kiln's 2-d layers take one value).
fn square(n: &ModuleNode<'_>, key: &str) -> Result<usize> {
    let v = ints(n, key)?;
    match v.as_slice() {
        [a, rest @ ..] if rest.iter().all(|b| b == a) => {
            usize::try_from(*a).map_err(|_| bad(n, format_args!("{key}={a}")))
        }
        _ => Err(bad(
            n,
            format_args!("{key}={v:?} (kiln's layer takes one value for both sides)"),
        )),
    }
}

fn has_param(n: &ModuleNode<'_>, name: &str) -> bool {
    n.params.iter().any(|(k, t)| k == name && t.is_some())
}

fn require(n: &ModuleNode<'_>, ok: bool, what: impl std::fmt::Display) -> Result<()> {
    if ok { Ok(()) } else { Err(bad(n, what)) }
}

fn linear(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new("Linear")
        .with("in_features", uint(n, "in_features")?)
        .with("out_features", uint(n, "out_features")?)
        .with("bias", has_param(n, "bias")))
}

fn conv2d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
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

fn conv1d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
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

fn batch_norm(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
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

fn layer_norm(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
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

fn embedding(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
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

fn gelu(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let a = n
        .attr("approximate")
        .and_then(Value::as_str)
        .unwrap_or("none");
    Ok(ModuleSpec::new("GELU").with("approximate", a))
}

fn inplace(n: &ModuleNode<'_>, ty: &str) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new(ty).with("inplace", flag(n, "inplace", false)?))
}

fn leaky_relu(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new("LeakyReLU")
        .with("negative_slope", float(n, "negative_slope")?)
        .with("inplace", flag(n, "inplace", false)?))
}

fn elu(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new("ELU")
        .with("alpha", float(n, "alpha")?)
        .with("inplace", flag(n, "inplace", false)?))
}

fn softplus(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new("Softplus")
        .with("beta", float(n, "beta")?)
        .with("threshold", float(n, "threshold")?))
}

fn softmax(n: &ModuleNode<'_>, ty: &str) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new(ty).with("dim", int(n, "dim")?))
}

fn dropout(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new("Dropout").with("p", float(n, "p")?))
}

fn flatten(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let end = int(n, "end_dim")?;
    require(n, end == -1, format_args!("end_dim={end}"))?;
    Ok(ModuleSpec::new("Flatten").with("start_dim", uint(n, "start_dim")?))
}

fn pool_common(n: &ModuleNode<'_>, ty: &str) -> Result<ModuleSpec> {
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

fn max_pool2d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    require(n, square(n, "dilation")? == 1, "dilation other than 1")?;
    require(n, !flag(n, "return_indices", false)?, "return_indices=True")?;
    pool_common(n, "MaxPool2d")
}

fn avg_pool2d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
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

fn adaptive_avg_pool2d(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
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

fn resnet(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const NN: &str = "torch.nn.modules.";
    const TV: &str = "torchvision.models.";

    #[test]
    fn every_entry_names_a_torch_class() {
        for (k, _) in REBUILDERS {
            assert!(k.starts_with(NN) || k.starts_with(TV), "{k}");
        }
    }
}
