//! `LayerNorm2d`: torchvision's `torchvision.models.convnext.LayerNorm2d`, a `LayerNorm` over
//! the channels of an `[N, C, H, W]` image (it permutes to `[N, H, W, C]`, normalises the last
//! dimension and permutes back). Keys `weight` and `bias`, both `[C]`.

use super::{LayerNorm, LayerNormConfig, impl_as_any};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec, Param};
use candle_core::Tensor;

/// Channel-wise layer normalisation of images (ConvNeXt's stem, downsampling layers and head).
///
/// ```
/// use kiln::nn::{LayerNorm2d, Module};
/// let ln = LayerNorm2d::new(96, 1e-6)?;
/// assert_eq!(ln.repr(), "LayerNorm2d((96,), eps=1e-06, elementwise_affine=True)");
/// assert_eq!(ln.state_dict().keys().collect::<Vec<_>>(), ["weight", "bias"]);
/// # Ok::<(), kiln::Error>(())
/// ```
pub struct LayerNorm2d {
    inner: LayerNorm,
}

impl LayerNorm2d {
    /// `LayerNorm2d(num_channels, eps)` (torchvision passes `eps=1e-6` in ConvNeXt), with an
    /// affine weight (ones) and bias (zeros).
    ///
    /// # Errors
    /// `K0003` for zero channels.
    pub fn new(num_channels: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm2d {
            inner: LayerNorm::with(
                &[num_channels],
                LayerNormConfig {
                    eps,
                    ..Default::default()
                },
            )?,
        })
    }

    /// The channel count.
    pub fn num_channels(&self) -> usize {
        self.inner.normalized_shape()[0]
    }

    /// The weight parameter.
    pub fn weight(&self) -> Option<&Param> {
        self.inner.weight()
    }

    /// The bias parameter.
    pub fn bias(&self) -> Option<&Param> {
        self.inner.bias()
    }

    fn from_spec(
        spec: &ModuleSpec,
        _children: Vec<(String, Box<dyn Module>)>,
    ) -> Result<Box<dyn Module>> {
        Ok(Box::new(LayerNorm2d::new(
            spec.usize("num_channels")?,
            spec.f64_or("eps", 1e-6)?,
        )?))
    }
}

inventory::submit! {
    crate::nn::derive_support::Registration::new("LayerNorm2d", LayerNorm2d::from_spec)
}

impl Module for LayerNorm2d {
    fn type_name(&self) -> &'static str {
        "LayerNorm2d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.num_channels();
        if x.rank() != 4 || x.dims()[1] != c {
            return Err(Error::InputRank {
                module: self.repr(),
                expected: format!("4-D [N, {c}, H, W]"),
                shape: shape_str(x.dims()),
            });
        }
        let y = x.permute((0, 2, 3, 1)).ctx("LayerNorm2d permute")?;
        let y = self.inner.forward(&y)?;
        y.permute((0, 3, 1, 2))
            .and_then(|y| y.contiguous())
            .ctx("LayerNorm2d permute")
    }

    fn local_params(&self) -> Vec<(String, Param)> {
        self.inner.local_params()
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("LayerNorm2d")
            .with("num_channels", self.num_channels())
            .with("eps", self.inner.config().eps)
    }

    fn extra_repr(&self) -> String {
        format!(
            "({},), eps={}, elementwise_affine=True",
            self.num_channels(),
            super::py_float(self.inner.config().eps)
        )
    }

    impl_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Each pixel's channel vector is normalised to mean 0, variance 1 (weight 1, bias 0),
    /// and the gradient flows to the input and both parameters.
    #[test]
    fn normalises_over_channels_per_pixel_with_gradients() {
        let ln = LayerNorm2d::new(3, 1e-6).unwrap();
        let x = Var::from_tensor(
            &Tensor::arange(0f32, 24.0, &Device::Cpu)
                .unwrap()
                .sqr()
                .unwrap()
                .reshape((2, 3, 2, 2))
                .unwrap(),
        )
        .unwrap();
        let y = ln.forward(x.as_tensor()).unwrap();
        assert_eq!(y.dims(), &[2, 3, 2, 2]);
        let mean: Vec<Vec<Vec<f32>>> = y.mean(1).unwrap().to_vec3().unwrap();
        assert!(mean.iter().flatten().flatten().all(|m| m.abs() < 1e-5));
        let var: Vec<Vec<Vec<f32>>> = y.sqr().unwrap().mean(1).unwrap().to_vec3().unwrap();
        assert!(
            var.iter()
                .flatten()
                .flatten()
                .all(|v| (v - 1.0).abs() < 1e-4)
        );
        let w = Tensor::arange(0f32, 24.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 2, 2))
            .unwrap();
        let g = (y * w).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(x.as_tensor()).is_some());
        for (n, p) in ln.named_parameters() {
            assert!(p.grad(&g).is_some(), "{n}");
        }
    }

    #[test]
    fn wrong_channel_count_names_the_layer() {
        let ln = LayerNorm2d::new(4, 1e-6).unwrap();
        let x = Tensor::zeros((1, 3, 2, 2), DType::F32, &Device::Cpu).unwrap();
        let e = ln.forward(&x).unwrap_err();
        assert!(e.to_string().contains("LayerNorm2d((4,)"), "{e}");
    }
}
