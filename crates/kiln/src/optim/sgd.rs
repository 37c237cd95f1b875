//! Stochastic gradient descent with PyTorch's `torch.optim.SGD` update rule (single-tensor
//! path) and `state_dict` layout.

use super::fused_sgd::{SgdStep, sgd_step};
use super::group::{self, GroupSpec, check_at_least, make_group};
use super::ops::{add_scaled, scale};
use super::state::{self, GroupMeta, PyNum, Slot};
use super::{Grads, Optimizer, ParamGroup};
use crate::error::{Context, Error, Result, shape_str};
use crate::io::Value;
use crate::nn::{Param, ParamId};
use candle_core::{Device, Tensor};
use indexmap::IndexMap;

/// SGD's hyper-parameters (PyTorch's defaults: `lr=1e-3`, everything else off).
#[derive(Clone, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate (`>= 0`).
    pub lr: f64,
    /// Momentum factor (`>= 0`).
    pub momentum: f64,
    /// Dampening for momentum.
    pub dampening: f64,
    /// L2 penalty added to the gradient (`>= 0`).
    pub weight_decay: f64,
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
    pub nesterov: bool,
    /// Maximize the objective.
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

impl SgdConfig {
    /// A configuration with this learning rate and PyTorch's other defaults.
    pub fn lr(lr: f64) -> Self {
        SgdConfig {
            lr,
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<()> {
        check_at_least("learning rate", self.lr, 0.0)?;
        check_at_least("momentum", self.momentum, 0.0)?;
        check_at_least("weight_decay", self.weight_decay, 0.0)?;
        if self.dampening.is_nan() {
            return Err(Error::invalid("dampening", self.dampening, "a number"));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::invalid(
                "nesterov",
                format!(
                    "true with momentum={} and dampening={}",
                    self.momentum, self.dampening
                ),
                "Nesterov momentum requires a momentum and zero dampening",
            ));
        }
        Ok(())
    }
}

/// One group's SGD settings with their Python types.
#[derive(Clone, Debug, PartialEq)]
struct Hyper {
    momentum: PyNum,
    dampening: PyNum,
    weight_decay: PyNum,
    nesterov: bool,
    maximize: bool,
    meta: GroupMeta,
}

impl Hyper {
    fn config(&self, lr: f64) -> SgdConfig {
        SgdConfig {
            lr,
            momentum: self.momentum.value,
            dampening: self.dampening.value,
            weight_decay: self.weight_decay.value,
            nesterov: self.nesterov,
            maximize: self.maximize,
        }
    }
}

const OPTIONS: &[&str] = &[
    "lr",
    "momentum",
    "dampening",
    "weight_decay",
    "nesterov",
    "maximize",
];

/// `torch.optim.SGD`: for each parameter with a gradient `g` (negated when `maximize`):
/// `g += weight_decay * p`; with momentum, `buf = g` on the first step, then
/// `buf = momentum * buf + (1 - dampening) * g`, and `g = g + momentum * buf` (Nesterov) or
/// `g = buf`; finally `p -= lr * g`.
///
/// State: `momentum_buffer` per stepped parameter, only when the group's momentum is not 0.
///
/// ```
/// # use kiln::optim::{Sgd, SgdConfig, Optimizer};
/// # use kiln::Param;
/// # use candle_core::{Tensor, Device};
/// let w = Param::new(&Tensor::new(&[1f32, 2.], &Device::Cpu)?, true)?;
/// let opt = Sgd::new(vec![("w".into(), w)], SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() })?;
/// assert_eq!(opt.param_groups()[0].lr, 0.1);
/// # Ok::<(), kiln::Error>(())
/// ```
#[derive(Debug)]
pub struct Sgd {
    defaults: SgdConfig,
    groups: Vec<ParamGroup>,
    hyper: Vec<Hyper>,
    state: IndexMap<ParamId, Tensor>,
}

impl Sgd {
    /// SGD over one group of named parameters.
    ///
    /// # Errors
    /// `K0601` when `params` is empty or every parameter is frozen; `K0602` when a parameter
    /// appears twice; `K0003` for an out-of-range hyper-parameter (naming the value).
    pub fn new(params: Vec<(String, Param)>, config: SgdConfig) -> Result<Self> {
        Self::with_groups(vec![GroupSpec::new(params)], config)
    }

    /// SGD over several groups, each overriding any of `config`'s hyper-parameters.
    ///
    /// # Errors
    /// As [`Sgd::new`]; a group option SGD does not have (`betas`) is `K0003`. Unlike
    /// PyTorch, every group's settings are validated, not only the defaults.
    pub fn with_groups(groups: Vec<GroupSpec>, config: SgdConfig) -> Result<Self> {
        config.validate()?;
        group::check_construction(&groups)?;
        let mut opt = Sgd {
            defaults: config,
            groups: Vec::with_capacity(groups.len()),
            hyper: Vec::with_capacity(groups.len()),
            state: IndexMap::new(),
        };
        for g in groups {
            opt.push_group(g)?;
        }
        Ok(opt)
    }

    /// Appends a group with overrides (PyTorch's `add_param_group({"params": ..., ...})`).
    ///
    /// # Errors
    /// `K0602` when a parameter is already in a group; `K0003` for a bad option.
    pub fn add_group(&mut self, spec: GroupSpec) -> Result<()> {
        group::check_added(&self.groups, &spec.params)?;
        self.push_group(spec)
    }

    fn push_group(&mut self, spec: GroupSpec) -> Result<()> {
        let o = &spec.options;
        o.check_allowed("SGD", OPTIONS)?;
        let d = &self.defaults;
        let c = SgdConfig {
            lr: o.lr.unwrap_or(d.lr),
            momentum: o.momentum.unwrap_or(d.momentum),
            dampening: o.dampening.unwrap_or(d.dampening),
            weight_decay: o.weight_decay.unwrap_or(d.weight_decay),
            nesterov: o.nesterov.unwrap_or(d.nesterov),
            maximize: o.maximize.unwrap_or(d.maximize),
        };
        c.validate()?;
        self.hyper.push(Hyper {
            momentum: PyNum::int_if(c.momentum, 0.0),
            dampening: PyNum::int_if(c.dampening, 0.0),
            weight_decay: PyNum::int_if(c.weight_decay, 0.0),
            nesterov: c.nesterov,
            maximize: c.maximize,
            meta: GroupMeta {
                lr: Some(PyNum::float(c.lr)),
                // overridden keys first, in the optimizer's own key order
                order: OPTIONS
                    .iter()
                    .filter(|k| o.set_keys().contains(k))
                    .map(|k| k.to_string())
                    .collect(),
                ..Default::default()
            },
        });
        self.groups.push(make_group(spec.params, c.lr));
        Ok(())
    }

    /// The settings of group `i` (None when out of range).
    pub fn group_config(&self, i: usize) -> Option<SgdConfig> {
        let g = self.groups.get(i)?;
        Some(self.hyper.get(i)?.config(g.lr))
    }

    /// The momentum buffer of a parameter, once it has been stepped with momentum.
    pub fn momentum_buffer(&self, p: &Param) -> Option<&Tensor> {
        self.state.get(&p.id())
    }

    fn step_param(&mut self, gi: usize, pi: usize, grad: &Tensor) -> Result<()> {
        let g = &self.groups[gi];
        let h = &self.hyper[gi];
        let p = &g.params[pi];
        let value = p.detached();
        if grad.dims() != value.dims() {
            return Err(Error::invalid(
                format!("gradient of '{}'", g.names[pi]),
                shape_str(grad.dims()),
                format!("the parameter's shape {}", shape_str(value.dims())),
            ));
        }
        let step = SgdStep {
            lr: g.lr,
            momentum: h.momentum.value,
            dampening: h.dampening.value,
            weight_decay: h.weight_decay.value,
            nesterov: h.nesterov,
            maximize: h.maximize,
        };
        let old = self.state.get(&p.id());
        if let Some(buf) = p.update_in_place(|var| sgd_step(var, grad, old, &step))? {
            if let Some(buf) = buf {
                self.state.insert(p.id(), buf);
            }
            return Ok(());
        }
        let mut d_p = if h.maximize {
            grad.neg().ctx("SGD maximize")?
        } else {
            grad.clone()
        };
        if h.weight_decay.value != 0.0 {
            d_p = add_scaled(&d_p, &value, h.weight_decay.value)?;
        }
        let momentum = h.momentum.value;
        if momentum != 0.0 {
            let buf = match self.state.get(&p.id()) {
                None => d_p.copy().ctx("SGD momentum buffer")?,
                Some(buf) => add_scaled(&scale(buf, momentum)?, &d_p, 1.0 - h.dampening.value)?,
            };
            d_p = if h.nesterov {
                add_scaled(&d_p, &buf, momentum)?
            } else {
                buf.clone()
            };
            self.state.insert(p.id(), buf);
        }
        let new = add_scaled(&value, &d_p, -g.lr)?;
        p.set(&new)
    }

    fn group_value(&self, gi: usize, first: i64) -> Value {
        let g = &self.groups[gi];
        let h = &self.hyper[gi];
        let m = &h.meta;
        state::pack_group(
            g,
            m,
            vec![
                ("lr", m.lr_value(g.lr)),
                ("momentum", h.momentum.to_value()),
                ("dampening", h.dampening.to_value()),
                ("weight_decay", h.weight_decay.to_value()),
                ("nesterov", Value::Bool(h.nesterov)),
                ("maximize", Value::Bool(h.maximize)),
                ("foreach", state::opt_bool_value(m.foreach)),
                ("differentiable", Value::Bool(m.differentiable)),
                ("fused", state::opt_bool_value(m.fused)),
            ],
            first,
        )
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        "SGD"
    }

    fn step(&mut self, grads: &Grads) -> Result<()> {
        for gi in 0..self.groups.len() {
            for pi in 0..self.groups[gi].params.len() {
                let Some(grad) = grads.get(&self.groups[gi].params[pi]) else {
                    continue;
                };
                let grad = grad.clone();
                self.step_param(gi, pi, &grad)?;
            }
        }
        Ok(())
    }

    fn param_groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    fn set_lr(&mut self, group: usize, lr: f64) {
        if let (Some(g), Some(h)) = (self.groups.get_mut(group), self.hyper.get_mut(group)) {
            h.meta.set_lr(g.lr, lr);
            g.lr = lr;
        }
    }

    fn cycled_momentum_key(&self) -> Option<&'static str> {
        Some("momentum")
    }

    fn set_cycled_momentum(&mut self, group: usize, value: f64) -> Result<()> {
        if let Some(h) = self.hyper.get_mut(group) {
            h.momentum = PyNum::float(value);
        }
        Ok(())
    }

    fn set_initial_lr(&mut self, group: usize, lr: f64) {
        if let (Some(g), Some(h)) = (self.groups.get_mut(group), self.hyper.get_mut(group)) {
            h.meta.set_initial_lr(lr);
            g.initial_lr = Some(lr);
        }
    }

    fn add_param_group(&mut self, params: Vec<(String, Param)>, lr: Option<f64>) -> Result<()> {
        let mut spec = GroupSpec::new(params);
        spec.options.lr = lr;
        self.add_group(spec)
    }

    fn add_param_group_spec(&mut self, spec: GroupSpec) -> Result<()> {
        self.add_group(spec)
    }

    fn state_dict(&self) -> Result<Value> {
        let mut index_of = std::collections::HashMap::new();
        let mut groups = Vec::with_capacity(self.groups.len());
        let mut next = 0i64;
        for (gi, g) in self.groups.iter().enumerate() {
            for (pi, p) in g.params.iter().enumerate() {
                index_of.insert(p.id(), next + pi as i64);
            }
            groups.push(self.group_value(gi, next));
            next += g.params.len() as i64;
        }
        let mut st = Vec::with_capacity(self.state.len());
        for (id, buf) in &self.state {
            if let Some(i) = index_of.get(id) {
                st.push((
                    *i,
                    state::entry(vec![("momentum_buffer", Value::from_tensor(buf)?)]),
                ));
            }
        }
        Ok(state::pack(st, groups))
    }

    fn load_state_dict(&mut self, sd: &Value) -> Result<()> {
        let loaded = state::unpack(sd, &self.groups)?;
        let mut hyper = Vec::with_capacity(self.groups.len());
        let mut lrs = Vec::with_capacity(self.groups.len());
        for (gi, g) in loaded.groups.iter().enumerate() {
            state::check_kind(g, gi, "SGD", "momentum", "betas", "Adam/AdamW")?;
            let meta = state::meta(g, gi, OPTIONS)?;
            let h = Hyper {
                momentum: state::num(g, gi, "momentum")?,
                dampening: state::num(g, gi, "dampening")?,
                weight_decay: state::num(g, gi, "weight_decay")?,
                nesterov: state::flag(g, gi, "nesterov", false)?,
                maximize: state::flag(g, gi, "maximize", false)?,
                meta,
            };
            let lr = h.meta.lr.map_or(0.0, |n| n.value);
            h.config(lr).validate().map_err(|e| Error::OptimizerState {
                detail: format!("param_groups[{gi}]: {e}"),
            })?;
            lrs.push((lr, h.meta.initial_lr.map(|n| n.value)));
            hyper.push(h);
        }
        let mut new_state = IndexMap::new();
        for (slot, e) in &loaded.state {
            let Slot { group, pos } = *slot;
            let where_ = state::describe(&self.groups, *slot);
            state::check_keys(e, &["momentum_buffer"], "SGD", &where_)?;
            let p = &self.groups[group].params[pos];
            if e.get("momentum_buffer")
                .is_some_and(|v| !matches!(v, Value::None))
            {
                let buf = state::tensor(e, "momentum_buffer", p, &where_)?;
                new_state.insert(p.id(), buf);
            }
        }
        for (g, (lr, initial)) in self.groups.iter_mut().zip(lrs) {
            g.lr = lr;
            g.initial_lr = initial;
        }
        self.hyper = hyper;
        self.state = new_state;
        Ok(())
    }

    fn to_device(&mut self, device: &Device) -> Result<()> {
        for buf in self.state.values_mut() {
            *buf = buf.to_device(device).ctx("moving SGD state")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn param(v: &[f32], trainable: bool) -> Param {
        Param::new(&Tensor::new(v, &Device::Cpu).unwrap(), trainable).unwrap()
    }

    fn grads(items: &[(&Param, &[f32])]) -> Grads {
        let mut g = Grads::new();
        for (p, v) in items {
            g.insert(p.id(), Tensor::new(*v, &Device::Cpu).unwrap());
        }
        g
    }

    fn vals(p: &Param) -> Vec<f32> {
        p.tensor().to_vec1::<f32>().unwrap()
    }

    fn keys(v: &Value) -> Vec<String> {
        v.as_dict()
            .unwrap()
            .entries
            .iter()
            .map(|(k, _)| crate::io::value::key_string(k))
            .collect()
    }

    #[test]
    fn invalid_hyper_parameters_are_k0003_naming_the_value() {
        let w = param(&[1.0], true);
        let cases = [
            (SgdConfig::lr(-0.1), "-0.1"),
            (
                SgdConfig {
                    momentum: -0.5,
                    ..Default::default()
                },
                "-0.5",
            ),
            (
                SgdConfig {
                    weight_decay: -2.0,
                    ..Default::default()
                },
                "-2",
            ),
        ];
        for (c, value) in cases {
            let e = Sgd::new(vec![("w".into(), w.clone())], c).unwrap_err();
            assert_eq!(e.code(), "K0003");
            assert!(e.to_string().contains(value), "{e}");
        }
        let c = SgdConfig {
            nesterov: true,
            momentum: 0.9,
            dampening: 0.1,
            ..Default::default()
        };
        let e = Sgd::new(vec![("w".into(), w.clone())], c).unwrap_err();
        assert_eq!(e.code(), "K0003");
        assert!(
            e.to_string()
                .contains("Nesterov momentum requires a momentum and zero dampening")
        );
        let e = Sgd::with_groups(
            vec![GroupSpec::new(vec![("w".into(), w)]).betas(0.9, 0.99)],
            SgdConfig::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("betas"), "{e}");
    }

    #[test]
    fn empty_frozen_and_duplicate_groups() {
        let e = Sgd::new(vec![], SgdConfig::default()).unwrap_err();
        assert_eq!(e.code(), "K0601");
        let frozen = param(&[1.0], false);
        let e = Sgd::new(vec![("f".into(), frozen.clone())], SgdConfig::default()).unwrap_err();
        assert_eq!(e.code(), "K0601");
        let w = param(&[1.0], true);
        let e = Sgd::with_groups(
            vec![
                GroupSpec::new(vec![("w".into(), w.clone())]),
                GroupSpec::new(vec![("w".into(), w.clone())]).lr(0.5),
            ],
            SgdConfig::default(),
        )
        .unwrap_err();
        assert_eq!(e.code(), "K0602");
        assert!(e.to_string().contains("'w' is in groups 0 and 1"));
        let mut opt = Sgd::new(vec![("w".into(), w.clone())], SgdConfig::default()).unwrap();
        let e = opt
            .add_param_group(vec![("again".into(), w)], Some(0.1))
            .unwrap_err();
        assert_eq!(e.code(), "K0602");
        opt.add_param_group(vec![("f".into(), frozen)], Some(0.1))
            .unwrap();
        assert_eq!(opt.param_groups()[1].lr, 0.1);
    }

    #[test]
    fn momentum_first_step_copies_the_gradient_without_dampening() {
        let w = param(&[1.0, 2.0], true);
        let c = SgdConfig {
            lr: 0.5,
            momentum: 0.5,
            dampening: 0.5,
            ..Default::default()
        };
        let mut opt = Sgd::new(vec![("w".into(), w.clone())], c).unwrap();
        opt.step(&grads(&[(&w, &[1.0, -2.0])])).unwrap();
        assert_eq!(vals(&w), vec![0.5, 3.0]);
        assert_eq!(
            opt.momentum_buffer(&w).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0, -2.0]
        );
        // buf = 0.5 * buf + 0.5 * g
        opt.step(&grads(&[(&w, &[1.0, 2.0])])).unwrap();
        assert_eq!(
            opt.momentum_buffer(&w).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0, 0.0]
        );
        assert_eq!(vals(&w), vec![0.0, 3.0]);
    }

    #[test]
    fn nesterov_weight_decay_and_maximize() {
        let w = param(&[1.0], true);
        let c = SgdConfig {
            lr: 0.1,
            momentum: 0.5,
            weight_decay: 1.0,
            nesterov: true,
            maximize: true,
            ..Default::default()
        };
        let mut opt = Sgd::new(vec![("w".into(), w.clone())], c).unwrap();
        // g = -2 + 1*1 = -1; buf = -1; g = -1 + 0.5*-1 = -1.5; w = 1 - 0.1*-1.5 = 1.15
        opt.step(&grads(&[(&w, &[2.0])])).unwrap();
        assert!((vals(&w)[0] - 1.15).abs() < 1e-6);
    }

    #[test]
    fn parameters_without_gradient_get_no_state() {
        let w = param(&[1.0], true);
        let f = param(&[3.0], false);
        let c = SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            ..Default::default()
        };
        let mut opt = Sgd::new(vec![("f".into(), f.clone()), ("w".into(), w.clone())], c).unwrap();
        opt.step(&grads(&[(&w, &[1.0])])).unwrap();
        assert!(opt.momentum_buffer(&f).is_none());
        assert_eq!(vals(&f), vec![3.0]);
        let sd = opt.state_dict().unwrap();
        assert_eq!(keys(sd.get("state").unwrap()), vec!["1"]);
    }

    #[test]
    fn zero_lr_group_is_bit_identical() {
        let a = param(&[0.3, -1.7e-3, 12.5], true);
        let b = param(&[0.1, 7.0, -3.3], true);
        let before = vals(&b);
        let c = SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.1,
            nesterov: true,
            ..Default::default()
        };
        let mut opt = Sgd::with_groups(
            vec![
                GroupSpec::new(vec![("a".into(), a.clone())]),
                GroupSpec::new(vec![("b".into(), b.clone())]).lr(0.0),
            ],
            c,
        )
        .unwrap();
        for _ in 0..5 {
            opt.step(&grads(&[(&a, &[1.0, 2.0, 3.0]), (&b, &[0.7, -1e-3, 9.0])]))
                .unwrap();
        }
        let after = vals(&b);
        assert!(
            before
                .iter()
                .zip(&after)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
        assert_ne!(vals(&a), vec![0.3, -1.7e-3, 12.5]);
    }

    #[test]
    fn state_dict_layout_matches_pytorch() {
        let w = param(&[1.0, 2.0], true);
        let b = param(&[0.5], true);
        let mut opt = Sgd::with_groups(
            vec![
                GroupSpec::new(vec![("w".into(), w.clone())]),
                GroupSpec::new(vec![("b".into(), b.clone())]).momentum(0.9),
            ],
            SgdConfig::lr(0.1),
        )
        .unwrap();
        opt.step(&grads(&[(&w, &[1.0, 1.0]), (&b, &[1.0])]))
            .unwrap();
        let sd = opt.state_dict().unwrap();
        assert_eq!(keys(&sd), vec!["state", "param_groups"]);
        let st = sd.get("state").unwrap();
        assert_eq!(keys(st), vec!["1"]);
        let entry = st.as_dict().unwrap().get_int(1).unwrap();
        assert_eq!(keys(entry), vec!["momentum_buffer"]);
        let groups = sd.get("param_groups").unwrap().as_seq().unwrap();
        assert_eq!(
            keys(&groups[0]),
            vec![
                "lr",
                "momentum",
                "dampening",
                "weight_decay",
                "nesterov",
                "maximize",
                "foreach",
                "differentiable",
                "fused",
                "params"
            ]
        );
        let g0 = &groups[0];
        assert_eq!(g0.get("lr"), Some(&Value::Float(0.1)));
        assert_eq!(g0.get("momentum"), Some(&Value::Int(0)));
        assert_eq!(g0.get("dampening"), Some(&Value::Int(0)));
        assert_eq!(g0.get("foreach"), Some(&Value::None));
        assert_eq!(g0.get("params"), Some(&Value::List(vec![Value::Int(0)])));
        assert_eq!(groups[1].get("momentum"), Some(&Value::Float(0.9)));
        assert_eq!(
            groups[1].get("params"),
            Some(&Value::List(vec![Value::Int(1)]))
        );
    }

    #[test]
    fn load_state_dict_round_trip_and_errors() {
        let mk = || {
            let w = param(&[1.0, 2.0], true);
            let c = SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                ..Default::default()
            };
            let opt = Sgd::new(vec![("w".into(), w.clone())], c).unwrap();
            (w, opt)
        };
        let (w, mut opt) = mk();
        opt.step(&grads(&[(&w, &[1.0, -1.0])])).unwrap();
        opt.set_lr(0, 0.05);
        let sd = opt.state_dict().unwrap();
        let (w2, mut opt2) = mk();
        w2.set(&w.tensor()).unwrap();
        opt2.load_state_dict(&sd).unwrap();
        assert_eq!(opt2.param_groups()[0].lr, 0.05);
        assert_eq!(opt2.state_dict().unwrap(), sd);
        opt.step(&grads(&[(&w, &[0.5, 0.5])])).unwrap();
        opt2.step(&grads(&[(&w2, &[0.5, 0.5])])).unwrap();
        assert_eq!(vals(&w), vals(&w2));

        // a state tensor of another shape names group, index and shapes
        let other = param(&[1.0, 2.0, 3.0], true);
        let mut opt3 = Sgd::new(vec![("fc.weight".into(), other)], SgdConfig::lr(0.1)).unwrap();
        let e = opt3.load_state_dict(&sd).unwrap_err();
        assert_eq!(e.code(), "K0603");
        let text = e.to_string();
        assert!(
            text.contains("param_groups[0] parameter 0 ('fc.weight')"),
            "{text}"
        );
        assert!(text.contains("[2]") && text.contains("[3]"), "{text}");
        // a failed load leaves the optimizer unchanged
        assert!(
            opt3.state_dict()
                .unwrap()
                .get("state")
                .unwrap()
                .as_dict()
                .unwrap()
                .entries
                .is_empty()
        );
    }

    #[test]
    fn load_casts_floating_state_to_the_parameter_dtype() {
        let w = Param::new(&Tensor::new(&[1f64, 2.], &Device::Cpu).unwrap(), true).unwrap();
        let c = SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            ..Default::default()
        };
        let mut opt = Sgd::new(vec![("w".into(), w.clone())], c.clone()).unwrap();
        let sd = crate::optim::state::pack(
            vec![(
                0,
                crate::optim::state::entry(vec![(
                    "momentum_buffer",
                    Value::from_tensor(&Tensor::new(&[1f32, 2.], &Device::Cpu).unwrap()).unwrap(),
                )]),
            )],
            vec![opt.group_value(0, 0)],
        );
        opt.load_state_dict(&sd).unwrap();
        assert_eq!(opt.momentum_buffer(&w).unwrap().dtype(), DType::F64);
    }
}
