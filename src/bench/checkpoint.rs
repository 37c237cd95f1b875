//! `kiln bench checkpoint`: how long training stalls per checkpoint, synchronous vs
//! asynchronous, against the time of an epoch.

use kiln::checkpoint::{CheckpointManager, Policy};
use kiln::error::{Error, Result};
use kiln::train::checkpointing::snapshot_and_save;
use kiln::train::{TrainConfig, build_trainer};
use std::time::{Duration, Instant};

/// Results of one benchmark run.
#[derive(Clone, Debug)]
pub struct CheckpointBench {
    /// Model benchmarked.
    pub model: String,
    /// Size of one checkpoint file in bytes.
    pub bytes: u64,
    /// Median stall of a synchronous save (snapshot + serialise + write + fsync + rename), ms.
    pub sync_ms: f64,
    /// Median stall of an asynchronous save (snapshot only), ms.
    pub async_ms: f64,
    /// Time of one training epoch on the digits, ms.
    pub epoch_ms: f64,
}

/// The median (0 for no values).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs the benchmark: trains `model` for `epoch_steps` steps to time an epoch (scaled to the
/// full epoch) and to fill the optimizer state, then saves `saves` checkpoints synchronously
/// and `saves` asynchronously (waiting between asynchronous saves until the writer is idle,
/// so each stall is the snapshot alone, not back-pressure).
///
/// # Errors
/// Training or I/O errors.
pub fn run(
    model: &str,
    saves: usize,
    epoch_steps: usize,
    dir: &std::path::Path,
) -> Result<CheckpointBench> {
    let mut cfg = TrainConfig::for_model(model);
    cfg.batch_size = 64;
    cfg.out = dir.to_path_buf();
    let mut t = build_trainer(&cfg)?;
    let batches = t.train_loader.num_batches();
    let steps = epoch_steps.clamp(1, batches);
    let loader = t.train_loader.clone();
    let started = Instant::now();
    for (i, b) in loader.epoch(0)?.enumerate() {
        if i >= steps {
            break;
        }
        t.train_step(&b?)?;
    }
    let epoch_ms = started.elapsed().as_secs_f64() * 1e3 * batches as f64 / steps as f64;
    let policy = Policy {
        keep_last: 1,
        keep_best: 0,
        monitor: None,
        ..Default::default()
    };
    let batch = loader.batch(1, 0)?;
    let mut timed = |asynchronous: bool, wait: Duration| -> Result<(Vec<f64>, u64)> {
        let sub = dir.join(if asynchronous { "async" } else { "sync" });
        let mut m = CheckpointManager::new(
            &sub,
            Policy {
                asynchronous,
                ..policy.clone()
            },
        )?;
        let (mut ms, mut bytes) = (Vec::new(), 0);
        for _ in 0..saves {
            // A training step between checkpoints, as in a run (parameters change in place).
            t.train_step(&batch)?;
            t.state.global_step += 1;
            let started = Instant::now();
            let s = snapshot_and_save(&t, &mut m, 0.0, None)?;
            ms.push(started.elapsed().as_secs_f64() * 1e3);
            std::thread::sleep(wait);
            bytes = std::fs::metadata(&s.path).map(|m| m.len()).unwrap_or(bytes);
        }
        m.finish()?;
        let _ = std::fs::remove_dir_all(&sub);
        Ok((ms, bytes))
    };
    let (sync_ms, bytes) = timed(false, Duration::ZERO)?;
    let wait = Duration::from_secs_f64(median(sync_ms.clone()) * 2.0 / 1e3 + 0.005);
    let (async_ms, _) = timed(true, wait)?;
    if saves == 0 {
        return Err(Error::invalid("saves", 0, "at least 1"));
    }
    Ok(CheckpointBench {
        model: model.to_string(),
        bytes,
        sync_ms: median(sync_ms),
        async_ms: median(async_ms),
        epoch_ms,
    })
}
