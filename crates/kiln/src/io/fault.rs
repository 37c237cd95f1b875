//! Test-only fault injection into atomic writes of checkpoints, driven by the environment
//! variable [`FAULT_ENV`] (`KILN_FAULT_INJECT`). **Not for production use**: it exists so the
//! crash and disk-fault tests (`tests/fault_kill.rs`, `tests/disk_faults.rs`) can make the
//! real writer fail or stop at a chosen moment. Unset (always, outside tests), it costs one
//! cached environment read per process.
//!
//! Grammar: `ckpt-write:ACTION[:after=N]`, where ACTION is
//! - `enospc` / `eio`: the write fails with the operating system's `ENOSPC` ("No space left
//!   on device", [`std::io::ErrorKind::StorageFull`]) or `EIO`, after 4 KiB of the file are
//!   written (or, for a smaller file, where the fsync would be);
//! - `hold=PATH`: the writer writes 4 KiB of the file, creates the marker file `PATH` and
//!   then waits forever — a test kills the process while it is held mid-write.
//!
//! The fault hits the `N+1`-th checkpoint write of the process (default `N = 0`, the first)
//! and every one after it for `enospc`/`eio`. A checkpoint write is an atomic write of a file
//! whose name starts with `ckpt-` (the `.pt` form) or of a file inside a checkpoint
//! directory being written (the directory form, one count per file).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable read (test-only; see the module documentation).
pub const FAULT_ENV: &str = "KILN_FAULT_INJECT";

/// Bytes written before an injected fault strikes.
const STRIKE_AT: u64 = 4096;

#[derive(Clone, Debug)]
enum Action {
    Errno(i32),
    Hold(PathBuf),
}

#[derive(Clone, Debug)]
struct Plan {
    after: u64,
    action: Action,
}

static PLAN: OnceLock<Result<Option<Plan>, String>> = OnceLock::new();
static CKPT_WRITES: AtomicU64 = AtomicU64::new(0);

fn parse(spec: &str) -> Result<Plan, String> {
    let mut parts = spec.split(':');
    if parts.next() != Some("ckpt-write") {
        return Err("the point 'ckpt-write'".into());
    }
    let action = match parts.next() {
        Some("enospc") => Action::Errno(libc::ENOSPC),
        Some("eio") => Action::Errno(libc::EIO),
        Some(h) if h.starts_with("hold=") && h.len() > 5 => {
            Action::Hold(PathBuf::from(&h["hold=".len()..]))
        }
        _ => return Err("an action enospc, eio or hold=PATH".into()),
    };
    let mut after = 0;
    for p in parts {
        after = p
            .strip_prefix("after=")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("after=N, not '{p}'"))?;
    }
    Ok(Plan { after, action })
}

fn plan() -> Result<Option<&'static Plan>, crate::Error> {
    let p = PLAN.get_or_init(|| match std::env::var(FAULT_ENV) {
        Ok(s) if !s.is_empty() => parse(&s)
            .map(Some)
            .map_err(|want| format!("{s}: want {want}")),
        _ => Ok(None),
    });
    match p {
        Ok(p) => Ok(p.as_ref()),
        Err(msg) => Err(crate::Error::invalid(
            FAULT_ENV,
            msg,
            "the test-only form ckpt-write:enospc|eio|hold=PATH[:after=N]",
        )),
    }
}

fn is_checkpoint_write(target: &Path) -> bool {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    name(Some(target)).starts_with("ckpt-") || name(target.parent()).starts_with(".ckpt-")
}

/// A file that may fail or stop as [`FAULT_ENV`] asks; a plain file otherwise.
pub(crate) struct FaultFile {
    pub(crate) file: File,
    action: Option<Action>,
    written: u64,
}

impl FaultFile {
    /// Wraps the temporary `file` written for `target`.
    ///
    /// # Errors
    /// `K0003` for a malformed `KILN_FAULT_INJECT`.
    pub(crate) fn new(file: File, target: &Path) -> crate::Result<FaultFile> {
        let action = match plan()? {
            Some(p) if is_checkpoint_write(target) => {
                let n = CKPT_WRITES.fetch_add(1, Ordering::SeqCst);
                (n >= p.after).then(|| p.action.clone())
            }
            _ => None,
        };
        Ok(FaultFile {
            file,
            action,
            written: 0,
        })
    }

    /// Strikes a fault that has not struck yet (a file smaller than 4 KiB): called where
    /// the fsync would come.
    pub(crate) fn finish(&mut self) -> std::io::Result<()> {
        match self.action.take() {
            Some(a) => strike(&a),
            None => Ok(()),
        }
    }
}

fn strike(a: &Action) -> std::io::Result<()> {
    match a {
        Action::Errno(e) => Err(std::io::Error::from_raw_os_error(*e)),
        Action::Hold(marker) => {
            // Best effort: the test waits for the marker and kills this process.
            let _ = std::fs::write(marker, std::process::id().to_string());
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}

impl Write for FaultFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.action.is_some() && self.written + buf.len() as u64 > STRIKE_AT {
            let head = (STRIKE_AT - self.written.min(STRIKE_AT)) as usize;
            self.file.write_all(&buf[..head.min(buf.len())])?;
            self.file.flush()?;
            self.written += head as u64;
            if let Some(a) = self.action.take() {
                strike(&a)?;
            }
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let p = parse("ckpt-write:enospc:after=3").unwrap();
        assert_eq!(p.after, 3);
        assert!(matches!(p.action, Action::Errno(e) if e == libc::ENOSPC));
        assert!(matches!(
            parse("ckpt-write:hold=/tmp/m").unwrap().action,
            Action::Hold(_)
        ));
        for bad in [
            "",
            "x:enospc",
            "ckpt-write",
            "ckpt-write:full",
            "ckpt-write:eio:n=2",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(is_checkpoint_write(Path::new(
            "/r/checkpoints/ckpt-e0000-s00000001.pt"
        )));
        assert!(is_checkpoint_write(Path::new(
            "/r/.ckpt-e0000-s1.kiln-tmp-dir/model.safetensors"
        )));
        assert!(!is_checkpoint_write(Path::new("/r/checkpoints/last")));
    }
}
