//! Adagrad with PyTorch's single-tensor (`foreach=False`) update rule and `state_dict` layout.

use super::group::{GroupOptions, check_at_least};
use super::ops::{add_scaled, addcdiv, addcmul};
use super::rule::{Rule, rule_optimizer};
use super::state::{self, GroupMeta, PyNum};
use crate::error::{Context, Result};
use crate::io::{Dict, Value};
use crate::nn::Param;
use candle_core::Tensor;

/// Adagrad's hyper-parameters; [`AdagradConfig::default`] is `torch.optim.Adagrad`'s
/// defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct AdagradConfig {
    /// Learning rate (`>= 0`, default `1e-2`).
    pub lr: f64,
    /// Learning-rate decay: step `t` uses `lr / (1 + (t - 1) * lr_decay)` (`>= 0`, `0`).
    pub lr_decay: f64,
    /// L2 penalty added to the gradient (`>= 0`, `0`).
    pub weight_decay: f64,
    /// Starting value of every element of `sum` (`>= 0`, `0`).
    pub initial_accumulator_value: f64,
    /// Term added to the denominator (`>= 0`, `1e-10`).
    pub eps: f64,
    /// Maximize the objective.
    pub maximize: bool,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

impl AdagradConfig {
    /// The defaults with this learning rate.
    pub fn lr(lr: f64) -> Self {
        AdagradConfig {
            lr,
            ..Default::default()
        }
    }
}

/// One group's settings with their Python types.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Hyper {
    lr_decay: PyNum,
    eps: PyNum,
    weight_decay: PyNum,
    initial_accumulator_value: PyNum,
    maximize: bool,
}

/// Per-parameter state.
#[derive(Clone, Debug)]
pub(crate) struct PState {
    step: f32,
    sum: Tensor,
}

impl Rule for Hyper {
    const NAME: &'static str = "Adagrad";
    const GROUP_OPTIONS: &'static [&'static str] = &[
        "lr",
        "lr_decay",
        "eps",
        "weight_decay",
        "initial_accumulator_value",
        "maximize",
    ];
    const KEYS: &'static [&'static str] = &[
        "lr_decay",
        "eps",
        "weight_decay",
        "initial_accumulator_value",
        "maximize",
    ];
    const STATE_KEYS: &'static [&'static str] = &["step", "sum"];
    const EAGER_STATE: bool = true;
    type Config = AdagradConfig;
    type State = PState;

    fn lr(c: &AdagradConfig) -> f64 {
        c.lr
    }

    fn merge(d: &AdagradConfig, o: &GroupOptions) -> AdagradConfig {
        AdagradConfig {
            lr: o.lr.unwrap_or(d.lr),
            lr_decay: o.lr_decay.unwrap_or(d.lr_decay),
            weight_decay: o.weight_decay.unwrap_or(d.weight_decay),
            initial_accumulator_value: o
                .initial_accumulator_value
                .unwrap_or(d.initial_accumulator_value),
            eps: o.eps.unwrap_or(d.eps),
            maximize: o.maximize.unwrap_or(d.maximize),
        }
    }

    fn validate(c: &AdagradConfig) -> Result<()> {
        check_at_least("learning rate", c.lr, 0.0)?;
        check_at_least("lr_decay", c.lr_decay, 0.0)?;
        check_at_least("weight_decay", c.weight_decay, 0.0)?;
        check_at_least(
            "initial_accumulator_value",
            c.initial_accumulator_value,
            0.0,
        )?;
        check_at_least("epsilon", c.eps, 0.0)
    }

    fn from_config(c: &AdagradConfig) -> Self {
        Hyper {
            lr_decay: PyNum::int_if(c.lr_decay, 0.0),
            eps: PyNum::float(c.eps),
            weight_decay: PyNum::int_if(c.weight_decay, 0.0),
            initial_accumulator_value: PyNum::int_if(c.initial_accumulator_value, 0.0),
            maximize: c.maximize,
        }
    }

    fn config(&self, lr: f64) -> AdagradConfig {
        AdagradConfig {
            lr,
            lr_decay: self.lr_decay.value,
            weight_decay: self.weight_decay.value,
            initial_accumulator_value: self.initial_accumulator_value.value,
            eps: self.eps.value,
            maximize: self.maximize,
        }
    }

    fn group_items(&self, lr: Value, m: &GroupMeta) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", lr),
            ("lr_decay", self.lr_decay.to_value()),
            ("eps", self.eps.to_value()),
            ("weight_decay", self.weight_decay.to_value()),
            (
                "initial_accumulator_value",
                self.initial_accumulator_value.to_value(),
            ),
            ("foreach", state::opt_bool_value(m.foreach)),
            ("maximize", Value::Bool(self.maximize)),
            ("differentiable", Value::Bool(m.differentiable)),
            ("fused", state::opt_bool_value(m.fused)),
        ]
    }

    fn from_group(g: &Dict, gi: usize) -> Result<Self> {
        Ok(Hyper {
            lr_decay: state::num(g, gi, "lr_decay")?,
            eps: state::num(g, gi, "eps")?,
            weight_decay: state::num(g, gi, "weight_decay")?,
            initial_accumulator_value: state::num(g, gi, "initial_accumulator_value")?,
            maximize: state::flag(g, gi, "maximize", false)?,
        })
    }

    /// `sum = full_like(p, initial_accumulator_value)` with the optimizer's own value (a
    /// group's override is stored but unused, as in PyTorch).
    fn init_state(&self, defaults: &AdagradConfig, param: &Tensor) -> Result<PState> {
        let sum = param
            .ones_like()
            .and_then(|t| t.affine(defaults.initial_accumulator_value, 0.0))
            .ctx("Adagrad state")?;
        Ok(PState { step: 0.0, sum })
    }

    fn save_state(s: &PState) -> Result<Vec<(&'static str, Value)>> {
        Ok(vec![
            ("step", state::scalar_value(s.step)?),
            ("sum", Value::from_tensor(&s.sum)?),
        ])
    }

    fn load_state(&self, e: &Dict, p: &Param, where_: &str) -> Result<PState> {
        Ok(PState {
            step: state::step_value(e, where_)?,
            sum: state::tensor(e, "sum", p, where_)?,
        })
    }

    fn tensors_mut(s: &mut PState) -> Vec<&mut Tensor> {
        vec![&mut s.sum]
    }

    fn step_of(s: &PState) -> f32 {
        s.step
    }

    fn update(&self, lr: f64, s: &mut PState, param: Tensor, grad: Tensor) -> Result<Tensor> {
        s.step += 1.0;
        let step = s.step as f64;
        let mut grad = if self.maximize {
            grad.neg().ctx("Adagrad maximize")?
        } else {
            grad
        };
        let wd = self.weight_decay.value;
        if wd != 0.0 {
            grad = add_scaled(&grad, &param, wd)?;
        }
        let clr = lr / (1.0 + (step - 1.0) * self.lr_decay.value);
        // state_sum.addcmul_(grad, grad, value=1); std = state_sum.sqrt().add_(eps)
        s.sum = addcmul(&s.sum, &grad, &grad, 1.0)?;
        let std = s
            .sum
            .sqrt()
            .and_then(|t| t.affine(1.0, self.eps.value))
            .ctx("Adagrad std")?;
        addcdiv(&param, &grad, &std, -clr)
    }
}

rule_optimizer!(
    /// `torch.optim.Adagrad` (single-tensor path, dense gradients): `step += 1`;
    /// `g += weight_decay * p`; `clr = lr / (1 + (step - 1) * lr_decay)`; `sum += g * g`;
    /// `p -= clr * g / (sqrt(sum) + eps)`.
    ///
    /// As in PyTorch, the state of every parameter (`step`, a 0-dim `float32` CPU tensor, and
    /// `sum`) is created at construction, so `state_dict()` lists all parameters before the
    /// first step; parameters of a group added later get their state at their first step.
    Adagrad,
    Hyper,
    AdagradConfig,
    "Adagrad"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::test_support::{grads, keys, param, vals};
    use crate::optim::{GroupSpec, Optimizer};

    #[test]
    fn state_exists_at_construction_with_pytorch_layout() {
        let w = param(&[1.0, 2.0]);
        let f = Param::new(
            &Tensor::new(&[1f32], &candle_core::Device::Cpu).unwrap(),
            false,
        )
        .unwrap();
        let opt = Adagrad::new(
            vec![("w".into(), w.clone()), ("f".into(), f)],
            AdagradConfig {
                initial_accumulator_value: 0.5,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(opt.step_count(&w), Some(0.0));
        let sd = opt.state_dict().unwrap();
        let st = sd.get("state").unwrap();
        assert_eq!(keys(st), ["0", "1"]);
        let e = st.as_dict().unwrap().get_int(0).unwrap();
        assert_eq!(keys(e), ["step", "sum"]);
        let g = &sd.get("param_groups").unwrap().as_seq().unwrap()[0];
        assert_eq!(
            keys(g),
            [
                "lr",
                "lr_decay",
                "eps",
                "weight_decay",
                "initial_accumulator_value",
                "foreach",
                "maximize",
                "differentiable",
                "fused",
                "params"
            ]
        );
        assert_eq!(g.get("lr_decay"), Some(&Value::Int(0)));
        assert_eq!(g.get("initial_accumulator_value"), Some(&Value::Float(0.5)));
    }

    #[test]
    fn first_step_is_lr_times_sign_and_added_groups_start_lazily() {
        let w = param(&[1.0, 1.0]);
        let mut opt = Adagrad::new(vec![("w".into(), w.clone())], AdagradConfig::lr(0.5)).unwrap();
        opt.step(&grads(&[(&w, &[4.0, -0.25])])).unwrap();
        assert_eq!(vals(&w), vec![0.5, 1.5]);
        let b = param(&[2.0]);
        opt.add_param_group_spec(GroupSpec::new(vec![("b".into(), b.clone())]).lr_decay(0.5))
            .unwrap();
        assert_eq!(opt.step_count(&b), None);
        opt.step(&grads(&[(&b, &[1.0])])).unwrap();
        assert_eq!(opt.step_count(&b), Some(1.0));
        assert_eq!(opt.group_config(1).unwrap().lr_decay, 0.5);
    }
}
