//! `save`: `torch.save` for Rust. Every write is atomic (see [`super::atomic`]).
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! use kiln::io::{LoadOptions, Value, load, save};
//! let path = dir.path().join("ckpt.pt");
//! save(&Value::dict([("epoch", Value::Int(3))]), &path)?;
//! assert_eq!(load(&path, &LoadOptions::new())?.get("epoch").and_then(Value::as_i64), Some(3));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::atomic::atomic_write;
use super::load::Format;
use super::value::{TensorValue, Value, state_dict_to_value};
use super::{safetensors, torch_zip};
use crate::error::{Error, Result};
use crate::nn::StateDict;
use std::collections::BTreeMap;
use std::path::Path;

/// Saves `value` to `path`, in the format its extension names (`.safetensors`, else the
/// PyTorch zip format that `torch.load` reads).
///
/// # Errors
/// `K0002` on I/O failure (the previous file stays intact); `K0507` when safetensors is
/// asked for a value that is not a flat dict of tensors.
pub fn save(value: &Value, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    save_as(value, path, Format::for_path(path))
}

/// Saves `value` to `path` in `format`.
///
/// # Errors
/// As [`save`]; `K0005` for the legacy and tar formats, which kiln does not write.
pub fn save_as(value: &Value, path: &Path, format: Format) -> Result<()> {
    let p = path.display().to_string();
    match format {
        Format::TorchZip => {
            let archive = torch_zip::archive_name(path);
            atomic_write(path, |w| torch_zip::write(value, w, &archive, &p))
        }
        Format::Safetensors => {
            let tensors = safetensors::flat_tensors(value).map_err(|e| with_path(e, &p))?;
            save_safetensors(&tensors, &BTreeMap::new(), path)
        }
        Format::TorchTar => Err(Error::Unsupported {
            what: "writing the pre-0.4 PyTorch tar format (PyTorch itself stopped writing it in 0.4); kiln writes the zip format every PyTorch since 1.6 reads".into(),
        }),
        Format::TorchLegacy => Err(Error::Unsupported {
            what: "writing the legacy (pre-1.6) PyTorch format; kiln writes the zip format every PyTorch since 1.6 reads".into(),
        }),
    }
}

fn with_path(e: Error, p: &str) -> Error {
    match e {
        Error::Schema { detail, .. } => Error::Schema {
            path: p.to_string(),
            detail,
        },
        other => other,
    }
}

/// Writes tensors as safetensors with extra `__metadata__` strings.
///
/// # Errors
/// `K0002` on I/O failure; `K0507` for duplicate names.
pub fn save_safetensors(
    tensors: &[(String, &TensorValue)],
    metadata: &BTreeMap<String, String>,
    path: &Path,
) -> Result<()> {
    let p = path.display().to_string();
    atomic_write(path, |w| safetensors::write(tensors, metadata, w, &p))
}

/// Saves a state dict (`torch.save(model.state_dict(), path)`): an `OrderedDict` with
/// `_metadata`, or safetensors for a `.safetensors` path.
///
/// # Errors
/// As [`save`].
pub fn save_state_dict(sd: &StateDict, path: impl AsRef<Path>) -> Result<()> {
    save(&state_dict_to_value(sd)?, path)
}
