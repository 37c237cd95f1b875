//! What every scheduler shares: PyTorch's `LRScheduler` bookkeeping (`base_lrs`,
//! `last_epoch`, `_step_count`, `_last_lr`), its `step()` protocol and the common part of its
//! `state_dict()`.

use crate::error::{Error, Result};
use crate::io::{Dict, Value, value::key_string};
use crate::optim::Optimizer;

/// The `LrScheduler` methods every `Base`-holding scheduler implements the same way
/// (`get_last_lr`, `last_epoch`, `add_param_group`, `initial_step`, `undo_epoch`); `$name` is
/// PyTorch's class name.
macro_rules! common_methods {
    ($name:literal) => {
        fn get_last_lr(&self) -> &[f64] {
            &self.base.last_lr
        }

        fn last_epoch(&self) -> i64 {
            self.base.last_epoch
        }

        fn add_param_group(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
            self.base.add_group(opt, $name)
        }

        fn initial_step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
            self.base.step_count = 0;
            self.base.is_initial = true;
            let r = self.step(opt);
            self.base.is_initial = false;
            r
        }

        fn undo_epoch(&mut self) {
            self.base.last_epoch -= 1;
        }
    };
}
pub(crate) use common_methods;

/// PyTorch's `LRScheduler` attributes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Base {
    pub base_lrs: Vec<f64>,
    pub last_epoch: i64,
    pub step_count: i64,
    pub last_lr: Vec<f64>,
    /// PyTorch's `_is_initial`: true only during the initial step (`_initial_step`).
    pub is_initial: bool,
    /// Keys of a loaded state dict kiln does not use (PyTorch's `__dict__.update` keeps them).
    pub extra: Vec<(String, Value)>,
}

/// The current learning rate of every group.
pub(crate) fn group_lrs(opt: &dyn Optimizer) -> Vec<f64> {
    opt.param_groups().iter().map(|g| g.lr).collect()
}

impl Base {
    /// Attaches to `opt` like `LRScheduler.__init__(optimizer, last_epoch=-1)`: sets each
    /// group's `initial_lr` when it has none (`setdefault`) and takes them as `base_lrs`.
    pub fn attach(opt: &mut dyn Optimizer) -> Base {
        let initial: Vec<(f64, Option<f64>)> = opt
            .param_groups()
            .iter()
            .map(|g| (g.lr, g.initial_lr))
            .collect();
        let mut base_lrs = Vec::with_capacity(initial.len());
        for (i, (lr, init)) in initial.into_iter().enumerate() {
            match init {
                Some(v) => base_lrs.push(v),
                None => {
                    opt.set_initial_lr(i, lr);
                    base_lrs.push(lr);
                }
            }
        }
        Base {
            base_lrs,
            last_epoch: -1,
            step_count: 0,
            last_lr: Vec::new(),
            is_initial: false,
            extra: Vec::new(),
        }
    }

    /// PyTorch's `_update_lr(epoch)` (what `SequentialLR` calls at a milestone):
    /// `last_epoch = epoch` and the rates from the closed form (`_get_closed_form_lr`),
    /// without counting a step.
    pub fn update_at(
        &mut self,
        opt: &mut dyn Optimizer,
        epoch: i64,
        closed_form: impl FnOnce(&Base) -> Vec<f64>,
    ) -> Result<()> {
        self.last_epoch = epoch;
        let values = closed_form(self);
        check_groups(opt, values.len())?;
        for (i, lr) in values.into_iter().enumerate() {
            opt.set_lr(i, lr);
        }
        self.last_lr = group_lrs(opt);
        Ok(())
    }

    /// Takes in the group just appended to `opt` (see `LrScheduler::add_param_group`).
    pub fn add_group(&mut self, opt: &mut dyn Optimizer, scheduler: &str) -> Result<()> {
        let i = self.base_lrs.len();
        let groups = opt.param_groups().len();
        if groups != i + 1 {
            return Err(Error::invalid(
                "optimizer param groups",
                groups,
                format!("{} ({scheduler} knew {i}; add one group at a time)", i + 1),
            ));
        }
        let lr = opt.param_groups()[i].lr;
        opt.set_initial_lr(i, lr);
        self.base_lrs.push(lr);
        self.last_lr.push(lr);
        Ok(())
    }

    /// One `step()`: `_step_count += 1`, `last_epoch += 1`, new rates from `get_lr` (given
    /// this state and the groups' current rates) written into the groups, `_last_lr` read
    /// back from them.
    pub fn step(
        &mut self,
        opt: &mut dyn Optimizer,
        get_lr: impl FnOnce(&Base, &[f64]) -> Result<Vec<f64>>,
    ) -> Result<()> {
        self.step_count += 1;
        self.last_epoch += 1;
        let current = group_lrs(opt);
        let values = get_lr(self, &current)?;
        for (i, lr) in values.into_iter().enumerate() {
            opt.set_lr(i, lr);
        }
        self.last_lr = group_lrs(opt);
        Ok(())
    }

    /// `base_lrs, last_epoch, _step_count, _is_initial, _get_lr_called_within_step,
    /// _last_lr` (and unknown loaded keys), after the scheduler's own keys.
    pub fn entries(&self, mut own: Vec<(&str, Value)>) -> Value {
        let floats = |v: &[f64]| Value::List(v.iter().map(|x| Value::Float(*x)).collect());
        own.extend([
            ("base_lrs", floats(&self.base_lrs)),
            ("last_epoch", Value::Int(self.last_epoch)),
            ("_step_count", Value::Int(self.step_count)),
            ("_is_initial", Value::Bool(false)),
            ("_get_lr_called_within_step", Value::Bool(false)),
            ("_last_lr", floats(&self.last_lr)),
        ]);
        let mut d = Dict {
            entries: own
                .into_iter()
                .map(|(k, v)| (Value::Str(k.to_string()), v))
                .collect(),
            ordered: false,
            metadata: None,
        };
        for (k, v) in &self.extra {
            d.insert(k, v.clone());
        }
        Value::Dict(d)
    }

    /// Reads the common keys of a scheduler state dict; `own` are the scheduler's own keys
    /// (read by the caller), anything else is kept as an extra key.
    pub fn load(d: &Dict, scheduler: &str, own: &[&str]) -> Result<Base> {
        let list = |key: &str| -> Result<Vec<f64>> {
            let v = need(d, scheduler, key)?;
            let items = v
                .as_seq()
                .ok_or_else(|| wrong(scheduler, key, v, "a list"))?;
            items
                .iter()
                .map(|x| {
                    x.as_f64()
                        .ok_or_else(|| wrong(scheduler, key, x, "numbers"))
                })
                .collect()
        };
        let mut extra = Vec::new();
        for (k, v) in &d.entries {
            let key = k.as_str().ok_or_else(|| {
                bad(format!(
                    "{scheduler} state has a key {} that is not a string",
                    key_string(k)
                ))
            })?;
            let common = matches!(
                key,
                "base_lrs"
                    | "last_epoch"
                    | "_step_count"
                    | "_is_initial"
                    | "_get_lr_called_within_step"
                    | "_last_lr"
                    | "verbose"
            );
            if !common && !own.contains(&key) {
                extra.push((key.to_string(), v.clone()));
            }
        }
        Ok(Base {
            base_lrs: list("base_lrs")?,
            last_epoch: int(d, scheduler, "last_epoch")?,
            step_count: int(d, scheduler, "_step_count")?,
            last_lr: list("_last_lr")?,
            is_initial: false,
            extra,
        })
    }
}

fn bad(detail: String) -> Error {
    Error::OptimizerState { detail }
}

fn wrong(scheduler: &str, key: &str, v: &Value, expected: &str) -> Error {
    bad(format!(
        "{scheduler} state '{key}' is a {}, expected {expected}",
        v.type_name()
    ))
}

/// The state dict as a dict.
pub(crate) fn as_dict<'a>(v: &'a Value, scheduler: &str) -> Result<&'a Dict> {
    v.as_dict().ok_or_else(|| {
        bad(format!(
            "a {scheduler} state dict must be a dict, found a {}",
            v.type_name()
        ))
    })
}

/// A required key.
pub(crate) fn need<'a>(d: &'a Dict, scheduler: &str, key: &str) -> Result<&'a Value> {
    d.get(key).ok_or_else(|| {
        let keys: Vec<String> = d.entries.iter().map(|(k, _)| key_string(k)).collect();
        bad(format!(
            "the state dict has no '{key}', so it is not {scheduler} state (keys: {})",
            keys.join(", ")
        ))
    })
}

/// A required `int`.
pub(crate) fn int(d: &Dict, scheduler: &str, key: &str) -> Result<i64> {
    match need(d, scheduler, key)? {
        Value::Int(i) => Ok(*i),
        v => Err(wrong(scheduler, key, v, "an int")),
    }
}

/// A required number.
pub(crate) fn float(d: &Dict, scheduler: &str, key: &str) -> Result<f64> {
    let v = need(d, scheduler, key)?;
    match v {
        Value::Int(_) | Value::Float(_) => v
            .as_f64()
            .ok_or_else(|| wrong(scheduler, key, v, "a number")),
        _ => Err(wrong(scheduler, key, v, "a number")),
    }
}

/// `K0003` unless `opt` has `n` groups (PyTorch: `zip(..., strict=True)` fails).
pub(crate) fn check_groups(opt: &dyn Optimizer, n: usize) -> Result<()> {
    let groups = opt.param_groups().len();
    if groups == n {
        Ok(())
    } else {
        Err(Error::invalid(
            "optimizer param groups",
            groups,
            format!(
                "{n}, one per rate the scheduler computed (PyTorch: zip() arguments differ in length)"
            ),
        ))
    }
}

/// A required `bool`.
pub(crate) fn boolean(d: &Dict, scheduler: &str, key: &str) -> Result<bool> {
    match need(d, scheduler, key)? {
        Value::Bool(b) => Ok(*b),
        v => Err(wrong(scheduler, key, v, "a bool")),
    }
}

/// A required `str`.
pub(crate) fn string(d: &Dict, scheduler: &str, key: &str) -> Result<String> {
    match need(d, scheduler, key)? {
        Value::Str(s) => Ok(s.clone()),
        v => Err(wrong(scheduler, key, v, "a str")),
    }
}

/// A required list of numbers.
pub(crate) fn floats(d: &Dict, scheduler: &str, key: &str) -> Result<Vec<f64>> {
    let v = need(d, scheduler, key)?;
    let items = v
        .as_seq()
        .ok_or_else(|| wrong(scheduler, key, v, "a list"))?;
    items
        .iter()
        .map(|x| match x {
            Value::Int(_) | Value::Float(_) => x
                .as_f64()
                .ok_or_else(|| wrong(scheduler, key, x, "numbers")),
            _ => Err(wrong(scheduler, key, x, "numbers")),
        })
        .collect()
}

/// A list of floats as a `Value`.
pub(crate) fn float_list(v: &[f64]) -> Value {
    Value::List(v.iter().map(|x| Value::Float(*x)).collect())
}

/// A dict `Value` with string keys, in the given order.
pub(crate) fn str_dict(entries: Vec<(&str, Value)>) -> Value {
    Value::Dict(Dict {
        entries: entries
            .into_iter()
            .map(|(k, v)| (Value::Str(k.to_string()), v))
            .collect(),
        ordered: false,
        metadata: None,
    })
}

/// `K0603` with `detail`.
pub(crate) fn state_error(detail: String) -> Error {
    bad(detail)
}

/// `K0003` unless `value` is finite.
pub(crate) fn check_finite(what: &str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(what, value, "a finite number"))
    }
}

/// `K0003` unless `value >= 1` (PyTorch would divide by zero at the first step).
pub(crate) fn check_positive(what: &str, value: usize) -> Result<()> {
    if value >= 1 {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            value,
            "at least 1 (PyTorch: ZeroDivisionError at the first step)",
        ))
    }
}
