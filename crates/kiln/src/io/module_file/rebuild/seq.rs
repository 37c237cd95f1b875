//! The rebuild fns of the sequence layers: MultiheadAttention, the Transformer layers and
//! stacks, LSTM / GRU and their cells. A Transformer layer's options are read from its
//! children (PyTorch keeps no `d_model` or `dim_feedforward` attribute), each checked
//! against kiln's layer, which shares one dropout, one `eps` and one `bias` between them.

use super::super::tree::ModuleNode;
use super::attrs::{bad, child_of, flag, float, has_param, require, string, uint, uints};
use crate::error::{Error, Result};
use crate::io::object::ObjectOrigin;
use crate::io::value::Value;
use crate::nn::{ModuleSpec, NamedSpec};

/// `MultiheadAttention`: `embed_dim`, `num_heads`, `dropout`, `batch_first`, `kdim` /
/// `vdim` (separate `q/k/v_proj_weight` when they differ from `embed_dim`), `bias` (from
/// `in_proj_bias`), `add_bias_kv` (from `bias_k`), `add_zero_attn`; `out_proj` must be the
/// `embed_dim → embed_dim` Linear with the same bias.
pub(super) fn multihead_attention(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let e = uint(n, "embed_dim")?;
    let heads = uint(n, "num_heads")?;
    let (kdim, vdim) = (uint(n, "kdim")?, uint(n, "vdim")?);
    let same = kdim == e && vdim == e;
    require(
        n,
        flag(n, "_qkv_same_embed_dim", true)? == same,
        "_qkv_same_embed_dim that disagrees with kdim/vdim",
    )?;
    require(
        n,
        heads > 0 && e % heads == 0,
        format_args!("embed_dim={e} not divisible by num_heads={heads}"),
    )?;
    let bias = has_param(n, "in_proj_bias");
    let bias_kv = has_param(n, "bias_k");
    require(
        n,
        bias_kv == has_param(n, "bias_v"),
        "bias_k without bias_v",
    )?;
    let out = child_of(
        n,
        "out_proj",
        &["linear.NonDynamicallyQuantizableLinear", "linear.Linear"],
    )?;
    require(
        n,
        uint(out, "in_features")? == e && uint(out, "out_features")? == e,
        "an out_proj that is not embed_dim → embed_dim",
    )?;
    require(
        n,
        has_param(out, "bias") == bias,
        "out_proj bias that differs from in_proj_bias",
    )?;
    let mut s = ModuleSpec::new("MultiheadAttention")
        .with("embed_dim", e)
        .with("num_heads", heads)
        .with("dropout", float(n, "dropout")?)
        .with("bias", bias)
        .with("add_bias_kv", bias_kv)
        .with("add_zero_attn", flag(n, "add_zero_attn", false)?)
        .with("batch_first", flag(n, "batch_first", false)?);
    if !same {
        s = s.with("kdim", kdim).with("vdim", vdim);
    }
    Ok(s)
}

/// The feed-forward activation `forward` uses, as Python's attribute lookup and PyTorch's
/// `__setstate__` make it: a function reference in `__dict__` (`torch.nn.functional.relu`;
/// F.gelu is `torch._C._nn.gelu`) wins over an `activation` module child; when `__dict__`
/// has none, `TransformerDecoderLayer.__setstate__` sets `F.relu` (shadowing the child, so
/// every layer a `TransformerDecoder` cloned runs ReLU whatever it prints), while
/// `TransformerEncoderLayer`'s keeps the child (`ReLU`, exact `GELU`).
pub(super) fn activation_of(n: &ModuleNode<'_>, decoder: bool) -> Result<&'static str> {
    match n.attr("activation") {
        Some(Value::Object(o)) if o.origin == ObjectOrigin::Global => {
            // The names of [`super::REFERENCES`].
            return match o.class_path().as_str() {
                "torch.nn.functional.relu" | "torch.relu" => Ok("relu"),
                "torch.nn.functional.gelu" | "torch._C._nn.gelu" => Ok("gelu"),
                other => Err(bad(
                    n,
                    format_args!("activation {other} (kiln's layer takes relu or gelu)"),
                )),
            };
        }
        None => {}
        Some(_) => {
            return Err(bad(
                n,
                "an activation attribute that is not a function reference",
            ));
        }
    }
    let child = n.children.iter().find(|(k, _)| k == "activation");
    let Some((_, m)) = child.filter(|_| !decoder) else {
        return Ok("relu");
    };
    let m = m
        .as_ref()
        .ok_or_else(|| bad(n, "activation=None submodule"))?;
    match m.class_path().as_str() {
        "torch.nn.modules.activation.ReLU" => Ok("relu"),
        "torch.nn.modules.activation.GELU"
            if string(m, "approximate", "none").ok() == Some("none") =>
        {
            Ok("gelu")
        }
        other => Err(bad(
            n,
            format_args!("activation {other} (kiln's layer takes relu or exact gelu)"),
        )),
    }
}

/// `TransformerEncoderLayer`.
pub(super) fn encoder_layer(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    transformer_layer(n, false)
}

/// `TransformerDecoderLayer`.
pub(super) fn decoder_layer(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    transformer_layer(n, true)
}

fn transformer_layer(n: &ModuleNode<'_>, decoder: bool) -> Result<ModuleSpec> {
    let (attns, norms, drops): (&[&str], &[&str], &[&str]) = if decoder {
        (
            &["self_attn", "multihead_attn"],
            &["norm1", "norm2", "norm3"],
            &["dropout", "dropout1", "dropout2", "dropout3"],
        )
    } else {
        (
            &["self_attn"],
            &["norm1", "norm2"],
            &["dropout", "dropout1", "dropout2"],
        )
    };
    for (name, _) in &n.children {
        let known = attns.iter().chain(norms).chain(drops).any(|k| k == name)
            || ["linear1", "linear2", "activation"].contains(&name.as_str());
        require(n, known, format_args!("a submodule '{name}'"))?;
    }
    let sa = child_of(n, "self_attn", &["activation.MultiheadAttention"])?;
    let (d_model, nhead) = (uint(sa, "embed_dim")?, uint(sa, "num_heads")?);
    let batch_first = flag(sa, "batch_first", false)?;
    let bias = has_param(sa, "in_proj_bias");
    let p = float(sa, "dropout")?;
    for name in attns.iter().copied() {
        let a = child_of(n, name, &["activation.MultiheadAttention"])?;
        let spec = multihead_attention(a)?;
        let same = ModuleSpec::new("MultiheadAttention")
            .with("embed_dim", d_model)
            .with("num_heads", nhead)
            .with("dropout", p)
            .with("bias", bias)
            .with("add_bias_kv", false)
            .with("add_zero_attn", false)
            .with("batch_first", batch_first);
        require(
            n,
            spec == same,
            format_args!(
                "a {name} unlike kiln's (its options differ from self_attn's or it has kdim/vdim/bias_kv/add_zero_attn)"
            ),
        )?;
    }
    let l1 = child_of(n, "linear1", &["linear.Linear"])?;
    let l2 = child_of(n, "linear2", &["linear.Linear"])?;
    let ff = uint(l1, "out_features")?;
    require(
        n,
        uint(l1, "in_features")? == d_model
            && uint(l2, "in_features")? == ff
            && uint(l2, "out_features")? == d_model,
        "linear1/linear2 that are not d_model → dim_feedforward → d_model",
    )?;
    require(
        n,
        has_param(l1, "bias") == bias && has_param(l2, "bias") == bias,
        "Linear biases that differ from the attention's",
    )?;
    let mut eps = None;
    for name in norms.iter().copied() {
        let m = child_of(n, name, &["normalization.LayerNorm"])?;
        let e = float(m, "eps")?;
        require(
            n,
            uints(m, "normalized_shape")? == [d_model]
                && flag(m, "elementwise_affine", true)?
                && has_param(m, "bias") == bias
                && eps.is_none_or(|x| x == e),
            format_args!("a {name} unlike norm1 (kiln's layer shares one eps and bias)"),
        )?;
        eps = Some(e);
    }
    for name in drops.iter().copied() {
        let m = child_of(n, name, &["dropout.Dropout"])?;
        require(
            n,
            float(m, "p")? == p,
            format_args!("{name}.p that differs from the attention dropout {p}"),
        )?;
    }
    Ok(ModuleSpec::new(&n.class_name())
        .with("d_model", d_model)
        .with("nhead", nhead)
        .with("dim_feedforward", ff)
        .with("dropout", p)
        .with("activation", activation_of(n, decoder)?)
        .with("layer_norm_eps", eps.unwrap_or(1e-5))
        .with("batch_first", batch_first)
        .with("norm_first", flag(n, "norm_first", false)?)
        .with("bias", bias))
}

/// `TransformerEncoder` / `TransformerDecoder`: `layers` (a ModuleList of `num_layers`
/// layers) and an optional LayerNorm `norm`. The children are rebuilt as usual; [`restack`]
/// then turns the list into kiln's one `layer` prototype.
pub(super) fn stack(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    for (name, _) in &n.children {
        require(
            n,
            name == "layers" || name == "norm",
            format_args!("a submodule '{name}'"),
        )?;
    }
    let layers = child_of(n, "layers", &["container.ModuleList"])?;
    let count = layers.children.len();
    require(
        n,
        count > 0 && uint(n, "num_layers")? == count,
        "num_layers that differs from its layers",
    )?;
    if n.children.iter().any(|(k, _)| k == "norm") {
        child_of(n, "norm", &["normalization.LayerNorm"])?;
    }
    Ok(ModuleSpec::new(&n.class_name()).with("num_layers", count))
}

/// Replaces the rebuilt `layers` ModuleList of a Transformer stack by kiln's `layer` child
/// (every layer must have the same spec; the weights of each load afterwards).
pub(super) fn restack(mut spec: ModuleSpec) -> Result<ModuleSpec> {
    let refuse = |what: &str| Error::Unsupported {
        what: format!("{} with {what}", spec.type_name),
    };
    let i = spec
        .children
        .iter()
        .position(|c| c.name == "layers")
        .ok_or_else(|| refuse("no 'layers' submodule"))?;
    let layers = spec.children.remove(i).module;
    let mut it = layers.children.into_iter();
    let first = it.next().ok_or_else(|| refuse("no layers"))?;
    if it.any(|l| l.module != first.module) {
        return Err(refuse(
            "layers whose options differ (kiln's stack repeats one layer)",
        ));
    }
    spec.children.insert(
        i,
        NamedSpec {
            name: "layer".into(),
            module: first.module,
        },
    );
    Ok(spec)
}

/// `LSTM` / `GRU` (`mode` must name the class; `proj_size` only for LSTM).
pub(super) fn rnn(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    let ty = n.class_name();
    let mode = string(n, "mode", &ty)?;
    require(n, mode == ty, format_args!("mode='{mode}'"))?;
    let proj = match n.attr("proj_size") {
        None => 0,
        Some(_) => uint(n, "proj_size")?,
    };
    require(
        n,
        proj == 0 || ty == "LSTM",
        format_args!("proj_size={proj}"),
    )?;
    Ok(ModuleSpec::new(&ty)
        .with("input_size", uint(n, "input_size")?)
        .with("hidden_size", uint(n, "hidden_size")?)
        .with("num_layers", uint(n, "num_layers")?)
        .with("bias", flag(n, "bias", true)?)
        .with("batch_first", flag(n, "batch_first", false)?)
        .with("dropout", float(n, "dropout")?)
        .with("bidirectional", flag(n, "bidirectional", false)?)
        .with("proj_size", proj))
}

/// `LSTMCell` / `GRUCell`.
pub(super) fn rnn_cell(n: &ModuleNode<'_>) -> Result<ModuleSpec> {
    Ok(ModuleSpec::new(&n.class_name())
        .with("input_size", uint(n, "input_size")?)
        .with("hidden_size", uint(n, "hidden_size")?)
        .with("bias", flag(n, "bias", true)?))
}
