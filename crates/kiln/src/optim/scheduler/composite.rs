//! Schedulers made of schedulers: `SequentialLR` (one after another at milestones) and
//! `ChainedScheduler` (all of them every step).

use super::LrScheduler;
use super::base::{self, group_lrs};
use crate::error::{Error, Result};
use crate::io::{Dict, Value, value::key_string};
use crate::optim::Optimizer;

fn check_children(who: &str, children: &[Box<dyn LrScheduler>]) -> Result<()> {
    if children.is_empty() {
        return Err(Error::invalid(
            format!("{who} schedulers"),
            "none",
            "at least one scheduler (PyTorch: ValueError)",
        ));
    }
    if let Some((i, s)) = children.iter().enumerate().find(|(_, s)| s.needs_metric()) {
        return Err(Error::invalid(
            format!("{who} scheduler {i}"),
            s.name(),
            "a scheduler that steps without a metric (PyTorch: ValueError for ReduceLROnPlateau)",
        ));
    }
    Ok(())
}

/// The `_schedulers` list: every child's state dict.
fn children_state(children: &[Box<dyn LrScheduler>]) -> Value {
    Value::List(children.iter().map(|s| s.state_dict()).collect())
}

/// Loads `_schedulers` into the children and returns the other keys' dict.
fn load_children(who: &str, state: &Value, children: &mut [Box<dyn LrScheduler>]) -> Result<()> {
    let d = base::as_dict(state, who)?;
    let list = base::need(d, who, "_schedulers")?;
    let items = list.as_seq().ok_or_else(|| {
        base::state_error(format!(
            "{who} state '_schedulers' is a {}, expected a list",
            list.type_name()
        ))
    })?;
    if items.len() != children.len() {
        return Err(base::state_error(format!(
            "{who} state has {} schedulers, this {who} has {}",
            items.len(),
            children.len()
        )));
    }
    for (child, s) in children.iter_mut().zip(items) {
        child.load_state_dict(s)?;
    }
    Ok(())
}

/// Keys of `d` outside `own` (kept and written back, like PyTorch's `__dict__.update`).
fn extra_keys(d: &Dict, own: &[&str]) -> Vec<(String, Value)> {
    d.entries
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().map_or_else(|| key_string(k), str::to_string);
            (!own.contains(&key.as_str())).then(|| (key, v.clone()))
        })
        .collect()
}

fn with_extra(mut v: Value, extra: &[(String, Value)]) -> Value {
    if let Value::Dict(d) = &mut v {
        for (k, x) in extra {
            d.insert(k, x.clone());
        }
    }
    v
}

/// `torch.optim.lr_scheduler.SequentialLR`: `schedulers[i]` runs from `milestones[i - 1]`
/// on. Construction follows PyTorch: every group's rate goes back to its `initial_lr`, each
/// child's `last_epoch` is decremented (undoing its construction step) and the first
/// scheduler takes its initial step again; at a milestone the next scheduler restarts at
/// epoch 0 through its closed form (`_update_lr(0)`). `state_dict()` is `_milestones,
/// last_epoch, _last_lr, _schedulers` (a list of the children's state dicts).
pub struct SequentialLr {
    schedulers: Vec<Box<dyn LrScheduler>>,
    milestones: Vec<i64>,
    last_epoch: i64,
    last_lr: Vec<f64>,
    extra: Vec<(String, Value)>,
}

impl std::fmt::Debug for SequentialLr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.schedulers.iter().map(|s| s.name()).collect();
        f.debug_struct("SequentialLr")
            .field("schedulers", &names)
            .field("milestones", &self.milestones)
            .field("last_epoch", &self.last_epoch)
            .finish()
    }
}

/// `bisect_right(milestones, epoch)`.
fn bisect_right(milestones: &[i64], epoch: i64) -> usize {
    milestones.iter().take_while(|m| **m <= epoch).count()
}

impl SequentialLr {
    /// Combines `schedulers` (each already attached to `opt`) with `milestones`
    /// (`schedulers.len() - 1` epochs, ascending as PyTorch's `bisect` assumes).
    ///
    /// # Errors
    /// `K0003` for no schedulers, a `ReduceLROnPlateau` among them, the wrong number of
    /// milestones or milestones out of order; `K0005` for a child that cannot restart.
    pub fn new(
        opt: &mut dyn Optimizer,
        mut schedulers: Vec<Box<dyn LrScheduler>>,
        milestones: &[usize],
    ) -> Result<Self> {
        check_children("SequentialLR", &schedulers)?;
        if milestones.len() + 1 != schedulers.len() {
            return Err(Error::invalid(
                "SequentialLR milestones",
                format!("{} milestones", milestones.len()),
                format!(
                    "{} (one fewer than the {} schedulers; PyTorch: ValueError)",
                    schedulers.len() - 1,
                    schedulers.len()
                ),
            ));
        }
        if milestones.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::invalid(
                "SequentialLR milestones",
                format!("{milestones:?}"),
                "ascending epochs",
            ));
        }
        let milestones: Vec<i64> = milestones.iter().map(|&m| m as i64).collect();
        for i in 0..opt.param_groups().len() {
            let g = &opt.param_groups()[i];
            let lr = g.initial_lr.unwrap_or(g.lr);
            opt.set_lr(i, lr);
        }
        for s in schedulers.iter_mut() {
            s.undo_epoch();
        }
        let idx = bisect_right(&milestones, 0);
        schedulers[idx].initial_step(opt)?;
        let last_lr = schedulers[idx].get_last_lr().to_vec();
        Ok(SequentialLr {
            schedulers,
            milestones,
            last_epoch: 0,
            last_lr,
            extra: Vec::new(),
        })
    }

    /// The children, in order.
    pub fn schedulers(&self) -> &[Box<dyn LrScheduler>] {
        &self.schedulers
    }
}

impl LrScheduler for SequentialLr {
    fn name(&self) -> &'static str {
        "SequentialLR"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.last_epoch += 1;
        let idx = bisect_right(&self.milestones, self.last_epoch);
        let s = &mut self.schedulers[idx];
        if idx > 0 && self.milestones[idx - 1] == self.last_epoch {
            s.update_lr_at(opt, 0)?;
        } else {
            s.step(opt)?;
        }
        self.last_lr = s.get_last_lr().to_vec();
        Ok(())
    }

    fn get_last_lr(&self) -> &[f64] {
        &self.last_lr
    }

    fn last_epoch(&self) -> i64 {
        self.last_epoch
    }

    fn initial_step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.step(opt)
    }

    fn undo_epoch(&mut self) {
        // PyTorch's recursive_undo reaches the children, not the composite itself
        for s in self.schedulers.iter_mut() {
            s.undo_epoch();
        }
    }

    fn state_dict(&self) -> Value {
        let v = base::str_dict(vec![
            (
                "_milestones",
                Value::List(self.milestones.iter().map(|m| Value::Int(*m)).collect()),
            ),
            ("last_epoch", Value::Int(self.last_epoch)),
            ("_last_lr", base::float_list(&self.last_lr)),
        ]);
        let mut v = with_extra(v, &self.extra);
        if let Value::Dict(d) = &mut v {
            d.insert("_schedulers", children_state(&self.schedulers));
        }
        v
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        const N: &str = "SequentialLR";
        let d = base::as_dict(state, N)?;
        let ms = base::need(d, N, "_milestones")?;
        let milestones = ms
            .as_seq()
            .ok_or_else(|| base::state_error(format!("{N} _milestones is not a list")))?
            .iter()
            .map(|m| match m {
                Value::Int(i) => Ok(*i),
                other => Err(base::state_error(format!(
                    "{N} _milestones holds a {}, expected ints",
                    other.type_name()
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        if milestones.len() + 1 != self.schedulers.len() {
            return Err(base::state_error(format!(
                "{N} state has {} milestones for {} schedulers",
                milestones.len(),
                self.schedulers.len()
            )));
        }
        let last_epoch = base::int(d, N, "last_epoch")?;
        let last_lr = base::floats(d, N, "_last_lr")?;
        let extra = extra_keys(d, &["_milestones", "last_epoch", "_last_lr", "_schedulers"]);
        load_children(N, state, &mut self.schedulers)?;
        self.milestones = milestones;
        self.last_epoch = last_epoch;
        self.last_lr = last_lr;
        self.extra = extra;
        Ok(())
    }
}

/// `torch.optim.lr_scheduler.ChainedScheduler`: every step steps all children in order
/// (their factors compose, since they are chainable). Construction takes no step; the
/// children are attached to `opt` already. `state_dict()` is `_last_lr, _schedulers`.
pub struct ChainedScheduler {
    schedulers: Vec<Box<dyn LrScheduler>>,
    last_lr: Vec<f64>,
    extra: Vec<(String, Value)>,
}

impl std::fmt::Debug for ChainedScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.schedulers.iter().map(|s| s.name()).collect();
        f.debug_struct("ChainedScheduler")
            .field("schedulers", &names)
            .finish()
    }
}

impl ChainedScheduler {
    /// Chains `schedulers` (each already attached to `opt`).
    ///
    /// # Errors
    /// `K0003` for no schedulers or a `ReduceLROnPlateau` among them.
    pub fn new(opt: &dyn Optimizer, schedulers: Vec<Box<dyn LrScheduler>>) -> Result<Self> {
        check_children("ChainedScheduler", &schedulers)?;
        Ok(ChainedScheduler {
            schedulers,
            last_lr: group_lrs(opt),
            extra: Vec::new(),
        })
    }

    /// The children, in order.
    pub fn schedulers(&self) -> &[Box<dyn LrScheduler>] {
        &self.schedulers
    }
}

impl LrScheduler for ChainedScheduler {
    fn name(&self) -> &'static str {
        "ChainedScheduler"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        for s in self.schedulers.iter_mut() {
            s.step(opt)?;
        }
        self.last_lr = group_lrs(opt);
        Ok(())
    }

    fn get_last_lr(&self) -> &[f64] {
        &self.last_lr
    }

    /// The last child's `last_epoch` (ChainedScheduler has none of its own).
    fn last_epoch(&self) -> i64 {
        self.schedulers.last().map_or(0, |s| s.last_epoch())
    }

    fn add_param_group(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        for s in self.schedulers.iter_mut() {
            s.add_param_group(opt)?;
        }
        Ok(())
    }

    fn initial_step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.step(opt)
    }

    fn undo_epoch(&mut self) {
        for s in self.schedulers.iter_mut() {
            s.undo_epoch();
        }
    }

    fn state_dict(&self) -> Value {
        let v = base::str_dict(vec![("_last_lr", base::float_list(&self.last_lr))]);
        let mut v = with_extra(v, &self.extra);
        if let Value::Dict(d) = &mut v {
            d.insert("_schedulers", children_state(&self.schedulers));
        }
        v
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        const N: &str = "ChainedScheduler";
        let d = base::as_dict(state, N)?;
        let last_lr = base::floats(d, N, "_last_lr")?;
        let extra = extra_keys(d, &["_last_lr", "_schedulers"]);
        load_children(N, state, &mut self.schedulers)?;
        self.last_lr = last_lr;
        self.extra = extra;
        Ok(())
    }
}
