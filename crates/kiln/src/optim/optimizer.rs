//! The `Optimizer` trait and parameter groups.

use super::{Grads, GroupOptions, GroupSpec};
use crate::error::Result;
use crate::io::Value;
use crate::nn::Param;
use candle_core::Device;

/// A group of parameters sharing hyper-parameters (PyTorch's `param_groups[i]`).
///
/// `names` runs parallel to `params` (dotted names from `named_parameters`); they are not
/// part of PyTorch's state dict but let kiln name parameters in errors and verify resumes.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    /// The parameters, in order (their positions define the state-dict indices).
    pub params: Vec<Param>,
    /// Names of the parameters.
    pub names: Vec<String>,
    /// Learning rate (schedulers change it).
    pub lr: f64,
    /// `initial_lr`, set when a scheduler is attached (as PyTorch does).
    pub initial_lr: Option<f64>,
}

/// An optimizer with PyTorch's update rule and `state_dict` layout.
pub trait Optimizer: Send {
    /// PyTorch's class name (`"SGD"`, `"Adam"`, `"AdamW"`).
    fn name(&self) -> &'static str;

    /// Applies one update to every parameter that has a gradient in `grads` (parameters
    /// without one are skipped, like PyTorch's `p.grad is None`).
    fn step(&mut self, grads: &Grads) -> Result<()>;

    /// The parameter groups.
    fn param_groups(&self) -> &[ParamGroup];

    /// Sets the learning rate of group `i` (used by schedulers).
    fn set_lr(&mut self, group: usize, lr: f64);

    /// Sets `initial_lr` of group `i` (used by schedulers).
    fn set_initial_lr(&mut self, group: usize, lr: f64);

    /// Which coefficient OneCycleLR's `cycle_momentum` cycles: `Some("momentum")` (SGD) or
    /// `Some("betas")` (Adam, AdamW: `betas[0]`); `None` (the provided implementation) for
    /// an optimizer with neither (PyTorch checks `optimizer.defaults` the same way).
    fn cycled_momentum_key(&self) -> Option<&'static str> {
        None
    }

    /// Sets group `i`'s coefficient named by
    /// [`cycled_momentum_key`](Optimizer::cycled_momentum_key) (for `betas`, the first one).
    ///
    /// # Errors
    /// `K0005` from the provided implementation.
    fn set_cycled_momentum(&mut self, group: usize, value: f64) -> Result<()> {
        let _ = (group, value);
        Err(crate::Error::Unsupported {
            what: format!("cycling the momentum of {}", self.name()),
        })
    }

    /// Appends a parameter group with this optimizer's defaults, overriding the learning rate
    /// when `lr` is given (PyTorch's `add_param_group`).
    fn add_param_group(&mut self, params: Vec<(String, Param)>, lr: Option<f64>) -> Result<()>;

    /// Appends a parameter group with any hyper-parameter overridden (PyTorch's
    /// `add_param_group({"params": ..., "lr": ..., "weight_decay": ...})`).
    ///
    /// # Errors
    /// `K0602` when a parameter is already in a group; `K0003` for an option this optimizer
    /// does not have or an out-of-range value. The provided implementation handles `lr` only
    /// and answers `K0005` for other options; kiln's optimizers override it.
    fn add_param_group_spec(&mut self, spec: GroupSpec) -> Result<()> {
        let lr = spec.options.lr;
        let rest = GroupOptions {
            lr: None,
            ..spec.options.clone()
        };
        if let Some(key) = rest.set_keys().first() {
            return Err(crate::Error::Unsupported {
                what: format!("group option '{key}' for {}", self.name()),
            });
        }
        self.add_param_group(spec.params, lr)
    }

    /// `{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}` exactly as
    /// PyTorch's `optimizer.state_dict()`.
    fn state_dict(&self) -> Result<Value>;

    /// Loads a state dict (from kiln or PyTorch), matching groups by position.
    fn load_state_dict(&mut self, state: &Value) -> Result<()>;

    /// Moves the optimizer state to `device` (after `model.to_device`).
    fn to_device(&mut self, device: &Device) -> Result<()>;
}
