//! `map_location`: where the storages of a file go when it is loaded, as in `torch.load`.
//!
//! Each storage carries the location tag it was saved from (`cpu`, `cuda:1`). A
//! [`MapLocation`] rewrites tags as the file is read: one device for everything, a
//! tag → tag map (`{"cuda:1": "cuda:0"}`; unlisted tags stay), or a function. After mapping,
//! a tag must name a device that exists here: a `cuda:N` tag without CUDA fails with `K0506`
//! (PyTorch: "Attempting to deserialize object on a CUDA device but
//! torch.cuda.is_available() is False"), an index past the device count with `K0304`.
//!
//! ```
//! use kiln::io::MapLocation;
//! let m = MapLocation::parse("cuda:1=cuda:0,cuda:2=cpu")?;
//! assert_eq!(m.apply("cuda:1"), "cuda:0");
//! assert_eq!(m.apply("cpu"), "cpu");
//! assert_eq!(MapLocation::from("cpu").apply("cuda:3"), "cpu");
//! # Ok::<(), kiln::Error>(())
//! ```

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// How to rewrite the location tags of a file's storages on load.
#[derive(Clone)]
pub enum MapLocation {
    /// Every storage goes to this device (`"cpu"`, `"cuda:0"`).
    Device(String),
    /// Tags listed are replaced; others are kept.
    Map(BTreeMap<String, String>),
    /// A function of the saved tag.
    Func(Arc<dyn Fn(&str) -> String + Send + Sync>),
}

impl std::fmt::Debug for MapLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapLocation::Device(d) => write!(f, "Device({d:?})"),
            MapLocation::Map(m) => write!(f, "Map({m:?})"),
            MapLocation::Func(_) => write!(f, "Func(..)"),
        }
    }
}

impl From<&str> for MapLocation {
    fn from(s: &str) -> Self {
        MapLocation::Device(s.to_string())
    }
}

impl From<String> for MapLocation {
    fn from(s: String) -> Self {
        MapLocation::Device(s)
    }
}

impl From<BTreeMap<String, String>> for MapLocation {
    fn from(m: BTreeMap<String, String>) -> Self {
        MapLocation::Map(m)
    }
}

impl MapLocation {
    /// A mapping from a function of the saved tag.
    pub fn func(f: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        MapLocation::Func(Arc::new(f))
    }

    /// Parses the CLI form: a device (`cpu`, `cuda:0`) or `FROM=TO` pairs separated by commas
    /// (`cuda:1=cuda:0,cuda:2=cpu`).
    ///
    /// # Errors
    /// `K0305` for an empty text or an empty side of a pair.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        let bad = || Error::Parse {
            what: "map_location",
            text: text.to_string(),
            expected: "a device (cpu, cuda:0) or FROM=TO pairs (cuda:1=cuda:0,cuda:2=cpu)".into(),
        };
        if t.is_empty() {
            return Err(bad());
        }
        if !t.contains('=') {
            return Ok(MapLocation::Device(normalize(t)));
        }
        let mut m = BTreeMap::new();
        for pair in t.split(',') {
            let (a, b) = pair.split_once('=').ok_or_else(bad)?;
            let (a, b) = (a.trim(), b.trim());
            if a.is_empty() || b.is_empty() {
                return Err(bad());
            }
            m.insert(normalize(a), normalize(b));
        }
        Ok(MapLocation::Map(m))
    }

    /// The tag a storage saved at `tag` is restored to.
    pub fn apply(&self, tag: &str) -> String {
        match self {
            MapLocation::Device(d) => d.clone(),
            MapLocation::Map(m) => m.get(tag).cloned().unwrap_or_else(|| tag.to_string()),
            MapLocation::Func(f) => f(tag),
        }
    }
}

/// `cuda` is `cuda:0` for storages, as PyTorch restores it.
fn normalize(tag: &str) -> String {
    tag.trim().to_string()
}

/// Number of CUDA devices usable here (0 in a build without the `cuda` feature).
pub fn cuda_device_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        if !candle_core::utils::cuda_is_available() {
            return 0;
        }
        (0..64)
            .take_while(|&i| candle_core::Device::new_cuda(i).is_ok())
            .count()
    })
}

/// Checks that a (mapped) tag names a device available here, for a file at `path`.
///
/// # Errors
/// `K0506` for `cuda` tags without CUDA (with the map_location fix), `K0304` for a CUDA
/// index past the device count, `K0005` for other device types (`mps`, `xpu`, `meta`…).
pub fn check_location(tag: &str, path: &str) -> Result<()> {
    check_location_with(tag, path, cuda_device_count())
}

/// [`check_location`] with an explicit CUDA device count (for tests).
///
/// # Errors
/// As [`check_location`].
pub fn check_location_with(tag: &str, path: &str, cuda_count: usize) -> Result<()> {
    let (kind, index) = match tag.split_once(':') {
        Some((k, i)) => (k, Some(i)),
        None => (tag, None),
    };
    match kind {
        "cpu" => Ok(()),
        "cuda" => {
            if cuda_count == 0 {
                return Err(Error::CudaStorage {
                    path: path.to_string(),
                    location: tag.to_string(),
                    reason: "torch.cuda.is_available() is False (no CUDA device is usable by this kiln build). If you are running on a CPU-only machine, load with map_location=cpu (LoadOptions::new().map_location(\"cpu\"); CLI: --map-location cpu) to map your storages to the CPU".into(),
                });
            }
            let i: usize = match index {
                None => 0,
                Some(s) => s.parse().map_err(|_| Error::Parse {
                    what: "device",
                    text: tag.to_string(),
                    expected: "cpu or cuda:N".into(),
                })?,
            };
            if i >= cuda_count {
                return Err(Error::NoSuchDevice {
                    requested: tag.to_string(),
                    count: cuda_count,
                    visible: format!(
                        " (storages of '{path}' are tagged {tag}; remap them with map_location, e.g. {{\"{tag}\": \"cuda:0\"}})"
                    ),
                });
            }
            Ok(())
        }
        other => Err(Error::Unsupported {
            what: format!("storages on device '{other}' in '{path}' (load with map_location=cpu)"),
        }),
    }
}

/// The candle device for a (checked) tag.
///
/// # Errors
/// As [`check_location`], plus backend errors creating the device.
pub fn device_for(tag: &str, path: &str) -> Result<candle_core::Device> {
    check_location(tag, path)?;
    match tag.split_once(':') {
        Some(("cuda", i)) => {
            let i: usize = i.parse().unwrap_or(0);
            candle_core::Device::new_cuda(i).map_err(|e| Error::backend("opening CUDA device", e))
        }
        None if tag == "cuda" => {
            candle_core::Device::new_cuda(0).map_err(|e| Error::backend("opening CUDA device", e))
        }
        _ => Ok(candle_core::Device::Cpu),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_without_cuda_is_k0506_with_fix() {
        let e = check_location_with("cuda:0", "gpu.pt", 0).unwrap_err();
        assert_eq!(e.code(), "K0506");
        let msg = e.to_string();
        assert!(
            msg.contains("gpu.pt") && msg.contains("map_location"),
            "{msg}"
        );
        assert!(msg.contains("torch.cuda.is_available() is False"), "{msg}");
    }

    #[test]
    fn cuda_index_past_count_is_k0304() {
        let e = check_location_with("cuda:3", "gpu.pt", 2).unwrap_err();
        assert_eq!(e.code(), "K0304");
        assert!(e.to_string().contains("cuda:3"));
        assert!(check_location_with("cuda:1", "gpu.pt", 2).is_ok());
        assert!(check_location_with("cpu", "x", 0).is_ok());
        assert_eq!(
            check_location_with("mps", "x", 0).unwrap_err().code(),
            "K0005"
        );
    }

    #[test]
    fn mappings() {
        let f = MapLocation::func(|t| {
            t.replace("cuda", "cpu")
                .split(':')
                .next()
                .unwrap_or("cpu")
                .to_string()
        });
        assert_eq!(f.apply("cuda:1"), "cpu");
        assert!(MapLocation::parse("cuda:1=").is_err());
        let m = MapLocation::parse("cuda:1=cuda:0").unwrap();
        assert_eq!(m.apply("cuda:1"), "cuda:0");
        assert_eq!(m.apply("cuda:0"), "cuda:0");
    }
}
