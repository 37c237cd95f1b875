//! `InstanceNorm2d` (PyTorch's `nn.InstanceNorm2d`): each sample's channels are normalised
//! over their own `H × W` positions (biased variance). PyTorch's defaults: `affine=False`,
//! `track_running_stats=False`. With running statistics, training mode updates them from the
//! batch's per-instance statistics averaged over the batch (unbiased variance, `momentum`;
//! `momentum=None` means no update, as in PyTorch, and `num_batches_tracked` stays 0) and
//! evaluation mode normalises with them.

use super::group_norm::{affine_channels, affine_params, normalize};
use super::{ModeFlag, check_float, impl_as_any, py_bool, py_float};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Buffer, Module, ModuleSpec, Param};
use candle_core::{DType, Device, Tensor};

/// The options of [`InstanceNorm2d`], PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceNormConfig {
    /// Added to the variance; default `1e-5`.
    pub eps: f64,
    /// Running-statistics momentum; default `Some(0.1)`.
    pub momentum: Option<f64>,
    /// Learnable per-channel `weight` / `bias`; default false.
    pub affine: bool,
    /// Keep `running_mean` / `running_var` / `num_batches_tracked`; default false.
    pub track_running_stats: bool,
    /// PyTorch's keyword `bias`: with `affine`, whether there is a `bias`; default true.
    pub bias: bool,
}

impl Default for InstanceNormConfig {
    fn default() -> Self {
        InstanceNormConfig {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: false,
            track_running_stats: false,
            bias: true,
        }
    }
}

/// PyTorch's `nn.InstanceNorm2d` over `[N, C, H, W]` (or unbatched `[C, H, W]`).
///
/// ```
/// use kiln::nn::{InstanceNorm2d, Module};
/// let n = InstanceNorm2d::new(3)?;
/// assert_eq!(n.repr(), "InstanceNorm2d(3, eps=1e-05, momentum=0.1, affine=False, bias=False, track_running_stats=False)");
/// assert!(n.state_dict().is_empty());
/// # Ok::<(), kiln::Error>(())
/// ```
pub struct InstanceNorm2d {
    num_features: usize,
    cfg: InstanceNormConfig,
    weight: Option<Param>,
    bias: Option<Param>,
    running_mean: Option<Buffer>,
    running_var: Option<Buffer>,
    num_batches_tracked: Option<Buffer>,
    training: ModeFlag,
}

impl InstanceNorm2d {
    /// `InstanceNorm2d(num_features)` with PyTorch's defaults.
    ///
    /// # Errors
    /// As [`InstanceNorm2d::with`].
    pub fn new(num_features: usize) -> Result<Self> {
        Self::with(num_features, InstanceNormConfig::default())
    }

    /// With explicit options.
    ///
    /// # Errors
    /// `K0003` for zero features or a negative `eps`.
    pub fn with(num_features: usize, cfg: InstanceNormConfig) -> Result<Self> {
        if num_features == 0 || cfg.eps.is_nan() || cfg.eps < 0.0 {
            return Err(Error::invalid(
                "InstanceNorm2d num_features/eps",
                format!("{num_features}/{}", cfg.eps),
                "num_features >= 1 and eps >= 0",
            ));
        }
        let (weight, bias) = if cfg.affine {
            let (w, b) = affine_params(num_features, "InstanceNorm2d")?;
            (Some(w), cfg.bias.then_some(b))
        } else {
            (None, None)
        };
        let (rm, rv, nbt) = if cfg.track_running_stats {
            let dev = Device::Cpu;
            let c = "InstanceNorm2d";
            (
                Some(Buffer::new(
                    Tensor::zeros(num_features, DType::F32, &dev).ctx(c)?,
                )),
                Some(Buffer::new(
                    Tensor::ones(num_features, DType::F32, &dev).ctx(c)?,
                )),
                Some(Buffer::new(Tensor::new(0i64, &dev).ctx(c)?)),
            )
        } else {
            (None, None, None)
        };
        Ok(InstanceNorm2d {
            num_features,
            cfg,
            weight,
            bias,
            running_mean: rm,
            running_var: rv,
            num_batches_tracked: nbt,
            training: ModeFlag::default(),
        })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing or mistyped entry; as [`InstanceNorm2d::with`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        let momentum = match spec.config.get("momentum") {
            Some(serde_json::Value::Null) => None,
            _ => Some(spec.f64_or("momentum", 0.1)?),
        };
        Self::with(
            spec.usize("num_features")?,
            InstanceNormConfig {
                eps: spec.f64_or("eps", 1e-5)?,
                momentum,
                affine: spec.bool_or("affine", false)?,
                track_running_stats: spec.bool_or("track_running_stats", false)?,
                bias: spec.bool_or("bias", true)?,
            },
        )
    }

    /// The options.
    pub fn config(&self) -> InstanceNormConfig {
        self.cfg
    }

    /// Updates the running statistics from `x [N, C, H, W]` (per-instance statistics, then
    /// the batch average), in `f64`.
    fn update_running(&self, x: &Tensor, me: &str) -> Result<()> {
        let (Some(rm), Some(rv)) = (&self.running_mean, &self.running_var) else {
            return Ok(());
        };
        let m = self.cfg.momentum.unwrap_or(0.0);
        let (n, c, h, w) = x.dims4().ctx(me)?;
        let hw = h * w;
        let xs = x
            .detach()
            .to_dtype(DType::F64)
            .and_then(|t| t.reshape((n, c, hw)))
            .ctx(me)?;
        let mean = xs.mean_keepdim(2).ctx(me)?;
        let ss = xs
            .broadcast_sub(&mean)
            .and_then(|d| d.sqr())
            .and_then(|d| d.sum_keepdim(2))
            .ctx(me)?;
        let var = (ss / (hw.max(2) - 1) as f64).ctx(me)?;
        let bm = mean.squeeze(2).and_then(|t| t.mean(0)).ctx(me)?;
        let bv = var.squeeze(2).and_then(|t| t.mean(0)).ctx(me)?;
        for (buf, batch) in [(rm, bm), (rv, bv)] {
            let old = buf.get();
            let new = old
                .to_dtype(DType::F64)
                .and_then(|o| (o * (1.0 - m))? + (batch.to_device(old.device())? * m)?)
                .and_then(|t| t.to_dtype(old.dtype()))
                .ctx(me)?;
            buf.set(&new)?;
        }
        Ok(())
    }
}

impl Module for InstanceNorm2d {
    fn type_name(&self) -> &'static str {
        "InstanceNorm2d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let me = self.repr();
        check_float(self, x)?;
        let (x4, unbatched) = match x.rank() {
            4 => (x.clone(), false),
            3 => (x.unsqueeze(0).ctx(&me)?, true),
            _ => {
                return Err(Error::InputRank {
                    module: me,
                    expected: "4-D [N, C, H, W] (or unbatched 3-D [C, H, W])".into(),
                    shape: shape_str(x.dims()),
                });
            }
        };
        let c = x4.dims()[1];
        let stateful = self.cfg.affine || self.cfg.track_running_stats;
        if stateful && c != self.num_features {
            return Err(Error::ConvChannels {
                module: me,
                groups: 1,
                weight: format!("[{}]", self.num_features),
                input: shape_str(x.dims()),
                expected: self.num_features,
                got: c,
            });
        }
        let use_batch = self.training.get() || !self.cfg.track_running_stats;
        let y = if use_batch {
            if self.training.get() {
                self.update_running(&x4, &me)?;
            }
            normalize(&x4, &[2, 3], self.cfg.eps, &me)?
        } else {
            let shape = (1, c, 1, 1);
            let get = |b: &Option<Buffer>| -> Result<Tensor> {
                match b {
                    Some(b) => b
                        .get()
                        .to_dtype(x4.dtype())
                        .and_then(|t| t.reshape(shape))
                        .ctx(&me),
                    None => Err(Error::invalid(
                        &me,
                        "no running statistics",
                        "track_running_stats=True",
                    )),
                }
            };
            let (rm, rv) = (get(&self.running_mean)?, get(&self.running_var)?);
            (rv + self.cfg.eps)
                .and_then(|v| v.sqrt())
                .and_then(|s| x4.broadcast_sub(&rm)?.broadcast_div(&s))
                .ctx(&me)?
        };
        let y = affine_channels(y, self.weight.as_ref(), self.bias.as_ref(), &me)?;
        if unbatched {
            y.squeeze(0).ctx(&me)
        } else {
            Ok(y)
        }
    }

    fn local_params(&self) -> Vec<(String, Param)> {
        let mut v = Vec::new();
        if let Some(w) = &self.weight {
            v.push(("weight".to_string(), w.clone()));
        }
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn local_buffers(&self) -> Vec<(String, Buffer)> {
        let mut v = Vec::new();
        for (k, b) in [
            ("running_mean", &self.running_mean),
            ("running_var", &self.running_var),
            ("num_batches_tracked", &self.num_batches_tracked),
        ] {
            if let Some(b) = b {
                v.push((k.to_string(), b.clone()));
            }
        }
        v
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }

    fn training_flag(&self) -> Option<bool> {
        Some(self.training.get())
    }

    fn spec(&self) -> ModuleSpec {
        let s = ModuleSpec::new("InstanceNorm2d")
            .with("num_features", self.num_features)
            .with("eps", self.cfg.eps)
            .with("affine", self.cfg.affine)
            .with("track_running_stats", self.cfg.track_running_stats)
            .with("bias", self.cfg.bias);
        match self.cfg.momentum {
            Some(m) => s.with("momentum", m),
            None => s.with("momentum", serde_json::Value::Null),
        }
    }

    fn extra_repr(&self) -> String {
        let m = match self.cfg.momentum {
            Some(m) => py_float(m),
            None => "None".into(),
        };
        format!(
            "{}, eps={}, momentum={m}, affine={}, bias={}, track_running_stats={}",
            self.num_features,
            py_float(self.cfg.eps),
            py_bool(self.cfg.affine),
            py_bool(self.bias.is_some()),
            py_bool(self.cfg.track_running_stats)
        )
    }

    impl_as_any!();
}
