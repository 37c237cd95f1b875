//! RAdam with PyTorch's single-tensor (`foreach=False`) update rule and `state_dict` layout.

use super::group::{GroupOptions, check_at_least, check_beta};
use super::ops::{add_scaled, addcmul, div_scalar, lerp, scale, weight_decay};
use super::rule::{Rule, rule_optimizer, zeros};
use super::state::{self, GroupMeta, PyNum};
use crate::error::{Context, Result};
use crate::io::{Dict, Value};
use crate::nn::Param;
use candle_core::Tensor;

/// RAdam's hyper-parameters; [`RAdamConfig::default`] is `torch.optim.RAdam`'s defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct RAdamConfig {
    /// Learning rate (`>= 0`, default `1e-3`).
    pub lr: f64,
    /// Coefficients of the running averages of the gradient and its square (`[0, 1)` each,
    /// `(0.9, 0.999)`).
    pub betas: (f64, f64),
    /// Term added to the denominator (`>= 0`, `1e-8`).
    pub eps: f64,
    /// Weight decay (`>= 0`, `0`): L2 added to the gradient, or decoupled.
    pub weight_decay: f64,
    /// AdamW-style decoupled weight decay `p *= 1 - lr * weight_decay` (RAdamW).
    pub decoupled_weight_decay: bool,
    /// Maximize the objective.
    pub maximize: bool,
}

impl Default for RAdamConfig {
    fn default() -> Self {
        RAdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

impl RAdamConfig {
    /// The defaults with this learning rate.
    pub fn lr(lr: f64) -> Self {
        RAdamConfig {
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
    decoupled: bool,
    maximize: bool,
}

/// Per-parameter state.
#[derive(Clone, Debug)]
pub(crate) struct PState {
    step: f32,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

impl Rule for Hyper {
    const NAME: &'static str = "RAdam";
    const GROUP_OPTIONS: &'static [&'static str] = &[
        "lr",
        "betas",
        "eps",
        "weight_decay",
        "maximize",
        "decoupled_weight_decay",
    ];
    const KEYS: &'static [&'static str] = &[
        "betas",
        "eps",
        "weight_decay",
        "maximize",
        "decoupled_weight_decay",
    ];
    const STATE_KEYS: &'static [&'static str] = &["step", "exp_avg", "exp_avg_sq"];
    type Config = RAdamConfig;
    type State = PState;

    fn lr(c: &RAdamConfig) -> f64 {
        c.lr
    }

    fn merge(d: &RAdamConfig, o: &GroupOptions) -> RAdamConfig {
        RAdamConfig {
            lr: o.lr.unwrap_or(d.lr),
            betas: o.betas.unwrap_or(d.betas),
            eps: o.eps.unwrap_or(d.eps),
            weight_decay: o.weight_decay.unwrap_or(d.weight_decay),
            decoupled_weight_decay: o.decoupled_weight_decay.unwrap_or(d.decoupled_weight_decay),
            maximize: o.maximize.unwrap_or(d.maximize),
        }
    }

    fn validate(c: &RAdamConfig) -> Result<()> {
        check_at_least("learning rate", c.lr, 0.0)?;
        check_at_least("epsilon", c.eps, 0.0)?;
        check_beta(0, c.betas.0)?;
        check_beta(1, c.betas.1)?;
        check_at_least("weight_decay", c.weight_decay, 0.0)
    }

    fn from_config(c: &RAdamConfig) -> Self {
        Hyper {
            beta1: PyNum::float(c.betas.0),
            beta2: PyNum::float(c.betas.1),
            eps: PyNum::float(c.eps),
            weight_decay: PyNum::int_if(c.weight_decay, 0.0),
            decoupled: c.decoupled_weight_decay,
            maximize: c.maximize,
        }
    }

    fn config(&self, lr: f64) -> RAdamConfig {
        RAdamConfig {
            lr,
            betas: (self.beta1.value, self.beta2.value),
            eps: self.eps.value,
            weight_decay: self.weight_decay.value,
            decoupled_weight_decay: self.decoupled,
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
            ("maximize", Value::Bool(self.maximize)),
            ("foreach", state::opt_bool_value(m.foreach)),
            ("capturable", Value::Bool(m.capturable)),
            ("decoupled_weight_decay", Value::Bool(self.decoupled)),
            ("differentiable", Value::Bool(m.differentiable)),
        ]
    }

    fn from_group(g: &Dict, gi: usize) -> Result<Self> {
        let (beta1, beta2) = state::betas(g, gi)?;
        Ok(Hyper {
            beta1,
            beta2,
            eps: state::num(g, gi, "eps")?,
            weight_decay: state::num(g, gi, "weight_decay")?,
            decoupled: state::flag(g, gi, "decoupled_weight_decay", false)?,
            maximize: state::flag(g, gi, "maximize", false)?,
        })
    }

    fn init_state(&self, _: &RAdamConfig, param: &Tensor) -> Result<PState> {
        let z = zeros(param, "RAdam state")?;
        Ok(PState {
            step: 0.0,
            exp_avg: z.clone(),
            exp_avg_sq: z,
        })
    }

    fn save_state(s: &PState) -> Result<Vec<(&'static str, Value)>> {
        Ok(vec![
            ("step", state::scalar_value(s.step)?),
            ("exp_avg", Value::from_tensor(&s.exp_avg)?),
            ("exp_avg_sq", Value::from_tensor(&s.exp_avg_sq)?),
        ])
    }

    fn load_state(&self, e: &Dict, p: &Param, where_: &str) -> Result<PState> {
        Ok(PState {
            step: state::step_value(e, where_)?,
            exp_avg: state::tensor(e, "exp_avg", p, where_)?,
            exp_avg_sq: state::tensor(e, "exp_avg_sq", p, where_)?,
        })
    }

    fn tensors_mut(s: &mut PState) -> Vec<&mut Tensor> {
        vec![&mut s.exp_avg, &mut s.exp_avg_sq]
    }

    fn step_of(s: &PState) -> f32 {
        s.step
    }

    fn update(&self, lr: f64, s: &mut PState, param: Tensor, grad: Tensor) -> Result<Tensor> {
        let grad = if self.maximize {
            grad.neg().ctx("RAdam maximize")?
        } else {
            grad
        };
        s.step += 1.0;
        let step = s.step as f64;
        let (param, grad) = weight_decay(param, grad, lr, self.weight_decay.value, self.decoupled)?;
        let (beta1, beta2) = (self.beta1.value, self.beta2.value);
        s.exp_avg = lerp(&s.exp_avg, &grad, 1.0 - beta1)?;
        s.exp_avg_sq = addcmul(&scale(&s.exp_avg_sq, beta2)?, &grad, &grad, 1.0 - beta2)?;
        let bias_correction1 = 1.0 - beta1.powf(step);
        let bias_correction2 = 1.0 - beta2.powf(step);
        let bias_corrected_exp_avg = div_scalar(&s.exp_avg, bias_correction1)?;
        // the maximum and the current length of the approximated SMA
        let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
        let rho_t = rho_inf - 2.0 * step * beta2.powf(step) / bias_correction2;
        let update = if rho_t > 5.0 {
            let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .powf(0.5);
            // (bias_correction2 ** 0.5) / (exp_avg_sq.sqrt() + eps): Tensor.__rtruediv__ is
            // reciprocal() * scalar
            let adaptive = s
                .exp_avg_sq
                .sqrt()
                .and_then(|t| t.affine(1.0, self.eps.value))
                .and_then(|t| t.recip())
                .ctx("RAdam adaptive lr")?;
            let adaptive = scale(&adaptive, bias_correction2.powf(0.5))?;
            let u = scale(&bias_corrected_exp_avg, lr)?
                .mul(&adaptive)
                .ctx("RAdam update")?;
            scale(&u, rect)?
        } else {
            scale(&bias_corrected_exp_avg, lr)?
        };
        add_scaled(&param, &update, -1.0)
    }
}

rule_optimizer!(
    /// `torch.optim.RAdam` (single-tensor path): `step += 1`; weight decay (L2 into the
    /// gradient, or decoupled `p *= 1 - lr * weight_decay`); Adam's moments;
    /// `rho_inf = 2 / (1 - beta2) - 1`, `rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)`;
    /// when `rho_t > 5` the rectified adaptive step
    /// `p -= exp_avg / (1 - beta1^t) * lr * sqrt(1 - beta2^t) / (sqrt(exp_avg_sq) + eps) * rect`,
    /// else the un-adapted `p -= exp_avg / (1 - beta1^t) * lr`.
    ///
    /// State per stepped parameter: `step` (a 0-dim `float32` CPU tensor), `exp_avg`,
    /// `exp_avg_sq`.
    RAdam,
    Hyper,
    RAdamConfig,
    "RAdam"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Optimizer;
    use crate::optim::test_support::{grads, keys, param, vals};

    #[test]
    fn early_steps_are_unadapted_and_layout_matches_pytorch() {
        let w = param(&[1.0]);
        let mut opt = RAdam::new(vec![("w".into(), w.clone())], RAdamConfig::lr(0.1)).unwrap();
        // step 1: rho_t = 1 <= 5, so p -= lr * exp_avg / (1 - beta1) = lr * g
        opt.step(&grads(&[(&w, &[2.0])])).unwrap();
        assert!((vals(&w)[0] - 0.8).abs() < 1e-6, "{:?}", vals(&w));
        let sd = opt.state_dict().unwrap();
        let g = &sd.get("param_groups").unwrap().as_seq().unwrap()[0];
        assert_eq!(
            keys(g),
            [
                "lr",
                "betas",
                "eps",
                "weight_decay",
                "maximize",
                "foreach",
                "capturable",
                "decoupled_weight_decay",
                "differentiable",
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
        assert_eq!(keys(e), ["step", "exp_avg", "exp_avg_sq"]);
    }
}
