//! Builds the optimizer and learning-rate scheduler a [`TrainConfig`] names.

use super::config::{OptimizerKind, SchedulerSpec, TrainConfig};
use crate::error::{Error, Result};
use crate::nn::Param;
use crate::optim::scheduler::{
    CosineAnnealingLr, CosineAnnealingWarmRestarts, Interval, LinearLr, LrScheduler,
    OneCycleConfig, OneCycleLr, PerStep, PlateauConfig, PolynomialLr, ReduceLrOnPlateau, StepLr,
};
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

/// The scheduler for `cfg`, attached to `opt`, if any, for a run stepped per epoch:
/// [`build_scheduler_with`] without the number of steps per epoch.
///
/// # Errors
/// `K0003` for an invalid setting, or a per-step interval (which needs the steps per epoch).
pub fn build_scheduler(
    cfg: &TrainConfig,
    opt: &mut dyn Optimizer,
) -> Result<Option<Box<dyn LrScheduler>>> {
    build_scheduler_with(cfg, opt, None)
}

/// The scheduler for `cfg`, attached to `opt`, if any: `StepLR(step_size, gamma)`,
/// `CosineAnnealingLR(T_max = t_max or the run's length, eta_min = 0)`,
/// `OneCycleLR(max_lr or lr, total_steps = the run's length)`,
/// `LinearLR(start_factor, 1.0, warmup)`, `ReduceLROnPlateau(factor, patience)`,
/// `PolynomialLR(the run's length, power)` or `CosineAnnealingWarmRestarts(T_0, T_mult)`.
/// The run's length counts the units of `cfg.lr_interval`: epochs, or
/// `epochs * steps_per_epoch` optimizer steps (then wrapped in [`PerStep`]).
///
/// # Errors
/// `K0003` for an invalid setting, or a per-step interval without `steps_per_epoch`.
pub fn build_scheduler_with(
    cfg: &TrainConfig,
    opt: &mut dyn Optimizer,
    steps_per_epoch: Option<usize>,
) -> Result<Option<Box<dyn LrScheduler>>> {
    let Some(spec) = cfg.scheduler else {
        return Ok(None);
    };
    let length = match cfg.lr_interval {
        Interval::Epoch => cfg.epochs,
        Interval::Step => {
            let per_epoch = steps_per_epoch.ok_or_else(|| {
                Error::invalid(
                    "lr interval",
                    "step",
                    "a run whose steps per epoch are known (kiln train knows them)",
                )
            })?;
            cfg.epochs.saturating_mul(per_epoch)
        }
    };
    let s: Box<dyn LrScheduler> = match spec {
        SchedulerSpec::Step { step_size, gamma } => Box::new(StepLr::new(opt, step_size, gamma)?),
        SchedulerSpec::Cosine { t_max } => {
            Box::new(CosineAnnealingLr::new(opt, t_max.unwrap_or(length), 0.0)?)
        }
        SchedulerSpec::OneCycle { max_lr } => Box::new(OneCycleLr::new(
            opt,
            &OneCycleConfig::new(max_lr.unwrap_or(cfg.lr), length),
        )?),
        SchedulerSpec::Linear {
            warmup,
            start_factor,
        } => Box::new(LinearLr::new(opt, start_factor, 1.0, warmup)?),
        SchedulerSpec::Plateau { patience, factor } => Box::new(ReduceLrOnPlateau::new(
            opt,
            PlateauConfig {
                patience,
                factor,
                ..PlateauConfig::default()
            },
        )?),
        SchedulerSpec::Poly { power } => Box::new(PolynomialLr::new(opt, length, power)?),
        SchedulerSpec::WarmRestarts { t_0, t_mult } => {
            Box::new(CosineAnnealingWarmRestarts::new(opt, t_0, t_mult, 0.0)?)
        }
    };
    Ok(Some(match cfg.lr_interval {
        Interval::Step if !s.needs_metric() => Box::new(PerStep(s)),
        _ => s,
    }))
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
