//! `load`: `torch.load` for Rust. The format is chosen by content (zip, legacy pickle,
//! safetensors, pre-0.4 tar), never by extension; `map_location` and a dtype cast apply as the file is
//! read.
//!
//! ```no_run
//! use kiln::io::{LoadOptions, load};
//! let ckpt = load("checkpoint.pt", &LoadOptions::new().map_location("cpu"))?;
//! let epoch = ckpt.get("epoch").and_then(|v| v.as_i64());
//! # Ok::<(), kiln::Error>(())
//! ```

use super::budget::Budget;
use super::map_location::{MapLocation, check_location, device_for};
use super::pickle::Mode;
use super::torch_zip::Backing;
use super::value::{Dtype, Value, value_to_state_dict};
use super::zip::FileSource;
use super::{cast, legacy, safetensors, torch_tar, torch_zip};
use crate::error::{Error, Result};
use crate::nn::StateDict;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The file formats kiln reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `torch.save` zip archive (PyTorch ≥ 1.6).
    TorchZip,
    /// `torch.save(..., _use_new_zipfile_serialization=False)` / PyTorch < 1.6 (read only).
    TorchLegacy,
    /// safetensors.
    Safetensors,
    /// The tar archive `torch.save` wrote before PyTorch 0.4 (read only; see
    /// [`crate::io::torch_tar`]).
    TorchTar,
}

impl Format {
    /// A short name (`pytorch-zip`, `pytorch-legacy`, `safetensors`, `pytorch-tar`).
    pub fn name(self) -> &'static str {
        match self {
            Format::TorchZip => "pytorch-zip",
            Format::TorchLegacy => "pytorch-legacy",
            Format::Safetensors => "safetensors",
            Format::TorchTar => "pytorch-tar",
        }
    }

    /// The format `save` writes for a path: safetensors for `.safetensors`, else the PyTorch
    /// zip format (`.pt`, `.pth`, `.bin`, `.ckpt`, anything else).
    pub fn for_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("safetensors") => Format::Safetensors,
            _ => Format::TorchZip,
        }
    }
}

/// How to load a file: `torch.load`'s `map_location` and `mmap`, plus a dtype cast.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Rewrites storage location tags (`None`: keep them; `cuda:N` then needs CUDA).
    pub map_location: Option<MapLocation>,
    /// Casts floating-point tensors (all tensors with `cast_all`) to this dtype.
    pub dtype: Option<Dtype>,
    /// With `dtype`: cast integer and bool tensors too.
    pub cast_all: bool,
    /// Memory-map the file and leave tensor data in the map (lazy loading) instead of
    /// reading it. The file must not be modified in place while values from it are alive
    /// (kiln's own writers never do: they rename a new file over the old one). CRCs of
    /// mapped records are not checked.
    pub mmap: bool,
    /// Skip the CRC-32 check of records read into memory.
    pub skip_crc: bool,
    /// Keep location tags (after `map_location`) without checking that their devices exist
    /// here: for tools that only inspect or rewrite files (`kiln inspect`, `kiln convert`).
    /// Tensors made from such values with [`crate::io::TensorValue::to_tensor`] go wherever the
    /// caller says.
    pub raw_locations: bool,
    /// The read budget in bytes: the most a read may build beyond the tensor data in the
    /// file's records (pickle objects, their copies per memo reference, headers). `None`:
    /// `max(64 MiB, 16 × file size)` (see [`crate::io::budget`]). Exceeding it is `K0508`;
    /// raise it only for files from a trusted source.
    pub max_expanded_bytes: Option<u64>,
    /// Read PyTorch pickles in the structural mode: classes and functions off the
    /// weights-only allow-list (a `torch.save(net)` module tree, TorchScript objects) become
    /// inert [`Value::Object`] records instead of being refused; dangerous ones (`os.system`,
    /// `builtins.eval`…) are still refused (`K0509`). Nothing is ever called. See
    /// [`crate::io::module_file`].
    pub structural: bool,
}

impl LoadOptions {
    /// Defaults: no mapping, no cast, read into memory, CRCs checked.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `map_location` (a device string, a tag map, or [`MapLocation::func`]).
    pub fn map_location(mut self, m: impl Into<MapLocation>) -> Self {
        self.map_location = Some(m.into());
        self
    }

    /// Casts floating-point tensors to `dtype` (like `module.to(dtype)`).
    pub fn dtype(mut self, dtype: Dtype) -> Self {
        self.dtype = Some(dtype);
        self
    }

    /// Whether the dtype cast also converts integer and bool tensors.
    pub fn cast_all(mut self, all: bool) -> Self {
        self.cast_all = all;
        self
    }

    /// Memory-maps the file (lazy loading; see the field's documentation).
    pub fn mmap(mut self, mmap: bool) -> Self {
        self.mmap = mmap;
        self
    }

    /// Sets the read budget in bytes (see the field's documentation).
    pub fn max_expanded_bytes(mut self, bytes: u64) -> Self {
        self.max_expanded_bytes = Some(bytes);
        self
    }
}

/// What [`load_file`] found: the value, the format, and safetensors' `__metadata__`.
#[derive(Debug)]
pub struct Loaded {
    /// The object the file holds.
    pub value: Value,
    /// The file's format.
    pub format: Format,
    /// safetensors `__metadata__` (empty for PyTorch files).
    pub metadata: BTreeMap<String, String>,
}

/// Loads a file (`torch.load`), or a Hugging Face sharded checkpoint (a directory with
/// `model.safetensors.index.json` / `pytorch_model.bin.index.json`, or that index file) as
/// one state dict ([`super::sharded`]).
///
/// # Errors
/// `K0002` when the file cannot be opened or read; `K0501` truncated; `K0502` corrupt;
/// `K0503` not a model file; `K0504` a pickle global outside the allow-list; `K0505` a
/// malformed pickle; `K0506` CUDA storages without CUDA and without `map_location`;
/// `K0304` a CUDA index past the device count; `K0508` a file that would build more than
/// its read budget ([`LoadOptions::max_expanded_bytes`]).
pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Value> {
    load_file(path.as_ref(), opts).map(|l| l.value)
}

fn head_of(file: &std::fs::File, len: u64, path: &Path) -> Result<Vec<u8>> {
    let src = FileSource {
        file: file
            .try_clone()
            .map_err(|e| Error::io("opening", path, e))?,
        len,
        path: path.display().to_string(),
    };
    // A block: a tar header's checksum covers 512 bytes.
    let mut head = vec![0u8; len.min(512) as usize];
    super::zip::Source::read_at(&src, 0, &mut head)?;
    Ok(head)
}

/// Detects the format of `path` from its first bytes.
///
/// # Errors
/// `K0002`, `K0501` for an empty file, `K0503` naming what the file looks like.
pub fn detect_format(path: &Path) -> Result<Format> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    classify(&head_of(&file, len, path)?, len, path)
}

fn classify(block: &[u8], len: u64, path: &Path) -> Result<Format> {
    let p = path.display().to_string();
    // The first 64 bytes for every test but the tar header's checksum.
    let head = block.get(..64).unwrap_or(block);
    if len == 0 {
        return Err(Error::Truncated {
            path: p,
            detail: "the file is empty".into(),
        });
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Format::TorchZip);
    }
    if legacy::is_legacy(head) {
        return Ok(Format::TorchLegacy);
    }
    if safetensors::looks_like(head) {
        return Ok(Format::Safetensors);
    }
    if torch_tar::is_tar(block) {
        return Ok(Format::TorchTar);
    }
    if legacy::MAGIC.starts_with(head) {
        return Err(Error::Truncated {
            path: p,
            detail: format!("the file ends after {len} bytes, inside the legacy PyTorch header"),
        });
    }
    Err(Error::NotAModelFile {
        path: p,
        detail: describe(head),
    })
}

/// What a file that is not a model file looks like, for `K0503`.
pub fn describe(head: &[u8]) -> String {
    let known: [(&[u8], &str); 8] = [
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"\x1f\x8b", "a gzip file"),
        (b"%PDF", "a PDF document"),
        (b"\x93NUMPY", "a NumPy .npy file"),
        (b"\x7fELF", "an executable (ELF)"),
        (
            b"\x80",
            "a plain Python pickle without PyTorch's header (not written by torch.save)",
        ),
    ];
    for (magic, what) in known {
        if head.starts_with(magic) {
            return format!("it is {what}");
        }
    }
    match std::str::from_utf8(head) {
        Ok(s) if s.chars().all(|c| !c.is_control() || c.is_whitespace()) => {
            let start: String = s.chars().take(40).collect();
            format!("it is a text file starting with {start:?}")
        }
        _ => {
            let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!(
                "it starts with bytes {} (neither a zip archive, a legacy PyTorch file nor safetensors)",
                hex.join(" ")
            )
        }
    }
}

/// Loads a file, also returning its format and safetensors metadata.
///
/// # Errors
/// As [`load`].
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    if let Some(index) = super::sharded::index_of(path) {
        return super::sharded::load_sharded(&index, opts);
    }
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    let format = classify(&head_of(&file, len, path)?, len, path)?;
    let map = opts.map_location.clone();
    let mut locate = |tag: &str| -> Result<String> {
        let t = match &map {
            Some(m) => m.apply(tag),
            None => tag.to_string(),
        };
        if !opts.raw_locations {
            check_location(&t, &p)?;
        }
        Ok(t)
    };
    let backing = || -> Result<Backing> {
        if opts.mmap {
            // SAFETY: the map is read-only and kept alive by the `Arc` in every `Bytes`
            // that points into it. The contract (documented on `LoadOptions::mmap`) is that
            // the file is not modified in place while mapped; kiln's writers replace files
            // by rename, which leaves a mapped old file intact.
            let m =
                unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("mapping", path, e))?;
            Ok(Backing::Map(Arc::new(m)))
        } else {
            Ok(Backing::File(FileSource {
                file: file
                    .try_clone()
                    .map_err(|e| Error::io("opening", path, e))?,
                len,
                path: p.clone(),
            }))
        }
    };
    let budget = Budget::new(&p, len, opts.max_expanded_bytes);
    let mode = if opts.structural {
        Mode::Structural
    } else {
        Mode::WeightsOnly
    };
    let (mut value, metadata) = match format {
        Format::TorchZip => (
            torch_zip::read_mode(&backing()?, &p, !opts.skip_crc, &mut locate, &budget, mode)?,
            BTreeMap::new(),
        ),
        Format::TorchLegacy => {
            let data = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
            (
                legacy::read_mode(&data, &p, &mut locate, &budget, mode)?,
                BTreeMap::new(),
            )
        }
        Format::Safetensors => safetensors::read_with(&backing()?, &p, &mut locate, &budget)?,
        Format::TorchTar => {
            let data = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
            (
                torch_tar::read_mode(&data, &p, &mut locate, &budget, mode)?,
                BTreeMap::new(),
            )
        }
    };
    if let Some(d) = opts.dtype {
        cast::cast_value(&mut value, d, opts.cast_all)?;
    }
    Ok(Loaded {
        value,
        format,
        metadata,
    })
}

/// Keys under which checkpoint dicts usually keep the model's state dict.
pub const STATE_DICT_KEYS: [&str; 5] = ["state_dict", "model_state_dict", "model", "net", "module"];

fn is_tensor_dict(v: &Value) -> bool {
    v.as_dict().is_some_and(|d| {
        d.entries
            .iter()
            .all(|(k, x)| k.as_str().is_some() && x.as_tensor().is_some())
    })
}

/// The state dict inside a loaded value: the value itself when it is a dict of tensors,
/// else the one entry of a checkpoint dict under a usual key (`state_dict`,
/// `model_state_dict`, `model`…) that is a dict of tensors.
///
/// # Errors
/// `K0507` when there is none or several, listing the top-level keys.
pub fn pick_state_dict<'a>(v: &'a Value, path: &str) -> Result<&'a Value> {
    if is_tensor_dict(v) {
        return Ok(v);
    }
    let d = v.as_dict().ok_or_else(|| Error::Schema {
        path: path.to_string(),
        detail: format!("holds a {}, not a state dict", v.type_name()),
    })?;
    let found: Vec<(&str, &Value)> = STATE_DICT_KEYS
        .iter()
        .filter_map(|k| d.get(k).map(|x| (*k, x)))
        .filter(|(_, x)| is_tensor_dict(x))
        .collect();
    match found.as_slice() {
        [(_, x)] => Ok(x),
        _ => {
            let keys: Vec<String> = d
                .entries
                .iter()
                .take(20)
                .map(|(k, x)| format!("{} ({})", super::value::key_string(k), x.type_name()))
                .collect();
            Err(Error::Schema {
                path: path.to_string(),
                detail: format!(
                    "{}: the file is a checkpoint dict, not a state dict; top-level keys: {}",
                    if found.is_empty() {
                        "no entry holds a state dict".to_string()
                    } else {
                        format!(
                            "several entries hold state dicts ({})",
                            found.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                        )
                    },
                    keys.join(", ")
                ),
            })
        }
    }
}

/// Loads a state dict from a file: a plain state dict, or the state dict inside a
/// checkpoint dict (see [`pick_state_dict`]) or a whole-model file. Tensors are created on
/// the device their (mapped) location tag names.
///
/// # Errors
/// As [`load`], plus `K0507` when no state dict can be picked.
pub fn load_state_dict_file(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<StateDict> {
    let path = path.as_ref();
    let p = path.display().to_string();
    // Read storages straight into candle tensors, unless a cast rewrites their bytes anyway.
    let v = if opts.dtype.is_none() {
        super::typed::typed(|| load(path, opts))?
    } else {
        load(path, opts)?
    };
    let sd = pick_state_dict(&v, &p)?;
    let mut location = "cpu".to_string();
    sd.visit_tensors(&mut |_, t| location = t.storage.location.clone());
    let device = device_for(&location, &p)?;
    value_to_state_dict(sd, &device).map_err(|e| match e {
        Error::Schema { detail, .. } => Error::Schema {
            path: p.clone(),
            detail,
        },
        other => other,
    })
}
