//! Building parameter groups: the user-facing [`GroupSpec`] with per-group overrides, and the
//! checks PyTorch's `Optimizer.__init__` / `add_param_group` make (empty list, duplicates).

use super::ParamGroup;
use crate::error::{Error, Result};
use crate::nn::{Param, ParamId};
use std::collections::HashMap;

/// Per-group overrides of an optimizer's hyper-parameters (PyTorch: the extra keys of a
/// `{"params": [...], "lr": 0.1, ...}` group dict). `None` takes the optimizer's default.
///
/// An override that does not exist for the optimizer (e.g. `momentum` for Adam) is
/// rejected with `K0003`; PyTorch would silently store the unknown key in the group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupOptions {
    /// Learning rate.
    pub lr: Option<f64>,
    /// SGD momentum factor.
    pub momentum: Option<f64>,
    /// SGD dampening for momentum.
    pub dampening: Option<f64>,
    /// Weight decay (L2 penalty; decoupled for AdamW).
    pub weight_decay: Option<f64>,
    /// SGD Nesterov momentum.
    pub nesterov: Option<bool>,
    /// Maximize the objective instead of minimizing it.
    pub maximize: Option<bool>,
    /// Adam/AdamW `(beta1, beta2)`.
    pub betas: Option<(f64, f64)>,
    /// Adam/AdamW term added to the denominator.
    pub eps: Option<f64>,
    /// Adam/AdamW AMSGrad variant.
    pub amsgrad: Option<bool>,
    /// RMSprop smoothing constant.
    pub alpha: Option<f64>,
    /// RMSprop centered variant (normalizes by the gradient's estimated variance).
    pub centered: Option<bool>,
    /// Adagrad learning-rate decay.
    pub lr_decay: Option<f64>,
    /// Adagrad starting value of the `sum` accumulator (PyTorch stores a group's override
    /// but fills `sum` from the optimizer's default).
    pub initial_accumulator_value: Option<f64>,
    /// NAdam momentum decay.
    pub momentum_decay: Option<f64>,
    /// NAdam/RAdam decoupled (AdamW-style) weight decay.
    pub decoupled_weight_decay: Option<bool>,
}

impl GroupOptions {
    /// The names of the overrides that are set, in PyTorch's key spelling.
    pub(crate) fn set_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut push = |set: bool, key: &'static str| {
            if set {
                keys.push(key);
            }
        };
        push(self.lr.is_some(), "lr");
        push(self.momentum.is_some(), "momentum");
        push(self.dampening.is_some(), "dampening");
        push(self.weight_decay.is_some(), "weight_decay");
        push(self.nesterov.is_some(), "nesterov");
        push(self.maximize.is_some(), "maximize");
        push(self.betas.is_some(), "betas");
        push(self.eps.is_some(), "eps");
        push(self.amsgrad.is_some(), "amsgrad");
        push(self.alpha.is_some(), "alpha");
        push(self.centered.is_some(), "centered");
        push(self.lr_decay.is_some(), "lr_decay");
        push(
            self.initial_accumulator_value.is_some(),
            "initial_accumulator_value",
        );
        push(self.momentum_decay.is_some(), "momentum_decay");
        push(
            self.decoupled_weight_decay.is_some(),
            "decoupled_weight_decay",
        );
        keys
    }

    /// Fails with `K0003` when an override outside `allowed` is set.
    pub(crate) fn check_allowed(&self, optimizer: &str, allowed: &[&str]) -> Result<()> {
        if let Some(key) = self.set_keys().into_iter().find(|k| !allowed.contains(k)) {
            return Err(Error::invalid(
                format!("parameter group option '{key}'"),
                "set",
                format!(
                    "{optimizer} has no hyper-parameter '{key}'; its group options are {}",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// One parameter group to build an optimizer from: named parameters (as from
/// `named_parameters()`) plus overrides of the optimizer's defaults.
///
/// ```
/// # use kiln::optim::GroupSpec;
/// let head = GroupSpec::new(vec![]).lr(1e-2).weight_decay(0.0);
/// assert_eq!(head.options.lr, Some(1e-2));
/// ```
#[derive(Clone, Debug)]
pub struct GroupSpec {
    /// The parameters with their dotted names, in order.
    pub params: Vec<(String, Param)>,
    /// Overrides of the optimizer's defaults.
    pub options: GroupOptions,
}

impl GroupSpec {
    /// A group with no overrides.
    pub fn new(params: Vec<(String, Param)>) -> Self {
        GroupSpec {
            params,
            options: GroupOptions::default(),
        }
    }

    /// Overrides the learning rate.
    pub fn lr(mut self, lr: f64) -> Self {
        self.options.lr = Some(lr);
        self
    }

    /// Overrides SGD's momentum.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.options.momentum = Some(momentum);
        self
    }

    /// Overrides SGD's dampening.
    pub fn dampening(mut self, dampening: f64) -> Self {
        self.options.dampening = Some(dampening);
        self
    }

    /// Overrides the weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.options.weight_decay = Some(weight_decay);
        self
    }

    /// Overrides SGD's Nesterov flag.
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.options.nesterov = Some(nesterov);
        self
    }

    /// Overrides `maximize`.
    pub fn maximize(mut self, maximize: bool) -> Self {
        self.options.maximize = Some(maximize);
        self
    }

    /// Overrides Adam's betas.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.options.betas = Some((beta1, beta2));
        self
    }

    /// Overrides Adam's eps.
    pub fn eps(mut self, eps: f64) -> Self {
        self.options.eps = Some(eps);
        self
    }

    /// Overrides Adam's AMSGrad flag.
    pub fn amsgrad(mut self, amsgrad: bool) -> Self {
        self.options.amsgrad = Some(amsgrad);
        self
    }

    /// Overrides RMSprop's `alpha`.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.options.alpha = Some(alpha);
        self
    }

    /// Overrides RMSprop's `centered` flag.
    pub fn centered(mut self, centered: bool) -> Self {
        self.options.centered = Some(centered);
        self
    }

    /// Overrides Adagrad's `lr_decay`.
    pub fn lr_decay(mut self, lr_decay: f64) -> Self {
        self.options.lr_decay = Some(lr_decay);
        self
    }

    /// Overrides Adagrad's `initial_accumulator_value` (stored in the group only: like
    /// PyTorch, `sum` starts from the optimizer's default).
    pub fn initial_accumulator_value(mut self, value: f64) -> Self {
        self.options.initial_accumulator_value = Some(value);
        self
    }

    /// Overrides NAdam's `momentum_decay`.
    pub fn momentum_decay(mut self, momentum_decay: f64) -> Self {
        self.options.momentum_decay = Some(momentum_decay);
        self
    }

    /// Overrides NAdam's/RAdam's `decoupled_weight_decay` flag.
    pub fn decoupled_weight_decay(mut self, decoupled: bool) -> Self {
        self.options.decoupled_weight_decay = Some(decoupled);
        self
    }
}

/// Checks a whole set of groups at construction: `K0601` when there is no parameter at all or
/// none requires a gradient, `K0602` when a parameter sits in two groups (or twice in one).
pub(crate) fn check_construction(groups: &[GroupSpec]) -> Result<()> {
    let total: usize = groups.iter().map(|g| g.params.len()).sum();
    if total == 0 {
        return Err(Error::EmptyParameterList {
            detail: String::new(),
        });
    }
    if !groups
        .iter()
        .flat_map(|g| &g.params)
        .any(|(_, p)| p.requires_grad())
    {
        return Err(Error::EmptyParameterList {
            detail: format!(": all {total} parameters are frozen (requires_grad=False)"),
        });
    }
    let mut seen: HashMap<ParamId, (usize, &str)> = HashMap::new();
    for (gi, g) in groups.iter().enumerate() {
        for (name, p) in &g.params {
            if let Some((first, first_name)) = seen.get(&p.id()) {
                return Err(duplicate(first_name, name, *first, gi));
            }
            seen.insert(p.id(), (gi, name));
        }
    }
    Ok(())
}

/// Checks a group added to existing ones (`add_param_group`): `K0602` on a parameter that is
/// already in a group or twice in the new one. An empty group is allowed, as in PyTorch.
pub(crate) fn check_added(existing: &[ParamGroup], new: &[(String, Param)]) -> Result<()> {
    let mut seen: HashMap<ParamId, (usize, &str)> = HashMap::new();
    for (gi, g) in existing.iter().enumerate() {
        for (p, name) in g.params.iter().zip(&g.names) {
            seen.insert(p.id(), (gi, name));
        }
    }
    let index = existing.len();
    for (name, p) in new {
        if let Some((first, first_name)) = seen.get(&p.id()) {
            return Err(duplicate(first_name, name, *first, index));
        }
        seen.insert(p.id(), (index, name));
    }
    Ok(())
}

fn duplicate(first_name: &str, name: &str, first: usize, second: usize) -> Error {
    let detail = if first_name == name || first_name.is_empty() {
        String::new()
    } else {
        format!(" (also named '{first_name}')")
    };
    Error::DuplicateParameter {
        name: name.to_string(),
        first,
        second,
        detail,
    }
}

/// A `ParamGroup` from named parameters.
pub(crate) fn make_group(params: Vec<(String, Param)>, lr: f64) -> ParamGroup {
    let (names, params) = params.into_iter().unzip();
    ParamGroup {
        params,
        names,
        lr,
        initial_lr: None,
    }
}

/// `K0003` unless `value` is a number (not NaN) at least `min`, like PyTorch's
/// `if not 0.0 <= x: raise ValueError(f"Invalid ... value: {x}")`.
pub(crate) fn check_at_least(what: &str, value: f64, min: f64) -> Result<()> {
    if value.is_nan() || value < min {
        return Err(Error::invalid(
            what,
            value,
            format!("must be >= {min} (PyTorch: Invalid {what} value: {value})"),
        ));
    }
    Ok(())
}

/// `K0003` unless `0 <= beta < 1` (PyTorch: Invalid beta parameter at index i).
pub(crate) fn check_beta(index: usize, value: f64) -> Result<()> {
    if value.is_nan() || !(0.0..1.0).contains(&value) {
        return Err(Error::invalid(
            format!("betas[{index}]"),
            value,
            format!(
                "must be in [0, 1) (PyTorch: Invalid beta parameter at index {index}: {value})"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Tensor};

    fn param(trainable: bool) -> Param {
        Param::new(
            &Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
            trainable,
        )
        .unwrap()
    }

    #[test]
    fn empty_and_all_frozen_are_k0601() {
        let e = check_construction(&[]).unwrap_err();
        assert_eq!(e.code(), "K0601");
        assert_eq!(e.to_string(), "optimizer got an empty parameter list");
        let e =
            check_construction(&[GroupSpec::new(vec![("a".into(), param(false))])]).unwrap_err();
        assert_eq!(e.code(), "K0601");
        assert!(e.to_string().contains("all 1 parameters are frozen"));
    }

    #[test]
    fn frozen_parameters_may_sit_in_a_group() {
        let groups = [
            GroupSpec::new(vec![("a".into(), param(false))]),
            GroupSpec::new(vec![("b".into(), param(true))]),
        ];
        check_construction(&groups).unwrap();
    }

    #[test]
    fn duplicate_names_the_parameter_and_both_groups() {
        let p = param(true);
        let groups = [
            GroupSpec::new(vec![("fc.weight".into(), p.clone())]),
            GroupSpec::new(vec![("x".into(), param(true))]),
            GroupSpec::new(vec![("fc.weight".into(), p)]),
        ];
        let e = check_construction(&groups).unwrap_err();
        assert_eq!(e.code(), "K0602");
        let text = e.to_string();
        assert!(text.contains("'fc.weight' is in groups 0 and 2"), "{text}");
    }

    #[test]
    fn added_group_duplicate_is_k0602() {
        let p = param(true);
        let existing = [make_group(vec![("w".into(), p.clone())], 0.1)];
        let e = check_added(&existing, &[("w".into(), p)]).unwrap_err();
        assert_eq!(e.code(), "K0602");
        assert!(e.to_string().contains("groups 0 and 1"));
        check_added(&existing, &[]).unwrap();
    }

    #[test]
    fn unknown_override_is_k0003() {
        let o = GroupOptions {
            momentum: Some(0.9),
            ..Default::default()
        };
        let e = o.check_allowed("Adam", &["lr", "betas"]).unwrap_err();
        assert_eq!(e.code(), "K0003");
        assert!(e.to_string().contains("momentum"));
    }

    #[test]
    fn range_checks_name_the_value() {
        let e = check_at_least("learning rate", -0.5, 0.0).unwrap_err();
        assert_eq!(e.code(), "K0003");
        assert!(e.to_string().contains("-0.5"));
        assert!(check_at_least("eps", f64::NAN, 0.0).is_err());
        assert!(check_beta(1, 1.0).is_err());
        check_beta(0, 0.0).unwrap();
    }
}
