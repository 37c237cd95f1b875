//! `kiln inspect --globals`: every class and function a PyTorch file's pickles would import
//! or call, found by the same parser that loads the file (in its scan mode, which builds and
//! calls nothing), each marked [`GlobalKind`].

use super::rebuild;
use crate::error::Result;
use crate::io::budget::Budget;
use crate::io::load::{Format, detect_format};
use crate::io::pickle::{danger, globals};
use crate::io::{legacy, torch_zip};
use std::path::Path;

/// What a global is, from kiln's point of view.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GlobalKind {
    /// On the weights-only allow-list (tensors, storages, containers, dtypes).
    Safe,
    /// A module class kiln rebuilds (`torch.nn.modules.linear.Linear`), or a function
    /// reference a rebuild reads (`torch.nn.functional.relu`, see [`rebuild::REFERENCES`]).
    Rebuildable,
    /// Runs code or reaches the system (`os.system`, `builtins.eval`, `getattr`…).
    Dangerous,
    /// Anything else (`__main__.MyNet`): read as an inert record, never called.
    Unknown,
}

impl GlobalKind {
    /// `safe`, `rebuildable`, `dangerous`, `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            GlobalKind::Safe => "safe",
            GlobalKind::Rebuildable => "rebuildable",
            GlobalKind::Dangerous => "dangerous",
            GlobalKind::Unknown => "unknown",
        }
    }
}

/// One global a file names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalUse {
    /// `torch.nn.modules.linear`
    pub module: String,
    /// `Linear`
    pub name: String,
    /// Its kind.
    pub kind: GlobalKind,
    /// Why it is dangerous (empty otherwise).
    pub why: String,
}

/// Classifies `module.name`.
pub fn classify(module: &str, name: &str) -> GlobalUse {
    let (kind, why) = if let Some(why) = danger::why_dangerous(module, name) {
        (GlobalKind::Dangerous, why.to_string())
    } else if !matches!(
        globals::resolve(module, name, ""),
        Err(crate::Error::UnsafeGlobal { .. })
    ) {
        (GlobalKind::Safe, String::new())
    } else if rebuild::can_rebuild(&scripted_path(module, name))
        || rebuild::REFERENCES.contains(&format!("{module}.{name}").as_str())
    {
        (GlobalKind::Rebuildable, String::new())
    } else {
        (GlobalKind::Unknown, String::new())
    };
    GlobalUse {
        module: module.to_string(),
        name: name.to_string(),
        kind,
        why,
    }
}

/// `module.name`, without TorchScript's `__torch__.` prefix and name mangling.
fn scripted_path(module: &str, name: &str) -> String {
    let m = module.strip_prefix("__torch__.").unwrap_or(module);
    let m: Vec<&str> = m
        .split('.')
        .filter(|s| !s.starts_with("___torch_mangle"))
        .collect();
    format!("{}.{name}", m.join("."))
}

/// Every global the pickles of the PyTorch file at `path` name (zip, legacy, tar, TorchScript),
/// in first-use order; a safetensors file has none. Nothing is built or called: the list
/// is complete even for a file the loaders refuse.
///
/// # Errors
/// `K0002` when the file cannot be read, `K0501`/`K0502`/`K0503`/`K0505` for damaged or
/// unknown files, `K0508` past the read budget.
pub fn list_globals(path: impl AsRef<Path>) -> Result<Vec<GlobalUse>> {
    let path = path.as_ref();
    let p = path.display().to_string();
    let len = std::fs::metadata(path)
        .map_err(|e| crate::Error::io("reading", path, e))?
        .len();
    let budget = Budget::new(&p, len, None);
    let found = match detect_format(path)? {
        Format::Safetensors => Vec::new(),
        Format::TorchZip => torch_zip::scan_file(path, &budget)?,
        Format::TorchLegacy => {
            let data = std::fs::read(path).map_err(|e| crate::Error::io("reading", path, e))?;
            legacy::scan(&data, &p, &budget)?
        }
        Format::TorchTar => {
            let data = std::fs::read(path).map_err(|e| crate::Error::io("reading", path, e))?;
            crate::io::torch_tar::scan(&data, &p, &budget)?
        }
    };
    Ok(found.iter().map(|(m, n)| classify(m, n)).collect())
}

/// The exit code `kiln inspect --globals` gives: 0 when every global is safe or
/// rebuildable, 1 when some are unknown, 2 when any is dangerous.
pub fn exit_code(uses: &[GlobalUse]) -> i32 {
    if uses.iter().any(|u| u.kind == GlobalKind::Dangerous) {
        2
    } else if uses.iter().any(|u| u.kind == GlobalKind::Unknown) {
        1
    } else {
        0
    }
}
