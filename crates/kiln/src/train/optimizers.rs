//! Builds the optimizer and learning-rate scheduler a [`TrainConfig`] names.

use super::config::{OptimizerKind, SchedulerSpec, TrainConfig};
use crate::error::Result;
use crate::nn::Param;
use crate::optim::scheduler::{CosineAnnealingLr, LrScheduler, StepLr};
use crate::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, Adamax, AdamaxConfig, GroupSpec, NAdam,
    NAdamConfig, Optimizer, RAdam, RAdamConfig, RMSprop, RMSpropConfig, Sgd, SgdConfig,
};

/// The optimizer for `cfg` over `params` (trainable parameters with their names): PyTorch's
/// `SGD(lr, momentum, weight_decay)`, or `Adam`, `AdamW`, `RMSprop`, `Adagrad`, `Adamax`,
/// `NAdam`, `RAdam` with `(lr, weight_decay)`, every other setting at PyTorch's default
/// (`cfg.momentum` is SGD's only: RMSprop keeps PyTorch's `momentum=0`).
///
/// # Errors
/// `K0601` when there is no trainable parameter; `K0003` for an invalid setting.
pub fn build(cfg: &TrainConfig, params: Vec<(String, Param)>) -> Result<Box<dyn Optimizer>> {
    build_groups(cfg, vec![GroupSpec::new(params)])
}

/// [`build`] over several parameter groups (e.g. from
/// [`crate::finetune::param_groups`]); `cfg`'s settings are the defaults each group may
/// override.
///
/// # Errors
/// As [`build`]; `K0602` when a parameter is in two groups.
pub fn build_groups(cfg: &TrainConfig, groups: Vec<GroupSpec>) -> Result<Box<dyn Optimizer>> {
    Ok(match cfg.optimizer {
        OptimizerKind::Sgd => Box::new(Sgd::with_groups(
            groups,
            SgdConfig {
                lr: cfg.lr,
                momentum: cfg.momentum,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
        OptimizerKind::Adam => Box::new(Adam::with_groups(
            groups,
            AdamConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
        OptimizerKind::AdamW => Box::new(AdamW::with_groups(
            groups,
            AdamConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..AdamConfig::adamw()
            },
        )?),
        OptimizerKind::RMSprop => Box::new(RMSprop::with_groups(
            groups,
            RMSpropConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
        OptimizerKind::Adagrad => Box::new(Adagrad::with_groups(
            groups,
            AdagradConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
        OptimizerKind::Adamax => Box::new(Adamax::with_groups(
            groups,
            AdamaxConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
        OptimizerKind::NAdam => Box::new(NAdam::with_groups(
            groups,
            NAdamConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
        OptimizerKind::RAdam => Box::new(RAdam::with_groups(
            groups,
            RAdamConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
    })
}

/// The scheduler for `cfg`, attached to `opt` (stepped once per epoch), if any:
/// `StepLR(step_size, gamma)` or `CosineAnnealingLR(T_max = t_max or epochs, eta_min = 0)`.
///
/// # Errors
/// `K0003` for an invalid setting.
pub fn build_scheduler(
    cfg: &TrainConfig,
    opt: &mut dyn Optimizer,
) -> Result<Option<Box<dyn LrScheduler>>> {
    Ok(match cfg.scheduler {
        None => None,
        Some(SchedulerSpec::Step { step_size, gamma }) => {
            Some(Box::new(StepLr::new(opt, step_size, gamma)?))
        }
        Some(SchedulerSpec::Cosine { t_max }) => Some(Box::new(CosineAnnealingLr::new(
            opt,
            t_max.unwrap_or(cfg.epochs),
            0.0,
        )?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn cosine_default_anneals_over_the_run() {
        let mut cfg = TrainConfig::for_model("mlp");
        cfg.epochs = 10;
        let w = Param::new(&Tensor::new(&[1f32], &Device::Cpu).unwrap(), true).unwrap();
        let mut opt = build(&cfg, vec![("w".into(), w)]).unwrap();
        let mut s = build_scheduler(&cfg, opt.as_mut()).unwrap().unwrap();
        let mut lrs = vec![opt.param_groups()[0].lr];
        for _ in 0..10 {
            s.step(opt.as_mut()).unwrap();
            lrs.push(opt.param_groups()[0].lr);
        }
        assert_eq!(lrs[0], cfg.lr);
        assert!((lrs[5] - cfg.lr / 2.0).abs() < 1e-12);
        assert!(lrs[10].abs() < 1e-12);
        assert_eq!(opt.name(), "SGD");
    }
}
