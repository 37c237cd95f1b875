//! Hugging Face sharded checkpoints: a directory (or its index file) holding
//! `model.safetensors.index.json` or `pytorch_model.bin.index.json` — `{"metadata":
//! {"total_size": N}, "weight_map": {key: shard file}}` — and the shards it names, read as
//! one state dict; and [`save_sharded`], which splits a state dict into
//! `model-00001-of-0000N.safetensors` shards plus the index as `save_pretrained` does.

use super::load::{LoadOptions, Loaded, load_file, pick_state_dict};
use super::safetensors::flat_tensors;
use super::save::save_safetensors;
use super::value::{Dict, TensorValue, Value};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Index file names, in the order a directory is searched.
pub const INDEX_NAMES: [&str; 2] = [
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
];

/// Largest index file read (the index of a 1000-shard model is a few MB).
const MAX_INDEX_BYTES: u64 = 64 << 20;

/// The index file of a sharded checkpoint at `path`: `path` itself when it is an
/// `*.index.json` file, else the first of [`INDEX_NAMES`] inside the directory `path`.
pub fn index_of(path: &Path) -> Option<PathBuf> {
    if path.is_dir() {
        return INDEX_NAMES
            .iter()
            .map(|n| path.join(n))
            .find(|p| p.is_file());
    }
    let name = path.file_name()?.to_str()?;
    (name.ends_with(".index.json") && path.is_file()).then(|| path.to_path_buf())
}

fn schema(path: &Path, detail: impl Into<String>) -> Error {
    Error::Schema {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// Reads the sharded checkpoint whose index is `index` as one state dict: the shards in
/// the order the weight map first names them, each shard's tensors in file order.
///
/// # Errors
/// `K0507` for a malformed index, a shard name that leaves the directory, a key the index
/// names that its shard lacks, or a key in two shards; the loading errors of each shard.
pub fn load_sharded(index: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let len = std::fs::metadata(index)
        .map_err(|e| Error::io("reading", index, e))?
        .len();
    if len > MAX_INDEX_BYTES {
        return Err(schema(
            index,
            format!("index of {len} bytes is larger than {MAX_INDEX_BYTES}"),
        ));
    }
    let text = std::fs::read_to_string(index).map_err(|e| Error::io("reading", index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| schema(index, format!("index is not JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| schema(index, "index has no 'weight_map' object"))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut shards: Vec<&str> = Vec::new();
    let mut seen_shard = HashSet::new();
    for (key, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| schema(index, format!("weight_map['{key}'] is not a file name")))?;
        let plain = Path::new(file)
            .file_name()
            .is_some_and(|n| n == std::ffi::OsStr::new(file));
        if !plain || file == ".." || file.ends_with(".index.json") {
            return Err(schema(
                index,
                format!("shard '{file}' is not a file name in the index's directory"),
            ));
        }
        if seen_shard.insert(file) {
            shards.push(file);
        }
    }
    let mut entries: Vec<(Value, Value)> = Vec::new();
    let mut keys = HashSet::new();
    let mut format = None;
    for file in shards {
        let shard = dir.join(file);
        let loaded = load_file(&shard, opts)?;
        format.get_or_insert(loaded.format);
        let p = shard.display().to_string();
        let sd = pick_state_dict(&loaded.value, &p)?;
        let Some(d) = sd.as_dict() else { continue };
        for (k, v) in &d.entries {
            let name = k.as_str().unwrap_or_default().to_string();
            if !keys.insert(name.clone()) {
                return Err(schema(index, format!("key '{name}' is in two shards")));
            }
            entries.push((k.clone(), v.clone()));
        }
    }
    for (key, file) in map {
        if !keys.contains(key) {
            return Err(schema(
                index,
                format!(
                    "the index puts '{key}' in {} but that shard does not hold it",
                    file.as_str().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(Loaded {
        value: Value::Dict(Dict {
            entries,
            ordered: true,
            metadata: None,
        }),
        format: format.unwrap_or(super::load::Format::Safetensors),
        metadata: BTreeMap::new(),
    })
}

/// Parses a shard size as `save_pretrained` does: `5GB` (10⁹), `500MB`, `2GiB` (2³⁰),
/// `100KB`, or plain bytes.
///
/// # Errors
/// `K0003` for anything else.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let units: [(&str, u64); 8] = [
        ("GIB", 1 << 30),
        ("MIB", 1 << 20),
        ("KIB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
        ("B", 1),
        ("", 1),
    ];
    for (u, mult) in units {
        if let Some(num) = upper.strip_suffix(u) {
            if let Ok(n) = num.trim().parse::<u64>() {
                if let Some(v) = n.checked_mul(mult).filter(|v| *v > 0) {
                    return Ok(v);
                }
            }
        }
    }
    Err(Error::invalid(
        "--max-shard-size",
        s,
        "a positive size like 5GB, 500MB, 2GiB or a number of bytes",
    ))
}

fn bytes_of(t: &TensorValue) -> u64 {
    (t.numel() * t.dtype().size()) as u64
}

/// Writes `sd` (a dict of tensors) into directory `dir` as `save_pretrained` does: shards of
/// at most `max_shard` bytes (a tensor larger than that gets a shard of its own), named
/// `model-00001-of-0000N.safetensors`, plus `model.safetensors.index.json`
/// (`{"metadata": {"total_size"}, "weight_map"}`, keys sorted); a single shard is written
/// as `model.safetensors` with no index. Returns the files written.
///
/// # Errors
/// `K0002` on I/O failure, `K0507` when `sd` is not a dict of tensors.
pub fn save_sharded(sd: &Value, dir: &Path, max_shard: u64) -> Result<Vec<PathBuf>> {
    let tensors = flat_tensors(sd)?;
    let mut shards: Vec<Vec<(String, &TensorValue)>> = vec![Vec::new()];
    let mut size = 0u64;
    for (k, t) in tensors {
        let b = bytes_of(t);
        if size + b > max_shard && shards.last().is_some_and(|s| !s.is_empty()) {
            shards.push(Vec::new());
            size = 0;
        }
        size += b;
        if let Some(s) = shards.last_mut() {
            s.push((k, t));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    if shards.len() == 1 {
        let p = dir.join("model.safetensors");
        save_safetensors(shards.first().map_or(&[][..], |s| s), &meta, &p)?;
        return Ok(vec![p]);
    }
    let n = shards.len();
    let mut weight_map = BTreeMap::new();
    let mut total = 0u64;
    let mut out = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        let name = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        for (k, t) in s {
            weight_map.insert(k.clone(), name.clone());
            total += bytes_of(t);
        }
        let p = dir.join(&name);
        save_safetensors(s, &meta, &p)?;
        out.push(p);
    }
    let index = serde_json::json!({
        "metadata": {"total_size": total},
        "weight_map": weight_map,
    });
    let text = serde_json::to_string_pretty(&index).unwrap_or_default() + "\n";
    let p = dir.join("model.safetensors.index.json");
    super::atomic::atomic_write_bytes(&p, text.as_bytes())?;
    out.push(p);
    Ok(out)
}
