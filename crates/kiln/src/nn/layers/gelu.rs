//! `Gelu`: PyTorch's `nn.GELU` (exact `erf` form or the tanh approximation). The Rust name
//! avoids an all-caps acronym (clippy); `type_name` is `"GELU"`.

use super::{check_float, impl_as_any};
use crate::error::{Error, Result};
use crate::nn::functional::{self as F, GeluApproximate};
use crate::nn::{Module, ModuleSpec};
use candle_core::Tensor;

/// PyTorch's `nn.GELU`: `x · Φ(x)`, exact (`approximate='none'`, the default) or with the
/// tanh approximation (`approximate='tanh'`).
///
/// ```
/// use kiln::nn::{Gelu, Module};
/// assert_eq!(Gelu::default().repr(), "GELU(approximate='none')");
/// assert_eq!(Gelu::new("tanh")?.repr(), "GELU(approximate='tanh')");
/// assert_eq!(Gelu::new("erf").unwrap_err().code(), "K0003");
/// # Ok::<(), kiln::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gelu {
    /// Which formula.
    pub approximate: GeluApproximate,
}

impl Gelu {
    /// `GELU(approximate=...)` from PyTorch's spelling, `"none"` or `"tanh"`.
    ///
    /// # Errors
    /// `K0003` for any other string.
    pub fn new(approximate: &str) -> Result<Self> {
        Ok(Gelu {
            approximate: GeluApproximate::parse(approximate)?,
        })
    }

    /// `GELU` with the given formula.
    pub fn with(approximate: GeluApproximate) -> Self {
        Gelu { approximate }
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` / `K0003` for a bad `approximate`.
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        match spec.config.get("approximate") {
            None | Some(serde_json::Value::Null) => Ok(Gelu::default()),
            Some(serde_json::Value::String(s)) => Gelu::new(s),
            Some(_) => Err(Error::BadSpec {
                detail: "GELU: config 'approximate' is not a string".into(),
            }),
        }
    }
}

impl Module for Gelu {
    fn type_name(&self) -> &'static str {
        "GELU"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_float(self, x)?;
        F::gelu(x, self.approximate)
    }
    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("GELU").with("approximate", self.approximate.as_str())
    }
    fn extra_repr(&self) -> String {
        format!("approximate='{}'", self.approximate.as_str())
    }
    impl_as_any!();
}
