//! A stop-gap SGD/Adam/AdamW used by [`super::optimizers::build`] until `kiln::optim`'s
//! optimizers land; the update rules are PyTorch's (`torch.optim.SGD`, `Adam`, `AdamW`,
//! single-tensor, `maximize=False`, `amsgrad=False`). State dicts are not supported here.

use super::config::OptimizerKind;
use crate::error::{Context, Error, Result};
use crate::io::Value;
use crate::nn::Param;
use crate::optim::{Grads, Optimizer, ParamGroup};
use candle_core::{Device, Tensor};

/// Hyper-parameters of [`InterimOptimizer`].
#[derive(Clone, Copy, Debug)]
pub struct InterimConfig {
    /// Which update rule.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
}

/// SGD (with momentum), Adam or AdamW over one parameter group.
pub struct InterimOptimizer {
    cfg: InterimConfig,
    groups: Vec<ParamGroup>,
    /// Per parameter: momentum buffer (SGD) or `exp_avg` (Adam), and `exp_avg_sq` (Adam).
    state: Vec<Option<(Tensor, Option<Tensor>)>>,
    steps: Vec<u64>,
}

impl InterimOptimizer {
    /// One group over `params`.
    ///
    /// # Errors
    /// `K0601` when `params` is empty.
    pub fn new(params: Vec<(String, Param)>, cfg: InterimConfig) -> Result<Self> {
        if params.is_empty() {
            return Err(Error::EmptyParameterList {
                detail: String::new(),
            });
        }
        let n = params.len();
        let (names, params) = params.into_iter().unzip();
        Ok(InterimOptimizer {
            cfg,
            groups: vec![ParamGroup {
                params,
                names,
                lr: cfg.lr,
                initial_lr: None,
            }],
            state: vec![None; n],
            steps: vec![0; n],
        })
    }

    fn update(&mut self, i: usize, p: &Param, g: &Tensor, lr: f64) -> Result<()> {
        let c = self.cfg;
        let w = p.detached();
        let new = match c.kind {
            OptimizerKind::Sgd => {
                let mut d = g.clone();
                if c.weight_decay != 0.0 {
                    d = (d + (&w * c.weight_decay)?)?;
                }
                if c.momentum != 0.0 {
                    let buf = match &self.state[i] {
                        Some((b, _)) => ((b * c.momentum)? + &d)?,
                        None => d.copy()?,
                    };
                    self.state[i] = Some((buf.clone(), None));
                    d = buf;
                }
                (&w - (d * lr)?)?
            }
            OptimizerKind::Adam | OptimizerKind::AdamW => {
                let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
                self.steps[i] += 1;
                let t = self.steps[i] as i32;
                let mut d = g.clone();
                let mut w = w;
                if c.weight_decay != 0.0 {
                    if c.kind == OptimizerKind::AdamW {
                        w = (&w * (1.0 - lr * c.weight_decay))?;
                    } else {
                        d = (d + (&w * c.weight_decay)?)?;
                    }
                }
                let (m, v) = match &self.state[i] {
                    Some((m, Some(v))) => (m.clone(), v.clone()),
                    _ => (d.zeros_like()?, d.zeros_like()?),
                };
                let m = ((m * b1)? + (&d * (1.0 - b1))?)?;
                let v = ((v * b2)? + (d.sqr()? * (1.0 - b2))?)?;
                let bc1 = 1.0 - b1.powi(t);
                let bc2 = 1.0 - b2.powi(t);
                let denom = ((v.sqrt()? / bc2.sqrt())? + eps)?;
                let upd = ((&m / &denom)? * (lr / bc1))?;
                self.state[i] = Some((m, Some(v)));
                (w - upd)?
            }
        };
        p.set(&new)
    }
}

impl Optimizer for InterimOptimizer {
    fn name(&self) -> &'static str {
        match self.cfg.kind {
            OptimizerKind::Sgd => "SGD",
            OptimizerKind::Adam => "Adam",
            OptimizerKind::AdamW => "AdamW",
        }
    }

    fn step(&mut self, grads: &Grads) -> Result<()> {
        let lr = self.groups[0].lr;
        let params = self.groups[0].params.clone();
        for (i, p) in params.iter().enumerate() {
            if let Some(g) = grads.get(p) {
                let g = g.clone();
                self.update(i, p, &g, lr).map_err(|e| match e {
                    Error::Backend { source, .. } => Error::backend("optimizer step", source),
                    other => other,
                })?;
            }
        }
        Ok(())
    }

    fn param_groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    fn set_lr(&mut self, group: usize, lr: f64) {
        if let Some(g) = self.groups.get_mut(group) {
            g.lr = lr;
        }
    }

    fn set_initial_lr(&mut self, group: usize, lr: f64) {
        if let Some(g) = self.groups.get_mut(group) {
            g.initial_lr = Some(lr);
        }
    }

    fn add_param_group(&mut self, _params: Vec<(String, Param)>, _lr: Option<f64>) -> Result<()> {
        Err(Error::Unsupported {
            what: "parameter groups in the interim optimizer".into(),
        })
    }

    fn state_dict(&self) -> Result<Value> {
        Err(Error::Unsupported {
            what: "state_dict of the interim optimizer".into(),
        })
    }

    fn load_state_dict(&mut self, _state: &Value) -> Result<()> {
        Err(Error::Unsupported {
            what: "load_state_dict of the interim optimizer".into(),
        })
    }

    fn to_device(&mut self, device: &Device) -> Result<()> {
        for s in self.state.iter_mut().flatten() {
            s.0 = s.0.to_device(device).ctx("optimizer to_device")?;
            if let Some(v) = &mut s.1 {
                *v = v.to_device(device).ctx("optimizer to_device")?;
            }
        }
        Ok(())
    }
}
