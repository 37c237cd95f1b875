//! The directory form of a checkpoint: `tensors.safetensors` (every tensor, under its
//! path in the value) plus `checkpoint.json` (the structure, with typed markers for what
//! JSON cannot say on its own: tuples, integer dict keys, tensors, bytes). Handy for tools
//! that read safetensors and JSON but not pickles; `Checkpoint::load` accepts either form.

use crate::error::{Error, Result};
use crate::io::value::{Dict, TensorValue};
use crate::io::{Dtype, LoadOptions, Value, atomic_write_bytes};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;
use std::path::Path;

/// File holding the structure.
pub const JSON_FILE: &str = "checkpoint.json";
/// File holding the tensors.
pub const TENSORS_FILE: &str = "tensors.safetensors";

fn encode(v: &Value, path: &str, tensors: &mut Vec<(String, TensorValue)>) -> Json {
    let child = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::None => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!({ "int": i.to_string() }),
        Value::Float(f) => json!({ "float": format!("{:?}", f) }),
        Value::Str(s) => json!(s),
        Value::Bytes(b) => {
            json!({ "bytes": b.iter().map(|x| format!("{x:02x}")).collect::<String>() })
        }
        Value::List(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| encode(x, &child(&i.to_string()), tensors))
                .collect(),
        ),
        Value::Tuple(items) => json!({ "tuple": items
            .iter()
            .enumerate()
            .map(|(i, x)| encode(x, &child(&i.to_string()), tensors))
            .collect::<Vec<_>>() }),
        Value::Dict(d) => {
            let entries: Vec<Json> = d
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, x))| {
                    let name = match k {
                        Value::Str(s) => s.clone(),
                        Value::Int(n) => n.to_string(),
                        _ => format!("#{i}"),
                    };
                    Json::Array(vec![
                        encode(k, "", &mut Vec::new()),
                        encode(x, &child(&name), tensors),
                    ])
                })
                .collect();
            let mut m = Map::new();
            m.insert("dict".into(), Json::Array(entries));
            m.insert("ordered".into(), json!(d.ordered));
            if let Some(meta) = &d.metadata {
                m.insert(
                    "metadata".into(),
                    encode(meta, &child("_metadata"), tensors),
                );
            }
            Json::Object(m)
        }
        Value::Tensor(t) => {
            let key = format!("{}#{}", path, tensors.len());
            tensors.push((key.clone(), t.clone()));
            json!({ "tensor": key, "requires_grad": t.requires_grad, "parameter": t.is_parameter, "location": t.storage.location })
        }
        Value::DtypeObj(d) => json!({ "dtype": d.name() }),
        Value::DeviceObj(s) => json!({ "device": s }),
        Value::Object(o) => json!({ "object": o.class_path() }),
    }
}

fn decode(j: &Json, tensors: &BTreeMap<String, TensorValue>) -> Result<Value> {
    let bad = |what: &str| Error::Schema {
        path: JSON_FILE.into(),
        detail: format!("malformed entry: {what}"),
    };
    Ok(match j {
        Json::Null => Value::None,
        Json::Bool(b) => Value::Bool(*b),
        Json::String(s) => Value::Str(s.clone()),
        Json::Number(_) => return Err(bad("bare number")),
        Json::Array(items) => Value::List(
            items
                .iter()
                .map(|x| decode(x, tensors))
                .collect::<Result<_>>()?,
        ),
        Json::Object(m) => {
            if let Some(s) = m.get("int").and_then(Json::as_str) {
                Value::Int(s.parse().map_err(|_| bad("int"))?)
            } else if let Some(s) = m.get("float").and_then(Json::as_str) {
                Value::Float(parse_float(s).ok_or_else(|| bad("float"))?)
            } else if let Some(s) = m.get("bytes").and_then(Json::as_str) {
                let raw = s.as_bytes();
                let mut out = Vec::with_capacity(raw.len() / 2);
                for c in raw.chunks(2) {
                    let h = std::str::from_utf8(c).map_err(|_| bad("bytes"))?;
                    out.push(u8::from_str_radix(h, 16).map_err(|_| bad("bytes"))?);
                }
                Value::Bytes(out)
            } else if let Some(items) = m.get("tuple").and_then(Json::as_array) {
                Value::Tuple(
                    items
                        .iter()
                        .map(|x| decode(x, tensors))
                        .collect::<Result<_>>()?,
                )
            } else if let Some(entries) = m.get("dict").and_then(Json::as_array) {
                let mut d = Dict {
                    ordered: m.get("ordered").and_then(Json::as_bool).unwrap_or(false),
                    ..Default::default()
                };
                for e in entries {
                    let pair = e
                        .as_array()
                        .filter(|p| p.len() == 2)
                        .ok_or_else(|| bad("dict entry"))?;
                    d.entries
                        .push((decode(&pair[0], tensors)?, decode(&pair[1], tensors)?));
                }
                if let Some(meta) = m.get("metadata") {
                    d.metadata = Some(Box::new(decode(meta, tensors)?));
                }
                Value::Dict(d)
            } else if let Some(key) = m.get("tensor").and_then(Json::as_str) {
                let mut t = tensors
                    .get(key)
                    .cloned()
                    .ok_or_else(|| bad(&format!("tensor '{key}' not in {TENSORS_FILE}")))?;
                t.requires_grad = m
                    .get("requires_grad")
                    .and_then(Json::as_bool)
                    .unwrap_or(false);
                t.is_parameter = m.get("parameter").and_then(Json::as_bool).unwrap_or(false);
                Value::Tensor(t)
            } else if let Some(d) = m.get("dtype").and_then(Json::as_str) {
                Value::DtypeObj(Dtype::parse(d)?)
            } else if let Some(d) = m.get("device").and_then(Json::as_str) {
                Value::DeviceObj(d.to_string())
            } else {
                return Err(bad("unknown object"));
            }
        }
    })
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Writes `value` as a checkpoint directory (each file atomically; the JSON last, so a
/// directory with a JSON file is complete).
///
/// # Errors
/// `K0002` on I/O failure.
pub fn save_dir(value: &Value, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let mut tensors = Vec::new();
    let structure = encode(value, "", &mut tensors);
    let refs: Vec<(String, &TensorValue)> = tensors.iter().map(|(k, t)| (k.clone(), t)).collect();
    crate::io::save_safetensors(&refs, &BTreeMap::new(), &dir.join(TENSORS_FILE))?;
    let text = serde_json::to_vec_pretty(&json!({
        "kiln_checkpoint_dir": 1,
        "value": structure,
    }))
    .map_err(|e| Error::invalid("checkpoint JSON", e, "serialisable"))?;
    atomic_write_bytes(&dir.join(JSON_FILE), &text)
}

/// Reads a checkpoint directory back into a value.
///
/// # Errors
/// `K0501`–`K0507` as the files' readers; `K0507` for a malformed JSON structure.
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Value> {
    let jpath = dir.join(JSON_FILE);
    let text = std::fs::read(&jpath).map_err(|e| Error::io("reading", &jpath, e))?;
    let j: Json = serde_json::from_slice(&text).map_err(|e| Error::Schema {
        path: jpath.display().to_string(),
        detail: format!("not valid JSON: {e}"),
    })?;
    let tv = crate::io::load(dir.join(TENSORS_FILE), opts)?;
    let mut tensors = BTreeMap::new();
    if let Some(d) = tv.as_dict() {
        for (k, v) in &d.entries {
            if let (Some(k), Some(t)) = (k.as_str(), v.as_tensor()) {
                tensors.insert(k.to_string(), t.clone());
            }
        }
    }
    decode(j.get("value").unwrap_or(&Json::Null), &tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_round_trip_through_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let t =
            TensorValue::from_bytes(Dtype::F32, vec![2], vec![0, 0, 128, 63, 0, 0, 0, 64], "cpu")
                .unwrap();
        let mut state = Dict::default();
        state.entries.push((
            Value::Int(0),
            Value::dict([("momentum_buffer", Value::Tensor(t.clone()))]),
        ));
        let v = Value::dict([
            ("epoch", Value::Int(3)),
            ("loss", Value::Float(0.1)),
            ("nan", Value::Float(f64::NAN)),
            (
                "betas",
                Value::Tuple(vec![Value::Float(0.9), Value::Float(0.999)]),
            ),
            ("state", Value::Dict(state)),
            ("w", Value::Tensor(t)),
            ("none", Value::None),
            ("dtype", Value::DtypeObj(Dtype::BF16)),
        ]);
        save_dir(&v, dir.path()).unwrap();
        let back = load_dir(dir.path(), &LoadOptions::new()).unwrap();
        assert_eq!(back, v);
        assert!(
            back.get("state")
                .unwrap()
                .as_dict()
                .unwrap()
                .get_int(0)
                .is_some()
        );
    }
}
