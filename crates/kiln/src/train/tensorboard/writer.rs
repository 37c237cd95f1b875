//! `EventWriter`: one `events.out.tfevents.<secs>.<host>.<pid>.<n>` file, written through a
//! buffer (memory stays bounded however long the run) and flushed on demand.

use super::hparams::{self, HParamValue};
use super::proto;
use super::record::frame;
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The prefix of every event file name.
pub const FILE_PREFIX: &str = "events.out.tfevents.";

/// `source_metadata.writer` of kiln's files.
pub const WRITER: &str = "kiln";

/// The `<n>` of file names: a per-process counter, as tensorboard's `_global_uid`.
static NEXT_UID: AtomicU64 = AtomicU64::new(0);

/// Seconds since the Unix epoch, as `time.time()`.
pub fn wall_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This machine's name, as `socket.gethostname()` (`localhost` when it cannot be read).
pub fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: `buf` is valid for `buf.len()` bytes; gethostname writes at most that many
        // and the result is read only up to the first NUL inside the buffer.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            if let Ok(s) = std::str::from_utf8(&buf[..n])
                && !s.is_empty()
            {
                return s.to_string();
            }
        }
    }
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "localhost".into())
}

/// Writes TensorBoard events into one new file of a directory.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, named as `SummaryWriter` names
    /// them (`events.out.tfevents.%010d.<host>.<pid>.<n>`), and writes the file-version event.
    ///
    /// # Errors
    /// `K0002` when the directory or the file cannot be created.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        let now = wall_time();
        let host = hostname();
        loop {
            let uid = NEXT_UID.fetch_add(1, Ordering::Relaxed);
            let name = format!(
                "{FILE_PREFIX}{:010}.{host}.{}.{uid}",
                now as u64,
                std::process::id()
            );
            let path = dir.join(name);
            match File::create_new(&path) {
                Ok(f) => {
                    let mut w = EventWriter {
                        path,
                        out: BufWriter::new(f),
                    };
                    w.write_event(&proto::file_version_event(now, WRITER))?;
                    w.flush()?;
                    return Ok(w);
                }
                // Another writer of this process took the name: take the next number.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create", &path, e)),
            }
        }
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one encoded `Event` as a TFRecord.
    ///
    /// # Errors
    /// `K0002` when the file cannot be written.
    pub fn write_event(&mut self, event: &[u8]) -> Result<()> {
        self.out
            .write_all(&frame(event))
            .map_err(|e| Error::io("write", &self.path, e))
    }

    /// One event with scalars at `step` (`SummaryWriter.add_scalar`, several tags at once).
    ///
    /// # Errors
    /// `K0002` when the file cannot be written.
    pub fn add_scalars(&mut self, step: i64, scalars: &[(&str, f64)]) -> Result<()> {
        if scalars.is_empty() {
            return Ok(());
        }
        let values: Vec<_> = scalars
            .iter()
            .map(|(tag, v)| proto::scalar_value(tag, *v as f32))
            .collect();
        self.write_event(&proto::summary_event(wall_time(), step, &values))
    }

    /// The hparams plugin's experiment and session-start summaries (step 0), as
    /// `SummaryWriter.add_hparams` and Lightning's `log_hyperparams` write them; the tags in
    /// `metric_tags` are the metrics TensorBoard's HPARAMS tab shows beside them.
    ///
    /// # Errors
    /// `K0002` when the file cannot be written.
    pub fn add_hparams(
        &mut self,
        hparams: &[(String, HParamValue)],
        metric_tags: &[&str],
    ) -> Result<()> {
        let now = wall_time();
        self.write_event(&proto::summary_event(
            now,
            0,
            &[hparams::experiment(hparams, metric_tags)],
        ))?;
        self.write_event(&proto::summary_event(
            now,
            0,
            &[hparams::session_start_info(hparams)],
        ))
    }

    /// The hparams plugin's session-end summary: success or failure.
    ///
    /// # Errors
    /// `K0002` when the file cannot be written.
    pub fn end_session(&mut self, step: i64, success: bool) -> Result<()> {
        self.write_event(&proto::summary_event(
            wall_time(),
            step,
            &[hparams::session_end_info(success)],
        ))
    }

    /// A `SessionLog` START at `step`: TensorBoard then discards what earlier files logged at
    /// `step` and later (what a resumed run logs again).
    ///
    /// # Errors
    /// `K0002` when the file cannot be written.
    pub fn session_start(&mut self, step: i64) -> Result<()> {
        self.write_event(&proto::session_log_event(wall_time(), step, 1))
    }

    /// Writes the buffered events to the file.
    ///
    /// # Errors
    /// `K0002` when the file cannot be written.
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|e| Error::io("write", &self.path, e))
    }
}

/// The event files of `dir`, sorted by name (the order TensorBoard reads them in); none when
/// the directory does not exist.
///
/// # Errors
/// `K0002` when the directory cannot be listed.
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        if entry.file_name().to_string_lossy().starts_with(FILE_PREFIX) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Removes the event files of `dir` (a fresh run replaces the previous run's curves; other
/// files are left alone). Returns how many it removed.
///
/// # Errors
/// `K0002` when one cannot be removed.
pub fn remove_event_files(dir: &Path) -> Result<usize> {
    let files = event_files(dir)?;
    for f in &files {
        std::fs::remove_file(f).map_err(|e| Error::io("remove", f, e))?;
    }
    Ok(files.len())
}

/// Every event of one file, decoded, with both CRCs of every record checked.
///
/// # Errors
/// `K0002` when it cannot be read; `K0501`/`K0502` for a damaged file.
pub fn read_events(path: &Path) -> Result<Vec<proto::Event>> {
    let name = path.display().to_string();
    super::record::read_records(path)?
        .iter()
        .map(|r| proto::decode_event(r, &name))
        .collect()
}
