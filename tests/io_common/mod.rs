//! Shared by the persistence tests: the canonical description of a loaded value, identical
//! to `scripts/io_describe.py`, so kiln's view of a file can be compared with PyTorch's.

#![allow(dead_code)]

use kiln::io::Value;
use serde_json::{Value as J, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Describes `v` like `io_describe.describe`; tensors larger than `hex_limit` bytes are
/// described by their SHA-256 instead of their bytes (`None`: always bytes).
pub fn describe(v: &Value) -> J {
    describe_with(v, None)
}

/// [`describe`] with tensors over `hex_limit` bytes described by SHA-256.
pub fn describe_with(v: &Value, hex_limit: Option<usize>) -> J {
    let mut ids = HashMap::new();
    walk(v, &mut ids, hex_limit)
}

fn walk(v: &Value, ids: &mut HashMap<usize, usize>, lim: Option<usize>) -> J {
    match v {
        Value::None => json!({"none": null}),
        Value::Bool(b) => json!({"bool": b}),
        Value::Int(i) => json!({"int": i}),
        Value::Float(f) => json!({"float": format!("{:016x}", f.to_bits())}),
        Value::Str(s) => json!({"str": s}),
        Value::Bytes(b) => json!({"bytes": hex(b)}),
        Value::List(items) => {
            json!({"list": items.iter().map(|x| walk(x, ids, lim)).collect::<Vec<_>>()})
        }
        Value::Tuple(items) => {
            json!({"tuple": items.iter().map(|x| walk(x, ids, lim)).collect::<Vec<_>>()})
        }
        Value::Dict(d) => {
            let kind = if d.ordered { "OrderedDict" } else { "dict" };
            let items: Vec<J> = d
                .entries
                .iter()
                .map(|(k, x)| json!([walk(k, ids, lim), walk(x, ids, lim)]))
                .collect();
            let mut o = serde_json::Map::new();
            o.insert(kind.into(), J::Array(items));
            if let Some(m) = &d.metadata {
                o.insert("metadata".into(), walk(m, ids, lim));
            }
            J::Object(o)
        }
        Value::Tensor(t) => {
            let key = Arc::as_ptr(&t.storage) as usize;
            let n = ids.len();
            let id = *ids.entry(key).or_insert(n);
            let bytes = t.contiguous_bytes().expect("view inside storage");
            let (field, data) = match lim {
                Some(l) if bytes.len() > l => {
                    use sha2::Digest;
                    ("sha256", hex(&sha2::Sha256::digest(&bytes)))
                }
                _ => ("hex", hex(&bytes)),
            };
            let mut j = json!({"tensor": {
                "dtype": t.dtype().name(),
                "shape": t.shape,
                "stride": t.stride,
                "offset": t.offset,
                "requires_grad": t.requires_grad,
                "param": t.is_parameter,
                "storage": id,
                "storage_bytes": t.storage.data.len(),
            }});
            j["tensor"][field] = J::String(data);
            j
        }
        Value::DtypeObj(d) => json!({"dtype_obj": d.name()}),
        Value::DeviceObj(s) => json!({"device": s}),
        Value::Object(o) => json!({"object": o.class_path()}),
    }
}

pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/io")
}

pub fn manifest() -> J {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest parses")
}

/// The first place two descriptions differ, for readable failures.
pub fn first_difference(a: &J, b: &J, path: &str) -> Option<String> {
    match (a, b) {
        (J::Object(x), J::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = first_difference(p, q, &format!("{path}.{k}")) {
                            return Some(d);
                        }
                    }
                    (p, q) => return Some(format!("{path}.{k}: {p:?} vs {q:?}")),
                }
            }
            None
        }
        (J::Array(x), J::Array(y)) => {
            if x.len() != y.len() {
                return Some(format!("{path}: length {} vs {}", x.len(), y.len()));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}
