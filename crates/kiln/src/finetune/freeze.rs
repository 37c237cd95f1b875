//! Freezing and unfreezing parameters by name.
//!
//! A frozen parameter holds a plain tensor, so backward neither computes its gradient nor
//! visits layers that only frozen parameters feed: freezing the backbone makes backward
//! cheaper, as in PyTorch. Optimizers skip parameters without gradients, so frozen weights
//! stay bit-identical.

use super::Selector;
use crate::error::Result;
use crate::nn::Module;
use crate::nn::layers::BatchNorm;

/// Sets `requires_grad = false` on every parameter `selector` picks; returns their names.
///
/// # Errors
/// `K0402` when a pattern selects no parameter.
pub fn freeze(model: &dyn Module, selector: &Selector) -> Result<Vec<String>> {
    set_requires_grad(model, selector, false)
}

/// Sets `requires_grad = true` on every parameter `selector` picks; returns their names.
///
/// # Errors
/// `K0402` when a pattern selects no parameter.
pub fn unfreeze(model: &dyn Module, selector: &Selector) -> Result<Vec<String>> {
    set_requires_grad(model, selector, true)
}

fn set_requires_grad(model: &dyn Module, selector: &Selector, value: bool) -> Result<Vec<String>> {
    let params = model.named_parameters();
    let all: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    let names = selector.select(&all)?;
    for (n, p) in &params {
        if names.contains(n) {
            p.set_requires_grad(value)?;
        }
    }
    Ok(names)
}

/// Puts every BatchNorm whose parameters are all frozen into eval mode, so its running
/// statistics stay untouched while the rest of the model trains (call after `train()`).
/// Returns the paths of the BatchNorm layers it switched.
pub fn frozen_batchnorm_to_eval(model: &dyn Module) -> Vec<String> {
    let mut out = Vec::new();
    for (path, m) in model.named_modules() {
        let any = m.as_any();
        if !(any.is::<BatchNorm>()
            || any.is::<crate::nn::BatchNorm1d>()
            || any.is::<crate::nn::BatchNorm2d>())
        {
            continue;
        }
        let params = m.parameters();
        if !params.is_empty() && params.iter().all(|p| !p.requires_grad()) {
            m.set_training(false);
            out.push(path);
        }
    }
    out
}
