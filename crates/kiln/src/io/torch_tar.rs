//! PyTorch's pre-0.4 tar checkpoints (`torch.save` of PyTorch 0.1–0.3), read only, as
//! today's `torch.load` reads them (`torch/serialization.py`, `_legacy_load.legacy_load`).
//!
//! The file is a tar archive ([`super::tar`]) with four members:
//! - `sys_info`: a pickled dict (`protocol_version`, `little_endian`, `type_sizes`); optional,
//!   and only `little_endian` is looked at (big-endian files are refused, `K0005`).
//! - `storages`: a pickled count N, then N times a pickled `(key, location, storage_type)`
//!   followed by the storage: an i64 little-endian element count and the element bytes; then
//!   a pickled list of storage views `(key, root_key, offset, numel)`, each a storage that is
//!   elements `[offset, offset + numel)` of an earlier storage.
//! - `tensors`: a pickled count, then per tensor a pickled `(key, storage_key, tensor_type)`
//!   followed by an i32 `ndim`, 4 unused bytes, `ndim` i64 sizes, `ndim` i64 strides and an
//!   i64 storage offset.
//! - `pickle`: the object, whose persistent ids are `str(key)` of those tensors and storages
//!   (and, for whole modules, `(cls, source_file, source)` of each module class).
//!
//! Differences from PyTorch: a duplicate member, a duplicate key, a storage view or tensor
//! outside its storage are refused (`K0502`) where `torch.load` would silently take the last
//! one, clamp or fail later; a storage view is a copy of its part of the root storage, so
//! it shares no memory with it.

use super::budget::Budget;
use super::pickle::{Keyed, Mode, StorageSource, scan_globals, unpickle_mode, unpickle_record};
use super::tar::{self, Kind, Member};
use super::value::{Bytes, Dtype, Storage, TensorValue, Value};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;

/// The members a checkpoint needs, in the order they are read.
pub const MEMBERS: [&str; 3] = ["storages", "tensors", "pickle"];

/// Highest tensor rank the `tensors` member may give.
pub const MAX_NDIM: i32 = super::pickle::limits::MAX_RANK as i32;

/// Whether `head` (at least the first 512 bytes when there are that many) starts like a
/// tar archive.
pub fn is_tar(head: &[u8]) -> bool {
    tar::looks_like(head)
}

/// A storage of the `storages` member: where its bytes are in the file.
struct Slot {
    start: usize,
    len: usize,
    dtype: Dtype,
    location: String,
    built: Option<Arc<Storage>>,
}

/// What the main pickle's keys resolve to.
enum Object {
    Storage,
    Tensor(TensorValue),
}

/// Reads the members of a checkpoint in turn.
struct Reader<'a> {
    data: &'a [u8],
    path: &'a str,
    budget: &'a Budget,
    locate: &'a mut dyn FnMut(&str) -> Result<String>,
    storages: HashMap<String, Slot>,
    objects: HashMap<String, Object>,
}

/// A cursor in one member.
struct Cursor<'a> {
    member: &'a Member,
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// The file offset of the cursor.
    fn at(&self) -> usize {
        self.member.start + self.pos
    }

    fn rest(&self) -> &[u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }

    fn take(&mut self, n: usize, what: &dyn std::fmt::Display, path: &str) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(s) = end.and_then(|e| self.data.get(self.pos..e)) else {
            return Err(Error::Truncated {
                path: path.to_string(),
                detail: format!(
                    "member '{}' ends at byte {} of the file, inside {what} at byte {}",
                    self.member.name,
                    self.member.start + self.member.len,
                    self.at()
                ),
            });
        };
        self.pos += n;
        Ok(s)
    }

    fn i64(&mut self, what: &dyn std::fmt::Display, path: &str) -> Result<i64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what, path)?);
        Ok(i64::from_le_bytes(a))
    }
}

/// The key of a record or persistent id: ints and strings of ints alike (`int(saved_id)`).
fn key_of(v: &Value) -> Option<String> {
    match v {
        Value::Int(i) => Some(i.to_string()),
        Value::Str(s) => Some(match s.trim().parse::<i64>() {
            Ok(i) => i.to_string(),
            Err(_) => s.clone(),
        }),
        _ => None,
    }
}

impl Reader<'_> {
    fn corrupt(&self, detail: String) -> Error {
        Error::Corrupt {
            path: self.path.to_string(),
            detail,
        }
    }

    /// One pickle at the cursor; `record` reads it as a tar record ([`unpickle_record`]).
    fn pickle(&self, c: &mut Cursor, what: &str) -> Result<Value> {
        let at = c.at();
        let u = unpickle_record(c.rest(), self.path, self.budget).map_err(|e| match e {
            Error::Truncated { .. } => Error::Truncated {
                path: self.path.to_string(),
                detail: format!(
                    "member '{}' ends inside {what} (the pickle at byte {at})",
                    c.member.name
                ),
            },
            other => other,
        })?;
        c.pos += u.end;
        Ok(u.value)
    }

    fn count(&self, c: &mut Cursor) -> Result<usize> {
        let at = c.at();
        let name = c.member.name.clone();
        let v = self.pickle(c, &format!("the count of member '{name}'"))?;
        v.as_i64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                self.corrupt(format!(
                    "member '{name}' starts with a {} at byte {at}, not a count of records; the archive is not a PyTorch checkpoint or is damaged",
                    v.type_name()
                ))
            })
    }

    fn record(&self, c: &mut Cursor, i: usize) -> Result<(Vec<Value>, usize)> {
        let at = c.at();
        let name = c.member.name.clone();
        let v = self.pickle(c, &format!("record {i} of member '{name}'"))?;
        match v {
            Value::Tuple(items) if items.len() == 3 => Ok((items, at)),
            other => Err(self.corrupt(format!(
                "record {i} of member '{name}' (byte {at}) is a {}, not a 3-tuple",
                other.type_name()
            ))),
        }
    }

    fn storages(&mut self, m: &Member) -> Result<()> {
        let mut c = Cursor {
            member: m,
            data: m.data(self.data),
            pos: 0,
        };
        let n = self.count(&mut c)?;
        for i in 0..n {
            let (items, at) = self.record(&mut c, i)?;
            let [k, loc, ty] = items.as_slice() else {
                return Err(self.corrupt(format!("storage record {i} is not a 3-tuple")));
            };
            let (Some(key), Some(location), Value::DtypeObj(dtype)) = (key_of(k), loc.as_str(), ty)
            else {
                return Err(self.corrupt(format!(
                    "storage record {i} (byte {at}) is ({}, {}, {}), not (key, location, storage class)",
                    k.type_name(),
                    loc.type_name(),
                    ty.type_name()
                )));
            };
            let what = format!("the element count of storage '{key}'");
            let numel = c.i64(&what, self.path)?;
            let len = u64::try_from(numel)
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| n.checked_mul(dtype.size()))
                .ok_or_else(|| {
                    self.corrupt(format!(
                        "storage '{key}' (byte {}) has {numel} elements",
                        c.at() - 8
                    ))
                })?;
            let start = c.at();
            c.take(
                len,
                &format!("the {len} bytes of storage '{key}'"),
                self.path,
            )?;
            let slot = Slot {
                start,
                len,
                dtype: *dtype,
                location: location.to_string(),
                built: None,
            };
            self.insert_storage(key, slot, at)?;
        }
        let at = c.at();
        let views = self.pickle(&mut c, "the list of storage views")?;
        let views = views.as_seq().map(<[Value]>::to_vec).ok_or_else(|| {
            self.corrupt(format!(
                "the storage views of member 'storages' (byte {at}) are a {}, not a list",
                views.type_name()
            ))
        })?;
        for (i, v) in views.iter().enumerate() {
            self.view(v, i, at)?;
        }
        Ok(())
    }

    fn insert_storage(&mut self, key: String, slot: Slot, at: usize) -> Result<()> {
        if self.storages.contains_key(&key) {
            return Err(self.corrupt(format!(
                "storage key '{key}' appears twice in member 'storages' (again at byte {at})"
            )));
        }
        self.budget.charge(
            64 + key.len() as u64,
            &format_args!("the record of storage '{key}'"),
        )?;
        self.objects.insert(key.clone(), Object::Storage);
        self.storages.insert(key, slot);
        Ok(())
    }

    /// A storage view `(key, root_key, offset, numel)`.
    fn view(&mut self, v: &Value, i: usize, at: usize) -> Result<()> {
        let items = v.as_seq().unwrap_or(&[]);
        let [k, r, off, n] = items else {
            return Err(self.corrupt(format!(
                "storage view {i} (list at byte {at}) is not (key, root_key, offset, numel)"
            )));
        };
        let (Some(key), Some(root)) = (key_of(k), key_of(r)) else {
            return Err(self.corrupt(format!("storage view {i} has keys that are not ints")));
        };
        let num = |x: &Value| x.as_i64().and_then(|x| usize::try_from(x).ok());
        let (Some(off), Some(numel)) = (num(off), num(n)) else {
            return Err(self.corrupt(format!(
                "storage view '{key}' of '{root}' has offset {off:?} and size {n:?}, not two counts"
            )));
        };
        let Some(parent) = self.storages.get(&root) else {
            return Err(self.corrupt(format!(
                "storage view '{key}' is of storage '{root}', which member 'storages' does not hold"
            )));
        };
        let es = parent.dtype.size();
        let range = off
            .checked_mul(es)
            .zip(numel.checked_mul(es))
            .filter(|(o, l)| o.checked_add(*l).is_some_and(|e| e <= parent.len));
        let Some((o, l)) = range else {
            return Err(self.corrupt(format!(
                "storage view '{key}' (elements {off}..{off}+{numel}) lies outside storage '{root}' of {} elements",
                parent.len / es
            )));
        };
        let slot = Slot {
            start: parent.start + o,
            len: l,
            dtype: parent.dtype,
            location: parent.location.clone(),
            built: None,
        };
        self.insert_storage(key, slot, at)
    }

    /// The storage `key`, its bytes copied out of the file on first use.
    fn materialise(&mut self, key: &str) -> Result<Arc<Storage>> {
        let Some(slot) = self.storages.get(key) else {
            return Err(self.corrupt(format!("storage '{key}' is not in member 'storages'")));
        };
        if let Some(s) = &slot.built {
            return Ok(s.clone());
        }
        let (start, len, dtype, location) =
            (slot.start, slot.len, slot.dtype, slot.location.clone());
        self.budget
            .charge(len as u64, &format_args!("a copy of storage '{key}'"))?;
        let bytes = self
            .data
            .get(start..start + len)
            .ok_or_else(|| self.corrupt(format!("storage '{key}' lies outside the file")))?
            .to_vec();
        let s = Arc::new(Storage {
            dtype,
            location: (self.locate)(&location)?,
            data: Bytes::Owned(Arc::new(bytes)),
        });
        if let Some(slot) = self.storages.get_mut(key) {
            slot.built = Some(s.clone());
        }
        Ok(s)
    }

    fn tensors(&mut self, m: &Member) -> Result<()> {
        let mut c = Cursor {
            member: m,
            data: m.data(self.data),
            pos: 0,
        };
        let n = self.count(&mut c)?;
        for i in 0..n {
            let (items, at) = self.record(&mut c, i)?;
            let [k, s, _ty] = items.as_slice() else {
                return Err(self.corrupt(format!("tensor record {i} is not a 3-tuple")));
            };
            let (Some(key), Some(skey)) = (key_of(k), key_of(s)) else {
                return Err(self.corrupt(format!(
                    "tensor record {i} (byte {at}) is ({}, {}, …), not (key, storage_key, type); a tensor without a storage cannot be read",
                    k.type_name(),
                    s.type_name()
                )));
            };
            let what = format!("the shape of tensor '{key}'");
            let h = c.take(8, &what, self.path)?;
            let ndim = i32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            if !(0..=MAX_NDIM).contains(&ndim) {
                return Err(self.corrupt(format!(
                    "tensor '{key}' (byte {}) has {ndim} dimensions; at most {MAX_NDIM} are allowed",
                    c.at() - 8
                )));
            }
            let ndim = ndim as usize;
            self.budget.charge(
                64 + 16 * ndim as u64,
                &format_args!("the shape of tensor '{key}'"),
            )?;
            let mut dims = Vec::with_capacity(2 * ndim + 1);
            for _ in 0..2 * ndim + 1 {
                let x = c.i64(&what, self.path)?;
                let x = usize::try_from(x).map_err(|_| {
                    self.corrupt(format!(
                        "tensor '{key}' (byte {}) has a negative size, stride or offset ({x})",
                        c.at() - 8
                    ))
                })?;
                dims.push(x);
            }
            let storage = match self.objects.get(&skey) {
                Some(Object::Storage) => self.materialise(&skey)?,
                _ => {
                    return Err(self.corrupt(format!(
                        "tensor '{key}' is on storage '{skey}', which member 'storages' does not hold"
                    )));
                }
            };
            let t = TensorValue {
                storage,
                offset: dims.get(2 * ndim).copied().unwrap_or(0),
                shape: dims.get(..ndim).unwrap_or(&[]).to_vec(),
                stride: dims.get(ndim..2 * ndim).unwrap_or(&[]).to_vec(),
                requires_grad: false,
                is_parameter: false,
            };
            t.check_bounds().map_err(|e| match e {
                Error::Schema { detail, .. } => self.corrupt(format!("tensor '{key}': {detail}")),
                other => other,
            })?;
            if self.objects.contains_key(&key) {
                return Err(self.corrupt(format!(
                    "key '{key}' of tensor record {i} (byte {at}) is already a tensor or storage key"
                )));
            }
            self.objects.insert(key, Object::Tensor(t));
        }
        Ok(())
    }
}

impl StorageSource for Reader<'_> {
    fn storage(
        &mut self,
        key: &str,
        _: Dtype,
        _: &str,
        _: usize,
        _: Option<(usize, usize)>,
    ) -> Result<Arc<Storage>> {
        Err(self.corrupt(format!(
            "the pickle names storage '{key}' with a ('storage', …) persistent id; tar checkpoints name tensors and storages by key"
        )))
    }

    fn keyed(&mut self, key: &str) -> Result<Option<Keyed>> {
        let key = key_of(&Value::Str(key.to_string())).unwrap_or_default();
        match self.objects.get(&key) {
            Some(Object::Tensor(t)) => Ok(Some(Keyed::Tensor(t.clone()))),
            Some(Object::Storage) => Ok(Some(Keyed::Storage(self.materialise(&key)?))),
            None => Err(self.corrupt(format!(
                "the pickle names key '{key}', which neither member 'tensors' nor member 'storages' holds"
            ))),
        }
    }
}

/// The checkpoint members of the archive `data`, by name.
///
/// # Errors
/// As [`tar::members`]; `K0502` for a duplicate or non-file member; `K0503` naming a
/// missing member.
pub fn checkpoint_members(data: &[u8], path: &str) -> Result<HashMap<&'static str, Member>> {
    let all = tar::members(data, path)?;
    let mut out: HashMap<&'static str, Member> = HashMap::new();
    for m in &all {
        let Some(&name) = ["sys_info", "pickle", "tensors", "storages"]
            .iter()
            .find(|n| **n == m.name)
        else {
            continue;
        };
        if let Some(first) = out.get(name) {
            return Err(Error::Corrupt {
                path: path.to_string(),
                detail: format!(
                    "the tar archive holds member '{name}' twice (headers at bytes {} and {}); a PyTorch checkpoint has one of each",
                    first.header, m.header
                ),
            });
        }
        if m.kind != Kind::File {
            return Err(Error::Corrupt {
                path: path.to_string(),
                detail: format!(
                    "member '{name}' (header at byte {}) is a {:?}, not a regular file",
                    m.header, m.kind
                ),
            });
        }
        out.insert(name, m.clone());
    }
    if let Some(missing) = MEMBERS.iter().find(|n| !out.contains_key(*n)) {
        let names: Vec<&str> = all.iter().take(10).map(|m| m.name.as_str()).collect();
        return Err(Error::NotAModelFile {
            path: path.to_string(),
            detail: format!(
                "a tar archive without the member '{missing}', so not a PyTorch (< 0.4) checkpoint; it holds [{}] (a PyTorch checkpoint holds sys_info, pickle, tensors and storages)",
                names.join(", ")
            ),
        });
    }
    Ok(out)
}

/// Reads a pre-0.4 tar checkpoint held in `data` (weights-only mode). `locate` maps and
/// checks location tags.
///
/// # Errors
/// As [`read_mode`].
pub fn read(
    data: &[u8],
    path: &str,
    locate: &mut dyn FnMut(&str) -> Result<String>,
) -> Result<Value> {
    let budget = Budget::new(path, data.len() as u64, None);
    read_mode(data, path, locate, &budget, Mode::WeightsOnly)
}

/// Reads a pre-0.4 tar checkpoint, its main pickle in `mode` (`Mode::Structural` for
/// whole-module files), charging what it builds and copies to `budget`.
///
/// # Errors
/// `K0501` when the archive or a member ends early; `K0502` for a damaged archive,
/// duplicate members or keys, negative sizes, more than [`MAX_NDIM`] dimensions, views or
/// tensors outside their storage, unknown keys; `K0503` for a tar archive that is not a
/// checkpoint; `K0005` for a big-endian file; `K0504`/`K0505`/`K0509` from the pickles;
/// `K0508` past the budget.
pub fn read_mode(
    data: &[u8],
    path: &str,
    locate: &mut dyn FnMut(&str) -> Result<String>,
    budget: &Budget,
    mode: Mode,
) -> Result<Value> {
    let members = checkpoint_members(data, path)?;
    if let Some(m) = members.get("sys_info") {
        let sys = unpickle_record(m.data(data), path, budget)?;
        if sys.value.get("little_endian").and_then(Value::as_bool) == Some(false) {
            return Err(Error::Unsupported {
                what: format!("big-endian PyTorch tar checkpoint '{path}'"),
            });
        }
    }
    let mut r = Reader {
        data,
        path,
        budget,
        locate,
        storages: HashMap::new(),
        objects: HashMap::new(),
    };
    let get = |n: &str| {
        members.get(n).ok_or_else(|| Error::NotAModelFile {
            path: path.to_string(),
            detail: format!("no member '{n}'"),
        })
    };
    r.storages(get("storages")?)?;
    r.tensors(get("tensors")?)?;
    let pickle = get("pickle")?.data(data);
    Ok(unpickle_mode(pickle, &mut r, path, budget, mode)?.value)
}

/// Every global the pickles of a tar checkpoint name (first use order, no duplicates):
/// `sys_info`, the main pickle, and the records of `storages` and `tensors` as far as they
/// can be walked. Nothing is built or called.
///
/// # Errors
/// As [`checkpoint_members`]; `K0501`/`K0505` for a malformed main pickle.
pub fn scan(data: &[u8], path: &str, budget: &Budget) -> Result<Vec<(String, String)>> {
    let members = checkpoint_members(data, path)?;
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |found: Vec<(String, String)>| {
        for g in found {
            if !out.contains(&g) {
                out.push(g);
            }
        }
    };
    for name in ["sys_info", "pickle"] {
        if let Some(m) = members.get(name) {
            add(scan_globals(m.data(data), path, budget)?.0);
        }
    }
    for name in ["storages", "tensors"] {
        let Some(m) = members.get(name) else { continue };
        let d = m.data(data);
        // The record pickles, each scanned before it is read to find the next one.
        let mut pos = match scan_globals(d, path, budget) {
            Ok((_, end)) => end,
            Err(_) => continue,
        };
        while let Ok((found, end)) = scan_globals(d.get(pos..).unwrap_or(&[]), path, budget) {
            add(found);
            let Ok(rec) = unpickle_record(d.get(pos..).unwrap_or(&[]), path, budget) else {
                break;
            };
            pos += end;
            let raw = if name == "storages" {
                let dtype = match rec.value.as_seq() {
                    Some([_, _, Value::DtypeObj(d)]) => *d,
                    _ => break,
                };
                let mut a = [0u8; 8];
                match d.get(pos..pos + 8) {
                    Some(b) => a.copy_from_slice(b),
                    None => break,
                }
                usize::try_from(i64::from_le_bytes(a))
                    .ok()
                    .and_then(|n| n.checked_mul(dtype.size()))
                    .and_then(|n| n.checked_add(8))
            } else {
                d.get(pos..pos + 4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .and_then(|n| usize::try_from(n).ok())
                    .map(|n| 8 + 16 * n.min(64) + 8)
            };
            match raw.and_then(|r| pos.checked_add(r)) {
                Some(p) if p <= d.len() => pos = p,
                _ => break,
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "torch_tar_tests.rs"]
mod tests;
