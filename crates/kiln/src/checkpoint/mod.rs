//! Checkpoints and bit-exact resume: what a checkpoint holds ([`Checkpoint`]), its `.pt` and
//! directory forms, and the [`CheckpointManager`] that decides when to write, what to keep and
//! where `last` points.

pub mod dir_format;
mod format;
mod manager;

pub use format::{Checkpoint, EpochAccum, FORMAT_VERSION, Progress};
pub use manager::{
    CheckpointFormat, CheckpointManager, INDEX_FILE, LAST_POINTER, MonitorMode, Policy, Record,
    SaveStats, last_checkpoint, remove_orphans, remove_orphans_keeping,
};

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// What `--resume` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Resume from `last` when it exists, else start fresh.
    Auto,
    /// Resume from `last`; an error when there is none.
    Last,
    /// Resume from this checkpoint file or directory.
    Path(PathBuf),
}

impl std::str::FromStr for Resume {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => Resume::Auto,
            "last" => Resume::Last,
            "" => {
                return Err(Error::invalid("resume", "''", "auto, last or a path"));
            }
            p => Resume::Path(PathBuf::from(p)),
        })
    }
}

impl Resume {
    /// The checkpoint to resume from, given the run's checkpoint directory (None: start
    /// fresh).
    ///
    /// # Errors
    /// `K0701` for `last` without a checkpoint, or a path that does not exist.
    pub fn resolve(&self, dir: &Path) -> Result<Option<PathBuf>> {
        match self {
            Resume::Auto => last_checkpoint(dir),
            Resume::Last => last_checkpoint(dir)?.map(Some).ok_or_else(|| Error::NoCheckpoint {
                dir: dir.display().to_string(),
                detail: " (no 'last' pointer): the run never wrote a checkpoint; use Resume::Auto (CLI: --resume auto) to start fresh".into(),
            }),
            Resume::Path(p) => {
                if p.exists() {
                    Ok(Some(p.clone()))
                } else {
                    Err(Error::NoCheckpoint {
                        dir: p.display().to_string(),
                        detail: ": the path does not exist".into(),
                    })
                }
            }
        }
    }
}
