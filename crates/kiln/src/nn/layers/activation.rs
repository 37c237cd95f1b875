//! Activation modules with PyTorch's names, arguments, defaults and printed form; each calls
//! its function in [`crate::nn::functional`]. The `inplace` flag is accepted for
//! compatibility and changes nothing (kiln never overwrites an input).
//!
//! Rust names follow PyTorch's except where clippy's acronym rule forbids an all-caps name:
//! `Elu` (PyTorch `ELU`; `Gelu` in `gelu.rs` likewise); the `type_name` is PyTorch's.

use super::{check_float, impl_as_any, py_float};
use crate::error::{Error, Result};
use crate::nn::functional as F;
use crate::nn::{Module, ModuleSpec};
use candle_core::Tensor;

fn inplace_suffix(inplace: bool) -> &'static str {
    if inplace { ", inplace=True" } else { "" }
}

macro_rules! flag_activation {
    (
        $(#[$doc:meta])*
        $name:ident, $torch:literal, $f:path, repr_inplace = $repr_inplace:literal
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            /// Accepted for PyTorch compatibility; kiln never modifies the input.
            pub inplace: bool,
        }

        impl $name {
            #[doc = concat!("`", $torch, "()`.")]
            pub fn new() -> Self {
                Self::default()
            }

            #[doc = concat!("`", $torch, "(inplace)`; the flag only shows in the spec and printed form.")]
            pub fn with_inplace(inplace: bool) -> Self {
                $name { inplace }
            }

            /// Rebuilds the layer from its [`Module::spec`].
            ///
            /// # Errors
            /// `K0405` for a mistyped `inplace`.
            pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
                Ok($name { inplace: spec.bool_or("inplace", false)? })
            }
        }

        impl Module for $name {
            fn type_name(&self) -> &'static str {
                $torch
            }
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                check_float(self, x)?;
                $f(x)
            }
            fn spec(&self) -> ModuleSpec {
                ModuleSpec::new($torch).with("inplace", self.inplace)
            }
            fn extra_repr(&self) -> String {
                if $repr_inplace && self.inplace {
                    "inplace=True".into()
                } else {
                    String::new()
                }
            }
            impl_as_any!();
        }
    };
}

flag_activation!(
    /// PyTorch's `nn.SiLU`: `x · σ(x)` (also called swish).
    SiLU, "SiLU", F::silu, repr_inplace = true
);
flag_activation!(
    /// PyTorch's `nn.Hardswish`: `x · relu6(x + 3) / 6`.
    Hardswish, "Hardswish", F::hardswish, repr_inplace = false
);
flag_activation!(
    /// PyTorch's `nn.Hardsigmoid`: `relu6(x + 3) / 6`.
    Hardsigmoid, "Hardsigmoid", F::hardsigmoid, repr_inplace = false
);
flag_activation!(
    /// PyTorch's `nn.Mish`: `x · tanh(softplus(x))`.
    Mish, "Mish", F::mish, repr_inplace = true
);
flag_activation!(
    /// PyTorch's `nn.ReLU6`: `min(max(x, 0), 6)`.
    ReLU6, "ReLU6", F::relu6, repr_inplace = true
);

macro_rules! plain_activation {
    ($(#[$doc:meta])* $name:ident, $torch:literal, $f:path) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        impl Module for $name {
            fn type_name(&self) -> &'static str {
                $torch
            }
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                check_float(self, x)?;
                $f(x)
            }
            fn spec(&self) -> ModuleSpec {
                ModuleSpec::new($torch)
            }
            impl_as_any!();
        }
    };
}

plain_activation!(
    /// PyTorch's `nn.Sigmoid`: `1 / (1 + e^(−x))`.
    Sigmoid, "Sigmoid", F::sigmoid
);
plain_activation!(
    /// PyTorch's `nn.Tanh`.
    Tanh, "Tanh", F::tanh
);

/// PyTorch's `nn.LeakyReLU(negative_slope=0.01)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyReLU {
    /// The slope for `x <= 0`.
    pub negative_slope: f64,
    /// Accepted for PyTorch compatibility; kiln never modifies the input.
    pub inplace: bool,
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU {
            negative_slope: 0.01,
            inplace: false,
        }
    }
}

impl LeakyReLU {
    /// `LeakyReLU(negative_slope)`.
    pub fn new(negative_slope: f64) -> Self {
        LeakyReLU {
            negative_slope,
            inplace: false,
        }
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a mistyped entry.
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        Ok(LeakyReLU {
            negative_slope: spec.f64_or("negative_slope", 0.01)?,
            inplace: spec.bool_or("inplace", false)?,
        })
    }
}

impl Module for LeakyReLU {
    fn type_name(&self) -> &'static str {
        "LeakyReLU"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_float(self, x)?;
        F::leaky_relu(x, self.negative_slope)
    }
    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("LeakyReLU")
            .with("negative_slope", self.negative_slope)
            .with("inplace", self.inplace)
    }
    fn extra_repr(&self) -> String {
        format!(
            "negative_slope={}{}",
            py_float(self.negative_slope),
            inplace_suffix(self.inplace)
        )
    }
    impl_as_any!();
}

/// PyTorch's `nn.ELU(alpha=1.0)`: `x` for `x > 0`, else `alpha · (e^x − 1)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Elu {
    /// The scale of the negative part.
    pub alpha: f64,
    /// Accepted for PyTorch compatibility; kiln never modifies the input.
    pub inplace: bool,
}

impl Default for Elu {
    fn default() -> Self {
        Elu {
            alpha: 1.0,
            inplace: false,
        }
    }
}

impl Elu {
    /// `ELU(alpha)`.
    pub fn new(alpha: f64) -> Self {
        Elu {
            alpha,
            inplace: false,
        }
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a mistyped entry.
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        Ok(Elu {
            alpha: spec.f64_or("alpha", 1.0)?,
            inplace: spec.bool_or("inplace", false)?,
        })
    }
}

impl Module for Elu {
    fn type_name(&self) -> &'static str {
        "ELU"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_float(self, x)?;
        F::elu(x, self.alpha)
    }
    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("ELU")
            .with("alpha", self.alpha)
            .with("inplace", self.inplace)
    }
    fn extra_repr(&self) -> String {
        format!(
            "alpha={}{}",
            py_float(self.alpha),
            inplace_suffix(self.inplace)
        )
    }
    impl_as_any!();
}

/// PyTorch's `nn.Softplus(beta=1.0, threshold=20.0)`: `log(1 + e^(beta·x)) / beta`, linear
/// where `beta · x > threshold`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softplus {
    /// `beta` (non-zero).
    pub beta: f64,
    /// Above `beta · x > threshold` the output is `x`.
    pub threshold: f64,
}

impl Default for Softplus {
    fn default() -> Self {
        Softplus {
            beta: 1.0,
            threshold: 20.0,
        }
    }
}

impl Softplus {
    /// `Softplus(beta, threshold)`.
    ///
    /// # Errors
    /// `K0003` for `beta == 0`.
    pub fn new(beta: f64, threshold: f64) -> Result<Self> {
        if beta == 0.0 {
            return Err(Error::invalid("Softplus beta", beta, "a non-zero number"));
        }
        Ok(Softplus { beta, threshold })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a mistyped entry; `K0003` for `beta == 0`.
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        Softplus::new(spec.f64_or("beta", 1.0)?, spec.f64_or("threshold", 20.0)?)
    }
}

impl Module for Softplus {
    fn type_name(&self) -> &'static str {
        "Softplus"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_float(self, x)?;
        F::softplus(x, self.beta, self.threshold)
    }
    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("Softplus")
            .with("beta", self.beta)
            .with("threshold", self.threshold)
    }
    fn extra_repr(&self) -> String {
        format!(
            "beta={}, threshold={}",
            py_float(self.beta),
            py_float(self.threshold)
        )
    }
    impl_as_any!();
}

macro_rules! dim_activation {
    ($(#[$doc:meta])* $name:ident, $torch:literal, $f:path) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            /// The dimension it normalises over (negative counts from the end).
            pub dim: isize,
        }

        impl $name {
            #[doc = concat!("`", $torch, "(dim)`. PyTorch's `dim=None` (an implicit, deprecated choice) has no equivalent: name the dimension.")]
            pub fn new(dim: isize) -> Self {
                $name { dim }
            }

            /// Rebuilds the layer from its [`Module::spec`].
            ///
            /// # Errors
            /// `K0405` for a missing or non-integer `dim`.
            pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
                let dim = spec
                    .config
                    .get("dim")
                    .and_then(serde_json::Value::as_i64)
                    .ok_or_else(|| Error::BadSpec {
                        detail: format!("{}: config 'dim' is missing or not an integer", $torch),
                    })?;
                Ok($name { dim: dim as isize })
            }
        }

        impl Module for $name {
            fn type_name(&self) -> &'static str {
                $torch
            }
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                check_float(self, x)?;
                $f(x, self.dim).map_err(|e| match e {
                    Error::InvalidArgument { value, expected, .. } => Error::InvalidArgument {
                        what: format!("{} dim", self.repr()),
                        value,
                        expected,
                    },
                    other => other,
                })
            }
            fn spec(&self) -> ModuleSpec {
                ModuleSpec::new($torch).with("dim", self.dim as i64)
            }
            fn extra_repr(&self) -> String {
                format!("dim={}", self.dim)
            }
            impl_as_any!();
        }
    };
}

dim_activation!(
    /// PyTorch's `nn.Softmax(dim)`: `e^x / Σ e^x` along `dim`, numerically stable.
    Softmax, "Softmax", F::softmax
);
dim_activation!(
    /// PyTorch's `nn.LogSoftmax(dim)`: `x − log Σ e^x` along `dim`, numerically stable.
    LogSoftmax, "LogSoftmax", F::log_softmax
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn printed_forms_match_pytorch() {
        assert_eq!(SiLU::with_inplace(true).repr(), "SiLU(inplace=True)");
        assert_eq!(Hardswish::with_inplace(true).repr(), "Hardswish()");
        assert_eq!(
            LeakyReLU::default().repr(),
            "LeakyReLU(negative_slope=0.01)"
        );
        assert_eq!(
            Elu {
                alpha: 1.0,
                inplace: true
            }
            .repr(),
            "ELU(alpha=1.0, inplace=True)"
        );
        assert_eq!(
            Softplus::default().repr(),
            "Softplus(beta=1.0, threshold=20.0)"
        );
        assert_eq!(Softmax::new(-1).repr(), "Softmax(dim=-1)");
    }

    #[test]
    fn integer_input_and_bad_dim_are_coded_errors() {
        let x = Tensor::zeros(3, DType::I64, &Device::Cpu).unwrap();
        assert_eq!(Sigmoid.forward(&x).unwrap_err().code(), "K0003");
        let x = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        let e = Softmax::new(2).forward(&x).unwrap_err();
        assert_eq!(e.code(), "K0003");
        assert!(
            e.to_string().contains("Softmax(dim=2)") && e.to_string().contains("[-2, 1]"),
            "{e}"
        );
    }
}
