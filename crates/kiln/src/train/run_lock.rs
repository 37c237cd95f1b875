//! One live run per output directory: an advisory lock on `<dir>/.kiln-run.lock`.
//!
//! Two `kiln train --out d` started together used to both "succeed", interleaving their
//! lines in `metrics.jsonl` and their files in `checkpoints/` (issue 17, finding 5). A run now
//! takes an exclusive `flock` on [`LOCK_FILE`] in its directory before touching anything
//! there, and writes its pid into the file; a second run finds the lock held and is refused
//! with `K0730` naming the holder's pid and the lock file. The operating system releases a
//! `flock` when its holder exits, however it exits (a SIGKILL included), so a lock file left
//! by a killed run is stale by construction: the next run takes it over silently.
//!
//! The file is never deleted (deleting it would let a run that opened the old file and one
//! that creates a new one both hold "the" lock); only its content, the holder's pid, changes.
//! On platforms without `flock`, and on file systems that refuse it (`ENOLCK`,
//! `EOPNOTSUPP`: some network mounts), the lock is a no-op.

use crate::error::{Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Name of the lock file inside a run's directory.
pub const LOCK_FILE: &str = ".kiln-run.lock";

/// An exclusive lock on a run directory, held until dropped (or the process ends).
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    // Closing the file releases the lock.
    _file: File,
}

impl RunLock {
    /// Creates `dir` if needed and takes its run lock, writing this process's pid into
    /// `<dir>/.kiln-run.lock`. A lock file whose holder has exited is taken over.
    ///
    /// # Errors
    /// `K0730` when a live process holds the lock (naming its pid and the lock file);
    /// `K0002` when the directory or the lock file cannot be created or written.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("opening run lock", &path, e))?;
        if !try_lock(&file).map_err(|e| Error::io("locking", &path, e))? {
            return Err(Error::RunLocked {
                dir: dir.to_path_buf(),
                pid: holder_pid(&path),
                lock: path,
            });
        }
        write_pid(&file).map_err(|e| Error::io("writing pid into", &path, e))?;
        Ok(RunLock { path, _file: file })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The pid a held lock file names. The holder writes it right after locking, so an empty
/// file is read again for a moment before giving up.
fn holder_pid(path: &Path) -> String {
    for _ in 0..50 {
        if let Ok(text) = std::fs::read_to_string(path) {
            let t = text.trim();
            if !t.is_empty() {
                return t.to_string();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    "unknown".into()
}

fn write_pid(file: &File) -> std::io::Result<()> {
    use std::io::{Seek, Write};
    let mut f = file;
    f.set_len(0)?;
    f.seek(std::io::SeekFrom::Start(0))?;
    writeln!(f, "{}", std::process::id())?;
    f.sync_all()
}

/// Takes the exclusive lock without waiting: `Ok(false)` when another open file holds it.
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: `flock` only reads the descriptor, which `file` keeps open for the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            // A file system without locks (some network mounts): run unlocked, as before,
            // rather than refuse every run there.
            Some(libc::ENOLCK | libc::EOPNOTSUPP | libc::ENOSYS) => return Ok(true),
            _ => return Err(e),
        }
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

/// Removes everything in `dir` except its run lock (a fresh run's clean slate, taken while
/// holding the lock).
///
/// # Errors
/// `K0002` when an entry cannot be removed.
pub fn clear_except_lock(dir: &Path) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("reading", dir, e)),
    };
    for e in rd.flatten() {
        if e.file_name() == LOCK_FILE {
            continue;
        }
        let p = e.path();
        let r = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|err| Error::io("clear", &p, err))?;
    }
    Ok(())
}

/// Removes the temporary files of interrupted atomic writes (`.NAME.kiln-tmp-…`) in `dir`.
/// Call it only while holding `dir`'s run lock: a live run's temporaries are its own.
pub fn remove_temporaries(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') && name.contains(".kiln-tmp") {
            let p = e.path();
            // Best effort: a temporary that cannot be removed harms nothing.
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_k0730_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let a = RunLock::acquire(dir.path()).unwrap();
        let e = RunLock::acquire(dir.path()).unwrap_err();
        assert_eq!(e.code(), "K0730");
        let msg = e.to_string();
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        assert!(msg.contains(LOCK_FILE), "{msg}");
        drop(a);
        let b = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(b.path(), dir.path().join(LOCK_FILE));
    }

    #[test]
    fn clear_keeps_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _l = RunLock::acquire(dir.path()).unwrap();
        std::fs::write(dir.path().join("x"), b"x").unwrap();
        std::fs::create_dir_all(dir.path().join("d/e")).unwrap();
        clear_except_lock(dir.path()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [LOCK_FILE]);
    }
}
