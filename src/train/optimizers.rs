//! Builds the optimizer a [`TrainConfig`] names. The one place to switch implementations.

use super::config::TrainConfig;
use super::interim_optim::{InterimConfig, InterimOptimizer};
use crate::error::Result;
use crate::nn::Param;
use crate::optim::Optimizer;

/// The optimizer for `cfg` over `params` (trainable parameters with their names).
///
/// # Errors
/// `K0601` when there is no trainable parameter.
pub fn build(cfg: &TrainConfig, params: Vec<(String, Param)>) -> Result<Box<dyn Optimizer>> {
    Ok(Box::new(InterimOptimizer::new(
        params,
        InterimConfig {
            kind: cfg.optimizer,
            lr: cfg.lr,
            momentum: cfg.momentum,
            weight_decay: cfg.weight_decay,
        },
    )?))
}
