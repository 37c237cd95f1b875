//! Checkpointing a [`Trainer`] and resuming it: the bridge between the training loop and
//! [`crate::checkpoint`].
//!
//! A checkpoint taken at a hook point holds the model, optimizer, scheduler, the position in
//! the run (epoch, batch within the epoch, global step), the epoch's running sums, kiln's RNG
//! state and the configuration. Restoring all of it and calling [`Trainer::fit`] again
//! continues exactly where the run stopped: the loader rebuilds the epoch's order from
//! `(seed, epoch)` and skips the batches already done. Bit-exactness assumes the same thread
//! count and the same kiln build (same arithmetic order).

use super::config::TrainConfig;
use super::hooks::{Hook, StepReport};
use super::metrics::EpochMetrics;
use super::state::TrainState;
use super::trainer::Trainer;
use crate::checkpoint::{Checkpoint, CheckpointManager, EpochAccum, MonitorMode, Progress};
use crate::error::{Error, Result};
use crate::io::Value;
use crate::nn::Module;
use crate::parallel::{DataParallel, DistributedDataParallel};

/// The model inside DataParallel / DistributedDataParallel wrappers (checkpoints and
/// `model.safetensors` hold the plain model's keys, so a run can resume with or without
/// `--devices`/`--distributed`).
pub fn inner_model(model: &dyn Module) -> &dyn Module {
    if let Some(dp) = model.as_any().downcast_ref::<DataParallel>() {
        return dp.module();
    }
    if let Some(ddp) = model.as_any().downcast_ref::<DistributedDataParallel>() {
        return ddp.module();
    }
    model
}

/// A checkpoint of the trainer as it is now.
///
/// # Errors
/// Errors of the optimizer's or scheduler's `state_dict`.
pub fn checkpoint_of(t: &Trainer, last_loss: f64) -> Result<Checkpoint> {
    let st = &t.state;
    let mut ck = Checkpoint::new(
        inner_model(t.model.as_ref()).state_dict(),
        t.optimizer.state_dict()?,
    );
    ck.scheduler = t.scheduler.as_ref().map(|s| s.state_dict());
    ck.progress = Progress {
        epoch: st.epoch,
        step_in_epoch: st.step_in_epoch,
        global_step: st.global_step as usize,
    };
    ck.epoch = st.epoch as i64 - 1;
    ck.loss = last_loss;
    ck.rng = Some(st.rng.clone());
    ck.best_metric = st.best_metric;
    ck.accum = EpochAccum {
        loss_sum: st.epoch_loss_sum,
        correct: st.epoch_correct,
        seen: st.epoch_seen,
    };
    ck.config = t.config.as_ref().and_then(|c| serde_json::to_value(c).ok());
    let ema = match &t.ema {
        Some(e) if e.updates() > 0 => Some(e.to_value()?),
        _ => None,
    };
    ck.extra = Some(Value::dict([
        (
            "best_epoch",
            st.best_epoch
                .map(|e| Value::Int(e as i64))
                .unwrap_or(Value::None),
        ),
        ("epoch_seconds", Value::Float(st.epoch_seconds)),
        (
            "epoch_lr",
            st.epoch_lr.map(Value::Float).unwrap_or(Value::None),
        ),
        (
            "epoch_grad_norm",
            Value::List(vec![
                Value::Float(st.epoch_grad_norm_sum),
                Value::Int(st.epoch_grad_norms as i64),
            ]),
        ),
        (
            super::setup::SETUP_KEY,
            serde_json::to_string(&t.setup)
                .map(Value::Str)
                .unwrap_or(Value::None),
        ),
    ]));
    if let Some(Value::Dict(extra)) = ck.extra.as_mut() {
        if let Some(e) = ema {
            extra.insert(super::ema::EMA_KEY, e);
        }
        if let Some(es) = &t.early_stopping {
            extra.insert(super::early_stopping::EARLY_STOPPING_KEY, es.to_value());
        }
        if let Some(s) = &t.grad_scaler {
            extra.insert(GRAD_SCALER_KEY, s.state_dict());
        }
    }
    Ok(ck)
}

/// Takes a checkpoint of `t` and hands it to `manager`. With an asynchronous policy the
/// snapshot copies nothing: parameters are marked copy-on-write
/// ([`crate::nn::Param::mark_shared`]) and tensor data is converted by the writer thread
/// ([`crate::io::value::deferred`]); the loop only waits for that bookkeeping.
///
/// # Errors
/// State-dict and I/O errors (of the previous background write, when asynchronous).
pub fn snapshot_and_save(
    t: &Trainer,
    manager: &mut CheckpointManager,
    last_loss: f64,
    metric: Option<f64>,
) -> Result<crate::checkpoint::SaveStats> {
    snapshot_and_save_with(t, manager, last_loss, metric, None)
}

/// [`snapshot_and_save`] with every DDP rank's running totals of the epoch
/// (`[loss_sum, correct, seen]` per rank, flattened), stored as `ddp_epoch_accum`.
///
/// # Errors
/// As [`snapshot_and_save`].
pub fn snapshot_and_save_with(
    t: &Trainer,
    manager: &mut CheckpointManager,
    last_loss: f64,
    metric: Option<f64>,
    per_rank: Option<Vec<f64>>,
) -> Result<crate::checkpoint::SaveStats> {
    let build = || -> Result<Checkpoint> {
        let mut ck = checkpoint_of(t, last_loss)?;
        if let (Some(v), Some(Value::Dict(extra))) = (&per_rank, ck.extra.as_mut()) {
            let list = v
                .chunks(3)
                .map(|c| Value::List(c.iter().map(|x| Value::Float(*x)).collect()))
                .collect();
            extra.insert("ddp_epoch_accum", Value::List(list));
        }
        Ok(ck)
    };
    if manager.policy().asynchronous {
        for p in t.model.parameters() {
            p.mark_shared();
        }
        crate::io::value::deferred(|| {
            let ck = build()?;
            manager.save(&ck, metric)
        })
    } else {
        let ck = build()?;
        manager.save(&ck, metric)
    }
}

/// The extra key of a checkpoint holding the `16-mixed` GradScaler's `state_dict()`
/// (`scale`, `growth_factor`, `backoff_factor`, `growth_interval`, `_growth_tracker`).
pub const GRAD_SCALER_KEY: &str = "grad_scaler";

/// Hyper-parameters that must match for a resume to continue the same run.
/// `finetune` is compared without `from`: the pretrained file only seeds the first epoch.
/// `precision` too: a run switched between f32, bf16 and f16 mid-way is another run (its
/// optimizer state and, for `16-mixed`, its loss scale belong to the first), so a resume with
/// another precision is refused naming both (`K0702`).
const MUST_MATCH: [&str; 19] = [
    "precision",
    "grad_scaler",
    "validation",
    "model",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "seed",
    "scheduler",
    "drop_last",
    "classes",
    "per_class",
    "num_classes",
    "finetune",
    "data",
    "step",
    "ema",
];

/// Refuses a resume whose configuration differs from the checkpoint's in a field that
/// changes the run (model, optimizer, hyper-parameters, batch size, seed, schedule, data
/// selection, fine-tuning setup, data source and its transform). `epochs`, `threads`,
/// `workers`, `device`, `out` and the pretrained file (`finetune.from`) may differ.
///
/// # Errors
/// `K0702` naming the first differing field and both values.
pub fn check_config(saved: &serde_json::Value, current: &TrainConfig) -> Result<()> {
    let cur = serde_json::to_value(current).map_err(|e| Error::invalid("config", e, "JSON"))?;
    for field in MUST_MATCH {
        let get = |v: &serde_json::Value| {
            let mut x = v.get(field).cloned().unwrap_or(serde_json::Value::Null);
            if let (true, Some(o)) = (field == "finetune", x.as_object_mut()) {
                o.remove("from");
            }
            if field == "precision" && x.is_null() {
                // written only when not the default
                x = serde_json::Value::from(crate::amp::Precision::F32.as_str());
            }
            x
        };
        let (a, b) = (get(saved), get(&cur));
        if a != b {
            return Err(Error::ResumeMismatch {
                field: field.to_string(),
                checkpoint: a.to_string(),
                current: b.to_string(),
            });
        }
    }
    Ok(())
}

/// Restores the trainer from `ck`: model (strict), optimizer, scheduler, position, sums and
/// RNG. A checkpoint written by PyTorch's recipe (no kiln keys) resumes at the epoch after
/// its `epoch`, with the optimizer's saved momentum/moments.
///
/// # Errors
/// `K0702` for a different configuration; `K0401` when the model's keys or shapes differ;
/// `K0603` when the optimizer state does not fit.
pub fn restore(t: &mut Trainer, ck: &Checkpoint) -> Result<()> {
    if let (Some(saved), Some(current)) = (&ck.config, &t.config) {
        check_config(saved, current)?;
    }
    let saved_setup = ck
        .extra
        .as_ref()
        .and_then(|e| e.get(super::setup::SETUP_KEY))
        .and_then(|v| match v {
            Value::Str(s) => serde_json::from_str::<super::setup::RunSetup>(s).ok(),
            _ => None,
        });
    if let Some(saved) = &saved_setup {
        t.setup.check_resume(saved)?;
    }
    let what = match &t.config {
        Some(c) => format!("weights that do not fit --model {}", c.model),
        None => format!(
            "weights that do not fit this {}",
            inner_model(t.model.as_ref()).type_name()
        ),
    };
    inner_model(t.model.as_ref())
        .load_state_dict(&ck.model, true)
        .map_err(|e| match e {
            Error::StateDictMismatch { .. } => Error::ResumeMismatch {
                field: "model".into(),
                checkpoint: what.clone(),
                current: e.to_string(),
            },
            other => other,
        })?;
    // Gradual unfreezing: the groups the run had added by then, before their state loads.
    let due = t
        .unfreeze
        .due_at(ck.progress.epoch, ck.progress.step_in_epoch);
    t.apply_unfreeze(due)?;
    t.optimizer.load_state_dict(&ck.optimizer)?;
    match (t.scheduler.as_mut(), &ck.scheduler) {
        (Some(s), Some(v)) => s.load_state_dict(v)?,
        (None, None) => {}
        (Some(_), None) if ck.config.is_none() => {
            // A PyTorch recipe checkpoint without scheduler state: fast-forward the schedule
            // to the epoch (or, stepped per update, the step) being resumed; a metric-driven
            // schedule cannot be replayed and starts afresh.
            if let Some(s) = t.scheduler.as_mut().filter(|s| !s.needs_metric()) {
                let steps = match s.interval() {
                    crate::optim::scheduler::Interval::Step => ck.progress.global_step,
                    crate::optim::scheduler::Interval::Epoch => ck.progress.epoch,
                };
                for _ in 0..steps {
                    s.step(t.optimizer.as_mut())?;
                }
            }
        }
        (a, b) => {
            return Err(Error::ResumeMismatch {
                field: "scheduler".into(),
                checkpoint: if b.is_some() { "a schedule" } else { "none" }.into(),
                current: if a.is_some() { "a schedule" } else { "none" }.into(),
            });
        }
    }
    let extra = ck.extra.as_ref();
    let mut st = TrainState::start();
    st.epoch = ck.progress.epoch;
    st.step_in_epoch = ck.progress.step_in_epoch;
    st.global_step = ck.progress.global_step as u64;
    st.best_metric = ck.best_metric;
    st.best_epoch = extra
        .and_then(|e| e.get("best_epoch"))
        .and_then(Value::as_i64)
        .map(|e| e as usize);
    st.epoch_loss_sum = ck.accum.loss_sum;
    st.epoch_correct = ck.accum.correct;
    st.epoch_seen = ck.accum.seen;
    st.epoch_seconds = extra
        .and_then(|e| e.get("epoch_seconds"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    if let (Some(ema), Some(v)) = (
        t.ema.as_mut(),
        extra.and_then(|e| e.get(super::ema::EMA_KEY)),
    ) {
        ema.load_value(v, &t.device)?;
    }
    if let (Some(s), Some(v)) = (
        t.grad_scaler.as_mut(),
        extra.and_then(|e| e.get(GRAD_SCALER_KEY)),
    ) {
        s.load_state_dict(v)?;
    }
    if let (Some(es), Some(v)) = (
        t.early_stopping.as_mut(),
        extra.and_then(|e| e.get(super::early_stopping::EARLY_STOPPING_KEY)),
    ) {
        es.load_value(v)?;
    }
    st.epoch_lr = extra
        .and_then(|e| e.get("epoch_lr"))
        .and_then(Value::as_f64);
    if let Some(Value::List(g)) = extra.and_then(|e| e.get("epoch_grad_norm"))
        && let [sum, n] = g.as_slice()
    {
        st.epoch_grad_norm_sum = sum.as_f64().unwrap_or(0.0);
        st.epoch_grad_norms = n.as_i64().unwrap_or(0).max(0) as usize;
    }
    if let Some(r) = &ck.rng {
        st.rng = r.clone();
    }
    if ck.progress.step_in_epoch > t.train_loader.num_batches() {
        return Err(Error::ResumeMismatch {
            field: "batches per epoch".into(),
            checkpoint: format!("at least {}", ck.progress.step_in_epoch),
            current: t.train_loader.num_batches().to_string(),
        });
    }
    t.state = st;
    Ok(())
}

/// Saves checkpoints at the policy's steps and epoch ends, and simulates a crash.
pub struct CheckpointHook {
    manager: Option<CheckpointManager>,
    policy: Option<crate::checkpoint::Policy>,
    crash_after_steps: Option<u64>,
    last_loss: f64,
    monitor: Option<(String, MonitorMode)>,
    is_writer: bool,
    comm: Option<std::sync::Arc<dyn crate::parallel::Communicator>>,
    /// Seconds the loop was blocked by checkpoint saves, and how many saves.
    pub stall_seconds: f64,
    /// Number of checkpoints saved.
    pub saves: usize,
}

impl CheckpointHook {
    /// A hook checkpointing by `policy` through `manager` (None: only the crash
    /// simulation), aborting the process right after step `crash_after_steps` (after that
    /// step's checkpoint, if one is due). Under DDP pass the communicator and the same policy
    /// on every rank, the manager on rank 0 only: rank 0 writes, every rank meets it at a
    /// barrier.
    pub fn new(
        policy: Option<crate::checkpoint::Policy>,
        manager: Option<CheckpointManager>,
        crash_after_steps: Option<u64>,
        comm: Option<std::sync::Arc<dyn crate::parallel::Communicator>>,
    ) -> Self {
        let monitor = policy
            .as_ref()
            .and_then(|p| p.monitor.clone().map(|name| (name, p.mode)));
        let is_writer = comm.as_ref().is_none_or(|c| c.rank() == 0);
        CheckpointHook {
            manager,
            policy,
            crash_after_steps,
            last_loss: f64::NAN,
            monitor,
            is_writer,
            comm,
            stall_seconds: 0.0,
            saves: 0,
        }
    }

    fn save(&mut self, t: &Trainer, metric: Option<f64>) -> Result<()> {
        // Under DDP each rank has its own running totals of the epoch: all of them are
        // gathered (an all-reduce of per-rank slots, exact since the other slots are zero) and
        // stored, so every rank resumes with its own and the epoch's sums come out the same.
        let mut per_rank = None;
        if let Some(c) = &self.comm {
            let (r, w) = (c.rank(), c.world_size());
            let s = &t.state;
            let mut v = vec![0.0f64; 3 * w];
            v[3 * r] = s.epoch_loss_sum;
            v[3 * r + 1] = s.epoch_correct as f64;
            v[3 * r + 2] = s.epoch_seen as f64;
            c.all_reduce_sum_f64(&mut v)?;
            per_rank = Some(v);
        }
        if self.is_writer {
            if let Some(m) = self.manager.as_mut() {
                let started = std::time::Instant::now();
                snapshot_and_save_with(t, m, self.last_loss, metric, per_rank.clone())?;
                self.stall_seconds += started.elapsed().as_secs_f64();
                self.saves += 1;
            }
        }
        if let Some(c) = &self.comm {
            c.barrier()?;
        }
        Ok(())
    }

    /// Waits for background writes; returns their first error.
    ///
    /// # Errors
    /// The error of a failed background write.
    pub fn finish(&mut self) -> Result<()> {
        match self.manager.as_mut() {
            Some(m) => m.finish(),
            None => Ok(()),
        }
    }

    fn metric_of(&self, m: &EpochMetrics) -> Option<f64> {
        let (name, _) = self.monitor.as_ref()?;
        match name.as_str() {
            "test_acc" | "val_acc" => Some(m.test_acc),
            "test_loss" | "val_loss" => Some(m.test_loss),
            "train_loss" => Some(m.train_loss),
            "train_acc" => Some(m.train_acc),
            other => m.metrics.get(other).copied(),
        }
    }
}

impl Hook for CheckpointHook {
    fn on_fit_end(&mut self, _t: &Trainer) -> Result<()> {
        self.finish()
    }

    fn on_step(&mut self, t: &Trainer, step: &StepReport) -> Result<()> {
        self.last_loss = step.loss;
        // Every rank asks the policy (only rank 0 has a manager), so all of them reach
        // the barrier in `save` together.
        let due = self
            .policy
            .as_ref()
            .is_some_and(|p| p.due(t.state.global_step as usize, t.state.epoch, false));
        if due {
            self.save(t, None)?;
        }
        if self.crash_after_steps == Some(t.state.global_step) {
            eprintln!(
                "kiln: --crash-after-steps {}: aborting now (simulated crash)",
                t.state.global_step
            );
            std::process::abort();
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, t: &Trainer, m: &EpochMetrics) -> Result<()> {
        let ended = t.state.epoch.saturating_sub(1);
        let due = self
            .policy
            .as_ref()
            .is_some_and(|p| p.due(t.state.global_step as usize, ended, true));
        if due {
            let metric = self.metric_of(m);
            self.save(t, metric)?;
        }
        Ok(())
    }
}

/// Keeps the first `completed_epochs` lines of a metrics file (a resumed run then appends
/// the rest exactly once, even if the crash came between a metrics line and its checkpoint).
///
/// # Errors
/// `K0002`/`K0103` when the file cannot be read or rewritten.
pub fn truncate_metrics(path: &std::path::Path, completed_epochs: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let kept: Vec<EpochMetrics> = super::metrics::MetricsLog::read(path)?
        .into_iter()
        .filter(|m| m.epoch <= completed_epochs)
        .collect();
    let mut text = String::new();
    for m in &kept {
        text.push_str(&serde_json::to_string(m).map_err(|e| Error::invalid("metrics", e, "JSON"))?);
        text.push('\n');
    }
    crate::io::atomic_write_bytes(path, text.as_bytes())
}

/// The epoch totals `(loss_sum, correct, seen)` of `rank` stored by a DDP checkpoint of
/// `world` ranks, if it holds them.
pub fn ddp_epoch_accum(ck: &Checkpoint, rank: usize, world: usize) -> Option<EpochAccum> {
    let Some(Value::List(l)) = ck.extra.as_ref()?.get("ddp_epoch_accum") else {
        return None;
    };
    if l.len() != world {
        return None;
    }
    let Value::List(v) = l.get(rank)? else {
        return None;
    };
    let f = |i: usize| v.get(i).and_then(Value::as_f64);
    Some(EpochAccum {
        loss_sum: f(0)?,
        correct: f(1)? as usize,
        seen: f(2)? as usize,
    })
}
