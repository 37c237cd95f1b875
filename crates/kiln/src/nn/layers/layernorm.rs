//! `LayerNorm`: normalisation over the trailing `normalized_shape` dimensions of each sample,
//! PyTorch's `nn.LayerNorm` (same in training and evaluation mode).

use super::{check_input, impl_as_any, py_bool, py_float};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec, Param};
use candle_core::{DType, Device, Tensor};

/// The options of [`LayerNorm`] besides `normalized_shape`, with PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormConfig {
    /// Added to the (biased) variance before the square root; default `1e-5`.
    pub eps: f64,
    /// Learnable per-element `weight` (ones) and, with `bias`, `bias` (zeros); default true.
    pub elementwise_affine: bool,
    /// Whether the affine part has a `bias` (only with `elementwise_affine`); default true.
    pub bias: bool,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        LayerNormConfig {
            eps: 1e-5,
            elementwise_affine: true,
            bias: true,
        }
    }
}

/// `y = (x − E[x]) / √(Var[x] + eps) · weight + bias`, the statistics taken over the last
/// `normalized_shape.len()` dimensions (biased variance). State-dict keys `weight` and `bias`,
/// both of shape `normalized_shape`.
///
/// ```
/// use kiln::nn::{LayerNorm, Module};
/// let ln = LayerNorm::new(&[4, 6])?;
/// assert_eq!(ln.repr(), "LayerNorm((4, 6), eps=1e-05, elementwise_affine=True, bias=True)");
/// let x = candle_core::Tensor::zeros((3, 4, 5), candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// assert_eq!(ln.forward(&x).unwrap_err().code(), "K0208");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LayerNorm {
    normalized_shape: Vec<usize>,
    cfg: LayerNormConfig,
    weight: Option<Param>,
    bias: Option<Param>,
}

impl LayerNorm {
    /// `LayerNorm(normalized_shape)` with PyTorch's defaults.
    ///
    /// # Errors
    /// `K0003` for an empty `normalized_shape` or a zero dimension in it.
    pub fn new(normalized_shape: &[usize]) -> Result<Self> {
        Self::with(normalized_shape, LayerNormConfig::default())
    }

    /// With explicit options.
    ///
    /// # Errors
    /// As [`LayerNorm::new`]; `K0003` for a negative or NaN `eps`.
    pub fn with(normalized_shape: &[usize], cfg: LayerNormConfig) -> Result<Self> {
        if normalized_shape.is_empty() || normalized_shape.contains(&0) {
            return Err(Error::invalid(
                "LayerNorm normalized_shape",
                shape_str(normalized_shape),
                "one or more positive trailing dimensions, e.g. [d_model]",
            ));
        }
        if cfg.eps.is_nan() || cfg.eps < 0.0 {
            return Err(Error::invalid("LayerNorm eps", cfg.eps, "eps >= 0"));
        }
        let dev = Device::Cpu;
        let (weight, bias) = if cfg.elementwise_affine {
            let w = Tensor::ones(normalized_shape, DType::F32, &dev).ctx("LayerNorm")?;
            let b = if cfg.bias {
                let z = Tensor::zeros(normalized_shape, DType::F32, &dev).ctx("LayerNorm")?;
                Some(Param::new(&z, true)?)
            } else {
                None
            };
            (Some(Param::new(&w, true)?), b)
        } else {
            (None, None)
        };
        Ok(LayerNorm {
            normalized_shape: normalized_shape.to_vec(),
            cfg,
            weight,
            bias,
        })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing or mistyped config entry; as [`LayerNorm::with`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        let d = LayerNormConfig::default();
        Self::with(
            &spec.usize_list("normalized_shape")?,
            LayerNormConfig {
                eps: spec.f64_or("eps", d.eps)?,
                elementwise_affine: spec.bool_or("elementwise_affine", d.elementwise_affine)?,
                bias: spec.bool_or("bias", d.bias)?,
            },
        )
    }

    /// `normalized_shape`.
    pub fn normalized_shape(&self) -> &[usize] {
        &self.normalized_shape
    }

    /// The options.
    pub fn config(&self) -> LayerNormConfig {
        self.cfg
    }

    /// The weight parameter, if affine.
    pub fn weight(&self) -> Option<&Param> {
        self.weight.as_ref()
    }

    /// The bias parameter, if any.
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    fn describe(&self) -> String {
        format!("LayerNorm({})", self.extra_repr())
    }

    fn check_shape(&self, x: &Tensor) -> Result<()> {
        let dims = x.dims();
        let k = self.normalized_shape.len();
        if dims.len() < k || dims[dims.len() - k..] != self.normalized_shape[..] {
            let trailing: Vec<String> = self
                .normalized_shape
                .iter()
                .map(|d| d.to_string())
                .collect();
            return Err(Error::NormalizedShape {
                module: self.describe(),
                normalized_shape: shape_str(&self.normalized_shape),
                trailing: trailing.join(", "),
                shape: shape_str(dims),
            });
        }
        Ok(())
    }
}

impl Module for LayerNorm {
    fn type_name(&self) -> &'static str {
        "LayerNorm"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(w) = &self.weight {
            check_input(&self.describe(), x, &w.tensor())?;
        } else if !x.dtype().is_float() {
            return Err(Error::invalid(
                format!("{} input dtype", self.describe()),
                format!("{:?}", x.dtype()),
                "a floating-point tensor",
            ));
        }
        self.check_shape(x)?;
        let rank = x.rank();
        let red: Vec<usize> = (rank - self.normalized_shape.len()..rank).collect();
        let n: usize = self.normalized_shape.iter().product();
        let op = "LayerNorm";
        let mean = (x.sum_keepdim(red.as_slice()).ctx(op)? / n as f64).ctx(op)?;
        let centered = x.broadcast_sub(&mean).ctx(op)?;
        let var = (centered
            .sqr()
            .and_then(|c| c.sum_keepdim(red.as_slice()))
            .ctx(op)?
            / n as f64)
            .ctx(op)?;
        let inv_std = (var + self.cfg.eps)
            .and_then(|v| v.sqrt())
            .and_then(|v| v.recip())
            .ctx(op)?;
        let mut y = centered.broadcast_mul(&inv_std).ctx(op)?;
        if let Some(w) = &self.weight {
            y = y.broadcast_mul(&w.tensor()).ctx(op)?;
        }
        if let Some(b) = &self.bias {
            y = y.broadcast_add(&b.tensor()).ctx(op)?;
        }
        Ok(y)
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
        ModuleSpec::new("LayerNorm")
            .with("normalized_shape", self.normalized_shape.clone())
            .with("eps", self.cfg.eps)
            .with("elementwise_affine", self.cfg.elementwise_affine)
            .with("bias", self.cfg.bias)
    }

    fn extra_repr(&self) -> String {
        let dims: Vec<String> = self
            .normalized_shape
            .iter()
            .map(|d| d.to_string())
            .collect();
        let shape = if dims.len() == 1 {
            format!("({},)", dims[0])
        } else {
            format!("({})", dims.join(", "))
        };
        format!(
            "{shape}, eps={}, elementwise_affine={}, bias={}",
            py_float(self.cfg.eps),
            py_bool(self.cfg.elementwise_affine),
            py_bool(self.cfg.bias)
        )
    }

    impl_as_any!();
}
