//! RMSprop with PyTorch's single-tensor (`foreach=False`) update rule and `state_dict` layout.

use super::group::{GroupOptions, check_at_least};
use super::ops::{add_scaled, addcdiv, addcmul, lerp, scale};
use super::rule::{Rule, rule_optimizer, zeros};
use super::state::{self, GroupMeta, PyNum};
use crate::error::{Context, Result};
use crate::io::{Dict, Value};
use crate::nn::Param;
use candle_core::Tensor;

/// RMSprop's hyper-parameters; [`RMSpropConfig::default`] is `torch.optim.RMSprop`'s
/// defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct RMSpropConfig {
    /// Learning rate (`>= 0`, default `1e-2`).
    pub lr: f64,
    /// Smoothing constant of the running average of the squared gradient (`>= 0`, `0.99`).
    pub alpha: f64,
    /// Term added to the denominator (`>= 0`, `1e-8`).
    pub eps: f64,
    /// L2 penalty added to the gradient (`>= 0`, `0`).
    pub weight_decay: f64,
    /// Momentum factor (`>= 0`, `0`); above 0 the state keeps a `momentum_buffer`.
    pub momentum: f64,
    /// Normalize by the estimated variance of the gradient (keeps `grad_avg`).
    pub centered: bool,
    /// Maximize the objective.
    pub maximize: bool,
}

impl Default for RMSpropConfig {
    fn default() -> Self {
        RMSpropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

impl RMSpropConfig {
    /// The defaults with this learning rate.
    pub fn lr(lr: f64) -> Self {
        RMSpropConfig {
            lr,
            ..Default::default()
        }
    }
}

/// One group's settings with their Python types.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Hyper {
    alpha: PyNum,
    eps: PyNum,
    weight_decay: PyNum,
    momentum: PyNum,
    centered: bool,
    maximize: bool,
}

/// Per-parameter state.
#[derive(Clone, Debug)]
pub(crate) struct PState {
    step: f32,
    square_avg: Tensor,
    momentum_buffer: Option<Tensor>,
    grad_avg: Option<Tensor>,
}

impl Rule for Hyper {
    const NAME: &'static str = "RMSprop";
    const GROUP_OPTIONS: &'static [&'static str] = &[
        "lr",
        "momentum",
        "alpha",
        "eps",
        "centered",
        "weight_decay",
        "maximize",
    ];
    const KEYS: &'static [&'static str] = &[
        "momentum",
        "alpha",
        "eps",
        "centered",
        "weight_decay",
        "maximize",
    ];
    const STATE_KEYS: &'static [&'static str] =
        &["step", "square_avg", "momentum_buffer", "grad_avg"];
    type Config = RMSpropConfig;
    type State = PState;

    fn lr(c: &RMSpropConfig) -> f64 {
        c.lr
    }

    fn merge(d: &RMSpropConfig, o: &GroupOptions) -> RMSpropConfig {
        RMSpropConfig {
            lr: o.lr.unwrap_or(d.lr),
            alpha: o.alpha.unwrap_or(d.alpha),
            eps: o.eps.unwrap_or(d.eps),
            weight_decay: o.weight_decay.unwrap_or(d.weight_decay),
            momentum: o.momentum.unwrap_or(d.momentum),
            centered: o.centered.unwrap_or(d.centered),
            maximize: o.maximize.unwrap_or(d.maximize),
        }
    }

    fn validate(c: &RMSpropConfig) -> Result<()> {
        check_at_least("learning rate", c.lr, 0.0)?;
        check_at_least("epsilon", c.eps, 0.0)?;
        check_at_least("momentum", c.momentum, 0.0)?;
        check_at_least("weight_decay", c.weight_decay, 0.0)?;
        check_at_least("alpha", c.alpha, 0.0)
    }

    fn from_config(c: &RMSpropConfig) -> Self {
        Hyper {
            alpha: PyNum::float(c.alpha),
            eps: PyNum::float(c.eps),
            weight_decay: PyNum::int_if(c.weight_decay, 0.0),
            momentum: PyNum::int_if(c.momentum, 0.0),
            centered: c.centered,
            maximize: c.maximize,
        }
    }

    fn config(&self, lr: f64) -> RMSpropConfig {
        RMSpropConfig {
            lr,
            alpha: self.alpha.value,
            eps: self.eps.value,
            weight_decay: self.weight_decay.value,
            momentum: self.momentum.value,
            centered: self.centered,
            maximize: self.maximize,
        }
    }

    fn group_items(&self, lr: Value, m: &GroupMeta) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", lr),
            ("momentum", self.momentum.to_value()),
            ("alpha", self.alpha.to_value()),
            ("eps", self.eps.to_value()),
            ("centered", Value::Bool(self.centered)),
            ("weight_decay", self.weight_decay.to_value()),
            ("capturable", Value::Bool(m.capturable)),
            ("foreach", state::opt_bool_value(m.foreach)),
            ("maximize", Value::Bool(self.maximize)),
            ("differentiable", Value::Bool(m.differentiable)),
        ]
    }

    fn from_group(g: &Dict, gi: usize) -> Result<Self> {
        // __setstate__ defaults: momentum 0, centered False
        let momentum = match g.get("momentum") {
            None => PyNum::int_if(0.0, 0.0),
            Some(_) => state::num(g, gi, "momentum")?,
        };
        Ok(Hyper {
            alpha: state::num(g, gi, "alpha")?,
            eps: state::num(g, gi, "eps")?,
            weight_decay: state::num(g, gi, "weight_decay")?,
            momentum,
            centered: state::flag(g, gi, "centered", false)?,
            maximize: state::flag(g, gi, "maximize", false)?,
        })
    }

    fn init_state(&self, _: &RMSpropConfig, param: &Tensor) -> Result<PState> {
        let z = zeros(param, "RMSprop state")?;
        Ok(PState {
            step: 0.0,
            square_avg: z.clone(),
            momentum_buffer: (self.momentum.value > 0.0).then(|| z.clone()),
            grad_avg: self.centered.then_some(z),
        })
    }

    fn save_state(s: &PState) -> Result<Vec<(&'static str, Value)>> {
        let mut items = vec![
            ("step", state::scalar_value(s.step)?),
            ("square_avg", Value::from_tensor(&s.square_avg)?),
        ];
        if let Some(b) = &s.momentum_buffer {
            items.push(("momentum_buffer", Value::from_tensor(b)?));
        }
        if let Some(g) = &s.grad_avg {
            items.push(("grad_avg", Value::from_tensor(g)?));
        }
        Ok(items)
    }

    fn load_state(&self, e: &Dict, p: &Param, where_: &str) -> Result<PState> {
        let opt = |key: &str, needed: bool| -> Result<Option<Tensor>> {
            if needed || e.get(key).is_some() {
                state::tensor(e, key, p, where_).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(PState {
            step: state::step_value(e, where_)?,
            square_avg: state::tensor(e, "square_avg", p, where_)?,
            momentum_buffer: opt("momentum_buffer", self.momentum.value > 0.0)?,
            grad_avg: opt("grad_avg", self.centered)?,
        })
    }

    fn tensors_mut(s: &mut PState) -> Vec<&mut Tensor> {
        let mut v = vec![&mut s.square_avg];
        v.extend(s.momentum_buffer.as_mut());
        v.extend(s.grad_avg.as_mut());
        v
    }

    fn step_of(s: &PState) -> f32 {
        s.step
    }

    fn update(&self, lr: f64, s: &mut PState, param: Tensor, grad: Tensor) -> Result<Tensor> {
        let mut grad = if self.maximize {
            grad.neg().ctx("RMSprop maximize")?
        } else {
            grad
        };
        s.step += 1.0;
        let wd = self.weight_decay.value;
        if wd != 0.0 {
            grad = add_scaled(&grad, &param, wd)?;
        }
        let alpha = self.alpha.value;
        // square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        s.square_avg = addcmul(&scale(&s.square_avg, alpha)?, &grad, &grad, 1.0 - alpha)?;
        let avg = if self.centered {
            let ga = match &s.grad_avg {
                Some(ga) => lerp(ga, &grad, 1.0 - alpha)?,
                None => lerp(&zeros(&grad, "RMSprop grad_avg")?, &grad, 1.0 - alpha)?,
            };
            // square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
            let avg = addcmul(&s.square_avg, &ga, &ga, -1.0)?;
            s.grad_avg = Some(ga);
            avg.sqrt().ctx("RMSprop avg")?
        } else {
            s.square_avg.sqrt().ctx("RMSprop avg")?
        };
        let avg = avg.affine(1.0, self.eps.value).ctx("RMSprop avg")?;
        if self.momentum.value > 0.0 {
            let buf = match &s.momentum_buffer {
                Some(b) => scale(b, self.momentum.value)?,
                None => zeros(&grad, "RMSprop momentum_buffer")?,
            };
            // buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
            let buf = addcdiv(&buf, &grad, &avg, 1.0)?;
            let new = add_scaled(&param, &buf, -lr)?;
            s.momentum_buffer = Some(buf);
            Ok(new)
        } else {
            addcdiv(&param, &grad, &avg, -lr)
        }
    }
}

rule_optimizer!(
    /// `torch.optim.RMSprop` (single-tensor path): `step += 1`; `g += weight_decay * p`;
    /// `square_avg = alpha * square_avg + (1 - alpha) * g * g`; centered:
    /// `grad_avg.lerp_(g, 1 - alpha)`, `avg = sqrt(square_avg - grad_avg^2)`, else
    /// `avg = sqrt(square_avg)`; `avg += eps`; with momentum
    /// `buf = momentum * buf + g / avg`, `p -= lr * buf`, else `p -= lr * g / avg`.
    ///
    /// State per stepped parameter: `step` (a 0-dim `float32` CPU tensor), `square_avg`,
    /// `momentum_buffer` when `momentum > 0`, `grad_avg` when centered.
    RMSprop,
    Hyper,
    RMSpropConfig,
    "RMSprop"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::test_support::{grads, keys, param, vals};
    use crate::optim::{GroupSpec, Optimizer};

    #[test]
    fn invalid_settings_are_k0003() {
        let w = param(&[1.0]);
        for (c, what) in [
            (
                RMSpropConfig {
                    alpha: -0.1,
                    ..Default::default()
                },
                "alpha",
            ),
            (
                RMSpropConfig {
                    momentum: -1.0,
                    ..Default::default()
                },
                "momentum",
            ),
            (RMSpropConfig::lr(f64::NAN), "learning rate"),
        ] {
            let e = RMSprop::new(vec![("w".into(), w.clone())], c).unwrap_err();
            assert_eq!(e.code(), "K0003");
            assert!(e.to_string().contains(what), "{e}");
        }
        let e = RMSprop::with_groups(
            vec![GroupSpec::new(vec![("w".into(), w)]).betas(0.9, 0.99)],
            RMSpropConfig::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("RMSprop has no hyper-parameter 'betas'")
        );
    }

    #[test]
    fn first_step_and_state_layout() {
        let w = param(&[1.0, 1.0]);
        let mut opt = RMSprop::new(
            vec![("w".into(), w.clone())],
            RMSpropConfig {
                lr: 0.1,
                alpha: 0.0,
                eps: 0.0,
                ..Default::default()
            },
        )
        .unwrap();
        // alpha = 0: square_avg = g^2, so the step is lr * sign(g)
        opt.step(&grads(&[(&w, &[3.0, -0.5])])).unwrap();
        assert_eq!(vals(&w), vec![0.9, 1.1]);
        let sd = opt.state_dict().unwrap();
        let g = &sd.get("param_groups").unwrap().as_seq().unwrap()[0];
        assert_eq!(
            keys(g),
            [
                "lr",
                "momentum",
                "alpha",
                "eps",
                "centered",
                "weight_decay",
                "capturable",
                "foreach",
                "maximize",
                "differentiable",
                "params"
            ]
        );
        assert_eq!(g.get("momentum"), Some(&Value::Int(0)));
        let e = sd
            .get("state")
            .unwrap()
            .as_dict()
            .unwrap()
            .get_int(0)
            .unwrap();
        assert_eq!(keys(e), ["step", "square_avg"]);
    }

    #[test]
    fn centered_momentum_round_trip_continues_identically() {
        let mk = || {
            let w = param(&[1.0, -2.0, 0.5]);
            let c = RMSpropConfig {
                lr: 0.01,
                momentum: 0.9,
                centered: true,
                weight_decay: 0.1,
                ..Default::default()
            };
            (w.clone(), RMSprop::new(vec![("w".into(), w)], c).unwrap())
        };
        let (w, mut a) = mk();
        a.step(&grads(&[(&w, &[0.3, -1.0, 2.0])])).unwrap();
        let sd = a.state_dict().unwrap();
        let e = sd
            .get("state")
            .unwrap()
            .as_dict()
            .unwrap()
            .get_int(0)
            .unwrap();
        assert_eq!(
            keys(e),
            ["step", "square_avg", "momentum_buffer", "grad_avg"]
        );
        let (w2, mut b) = mk();
        w2.set(&w.tensor()).unwrap();
        b.load_state_dict(&sd).unwrap();
        assert_eq!(b.state_dict().unwrap(), sd);
        for g in [[0.1f32, 0.2, -0.3], [1.0, -1.0, 0.0]] {
            a.step(&grads(&[(&w, &g)])).unwrap();
            b.step(&grads(&[(&w2, &g)])).unwrap();
        }
        assert_eq!(vals(&w), vals(&w2));
        assert_eq!(b.step_count(&w2), Some(3.0));
    }
}
