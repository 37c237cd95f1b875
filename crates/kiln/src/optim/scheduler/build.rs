//! Building a scheduler from its name and arguments (what the CLI's `--scheduler` uses).

use super::{CosineAnnealingLr, ExponentialLr, LrScheduler, MultiStepLr, StepLr};
use crate::error::{Error, Result};
use crate::optim::Optimizer;

/// The scheduler names [`build`] accepts.
pub const SCHEDULER_NAMES: &[&str] = &["step", "multistep", "exponential", "cosine"];

/// Arguments for [`build`]; each scheduler uses its own and rejects the others.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchedulerArgs {
    /// `step`: period of decay in epochs (required).
    pub step_size: Option<usize>,
    /// `step`, `multistep` (default 0.1), `exponential` (required): decay factor.
    pub gamma: Option<f64>,
    /// `multistep`: epochs at which to decay (required).
    pub milestones: Option<Vec<usize>>,
    /// `cosine`: epochs of the half period (required).
    pub t_max: Option<usize>,
    /// `cosine`: lowest rate (default 0.0).
    pub eta_min: Option<f64>,
}

fn missing(name: &str, arg: &str) -> Error {
    Error::invalid(
        format!("{name} scheduler"),
        format!("no {arg}"),
        format!("the {name} scheduler needs {arg}"),
    )
}

/// Builds a scheduler by name (`step`, `multistep`, `exponential`, `cosine`; PyTorch's class
/// names such as `StepLR` or `CosineAnnealingLR` are accepted too, case-insensitively) and
/// attaches it to `opt`.
///
/// # Errors
/// `K0003` for an unknown name (listing the known ones), a required argument that is
/// missing, or an argument the scheduler does not take.
pub fn build(
    name: &str,
    args: &SchedulerArgs,
    opt: &mut dyn Optimizer,
) -> Result<Box<dyn LrScheduler>> {
    let key: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    let key = key.strip_suffix("lr").unwrap_or(&key);
    let canonical = match key {
        "step" => "step",
        "multistep" => "multistep",
        "exponential" | "exp" => "exponential",
        "cosine" | "cosineannealing" => "cosine",
        _ => {
            return Err(Error::invalid(
                "scheduler",
                name,
                format!("one of {}", SCHEDULER_NAMES.join(", ")),
            ));
        }
    };
    let uses: &[&str] = match canonical {
        "step" => &["step_size", "gamma"],
        "multistep" => &["milestones", "gamma"],
        "exponential" => &["gamma"],
        _ => &["t_max", "eta_min"],
    };
    let given = [
        ("step_size", args.step_size.is_some()),
        ("gamma", args.gamma.is_some()),
        ("milestones", args.milestones.is_some()),
        ("t_max", args.t_max.is_some()),
        ("eta_min", args.eta_min.is_some()),
    ];
    if let Some((arg, _)) = given.iter().find(|(a, set)| *set && !uses.contains(a)) {
        return Err(Error::invalid(
            format!("{canonical} scheduler argument"),
            arg,
            format!("the {canonical} scheduler takes {}", uses.join(", ")),
        ));
    }
    Ok(match canonical {
        "step" => Box::new(StepLr::new(
            opt,
            args.step_size.ok_or_else(|| missing("step", "step_size"))?,
            args.gamma.unwrap_or(0.1),
        )?),
        "multistep" => Box::new(MultiStepLr::new(
            opt,
            args.milestones
                .as_deref()
                .ok_or_else(|| missing("multistep", "milestones"))?,
            args.gamma.unwrap_or(0.1),
        )?),
        "exponential" => Box::new(ExponentialLr::new(
            opt,
            args.gamma.ok_or_else(|| missing("exponential", "gamma"))?,
        )?),
        _ => Box::new(CosineAnnealingLr::new(
            opt,
            args.t_max.ok_or_else(|| missing("cosine", "t_max"))?,
            args.eta_min.unwrap_or(0.0),
        )?),
    })
}
