//! `DeviceSpec`: a device by name — `cpu`, `cuda` (the current device), `cuda:N` — as
//! PyTorch spells it, resolved to a candle device when used.
//!
//! ```
//! use kiln::device::DeviceSpec;
//! let d: DeviceSpec = "cuda:1".parse()?;
//! assert_eq!(d.to_string(), "cuda:1");
//! assert_eq!("cpu".parse::<DeviceSpec>()?.resolve()?.is_cpu(), true);
//! # Ok::<(), kiln::Error>(())
//! ```

use super::cuda;
use crate::error::{Error, Result};
use candle_core::{Device, DeviceLocation};

/// A device name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    /// The CPU.
    Cpu,
    /// A CUDA device; `None` means the current device (`cuda`).
    Cuda(Option<usize>),
}

impl std::str::FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let t = text.trim().to_ascii_lowercase();
        let bad = || Error::Parse {
            what: "device",
            text: text.to_string(),
            expected: "cpu, cuda, cuda:N".into(),
        };
        match t.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(None)),
            _ => {
                let idx = t.strip_prefix("cuda:").ok_or_else(bad)?;
                idx.parse::<usize>()
                    .map(|i| DeviceSpec::Cuda(Some(i)))
                    .map_err(|_| bad())
            }
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(None) => write!(f, "cuda"),
            DeviceSpec::Cuda(Some(i)) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceSpec {
    /// The spec of a candle device.
    pub fn of(device: &Device) -> Self {
        match device.location() {
            DeviceLocation::Cuda { gpu_id } => DeviceSpec::Cuda(Some(gpu_id)),
            _ => DeviceSpec::Cpu,
        }
    }

    /// Whether this is a CUDA device.
    pub fn is_cuda(&self) -> bool {
        matches!(self, DeviceSpec::Cuda(_))
    }

    /// The device index (`cuda` → the current device).
    pub fn index(&self) -> Option<usize> {
        match self {
            DeviceSpec::Cpu => None,
            DeviceSpec::Cuda(i) => Some(i.unwrap_or_else(cuda::current_device)),
        }
    }

    /// The candle device.
    ///
    /// # Errors
    /// `K0303` when CUDA is unavailable (naming why: CPU-only build, no driver, hidden by
    /// `CUDA_VISIBLE_DEVICES`); `K0304` for an index beyond the device count.
    pub fn resolve(&self) -> Result<Device> {
        match self.index() {
            None => Ok(Device::Cpu),
            Some(i) => cuda::device(i),
        }
    }
}

/// Parses and resolves a device name in one step.
///
/// # Errors
/// `K0305` for a bad name, then as [`DeviceSpec::resolve`].
pub fn parse_device(text: &str) -> Result<Device> {
    text.parse::<DeviceSpec>()?.resolve()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for s in ["cpu", "cuda", "cuda:0", "cuda:12"] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap().to_string(), s);
        }
        assert_eq!(
            "CUDA:1".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::Cuda(Some(1))
        );
        for bad in ["gpu0", "cuda:", "cuda:x", "tpu", ""] {
            assert_eq!(
                bad.parse::<DeviceSpec>().unwrap_err().code(),
                "K0305",
                "{bad}"
            );
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_support_is_a_coded_error() {
        let e = parse_device("cuda:1").unwrap_err();
        assert_eq!(e.code(), "K0303");
        assert!(e.to_string().contains("cuda:1"));
        assert!(parse_device("cpu").unwrap().is_cpu());
    }
}
