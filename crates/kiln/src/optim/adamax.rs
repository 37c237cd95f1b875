//! Adamax with PyTorch's single-tensor (`foreach=False`) update rule and `state_dict` layout.

use super::group::{GroupOptions, check_at_least, check_beta};
use super::ops::{add_scaled, addcdiv, lerp, scale};
use super::rule::{Rule, rule_optimizer, zeros};
use super::state::{self, GroupMeta, PyNum};
use crate::error::{Context, Result};
use crate::io::{Dict, Value};
use crate::nn::Param;
use candle_core::Tensor;

/// Adamax's hyper-parameters; [`AdamaxConfig::default`] is `torch.optim.Adamax`'s defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamaxConfig {
    /// Learning rate (`>= 0`, default `2e-3`).
    pub lr: f64,
    /// Coefficients of the running average of the gradient and of the infinity norm
    /// (`[0, 1)` each, `(0.9, 0.999)`).
    pub betas: (f64, f64),
    /// Term added to the infinity norm (`>= 0`, `1e-8`).
    pub eps: f64,
    /// L2 penalty added to the gradient (`>= 0`, `0`).
    pub weight_decay: f64,
    /// Maximize the objective.
    pub maximize: bool,
}

impl Default for AdamaxConfig {
    fn default() -> Self {
        AdamaxConfig {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

impl AdamaxConfig {
    /// The defaults with this learning rate.
    pub fn lr(lr: f64) -> Self {
        AdamaxConfig {
            lr,
            ..Default::default()
        }
    }
}

/// One group's settings with their Python types.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Hyper {
    beta1: PyNum,
    beta2: PyNum,
    eps: PyNum,
    weight_decay: PyNum,
    maximize: bool,
}

/// Per-parameter state.
#[derive(Clone, Debug)]
pub(crate) struct PState {
    step: f32,
    exp_avg: Tensor,
    exp_inf: Tensor,
}

impl Rule for Hyper {
    const NAME: &'static str = "Adamax";
    const GROUP_OPTIONS: &'static [&'static str] =
        &["lr", "betas", "eps", "weight_decay", "maximize"];
    const KEYS: &'static [&'static str] = &["betas", "eps", "weight_decay", "maximize"];
    const STATE_KEYS: &'static [&'static str] = &["step", "exp_avg", "exp_inf"];
    type Config = AdamaxConfig;
    type State = PState;

    fn lr(c: &AdamaxConfig) -> f64 {
        c.lr
    }

    fn merge(d: &AdamaxConfig, o: &GroupOptions) -> AdamaxConfig {
        AdamaxConfig {
            lr: o.lr.unwrap_or(d.lr),
            betas: o.betas.unwrap_or(d.betas),
            eps: o.eps.unwrap_or(d.eps),
            weight_decay: o.weight_decay.unwrap_or(d.weight_decay),
            maximize: o.maximize.unwrap_or(d.maximize),
        }
    }

    fn validate(c: &AdamaxConfig) -> Result<()> {
        check_at_least("learning rate", c.lr, 0.0)?;
        check_at_least("epsilon", c.eps, 0.0)?;
        check_beta(0, c.betas.0)?;
        check_beta(1, c.betas.1)?;
        check_at_least("weight_decay", c.weight_decay, 0.0)
    }

    fn from_config(c: &AdamaxConfig) -> Self {
        Hyper {
            beta1: PyNum::float(c.betas.0),
            beta2: PyNum::float(c.betas.1),
            eps: PyNum::float(c.eps),
            weight_decay: PyNum::int_if(c.weight_decay, 0.0),
            maximize: c.maximize,
        }
    }

    fn config(&self, lr: f64) -> AdamaxConfig {
        AdamaxConfig {
            lr,
            betas: (self.beta1.value, self.beta2.value),
            eps: self.eps.value,
            weight_decay: self.weight_decay.value,
            maximize: self.maximize,
        }
    }

    fn group_items(&self, lr: Value, m: &GroupMeta) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", lr),
            (
                "betas",
                Value::Tuple(vec![self.beta1.to_value(), self.beta2.to_value()]),
            ),
            ("eps", self.eps.to_value()),
            ("weight_decay", self.weight_decay.to_value()),
            ("foreach", state::opt_bool_value(m.foreach)),
            ("maximize", Value::Bool(self.maximize)),
            ("differentiable", Value::Bool(m.differentiable)),
            ("capturable", Value::Bool(m.capturable)),
        ]
    }

    fn from_group(g: &Dict, gi: usize) -> Result<Self> {
        let (beta1, beta2) = state::betas(g, gi)?;
        Ok(Hyper {
            beta1,
            beta2,
            eps: state::num(g, gi, "eps")?,
            weight_decay: state::num(g, gi, "weight_decay")?,
            maximize: state::flag(g, gi, "maximize", false)?,
        })
    }

    fn init_state(&self, _: &AdamaxConfig, param: &Tensor) -> Result<PState> {
        let z = zeros(param, "Adamax state")?;
        Ok(PState {
            step: 0.0,
            exp_avg: z.clone(),
            exp_inf: z,
        })
    }

    fn save_state(s: &PState) -> Result<Vec<(&'static str, Value)>> {
        Ok(vec![
            ("step", state::scalar_value(s.step)?),
            ("exp_avg", Value::from_tensor(&s.exp_avg)?),
            ("exp_inf", Value::from_tensor(&s.exp_inf)?),
        ])
    }

    fn load_state(&self, e: &Dict, p: &Param, where_: &str) -> Result<PState> {
        Ok(PState {
            step: state::step_value(e, where_)?,
            exp_avg: state::tensor(e, "exp_avg", p, where_)?,
            exp_inf: state::tensor(e, "exp_inf", p, where_)?,
        })
    }

    fn tensors_mut(s: &mut PState) -> Vec<&mut Tensor> {
        vec![&mut s.exp_avg, &mut s.exp_inf]
    }

    fn step_of(s: &PState) -> f32 {
        s.step
    }

    fn update(&self, lr: f64, s: &mut PState, param: Tensor, grad: Tensor) -> Result<Tensor> {
        let mut grad = if self.maximize {
            grad.neg().ctx("Adamax maximize")?
        } else {
            grad
        };
        s.step += 1.0;
        let wd = self.weight_decay.value;
        if wd != 0.0 {
            grad = add_scaled(&grad, &param, wd)?;
        }
        let (beta1, beta2) = (self.beta1.value, self.beta2.value);
        s.exp_avg = lerp(&s.exp_avg, &grad, 1.0 - beta1)?;
        // torch.maximum(exp_inf.mul_(beta2), grad.abs().add_(eps), out=exp_inf)
        let norm = grad
            .abs()
            .and_then(|a| a.affine(1.0, self.eps.value))
            .ctx("Adamax norm")?;
        s.exp_inf = scale(&s.exp_inf, beta2)?
            .maximum(&norm)
            .ctx("Adamax norm")?;
        let bias_correction = 1.0 - beta1.powf(s.step as f64);
        let clr = lr / bias_correction;
        addcdiv(&param, &s.exp_avg, &s.exp_inf, -clr)
    }
}

rule_optimizer!(
    /// `torch.optim.Adamax` (single-tensor path): `step += 1`; `g += weight_decay * p`;
    /// `exp_avg.lerp_(g, 1 - beta1)`; `exp_inf = max(beta2 * exp_inf, |g| + eps)`;
    /// `p -= lr / (1 - beta1^step) * exp_avg / exp_inf`.
    ///
    /// State per stepped parameter: `step` (a 0-dim `float32` CPU tensor), `exp_avg`,
    /// `exp_inf`.
    Adamax,
    Hyper,
    AdamaxConfig,
    "Adamax"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Optimizer;
    use crate::optim::test_support::{grads, keys, param, vals};

    #[test]
    fn first_step_moves_by_lr_and_layout_matches_pytorch() {
        let w = param(&[1.0, 1.0]);
        let mut opt = Adamax::new(
            vec![("w".into(), w.clone())],
            AdamaxConfig {
                lr: 0.5,
                eps: 0.0,
                ..Default::default()
            },
        )
        .unwrap();
        opt.step(&grads(&[(&w, &[2.0, -4.0])])).unwrap();
        let v = vals(&w);
        assert!(
            (v[0] - 0.5).abs() < 1e-6 && (v[1] - 1.5).abs() < 1e-6,
            "{v:?}"
        );
        let sd = opt.state_dict().unwrap();
        let g = &sd.get("param_groups").unwrap().as_seq().unwrap()[0];
        assert_eq!(
            keys(g),
            [
                "lr",
                "betas",
                "eps",
                "weight_decay",
                "foreach",
                "maximize",
                "differentiable",
                "capturable",
                "params"
            ]
        );
        let e = sd
            .get("state")
            .unwrap()
            .as_dict()
            .unwrap()
            .get_int(0)
            .unwrap();
        assert_eq!(keys(e), ["step", "exp_avg", "exp_inf"]);
        assert_eq!(
            Adamax::new(
                vec![("w".into(), w)],
                AdamaxConfig {
                    betas: (0.9, 1.0),
                    ..Default::default()
                }
            )
            .unwrap_err()
            .code(),
            "K0003"
        );
    }
}
