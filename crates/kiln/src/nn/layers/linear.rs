//! `Linear`: `y = x Wᵀ + b`, PyTorch's `nn.Linear`.

use super::{check_input, impl_as_any};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec, Param, init};
use candle_core::Tensor;

/// A fully connected layer with weight `[out_features, in_features]` and optional bias.
pub struct Linear {
    weight: Param,
    bias: Option<Param>,
    in_features: usize,
    out_features: usize,
    /// `training`: kept so `eval()` is recorded even in models without Dropout/BatchNorm.
    mode: super::ModeFlag,
}

impl Linear {
    /// A layer with PyTorch's default initialisation (from kiln's seeded RNG).
    pub fn new(in_features: usize, out_features: usize, bias: bool) -> Result<Self> {
        let w = init::default_weight(&[out_features, in_features])?;
        let b = if bias {
            Some(init::default_bias(out_features, in_features)?)
        } else {
            None
        };
        Self::from_tensors(w, b)
    }

    /// A layer with the given weight `[out, in]` and bias `[out]`.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (out_features, in_features) = weight.dims2().ctx("Linear weight must be 2-D")?;
        if let Some(b) = &bias {
            if b.dims() != [out_features] {
                return Err(Error::invalid(
                    "Linear bias shape",
                    shape_str(b.dims()),
                    format!("[{out_features}]"),
                ));
            }
        }
        Ok(Linear {
            weight: Param::new(&weight, true)?,
            bias: bias.map(|b| Param::new(&b, true)).transpose()?,
            in_features,
            out_features,
            mode: super::ModeFlag::default(),
        })
    }

    /// The weight parameter.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The bias parameter, if any.
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// `in_features`.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// `out_features`.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    fn describe(&self) -> String {
        format!("Linear({})", self.extra_repr())
    }
}

impl Module for Linear {
    fn set_training(&self, training: bool) {
        self.mode.set(training);
    }

    fn training_flag(&self) -> Option<bool> {
        Some(self.mode.get())
    }

    fn type_name(&self) -> &'static str {
        "Linear"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.weight.tensor();
        check_input(&self.describe(), x, &w)?;
        let dims = x.dims();
        let got = dims.last().copied().unwrap_or(0);
        if dims.is_empty() || got != self.in_features {
            let rows = if dims.len() > 1 {
                dims[..dims.len() - 1].iter().product()
            } else {
                1
            };
            return Err(Error::LinearInFeatures {
                module: self.describe(),
                rows,
                got,
                in_features: self.in_features,
                out_features: self.out_features,
            });
        }
        let x2 = if dims.len() == 2 {
            x.clone()
        } else {
            x.reshape(((), self.in_features)).ctx("Linear reshape")?
        };
        let b = self.bias.as_ref().map(Param::tensor);
        // Autocast (`crate::amp::autocast`): input, weight and bias rounded to bf16/f16 on
        // the way in, f32 accumulation, the output rounded once on the way out.
        let amp = crate::amp::autocast::current().is_some();
        let (x2, w, b) = if amp {
            use crate::amp::autocast::{round, round_opt};
            (round(&x2)?, round(&w)?, round_opt(b.as_ref())?)
        } else {
            (x2, w, b)
        };
        let mut y = crate::nn::ops::linear(&x2, &w, b.as_ref())?;
        if amp {
            y = crate::amp::autocast::round(&y)?;
        }
        if dims.len() != 2 {
            let mut out = dims[..dims.len() - 1].to_vec();
            out.push(self.out_features);
            y = y.reshape(out).ctx("Linear reshape")?;
        }
        Ok(y)
    }

    fn local_params(&self) -> Vec<(String, Param)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("Linear")
            .with("in_features", self.in_features)
            .with("out_features", self.out_features)
            .with("bias", self.bias.is_some())
    }

    fn extra_repr(&self) -> String {
        format!(
            "in_features={}, out_features={}, bias={}",
            self.in_features,
            self.out_features,
            if self.bias.is_some() { "True" } else { "False" }
        )
    }

    impl_as_any!();
}
