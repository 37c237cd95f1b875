//! What a run's validations leave in its output folder: `validation.jsonl` (one line per
//! validation, when a validation interval or early stopping is set) and
//! `model_best.safetensors` (the weights at the best monitored value — the EMA's when the
//! monitor is an `ema_test_*` value).

use super::checkpointing::inner_model;
use super::hooks::Hook;
use super::save::save_state_dict;
use super::trainer::Trainer;
use super::validation::Validation;
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line per validation.
pub const VALIDATION_FILE: &str = "validation.jsonl";
/// The weights at the best monitored value (with `--monitor` / early stopping).
pub const BEST_MODEL_FILE: &str = "model_best.safetensors";

/// Writes `validation.jsonl` and `model_best.safetensors` into a run's folder.
pub struct BestModelHook {
    log: PathBuf,
    best: PathBuf,
}

impl BestModelHook {
    /// The hook for the run folder `out`; a fresh run (`fresh`) first removes the files a
    /// previous run left.
    ///
    /// # Errors
    /// `K0002` when an old file cannot be removed.
    pub fn new(out: &Path, fresh: bool) -> Result<Self> {
        let hook = BestModelHook {
            log: out.join(VALIDATION_FILE),
            best: out.join(BEST_MODEL_FILE),
        };
        if fresh {
            for p in [&hook.log, &hook.best] {
                if p.exists() {
                    std::fs::remove_file(p).map_err(|e| Error::io("remove", p, e))?;
                }
            }
        }
        Ok(hook)
    }
}

impl Hook for BestModelHook {
    fn on_validation_end(&mut self, t: &Trainer, v: &Validation) -> Result<()> {
        if v.improved {
            let monitor = t.early_stopping.as_ref().map_or("", |e| e.config.key());
            let sd = match &t.ema {
                Some(ema) if monitor.starts_with("ema_") => ema.state_dict(),
                _ => inner_model(t.model.as_ref()).state_dict(),
            };
            save_state_dict(&sd, &self.best)?;
        }
        let mut line = serde_json::json!({
            "epoch": v.epoch,
            "global_step": v.global_step,
            "mid_epoch": v.mid_epoch,
            "test_loss": finite(v.eval.loss),
            "test_acc": v.eval.accuracy.and_then(finite),
        });
        if let Some(o) = line.as_object_mut() {
            for (k, x) in &v.eval.metrics {
                o.insert(k.clone(), finite(*x).into());
            }
            if let Some(es) = &t.early_stopping {
                o.insert("monitor".into(), es.config.monitor.clone().into());
                o.insert("monitored".into(), v.monitored.and_then(finite).into());
                o.insert("best".into(), finite(es.best_score).into());
                o.insert("wait_count".into(), es.wait_count.into());
                o.insert("improved".into(), v.improved.into());
                o.insert("stop".into(), v.stop.into());
            }
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Error::io("open", &self.log, e))?;
        writeln!(f, "{line}").map_err(|e| Error::io("write", &self.log, e))
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Keeps the lines of `validation.jsonl` that a run resumed at `global_step` (at batch
/// `step_in_epoch` of its epoch) does not run again: every validation before that step, the
/// mid-epoch one at it, and the epoch-end one at it when the checkpoint was taken after the
/// epoch ended (`step_in_epoch == 0`).
///
/// # Errors
/// `K0002` when the file cannot be read or written; `K0103` for a line that is not JSON.
pub fn truncate_validations(out: &Path, global_step: u64, step_in_epoch: usize) -> Result<()> {
    let path = out.join(VALIDATION_FILE);
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    let mut kept = String::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| Error::BadData {
            source_name: path.display().to_string(),
            detail: format!("a line is not JSON: {e}"),
        })?;
        let step = v["global_step"].as_u64().unwrap_or(u64::MAX);
        let mid = v["mid_epoch"].as_bool().unwrap_or(false);
        if step < global_step || (step == global_step && (mid || step_in_epoch == 0)) {
            kept.push_str(l);
            kept.push('\n');
        }
    }
    std::fs::write(&path, kept).map_err(|e| Error::io("write", &path, e))
}
