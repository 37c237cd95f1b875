//! `ReduceLROnPlateau`: divide the rates when a metric stops improving.

use super::LrScheduler;
use super::base::{self, group_lrs};
use crate::error::{Error, Result};
use crate::io::{Dict, Value};
use crate::optim::Optimizer;

/// Whether the metric should go down (`Min`, a loss) or up (`Max`, an accuracy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlateauMode {
    /// PyTorch's `mode="min"` (the default).
    #[default]
    Min,
    /// PyTorch's `mode="max"`.
    Max,
}

/// How `threshold` defines a significant improvement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThresholdMode {
    /// `best * (1 -/+ threshold)` (PyTorch's `threshold_mode="rel"`, the default).
    #[default]
    Rel,
    /// `best -/+ threshold` (`"abs"`).
    Abs,
}

/// The lowest rate(s) (PyTorch's `min_lr`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum MinLr {
    /// PyTorch's default `min_lr=0`, an `int` (so `state_dict()` holds `0`, not `0.0`).
    #[default]
    Zero,
    /// One float for every group.
    All(f64),
    /// One per group (PyTorch's list form; `default_min_lr` is then `None`).
    PerGroup(Vec<f64>),
}

/// `ReduceLROnPlateau`'s arguments; `Default` is PyTorch's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct PlateauConfig {
    /// `min` or `max`.
    pub mode: PlateauMode,
    /// Multiplier of the rates on a plateau (`< 1`; default 0.1).
    pub factor: f64,
    /// Epochs without improvement tolerated before reducing (default 10).
    pub patience: usize,
    /// Significance threshold (default 1e-4).
    pub threshold: f64,
    /// `rel` or `abs`.
    pub threshold_mode: ThresholdMode,
    /// Epochs to wait after a reduction before counting bad epochs again (default 0).
    pub cooldown: usize,
    /// Lower bound of the rates.
    pub min_lr: MinLr,
    /// A reduction smaller than this is skipped (default 1e-8).
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: MinLr::Zero,
            eps: 1e-8,
        }
    }
}

/// A number with its Python type (`min_lr` may be an `int`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn value(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn to_value(self) -> Value {
        match self {
            Num::Int(i) => Value::Int(i),
            Num::Float(f) => Value::Float(f),
        }
    }

    fn from_value(v: &Value) -> Option<Num> {
        match v {
            Value::Int(i) => Some(Num::Int(*i)),
            Value::Float(f) => Some(Num::Float(*f)),
            _ => None,
        }
    }
}

/// `torch.optim.lr_scheduler.ReduceLROnPlateau`, stepped with the metric through
/// [`LrScheduler::step_with_metric`] (plain [`LrScheduler::step`] is an error). As in
/// PyTorch it is not an `LRScheduler` underneath: no `base_lrs` or `_step_count`, and its
/// `state_dict()` is its own `__dict__` (`factor, default_min_lr, min_lrs, patience,
/// cooldown, eps, last_epoch, _last_lr, mode_worse, mode, threshold, threshold_mode, best,
/// cooldown_counter, num_bad_epochs`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceLrOnPlateau {
    factor: f64,
    default_min_lr: Option<Num>,
    min_lrs: Vec<Num>,
    patience: i64,
    cooldown: i64,
    eps: f64,
    last_epoch: i64,
    last_lr: Vec<f64>,
    mode: PlateauMode,
    threshold: f64,
    threshold_mode: ThresholdMode,
    best: f64,
    cooldown_counter: i64,
    num_bad_epochs: i64,
    extra: Vec<(String, Value)>,
}

const N: &str = "ReduceLROnPlateau";

impl ReduceLrOnPlateau {
    /// Attaches to `opt` (no initial step, no `initial_lr`, as in PyTorch).
    ///
    /// # Errors
    /// `K0003` when `factor >= 1` or a value is not finite, or a per-group `min_lr` list
    /// does not have one entry per group.
    pub fn new(opt: &mut dyn Optimizer, config: PlateauConfig) -> Result<Self> {
        if config.factor.is_nan() || config.factor >= 1.0 {
            return Err(Error::invalid(
                "ReduceLROnPlateau factor",
                config.factor,
                "below 1.0 (PyTorch: ValueError)",
            ));
        }
        base::check_finite("ReduceLROnPlateau threshold", config.threshold)?;
        base::check_finite("ReduceLROnPlateau eps", config.eps)?;
        let groups = opt.param_groups().len();
        let (default_min_lr, min_lrs) = match &config.min_lr {
            MinLr::Zero => (Some(Num::Int(0)), vec![Num::Int(0); groups]),
            MinLr::All(m) => {
                base::check_finite("ReduceLROnPlateau min_lr", *m)?;
                (Some(Num::Float(*m)), vec![Num::Float(*m); groups])
            }
            MinLr::PerGroup(v) => {
                if v.len() != groups {
                    return Err(Error::invalid(
                        "ReduceLROnPlateau min_lr",
                        format!("{} values", v.len()),
                        format!("{groups}, one per param group (PyTorch: ValueError)"),
                    ));
                }
                (None, v.iter().map(|m| Num::Float(*m)).collect())
            }
        };
        let mut s = ReduceLrOnPlateau {
            factor: config.factor,
            default_min_lr,
            min_lrs,
            patience: config.patience as i64,
            cooldown: config.cooldown as i64,
            eps: config.eps,
            last_epoch: 0,
            last_lr: group_lrs(opt),
            mode: config.mode,
            threshold: config.threshold,
            threshold_mode: config.threshold_mode,
            best: 0.0,
            cooldown_counter: 0,
            num_bad_epochs: 0,
            extra: Vec::new(),
        };
        s.best = s.mode_worse();
        Ok(s)
    }

    fn mode_worse(&self) -> f64 {
        match self.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        }
    }

    /// The best metric so far.
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Epochs since the last improvement (PyTorch's `num_bad_epochs`).
    pub fn num_bad_epochs(&self) -> i64 {
        self.num_bad_epochs
    }

    fn is_better(&self, a: f64, best: f64) -> bool {
        match (self.mode, self.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - self.threshold),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - self.threshold,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (self.threshold + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + self.threshold,
        }
    }

    fn reduce_lr(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let groups = opt.param_groups().len();
        if groups != self.min_lrs.len() {
            match self.default_min_lr {
                Some(m) => self.min_lrs = vec![m; groups],
                None => {
                    return Err(Error::invalid(
                        "optimizer param groups",
                        groups,
                        format!(
                            "{} as when ReduceLROnPlateau was made with one min_lr per group (PyTorch: RuntimeError)",
                            self.min_lrs.len()
                        ),
                    ));
                }
            }
        }
        for i in 0..groups {
            let old = opt.param_groups()[i].lr;
            let reduced = old * self.factor;
            let m = self.min_lrs[i].value();
            // Python's max(reduced, min_lr): the first unless the second is greater
            let new = if m > reduced { m } else { reduced };
            if old - new > self.eps {
                opt.set_lr(i, new);
            }
        }
        Ok(())
    }
}

fn mode_name(m: PlateauMode) -> &'static str {
    match m {
        PlateauMode::Min => "min",
        PlateauMode::Max => "max",
    }
}

fn threshold_mode_name(m: ThresholdMode) -> &'static str {
    match m {
        ThresholdMode::Rel => "rel",
        ThresholdMode::Abs => "abs",
    }
}

fn num(d: &Dict, key: &str) -> Result<Num> {
    let v = base::need(d, N, key)?;
    Num::from_value(v).ok_or_else(|| {
        base::state_error(format!(
            "{N} state '{key}' is a {}, expected a number",
            v.type_name()
        ))
    })
}

impl LrScheduler for ReduceLrOnPlateau {
    fn name(&self) -> &'static str {
        N
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let _ = opt;
        Err(Error::invalid(
            "ReduceLROnPlateau step",
            "no metric",
            "a metric: call step_with_metric (PyTorch: step(metrics))",
        ))
    }

    fn needs_metric(&self) -> bool {
        true
    }

    fn step_with_metric(&mut self, opt: &mut dyn Optimizer, metric: f64) -> Result<()> {
        self.last_epoch += 1;
        if self.is_better(metric, self.best) {
            self.best = metric;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.patience {
            self.reduce_lr(opt)?;
            self.cooldown_counter = self.cooldown;
            self.num_bad_epochs = 0;
        }
        self.last_lr = group_lrs(opt);
        Ok(())
    }

    fn get_last_lr(&self) -> &[f64] {
        &self.last_lr
    }

    fn last_epoch(&self) -> i64 {
        self.last_epoch
    }

    /// Accepts the new group: the rates of groups PyTorch does not know yet get the
    /// default `min_lr` at the next reduction (an error there when `min_lr` was a list).
    fn add_param_group(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let _ = opt;
        if self.default_min_lr.is_none() {
            return Err(Error::invalid(
                "ReduceLROnPlateau min_lr",
                "one per group",
                "a single min_lr to take in a new param group (PyTorch: RuntimeError at the next reduction)",
            ));
        }
        Ok(())
    }

    fn undo_epoch(&mut self) {
        self.last_epoch -= 1;
    }

    fn state_dict(&self) -> Value {
        let mut d = base::str_dict(vec![
            ("factor", Value::Float(self.factor)),
            (
                "default_min_lr",
                self.default_min_lr.map_or(Value::None, Num::to_value),
            ),
            (
                "min_lrs",
                Value::List(self.min_lrs.iter().map(|m| m.to_value()).collect()),
            ),
            ("patience", Value::Int(self.patience)),
            ("cooldown", Value::Int(self.cooldown)),
            ("eps", Value::Float(self.eps)),
            ("last_epoch", Value::Int(self.last_epoch)),
            ("_last_lr", base::float_list(&self.last_lr)),
            ("mode_worse", Value::Float(self.mode_worse())),
            ("mode", Value::Str(mode_name(self.mode).into())),
            ("threshold", Value::Float(self.threshold)),
            (
                "threshold_mode",
                Value::Str(threshold_mode_name(self.threshold_mode).into()),
            ),
            ("best", Value::Float(self.best)),
            ("cooldown_counter", Value::Int(self.cooldown_counter)),
            ("num_bad_epochs", Value::Int(self.num_bad_epochs)),
        ]);
        if let Value::Dict(dict) = &mut d {
            for (k, v) in &self.extra {
                dict.insert(k, v.clone());
            }
        }
        d
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        const OWN: &[&str] = &[
            "factor",
            "default_min_lr",
            "min_lrs",
            "patience",
            "cooldown",
            "eps",
            "last_epoch",
            "_last_lr",
            "mode_worse",
            "mode",
            "threshold",
            "threshold_mode",
            "best",
            "cooldown_counter",
            "num_bad_epochs",
        ];
        let d = base::as_dict(state, N)?;
        let mode = match base::string(d, N, "mode")?.as_str() {
            "min" => PlateauMode::Min,
            "max" => PlateauMode::Max,
            other => return Err(base::state_error(format!("{N} mode '{other}' is unknown"))),
        };
        let threshold_mode = match base::string(d, N, "threshold_mode")?.as_str() {
            "rel" => ThresholdMode::Rel,
            "abs" => ThresholdMode::Abs,
            other => {
                return Err(base::state_error(format!(
                    "{N} threshold mode '{other}' is unknown"
                )));
            }
        };
        let default_min_lr = match base::need(d, N, "default_min_lr")? {
            Value::None => None,
            _ => Some(num(d, "default_min_lr")?),
        };
        let min_lrs = match base::need(d, N, "min_lrs")? {
            Value::List(items) | Value::Tuple(items) => items
                .iter()
                .map(|x| {
                    Num::from_value(x).ok_or_else(|| {
                        base::state_error(format!(
                            "{N} min_lrs holds a {}, expected numbers",
                            x.type_name()
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            other => {
                return Err(base::state_error(format!(
                    "{N} min_lrs is a {}, expected a list",
                    other.type_name()
                )));
            }
        };
        let mut extra = Vec::new();
        for (k, v) in &d.entries {
            if let Some(key) = k.as_str()
                && !OWN.contains(&key)
            {
                extra.push((key.to_string(), v.clone()));
            }
        }
        *self = ReduceLrOnPlateau {
            factor: base::float(d, N, "factor")?,
            default_min_lr,
            min_lrs,
            patience: base::int(d, N, "patience")?,
            cooldown: base::int(d, N, "cooldown")?,
            eps: base::float(d, N, "eps")?,
            last_epoch: base::int(d, N, "last_epoch")?,
            last_lr: base::floats(d, N, "_last_lr")?,
            mode,
            threshold: base::float(d, N, "threshold")?,
            threshold_mode,
            best: base::float(d, N, "best")?,
            cooldown_counter: base::int(d, N, "cooldown_counter")?,
            num_bad_epochs: base::int(d, N, "num_bad_epochs")?,
            extra,
        };
        Ok(())
    }
}
