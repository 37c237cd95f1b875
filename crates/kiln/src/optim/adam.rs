//! Adam and AdamW with PyTorch's single-tensor (`foreach=False`) update rule and `state_dict`
//! layout. Both share one implementation; AdamW is Adam with decoupled weight decay
//! (`decoupled_weight_decay=True`), exactly as `torch.optim.AdamW` subclasses `Adam`.

use super::group::{self, GroupSpec, check_at_least, check_beta, make_group};
use super::ops::{addcdiv, addcmul, div_scalar, lerp, scale, weight_decay};
use super::state::{self, GroupMeta, PyNum, Slot};
use super::{Grads, Optimizer, ParamGroup};
use crate::error::{Context, Error, Result, shape_str};
use crate::io::Value;
use crate::nn::{Param, ParamId};
use candle_core::{Device, Tensor};
use indexmap::IndexMap;

/// Adam's and AdamW's hyper-parameters. [`AdamConfig::default`] is `torch.optim.Adam`'s
/// defaults (`weight_decay=0`); [`AdamConfig::adamw`] is `torch.optim.AdamW`'s
/// (`weight_decay=1e-2`).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (`>= 0`).
    pub lr: f64,
    /// Coefficients of the running averages of the gradient and its square (`[0, 1)` each).
    pub betas: (f64, f64),
    /// Term added to the denominator (`>= 0`).
    pub eps: f64,
    /// Weight decay (`>= 0`): an L2 term added to the gradient for Adam, a decoupled
    /// `p *= 1 - lr * weight_decay` for AdamW.
    pub weight_decay: f64,
    /// The AMSGrad variant (keeps `max_exp_avg_sq`).
    pub amsgrad: bool,
    /// Maximize the objective.
    pub maximize: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
        }
    }
}

impl AdamConfig {
    /// `torch.optim.AdamW`'s defaults (`weight_decay=1e-2`).
    pub fn adamw() -> Self {
        AdamConfig {
            weight_decay: 1e-2,
            ..Default::default()
        }
    }

    /// Adam's defaults with this learning rate.
    pub fn lr(lr: f64) -> Self {
        AdamConfig {
            lr,
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<()> {
        check_at_least("learning rate", self.lr, 0.0)?;
        check_at_least("epsilon", self.eps, 0.0)?;
        check_beta(0, self.betas.0)?;
        check_beta(1, self.betas.1)?;
        check_at_least("weight_decay", self.weight_decay, 0.0)
    }
}

/// One group's settings with their Python types.
#[derive(Clone, Debug, PartialEq)]
struct Hyper {
    beta1: PyNum,
    beta2: PyNum,
    eps: PyNum,
    weight_decay: PyNum,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
    meta: GroupMeta,
}

impl Hyper {
    fn config(&self, lr: f64) -> AdamConfig {
        AdamConfig {
            lr,
            betas: (self.beta1.value, self.beta2.value),
            eps: self.eps.value,
            weight_decay: self.weight_decay.value,
            amsgrad: self.amsgrad,
            maximize: self.maximize,
        }
    }
}

/// Per-parameter state.
#[derive(Clone, Debug)]
struct PState {
    /// PyTorch keeps `step` as a 0-dim `float32` CPU tensor; kiln keeps the same `f32`.
    step: f32,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Option<Tensor>,
}

const OPTIONS: &[&str] = &[
    "lr",
    "betas",
    "eps",
    "weight_decay",
    "amsgrad",
    "maximize",
    "decoupled_weight_decay",
];

const GROUP_OPTIONS: &[&str] = &["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"];

const STATE_KEYS: &[&str] = &["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

/// The shared implementation.
#[derive(Debug)]
struct Core {
    name: &'static str,
    decoupled: bool,
    defaults: AdamConfig,
    groups: Vec<ParamGroup>,
    hyper: Vec<Hyper>,
    state: IndexMap<ParamId, PState>,
}

impl Core {
    fn new(
        name: &'static str,
        decoupled: bool,
        groups: Vec<GroupSpec>,
        config: AdamConfig,
    ) -> Result<Self> {
        config.validate()?;
        group::check_construction(&groups)?;
        let mut core = Core {
            name,
            decoupled,
            defaults: config,
            groups: Vec::with_capacity(groups.len()),
            hyper: Vec::with_capacity(groups.len()),
            state: IndexMap::new(),
        };
        for g in groups {
            core.push_group(g)?;
        }
        Ok(core)
    }

    fn add_group(&mut self, spec: GroupSpec) -> Result<()> {
        group::check_added(&self.groups, &spec.params)?;
        self.push_group(spec)
    }

    fn push_group(&mut self, spec: GroupSpec) -> Result<()> {
        let o = &spec.options;
        o.check_allowed(self.name, GROUP_OPTIONS)?;
        let d = &self.defaults;
        let c = AdamConfig {
            lr: o.lr.unwrap_or(d.lr),
            betas: o.betas.unwrap_or(d.betas),
            eps: o.eps.unwrap_or(d.eps),
            weight_decay: o.weight_decay.unwrap_or(d.weight_decay),
            amsgrad: o.amsgrad.unwrap_or(d.amsgrad),
            maximize: o.maximize.unwrap_or(d.maximize),
        };
        c.validate()?;
        // Adam's default weight_decay is the int 0; AdamW's is the float 1e-2.
        let weight_decay = if self.decoupled {
            PyNum::float(c.weight_decay)
        } else {
            PyNum::int_if(c.weight_decay, 0.0)
        };
        self.hyper.push(Hyper {
            beta1: PyNum::float(c.betas.0),
            beta2: PyNum::float(c.betas.1),
            eps: PyNum::float(c.eps),
            weight_decay,
            amsgrad: c.amsgrad,
            maximize: c.maximize,
            decoupled: self.decoupled,
            meta: GroupMeta {
                lr: Some(PyNum::float(c.lr)),
                // overridden keys first, in the optimizer's own key order
                order: GROUP_OPTIONS
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

    fn group_config(&self, i: usize) -> Option<AdamConfig> {
        let g = self.groups.get(i)?;
        Some(self.hyper.get(i)?.config(g.lr))
    }

    fn step_param(&mut self, gi: usize, pi: usize, grad: &Tensor) -> Result<()> {
        let g = &self.groups[gi];
        let h = &self.hyper[gi];
        let p = &g.params[pi];
        let param = p.detached();
        if grad.dims() != param.dims() {
            return Err(Error::invalid(
                format!("gradient of '{}'", g.names[pi]),
                shape_str(grad.dims()),
                format!("the parameter's shape {}", shape_str(param.dims())),
            ));
        }
        let lr = g.lr;
        let (beta1, beta2) = (h.beta1.value, h.beta2.value);
        let st = match self.state.get_mut(&p.id()) {
            Some(st) => st,
            None => {
                let zeros = param.zeros_like().ctx("Adam state")?;
                let st = PState {
                    step: 0.0,
                    exp_avg: zeros.clone(),
                    exp_avg_sq: zeros.clone(),
                    max_exp_avg_sq: h.amsgrad.then_some(zeros),
                };
                self.state.entry(p.id()).or_insert(st)
            }
        };
        st.step += 1.0;
        let grad = if h.maximize {
            grad.neg().ctx("Adam maximize")?
        } else {
            grad.clone()
        };
        let (param, grad) = weight_decay(param, grad, lr, h.weight_decay.value, h.decoupled)?;
        st.exp_avg = lerp(&st.exp_avg, &grad, 1.0 - beta1)?;
        // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        st.exp_avg_sq = addcmul(&scale(&st.exp_avg_sq, beta2)?, &grad, &grad, 1.0 - beta2)?;
        let step = st.step as f64;
        let bias_correction1 = 1.0 - beta1.powf(step);
        let bias_correction2 = 1.0 - beta2.powf(step);
        let step_size = lr / bias_correction1;
        let bias_correction2_sqrt = bias_correction2.powf(0.5);
        let second = if h.amsgrad {
            let max = match &st.max_exp_avg_sq {
                Some(m) => m.maximum(&st.exp_avg_sq).ctx("AMSGrad max")?,
                None => st.exp_avg_sq.clone(),
            };
            st.max_exp_avg_sq = Some(max.clone());
            max
        } else {
            st.exp_avg_sq.clone()
        };
        let denom = div_scalar(&second.sqrt().ctx("Adam denom")?, bias_correction2_sqrt)?
            .affine(1.0, h.eps.value)
            .ctx("Adam denom")?;
        // param.addcdiv_(exp_avg, denom, value=-step_size)
        p.set(&addcdiv(&param, &st.exp_avg, &denom, -step_size)?)
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
                (
                    "betas",
                    Value::Tuple(vec![h.beta1.to_value(), h.beta2.to_value()]),
                ),
                ("eps", h.eps.to_value()),
                ("weight_decay", h.weight_decay.to_value()),
                ("amsgrad", Value::Bool(h.amsgrad)),
                ("maximize", Value::Bool(h.maximize)),
                ("foreach", state::opt_bool_value(m.foreach)),
                ("capturable", Value::Bool(m.capturable)),
                ("differentiable", Value::Bool(m.differentiable)),
                ("fused", state::opt_bool_value(m.fused)),
                ("decoupled_weight_decay", Value::Bool(h.decoupled)),
            ],
            first,
        )
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

    fn set_lr(&mut self, group: usize, lr: f64) {
        if let (Some(g), Some(h)) = (self.groups.get_mut(group), self.hyper.get_mut(group)) {
            h.meta.set_lr(g.lr, lr);
            g.lr = lr;
        }
    }

    fn set_cycled_momentum(&mut self, group: usize, value: f64) {
        if let Some(h) = self.hyper.get_mut(group) {
            h.beta1 = PyNum::float(value);
        }
    }

    fn set_initial_lr(&mut self, group: usize, lr: f64) {
        if let (Some(g), Some(h)) = (self.groups.get_mut(group), self.hyper.get_mut(group)) {
            h.meta.set_initial_lr(lr);
            g.initial_lr = Some(lr);
        }
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
        for (id, s) in &self.state {
            let Some(i) = index_of.get(id) else { continue };
            let step = Tensor::new(s.step, &Device::Cpu).ctx("Adam step")?;
            let mut items = vec![
                ("step", Value::from_tensor(&step)?),
                ("exp_avg", Value::from_tensor(&s.exp_avg)?),
                ("exp_avg_sq", Value::from_tensor(&s.exp_avg_sq)?),
            ];
            if let Some(m) = &s.max_exp_avg_sq {
                items.push(("max_exp_avg_sq", Value::from_tensor(m)?));
            }
            st.push((*i, state::entry(items)));
        }
        Ok(state::pack(st, groups))
    }

    fn load_state_dict(&mut self, sd: &Value) -> Result<()> {
        let loaded = state::unpack(sd, &self.groups)?;
        let mut hyper = Vec::with_capacity(self.groups.len());
        for (gi, g) in loaded.groups.iter().enumerate() {
            state::check_kind(g, gi, self.name, "betas", "momentum", "SGD")?;
            let meta = state::meta(g, gi, OPTIONS)?;
            let (beta1, beta2) = state::betas(g, gi)?;
            // AdamW forces decoupled weight decay whatever the file says (its __setstate__).
            let decoupled =
                self.decoupled || state::flag(g, gi, "decoupled_weight_decay", self.decoupled)?;
            let h = Hyper {
                beta1,
                beta2,
                eps: state::num(g, gi, "eps")?,
                weight_decay: state::num(g, gi, "weight_decay")?,
                amsgrad: state::flag(g, gi, "amsgrad", false)?,
                maximize: state::flag(g, gi, "maximize", false)?,
                decoupled,
                meta,
            };
            let lr = h.meta.lr.map_or(0.0, |n| n.value);
            h.config(lr).validate().map_err(|e| Error::OptimizerState {
                detail: format!("param_groups[{gi}]: {e}"),
            })?;
            hyper.push(h);
        }
        let mut new_state = IndexMap::new();
        for (slot, e) in &loaded.state {
            let Slot { group, pos } = *slot;
            let where_ = state::describe(&self.groups, *slot);
            state::check_keys(e, STATE_KEYS, self.name, &where_)?;
            if e.entries.is_empty() {
                continue;
            }
            let p = &self.groups[group].params[pos];
            let max_exp_avg_sq = if hyper[group].amsgrad || e.get("max_exp_avg_sq").is_some() {
                Some(state::tensor(e, "max_exp_avg_sq", p, &where_)?)
            } else {
                None
            };
            let st = PState {
                step: state::step_value(e, &where_)?,
                exp_avg: state::tensor(e, "exp_avg", p, &where_)?,
                exp_avg_sq: state::tensor(e, "exp_avg_sq", p, &where_)?,
                max_exp_avg_sq,
            };
            new_state.insert(p.id(), st);
        }
        for (g, h) in self.groups.iter_mut().zip(&hyper) {
            g.lr = h.meta.lr.map_or(g.lr, |n| n.value);
            g.initial_lr = h.meta.initial_lr.map(|n| n.value);
        }
        self.hyper = hyper;
        self.state = new_state;
        Ok(())
    }

    fn move_state(&mut self, device: &Device) -> Result<()> {
        for s in self.state.values_mut() {
            s.exp_avg = s.exp_avg.to_device(device).ctx("moving Adam state")?;
            s.exp_avg_sq = s.exp_avg_sq.to_device(device).ctx("moving Adam state")?;
            if let Some(m) = &mut s.max_exp_avg_sq {
                *m = m.to_device(device).ctx("moving Adam state")?;
            }
        }
        Ok(())
    }

    fn step_count(&self, p: &Param) -> Option<f32> {
        self.state.get(&p.id()).map(|s| s.step)
    }

    fn moments(&self, p: &Param) -> Option<(&Tensor, &Tensor, Option<&Tensor>)> {
        self.state
            .get(&p.id())
            .map(|s| (&s.exp_avg, &s.exp_avg_sq, s.max_exp_avg_sq.as_ref()))
    }
}

macro_rules! adam_like {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $decoupled:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $ty(Core);

        impl $ty {
            #[doc = concat!("`torch.optim.", $name, "` over one group of named parameters.")]
            ///
            /// # Errors
            /// `K0601` when `params` is empty or every parameter is frozen; `K0602` when a
            /// parameter appears twice; `K0003` for an out-of-range hyper-parameter.
            pub fn new(params: Vec<(String, Param)>, config: AdamConfig) -> Result<Self> {
                Self::with_groups(vec![GroupSpec::new(params)], config)
            }

            /// Several groups, each overriding any of `config`'s hyper-parameters.
            ///
            /// # Errors
            /// As `new`; an option this optimizer does not have (`momentum`) is `K0003`.
            /// Unlike PyTorch, every group's settings are validated, not only the defaults.
            pub fn with_groups(groups: Vec<GroupSpec>, config: AdamConfig) -> Result<Self> {
                Core::new($name, $decoupled, groups, config).map($ty)
            }

            /// Appends a group with overrides (PyTorch's `add_param_group`).
            ///
            /// # Errors
            /// `K0602` when a parameter is already in a group; `K0003` for a bad option.
            pub fn add_group(&mut self, spec: GroupSpec) -> Result<()> {
                self.0.add_group(spec)
            }

            /// The settings of group `i` (None when out of range).
            pub fn group_config(&self, i: usize) -> Option<AdamConfig> {
                self.0.group_config(i)
            }

            /// How many steps `p` has taken (`state["step"]`), once stepped.
            pub fn step_count(&self, p: &Param) -> Option<f32> {
                self.0.step_count(p)
            }

            /// `(exp_avg, exp_avg_sq, max_exp_avg_sq)` of `p`, once stepped.
            pub fn moments(&self, p: &Param) -> Option<(&Tensor, &Tensor, Option<&Tensor>)> {
                self.0.moments(p)
            }
        }

        impl Optimizer for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn step(&mut self, grads: &Grads) -> Result<()> {
                self.0.step(grads)
            }
            fn param_groups(&self) -> &[ParamGroup] {
                &self.0.groups
            }
            fn set_lr(&mut self, group: usize, lr: f64) {
                self.0.set_lr(group, lr)
            }
            fn set_initial_lr(&mut self, group: usize, lr: f64) {
                self.0.set_initial_lr(group, lr)
            }
            fn cycled_momentum_key(&self) -> Option<&'static str> {
                Some("betas")
            }
            fn set_cycled_momentum(&mut self, group: usize, value: f64) -> Result<()> {
                self.0.set_cycled_momentum(group, value);
                Ok(())
            }
            fn add_param_group(
                &mut self,
                params: Vec<(String, Param)>,
                lr: Option<f64>,
            ) -> Result<()> {
                let mut spec = GroupSpec::new(params);
                spec.options.lr = lr;
                self.0.add_group(spec)
            }
            fn add_param_group_spec(&mut self, spec: GroupSpec) -> Result<()> {
                self.0.add_group(spec)
            }
            fn state_dict(&self) -> Result<Value> {
                self.0.state_dict()
            }
            fn load_state_dict(&mut self, state: &Value) -> Result<()> {
                self.0.load_state_dict(state)
            }
            fn to_device(&mut self, device: &Device) -> Result<()> {
                self.0.move_state(device)
            }
        }
    };
}

adam_like!(
    /// `torch.optim.Adam` (single-tensor path): `step += 1`; `g += weight_decay * p`;
    /// `exp_avg.lerp_(g, 1 - beta1)`; `exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g`;
    /// `denom = sqrt(exp_avg_sq [or its running max]) / sqrt(1 - beta2^step) + eps`;
    /// `p += -(lr / (1 - beta1^step)) * exp_avg / denom`.
    ///
    /// State per stepped parameter: `step` (written as a 0-dim `float32` CPU tensor),
    /// `exp_avg`, `exp_avg_sq`, and `max_exp_avg_sq` with AMSGrad. A loaded group with
    /// `decoupled_weight_decay=True` behaves as AdamW, as in PyTorch.
    Adam,
    "Adam",
    false
);

adam_like!(
    /// `torch.optim.AdamW`: Adam with decoupled weight decay, `p *= 1 - lr * weight_decay`
    /// before the Adam update (so a group with `lr = 0` is left bit-identical). Build it with
    /// [`AdamConfig::adamw`] for PyTorch's defaults (`weight_decay=1e-2`).
    AdamW,
    "AdamW",
    true
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::value::key_string;
    use crate::optim::{Sgd, SgdConfig};

    fn param(v: &[f32]) -> Param {
        Param::new(&Tensor::new(v, &Device::Cpu).unwrap(), true).unwrap()
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
            .map(|(k, _)| key_string(k))
            .collect()
    }

    #[test]
    fn invalid_hyper_parameters_are_k0003() {
        let w = param(&[1.0]);
        let bad = [
            (
                AdamConfig {
                    betas: (1.0, 0.999),
                    ..Default::default()
                },
                "betas[0]",
            ),
            (
                AdamConfig {
                    betas: (0.9, -0.1),
                    ..Default::default()
                },
                "betas[1]",
            ),
            (
                AdamConfig {
                    eps: -1e-8,
                    ..Default::default()
                },
                "epsilon",
            ),
            (AdamConfig::lr(-1.0), "learning rate"),
            (
                AdamConfig {
                    weight_decay: -0.1,
                    ..AdamConfig::adamw()
                },
                "weight_decay",
            ),
        ];
        for (c, what) in bad {
            let e = AdamW::new(vec![("w".into(), w.clone())], c).unwrap_err();
            assert_eq!(e.code(), "K0003");
            assert!(e.to_string().contains(what), "{e}");
        }
        let e = Adam::with_groups(
            vec![GroupSpec::new(vec![("w".into(), w.clone())]).momentum(0.9)],
            AdamConfig::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("Adam has no hyper-parameter 'momentum'")
        );
        assert_eq!(
            Adam::new(vec![], AdamConfig::default()).unwrap_err().code(),
            "K0601"
        );
    }

    #[test]
    fn first_step_moves_by_lr_against_the_gradient_sign() {
        let w = param(&[1.0, 1.0]);
        let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig::lr(0.1)).unwrap();
        opt.step(&grads(&[(&w, &[3.0, -0.5])])).unwrap();
        let v = vals(&w);
        assert!(
            (v[0] - 0.9).abs() < 1e-6 && (v[1] - 1.1).abs() < 1e-6,
            "{v:?}"
        );
        assert_eq!(opt.step_count(&w), Some(1.0));
    }

    #[test]
    fn zero_lr_group_is_bit_identical_for_adam_and_adamw() {
        for decoupled in [false, true] {
            let a = param(&[0.3, -2.5]);
            let b = param(&[0.1, 7.0]);
            let before = vals(&b);
            let c = AdamConfig {
                lr: 0.1,
                weight_decay: 0.5,
                amsgrad: true,
                ..Default::default()
            };
            let groups = vec![
                GroupSpec::new(vec![("a".into(), a.clone())]),
                GroupSpec::new(vec![("b".into(), b.clone())]).lr(0.0),
            ];
            let mut opt: Box<dyn Optimizer> = if decoupled {
                Box::new(AdamW::with_groups(groups, c).unwrap())
            } else {
                Box::new(Adam::with_groups(groups, c).unwrap())
            };
            for _ in 0..4 {
                opt.step(&grads(&[(&a, &[1.0, 2.0]), (&b, &[0.7, -1e-3])]))
                    .unwrap();
            }
            let after = vals(&b);
            assert!(
                before
                    .iter()
                    .zip(&after)
                    .all(|(x, y)| x.to_bits() == y.to_bits())
            );
            assert_ne!(vals(&a), vec![0.3, -2.5]);
        }
    }

    #[test]
    fn state_dict_layout_matches_pytorch() {
        let w = param(&[1.0, 2.0]);
        let f = Param::new(&Tensor::new(&[1f32], &Device::Cpu).unwrap(), false).unwrap();
        let mut opt = AdamW::new(
            vec![("f".into(), f), ("w".into(), w.clone())],
            AdamConfig {
                amsgrad: true,
                ..AdamConfig::adamw()
            },
        )
        .unwrap();
        opt.step(&grads(&[(&w, &[1.0, 1.0])])).unwrap();
        let sd = opt.state_dict().unwrap();
        let st = sd.get("state").unwrap();
        assert_eq!(keys(st), vec!["1"]);
        let e = st.as_dict().unwrap().get_int(1).unwrap();
        assert_eq!(
            keys(e),
            vec!["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        );
        let step = e.get("step").unwrap().as_tensor().unwrap();
        assert!(step.shape.is_empty() && step.dtype() == crate::io::Dtype::F32);
        assert_eq!(step.storage.location, "cpu");
        let g = &sd.get("param_groups").unwrap().as_seq().unwrap()[0];
        assert_eq!(
            keys(g),
            vec![
                "lr",
                "betas",
                "eps",
                "weight_decay",
                "amsgrad",
                "maximize",
                "foreach",
                "capturable",
                "differentiable",
                "fused",
                "decoupled_weight_decay",
                "params"
            ]
        );
        assert_eq!(
            g.get("betas"),
            Some(&Value::Tuple(vec![Value::Float(0.9), Value::Float(0.999)]))
        );
        assert_eq!(g.get("weight_decay"), Some(&Value::Float(0.01)));
        assert_eq!(g.get("decoupled_weight_decay"), Some(&Value::Bool(true)));
        let adam = Adam::new(vec![("w".into(), w)], AdamConfig::default()).unwrap();
        let g = &adam.state_dict().unwrap();
        let g = &g.get("param_groups").unwrap().as_seq().unwrap()[0];
        assert_eq!(g.get("weight_decay"), Some(&Value::Int(0)));
        assert_eq!(g.get("decoupled_weight_decay"), Some(&Value::Bool(false)));
    }

    #[test]
    fn load_round_trip_continues_identically() {
        let mk = || {
            let w = param(&[1.0, -2.0, 0.5]);
            let opt = Adam::new(
                vec![("w".into(), w.clone())],
                AdamConfig {
                    lr: 0.05,
                    amsgrad: true,
                    weight_decay: 0.1,
                    ..Default::default()
                },
            )
            .unwrap();
            (w, opt)
        };
        let g1: [f32; 3] = [0.3, -1.0, 2.0];
        let g2: [f32; 3] = [-0.1, 0.4, 1.0];
        let (w, mut opt) = mk();
        opt.step(&grads(&[(&w, &g1)])).unwrap();
        opt.step(&grads(&[(&w, &g2)])).unwrap();
        let sd = opt.state_dict().unwrap();
        let (w2, mut opt2) = mk();
        w2.set(&w.tensor()).unwrap();
        opt2.load_state_dict(&sd).unwrap();
        assert_eq!(opt2.state_dict().unwrap(), sd);
        for g in [g1, g2, g1] {
            opt.step(&grads(&[(&w, &g)])).unwrap();
            opt2.step(&grads(&[(&w2, &g)])).unwrap();
        }
        assert_eq!(vals(&w), vals(&w2));
        assert_eq!(opt2.step_count(&w2), Some(5.0));

        // Adam state does not fit SGD, and the error says why.
        let mut sgd = Sgd::new(vec![("w".into(), w2)], SgdConfig::lr(0.1)).unwrap();
        let e = sgd.load_state_dict(&sd).unwrap_err();
        assert_eq!(e.code(), "K0603");
        assert!(e.to_string().contains("holds Adam/AdamW settings"), "{e}");
    }

    #[test]
    fn to_device_keeps_state_and_overridden_groups_via_the_trait() {
        let w = param(&[1.0, 2.0]);
        let mut opt: Box<dyn Optimizer> =
            Box::new(AdamW::new(vec![("w".into(), w.clone())], AdamConfig::adamw()).unwrap());
        opt.step(&grads(&[(&w, &[1.0, 1.0])])).unwrap();
        let before = opt.state_dict().unwrap();
        opt.to_device(&Device::Cpu).unwrap();
        assert_eq!(opt.state_dict().unwrap(), before);
        let b = param(&[3.0]);
        opt.add_param_group_spec(
            GroupSpec::new(vec![("b".into(), b)])
                .amsgrad(true)
                .weight_decay(0.0)
                .betas(0.8, 0.9),
        )
        .unwrap();
        let sd = opt.state_dict().unwrap();
        let g = &sd.get("param_groups").unwrap().as_seq().unwrap()[1];
        assert_eq!(
            keys(g)[..4],
            ["betas", "weight_decay", "amsgrad", "lr"].map(String::from)
        );
        assert_eq!(g.get("weight_decay"), Some(&Value::Float(0.0)));
    }

    #[test]
    fn adamw_forces_decoupled_weight_decay_on_load() {
        let w = param(&[1.0]);
        let adam = Adam::new(
            vec![("w".into(), w.clone())],
            AdamConfig {
                weight_decay: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        let sd = adam.state_dict().unwrap();
        let mut adamw = AdamW::new(vec![("w".into(), w)], AdamConfig::adamw()).unwrap();
        adamw.load_state_dict(&sd).unwrap();
        let out = adamw.state_dict().unwrap();
        let g = &out.get("param_groups").unwrap().as_seq().unwrap()[0];
        assert_eq!(g.get("decoupled_weight_decay"), Some(&Value::Bool(true)));
        // the Python int type of a loaded value survives
        assert_eq!(g.get("weight_decay"), Some(&Value::Float(0.1)));
    }
}
