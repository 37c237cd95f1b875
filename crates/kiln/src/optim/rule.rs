//! The machinery RMSprop, Adagrad, Adamax, NAdam and RAdam share: parameter groups with
//! per-group settings, per-parameter state in first-use order, `step`, PyTorch's
//! `state_dict` layout and `load_state_dict`, `to_device`. Each optimizer supplies a [`Rule`]
//! (its settings with their Python types, its state and its update) and gets its public type
//! and [`super::Optimizer`] implementation from [`rule_optimizer!`].

use super::group::{self, GroupOptions, GroupSpec, make_group};
use super::state::{self, GroupMeta, Slot};
use super::{Grads, ParamGroup};
use crate::error::{Context, Error, Result, shape_str};
use crate::io::{Dict, Value};
use crate::nn::{Param, ParamId};
use candle_core::{Device, Tensor};
use indexmap::IndexMap;

/// One optimizer's settings, state and update rule (`Self` is one group's settings with
/// their Python types).
pub(crate) trait Rule: Clone + std::fmt::Debug + Send + Sized {
    /// PyTorch's class name.
    const NAME: &'static str;
    /// Keys a [`GroupSpec`] may override, in the order of PyTorch's `defaults` dict.
    const GROUP_OPTIONS: &'static [&'static str];
    /// The group keys the rule reads from a saved group besides `lr` and the
    /// implementation switches (everything else is kept as an extra key).
    const KEYS: &'static [&'static str];
    /// The keys of a parameter's state.
    const STATE_KEYS: &'static [&'static str];
    /// Whether the state of every parameter is created at construction (Adagrad), not at
    /// the parameter's first step.
    const EAGER_STATE: bool = false;

    /// The public hyper-parameters.
    type Config: Clone + std::fmt::Debug;
    /// One parameter's state.
    type State: Clone + std::fmt::Debug + Send;

    /// The learning rate of `c`.
    fn lr(c: &Self::Config) -> f64;
    /// `defaults` with a group's overrides applied (only keys in `GROUP_OPTIONS` are set).
    fn merge(defaults: &Self::Config, o: &GroupOptions) -> Self::Config;
    /// PyTorch's range checks (`K0003`).
    fn validate(c: &Self::Config) -> Result<()>;
    /// A group's settings from a (validated) config, with PyTorch's default Python types.
    fn from_config(c: &Self::Config) -> Self;
    /// The settings as a config.
    fn config(&self, lr: f64) -> Self::Config;
    /// The group's keys in PyTorch's order (`params` aside), `lr` included.
    fn group_items(&self, lr: Value, meta: &GroupMeta) -> Vec<(&'static str, Value)>;
    /// Reads a saved group (`K0603` for a missing or mistyped key).
    fn from_group(g: &Dict, gi: usize) -> Result<Self>;
    /// A parameter's fresh state; `defaults` are the optimizer's own settings.
    fn init_state(&self, defaults: &Self::Config, param: &Tensor) -> Result<Self::State>;
    /// The state entries in PyTorch's order.
    fn save_state(s: &Self::State) -> Result<Vec<(&'static str, Value)>>;
    /// Reads a saved state entry for `p` (`K0603` when it does not fit).
    fn load_state(&self, e: &Dict, p: &Param, where_: &str) -> Result<Self::State>;
    /// The state's tensors that live on the parameter's device.
    fn tensors_mut(s: &mut Self::State) -> Vec<&mut Tensor>;
    /// `state["step"]`.
    fn step_of(s: &Self::State) -> f32;
    /// One update of `param` with `grad`; returns the new value.
    fn update(&self, lr: f64, s: &mut Self::State, param: Tensor, grad: Tensor) -> Result<Tensor>;
}

/// The overridden keys of a group in the optimizer's key order (they come first in the
/// group dict, as PyTorch starts from the user's dict and `setdefault`s the rest).
pub(crate) fn override_order(o: &GroupOptions, keys: &[&str]) -> Vec<String> {
    let set = o.set_keys();
    keys.iter()
        .filter(|k| set.contains(k))
        .map(|k| k.to_string())
        .collect()
}

/// The shared optimizer over a [`Rule`].
#[derive(Debug)]
pub(crate) struct Core<R: Rule> {
    defaults: R::Config,
    pub(crate) groups: Vec<ParamGroup>,
    hyper: Vec<(R, GroupMeta)>,
    state: IndexMap<ParamId, R::State>,
}

impl<R: Rule> Core<R> {
    /// Builds the groups (validating each) and, for `EAGER_STATE`, every parameter's state.
    pub(crate) fn new(groups: Vec<GroupSpec>, config: R::Config) -> Result<Self> {
        R::validate(&config)?;
        group::check_construction(&groups)?;
        let mut core: Core<R> = Core {
            defaults: config,
            groups: Vec::with_capacity(groups.len()),
            hyper: Vec::with_capacity(groups.len()),
            state: IndexMap::new(),
        };
        for g in groups {
            core.push_group(g)?;
        }
        if R::EAGER_STATE {
            for gi in 0..core.groups.len() {
                for pi in 0..core.groups[gi].params.len() {
                    let p = &core.groups[gi].params[pi];
                    let st = core.hyper[gi].0.init_state(&core.defaults, &p.detached())?;
                    core.state.entry(p.id()).or_insert(st);
                }
            }
        }
        Ok(core)
    }

    /// PyTorch's `add_param_group` (state is created at the first step, as PyTorch's
    /// `_init_group` does, even for `EAGER_STATE`).
    pub(crate) fn add_group(&mut self, spec: GroupSpec) -> Result<()> {
        group::check_added(&self.groups, &spec.params)?;
        self.push_group(spec)
    }

    fn push_group(&mut self, spec: GroupSpec) -> Result<()> {
        let o = &spec.options;
        o.check_allowed(R::NAME, R::GROUP_OPTIONS)?;
        let c = R::merge(&self.defaults, o);
        R::validate(&c)?;
        let lr = R::lr(&c);
        let meta = GroupMeta {
            lr: Some(state::PyNum::float(lr)),
            order: override_order(o, R::GROUP_OPTIONS),
            ..Default::default()
        };
        self.hyper.push((R::from_config(&c), meta));
        self.groups.push(make_group(spec.params, lr));
        Ok(())
    }

    /// The settings of group `i`.
    pub(crate) fn group_config(&self, i: usize) -> Option<R::Config> {
        let g = self.groups.get(i)?;
        Some(self.hyper.get(i)?.0.config(g.lr))
    }

    /// `state["step"]` of `p`, once it has state.
    pub(crate) fn step_count(&self, p: &Param) -> Option<f32> {
        self.state.get(&p.id()).map(R::step_of)
    }

    /// One step over every parameter with a gradient.
    pub(crate) fn step(&mut self, grads: &Grads) -> Result<()> {
        for gi in 0..self.groups.len() {
            for pi in 0..self.groups[gi].params.len() {
                let Some(grad) = grads.get(&self.groups[gi].params[pi]) else {
                    continue;
                };
                let grad = grad.clone();
                self.step_param(gi, pi, grad)?;
            }
        }
        Ok(())
    }

    fn step_param(&mut self, gi: usize, pi: usize, grad: Tensor) -> Result<()> {
        let g = &self.groups[gi];
        let (rule, _) = &self.hyper[gi];
        let p = &g.params[pi];
        let param = p.detached();
        if grad.dims() != param.dims() {
            return Err(Error::invalid(
                format!("gradient of '{}'", g.names[pi]),
                shape_str(grad.dims()),
                format!("the parameter's shape {}", shape_str(param.dims())),
            ));
        }
        let st = match self.state.get_mut(&p.id()) {
            Some(st) => st,
            None => {
                let st = rule.init_state(&self.defaults, &param)?;
                self.state.entry(p.id()).or_insert(st)
            }
        };
        let new = rule.update(g.lr, st, param, grad)?;
        p.set(&new)
    }

    /// Sets the learning rate of a group (schedulers).
    pub(crate) fn set_lr(&mut self, group: usize, lr: f64) {
        if let (Some(g), Some((_, m))) = (self.groups.get_mut(group), self.hyper.get_mut(group)) {
            m.set_lr(g.lr, lr);
            g.lr = lr;
        }
    }

    /// Sets `initial_lr` of a group (schedulers).
    pub(crate) fn set_initial_lr(&mut self, group: usize, lr: f64) {
        if let (Some(g), Some((_, m))) = (self.groups.get_mut(group), self.hyper.get_mut(group)) {
            m.set_initial_lr(lr);
            g.initial_lr = Some(lr);
        }
    }

    /// PyTorch's `state_dict()`.
    pub(crate) fn state_dict(&self) -> Result<Value> {
        let (index_of, firsts) = state::indices(&self.groups);
        let groups = self
            .groups
            .iter()
            .zip(&self.hyper)
            .zip(firsts)
            .map(|((g, (rule, meta)), first)| {
                let items = rule.group_items(meta.lr_value(g.lr), meta);
                state::pack_group(g, meta, items, first)
            })
            .collect();
        let mut st = Vec::with_capacity(self.state.len());
        for (id, s) in &self.state {
            let Some(i) = index_of.get(id) else { continue };
            st.push((*i, state::entry(R::save_state(s)?)));
        }
        Ok(state::pack(st, groups))
    }

    /// PyTorch's `load_state_dict()`: groups by position, state by index.
    pub(crate) fn load_state_dict(&mut self, sd: &Value) -> Result<()> {
        let loaded = state::unpack(sd, &self.groups)?;
        let mut hyper = Vec::with_capacity(self.groups.len());
        for (gi, g) in loaded.groups.iter().enumerate() {
            let meta = state::meta(g, gi, R::KEYS)?;
            let rule = R::from_group(g, gi)?;
            let lr = meta.lr.map_or(0.0, |n| n.value);
            R::validate(&rule.config(lr)).map_err(|e| Error::OptimizerState {
                detail: format!("param_groups[{gi}]: {e}"),
            })?;
            hyper.push((rule, meta));
        }
        let mut new_state = IndexMap::new();
        for (slot, e) in &loaded.state {
            let Slot { group, pos } = *slot;
            let where_ = state::describe(&self.groups, *slot);
            state::check_keys(e, R::STATE_KEYS, R::NAME, &where_)?;
            if e.entries.is_empty() {
                continue;
            }
            let p = &self.groups[group].params[pos];
            let st = hyper[group].0.load_state(e, p, &where_)?;
            new_state.insert(p.id(), st);
        }
        for (g, (_, meta)) in self.groups.iter_mut().zip(&hyper) {
            g.lr = meta.lr.map_or(g.lr, |n| n.value);
            g.initial_lr = meta.initial_lr.map(|n| n.value);
        }
        self.hyper = hyper;
        self.state = new_state;
        Ok(())
    }

    /// Moves the state tensors to `device` (scalars stay on the CPU, as in PyTorch).
    pub(crate) fn move_state(&mut self, device: &Device) -> Result<()> {
        for s in self.state.values_mut() {
            for t in R::tensors_mut(s) {
                *t = t.to_device(device).ctx("moving optimizer state")?;
            }
        }
        Ok(())
    }
}

/// A zero tensor like `param` (fresh moment buffers).
pub(crate) fn zeros(param: &Tensor, what: &str) -> Result<Tensor> {
    param.zeros_like().ctx(what)
}

/// The public type of an optimizer over a [`Rule`]: constructors, accessors and the
/// [`super::Optimizer`] implementation.
macro_rules! rule_optimizer {
    ($(#[$doc:meta])* $ty:ident, $rule:ty, $config:ty, $name:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $ty($crate::optim::rule::Core<$rule>);

        impl $ty {
            #[doc = concat!("`torch.optim.", $name, "` over one group of named parameters.")]
            ///
            /// # Errors
            /// `K0601` when `params` is empty or every parameter is frozen; `K0602` when a
            /// parameter appears twice; `K0003` for an out-of-range hyper-parameter.
            pub fn new(
                params: Vec<(String, $crate::nn::Param)>,
                config: $config,
            ) -> $crate::error::Result<Self> {
                Self::with_groups(vec![$crate::optim::GroupSpec::new(params)], config)
            }

            /// Several groups, each overriding any of `config`'s hyper-parameters.
            ///
            /// # Errors
            /// As `new`; an option this optimizer does not have is `K0003`. Unlike
            /// PyTorch, every group's settings are validated, not only the defaults.
            pub fn with_groups(
                groups: Vec<$crate::optim::GroupSpec>,
                config: $config,
            ) -> $crate::error::Result<Self> {
                $crate::optim::rule::Core::new(groups, config).map($ty)
            }

            /// Appends a group with overrides (PyTorch's `add_param_group`).
            ///
            /// # Errors
            /// `K0602` when a parameter is already in a group; `K0003` for a bad option.
            pub fn add_group(
                &mut self,
                spec: $crate::optim::GroupSpec,
            ) -> $crate::error::Result<()> {
                self.0.add_group(spec)
            }

            /// The settings of group `i` (None when out of range).
            pub fn group_config(&self, i: usize) -> Option<$config> {
                self.0.group_config(i)
            }

            /// How many steps `p` has taken (`state["step"]`), once it has state.
            pub fn step_count(&self, p: &$crate::nn::Param) -> Option<f32> {
                self.0.step_count(p)
            }
        }

        impl $crate::optim::Optimizer for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn step(&mut self, grads: &$crate::optim::Grads) -> $crate::error::Result<()> {
                self.0.step(grads)
            }
            fn param_groups(&self) -> &[$crate::optim::ParamGroup] {
                &self.0.groups
            }
            fn set_lr(&mut self, group: usize, lr: f64) {
                self.0.set_lr(group, lr)
            }
            fn set_initial_lr(&mut self, group: usize, lr: f64) {
                self.0.set_initial_lr(group, lr)
            }
            fn add_param_group(
                &mut self,
                params: Vec<(String, $crate::nn::Param)>,
                lr: Option<f64>,
            ) -> $crate::error::Result<()> {
                let mut spec = $crate::optim::GroupSpec::new(params);
                spec.options.lr = lr;
                self.0.add_group(spec)
            }
            fn add_param_group_spec(
                &mut self,
                spec: $crate::optim::GroupSpec,
            ) -> $crate::error::Result<()> {
                self.0.add_group(spec)
            }
            fn state_dict(&self) -> $crate::error::Result<$crate::io::Value> {
                self.0.state_dict()
            }
            fn load_state_dict(
                &mut self,
                state: &$crate::io::Value,
            ) -> $crate::error::Result<()> {
                self.0.load_state_dict(state)
            }
            fn to_device(&mut self, device: &candle_core::Device) -> $crate::error::Result<()> {
                self.0.move_state(device)
            }
        }
    };
}

pub(crate) use rule_optimizer;
