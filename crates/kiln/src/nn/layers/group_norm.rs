//! `GroupNorm` (PyTorch's `nn.GroupNorm`): each sample's channels are split into
//! `num_groups` groups, normalised over the group's channels and positions (biased
//! variance), then scaled and shifted per channel. Same in training and evaluation mode.

use super::{check_input, impl_as_any, py_bool, py_float};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec, Param};
use candle_core::{DType, Device, Tensor};

/// `(x − mean) / √(var + eps)` with the statistics over the dimensions `red` (biased).
pub(crate) fn normalize(x: &Tensor, red: &[usize], eps: f64, op: &str) -> Result<Tensor> {
    let n: usize = red.iter().map(|&d| x.dims()[d]).product();
    let mean = (x.sum_keepdim(red).ctx(op)? / n as f64).ctx(op)?;
    let centered = x.broadcast_sub(&mean).ctx(op)?;
    let var = (centered.sqr().and_then(|c| c.sum_keepdim(red)).ctx(op)? / n as f64).ctx(op)?;
    (var + eps)
        .and_then(|v| v.sqrt())
        .and_then(|s| centered.broadcast_div(&s))
        .ctx(op)
}

/// Per-channel `weight` / `bias` applied to `[N, C, …]`.
pub(crate) fn affine_channels(
    y: Tensor,
    weight: Option<&Param>,
    bias: Option<&Param>,
    op: &str,
) -> Result<Tensor> {
    let rank = y.rank();
    let shape = |t: Tensor| {
        let mut d = vec![1usize; rank];
        d[1] = t.elem_count();
        t.reshape(d)
    };
    let mut y = y;
    if let Some(w) = weight {
        y = shape(w.tensor())
            .and_then(|w| y.broadcast_mul(&w))
            .ctx(op)?;
    }
    if let Some(b) = bias {
        y = shape(b.tensor())
            .and_then(|b| y.broadcast_add(&b))
            .ctx(op)?;
    }
    Ok(y)
}

/// Ones `weight` and zeros `bias` of length `n` (PyTorch's affine initialisation).
pub(crate) fn affine_params(n: usize, op: &str) -> Result<(Param, Param)> {
    let w = Tensor::ones(n, DType::F32, &Device::Cpu).ctx(op)?;
    let b = Tensor::zeros(n, DType::F32, &Device::Cpu).ctx(op)?;
    Ok((Param::new(&w, true)?, Param::new(&b, true)?))
}

/// PyTorch's `nn.GroupNorm(num_groups, num_channels, eps=1e-5, affine=True, *, bias=True)`
/// over `[N, C, *]`; state-dict keys `weight`, `bias` (`[C]`).
///
/// ```
/// use kiln::nn::{GroupNorm, Module};
/// let gn = GroupNorm::new(2, 6)?;
/// assert_eq!(gn.repr(), "GroupNorm(2, 6, eps=1e-05, affine=True, bias=True)");
/// assert_eq!(GroupNorm::new(4, 6).err().unwrap().code(), "K0003");
/// # Ok::<(), kiln::Error>(())
/// ```
pub struct GroupNorm {
    num_groups: usize,
    num_channels: usize,
    eps: f64,
    weight: Option<Param>,
    bias: Option<Param>,
}

impl GroupNorm {
    /// `GroupNorm(num_groups, num_channels)` with PyTorch's defaults.
    ///
    /// # Errors
    /// As [`GroupNorm::with`].
    pub fn new(num_groups: usize, num_channels: usize) -> Result<Self> {
        Self::with(num_groups, num_channels, 1e-5, true)
    }

    /// `GroupNorm(num_groups, num_channels, eps, affine)`.
    ///
    /// # Errors
    /// `K0003` when `num_channels` is not divisible by `num_groups` (PyTorch:
    /// "num_channels must be divisible by num_groups") or `eps` is negative.
    pub fn with(num_groups: usize, num_channels: usize, eps: f64, affine: bool) -> Result<Self> {
        if num_groups == 0 || num_channels % num_groups != 0 {
            return Err(Error::invalid(
                "GroupNorm num_groups",
                num_groups,
                format!(
                    "a divisor of num_channels={num_channels} (num_channels must be divisible by num_groups)"
                ),
            ));
        }
        if eps.is_nan() || eps < 0.0 {
            return Err(Error::invalid("GroupNorm eps", eps, "eps >= 0"));
        }
        let (weight, bias) = if affine {
            let (w, b) = affine_params(num_channels, "GroupNorm")?;
            (Some(w), Some(b))
        } else {
            (None, None)
        };
        Ok(GroupNorm {
            num_groups,
            num_channels,
            eps,
            weight,
            bias,
        })
    }

    /// PyTorch's keyword `bias=False`: the affine part has a `weight` only.
    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing or mistyped entry; as [`GroupNorm::with`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        let g = Self::with(
            spec.usize("num_groups")?,
            spec.usize("num_channels")?,
            spec.f64_or("eps", 1e-5)?,
            spec.bool_or("affine", true)?,
        )?;
        Ok(if spec.bool_or("bias", true)? {
            g
        } else {
            g.without_bias()
        })
    }

    /// The weight parameter, if affine.
    pub fn weight(&self) -> Option<&Param> {
        self.weight.as_ref()
    }

    /// The bias parameter, if affine.
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }
}

impl Module for GroupNorm {
    fn type_name(&self) -> &'static str {
        "GroupNorm"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let me = self.repr();
        match &self.weight {
            Some(w) => check_input(&me, x, &w.tensor())?,
            None => super::check_float(self, x)?,
        }
        let dims = x.dims().to_vec();
        if dims.len() < 2 || dims[1] != self.num_channels {
            return Err(Error::InputRank {
                module: me,
                expected: format!(
                    "[N, {}, *] (num_channels={})",
                    self.num_channels, self.num_channels
                ),
                shape: shape_str(&dims),
            });
        }
        let rest: usize = dims[2..].iter().product();
        let g = x
            .reshape((
                dims[0],
                self.num_groups,
                (self.num_channels / self.num_groups) * rest,
            ))
            .ctx(&me)?;
        let y = normalize(&g, &[2], self.eps, &me)?
            .reshape(dims.as_slice())
            .ctx(&me)?;
        affine_channels(y, self.weight.as_ref(), self.bias.as_ref(), &me)
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

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("GroupNorm")
            .with("num_groups", self.num_groups)
            .with("num_channels", self.num_channels)
            .with("eps", self.eps)
            .with("affine", self.weight.is_some())
            .with("bias", self.bias.is_some())
    }

    fn extra_repr(&self) -> String {
        format!(
            "{}, {}, eps={}, affine={}, bias={}",
            self.num_groups,
            self.num_channels,
            py_float(self.eps),
            py_bool(self.weight.is_some()),
            py_bool(self.bias.is_some())
        )
    }

    impl_as_any!();
}
