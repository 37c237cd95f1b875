//! The legacy PyTorch format (before 1.6, or `_use_new_zipfile_serialization=False`), read
//! only: consecutive pickles — magic number, protocol version 1001, `sys_info`, the object
//! (storages as persistent ids), the sorted storage keys — then each storage as a
//! little-endian i64 element count followed by its bytes.
//!
//! The object's pickle is read twice: once to learn each storage's dtype and size (with
//! zero-filled placeholders, which cost no memory until touched), and once with the real
//! storages after the data section has been located.

use super::budget::Budget;
use super::pickle::{Mode, StorageSource, scan_globals, unpickle_mode, unpickle_with};
use super::value::{Bytes, Dtype, Storage, Value};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;

/// The first pickle of a legacy file: protocol 2, `LONG1` of the magic number
/// 0x1950a86a20f9469cfc6c, STOP.
pub const MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

/// The protocol version legacy files carry.
pub const PROTOCOL_VERSION: i64 = 1001;

/// Whether `head` starts like a legacy file.
pub fn is_legacy(head: &[u8]) -> bool {
    head.starts_with(&MAGIC)
}

struct NoStorages;

impl StorageSource for NoStorages {
    fn storage(
        &mut self,
        key: &str,
        _: Dtype,
        _: &str,
        _: usize,
        _: Option<(usize, usize)>,
    ) -> Result<Arc<Storage>> {
        Err(Error::Schema {
            path: String::new(),
            detail: format!("unexpected storage '{key}' in a legacy header pickle"),
        })
    }
}

/// Pass 1: records each storage's dtype and size, returning zero-filled placeholders.
struct Scan<'a> {
    budget: &'a Budget,
    seen: HashMap<String, (Dtype, usize)>,
    /// The file size: every storage must fit in it.
    limit: usize,
    path: String,
}

impl StorageSource for Scan<'_> {
    fn storage(
        &mut self,
        key: &str,
        dtype: Dtype,
        location: &str,
        numel: usize,
        view: Option<(usize, usize)>,
    ) -> Result<Arc<Storage>> {
        let bytes = numel
            .checked_mul(dtype.size())
            .ok_or_else(|| Error::Schema {
                path: String::new(),
                detail: format!("storage '{key}' of {numel} elements overflows"),
            })?;
        self.seen.entry(key.to_string()).or_insert((dtype, numel));
        let len = match view {
            Some((_, size)) => size.saturating_mul(dtype.size()),
            None => bytes,
        };
        if bytes > self.limit || len > self.limit {
            return Err(Error::Truncated {
                path: self.path.clone(),
                detail: format!(
                    "storage '{key}' of {bytes} bytes cannot fit in a file of {} bytes",
                    self.limit
                ),
            });
        }
        // Zero-allocated: the pages are not touched, so this costs address space only — but
        // address space is memory under a limit, and many keys could each claim the file size.
        self.budget.charge(
            len as u64,
            &format_args!("a placeholder of storage '{key}'"),
        )?;
        let data = vec![0u8; len];
        Ok(Arc::new(Storage {
            dtype,
            location: location.to_string(),
            data: Bytes::Owned(Arc::new(data)),
        }))
    }
}

/// Pass 2: the real storages, located by key.
struct Real<'a> {
    budget: &'a Budget,
    data: &'a [u8],
    at: HashMap<String, (usize, usize, Dtype)>,
    path: &'a str,
    locate: &'a mut dyn FnMut(&str) -> Result<String>,
}

impl StorageSource for Real<'_> {
    fn storage(
        &mut self,
        key: &str,
        dtype: Dtype,
        location: &str,
        _numel: usize,
        view: Option<(usize, usize)>,
    ) -> Result<Arc<Storage>> {
        let &(start, len, d) = self.at.get(key).ok_or_else(|| Error::Corrupt {
            path: self.path.to_string(),
            detail: format!("storage '{key}' is not in the data section"),
        })?;
        let (start, len) = match view {
            None => (start, len),
            Some((off, size)) => {
                let es = d.size();
                let o = off.checked_mul(es).and_then(|o| o.checked_add(start));
                let l = size.checked_mul(es);
                match (o, l) {
                    (Some(o), Some(l)) if o.checked_add(l).is_some_and(|e| e <= start + len) => {
                        (o, l)
                    }
                    _ => {
                        return Err(Error::Corrupt {
                            path: self.path.to_string(),
                            detail: format!("storage view of '{key}' lies outside it"),
                        });
                    }
                }
            }
        };
        self.budget
            .charge(len as u64, &format_args!("a copy of storage '{key}'"))?;
        let bytes = self
            .data
            .get(start..start + len)
            .ok_or_else(|| Error::Truncated {
                path: self.path.to_string(),
                detail: format!("storage '{key}' ends past the end of the file"),
            })?
            .to_vec();
        Ok(Arc::new(Storage {
            dtype,
            location: (self.locate)(location)?,
            data: Bytes::Owned(Arc::new(bytes)),
        }))
    }
}

/// Reads a legacy file held in `data`. `locate` maps and checks location tags.
///
/// # Errors
/// `K0501` when the file ends early, `K0503` without the magic number, `K0505`/`K0504` from
/// the pickles, `K0502` when the storage section disagrees with the pickle.
pub fn read(
    data: &[u8],
    path: &str,
    locate: &mut dyn FnMut(&str) -> Result<String>,
) -> Result<Value> {
    read_with(
        data,
        path,
        locate,
        &Budget::new(path, data.len() as u64, None),
    )
}

/// [`read`] charging what the pickles build, storage copies and placeholders to `budget`.
///
/// # Errors
/// As [`read`], plus `K0508` when the budget is exceeded.
pub fn read_with(
    data: &[u8],
    path: &str,
    locate: &mut dyn FnMut(&str) -> Result<String>,
    budget: &Budget,
) -> Result<Value> {
    read_mode(data, path, locate, budget, Mode::WeightsOnly)
}

/// Every global the four pickles of a legacy file name (first use order, no duplicates);
/// nothing is built or called.
///
/// # Errors
/// `K0503` without the magic number, `K0501`/`K0505` for malformed pickles.
pub fn scan(data: &[u8], path: &str, budget: &Budget) -> Result<Vec<(String, String)>> {
    if !is_legacy(data) {
        return Err(Error::NotAModelFile {
            path: path.to_string(),
            detail: "no legacy PyTorch magic number".into(),
        });
    }
    let mut pos = MAGIC.len();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = std::collections::HashSet::new();
    for _ in 0..4 {
        let (found, end) = scan_globals(data.get(pos..).unwrap_or(&[]), path, budget)?;
        pos += end;
        for g in found {
            if set.insert(g.clone()) {
                out.push(g);
            }
        }
    }
    Ok(out)
}

/// [`read_with`] in a chosen pickle [`Mode`] for the object pickle (`Mode::Structural`
/// reads legacy whole-module files as inert object trees).
///
/// # Errors
/// As [`read_with`].
pub fn read_mode(
    data: &[u8],
    path: &str,
    locate: &mut dyn FnMut(&str) -> Result<String>,
    budget: &Budget,
    mode: Mode,
) -> Result<Value> {
    if !is_legacy(data) {
        return Err(Error::NotAModelFile {
            path: path.to_string(),
            detail: "no legacy PyTorch magic number".into(),
        });
    }
    let fix = |e: Error| match e {
        Error::Schema { path: p, detail } if p.is_empty() => Error::Corrupt {
            path: path.to_string(),
            detail,
        },
        other => other,
    };
    let mut pos = MAGIC.len();
    let rest = |pos: usize| data.get(pos..).unwrap_or(&[]);
    let proto = unpickle_with(rest(pos), &mut NoStorages, path, budget).map_err(fix)?;
    pos += proto.end;
    if proto.value.as_i64() != Some(PROTOCOL_VERSION) {
        return Err(Error::Corrupt {
            path: path.to_string(),
            detail: format!(
                "legacy protocol version {:?}, expected {PROTOCOL_VERSION}",
                proto.value
            ),
        });
    }
    let sys = unpickle_with(rest(pos), &mut NoStorages, path, budget).map_err(fix)?;
    pos += sys.end;
    if sys.value.get("little_endian").and_then(Value::as_bool) == Some(false) {
        return Err(Error::Unsupported {
            what: format!("big-endian legacy file '{path}'"),
        });
    }
    let obj_start = pos;
    let mut scan = Scan {
        budget,
        seen: HashMap::new(),
        limit: data.len(),
        path: path.to_string(),
    };
    let obj = unpickle_mode(rest(pos), &mut scan, path, budget, mode).map_err(fix)?;
    pos += obj.end;
    drop(obj);
    let keys = unpickle_with(rest(pos), &mut NoStorages, path, budget).map_err(fix)?;
    pos += keys.end;
    let keys = keys
        .value
        .as_seq()
        .map(<[Value]>::to_vec)
        .ok_or_else(|| Error::Corrupt {
            path: path.to_string(),
            detail: "legacy storage key list is not a list".into(),
        })?;
    let mut at = HashMap::new();
    for k in keys {
        let k = k
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::Corrupt {
                path: path.to_string(),
                detail: "legacy storage key is not a string".into(),
            })?;
        let hdr = data.get(pos..pos + 8).ok_or_else(|| Error::Truncated {
            path: path.to_string(),
            detail: format!("file ends at byte {} before storage '{k}'", data.len()),
        })?;
        let mut a = [0u8; 8];
        a.copy_from_slice(hdr);
        let numel = u64::from_le_bytes(a);
        pos += 8;
        let (dtype, expected) = scan.seen.get(&k).copied().unwrap_or((Dtype::U8, 0));
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(dtype.size()))
            .filter(|&l| pos.checked_add(l).is_some_and(|e| e <= data.len()))
            .ok_or_else(|| Error::Truncated {
                path: path.to_string(),
                detail: format!(
                    "storage '{k}' announces {numel} elements but the file ends at byte {}",
                    data.len()
                ),
            })?;
        if scan.seen.contains_key(&k) && numel != expected as u64 {
            return Err(Error::Corrupt {
                path: path.to_string(),
                detail: format!("storage '{k}' holds {numel} elements, the pickle says {expected}"),
            });
        }
        at.insert(k, (pos, len, dtype));
        pos += len;
    }
    let mut real = Real {
        budget,
        data,
        at,
        path,
        locate,
    };
    Ok(
        unpickle_mode(rest(obj_start), &mut real, path, budget, mode)
            .map_err(fix)?
            .value,
    )
}
