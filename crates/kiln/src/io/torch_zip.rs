//! The PyTorch zip format (`torch.save` since 1.6): read and write.
//!
//! Records, under one top folder (the file stem, like PyTorch, or `archive`):
//! `data.pkl`, `.format_version` (`1`), `.storage_alignment` (`64`), `byteorder` (`little`),
//! `data/<key>` for each storage (keys `0`, `1`… sorted as strings, as PyTorch does),
//! `version` (`3\n`) and `.data/serialization_id`. kiln never writes `constants.pkl`.
//!
//! The serialization id is 40 digits like PyTorch's, but derived from the records' names and
//! CRCs (two 64-bit FNV-1a hashes), so the same value written to the same name gives the
//! same bytes.

use super::budget::Budget;
use super::pickle::{self, Mode, StorageSource};
use super::value::{Bytes, Dtype, Storage, Value};
use super::zip::{FileSource, Source, ZipIndex, ZipWriter, read_entry};
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// The top folder `torch.save(obj, path)` uses: the file name up to its first dot.
pub fn archive_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.split('.').next().unwrap_or_default();
    if stem.is_empty() {
        "archive".to_string()
    } else {
        stem.to_string()
    }
}

/// Writes `value` as a PyTorch zip archive with top folder `archive` to `w`; `path` names the
/// file in errors.
///
/// # Errors
/// `K0002` on write failures; `K0003` for values too deep to pickle.
pub fn write(value: &Value, w: &mut dyn Write, archive: &str, path: &str) -> Result<()> {
    let p = pickle::pickle(value)?;
    let mut z = ZipWriter::new(w, path);
    z.add(&format!("{archive}/data.pkl"), &[&p.bytes])?;
    z.add(&format!("{archive}/.format_version"), &[b"1"])?;
    z.add(&format!("{archive}/.storage_alignment"), &[b"64"])?;
    z.add(&format!("{archive}/byteorder"), &[b"little"])?;
    let mut keys: Vec<usize> = (0..p.storages.len()).collect();
    keys.sort_by_key(|k| k.to_string());
    for k in keys {
        if let Some(s) = p.storages.get(k) {
            z.add(&format!("{archive}/data/{k}"), &[s.data.as_slice()])?;
        }
    }
    z.add(&format!("{archive}/version"), &[b"3\n"])?;
    let (a, b) = z.digest();
    let id = format!("{:020}{:020}", a % 10u64.pow(19), b % 10u64.pow(19));
    z.add(
        &format!("{archive}/.data/serialization_id"),
        &[id.as_bytes()],
    )?;
    z.finish()
}

/// Where a reader gets its bytes: positioned reads on a file, or a memory map (storages then
/// stay views of the map: lazy loading).
pub enum Backing {
    /// Read each record into its own buffer.
    File(FileSource),
    /// Records are windows of the map.
    Map(Arc<memmap2::Mmap>),
    /// The whole file in memory (records are copied out).
    Memory(Vec<u8>),
}

impl Backing {
    /// The bytes as a [`Source`].
    pub fn source(&self) -> &dyn Source {
        match self {
            Backing::File(f) => f,
            Backing::Map(m) => m.as_ref(),
            Backing::Memory(v) => v,
        }
    }
}

/// Reads a PyTorch zip archive. `locate` maps and checks each storage's location tag
/// (`map_location`); `verify_crc` checks each record's CRC-32 (not for mapped records,
/// which are never read up front).
///
/// # Errors
/// `K0501` truncated, `K0502` corrupt (directory, CRC, missing record), `K0503` not a
/// `torch.save` archive (e.g. TorchScript), `K0504`/`K0505` from the pickle, plus whatever
/// `locate` reports.
pub fn read(
    backing: &Backing,
    path: &str,
    verify_crc: bool,
    locate: &mut dyn FnMut(&str) -> Result<String>,
) -> Result<Value> {
    let budget = Budget::new(path, backing.source().len(), None);
    read_with(backing, path, verify_crc, locate, &budget)
}

/// [`read`] charging what the pickle builds (and records read more than once) to `budget`.
///
/// # Errors
/// As [`read`], plus `K0508` when the budget is exceeded.
pub fn read_with(
    backing: &Backing,
    path: &str,
    verify_crc: bool,
    locate: &mut dyn FnMut(&str) -> Result<String>,
    budget: &Budget,
) -> Result<Value> {
    read_mode(backing, path, verify_crc, locate, budget, Mode::WeightsOnly)
}

/// Whether the archive is a TorchScript one (`torch.jit.save`): it has `constants.pkl` or
/// `code/` records next to its `data.pkl`.
pub fn is_torchscript(index: &ZipIndex, prefix: &str) -> bool {
    index.get(&format!("{prefix}/constants.pkl")).is_some()
        || index
            .entries
            .iter()
            .any(|e| e.name.starts_with(&format!("{prefix}/code/")))
}

/// Whether the zip file at `path` is a TorchScript archive.
///
/// # Errors
/// `K0002`, `K0501`/`K0502` for a damaged archive, `K0503` for a zip without `data.pkl`.
pub fn file_is_torchscript(path: &Path) -> Result<bool> {
    let src = open_source(path)?;
    let p = path.display().to_string();
    let index = ZipIndex::parse(&src, &p)?;
    let prefix = find_prefix(&index, &p)?;
    Ok(is_torchscript(&index, &prefix))
}

fn open_source(path: &Path) -> Result<FileSource> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    Ok(FileSource {
        file,
        len,
        path: path.display().to_string(),
    })
}

/// Every global the pickles of the zip file at `path` name (`data.pkl`, and for TorchScript
/// `constants.pkl` too), each with the record it is in; nothing is built or called.
///
/// # Errors
/// As [`read`], minus the refusals: globals are listed, not resolved.
pub fn scan_file(path: &Path, budget: &Budget) -> Result<Vec<(String, String)>> {
    let src = open_source(path)?;
    let p = path.display().to_string();
    let index = ZipIndex::parse(&src, &p)?;
    let prefix = find_prefix(&index, &p)?;
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = std::collections::HashSet::new();
    for rec in ["data.pkl", "constants.pkl"] {
        if let Some(e) = index.get(&format!("{prefix}/{rec}")) {
            let bytes = read_entry(&src, e, true, &p)?;
            for g in pickle::scan_globals(&bytes, &p, budget)?.0 {
                if set.insert(g.clone()) {
                    out.push(g);
                }
            }
        }
    }
    Ok(out)
}

/// [`read_with`] in a chosen pickle [`Mode`]: `Mode::Structural` reads whole-module and
/// TorchScript archives as inert object trees.
///
/// # Errors
/// As [`read_with`]; in weights-only mode a TorchScript archive is `K0503`.
pub fn read_mode(
    backing: &Backing,
    path: &str,
    verify_crc: bool,
    locate: &mut dyn FnMut(&str) -> Result<String>,
    budget: &Budget,
    mode: Mode,
) -> Result<Value> {
    let src = backing.source();
    let index = ZipIndex::parse(src, path)?;
    let prefix = find_prefix(&index, path)?;
    if mode == Mode::WeightsOnly && is_torchscript(&index, &prefix) {
        return Err(not_model(path, TORCHSCRIPT));
    }
    if let Some(e) = index.get(&format!("{prefix}/byteorder")) {
        let b = read_entry(src, e, verify_crc, path)?;
        if b.as_slice() != b"little" {
            return Err(Error::Unsupported {
                what: format!(
                    "byte order '{}' in '{path}' (kiln reads little-endian files)",
                    String::from_utf8_lossy(&b)
                ),
            });
        }
    }
    let pkl = index
        .get(&format!("{prefix}/data.pkl"))
        .ok_or_else(|| not_model(path, "no data.pkl record"))?;
    let bytes = read_entry(src, pkl, verify_crc, path)?;
    let mut storages = ZipStorages {
        backing,
        index: &index,
        prefix: &prefix,
        path,
        verify_crc,
        locate,
        budget,
        read: HashSet::new(),
    };
    Ok(pickle::unpickle_mode(&bytes, &mut storages, path, budget, mode)?.value)
}

/// Checks the CRC-32 of every record of the PyTorch zip file at `path` without building
/// anything (`kiln inspect --verify`, and `kiln diff` before it compares).
///
/// # Errors
/// `K0002` when the file cannot be read; `K0501`/`K0502` for a damaged archive, a CRC
/// mismatch naming the record.
pub fn verify_file(path: &Path) -> Result<super::zip::Verified> {
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    let src = FileSource {
        file,
        len,
        path: p.clone(),
    };
    let index = ZipIndex::parse(&src, &p)?;
    super::zip::verify_all(&src, &index, &p)
}

const TORCHSCRIPT: &str = "a TorchScript archive (torch.jit.save), which the weights-only reader does not open; `kiln inspect` and `kiln convert` read its parameters without running it (kiln::io::module_file), or save model.state_dict() with torch.save";

fn not_model(path: &str, detail: &str) -> Error {
    Error::NotAModelFile {
        path: path.to_string(),
        detail: detail.to_string(),
    }
}

fn find_prefix(index: &ZipIndex, path: &str) -> Result<String> {
    let found = index
        .entries
        .iter()
        .filter_map(|e| {
            e.name
                .strip_suffix("/data.pkl")
                .filter(|p| !p.contains('/'))
                .map(str::to_string)
        })
        .next();
    if let Some(p) = found {
        return Ok(p);
    }
    if index
        .entries
        .iter()
        .any(|e| e.name.ends_with("constants.pkl"))
    {
        return Err(not_model(path, TORCHSCRIPT));
    }
    let names: Vec<&str> = index
        .entries
        .iter()
        .take(5)
        .map(|e| e.name.as_str())
        .collect();
    Err(not_model(
        path,
        &format!(
            "a zip archive without a data.pkl record (first records: {}{})",
            names.join(", "),
            if index.entries.is_empty() { "none" } else { "" }
        ),
    ))
}

struct ZipStorages<'a> {
    backing: &'a Backing,
    index: &'a ZipIndex,
    prefix: &'a str,
    path: &'a str,
    verify_crc: bool,
    locate: &'a mut dyn FnMut(&str) -> Result<String>,
    budget: &'a Budget,
    /// Records already read: reading one again (another view of it) is charged.
    read: HashSet<String>,
}

impl StorageSource for ZipStorages<'_> {
    fn storage(
        &mut self,
        key: &str,
        dtype: Dtype,
        location: &str,
        numel: usize,
        _view: Option<(usize, usize)>,
    ) -> Result<Arc<Storage>> {
        let name = format!("{}/data/{key}", self.prefix);
        let e = self.index.get(&name).ok_or_else(|| Error::Corrupt {
            path: self.path.to_string(),
            detail: format!("the pickle names storage '{key}' but record '{name}' is missing"),
        })?;
        let need = numel
            .checked_mul(dtype.size())
            .ok_or_else(|| Error::Corrupt {
                path: self.path.to_string(),
                detail: format!("storage '{key}': {numel} elements overflow"),
            })?;
        let have = if e.method == 0 {
            e.size
        } else {
            e.uncompressed
        };
        if (have as u128) < need as u128 {
            return Err(Error::Corrupt {
                path: self.path.to_string(),
                detail: format!(
                    "record '{name}' holds {} bytes but its storage needs {need} ({numel} × {})",
                    have,
                    dtype.name()
                ),
            });
        }
        let location = (self.locate)(location)?;
        if !self.read.insert(name.clone()) && !matches!(self.backing, Backing::Map(_)) {
            self.budget.charge(
                need as u64,
                &format_args!("another copy of record '{name}'"),
            )?;
        }
        let data = match self.backing {
            Backing::Map(map) if e.method == 0 => {
                let start = usize::try_from(e.data_start).map_err(|_| Error::Corrupt {
                    path: self.path.to_string(),
                    detail: "record offset beyond the address space".into(),
                })?;
                Bytes::Mapped {
                    map: map.clone(),
                    start,
                    len: need,
                }
            }
            _ if crate::io::typed::enabled() && e.method == 0 && e.size == need as u64 => {
                // Straight into a typed candle buffer (`load_state_dict_file`).
                let (src, verify, path) = (self.backing.source(), self.verify_crc, self.path);
                match crate::io::typed::read_storage(dtype, need, |dst| {
                    crate::io::zip::reader::read_entry_into(src, e, dst, verify, path)
                })? {
                    Some(b) => b,
                    None => {
                        let v = read_entry(src, e, verify, path)?;
                        Bytes::Owned(Arc::new(v))
                    }
                }
            }
            _ => {
                // Read in parallel chunks, each CRC-checked while hot in cache.
                let mut v = read_entry(self.backing.source(), e, self.verify_crc, self.path)?;
                v.truncate(need);
                Bytes::Owned(Arc::new(v))
            }
        };
        Ok(Arc::new(Storage {
            dtype,
            location,
            data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::value::TensorValue;
    use crate::io::zip::SliceSource;

    fn sample() -> Value {
        let data: Vec<u8> = (0..12).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let t = TensorValue::from_bytes(Dtype::F32, vec![3, 4], data, "cpu").unwrap();
        let tr = TensorValue {
            shape: vec![4, 3],
            stride: vec![1, 4],
            ..t.clone()
        };
        Value::dict([
            ("w", Value::Tensor(t)),
            ("wt", Value::Tensor(tr)),
            ("step", Value::Int(5)),
        ])
    }

    fn bytes_of(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write(v, &mut out, "archive", "mem").unwrap();
        out
    }

    fn read_bytes(b: &[u8]) -> Result<Value> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pt");
        std::fs::write(&p, b).unwrap();
        let file = std::fs::File::open(&p).unwrap();
        let backing = Backing::File(FileSource {
            file,
            len: b.len() as u64,
            path: "x.pt".into(),
        });
        read(&backing, "x.pt", true, &mut |t| Ok(t.to_string()))
    }

    #[test]
    fn round_trip_aligned_and_deterministic() {
        let v = sample();
        let b = bytes_of(&v);
        assert_eq!(b, bytes_of(&v), "same value, same bytes");
        let idx = ZipIndex::parse(&SliceSource(&b), "mem").unwrap();
        let names: Vec<&str> = idx.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "archive/data.pkl",
                "archive/.format_version",
                "archive/.storage_alignment",
                "archive/byteorder",
                "archive/data/0",
                "archive/version",
                "archive/.data/serialization_id"
            ]
        );
        for e in &idx.entries {
            assert_eq!(e.data_start % 64, 0, "{} not aligned", e.name);
        }
        let sid = idx.get("archive/.data/serialization_id").unwrap();
        assert_eq!(sid.size, 40);
        let back = read_bytes(&b).unwrap();
        assert_eq!(back, v);
        let d = back.as_dict().unwrap();
        let (w, wt) = (
            d.get("w").unwrap().as_tensor().unwrap(),
            d.get("wt").unwrap().as_tensor().unwrap(),
        );
        assert!(Arc::ptr_eq(&w.storage, &wt.storage));
    }

    #[test]
    fn truncated_file_is_k0501_at_every_cut() {
        let b = bytes_of(&sample());
        for cut in [1, 30, 64, 100, b.len() / 2, b.len() - 23, b.len() - 1] {
            let e = read_bytes(&b[..cut]).unwrap_err();
            assert_eq!(e.code(), "K0501", "cut at {cut}: {e}");
            assert!(e.to_string().contains("x.pt"), "{e}");
        }
    }

    #[test]
    fn flipped_data_byte_is_k0502_crc() {
        let mut b = bytes_of(&sample());
        let idx = ZipIndex::parse(&SliceSource(&b), "mem").unwrap();
        let e = idx.get("archive/data/0").unwrap();
        b[e.data_start as usize + 3] ^= 0xff;
        let err = read_bytes(&b).unwrap_err();
        assert_eq!(err.code(), "K0502");
        assert!(err.to_string().contains("CRC"), "{err}");
    }

    #[test]
    fn large_record_parallel_read_checks_crc_across_chunks() {
        // 10 MiB + 3 bytes: three 4 MiB read chunks, the last one short.
        let n = (10 << 20) + 3;
        let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let t = TensorValue::from_bytes(Dtype::U8, vec![n], data, "cpu").unwrap();
        let v = Value::dict([("big", Value::Tensor(t))]);
        let mut b = bytes_of(&v);
        assert_eq!(read_bytes(&b).unwrap(), v);
        let idx = ZipIndex::parse(&SliceSource(&b), "mem").unwrap();
        let e = idx.get("archive/data/0").unwrap();
        b[e.data_start as usize + (9 << 20)] ^= 1;
        assert_eq!(read_bytes(&b).unwrap_err().code(), "K0502");
        b.truncate(e.data_start as usize + (5 << 20));
        assert_eq!(read_bytes(&b).unwrap_err().code(), "K0501");
    }

    #[test]
    fn zip_without_data_pkl_is_k0503() {
        let mut out = Vec::new();
        let mut z = ZipWriter::new(&mut out, "mem");
        z.add("model/constants.pkl", &[b"x"]).unwrap();
        z.finish().unwrap();
        let e = read_bytes(&out).unwrap_err();
        assert_eq!(e.code(), "K0503");
        assert!(e.to_string().contains("TorchScript"), "{e}");
    }

    #[test]
    fn bad_central_directory_is_k0502() {
        let mut b = bytes_of(&sample());
        let idx = ZipIndex::parse(&SliceSource(&b), "mem").unwrap();
        // Overwrite the first central directory signature.
        let cd = b.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        b[cd] = b'X';
        let _ = idx;
        assert_eq!(read_bytes(&b).unwrap_err().code(), "K0502");
    }
}
