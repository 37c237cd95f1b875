//! `CheckpointManager`: when to checkpoint, which checkpoints to keep, and a `last` pointer
//! that always names a complete checkpoint.
//!
//! Every file is written atomically (temporary file, fsync, rename, directory fsync); the
//! `last` pointer and the index are updated only after the checkpoint itself is durable, so
//! a crash at any moment leaves `last` naming a complete checkpoint. With `asynchronous`
//! writing the training loop only pays for the snapshot (copying tensors out); a
//! background thread serialises and writes.

use super::dir_format;
use super::format::Checkpoint;
use crate::error::{Error, Result};
use crate::io::{Value, atomic_write_bytes};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Name of the pointer file inside the checkpoint directory.
pub const LAST_POINTER: &str = "last";
/// Name of the index of kept checkpoints.
pub const INDEX_FILE: &str = "checkpoints.json";

/// Whether a larger or a smaller monitored metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorMode {
    /// Smaller is better (losses).
    Min,
    /// Larger is better (accuracies).
    Max,
}

impl MonitorMode {
    /// Lightning's default for a name: `max` for accuracies (a name containing `acc`), `min`
    /// otherwise.
    pub fn for_name(name: &str) -> Self {
        if name.contains("acc") {
            MonitorMode::Max
        } else {
            MonitorMode::Min
        }
    }
}

/// On-disk form of a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointFormat {
    /// One `.pt` file `torch.load` reads.
    Pt,
    /// A directory of safetensors + JSON.
    Dir,
}

/// When to checkpoint and what to keep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Checkpoint at the end of every N-th epoch (None: not at epoch ends).
    pub every_n_epochs: Option<usize>,
    /// Checkpoint every N optimizer steps (None: not by steps).
    pub every_n_steps: Option<usize>,
    /// Keep the K most recent checkpoints (0: keep all).
    pub keep_last: usize,
    /// Also keep the K best by the monitored metric.
    pub keep_best: usize,
    /// The metric to monitor (e.g. `test_acc`, `test_loss`).
    pub monitor: Option<String>,
    /// Whether larger or smaller is better.
    pub mode: MonitorMode,
    /// File or directory form.
    pub format: CheckpointFormat,
    /// Write in a background thread after snapshotting.
    pub asynchronous: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            every_n_epochs: Some(1),
            every_n_steps: None,
            keep_last: 2,
            keep_best: 1,
            monitor: Some("test_acc".into()),
            mode: MonitorMode::Max,
            format: CheckpointFormat::Pt,
            asynchronous: false,
        }
    }
}

impl Policy {
    /// Whether a checkpoint is due after `global_step`, and/or at the end of `epoch`
    /// (0-based; `epoch_end` true when the epoch just finished).
    pub fn due(&self, global_step: usize, epoch: usize, epoch_end: bool) -> bool {
        let by_steps = self
            .every_n_steps
            .is_some_and(|n| n > 0 && global_step > 0 && global_step % n == 0);
        let by_epochs = epoch_end
            && self
                .every_n_epochs
                .is_some_and(|n| n > 0 && (epoch + 1) % n == 0);
        by_steps || by_epochs
    }
}

/// One kept checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// File or directory name inside the checkpoint directory.
    pub file: String,
    /// Epoch in progress when taken.
    pub epoch: usize,
    /// Global step when taken.
    pub global_step: usize,
    /// Monitored metric, if known.
    pub metric: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Index {
    checkpoints: Vec<Record>,
}

/// What a save cost the training loop.
#[derive(Clone, Debug)]
pub struct SaveStats {
    /// Where the checkpoint goes.
    pub path: PathBuf,
    /// Time the caller was blocked (snapshot only, when asynchronous).
    pub stall: Duration,
}

struct Job {
    value: Value,
    record: Record,
}

struct Shared {
    dir: PathBuf,
    policy: Policy,
    index: Mutex<Index>,
    error: Mutex<Option<Error>>,
}

/// Saves checkpoints under a directory according to a [`Policy`].
pub struct CheckpointManager {
    shared: Arc<Shared>,
    sender: Option<SyncSender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl CheckpointManager {
    /// Opens (creating) `dir`, reads its index and removes what a crash left: temporary
    /// files of interrupted writes, and orphaned checkpoints (see [`remove_orphans`]).
    ///
    /// # Errors
    /// `K0002` when the directory cannot be created or read.
    pub fn new(dir: impl Into<PathBuf>, policy: Policy) -> Result<Self> {
        Self::keeping(dir, policy, &[])
    }

    /// [`CheckpointManager::new`], except that the files in `keep` are never removed as
    /// orphans: the checkpoint a run resumes from may be a `ckpt-*` file the index does not
    /// list (copied in by hand, or left by a kill), and resuming from it must not delete it.
    ///
    /// # Errors
    /// `K0002` when the directory cannot be created or read.
    pub fn keeping(dir: impl Into<PathBuf>, policy: Policy, keep: &[&Path]) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        clean_temporaries(&dir)?;
        remove_orphans_keeping(&dir, keep)?;
        let index = read_index(&dir);
        let shared = Arc::new(Shared {
            dir,
            policy,
            index: Mutex::new(index),
            error: Mutex::new(None),
        });
        let (sender, worker) = if shared.policy.asynchronous {
            let (tx, rx) = sync_channel::<Job>(1);
            let s = shared.clone();
            let h = std::thread::Builder::new()
                .name("kiln-checkpoint-writer".into())
                .spawn(move || worker_loop(s, rx))
                .map_err(|e| Error::io("starting checkpoint writer for", "checkpoints", e))?;
            (Some(tx), Some(h))
        } else {
            (None, None)
        };
        Ok(CheckpointManager {
            shared,
            sender,
            worker,
        })
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.shared.policy
    }

    /// The kept checkpoints, oldest first.
    pub fn records(&self) -> Vec<Record> {
        lock(&self.shared.index).checkpoints.clone()
    }

    /// Saves `checkpoint` (with the monitored `metric`, if known). Synchronous: returns after
    /// the file, the index and `last` are durable. Asynchronous: returns after the snapshot;
    /// an error of the background write is returned by the next `save` or by [`Self::finish`].
    ///
    /// # Errors
    /// `K0002` when writing fails (the previous checkpoint and `last` stay valid).
    pub fn save(&mut self, checkpoint: &Checkpoint, metric: Option<f64>) -> Result<SaveStats> {
        if let Some(e) = lock(&self.shared.error).take() {
            return Err(e);
        }
        let start = Instant::now();
        let p = checkpoint.progress;
        let ext = match self.shared.policy.format {
            CheckpointFormat::Pt => ".pt",
            CheckpointFormat::Dir => "",
        };
        let record = Record {
            file: format!("ckpt-e{:04}-s{:08}{ext}", p.epoch, p.global_step),
            epoch: p.epoch,
            global_step: p.global_step,
            metric,
        };
        let path = self.shared.dir.join(&record.file);
        let value = checkpoint.to_value()?;
        match &self.sender {
            Some(tx) => {
                tx.send(Job { value, record }).map_err(|_| Error::Io {
                    action: "handing over to the checkpoint writer for",
                    path: path.clone(),
                    source: std::io::Error::other("the writer thread stopped"),
                })?;
                Ok(SaveStats {
                    path,
                    stall: start.elapsed(),
                })
            }
            None => {
                write_job(&self.shared, &value, record)?;
                Ok(SaveStats {
                    path,
                    stall: start.elapsed(),
                })
            }
        }
    }

    /// Waits for background writes and reports their first error.
    ///
    /// # Errors
    /// The error of a failed background write.
    pub fn finish(&mut self) -> Result<()> {
        self.sender = None;
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
        match lock(&self.shared.error).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for CheckpointManager {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn worker_loop(shared: Arc<Shared>, rx: Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        if let Err(e) = write_job(&shared, &job.value, job.record) {
            let mut slot = lock(&shared.error);
            if slot.is_none() {
                *slot = Some(e);
            }
        }
    }
}

fn write_job(shared: &Shared, value: &Value, record: Record) -> Result<()> {
    let path = shared.dir.join(&record.file);
    match shared.policy.format {
        CheckpointFormat::Pt => crate::io::save(value, &path)?,
        CheckpointFormat::Dir => {
            // A directory is published by renaming a complete temporary directory.
            let tmp = shared.dir.join(format!(".{}.kiln-tmp-dir", record.file));
            let _ = std::fs::remove_dir_all(&tmp);
            dir_format::save_dir(value, &tmp)?;
            let _ = std::fs::remove_dir_all(&path);
            std::fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &path, e))?;
            sync_dir(&shared.dir)?;
        }
    }
    let mut index = lock(&shared.index);
    index.checkpoints.retain(|r| r.file != record.file);
    index.checkpoints.push(record.clone());
    let (keep, drop) = retention(&index.checkpoints, &shared.policy, &record.file);
    index.checkpoints = keep;
    write_index(&shared.dir, &index)?;
    atomic_write_bytes(
        &shared.dir.join(LAST_POINTER),
        format!("{}\n", record.file).as_bytes(),
    )?;
    for r in drop {
        let p = shared.dir.join(&r.file);
        if p.is_dir() {
            let _ = std::fs::remove_dir_all(&p);
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
    Ok(())
}

/// Splits records into kept and dropped: the `keep_last` newest, the `keep_best` best by
/// metric, and always `newest_file`.
fn retention(records: &[Record], policy: &Policy, newest_file: &str) -> (Vec<Record>, Vec<Record>) {
    let mut by_step: Vec<&Record> = records.iter().collect();
    by_step.sort_by_key(|r| r.global_step);
    let mut keep: Vec<&str> = vec![newest_file];
    if policy.keep_last == 0 {
        keep.extend(records.iter().map(|r| r.file.as_str()));
    } else {
        keep.extend(
            by_step
                .iter()
                .rev()
                .take(policy.keep_last)
                .map(|r| r.file.as_str()),
        );
    }
    if policy.keep_best > 0 && policy.monitor.is_some() {
        let mut scored: Vec<&Record> = records
            .iter()
            .filter(|r| r.metric.is_some_and(|m| !m.is_nan()))
            .collect();
        scored.sort_by(|a, b| {
            let (x, y) = (a.metric.unwrap_or(0.0), b.metric.unwrap_or(0.0));
            let o = x.total_cmp(&y);
            let o = if policy.mode == MonitorMode::Max {
                o.reverse()
            } else {
                o
            };
            o.then(b.global_step.cmp(&a.global_step))
        });
        keep.extend(
            scored
                .iter()
                .take(policy.keep_best)
                .map(|r| r.file.as_str()),
        );
    }
    let (k, d): (Vec<Record>, Vec<Record>) = records
        .iter()
        .cloned()
        .partition(|r| keep.contains(&r.file.as_str()));
    (k, d)
}

fn read_index(dir: &Path) -> Index {
    std::fs::read(dir.join(INDEX_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_index(dir: &Path, index: &Index) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(index)
        .map_err(|e| Error::invalid("checkpoint index", e, "JSON"))?;
    atomic_write_bytes(&dir.join(INDEX_FILE), &bytes)
}

fn sync_dir(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir).map_err(|e| Error::io("opening", dir, e))?;
    f.sync_all().map_err(|e| Error::io("syncing", dir, e))
}

/// Removes temporary files and directories an interrupted write left behind.
fn clean_temporaries(dir: &Path) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("reading", dir, e))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') && name.contains(".kiln-tmp") {
            let p = e.path();
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    Ok(())
}

/// Removes the checkpoints (`ckpt-*` files and directories) of `dir` that its index does not
/// list and `last` does not name: a kill between writing a checkpoint and updating the index,
/// or between updating the index and pruning, leaves such orphans, which no later prune
/// would see. Returns the names removed. Without a readable index nothing is removed (the
/// directory may hold checkpoints kiln did not index).
///
/// # Errors
/// `K0002` when the directory cannot be read or an orphan cannot be removed.
pub fn remove_orphans(dir: &Path) -> Result<Vec<String>> {
    remove_orphans_keeping(dir, &[])
}

/// [`remove_orphans`], sparing the files and directories in `keep` (compared as canonical
/// paths, so `out/checkpoints/../checkpoints/ckpt-x.pt` spares `ckpt-x.pt`).
///
/// # Errors
/// `K0002` when the directory cannot be read or an orphan cannot be removed.
pub fn remove_orphans_keeping(dir: &Path, keep: &[&Path]) -> Result<Vec<String>> {
    let spared: Vec<PathBuf> = keep.iter().filter_map(|p| p.canonicalize().ok()).collect();
    let Some(index) = std::fs::read(dir.join(INDEX_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Index>(&b).ok())
    else {
        return Ok(Vec::new());
    };
    let mut keep: Vec<String> = index.checkpoints.into_iter().map(|r| r.file).collect();
    if let Ok(text) = std::fs::read_to_string(dir.join(LAST_POINTER)) {
        keep.push(text.trim().to_string());
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("reading", dir, e))?;
    let mut removed = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("ckpt-") || keep.contains(&name) {
            continue;
        }
        let p = e.path();
        if p.canonicalize().is_ok_and(|c| spared.contains(&c)) {
            continue;
        }
        let r = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|err| Error::io("removing orphaned checkpoint", &p, err))?;
        removed.push(name);
    }
    removed.sort();
    Ok(removed)
}

/// The checkpoint `last` names in `dir`, if there is one and it exists.
///
/// # Errors
/// `K0701` when the pointer names a checkpoint that is missing.
pub fn last_checkpoint(dir: &Path) -> Result<Option<PathBuf>> {
    let pointer = dir.join(LAST_POINTER);
    let Ok(text) = std::fs::read_to_string(&pointer) else {
        return Ok(None);
    };
    let name = text.trim();
    let path = dir.join(name);
    if name.is_empty() || !path.exists() {
        return Err(Error::NoCheckpoint {
            dir: dir.display().to_string(),
            detail: format!(": 'last' names '{name}', which does not exist"),
        });
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(step: usize, metric: f64) -> Record {
        Record {
            file: format!("c{step}"),
            epoch: 0,
            global_step: step,
            metric: Some(metric),
        }
    }

    #[test]
    fn keeps_last_k_and_best_k() {
        let recs = vec![rec(1, 0.9), rec(2, 0.5), rec(3, 0.6), rec(4, 0.7)];
        let p = Policy {
            keep_last: 2,
            keep_best: 1,
            ..Default::default()
        };
        let (keep, drop) = retention(&recs, &p, "c4");
        let names: Vec<_> = keep.iter().map(|r| r.file.as_str()).collect();
        assert_eq!(names, ["c1", "c3", "c4"]);
        assert_eq!(drop.len(), 1);
        let p = Policy {
            keep_last: 1,
            keep_best: 1,
            mode: MonitorMode::Min,
            ..Default::default()
        };
        let (keep, _) = retention(&recs, &p, "c4");
        let names: Vec<_> = keep.iter().map(|r| r.file.as_str()).collect();
        assert_eq!(names, ["c2", "c4"]);
    }

    #[test]
    fn due_by_steps_and_epochs() {
        let p = Policy {
            every_n_epochs: Some(2),
            every_n_steps: Some(5),
            ..Default::default()
        };
        assert!(p.due(10, 0, false));
        assert!(!p.due(11, 0, false));
        assert!(!p.due(11, 0, true));
        assert!(p.due(11, 1, true));
    }
}
