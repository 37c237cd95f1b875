//! `print(net)` for a pickled module tree: `nn.Module.__repr__` (with `ModuleList`'s
//! grouping of repeated entries) and the `extra_repr` of the `torch.nn` classes, from the
//! pickled attributes. A class kiln does not know prints its name and children only, as
//! PyTorch does for a class without `extra_repr`.

use super::tree::ModuleNode;
use crate::io::value::Value;

/// Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from
/// 1e16 (`1e-05`, `0.1`, `1.0`, `1e+16`).
pub fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{x:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{x}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    }
}

/// `str.format`'s text of a pickled attribute (`str(v)`): strings unquoted.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        other => py_repr(other),
    }
}

/// `repr(v)` of a pickled attribute.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::None => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => py_float(*f),
        Value::Str(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Tuple(items) if items.len() == 1 => {
            format!("({},)", items.first().map(py_repr).unwrap_or_default())
        }
        Value::Tuple(items) => {
            format!(
                "({})",
                items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
            )
        }
        Value::List(items) => {
            format!(
                "[{}]",
                items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
            )
        }
        Value::DtypeObj(d) => d.torch_name().to_string(),
        Value::DeviceObj(d) => format!("device(type='{d}')"),
        Value::Object(o) => format!("<{}>", o.class_path()),
        other => format!("<{}>", other.type_name()),
    }
}

/// `print(net)`.
pub fn module_repr(n: &ModuleNode<'_>) -> String {
    let name = if n.scripted {
        "RecursiveScriptModule".to_string()
    } else {
        n.class_name()
    };
    let child_reprs: Vec<(String, String)> = n
        .children
        .iter()
        .map(|(k, c)| (k.clone(), c.as_ref().map_or("None".into(), module_repr)))
        .collect();
    if !n.scripted && n.class_path() == "torch.nn.modules.container.ModuleList" {
        return module_list_repr(&name, &child_reprs);
    }
    let extra = extra_repr(n);
    let extra_lines: Vec<&str> = if extra.is_empty() {
        Vec::new()
    } else {
        extra.split('\n').collect()
    };
    let child_lines: Vec<String> = child_reprs
        .iter()
        .map(|(k, r)| format!("({k}): {}", add_indent(r, 2)))
        .collect();
    let mut out = format!("{name}(");
    if extra_lines.len() == 1 && child_lines.is_empty() {
        out.push_str(extra_lines.first().copied().unwrap_or_default());
    } else if !extra_lines.is_empty() || !child_lines.is_empty() {
        let lines: Vec<String> = extra_lines
            .iter()
            .map(|s| s.to_string())
            .chain(child_lines)
            .collect();
        out.push_str("\n  ");
        out.push_str(&lines.join("\n  "));
        out.push('\n');
    }
    out.push(')');
    out
}

fn module_list_repr(name: &str, children: &[(String, String)]) -> String {
    if children.is_empty() {
        return format!("{name}()");
    }
    // (start, end, repr) runs of equal reprs.
    let mut runs: Vec<(usize, usize, &str)> = Vec::new();
    for (i, (_, r)) in children.iter().enumerate() {
        match runs.last_mut() {
            Some(last) if last.2 == r.as_str() => last.1 = i,
            _ => runs.push((i, i, r)),
        }
    }
    let lines: Vec<String> = runs
        .iter()
        .map(|&(s, e, b)| {
            let l = if s == e {
                format!("({s}): {b}")
            } else {
                format!("({s}-{e}): {} x {b}", e - s + 1)
            };
            add_indent(&l, 2)
        })
        .collect();
    format!("{name}(\n  {}\n)", lines.join("\n  "))
}

/// PyTorch's `_addindent`.
fn add_indent(s: &str, n: usize) -> String {
    let mut lines = s.split('\n');
    let first = lines.next().unwrap_or_default();
    let rest: Vec<String> = lines
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                format!("{}{l}", " ".repeat(n))
            }
        })
        .collect();
    if rest.is_empty() {
        return s.to_string();
    }
    format!("{first}\n{}", rest.join("\n"))
}

fn has_param(n: &ModuleNode<'_>, name: &str) -> bool {
    n.params.iter().any(|(k, t)| k == name && t.is_some())
}

/// The `extra_repr` of the `torch.nn` classes kiln knows, from the pickled attributes.
pub fn extra_repr(n: &ModuleNode<'_>) -> String {
    if n.scripted {
        return format!("original_name={}", n.class_name());
    }
    let path = n.class_path();
    let a = |k: &str| n.attr(k).map(py_str).unwrap_or_else(|| "None".into());
    if path == "torchvision.ops.stochastic_depth.StochasticDepth" {
        // Its `__repr__`: `StochasticDepth(p=0.2, mode=row)`.
        return format!("p={}, mode={}", a("p"), a("mode"));
    }
    if !path.starts_with("torch.nn.modules.") {
        return String::new();
    }
    let r = |k: &str| n.attr(k).map(py_repr).unwrap_or_else(|| "None".into());
    let is = |k: &str| n.attr(k).and_then(Value::as_bool).unwrap_or(false);
    let inplace = |prefix: &str| {
        if is("inplace") {
            format!("{prefix}inplace=True")
        } else {
            String::new()
        }
    };
    let not_all = |k: &str, v: i64| match n.attr(k) {
        Some(Value::Tuple(items)) => items.iter().any(|x| x.as_i64() != Some(v)),
        Some(x) => x.as_i64() != Some(v),
        None => false,
    };
    let name = n.class_name();
    match name.as_str() {
        "Linear" | "LazyLinear" | "NonDynamicallyQuantizableLinear" => format!(
            "in_features={}, out_features={}, bias={}",
            a("in_features"),
            a("out_features"),
            py_repr(&Value::Bool(has_param(n, "bias")))
        ),
        "Conv1d" | "Conv2d" | "Conv3d" | "ConvTranspose1d" | "ConvTranspose2d"
        | "ConvTranspose3d" => {
            let mut s = format!(
                "{}, {}, kernel_size={}, stride={}",
                a("in_channels"),
                a("out_channels"),
                a("kernel_size"),
                a("stride")
            );
            if matches!(n.attr("padding"), Some(Value::Str(_))) || not_all("padding", 0) {
                s += &format!(", padding={}", a("padding"));
            }
            if not_all("dilation", 1) {
                s += &format!(", dilation={}", a("dilation"));
            }
            if not_all("output_padding", 0) {
                s += &format!(", output_padding={}", a("output_padding"));
            }
            if n.attr("groups").and_then(Value::as_i64) != Some(1) {
                s += &format!(", groups={}", a("groups"));
            }
            if !has_param(n, "bias") {
                s += ", bias=False";
            }
            if n.attr("padding_mode").and_then(Value::as_str) != Some("zeros") {
                s += &format!(", padding_mode={}", a("padding_mode"));
            }
            s
        }
        "BatchNorm1d" | "BatchNorm2d" | "BatchNorm3d" | "InstanceNorm1d" | "InstanceNorm2d"
        | "InstanceNorm3d" | "SyncBatchNorm" => format!(
            "{}, eps={}, momentum={}, affine={}, bias={}, track_running_stats={}",
            a("num_features"),
            a("eps"),
            a("momentum"),
            a("affine"),
            py_repr(&Value::Bool(has_param(n, "bias"))),
            a("track_running_stats")
        ),
        "LayerNorm" => format!(
            "{}, eps={}, elementwise_affine={}, bias={}",
            a("normalized_shape"),
            a("eps"),
            a("elementwise_affine"),
            py_repr(&Value::Bool(has_param(n, "bias")))
        ),
        "Embedding" => {
            let mut s = format!("{}, {}", a("num_embeddings"), a("embedding_dim"));
            if !matches!(n.attr("padding_idx"), None | Some(Value::None)) {
                s += &format!(", padding_idx={}", a("padding_idx"));
            }
            if !matches!(n.attr("max_norm"), None | Some(Value::None)) {
                s += &format!(", max_norm={}", a("max_norm"));
            }
            if n.attr("norm_type").and_then(Value::as_f64) != Some(2.0) {
                s += &format!(", norm_type={}", a("norm_type"));
            }
            if is("scale_grad_by_freq") {
                s += ", scale_grad_by_freq=True";
            }
            if is("sparse") {
                s += ", sparse=True";
            }
            s
        }
        "ReLU" | "SiLU" | "ReLU6" | "SELU" | "Mish" => inplace(""),
        "Dropout" | "Dropout1d" | "Dropout2d" | "Dropout3d" | "AlphaDropout" => {
            format!("p={}, inplace={}", a("p"), a("inplace"))
        }
        "MaxPool1d" | "MaxPool2d" | "MaxPool3d" => format!(
            "kernel_size={}, stride={}, padding={}, dilation={}, ceil_mode={}",
            a("kernel_size"),
            a("stride"),
            a("padding"),
            a("dilation"),
            a("ceil_mode")
        ),
        "AvgPool1d" | "AvgPool2d" | "AvgPool3d" => format!(
            "kernel_size={}, stride={}, padding={}",
            a("kernel_size"),
            a("stride"),
            a("padding")
        ),
        "AdaptiveAvgPool1d" | "AdaptiveAvgPool2d" | "AdaptiveAvgPool3d" | "AdaptiveMaxPool1d"
        | "AdaptiveMaxPool2d" | "AdaptiveMaxPool3d" => format!("output_size={}", a("output_size")),
        "Flatten" => format!("start_dim={}, end_dim={}", a("start_dim"), a("end_dim")),
        "GELU" => format!("approximate={}", r("approximate")),
        "LeakyReLU" => format!("negative_slope={}{}", a("negative_slope"), inplace(", ")),
        "ELU" => format!("alpha={}{}", a("alpha"), inplace(", ")),
        "Hardtanh" => format!(
            "min_val={}, max_val={}{}",
            a("min_val"),
            a("max_val"),
            inplace(", ")
        ),
        "Softmax" | "LogSoftmax" | "Softmin" => format!("dim={}", a("dim")),
        "Softplus" => format!("beta={}, threshold={}", a("beta"), a("threshold")),
        "GroupNorm" => format!(
            "{}, {}, eps={}, affine={}, bias={}",
            a("num_groups"),
            a("num_channels"),
            a("eps"),
            a("affine"),
            py_repr(&Value::Bool(has_param(n, "bias")))
        ),
        "RMSNorm" => format!(
            "{}, eps={}, elementwise_affine={}",
            a("normalized_shape"),
            a("eps"),
            a("elementwise_affine")
        ),
        "Upsample" | "UpsamplingNearest2d" | "UpsamplingBilinear2d" => {
            let target = match n.attr("scale_factor") {
                None | Some(Value::None) => format!("size={}", r("size")),
                Some(_) => format!("scale_factor={}", r("scale_factor")),
            };
            format!("{target}, mode={}", r("mode"))
        }
        "Unflatten" => format!(
            "dim={}, unflattened_size={}",
            a("dim"),
            a("unflattened_size")
        ),
        "LSTM" | "GRU" | "RNN" => rnn_repr(n),
        "LSTMCell" | "GRUCell" | "RNNCell" => {
            let mut s = format!("{}, {}", a("input_size"), a("hidden_size"));
            if n.attr("bias").and_then(Value::as_bool) != Some(true) {
                s += &format!(", bias={}", a("bias"));
            }
            if n.attr("nonlinearity")
                .is_some_and(|v| v.as_str() != Some("tanh"))
            {
                s += &format!(", nonlinearity={}", a("nonlinearity"));
            }
            s
        }
        _ => String::new(),
    }
}

/// `RNNBase.extra_repr`: the options that differ from the defaults.
fn rnn_repr(n: &ModuleNode<'_>) -> String {
    let a = |k: &str| n.attr(k).map(py_str).unwrap_or_else(|| "None".into());
    let mut s = format!("{}, {}", a("input_size"), a("hidden_size"));
    if n.attr("proj_size").and_then(Value::as_i64).unwrap_or(0) != 0 {
        s += &format!(", proj_size={}", a("proj_size"));
    }
    if n.attr("num_layers").and_then(Value::as_i64) != Some(1) {
        s += &format!(", num_layers={}", a("num_layers"));
    }
    if n.attr("bias").and_then(Value::as_bool) != Some(true) {
        s += &format!(", bias={}", a("bias"));
    }
    if n.attr("batch_first").and_then(Value::as_bool) != Some(false) {
        s += &format!(", batch_first={}", a("batch_first"));
    }
    if n.attr("dropout").and_then(Value::as_f64) != Some(0.0) {
        s += &format!(", dropout={}", a("dropout"));
    }
    if n.attr("bidirectional").and_then(Value::as_bool) != Some(false) {
        s += &format!(", bidirectional={}", a("bidirectional"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::py_float;

    #[test]
    fn python_float_repr() {
        for (x, s) in [
            (1e-5, "1e-05"),
            (0.1, "0.1"),
            (1.0, "1.0"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123.5, "123.5"),
            (1e-12, "1e-12"),
            (2.5e-7, "2.5e-07"),
        ] {
            assert_eq!(py_float(x), s);
        }
    }
}
