//! The parts of PyTorch's optimizer `state_dict` layout all optimizers share: packing
//! `{"state": {i: {...}}, "param_groups": [{..., "params": [i, ...]}]}` and reading it back
//! (group matching by position, index mapping, shape/dtype/device of state tensors).

use super::ParamGroup;
use crate::error::{Context, Error, Result, shape_str};
use crate::io::{Dict, Value, value::key_string};
use crate::nn::Param;
use candle_core::Tensor;

/// A number as Python holds it: the value and whether it is an `int` (PyTorch keeps the type
/// the user passed, and SGD's `momentum=0` default is an `int`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PyNum {
    pub value: f64,
    pub int: bool,
}

impl PyNum {
    /// A Python `float`.
    pub fn float(value: f64) -> Self {
        PyNum { value, int: false }
    }

    /// A Python `int` when `value` equals the `int` default PyTorch uses for this key
    /// (`momentum=0`), else a `float` — what a PyTorch user leaving the default would get.
    pub fn int_if(value: f64, int_default: f64) -> Self {
        PyNum {
            value,
            int: value == int_default,
        }
    }

    /// The Python value (`int` only when integral).
    pub fn to_value(self) -> Value {
        if self.int
            && self.value.fract() == 0.0
            && self.value.abs() < 9.0e15
            && self.value.is_finite()
        {
            Value::Int(self.value as i64)
        } else {
            Value::Float(self.value)
        }
    }

    /// Reads an `int` or `float` (not a `bool`).
    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(PyNum {
                value: *i as f64,
                int: true,
            }),
            Value::Float(f) => Some(PyNum::float(*f)),
            _ => None,
        }
    }

    /// The new value after a scheduler sets `value`: keeps `int` only if unchanged (PyTorch's
    /// schedulers return `group["lr"]` itself when they do not change it).
    pub fn set(self, value: f64) -> Self {
        PyNum {
            value,
            int: self.int && value.to_bits() == self.value.to_bits(),
        }
    }
}

/// What a group holds beyond kiln's math: Python types of `lr`/`initial_lr`, PyTorch's
/// implementation switches (kept verbatim, the math is always the single-tensor path), and
/// keys kiln does not know (`param_names`, user keys), kept so a load/save round trip loses
/// nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct GroupMeta {
    pub lr: Option<PyNum>,
    pub initial_lr: Option<PyNum>,
    pub foreach: Option<bool>,
    pub differentiable: bool,
    pub fused: Option<bool>,
    pub capturable: bool,
    pub param_names: Option<Value>,
    pub extra: Vec<(String, Value)>,
    /// Keys in the order PyTorch's group dict holds them (`params` aside): a loaded group's
    /// order, or the overridden keys first for a group built with overrides (PyTorch starts
    /// from the user's dict and `setdefault`s the rest). Keys not listed follow in the
    /// optimizer's default order.
    pub order: Vec<String>,
}

impl GroupMeta {
    /// The `lr` value with its Python type.
    pub fn lr_value(&self, lr: f64) -> Value {
        match self.lr {
            Some(n) if n.value.to_bits() == lr.to_bits() => n.to_value(),
            _ => Value::Float(lr),
        }
    }

    fn initial_lr_value(&self, lr: f64) -> Value {
        match self.initial_lr {
            Some(n) if n.value.to_bits() == lr.to_bits() => n.to_value(),
            _ => Value::Float(lr),
        }
    }

    /// Records a new learning rate (keeps `int` only when unchanged).
    pub fn set_lr(&mut self, old: f64, new: f64) {
        self.lr = Some(self.lr.unwrap_or(PyNum::float(old)).set(new));
    }

    /// Records `initial_lr` as a copy of the current `lr` (type included) when they agree.
    pub fn set_initial_lr(&mut self, lr: f64) {
        self.initial_lr = Some(match self.lr {
            Some(n) if n.value.to_bits() == lr.to_bits() => n,
            _ => PyNum::float(lr),
        });
    }
}

/// `None` for a Python `None`, else the bool.
pub(crate) fn opt_bool_value(b: Option<bool>) -> Value {
    b.map_or(Value::None, Value::Bool)
}

/// One packed group: `param_names` first when known, the optimizer's hyper-parameters in
/// PyTorch's order, `initial_lr`, unknown keys, and `params` last (PyTorch's `state_dict`
/// moves `params` to the end).
pub(crate) fn pack_group(
    group: &ParamGroup,
    meta: &GroupMeta,
    hyper: Vec<(&str, Value)>,
    first_index: i64,
) -> Value {
    let mut entries: Vec<(String, Value)> = Vec::with_capacity(hyper.len() + 4);
    if let Some(names) = &meta.param_names {
        entries.push(("param_names".into(), names.clone()));
    }
    for (k, v) in hyper {
        entries.push((k.to_string(), v));
    }
    if let Some(lr) = group.initial_lr {
        entries.push(("initial_lr".into(), meta.initial_lr_value(lr)));
    }
    for (k, v) in &meta.extra {
        entries.push((k.clone(), v.clone()));
    }
    // stable: keys not in `order` keep the default order, after the listed ones
    entries.sort_by_key(|(k, _)| meta.order.iter().position(|o| o == k).unwrap_or(usize::MAX));
    let mut entries: Vec<(Value, Value)> = entries
        .into_iter()
        .map(|(k, v)| (Value::Str(k), v))
        .collect();
    let indices = (0..group.params.len() as i64)
        .map(|i| Value::Int(first_index + i))
        .collect();
    entries.push((Value::Str("params".into()), Value::List(indices)));
    Value::Dict(Dict {
        entries,
        ordered: false,
        metadata: None,
    })
}

/// The whole state dict from packed per-parameter state (in insertion order) and groups.
pub(crate) fn pack(state: Vec<(i64, Value)>, groups: Vec<Value>) -> Value {
    let state = Value::Dict(Dict {
        entries: state.into_iter().map(|(i, v)| (Value::Int(i), v)).collect(),
        ordered: false,
        metadata: None,
    });
    Value::dict([("state", state), ("param_groups", Value::List(groups))])
}

/// A parameter's state entry as a plain dict with string keys.
pub(crate) fn entry(items: Vec<(&str, Value)>) -> Value {
    Value::dict(items)
}

/// Where a flat state index points: group, position in the group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub group: usize,
    pub pos: usize,
}

/// A state dict checked against the optimizer's groups.
pub(crate) struct Loaded<'a> {
    /// The saved groups, by position.
    pub groups: Vec<&'a Dict>,
    /// The saved per-parameter state in its saved order, mapped to the optimizer's slots.
    pub state: Vec<(Slot, &'a Dict)>,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::OptimizerState {
        detail: detail.into(),
    }
}

/// Checks the top-level layout, the group count and the per-group parameter counts, and maps
/// the saved indices onto the optimizer's parameters (PyTorch's `id_map`: saved `params`
/// lists zipped with the current ones, group by group).
///
/// # Errors
/// `K0603` naming what does not fit.
pub(crate) fn unpack<'a>(v: &'a Value, groups: &[ParamGroup]) -> Result<Loaded<'a>> {
    let top = v.as_dict().ok_or_else(|| {
        bad(format!(
            "expected a dict with 'state' and 'param_groups', found a {}",
            v.type_name()
        ))
    })?;
    let state = top
        .get("state")
        .ok_or_else(|| bad("the state dict has no 'state' key"))?;
    let state = state.as_dict().ok_or_else(|| {
        bad(format!(
            "'state' is a {}, expected a dict",
            state.type_name()
        ))
    })?;
    let saved = top
        .get("param_groups")
        .ok_or_else(|| bad("the state dict has no 'param_groups' key"))?;
    let saved = saved.as_seq().ok_or_else(|| {
        bad(format!(
            "'param_groups' is a {}, expected a list",
            saved.type_name()
        ))
    })?;
    if saved.len() != groups.len() {
        return Err(bad(format!(
            "loaded state dict has {} parameter group(s) but the optimizer has {} (PyTorch: loaded state dict has a different number of parameter groups)",
            saved.len(),
            groups.len()
        )));
    }
    let mut saved_groups = Vec::with_capacity(saved.len());
    let mut id_map: Vec<(i64, Slot)> = Vec::new();
    for (gi, (s, g)) in saved.iter().zip(groups).enumerate() {
        let d = s.as_dict().ok_or_else(|| {
            bad(format!(
                "param_groups[{gi}] is a {}, expected a dict",
                s.type_name()
            ))
        })?;
        let params = d
            .get("params")
            .and_then(Value::as_seq)
            .ok_or_else(|| bad(format!("param_groups[{gi}] has no 'params' list")))?;
        if params.len() != g.params.len() {
            return Err(bad(format!(
                "param_groups[{gi}] has {} parameter(s) in the loaded state dict but {} in the optimizer (PyTorch: loaded state dict contains a parameter group that doesn't match the size of optimizer's group)",
                params.len(),
                g.params.len()
            )));
        }
        for (pos, id) in params.iter().enumerate() {
            let id = match id {
                Value::Int(i) => *i,
                other => {
                    return Err(bad(format!(
                        "param_groups[{gi}]['params'][{pos}] is a {}, expected an int",
                        other.type_name()
                    )));
                }
            };
            if id_map.iter().any(|(k, _)| *k == id) {
                return Err(bad(format!(
                    "parameter index {id} appears twice in the loaded param_groups"
                )));
            }
            id_map.push((id, Slot { group: gi, pos }));
        }
        saved_groups.push(d);
    }
    let mut out_state = Vec::with_capacity(state.entries.len());
    for (k, v) in &state.entries {
        let id = match k {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.parse::<i64>().ok(),
            _ => None,
        };
        let slot = id
            .and_then(|id| id_map.iter().find(|(k, _)| *k == id))
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                bad(format!(
                    "'state' has an entry for parameter {} but the loaded param_groups hold {} parameter(s) with other indices",
                    key_string(k),
                    id_map.len()
                ))
            })?;
        let d = v.as_dict().ok_or_else(|| {
            bad(format!(
                "state[{}] is a {}, expected a dict",
                key_string(k),
                v.type_name()
            ))
        })?;
        out_state.push((slot, d));
    }
    Ok(Loaded {
        groups: saved_groups,
        state: out_state,
    })
}

/// Fails with `K0603` when a saved group lacks `marker` but has `other_marker`: the state
/// was saved by another optimizer type (`betas` means Adam/AdamW, `momentum` means SGD).
pub(crate) fn check_kind(
    g: &Dict,
    gi: usize,
    optimizer: &str,
    marker: &str,
    other_marker: &str,
    other: &str,
) -> Result<()> {
    if g.get(marker).is_none() && g.get(other_marker).is_some() {
        return Err(bad(format!(
            "param_groups[{gi}] holds {other} settings ('{other_marker}'), not {optimizer}'s: build the optimizer type that saved this state"
        )));
    }
    Ok(())
}

/// Reads a required number of a saved group.
pub(crate) fn num(g: &Dict, gi: usize, key: &str) -> Result<PyNum> {
    let v = g
        .get(key)
        .ok_or_else(|| bad(format!("param_groups[{gi}] has no '{key}'")))?;
    PyNum::from_value(v).ok_or_else(|| {
        bad(format!(
            "param_groups[{gi}]['{key}'] is a {}, expected a number",
            v.type_name()
        ))
    })
}

/// Reads the `betas` pair of a saved group (Adam-like optimizers).
pub(crate) fn betas(g: &Dict, gi: usize) -> Result<(PyNum, PyNum)> {
    let betas = g
        .get("betas")
        .and_then(Value::as_seq)
        .filter(|b| b.len() == 2)
        .ok_or_else(|| bad(format!("param_groups[{gi}] has no 'betas' pair")))?;
    let beta = |i: usize| {
        PyNum::from_value(&betas[i]).ok_or_else(|| {
            bad(format!(
                "param_groups[{gi}]['betas'][{i}] is a {}, expected a number",
                betas[i].type_name()
            ))
        })
    };
    Ok((beta(0)?, beta(1)?))
}

/// Reads a bool of a saved group, `default` when absent (PyTorch's `__setstate__` defaults).
pub(crate) fn flag(g: &Dict, gi: usize, key: &str, default: bool) -> Result<bool> {
    match g.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(bad(format!(
            "param_groups[{gi}]['{key}'] is a {}, expected a bool",
            v.type_name()
        ))),
    }
}

/// Reads an optional bool (`None` allowed) of a saved group, `None` when absent.
pub(crate) fn opt_flag(g: &Dict, gi: usize, key: &str) -> Result<Option<bool>> {
    match g.get(key) {
        None | Some(Value::None) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(bad(format!(
            "param_groups[{gi}]['{key}'] is a {}, expected a bool or None",
            v.type_name()
        ))),
    }
}

/// Reads the bookkeeping of a saved group; `known` are the keys the optimizer reads itself
/// (anything else except `params` is kept as an extra key).
pub(crate) fn meta(g: &Dict, gi: usize, known: &[&str]) -> Result<GroupMeta> {
    let lr = num(g, gi, "lr")?;
    let initial_lr = match g.get("initial_lr") {
        None => None,
        Some(_) => Some(num(g, gi, "initial_lr")?),
    };
    let mut extra = Vec::new();
    for (k, v) in &g.entries {
        let key = match k {
            Value::Str(s) => s.as_str(),
            other => {
                return Err(bad(format!(
                    "param_groups[{gi}] has a key {} that is not a string",
                    key_string(other)
                )));
            }
        };
        let builtin = matches!(
            key,
            "params"
                | "lr"
                | "initial_lr"
                | "param_names"
                | "foreach"
                | "differentiable"
                | "fused"
                | "capturable"
        );
        if !builtin && !known.contains(&key) {
            extra.push((key.to_string(), v.clone()));
        }
    }
    Ok(GroupMeta {
        lr: Some(lr),
        initial_lr,
        foreach: opt_flag(g, gi, "foreach")?,
        differentiable: flag(g, gi, "differentiable", false)?,
        fused: opt_flag(g, gi, "fused")?,
        capturable: flag(g, gi, "capturable", false)?,
        param_names: g.get("param_names").cloned(),
        extra,
        order: g
            .entries
            .iter()
            .filter_map(|(k, _)| k.as_str())
            .filter(|k| *k != "params")
            .map(str::to_string)
            .collect(),
    })
}

/// Fails with `K0603` when a state entry has a key outside `allowed` (e.g. Adam state loaded
/// into SGD); PyTorch would keep the stray key and ignore it.
pub(crate) fn check_keys(e: &Dict, allowed: &[&str], optimizer: &str, where_: &str) -> Result<()> {
    for (k, _) in &e.entries {
        if !k.as_str().is_some_and(|k| allowed.contains(&k)) {
            let keys: Vec<String> = e.entries.iter().map(|(k, _)| key_string(k)).collect();
            return Err(bad(format!(
                "{where_}: state key '{}' is not {optimizer} state (keys: {}; {optimizer} keeps {})",
                key_string(k),
                keys.join(", "),
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// Describes a parameter for messages: `param_groups[0] parameter 1 ('fc.bias')`.
pub(crate) fn describe(groups: &[ParamGroup], slot: Slot) -> String {
    let name = groups
        .get(slot.group)
        .and_then(|g| g.names.get(slot.pos))
        .map(|n| format!(" ('{n}')"))
        .unwrap_or_default();
    format!("param_groups[{}] parameter {}{name}", slot.group, slot.pos)
}

/// Reads a state tensor for `param`: the shape must equal the parameter's; floating values
/// are cast to the parameter's dtype; the result lives on the parameter's device.
///
/// # Errors
/// `K0603` when it is missing, not a tensor or of another shape.
pub(crate) fn tensor(e: &Dict, key: &str, param: &Param, where_: &str) -> Result<Tensor> {
    let v = e
        .get(key)
        .ok_or_else(|| bad(format!("{where_}: state has no '{key}'")))?;
    let tv = v.as_tensor().ok_or_else(|| {
        bad(format!(
            "{where_}: state '{key}' is a {}, expected a tensor",
            v.type_name()
        ))
    })?;
    let dims = param.dims();
    if tv.shape != dims {
        return Err(bad(format!(
            "{where_}: state '{key}' has shape {} but the parameter has shape {}",
            shape_str(&tv.shape),
            shape_str(&dims)
        )));
    }
    let t = tv.to_tensor(&param.device())?;
    if t.dtype().is_float() && t.dtype() != param.dtype() {
        t.to_dtype(param.dtype()).ctx("casting optimizer state")
    } else {
        Ok(t)
    }
}

/// Reads `step` (a 0-dim tensor, or a Python number from old PyTorch versions) as `f32`.
pub(crate) fn step_value(e: &Dict, where_: &str) -> Result<f32> {
    scalar(e, "step", where_)
}

/// Reads a scalar state entry (`step`, NAdam's `mu_product`): a one-element tensor, or a
/// Python number from old PyTorch versions, as `f32` (PyTorch keeps them as `float32`).
pub(crate) fn scalar(e: &Dict, key: &str, where_: &str) -> Result<f32> {
    let v = e
        .get(key)
        .ok_or_else(|| bad(format!("{where_}: state has no '{key}'")))?;
    match v {
        Value::Int(i) => Ok(*i as f32),
        Value::Float(f) => Ok(*f as f32),
        Value::Tensor(tv) if tv.numel() == 1 => {
            let t = tv
                .to_tensor(&candle_core::Device::Cpu)?
                .flatten_all()
                .and_then(|t| t.to_dtype(candle_core::DType::F64))
                .and_then(|t| t.to_vec1::<f64>())
                .ctx("reading optimizer state")?;
            Ok(t.first().copied().unwrap_or(0.0) as f32)
        }
        other => Err(bad(format!(
            "{where_}: '{key}' is a {}, expected a 0-dim tensor",
            other.type_name()
        ))),
    }
}

/// A scalar state entry as PyTorch writes it: a 0-dim `float32` CPU tensor.
pub(crate) fn scalar_value(x: f32) -> Result<Value> {
    let t = Tensor::new(x, &candle_core::Device::Cpu).ctx("optimizer state scalar")?;
    Value::from_tensor(&t)
}

/// The flat state-dict index of every parameter (PyTorch numbers parameters across groups
/// in order) and the first index of each group.
pub(crate) fn indices(
    groups: &[ParamGroup],
) -> (std::collections::HashMap<crate::nn::ParamId, i64>, Vec<i64>) {
    let mut index_of = std::collections::HashMap::new();
    let mut firsts = Vec::with_capacity(groups.len());
    let mut next = 0i64;
    for g in groups {
        firsts.push(next);
        for (pi, p) in g.params.iter().enumerate() {
            index_of.insert(p.id(), next + pi as i64);
        }
        next += g.params.len() as i64;
    }
    (index_of, firsts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pynum_types() {
        assert_eq!(PyNum::int_if(0.0, 0.0).to_value(), Value::Int(0));
        assert_eq!(PyNum::int_if(0.9, 0.0).to_value(), Value::Float(0.9));
        assert_eq!(PyNum::float(0.0).to_value(), Value::Float(0.0));
        let lr = PyNum::from_value(&Value::Int(1)).unwrap();
        assert!(lr.set(1.0).int && !lr.set(0.1).int);
        assert!(PyNum::from_value(&Value::Bool(true)).is_none());
    }

    #[test]
    fn unpack_rejects_wrong_counts() {
        let p = Param::new(
            &Tensor::zeros(2, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
            true,
        )
        .unwrap();
        let groups = [super::super::group::make_group(vec![("w".into(), p)], 0.1)];
        let group =
            |n: i64| Value::dict([("params", Value::List((0..n).map(Value::Int).collect()))]);
        let sd = pack(vec![], vec![group(1), group(1)]);
        let e = unpack(&sd, &groups).err().unwrap();
        assert_eq!(e.code(), "K0603");
        assert!(e.to_string().contains("2 parameter group(s)"));
        let sd = pack(vec![], vec![group(2)]);
        let e = unpack(&sd, &groups).err().unwrap();
        assert!(e.to_string().contains("param_groups[0] has 2 parameter(s)"));
        let sd = pack(vec![(5, entry(vec![]))], vec![group(1)]);
        let e = unpack(&sd, &groups).err().unwrap();
        assert!(e.to_string().contains("parameter 5"));
        let e = unpack(&Value::List(vec![]), &groups).err().unwrap();
        assert_eq!(e.code(), "K0603");
    }
}
