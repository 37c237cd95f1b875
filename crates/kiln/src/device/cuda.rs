//! `torch.cuda` for kiln: availability, device count, names, memory, the current device and
//! seeding. In a CPU-only build (no `cuda` feature) or on a machine without a usable GPU the
//! queries answer truthfully (`false`, `0`) instead of failing.

use super::visible::Visible;
use crate::error::{Error, Result};
use candle_core::Device;
use std::sync::atomic::{AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);

/// Why CUDA cannot be used here, or `None` when it can.
pub fn unavailable_reason() -> Option<String> {
    if !cfg!(feature = "cuda") {
        return Some(
            "kiln was built without CUDA support (rebuild with `cargo build --features cuda`)"
                .to_string(),
        );
    }
    if let Visible::HidesAll(v) = Visible::from_env() {
        return Some(format!(
            "CUDA_VISIBLE_DEVICES='{v}' hides every GPU (unset it or list GPU indices)"
        ));
    }
    match backend::device_count() {
        Ok(0) => Some("the CUDA driver reports no GPU on this machine".to_string()),
        Ok(_) => None,
        Err(e) => Some(format!(
            "the CUDA driver could not be initialised ({e}): no NVIDIA driver or GPU"
        )),
    }
}

/// Whether CUDA can be used (`torch.cuda.is_available()`).
pub fn is_available() -> bool {
    unavailable_reason().is_none()
}

/// Number of visible CUDA devices (`torch.cuda.device_count()`); 0 when unavailable.
pub fn device_count() -> usize {
    if !cfg!(feature = "cuda") {
        return 0;
    }
    if matches!(Visible::from_env(), Visible::HidesAll(_)) {
        return 0;
    }
    backend::device_count().unwrap_or(0)
}

/// Checks that logical device `ordinal` exists.
///
/// # Errors
/// `K0303` when CUDA is unavailable (with the reason), `K0304` when `ordinal` is not below
/// the device count.
pub fn check_ordinal(ordinal: usize) -> Result<()> {
    if let Some(reason) = unavailable_reason() {
        return Err(Error::CudaUnavailable {
            requested: format!("cuda:{ordinal}"),
            reason,
        });
    }
    let count = device_count();
    if ordinal >= count {
        return Err(Error::NoSuchDevice {
            requested: format!("cuda:{ordinal}"),
            count,
            visible: format!(" ({})", Visible::from_env().describe()),
        });
    }
    Ok(())
}

/// The name of logical device `ordinal` (`torch.cuda.get_device_name`).
///
/// # Errors
/// `K0303`/`K0304` as [`check_ordinal`].
pub fn device_name(ordinal: usize) -> Result<String> {
    check_ordinal(ordinal)?;
    backend::device_name(ordinal)
}

/// Total memory of logical device `ordinal`, in bytes.
///
/// # Errors
/// `K0303`/`K0304` as [`check_ordinal`].
pub fn total_memory(ordinal: usize) -> Result<u64> {
    check_ordinal(ordinal)?;
    backend::total_memory(ordinal)
}

/// The current device index (`torch.cuda.current_device()`), used for `cuda` without index.
pub fn current_device() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Sets the current device (`torch.cuda.set_device`).
///
/// # Errors
/// `K0303`/`K0304` when the device does not exist.
pub fn set_device(ordinal: usize) -> Result<()> {
    check_ordinal(ordinal)?;
    CURRENT.store(ordinal, Ordering::Relaxed);
    Ok(())
}

/// The candle device for logical `ordinal`, created once and cached (candle treats two
/// handles of one GPU as different devices, so kiln always hands out the same one).
///
/// # Errors
/// `K0303`/`K0304` as [`check_ordinal`].
pub fn device(ordinal: usize) -> Result<Device> {
    check_ordinal(ordinal)?;
    backend::device(ordinal)
}

/// Seeds the current device's generator (`torch.cuda.manual_seed`); a no-op without CUDA,
/// as in PyTorch. kiln draws initialisation, dropout and shuffles from its own CPU
/// generator, so CUDA seeds only affect candle's GPU-side random ops.
pub fn manual_seed(seed: u64) -> Result<()> {
    if !is_available() {
        return Ok(());
    }
    backend::seed(current_device(), seed)
}

/// Seeds every visible device (`torch.cuda.manual_seed_all`); a no-op without CUDA.
pub fn manual_seed_all(seed: u64) -> Result<()> {
    if !is_available() {
        return Ok(());
    }
    for i in 0..device_count() {
        backend::seed(i, seed)?;
    }
    Ok(())
}

#[cfg(feature = "cuda")]
mod backend {
    use crate::error::{Error, Result};
    use candle_core::Device;
    use candle_core::cuda_backend::cudarc::driver::{CudaContext, result};
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    fn devices() -> &'static Mutex<HashMap<usize, Device>> {
        static D: OnceLock<Mutex<HashMap<usize, Device>>> = OnceLock::new();
        D.get_or_init(|| Mutex::new(HashMap::new()))
    }

    pub fn device_count() -> std::result::Result<usize, String> {
        CudaContext::device_count()
            .map(|n| n.max(0) as usize)
            .map_err(|e| e.to_string())
    }

    fn driver_err(what: &str, e: impl std::fmt::Display) -> Error {
        Error::CudaUnavailable {
            requested: what.to_string(),
            reason: e.to_string(),
        }
    }

    pub fn device_name(ordinal: usize) -> Result<String> {
        result::init().map_err(|e| driver_err("cuda", e))?;
        let dev = result::device::get(ordinal as i32).map_err(|e| driver_err("cuda", e))?;
        result::device::get_name(dev).map_err(|e| driver_err("cuda", e))
    }

    pub fn total_memory(ordinal: usize) -> Result<u64> {
        result::init().map_err(|e| driver_err("cuda", e))?;
        let dev = result::device::get(ordinal as i32).map_err(|e| driver_err("cuda", e))?;
        // SAFETY: `dev` is a valid device handle obtained from the driver just above.
        let mem = unsafe { result::device::total_mem(dev) }.map_err(|e| driver_err("cuda", e))?;
        Ok(mem as u64)
    }

    pub fn device(ordinal: usize) -> Result<Device> {
        let mut map = devices().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = map.get(&ordinal) {
            return Ok(d.clone());
        }
        let d = Device::new_cuda(ordinal).map_err(|e| driver_err(&format!("cuda:{ordinal}"), e))?;
        map.insert(ordinal, d.clone());
        Ok(d)
    }

    pub fn seed(ordinal: usize, seed: u64) -> Result<()> {
        device(ordinal)?
            .set_seed(seed)
            .map_err(|e| crate::Error::backend("cuda manual_seed", e))
    }
}

#[cfg(not(feature = "cuda"))]
mod backend {
    use crate::error::{Error, Result};
    use candle_core::Device;

    fn unavailable(what: &str) -> Error {
        Error::CudaUnavailable {
            requested: what.to_string(),
            reason: "kiln was built without CUDA support".to_string(),
        }
    }

    pub fn device_count() -> std::result::Result<usize, String> {
        Ok(0)
    }

    pub fn device_name(ordinal: usize) -> Result<String> {
        Err(unavailable(&format!("cuda:{ordinal}")))
    }

    pub fn total_memory(ordinal: usize) -> Result<u64> {
        Err(unavailable(&format!("cuda:{ordinal}")))
    }

    pub fn device(ordinal: usize) -> Result<Device> {
        Err(unavailable(&format!("cuda:{ordinal}")))
    }

    pub fn seed(_ordinal: usize, _seed: u64) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cpu_build_answers_truthfully() {
        assert!(!is_available());
        assert_eq!(device_count(), 0);
        assert!(unavailable_reason().unwrap().contains("without CUDA"));
        let e = device(0).unwrap_err();
        assert_eq!(e.code(), "K0303");
        assert!(manual_seed(1).is_ok() && manual_seed_all(1).is_ok());
        assert_eq!(set_device(1).unwrap_err().code(), "K0303");
    }
}
