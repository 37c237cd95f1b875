//! A tree walk over a loaded value for `kiln inspect`: every key with its type, and for
//! tensors shape, dtype, storage location tag and element count; totals of elements and of
//! the bytes of distinct storages.

use super::load::Format;
use super::value::{Value, key_string};
use crate::error::shape_str;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Totals of a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Number of tensors.
    pub tensors: usize,
    /// Elements over all tensors (the parameter count of a state dict).
    pub elements: u64,
    /// Bytes of the distinct storages (what the file holds).
    pub bytes: u64,
    /// Number of distinct storages.
    pub storages: usize,
    /// Storages per location tag.
    pub locations: BTreeMap<String, usize>,
}

/// The totals of `v`.
pub fn totals(v: &Value) -> Totals {
    let mut t = Totals::default();
    let mut seen = HashSet::new();
    v.visit_tensors(&mut |_, x| {
        t.tensors += 1;
        t.elements += x.numel() as u64;
        if seen.insert(Arc::as_ptr(&x.storage) as usize) {
            t.storages += 1;
            t.bytes += x.storage.data.len() as u64;
            *t.locations.entry(x.storage.location.clone()).or_default() += 1;
        }
    });
    t
}

/// Characters of a string `kiln inspect` shows.
pub const MAX_SHOWN_CHARS: usize = 200;

fn scalar(v: &Value) -> Option<String> {
    Some(match v {
        Value::None => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        // Bounded output: a long string shows its start and its length.
        Value::Str(s) if s.chars().nth(MAX_SHOWN_CHARS).is_some() => {
            let head: String = s.chars().take(MAX_SHOWN_CHARS).collect();
            format!("{head:?}… ({} bytes)", s.len())
        }
        Value::Str(s) => format!("{s:?}"),
        Value::Bytes(b) => format!("<{} bytes>", b.len()),
        Value::DtypeObj(d) => d.torch_name().into(),
        Value::DeviceObj(d) => format!("device({d:?})"),
        _ => return None,
    })
}

/// An indented text tree of `v`.
pub fn text_tree(v: &Value) -> String {
    let mut out = String::new();
    fn walk(v: &Value, name: &str, indent: usize, out: &mut String) {
        let pad = "  ".repeat(indent);
        match v {
            Value::Tensor(t) => {
                let kind = if t.is_parameter {
                    "Parameter"
                } else {
                    "Tensor"
                };
                let view = if t.is_compact() {
                    String::new()
                } else {
                    format!(" view(offset={}, stride={:?})", t.offset, t.stride)
                };
                out.push_str(&format!(
                    "{pad}{name}: {kind} {} {} {} ({} elements){view}\n",
                    t.dtype().name(),
                    shape_str(&t.shape),
                    t.storage.location,
                    t.numel()
                ));
            }
            Value::Dict(d) => {
                out.push_str(&format!(
                    "{pad}{name}: {} ({} entries)\n",
                    v.type_name(),
                    d.entries.len()
                ));
                for (k, x) in &d.entries {
                    walk(x, &key_string(k), indent + 1, out);
                }
            }
            Value::List(items) | Value::Tuple(items) => {
                if items.iter().all(|x| scalar(x).is_some()) && items.len() <= 8 {
                    let s: Vec<String> = items.iter().filter_map(scalar).collect();
                    let (o, c) = if matches!(v, Value::List(_)) {
                        ("[", "]")
                    } else {
                        ("(", ")")
                    };
                    out.push_str(&format!(
                        "{pad}{name}: {} {o}{}{c}\n",
                        v.type_name(),
                        s.join(", ")
                    ));
                } else {
                    out.push_str(&format!(
                        "{pad}{name}: {} ({} items)\n",
                        v.type_name(),
                        items.len()
                    ));
                    for (i, x) in items.iter().enumerate() {
                        walk(x, &i.to_string(), indent + 1, out);
                    }
                }
            }
            other => {
                out.push_str(&format!(
                    "{pad}{name}: {} {}\n",
                    other.type_name(),
                    scalar(other).unwrap_or_default()
                ));
            }
        }
    }
    walk(v, "<root>", 0, &mut out);
    out
}

/// The JSON tree of `v`: dicts as objects of `{key, value}` lists (keys may repeat types),
/// tensors with dtype, shape, stride, offset, location and element count.
pub fn json_tree(v: &Value) -> serde_json::Value {
    match v {
        Value::Tensor(t) => json!({
            "type": if t.is_parameter { "Parameter" } else { "Tensor" },
            "dtype": t.dtype().name(),
            "shape": t.shape,
            "stride": t.stride,
            "offset": t.offset,
            "location": t.storage.location,
            "elements": t.numel(),
            "requires_grad": t.requires_grad,
        }),
        Value::Dict(d) => json!({
            "type": v.type_name(),
            "entries": d.entries.iter().map(|(k, x)| json!({"key": key_string(k), "value": json_tree(x)})).collect::<Vec<_>>(),
        }),
        Value::List(items) | Value::Tuple(items) => json!({
            "type": v.type_name(),
            "items": items.iter().map(json_tree).collect::<Vec<_>>(),
        }),
        other => json!({"type": other.type_name(), "value": scalar(other)}),
    }
}

/// The whole report as JSON: file, format, tree and totals.
pub fn json_report(file: &str, format: Format, v: &Value) -> serde_json::Value {
    let t = totals(v);
    json!({
        "file": file,
        "format": format.name(),
        "tree": json_tree(v),
        "tensors": t.tensors,
        "total_elements": t.elements,
        "total_bytes": t.bytes,
        "storages": t.storages,
        "locations": t.locations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Dtype, TensorValue};

    #[test]
    fn totals_count_shared_storage_once() {
        let t = TensorValue::from_bytes(Dtype::F32, vec![4], vec![0; 16], "cuda:0").unwrap();
        let view = TensorValue {
            offset: 1,
            shape: vec![2],
            stride: vec![1],
            ..t.clone()
        };
        let v = Value::dict([
            ("a", Value::Tensor(t)),
            ("b", Value::List(vec![Value::Tensor(view), Value::Int(3)])),
        ]);
        let tot = totals(&v);
        assert_eq!(
            (tot.tensors, tot.elements, tot.bytes, tot.storages),
            (2, 6, 16, 1)
        );
        let text = text_tree(&v);
        assert!(
            text.contains("a: Tensor f32 [4] cuda:0 (4 elements)"),
            "{text}"
        );
        assert!(text.contains("view(offset=1"), "{text}");
        let j = json_report("x.pt", Format::TorchZip, &v);
        assert_eq!(j["total_elements"], 6);
    }
}
