//! Entry points for fuzzers (`fuzz/` cargo-fuzz targets and `tests/fuzz_smoke.rs`): each
//! runs one reader on arbitrary bytes from memory. They must return (an error, usually),
//! never panic, hang or exhaust memory.

use super::budget::Budget;
use super::pickle::{Mode, StorageSource, scan_globals, unpickle, unpickle_mode};
use super::torch_zip::Backing;
use super::value::{Bytes, Dtype, Storage};
use super::{legacy, safetensors, torch_tar, torch_zip};
use crate::error::{Error, Result};
use std::sync::Arc;

/// Serves zero-filled storages of at most 1 MiB for any persistent id.
struct Dummy;

impl StorageSource for Dummy {
    fn storage(
        &mut self,
        key: &str,
        dtype: Dtype,
        location: &str,
        numel: usize,
        _: Option<(usize, usize)>,
    ) -> Result<Arc<Storage>> {
        let len = numel
            .checked_mul(dtype.size())
            .filter(|&n| n <= 1 << 20)
            .ok_or_else(|| Error::Schema {
                path: String::new(),
                detail: format!("storage '{key}' too large for the fuzzer"),
            })?;
        Ok(Arc::new(Storage {
            dtype,
            location: location.to_string(),
            data: Bytes::Owned(Arc::new(vec![0; len])),
        }))
    }
}

fn locate(t: &str) -> Result<String> {
    Ok(t.to_string())
}

/// Runs the pickle reader on `data`.
pub fn pickle_reader(data: &[u8]) -> Result<()> {
    unpickle(data, &mut Dummy, "fuzz").map(drop)
}

/// Runs the PyTorch zip reader on `data`.
pub fn torch_zip_reader(data: &[u8]) -> Result<()> {
    torch_zip::read(&Backing::Memory(data.to_vec()), "fuzz", true, &mut locate).map(drop)
}

/// Runs the legacy-format reader on `data`.
pub fn legacy_reader(data: &[u8]) -> Result<()> {
    legacy::read(data, "fuzz", &mut locate).map(drop)
}

/// Runs the pre-0.4 tar checkpoint reader on `data`, in the weights-only and the structural
/// mode, and the scan of its globals.
pub fn torch_tar_reader(data: &[u8]) -> Result<()> {
    let a = torch_tar::read(data, "fuzz", &mut locate).map(drop);
    let budget = Budget::new("fuzz", data.len() as u64, None);
    let b = torch_tar::read_mode(data, "fuzz", &mut locate, &budget, Mode::Structural).map(drop);
    let budget = Budget::new("fuzz", data.len() as u64, None);
    let c = torch_tar::scan(data, "fuzz", &budget).map(drop);
    // A valid file loads in one mode at least: a state dict weights-only, a whole module
    // structurally.
    a.or(b).and(c)
}

/// Runs the safetensors reader on `data`.
pub fn safetensors_reader(data: &[u8]) -> Result<()> {
    safetensors::read(&Backing::Memory(data.to_vec()), "fuzz", &mut locate).map(drop)
}

/// Runs the pickle reader in the structural mode (whole-module pickles), then the scan of
/// its globals, on `data`.
pub fn structural_pickle_reader(data: &[u8]) -> Result<()> {
    let budget = Budget::new("fuzz", data.len() as u64, None);
    let a = unpickle_mode(data, &mut Dummy, "fuzz", &budget, Mode::Structural).map(drop);
    let budget = Budget::new("fuzz", data.len() as u64, None);
    let b = scan_globals(data, "fuzz", &budget).map(drop);
    a.and(b)
}

/// Runs the PyTorch zip reader in the structural mode on `data`, and the module tree and
/// state-dict extraction on what it reads.
pub fn structural_zip_reader(data: &[u8]) -> Result<()> {
    let budget = Budget::new("fuzz", data.len() as u64, None);
    let v = torch_zip::read_mode(
        &Backing::Memory(data.to_vec()),
        "fuzz",
        true,
        &mut locate,
        &budget,
        Mode::Structural,
    )?;
    let tree = super::module_file::module_tree(&v, "fuzz")?;
    let _ = super::module_file::module_repr(&tree);
    let _ = super::module_file::rebuild::spec_tree(&tree, "fuzz");
    drop(tree.state_dict());
    Ok(())
}
