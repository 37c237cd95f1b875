//! NAdam with PyTorch's single-tensor (`foreach=False`) update rule and `state_dict` layout.

use super::group::{GroupOptions, check_at_least, check_beta};
use super::ops::{addcdiv, addcmul, div_scalar, lerp, scale, weight_decay};
use super::rule::{Rule, rule_optimizer, zeros};
use super::state::{self, GroupMeta, PyNum};
use crate::error::{Context, Result};
use crate::io::{Dict, Value};
use crate::nn::Param;
use candle_core::Tensor;

/// NAdam's hyper-parameters; [`NAdamConfig::default`] is `torch.optim.NAdam`'s defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct NAdamConfig {
    /// Learning rate (`>= 0`, default `2e-3`).
    pub lr: f64,
    /// Coefficients of the running averages of the gradient and its square (`[0, 1)` each,
    /// `(0.9, 0.999)`).
    pub betas: (f64, f64),
    /// Term added to the denominator (`>= 0`, `1e-8`).
    pub eps: f64,
    /// Weight decay (`>= 0`, `0`): L2 added to the gradient, or decoupled.
    pub weight_decay: f64,
    /// Momentum decay `psi` of the momentum schedule (`>= 0`, `4e-3`).
    pub momentum_decay: f64,
    /// AdamW-style decoupled weight decay `p *= 1 - lr * weight_decay` (NAdamW).
    pub decoupled_weight_decay: bool,
    /// Maximize the objective.
    pub maximize: bool,
}

impl Default for NAdamConfig {
    fn default() -> Self {
        NAdamConfig {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

impl NAdamConfig {
    /// The defaults with this learning rate.
    pub fn lr(lr: f64) -> Self {
        NAdamConfig {
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
    momentum_decay: PyNum,
    decoupled: bool,
    maximize: bool,
}

/// Per-parameter state.
#[derive(Clone, Debug)]
pub(crate) struct PState {
    step: f32,
    /// Product of the momentum coefficients so far (a 0-dim `float32` CPU tensor in PyTorch).
    mu_product: f32,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

impl Rule for Hyper {
    const NAME: &'static str = "NAdam";
    const GROUP_OPTIONS: &'static [&'static str] = &[
        "lr",
        "betas",
        "eps",
        "weight_decay",
        "momentum_decay",
        "decoupled_weight_decay",
        "maximize",
    ];
    const KEYS: &'static [&'static str] = &[
        "betas",
        "eps",
        "weight_decay",
        "momentum_decay",
        "decoupled_weight_decay",
        "maximize",
    ];
    const STATE_KEYS: &'static [&'static str] = &["step", "mu_product", "exp_avg", "exp_avg_sq"];
    type Config = NAdamConfig;
    type State = PState;

    fn lr(c: &NAdamConfig) -> f64 {
        c.lr
    }

    fn merge(d: &NAdamConfig, o: &GroupOptions) -> NAdamConfig {
        NAdamConfig {
            lr: o.lr.unwrap_or(d.lr),
            betas: o.betas.unwrap_or(d.betas),
            eps: o.eps.unwrap_or(d.eps),
            weight_decay: o.weight_decay.unwrap_or(d.weight_decay),
            momentum_decay: o.momentum_decay.unwrap_or(d.momentum_decay),
            decoupled_weight_decay: o.decoupled_weight_decay.unwrap_or(d.decoupled_weight_decay),
            maximize: o.maximize.unwrap_or(d.maximize),
        }
    }

    fn validate(c: &NAdamConfig) -> Result<()> {
        check_at_least("learning rate", c.lr, 0.0)?;
        check_at_least("epsilon", c.eps, 0.0)?;
        check_beta(0, c.betas.0)?;
        check_beta(1, c.betas.1)?;
        check_at_least("weight_decay", c.weight_decay, 0.0)?;
        check_at_least("momentum_decay", c.momentum_decay, 0.0)
    }

    fn from_config(c: &NAdamConfig) -> Self {
        Hyper {
            beta1: PyNum::float(c.betas.0),
            beta2: PyNum::float(c.betas.1),
            eps: PyNum::float(c.eps),
            weight_decay: PyNum::int_if(c.weight_decay, 0.0),
            momentum_decay: PyNum::float(c.momentum_decay),
            decoupled: c.decoupled_weight_decay,
            maximize: c.maximize,
        }
    }

    fn config(&self, lr: f64) -> NAdamConfig {
        NAdamConfig {
            lr,
            betas: (self.beta1.value, self.beta2.value),
            eps: self.eps.value,
            weight_decay: self.weight_decay.value,
            momentum_decay: self.momentum_decay.value,
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
            ("momentum_decay", self.momentum_decay.to_value()),
            ("decoupled_weight_decay", Value::Bool(self.decoupled)),
            ("maximize", Value::Bool(self.maximize)),
            ("foreach", state::opt_bool_value(m.foreach)),
            ("capturable", Value::Bool(m.capturable)),
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
            momentum_decay: state::num(g, gi, "momentum_decay")?,
            decoupled: state::flag(g, gi, "decoupled_weight_decay", false)?,
            maximize: state::flag(g, gi, "maximize", false)?,
        })
    }

    fn init_state(&self, _: &NAdamConfig, param: &Tensor) -> Result<PState> {
        let z = zeros(param, "NAdam state")?;
        Ok(PState {
            step: 0.0,
            mu_product: 1.0,
            exp_avg: z.clone(),
            exp_avg_sq: z,
        })
    }

    fn save_state(s: &PState) -> Result<Vec<(&'static str, Value)>> {
        Ok(vec![
            ("step", state::scalar_value(s.step)?),
            ("mu_product", state::scalar_value(s.mu_product)?),
            ("exp_avg", Value::from_tensor(&s.exp_avg)?),
            ("exp_avg_sq", Value::from_tensor(&s.exp_avg_sq)?),
        ])
    }

    fn load_state(&self, e: &Dict, p: &Param, where_: &str) -> Result<PState> {
        Ok(PState {
            step: state::step_value(e, where_)?,
            mu_product: state::scalar(e, "mu_product", where_)?,
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
            grad.neg().ctx("NAdam maximize")?
        } else {
            grad
        };
        s.step += 1.0;
        let step = s.step as f64;
        let (beta1, beta2) = (self.beta1.value, self.beta2.value);
        let bias_correction2 = 1.0 - beta2.powf(step);
        let (param, grad) = weight_decay(param, grad, lr, self.weight_decay.value, self.decoupled)?;
        // the momentum cache mu^t and mu^{t+1}
        let psi = self.momentum_decay.value;
        let mu = beta1 * (1.0 - 0.5 * 0.96f64.powf(step * psi));
        let mu_next = beta1 * (1.0 - 0.5 * 0.96f64.powf((step + 1.0) * psi));
        // mu_product *= mu: a float32 tensor times a Python float, in float32
        s.mu_product *= mu as f32;
        s.exp_avg = lerp(&s.exp_avg, &grad, 1.0 - beta1)?;
        s.exp_avg_sq = addcmul(&scale(&s.exp_avg_sq, beta2)?, &grad, &grad, 1.0 - beta2)?;
        // denom = exp_avg_sq.div(bias_correction2).sqrt(); denom.add_(eps)
        let denom = div_scalar(&s.exp_avg_sq, bias_correction2)?
            .sqrt()
            .and_then(|d| d.affine(1.0, self.eps.value))
            .ctx("NAdam denom")?;
        let mu_product = s.mu_product as f64;
        let mu_product_next = mu_product * mu_next;
        let param = addcdiv(&param, &grad, &denom, -lr * (1.0 - mu) / (1.0 - mu_product))?;
        addcdiv(
            &param,
            &s.exp_avg,
            &denom,
            (-lr * mu_next) / (1.0 - mu_product_next),
        )
    }
}

rule_optimizer!(
    /// `torch.optim.NAdam` (single-tensor path): `step += 1`; weight decay (L2 into the
    /// gradient, or decoupled `p *= 1 - lr * weight_decay`);
    /// `mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))`, `mu_product *= mu_t`;
    /// Adam's moments; `denom = sqrt(exp_avg_sq / (1 - beta2^t)) + eps`;
    /// `p -= lr * (1 - mu_t) / (1 - mu_product) * g / denom`, then
    /// `p -= lr * mu_{t+1} / (1 - mu_product * mu_{t+1}) * exp_avg / denom`.
    ///
    /// State per stepped parameter: `step` and `mu_product` (0-dim `float32` CPU tensors),
    /// `exp_avg`, `exp_avg_sq`.
    NAdam,
    Hyper,
    NAdamConfig,
    "NAdam"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::test_support::{grads, keys, param};
    use crate::optim::{GroupSpec, Optimizer};

    #[test]
    fn state_layout_and_decoupled_group_override() {
        let w = param(&[1.0, 2.0]);
        let b = param(&[0.5]);
        let mut opt = NAdam::with_groups(
            vec![
                GroupSpec::new(vec![("w".into(), w.clone())]),
                GroupSpec::new(vec![("b".into(), b.clone())])
                    .decoupled_weight_decay(true)
                    .weight_decay(0.1),
            ],
            NAdamConfig::default(),
        )
        .unwrap();
        opt.step(&grads(&[(&w, &[1.0, -1.0]), (&b, &[0.1])]))
            .unwrap();
        let sd = opt.state_dict().unwrap();
        let e = sd
            .get("state")
            .unwrap()
            .as_dict()
            .unwrap()
            .get_int(0)
            .unwrap();
        assert_eq!(keys(e), ["step", "mu_product", "exp_avg", "exp_avg_sq"]);
        let mp = e.get("mu_product").unwrap().as_tensor().unwrap();
        assert!(mp.shape.is_empty() && mp.dtype() == crate::io::Dtype::F32);
        let gs = sd.get("param_groups").unwrap().as_seq().unwrap();
        assert_eq!(
            keys(&gs[0]),
            [
                "lr",
                "betas",
                "eps",
                "weight_decay",
                "momentum_decay",
                "decoupled_weight_decay",
                "maximize",
                "foreach",
                "capturable",
                "differentiable",
                "params"
            ]
        );
        assert_eq!(
            keys(&gs[1])[..2],
            ["weight_decay", "decoupled_weight_decay"]
        );
        assert!(opt.group_config(1).unwrap().decoupled_weight_decay);
        let e = NAdam::new(
            vec![("w".into(), w)],
            NAdamConfig {
                momentum_decay: -1.0,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("momentum_decay"), "{e}");
    }
}
