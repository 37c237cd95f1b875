//! Writes the final state dict as safetensors, deterministically and atomically.
//!
//! Isolated here so that the project's own writer (`kiln::io::save`) can replace it in one
//! place. Same tensors → same bytes: the header lists tensors in the `safetensors` crate's
//! fixed order (by alignment, then name) and holds only `{"format": "pt"}` as metadata.

use crate::error::{Context, Error, Result};
use crate::nn::StateDict;
use candle_core::{DType, Tensor};
use safetensors::{Dtype, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn le_bytes<T: candle_core::WithDType, const N: usize>(
    t: &Tensor,
    to: impl Fn(T) -> [u8; N],
) -> Result<Vec<u8>> {
    let v: Vec<T> = t.flatten_all().and_then(|f| f.to_vec1()).ctx("save")?;
    Ok(v.into_iter().flat_map(to).collect())
}

fn raw(key: &str, t: &Tensor) -> Result<Raw> {
    let t = t.to_device(&candle_core::Device::Cpu).ctx("save")?;
    let (dtype, bytes) = match t.dtype() {
        DType::F32 => (Dtype::F32, le_bytes::<f32, 4>(&t, f32::to_le_bytes)?),
        DType::F64 => (Dtype::F64, le_bytes::<f64, 8>(&t, f64::to_le_bytes)?),
        DType::F16 => (
            Dtype::F16,
            le_bytes::<half::f16, 2>(&t, half::f16::to_le_bytes)?,
        ),
        DType::BF16 => (
            Dtype::BF16,
            le_bytes::<half::bf16, 2>(&t, half::bf16::to_le_bytes)?,
        ),
        DType::I64 => (Dtype::I64, le_bytes::<i64, 8>(&t, i64::to_le_bytes)?),
        DType::U32 => (Dtype::U32, le_bytes::<u32, 4>(&t, u32::to_le_bytes)?),
        DType::U8 => (Dtype::U8, le_bytes::<u8, 1>(&t, u8::to_le_bytes)?),
        other => {
            return Err(Error::Unsupported {
                what: format!("saving tensor '{key}' of dtype {other:?} as safetensors"),
            });
        }
    };
    Ok(Raw {
        dtype,
        shape: t.dims().to_vec(),
        bytes,
    })
}

/// The safetensors bytes of `sd` (deterministic).
///
/// # Errors
/// `K0005` for a dtype safetensors cannot hold here; `K0001` when a tensor cannot be read.
pub fn safetensors_bytes(sd: &StateDict) -> Result<Vec<u8>> {
    let raws: Vec<(String, Raw)> = sd
        .iter()
        .map(|(k, t)| Ok((k.to_string(), raw(k, t)?)))
        .collect::<Result<_>>()?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(raws.iter().map(|(k, r)| (k.as_str(), r)), Some(meta)).map_err(|e| {
        Error::Unsupported {
            what: format!("safetensors serialisation: {e}"),
        }
    })
}

/// Writes `sd` to `path` as safetensors: to a temporary file in the same folder, fsync,
/// rename over `path`, fsync the folder — a crash leaves the old file or the new one.
///
/// # Errors
/// `K0002` on any I/O failure, with the path.
pub fn save_state_dict(sd: &StateDict, path: &Path) -> Result<()> {
    let bytes = safetensors_bytes(sd)?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync folder).
///
/// # Errors
/// `K0002` on any I/O failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io("rename into", path, e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            d.sync_all().map_err(|e| Error::io("fsync", dir, e))?;
        }
        Ok(())
    })();
    if result.is_err() {
        // Best effort: the temporary file is useless after a failure.
        std::fs::remove_file(&tmp).ok();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn bytes_are_deterministic_and_readable() {
        let mut sd = StateDict::new();
        sd.insert(
            "b.weight",
            Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu).unwrap(),
        );
        sd.insert(
            "a.num_batches_tracked",
            Tensor::new(7i64, &Device::Cpu).unwrap(),
        );
        let a = safetensors_bytes(&sd).unwrap();
        assert_eq!(a, safetensors_bytes(&sd).unwrap());
        let st = safetensors::SafeTensors::deserialize(&a).unwrap();
        let w = st.tensor("b.weight").unwrap();
        assert_eq!(w.shape(), &[2, 2]);
        assert_eq!(&w.data()[4..8], &2f32.to_le_bytes());
        assert_eq!(
            st.tensor("a.num_batches_tracked").unwrap().dtype(),
            Dtype::I64
        );
    }
}
