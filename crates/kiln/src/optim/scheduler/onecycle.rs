//! `OneCycleLR`: the 1cycle policy (warm up to `max_lr`, anneal far below the start).

use super::LrScheduler;
use super::base::{self, Base};
use crate::error::{Error, Result};
use crate::io::Value;
use crate::optim::Optimizer;
use std::f64::consts::PI;

/// How OneCycleLR moves between two values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AnnealStrategy {
    /// Cosine annealing (PyTorch's `"cos"`, the default).
    #[default]
    Cos,
    /// Linear annealing (`"linear"`).
    Linear,
}

impl AnnealStrategy {
    fn name(self) -> &'static str {
        match self {
            AnnealStrategy::Cos => "cos",
            AnnealStrategy::Linear => "linear",
        }
    }

    /// PyTorch's `_annealing_cos` / `_annealing_linear`.
    fn anneal(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            AnnealStrategy::Cos => {
                let cos_out = (PI * pct).cos() + 1.0;
                end + (start - end) / 2.0 * cos_out
            }
            AnnealStrategy::Linear => (end - start) * pct + start,
        }
    }
}

/// OneCycleLR's arguments; [`OneCycleConfig::new`] fills in PyTorch's defaults.
/// A list with one value applies to every group; otherwise one value per group.
#[derive(Clone, Debug, PartialEq)]
pub struct OneCycleConfig {
    /// Peak rate(s).
    pub max_lr: Vec<f64>,
    /// Total number of steps; or give `epochs` and `steps_per_epoch`.
    pub total_steps: Option<usize>,
    /// Epochs (with `steps_per_epoch`, when `total_steps` is not given).
    pub epochs: Option<usize>,
    /// Steps per epoch.
    pub steps_per_epoch: Option<usize>,
    /// Fraction of the cycle spent increasing the rate (default 0.3).
    pub pct_start: f64,
    /// `cos` (default) or `linear`.
    pub anneal_strategy: AnnealStrategy,
    /// Cycle SGD's `momentum` or Adam's `beta1` inversely to the rate (default true).
    pub cycle_momentum: bool,
    /// Lowest momentum (default 0.85).
    pub base_momentum: Vec<f64>,
    /// Highest momentum (default 0.95).
    pub max_momentum: Vec<f64>,
    /// `initial_lr = max_lr / div_factor` (default 25).
    pub div_factor: f64,
    /// `min_lr = initial_lr / final_div_factor` (default 1e4).
    pub final_div_factor: f64,
    /// Three phases (up, down to `initial_lr`, then down to `min_lr`) instead of two.
    pub three_phase: bool,
}

impl OneCycleConfig {
    /// PyTorch's defaults with one `max_lr` for every group and `total_steps`.
    pub fn new(max_lr: f64, total_steps: usize) -> Self {
        OneCycleConfig {
            max_lr: vec![max_lr],
            total_steps: Some(total_steps),
            epochs: None,
            steps_per_epoch: None,
            pct_start: 0.3,
            anneal_strategy: AnnealStrategy::Cos,
            cycle_momentum: true,
            base_momentum: vec![0.85],
            max_momentum: vec![0.95],
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        }
    }
}

/// Which per-group value a phase starts or ends at (PyTorch stores them in the groups under
/// these names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    InitialLr,
    MaxLr,
    MinLr,
    MaxMomentum,
    BaseMomentum,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::InitialLr => "initial_lr",
            Key::MaxLr => "max_lr",
            Key::MinLr => "min_lr",
            Key::MaxMomentum => "max_momentum",
            Key::BaseMomentum => "base_momentum",
        }
    }

    fn parse(s: &str) -> Option<Key> {
        [
            Key::InitialLr,
            Key::MaxLr,
            Key::MinLr,
            Key::MaxMomentum,
            Key::BaseMomentum,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

/// One `_schedule_phases` entry; `end_step` keeps its Python type (the last phase's is an
/// `int`).
#[derive(Clone, Debug, PartialEq)]
struct Phase {
    end_step: f64,
    end_is_int: bool,
    start_lr: Key,
    end_lr: Key,
    start_momentum: Key,
    end_momentum: Key,
}

/// One group's values PyTorch keeps in the param group (`initial_lr`, `max_lr`, `min_lr`,
/// `max_momentum`, `base_momentum`).
#[derive(Clone, Debug, PartialEq)]
struct GroupValues {
    initial_lr: f64,
    max_lr: f64,
    min_lr: f64,
    max_momentum: f64,
    base_momentum: f64,
}

impl GroupValues {
    fn get(&self, k: Key) -> f64 {
        match k {
            Key::InitialLr => self.initial_lr,
            Key::MaxLr => self.max_lr,
            Key::MinLr => self.min_lr,
            Key::MaxMomentum => self.max_momentum,
            Key::BaseMomentum => self.base_momentum,
        }
    }
}

/// `torch.optim.lr_scheduler.OneCycleLR` as torch 2.15 computes it (not chainable: every
/// rate comes from the phase table), including `three_phase` and `cycle_momentum` (SGD's
/// `momentum` or Adam's/AdamW's `betas[0]`, through [`Optimizer::set_cycled_momentum`]).
///
/// PyTorch stores `max_lr`, `min_lr`, `max_momentum` and `base_momentum` in the optimizer's
/// param groups; kiln's optimizers have no such keys, so this scheduler keeps them (made
/// again from the same arguments on resume) and the optimizer's `state_dict()` lacks them.
/// The scheduler's own `state_dict()` is PyTorch's: `total_steps, _schedule_phases,
/// _anneal_func_type, cycle_momentum, [use_beta1,]` then the common keys.
#[derive(Clone, Debug, PartialEq)]
pub struct OneCycleLr {
    total_steps: i64,
    phases: Vec<Phase>,
    anneal: AnnealStrategy,
    cycle_momentum: bool,
    use_beta1: bool,
    groups: Vec<GroupValues>,
    base: Base,
}

fn per_group(what: &str, v: &[f64], groups: usize) -> Result<Vec<f64>> {
    match v.len() {
        1 => Ok(vec![v[0]; groups]),
        n if n == groups => Ok(v.to_vec()),
        n => Err(Error::invalid(
            format!("OneCycleLR {what}"),
            format!("{n} values"),
            format!("1 or {groups}, one per param group (PyTorch: ValueError)"),
        )),
    }
}

fn phases(total: i64, pct_start: f64, three_phase: bool) -> Vec<Phase> {
    let p = |end_step: f64, end_is_int, s, e, sm, em| Phase {
        end_step,
        end_is_int,
        start_lr: s,
        end_lr: e,
        start_momentum: sm,
        end_momentum: em,
    };
    let t = total as f64;
    let last = (total - 1) as f64;
    use Key::*;
    if three_phase {
        vec![
            p(
                pct_start * t - 1.0,
                false,
                InitialLr,
                MaxLr,
                MaxMomentum,
                BaseMomentum,
            ),
            p(
                2.0 * pct_start * t - 2.0,
                false,
                MaxLr,
                InitialLr,
                BaseMomentum,
                MaxMomentum,
            ),
            p(last, true, InitialLr, MinLr, MaxMomentum, MaxMomentum),
        ]
    } else {
        vec![
            p(
                pct_start * t - 1.0,
                false,
                InitialLr,
                MaxLr,
                MaxMomentum,
                BaseMomentum,
            ),
            p(last, true, MaxLr, MinLr, BaseMomentum, MaxMomentum),
        ]
    }
}

impl OneCycleLr {
    /// Attaches to `opt`: sets every group's `initial_lr` to `max_lr / div_factor` (always,
    /// as PyTorch does), the momentum to `max_momentum` when cycling it, and performs the
    /// initial step (the rate becomes `initial_lr`).
    ///
    /// # Errors
    /// `K0003` when neither `total_steps` nor both `epochs` and `steps_per_epoch` are given
    /// (or one is 0), `pct_start` is outside `[0, 1]`, a list has neither 1 nor one value per
    /// group; `K0005` when `cycle_momentum` is set and the optimizer has neither a momentum
    /// nor betas.
    pub fn new(opt: &mut dyn Optimizer, c: &OneCycleConfig) -> Result<Self> {
        let total = match (c.total_steps, c.epochs, c.steps_per_epoch) {
            (Some(t), _, _) => {
                base::check_positive("OneCycleLR total_steps", t)?;
                t
            }
            (None, Some(e), Some(s)) => {
                base::check_positive("OneCycleLR epochs", e)?;
                base::check_positive("OneCycleLR steps_per_epoch", s)?;
                e.saturating_mul(s)
            }
            _ => {
                return Err(Error::invalid(
                    "OneCycleLR length",
                    "neither total_steps nor epochs and steps_per_epoch",
                    "total_steps, or epochs and steps_per_epoch (PyTorch: ValueError)",
                ));
            }
        } as i64;
        if !(0.0..=1.0).contains(&c.pct_start) {
            return Err(Error::invalid(
                "OneCycleLR pct_start",
                c.pct_start,
                "a float between 0 and 1 (PyTorch: ValueError)",
            ));
        }
        base::check_finite("OneCycleLR div_factor", c.div_factor)?;
        base::check_finite("OneCycleLR final_div_factor", c.final_div_factor)?;
        let n = opt.param_groups().len();
        let max_lrs = per_group("max_lr", &c.max_lr, n)?;
        let max_m = per_group("max_momentum", &c.max_momentum, n)?;
        let base_m = per_group("base_momentum", &c.base_momentum, n)?;
        let use_beta1 = if c.cycle_momentum {
            match opt.cycled_momentum_key() {
                Some(key) => key == "betas",
                None => {
                    return Err(Error::Unsupported {
                        what: format!(
                            "OneCycleLR cycle_momentum with {}, which has neither momentum nor betas",
                            opt.name()
                        ),
                    });
                }
            }
        } else {
            false
        };
        let mut groups = Vec::with_capacity(n);
        for i in 0..n {
            let initial_lr = max_lrs[i] / c.div_factor;
            opt.set_initial_lr(i, initial_lr);
            if c.cycle_momentum {
                opt.set_cycled_momentum(i, max_m[i])?;
            }
            groups.push(GroupValues {
                initial_lr,
                max_lr: max_lrs[i],
                min_lr: initial_lr / c.final_div_factor,
                max_momentum: max_m[i],
                base_momentum: base_m[i],
            });
        }
        let mut s = OneCycleLr {
            total_steps: total,
            phases: phases(total, c.pct_start, c.three_phase),
            anneal: c.anneal_strategy,
            cycle_momentum: c.cycle_momentum,
            use_beta1,
            groups,
            base: Base::attach(opt),
        };
        s.initial_step(opt)?;
        Ok(s)
    }

    /// The total number of steps.
    pub fn total_steps(&self) -> i64 {
        self.total_steps
    }
}

impl LrScheduler for OneCycleLr {
    fn name(&self) -> &'static str {
        "OneCycleLR"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let step_num = self.base.last_epoch + 1;
        if step_num > self.total_steps {
            return Err(Error::invalid(
                "OneCycleLR step",
                step_num,
                format!(
                    "at most total_steps = {} (PyTorch: ValueError)",
                    self.total_steps
                ),
            ));
        }
        base::check_groups(opt, self.groups.len())?;
        let (phases, groups, anneal) = (&self.phases, &self.groups, self.anneal);
        let mut momenta = Vec::with_capacity(groups.len());
        self.base.step(opt, |b, _| {
            let step = b.last_epoch as f64;
            let mut lrs = Vec::with_capacity(groups.len());
            for g in groups {
                let mut start_step = 0.0;
                for (i, phase) in phases.iter().enumerate() {
                    if step <= phase.end_step || i == phases.len() - 1 {
                        let pct = (step - start_step) / (phase.end_step - start_step);
                        lrs.push(anneal.anneal(g.get(phase.start_lr), g.get(phase.end_lr), pct));
                        momenta.push(anneal.anneal(
                            g.get(phase.start_momentum),
                            g.get(phase.end_momentum),
                            pct,
                        ));
                        break;
                    }
                    start_step = phase.end_step;
                }
            }
            Ok(lrs)
        })?;
        if self.cycle_momentum {
            for (i, m) in momenta.into_iter().enumerate() {
                opt.set_cycled_momentum(i, m)?;
            }
        }
        Ok(())
    }

    base::common_methods!("OneCycleLR");

    fn update_lr_at(&mut self, opt: &mut dyn Optimizer, epoch: i64) -> Result<()> {
        // no closed form in PyTorch: get_lr() at `epoch`, without counting a step
        let count = self.base.step_count;
        self.base.last_epoch = epoch - 1;
        self.step(opt)?;
        self.base.step_count = count;
        Ok(())
    }

    fn state_dict(&self) -> Value {
        let phases = self
            .phases
            .iter()
            .map(|p| {
                base::str_dict(vec![
                    (
                        "end_step",
                        if p.end_is_int {
                            Value::Int(p.end_step as i64)
                        } else {
                            Value::Float(p.end_step)
                        },
                    ),
                    ("start_lr", Value::Str(p.start_lr.name().into())),
                    ("end_lr", Value::Str(p.end_lr.name().into())),
                    ("start_momentum", Value::Str(p.start_momentum.name().into())),
                    ("end_momentum", Value::Str(p.end_momentum.name().into())),
                ])
            })
            .collect();
        let mut own = vec![
            ("total_steps", Value::Int(self.total_steps)),
            ("_schedule_phases", Value::List(phases)),
            ("_anneal_func_type", Value::Str(self.anneal.name().into())),
            ("cycle_momentum", Value::Bool(self.cycle_momentum)),
        ];
        if self.cycle_momentum {
            own.push(("use_beta1", Value::Bool(self.use_beta1)));
        }
        self.base.entries(own)
    }

    /// Loads PyTorch's or kiln's state; the per-group values (`max_lr`, …) stay the ones
    /// this scheduler was made with (PyTorch reads them from the optimizer's groups).
    fn load_state_dict(&mut self, state: &Value) -> Result<()> {
        const N: &str = "OneCycleLR";
        let d = base::as_dict(state, N)?;
        let total_steps = base::int(d, N, "total_steps")?;
        let anneal = match base::string(d, N, "_anneal_func_type")?.as_str() {
            "cos" => AnnealStrategy::Cos,
            "linear" => AnnealStrategy::Linear,
            other => {
                return Err(base::state_error(format!(
                    "{N} _anneal_func_type '{other}' is unknown"
                )));
            }
        };
        let cycle_momentum = base::boolean(d, N, "cycle_momentum")?;
        let use_beta1 = if cycle_momentum {
            base::boolean(d, N, "use_beta1")?
        } else {
            false
        };
        let items = base::need(d, N, "_schedule_phases")?
            .as_seq()
            .ok_or_else(|| base::state_error(format!("{N} _schedule_phases is not a list")))?;
        let mut phases = Vec::with_capacity(items.len());
        for item in items {
            let p = base::as_dict(item, "OneCycleLR phase")?;
            let (end_step, end_is_int) = match base::need(p, N, "end_step")? {
                Value::Int(i) => (*i as f64, true),
                Value::Float(f) => (*f, false),
                v => {
                    return Err(base::state_error(format!(
                        "{N} phase end_step is a {}, expected a number",
                        v.type_name()
                    )));
                }
            };
            let key = |k: &str| -> Result<Key> {
                let s = base::string(p, N, k)?;
                Key::parse(&s)
                    .ok_or_else(|| base::state_error(format!("{N} phase {k} '{s}' is unknown")))
            };
            phases.push(Phase {
                end_step,
                end_is_int,
                start_lr: key("start_lr")?,
                end_lr: key("end_lr")?,
                start_momentum: key("start_momentum")?,
                end_momentum: key("end_momentum")?,
            });
        }
        if phases.is_empty() {
            return Err(base::state_error(format!("{N} has no _schedule_phases")));
        }
        let b = Base::load(
            d,
            N,
            &[
                "total_steps",
                "_schedule_phases",
                "_anneal_func_type",
                "cycle_momentum",
                "use_beta1",
            ],
        )?;
        let groups = std::mem::take(&mut self.groups);
        *self = OneCycleLr {
            total_steps,
            phases,
            anneal,
            cycle_momentum,
            use_beta1,
            groups,
            base: b,
        };
        Ok(())
    }
}
