//! `RMSNorm` (PyTorch's `nn.RMSNorm`): `y = x / √(mean(x²) + eps) · weight`, the mean over
//! the trailing `normalized_shape` dimensions. `eps=None` (the default) uses the input
//! dtype's machine epsilon (`torch.finfo(x.dtype).eps`), as PyTorch does.

use super::{check_input, impl_as_any, py_bool, py_float};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec, Param};
use candle_core::{DType, Device, Tensor};

/// PyTorch's `nn.RMSNorm(normalized_shape, eps=None, elementwise_affine=True)`; state-dict
/// key `weight` (ones, shape `normalized_shape`).
///
/// ```
/// use kiln::nn::{Module, RMSNorm};
/// let n = RMSNorm::new(&[6], None, true)?;
/// assert_eq!(n.repr(), "RMSNorm((6,), eps=None, elementwise_affine=True)");
/// # Ok::<(), kiln::Error>(())
/// ```
pub struct RMSNorm {
    normalized_shape: Vec<usize>,
    eps: Option<f64>,
    weight: Option<Param>,
}

/// `torch.finfo(dtype).eps`.
fn machine_eps(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => f64::EPSILON,
        DType::F16 => 0.0009765625,
        DType::BF16 => 0.0078125,
        _ => f32::EPSILON as f64,
    }
}

impl RMSNorm {
    /// `RMSNorm(normalized_shape, eps, elementwise_affine)`.
    ///
    /// # Errors
    /// `K0003` for an empty or zero `normalized_shape` or a negative `eps`.
    pub fn new(
        normalized_shape: &[usize],
        eps: Option<f64>,
        elementwise_affine: bool,
    ) -> Result<Self> {
        if normalized_shape.is_empty() || normalized_shape.contains(&0) {
            return Err(Error::invalid(
                "RMSNorm normalized_shape",
                shape_str(normalized_shape),
                "one or more positive trailing dimensions, e.g. [d_model]",
            ));
        }
        if let Some(e) = eps {
            if e.is_nan() || e < 0.0 {
                return Err(Error::invalid("RMSNorm eps", e, "eps >= 0 or None"));
            }
        }
        let weight = if elementwise_affine {
            let w = Tensor::ones(normalized_shape, DType::F32, &Device::Cpu).ctx("RMSNorm")?;
            Some(Param::new(&w, true)?)
        } else {
            None
        };
        Ok(RMSNorm {
            normalized_shape: normalized_shape.to_vec(),
            eps,
            weight,
        })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing or mistyped entry; as [`RMSNorm::new`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        Self::new(
            &spec.usize_list("normalized_shape")?,
            spec.opt_f64("eps")?,
            spec.bool_or("elementwise_affine", true)?,
        )
    }

    /// The weight parameter, if affine.
    pub fn weight(&self) -> Option<&Param> {
        self.weight.as_ref()
    }
}

impl Module for RMSNorm {
    fn type_name(&self) -> &'static str {
        "RMSNorm"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let me = self.repr();
        match &self.weight {
            Some(w) => check_input(&me, x, &w.tensor())?,
            None => super::check_float(self, x)?,
        }
        let dims = x.dims();
        let k = self.normalized_shape.len();
        if dims.len() < k || dims[dims.len() - k..] != self.normalized_shape[..] {
            let trailing: Vec<String> = self
                .normalized_shape
                .iter()
                .map(|d| d.to_string())
                .collect();
            return Err(Error::NormalizedShape {
                module: me,
                normalized_shape: shape_str(&self.normalized_shape),
                trailing: trailing.join(", "),
                shape: shape_str(dims),
            });
        }
        let rank = dims.len();
        let red: Vec<usize> = (rank - k..rank).collect();
        let n: usize = self.normalized_shape.iter().product();
        let eps = self.eps.unwrap_or_else(|| machine_eps(x.dtype()));
        let ms = (x
            .sqr()
            .and_then(|s| s.sum_keepdim(red.as_slice()))
            .ctx(&me)?
            / n as f64)
            .ctx(&me)?;
        let y = (ms + eps)
            .and_then(|v| v.sqrt())
            .and_then(|r| x.broadcast_div(&r))
            .ctx(&me)?;
        match &self.weight {
            Some(w) => y.broadcast_mul(&w.tensor()).ctx(&me),
            None => Ok(y),
        }
    }

    fn local_params(&self) -> Vec<(String, Param)> {
        self.weight
            .iter()
            .map(|w| ("weight".to_string(), w.clone()))
            .collect()
    }

    fn spec(&self) -> ModuleSpec {
        let s = ModuleSpec::new("RMSNorm")
            .with("normalized_shape", self.normalized_shape.clone())
            .with("elementwise_affine", self.weight.is_some());
        match self.eps {
            Some(e) => s.with("eps", e),
            None => s.with("eps", serde_json::Value::Null),
        }
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
        let eps = self.eps.map_or("None".to_string(), py_float);
        format!(
            "{shape}, eps={eps}, elementwise_affine={}",
            py_bool(self.weight.is_some())
        )
    }

    impl_as_any!();
}
