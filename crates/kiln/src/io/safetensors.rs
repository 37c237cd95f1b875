//! safetensors read and write. The header is parsed and validated by the `safetensors`
//! crate (offsets must tile the data exactly); tensor data is read straight into each
//! tensor's buffer, or left in a memory map (lazy loading).
//!
//! Writing follows the crate's layout (tensors sorted by dtype alignment, then name; header
//! padded with spaces to 8 bytes) with `__metadata__ = {"format": "pt", …}`, and streams the
//! data without an intermediate copy. safetensors has no views or shared storages: each
//! tensor is written contiguously.

use super::budget::Budget;
use super::torch_zip::Backing;
use super::value::{Bytes, Dict, Dtype, Storage, TensorValue, Value, key_string};
use crate::error::{Error, Result};
use safetensors::tensor::{Metadata, TensorInfo};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

/// Largest header accepted (the crate's limit).
pub const MAX_HEADER: u64 = 100_000_000;

/// Whether `head` (the first bytes of a file) looks like safetensors: a little-endian u64
/// header length followed by `{`.
pub fn looks_like(head: &[u8]) -> bool {
    let Some(n) = head.get(..8) else {
        return false;
    };
    let mut a = [0u8; 8];
    a.copy_from_slice(n);
    let n = u64::from_le_bytes(a);
    head.get(8) == Some(&b'{') && (2..=MAX_HEADER).contains(&n)
}

fn to_st(d: Dtype) -> Result<safetensors::Dtype> {
    use safetensors::Dtype as S;
    Ok(match d {
        Dtype::F64 => S::F64,
        Dtype::F32 => S::F32,
        Dtype::F16 => S::F16,
        Dtype::BF16 => S::BF16,
        Dtype::I64 => S::I64,
        Dtype::I32 => S::I32,
        Dtype::I16 => S::I16,
        Dtype::I8 => S::I8,
        Dtype::U8 => S::U8,
        Dtype::Bool => S::BOOL,
        Dtype::U16 => S::U16,
        Dtype::U32 => S::U32,
        Dtype::U64 => S::U64,
        Dtype::F8E4M3FN => S::F8_E4M3,
        Dtype::F8E5M2 => S::F8_E5M2,
        Dtype::F8E4M3FNUZ => S::F8_E4M3FNUZ,
        Dtype::F8E5M2FNUZ => S::F8_E5M2FNUZ,
        Dtype::C64 => S::C64,
        Dtype::C128 => {
            return Err(Error::Unsupported {
                what:
                    "complex128 tensors in safetensors (the format has no such dtype; save as .pt)"
                        .into(),
            });
        }
    })
}

fn from_st(d: safetensors::Dtype, path: &str) -> Result<Dtype> {
    use safetensors::Dtype as S;
    Ok(match d {
        S::F64 => Dtype::F64,
        S::F32 => Dtype::F32,
        S::F16 => Dtype::F16,
        S::BF16 => Dtype::BF16,
        S::I64 => Dtype::I64,
        S::I32 => Dtype::I32,
        S::I16 => Dtype::I16,
        S::I8 => Dtype::I8,
        S::U8 => Dtype::U8,
        S::BOOL => Dtype::Bool,
        S::U16 => Dtype::U16,
        S::U32 => Dtype::U32,
        S::U64 => Dtype::U64,
        S::F8_E4M3 => Dtype::F8E4M3FN,
        S::F8_E5M2 => Dtype::F8E5M2,
        S::F8_E4M3FNUZ => Dtype::F8E4M3FNUZ,
        S::F8_E5M2FNUZ => Dtype::F8E5M2FNUZ,
        S::C64 => Dtype::C64,
        other => {
            return Err(Error::Unsupported {
                what: format!("safetensors dtype {other:?} in '{path}'"),
            });
        }
    })
}

/// The tensors of a flat dict (string keys, tensor values), in order.
///
/// # Errors
/// `K0507` naming the first key that is not a string or whose value is not a tensor.
pub fn flat_tensors(v: &Value) -> Result<Vec<(String, &TensorValue)>> {
    let d = v.as_dict().ok_or_else(|| Error::Schema {
        path: String::new(),
        detail: format!(
            "safetensors holds a dict of tensors, not a {}",
            v.type_name()
        ),
    })?;
    let mut out = Vec::with_capacity(d.entries.len());
    for (k, x) in &d.entries {
        let key = k.as_str().ok_or_else(|| Error::Schema {
            path: String::new(),
            detail: format!("safetensors keys are strings, found {}", key_string(k)),
        })?;
        let t = x.as_tensor().ok_or_else(|| Error::Schema {
            path: String::new(),
            detail: format!(
                "'{key}' holds a {}: safetensors holds only tensors (pick the state dict of a checkpoint first)",
                x.type_name()
            ),
        })?;
        out.push((key.to_string(), t));
    }
    Ok(out)
}

/// Writes `tensors` with the `__metadata__` entries `metadata` (`format: pt` is added).
///
/// # Errors
/// `K0002` on write failures; `K0507` for duplicate names or views outside their storage.
pub fn write(
    tensors: &[(String, &TensorValue)],
    metadata: &BTreeMap<String, String>,
    w: &mut dyn Write,
    path: &str,
) -> Result<()> {
    let dtypes: Vec<safetensors::Dtype> = tensors
        .iter()
        .map(|(_, t)| to_st(t.dtype()))
        .collect::<Result<_>>()?;
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        let (na, nb) = (&tensors[a].0, &tensors[b].0);
        dtypes[b].cmp(&dtypes[a]).then(na.cmp(nb))
    });
    let mut header = serde_json::Map::new();
    let mut meta = serde_json::Map::new();
    meta.insert("format".into(), "pt".into());
    for (k, v) in metadata {
        meta.insert(k.clone(), v.clone().into());
    }
    header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    let mut offset = 0usize;
    let mut datas = Vec::with_capacity(tensors.len());
    for &i in &order {
        let (name, t) = &tensors[i];
        if header.contains_key(name) {
            return Err(Error::Schema {
                path: path.to_string(),
                detail: format!("tensor name '{name}' appears twice"),
            });
        }
        let data = t.contiguous_bytes().map_err(|e| match e {
            Error::Schema { detail, .. } => Error::Schema {
                path: path.to_string(),
                detail: format!("{name}: {detail}"),
            },
            other => other,
        })?;
        let end = offset + data.len();
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": dtypes[i],
                "shape": t.shape,
                "data_offsets": [offset, end],
            }),
        );
        offset = end;
        datas.push(data);
    }
    let mut h = serde_json::to_vec(&header).map_err(|e| Error::Schema {
        path: path.to_string(),
        detail: format!("safetensors header: {e}"),
    })?;
    h.resize(h.len().next_multiple_of(8), b' ');
    let io = |e| Error::io("writing", path, e);
    w.write_all(&(h.len() as u64).to_le_bytes()).map_err(io)?;
    w.write_all(&h).map_err(io)?;
    for d in &datas {
        w.write_all(d).map_err(io)?;
    }
    w.flush().map_err(io)
}

fn map_err(e: safetensors::SafeTensorError, path: &str) -> Error {
    use safetensors::SafeTensorError as S;
    match e {
        S::MetadataIncompleteBuffer | S::HeaderTooSmall => Error::Truncated {
            path: path.to_string(),
            detail: format!("safetensors data is shorter than its header says ({e})"),
        },
        other => Error::Corrupt {
            path: path.to_string(),
            detail: format!("bad safetensors header: {other}"),
        },
    }
}

/// Reads a safetensors file: an ordered dict of tensors (in data order) and the
/// `__metadata__` strings. `locate` maps the location tag (`cpu`).
///
/// # Errors
/// `K0501` when the data is shorter than the header says, `K0502` for a bad header.
pub fn read(
    backing: &Backing,
    path: &str,
    locate: &mut dyn FnMut(&str) -> Result<String>,
) -> Result<(Value, BTreeMap<String, String>)> {
    let budget = Budget::new(path, backing.source().len(), None);
    read_with(backing, path, locate, &budget)
}

/// Memory the parsed header may take per byte of header JSON (names, shapes, the index).
pub const HEADER_COST: u64 = 8;

/// [`read`] charging the header (and the tensor values made from it) to `budget`.
///
/// # Errors
/// As [`read`], plus `K0508` when the budget is exceeded.
pub fn read_with(
    backing: &Backing,
    path: &str,
    locate: &mut dyn FnMut(&str) -> Result<String>,
    budget: &Budget,
) -> Result<(Value, BTreeMap<String, String>)> {
    let src = backing.source();
    let len = src.len();
    if len < 8 {
        return Err(Error::Truncated {
            path: path.to_string(),
            detail: format!("{len} bytes: too short for a safetensors header"),
        });
    }
    let mut n = [0u8; 8];
    src.read_at(0, &mut n)?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER {
        return Err(Error::Corrupt {
            path: path.to_string(),
            detail: format!("safetensors header of {n} bytes exceeds the limit {MAX_HEADER}"),
        });
    }
    if n + 8 > len {
        return Err(Error::Truncated {
            path: path.to_string(),
            detail: format!("the header announces {n} bytes, the file has {len}"),
        });
    }
    budget.charge(
        n.saturating_mul(HEADER_COST),
        &format_args!("the safetensors header of {n} bytes"),
    )?;
    let mut header = vec![0u8; n as usize];
    src.read_at(8, &mut header)?;
    let meta: Metadata = serde_json::from_slice(&header).map_err(|e| Error::Corrupt {
        path: path.to_string(),
        detail: format!("bad safetensors header: {e}"),
    })?;
    let data_start = 8 + n;
    let data_len = meta.data_len() as u64;
    if data_start + data_len != len {
        let e = if data_start + data_len > len {
            safetensors::SafeTensorError::MetadataIncompleteBuffer
        } else {
            safetensors::SafeTensorError::InvalidHeaderLength
        };
        return Err(map_err(e, path));
    }
    let location = locate("cpu")?;
    let mut entries = Vec::new();
    for name in meta.offset_keys() {
        let Some(info) = meta.info(&name) else {
            continue;
        };
        let TensorInfo {
            dtype,
            shape,
            data_offsets: (a, b),
        } = info.clone();
        let dtype = from_st(dtype, path)?;
        budget.charge(
            (std::mem::size_of::<TensorValue>() + name.len() + 16 * shape.len()) as u64,
            &"the tensors of the safetensors header",
        )?;
        let start = data_start + a as u64;
        let bytes = match backing {
            Backing::Map(m) => Bytes::Mapped {
                map: m.clone(),
                start: start as usize,
                len: b - a,
            },
            Backing::File(_) | Backing::Memory(_) => {
                let typed = match crate::io::typed::enabled() {
                    true => crate::io::typed::read_storage(dtype, b - a, |dst| {
                        src.read_into_uninit(start, dst, false).map(|_| ())
                    })?,
                    false => None,
                };
                match typed {
                    Some(bytes) => bytes,
                    None => Bytes::Owned(Arc::new(src.read_new(start, b - a)?)),
                }
            }
        };
        let t = TensorValue {
            stride: super::value::contiguous_stride(&shape),
            shape,
            offset: 0,
            requires_grad: false,
            is_parameter: false,
            storage: Arc::new(Storage {
                dtype,
                location: location.clone(),
                data: bytes,
            }),
        };
        entries.push((Value::Str(name), Value::Tensor(t)));
    }
    let md = meta
        .metadata()
        .clone()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    Ok((
        Value::Dict(Dict {
            entries,
            ordered: true,
            metadata: None,
        }),
        md,
    ))
}
