//! Rebuilding pickled modules as kiln modules: a registry `class path → rebuild fn`, each
//! turning one module's pickled attributes (`in_features`, `kernel_size`, `stride`, `eps`,
//! `momentum`, `inplace`…) into a [`ModuleSpec`] that [`crate::nn::registry`] builds.
//! Children are rebuilt recursively and passed in `_modules` order; weights are then loaded
//! strictly from the pickled parameters and buffers. A class, or an attribute value, that
//! kiln cannot reproduce exactly is refused (`K0005`) naming it — never approximated.
//!
//! A few classes are rebuilt whole from their children's attributes ([`SELF_CONTAINED`]:
//! MultiheadAttention, the Transformer layers), and a Transformer stack's `layers` list
//! becomes kiln's one repeated `layer`.
//!
//! More classes are one entry each in [`REBUILDERS`] (or [`register`] at run time).

mod attrs;
mod basic;
mod more;
mod seq;

use super::tree::ModuleNode;
use crate::error::{Error, Result};
use crate::nn::{ModuleSpec, NamedSpec};
use basic::*;
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
    ("torch.nn.modules.container.ModuleDict", |_| {
        Ok(ModuleSpec::new("ModuleDict"))
    }),
    ("torch.nn.modules.linear.Linear", linear),
    (
        "torch.nn.modules.linear.NonDynamicallyQuantizableLinear",
        linear,
    ),
    ("torch.nn.modules.linear.Identity", |_| {
        Ok(ModuleSpec::new("Identity"))
    }),
    ("torch.nn.modules.conv.Conv1d", conv1d),
    ("torch.nn.modules.conv.Conv2d", conv2d),
    (
        "torch.nn.modules.conv.ConvTranspose1d",
        more::conv_transpose,
    ),
    (
        "torch.nn.modules.conv.ConvTranspose2d",
        more::conv_transpose,
    ),
    ("torch.nn.modules.batchnorm.BatchNorm1d", batch_norm),
    ("torch.nn.modules.batchnorm.BatchNorm2d", batch_norm),
    ("torch.nn.modules.normalization.LayerNorm", layer_norm),
    ("torch.nn.modules.normalization.GroupNorm", more::group_norm),
    ("torch.nn.modules.normalization.RMSNorm", more::rms_norm),
    (
        "torch.nn.modules.instancenorm.InstanceNorm2d",
        more::instance_norm,
    ),
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
    ("torch.nn.modules.dropout.Dropout", more::dropout),
    ("torch.nn.modules.dropout.Dropout1d", more::dropout),
    ("torch.nn.modules.dropout.Dropout2d", more::dropout),
    ("torch.nn.modules.flatten.Flatten", flatten),
    ("torch.nn.modules.flatten.Unflatten", more::unflatten),
    ("torch.nn.modules.pooling.MaxPool1d", more::max_pool1d),
    ("torch.nn.modules.pooling.MaxPool2d", max_pool2d),
    ("torch.nn.modules.pooling.AvgPool1d", more::avg_pool1d),
    ("torch.nn.modules.pooling.AvgPool2d", avg_pool2d),
    (
        "torch.nn.modules.pooling.AdaptiveAvgPool1d",
        more::adaptive_avg_pool1d,
    ),
    (
        "torch.nn.modules.pooling.AdaptiveAvgPool2d",
        adaptive_avg_pool2d,
    ),
    (
        "torch.nn.modules.pooling.AdaptiveMaxPool2d",
        more::adaptive_max_pool2d,
    ),
    ("torch.nn.modules.upsampling.Upsample", more::upsample),
    (
        "torch.nn.modules.upsampling.UpsamplingNearest2d",
        more::upsample,
    ),
    (
        "torch.nn.modules.upsampling.UpsamplingBilinear2d",
        more::upsample,
    ),
    (
        "torch.nn.modules.activation.MultiheadAttention",
        seq::multihead_attention,
    ),
    (
        "torch.nn.modules.transformer.TransformerEncoderLayer",
        seq::encoder_layer,
    ),
    (
        "torch.nn.modules.transformer.TransformerDecoderLayer",
        seq::decoder_layer,
    ),
    (
        "torch.nn.modules.transformer.TransformerEncoder",
        seq::stack,
    ),
    (
        "torch.nn.modules.transformer.TransformerDecoder",
        seq::stack,
    ),
    ("torch.nn.modules.rnn.LSTM", seq::rnn),
    ("torch.nn.modules.rnn.GRU", seq::rnn),
    ("torch.nn.modules.rnn.LSTMCell", seq::rnn_cell),
    ("torch.nn.modules.rnn.GRUCell", seq::rnn_cell),
    (
        "torchvision.ops.stochastic_depth.StochasticDepth",
        more::stochastic_depth,
    ),
    ("torchvision.models.resnet.ResNet", resnet),
    ("torchvision.models.resnet.BasicBlock", |_| {
        Ok(ModuleSpec::new("BasicBlock"))
    }),
    ("torchvision.models.resnet.Bottleneck", |_| {
        Ok(ModuleSpec::new("Bottleneck"))
    }),
];

/// Function references a rebuild reads as data (a Transformer layer's `activation`):
/// `kiln inspect --globals` marks them rebuildable. Never called.
pub const REFERENCES: &[&str] = &[
    "torch.nn.functional.relu",
    "torch.nn.functional.gelu",
    "torch._C._nn.gelu",
    "torch.relu",
];

/// Classes whose rebuild fn reads its children itself (kiln builds them whole): their
/// children are not rebuilt one by one.
pub const SELF_CONTAINED: &[&str] = &[
    "torch.nn.modules.activation.MultiheadAttention",
    "torch.nn.modules.transformer.TransformerEncoderLayer",
    "torch.nn.modules.transformer.TransformerDecoderLayer",
];

/// Transformer stacks: their rebuilt `layers` list becomes one `layer` child.
const STACKS: &[&str] = &[
    "torch.nn.modules.transformer.TransformerEncoder",
    "torch.nn.modules.transformer.TransformerDecoder",
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
    let in_file = |e: Error| match e {
        Error::Unsupported { what } => Error::Unsupported {
            what: format!("{what} (module {class} in '{path}')"),
        },
        other => other,
    };
    let mut spec = f(n).map_err(in_file)?;
    if SELF_CONTAINED.contains(&class.as_str()) {
        return Ok(spec);
    }
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
    if STACKS.contains(&class.as_str()) {
        spec = seq::restack(spec).map_err(in_file)?;
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NN: &str = "torch.nn.modules.";
    const TV: &str = "torchvision.";

    #[test]
    fn every_entry_names_a_torch_class() {
        for (k, _) in REBUILDERS {
            assert!(k.starts_with(NN) || k.starts_with(TV), "{k}");
        }
        for k in SELF_CONTAINED.iter().chain(STACKS) {
            assert!(rebuilder(k).is_some(), "{k}");
        }
    }

    use crate::io::object::{ObjectOrigin, PyObject};
    use crate::io::value::Value;

    fn obj(class: &str, origin: ObjectOrigin, attrs: Vec<(&str, Value)>) -> PyObject {
        let (module, name) = class.rsplit_once('.').unwrap_or(("", class));
        PyObject {
            module: module.into(),
            name: name.into(),
            origin,
            args: Vec::new(),
            kwargs: Vec::new(),
            state: Some(Value::dict(attrs)),
            list_items: Vec::new(),
            dict_items: Vec::new(),
        }
    }

    fn node(o: &PyObject) -> ModuleNode<'_> {
        ModuleNode {
            obj: o,
            params: Vec::new(),
            buffers: Vec::new(),
            children: Vec::new(),
            training: false,
            scripted: false,
        }
    }

    /// The `K0005` message of rebuilding one module of `class` with `attrs`.
    fn refusal(class: &str, attrs: Vec<(&str, Value)>) -> String {
        let o = obj(&format!("{NN}{class}"), ObjectOrigin::NewObj, attrs);
        match spec_tree(&node(&o), "f.pt") {
            Ok(s) => panic!("{class} rebuilt as {s:?}"),
            Err(e) => {
                assert_eq!(e.code(), "K0005", "{e}");
                e.to_string()
            }
        }
    }

    /// What kiln cannot reproduce is refused, naming the class and the attribute.
    #[test]
    fn unreproducible_attributes_are_refused_by_name() {
        let i = Value::Int;
        let t = |v: &[i64]| Value::Tuple(v.iter().map(|x| Value::Int(*x)).collect());
        let pool1d = |ceil: bool| {
            vec![
                ("kernel_size", i(2)),
                ("stride", i(2)),
                ("padding", i(0)),
                ("dilation", i(1)),
                ("return_indices", Value::Bool(false)),
                ("ceil_mode", Value::Bool(ceil)),
            ]
        };
        let up = |mode: &str, recompute: Value| {
            vec![
                ("size", Value::None),
                ("scale_factor", Value::Float(2.0)),
                ("mode", Value::Str(mode.into())),
                ("align_corners", Value::None),
                ("recompute_scale_factor", recompute),
            ]
        };
        let rnn = |mode: &str, proj: i64| {
            vec![
                ("mode", Value::Str(mode.into())),
                ("input_size", i(3)),
                ("hidden_size", i(4)),
                ("num_layers", i(1)),
                ("bias", Value::Bool(true)),
                ("batch_first", Value::Bool(false)),
                ("dropout", Value::Float(0.0)),
                ("bidirectional", Value::Bool(false)),
                ("proj_size", i(proj)),
            ]
        };
        let conv_t = vec![
            ("in_channels", i(2)),
            ("out_channels", i(2)),
            ("kernel_size", t(&[3, 2])),
            ("stride", t(&[1, 1])),
            ("padding", t(&[0, 0])),
            ("output_padding", t(&[0, 0])),
            ("dilation", t(&[1, 1])),
            ("groups", i(1)),
            ("padding_mode", Value::Str("zeros".into())),
        ];
        for (class, attrs, words) in [
            (
                "pooling.MaxPool1d",
                pool1d(true),
                &["MaxPool1d", "ceil_mode"][..],
            ),
            (
                "pooling.AvgPool1d",
                pool1d(true),
                &["AvgPool1d", "ceil_mode"],
            ),
            (
                "upsampling.Upsample",
                up("bicubic", Value::None),
                &["Upsample", "mode='bicubic'"],
            ),
            (
                "upsampling.Upsample",
                up("nearest", Value::Bool(true)),
                &["Upsample", "recompute_scale_factor"],
            ),
            ("rnn.GRU", rnn("GRU", 2), &["GRU", "proj_size=2"]),
            ("rnn.LSTM", rnn("GRU", 0), &["LSTM", "mode='GRU'"]),
            (
                "conv.ConvTranspose2d",
                conv_t,
                &["ConvTranspose2d", "kernel_size"],
            ),
            (
                "pooling.AdaptiveMaxPool2d",
                vec![("output_size", i(2)), ("return_indices", Value::Bool(true))],
                &["AdaptiveMaxPool2d", "return_indices"],
            ),
            (
                "pooling.AdaptiveAvgPool1d",
                vec![("output_size", Value::Tuple(vec![Value::None]))],
                &["AdaptiveAvgPool1d", "output_size"],
            ),
        ] {
            let m = refusal(class, attrs);
            for w in words {
                assert!(m.contains(w), "{m} lacks {w}");
            }
            assert!(m.contains("f.pt"), "{m}");
        }
    }

    /// A Transformer layer's activation function is read from its reference, never called;
    /// one kiln's layer does not have is refused by name.
    #[test]
    fn transformer_activation_reference_is_refused_when_unknown() {
        let silu = obj("torch.nn.functional.silu", ObjectOrigin::Global, Vec::new());
        let o = obj(
            &format!("{NN}transformer.TransformerEncoderLayer"),
            ObjectOrigin::NewObj,
            vec![("activation", Value::Object(Box::new(silu.clone())))],
        );
        let n = node(&o);
        let e = match seq::activation_of(&n, false) {
            Ok(a) => panic!("accepted {a}"),
            Err(e) => e,
        };
        assert!(e.to_string().contains("torch.nn.functional.silu"), "{e}");
        let relu = PyObject {
            name: "relu".into(),
            ..silu
        };
        let o = obj(
            &format!("{NN}transformer.TransformerDecoderLayer"),
            ObjectOrigin::NewObj,
            vec![("activation", Value::Object(Box::new(relu)))],
        );
        assert_eq!(seq::activation_of(&node(&o), true).ok(), Some("relu"));
        // No `__dict__` entry: PyTorch's decoder `__setstate__` sets F.relu.
        let o = obj(
            &format!("{NN}transformer.TransformerDecoderLayer"),
            ObjectOrigin::NewObj,
            Vec::new(),
        );
        assert_eq!(seq::activation_of(&node(&o), true).ok(), Some("relu"));
    }

    /// Every spec type an entry produces is registered in [`crate::nn::registry`].
    #[test]
    fn every_entry_builds_a_registered_type() {
        let registered = crate::nn::registry::registered();
        for (k, _) in REBUILDERS {
            let name = k.rsplit('.').next().unwrap_or_default();
            let ty = match name {
                "NonDynamicallyQuantizableLinear" => "Linear",
                "UpsamplingNearest2d" | "UpsamplingBilinear2d" => "Upsample",
                other => other,
            };
            assert!(registered.iter().any(|r| r == ty), "{k} → {ty}");
        }
    }
}
