//! Crash-safe file writes: write a temporary file in the target's directory, fsync it,
//! rename it over the target, fsync the directory. A crash or an error at any point leaves
//! the previous file (if any) intact; the temporary file is removed on error.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! let path = dir.path().join("notes.txt");
//! kiln::io::atomic_write(&path, |w| {
//!     w.write_all(b"hello").map_err(|e| kiln::Error::io("writing", "notes.txt", e))
//! })?;
//! assert_eq!(std::fs::read(&path)?, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of the write buffer. Large writes (tensor data) bypass it.
const BUFFER: usize = 1 << 20;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary file unless the write was committed.
struct TempGuard {
    path: PathBuf,
    committed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the error being reported is the one that matters.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The temporary path used for writing `path`: a hidden sibling in the same directory (so
/// the rename cannot cross file systems).
fn temp_path(path: &Path) -> Result<(PathBuf, PathBuf)> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("output path", path.display(), "a path to a file"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.kiln-tmp-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    ));
    Ok((dir, tmp))
}

/// Writes `path` atomically: `write` fills a buffered writer on a temporary file in the same
/// directory; on success the file is fsynced, renamed over `path` and the directory fsynced.
/// Readers see either the old file or the complete new one, never a partial one.
///
/// # Errors
/// `K0002` for any I/O failure (naming the path), or whatever `write` returns. On error the
/// temporary file is removed and `path` is untouched.
pub fn atomic_write<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> Result<()>,
{
    let (dir, tmp) = temp_path(path)?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io("creating temporary file", &tmp, e))?;
    let mut guard = TempGuard {
        path: tmp.clone(),
        committed: false,
    };
    // A plain file unless the test-only KILN_FAULT_INJECT asks for a fault (`io::fault`).
    let file = super::fault::FaultFile::new(file, path)?;
    let mut w = BufWriter::with_capacity(BUFFER, file);
    write(&mut w)?;
    let mut file = w
        .into_inner()
        .map_err(|e| Error::io("writing", path, e.into_error()))?;
    file.finish().map_err(|e| Error::io("writing", path, e))?;
    let file = file.file;
    file.sync_all().map_err(|e| Error::io("syncing", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming temporary file onto", path, e))?;
    guard.committed = true;
    sync_dir(&dir)
}

/// Fsyncs a directory so a rename in it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("syncing directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` atomically (see [`atomic_write`]).
///
/// # Errors
/// `K0002` for I/O failures.
pub fn atomic_write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write(path, |w| {
        w.write_all(bytes)
            .map_err(|e| Error::io("writing", path, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_keeps_previous_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.pt");
        atomic_write_bytes(&p, b"version 1").unwrap();
        // A writer that dies half way (like a crash mid-write).
        let r = atomic_write(&p, |w| {
            w.write_all(b"half of version 2").unwrap();
            Err(Error::invalid("simulated", "crash", "no crash"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"version 1");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["model.pt"], "temporary file left behind");
        atomic_write_bytes(&p, b"version 2").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"version 2");
    }

    #[test]
    fn missing_directory_is_k0002() {
        let e = atomic_write_bytes(Path::new("/nonexistent-dir-kiln/x.pt"), b"x").unwrap_err();
        assert_eq!(e.code(), "K0002");
        assert!(e.to_string().contains("nonexistent-dir-kiln"), "{e}");
    }
}
