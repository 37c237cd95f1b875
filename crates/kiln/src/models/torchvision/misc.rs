//! The building blocks torchvision's models share (`torchvision.ops.misc`):
//! `Conv2dNormActivation`, `SqueezeExcitation`, `Permute`, `_make_divisible`, and the weight
//! initialisations torchvision applies after building a model.

use crate::error::{Context, Error, Result, shape_str};
use crate::nn::layers::impl_as_any;
use crate::nn::{
    AdaptiveAvgPool2d, BatchNorm2d, BatchNormConfig, Conv2d, Conv2dConfig, Linear, Module,
    ModuleSpec, Sequential, init,
};
use candle_core::Tensor;

/// torchvision's `_make_divisible(v, divisor, min_value)`: `v` rounded to the nearest
/// multiple of `divisor` (at least `min_value`, default `divisor`), never more than 10 %
/// below `v`.
pub fn make_divisible(v: f64, divisor: usize, min_value: Option<usize>) -> usize {
    let min_value = min_value.unwrap_or(divisor);
    let d = divisor as f64;
    let rounded = ((v + d / 2.0) as usize / divisor) * divisor;
    let mut new_v = min_value.max(rounded);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

/// What follows the convolution in a [`conv_norm_activation`] block.
pub type Activation = fn() -> Box<dyn Module>;

/// `Conv2dNormActivation(in, out, kernel_size, stride, groups=groups, norm_layer=BatchNorm2d,
/// activation_layer=act)` with torchvision's padding `(k − 1) / 2`, no conv bias: a
/// `Sequential` of the convolution (`0`), the BatchNorm (`1`) and, when given, the activation
/// (`2`), so the keys are torchvision's (`features.0.0.weight`, `features.0.1.running_mean`).
///
/// # Errors
/// `K0003` for channels the groups do not divide.
pub fn conv_norm_activation(
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    bn: BatchNormConfig,
    act: Option<Activation>,
) -> Result<Sequential> {
    let conv = Conv2d::new(
        cin,
        cout,
        kernel,
        Conv2dConfig {
            stride,
            padding: (kernel - 1) / 2,
            groups,
            bias: false,
            ..Default::default()
        },
    )?;
    let mut s = Sequential::new()
        .with(conv)
        .with(BatchNorm2d::with(cout, bn)?);
    if let Some(a) = act {
        s.push(a());
    }
    Ok(s)
}

/// torchvision's `SqueezeExcitation(input_channels, squeeze_channels, activation,
/// scale_activation)`: `x · scale_activation(fc2(activation(fc1(avgpool(x)))))`, with 1×1
/// convolutions `fc1` and `fc2` (keys `fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias`).
#[derive(crate::nn::Module)]
#[module(crate = "crate")]
pub struct SqueezeExcitation {
    avgpool: AdaptiveAvgPool2d,
    fc1: Conv2d,
    fc2: Conv2d,
    activation: Box<dyn Module>,
    scale_activation: Box<dyn Module>,
}

impl SqueezeExcitation {
    /// The block; torchvision's defaults are `ReLU` and `Sigmoid` (MobileNetV3 uses
    /// `Hardsigmoid` for the scale, EfficientNet `SiLU` for the activation).
    ///
    /// # Errors
    /// `K0003` for zero channels.
    pub fn new(
        input_channels: usize,
        squeeze_channels: usize,
        activation: Box<dyn Module>,
        scale_activation: Box<dyn Module>,
    ) -> Result<Self> {
        let one = Conv2dConfig::default();
        Ok(SqueezeExcitation {
            avgpool: AdaptiveAvgPool2d::new(1, 1),
            fc1: Conv2d::new(input_channels, squeeze_channels, 1, one)?,
            fc2: Conv2d::new(squeeze_channels, input_channels, 1, one)?,
            activation,
            scale_activation,
        })
    }

    /// Runs the block.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = self.avgpool.forward(x)?;
        let s = self.activation.forward(&self.fc1.forward(&s)?)?;
        let s = self.scale_activation.forward(&self.fc2.forward(&s)?)?;
        x.broadcast_mul(&s).ctx("SqueezeExcitation scale")
    }
}

/// torchvision's `Permute(dims)` (`torchvision.ops.misc.Permute`): `x.permute(dims)`.
pub struct Permute {
    dims: Vec<usize>,
}

impl Permute {
    /// `Permute(dims)`.
    ///
    /// # Errors
    /// `K0003` unless `dims` is a permutation of `0..dims.len()`.
    pub fn new(dims: &[usize]) -> Result<Self> {
        let mut sorted = dims.to_vec();
        sorted.sort_unstable();
        if sorted.iter().enumerate().any(|(i, &d)| i != d) {
            return Err(Error::invalid(
                "Permute dims",
                format!("{dims:?}"),
                "a permutation of 0..n",
            ));
        }
        Ok(Permute {
            dims: dims.to_vec(),
        })
    }

    fn from_spec(
        spec: &ModuleSpec,
        _children: Vec<(String, Box<dyn Module>)>,
    ) -> Result<Box<dyn Module>> {
        Ok(Box::new(Permute::new(&spec.usize_list("dims")?)?))
    }
}

inventory::submit! {
    crate::nn::derive_support::Registration::new("Permute", Permute::from_spec)
}

impl Module for Permute {
    fn type_name(&self) -> &'static str {
        "Permute"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != self.dims.len() {
            return Err(Error::InputRank {
                module: self.repr(),
                expected: format!("a {}-D tensor", self.dims.len()),
                shape: shape_str(x.dims()),
            });
        }
        x.permute(self.dims.as_slice())
            .and_then(|t| t.contiguous())
            .ctx("Permute")
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("Permute").with("dims", self.dims.clone())
    }

    impl_as_any!();
}

/// torchvision's initialisation of a convolution: `kaiming_normal_(mode="fan_out")`, bias 0.
pub(crate) fn init_conv(c: &Conv2d) -> Result<()> {
    c.kaiming_normal_fan_out()?;
    zero_bias(c.bias())
}

/// `normal_(0, std)` weight, bias 0 (torchvision's Linear init in VGG, MobileNet…).
pub(crate) fn init_linear_normal(l: &Linear, std: f64) -> Result<()> {
    l.weight().set(&init::normal(&l.weight().dims(), std)?)?;
    zero_bias(l.bias())
}

/// `uniform_(-bound, bound)` weight, bias 0 (EfficientNet's classifier).
pub(crate) fn init_linear_uniform(l: &Linear, bound: f64) -> Result<()> {
    l.weight()
        .set(&init::uniform(&l.weight().dims(), -bound, bound)?)?;
    zero_bias(l.bias())
}

/// `trunc_normal_(std=0.02)` weight (cut at ±2, as torch's absolute bounds), bias 0
/// (ConvNeXt, ViT).
pub(crate) fn init_trunc_normal(w: &crate::nn::Param, b: Option<&crate::nn::Param>) -> Result<()> {
    let t = init::normal(&w.dims(), 0.02)?
        .clamp(-2f32, 2f32)
        .ctx("trunc_normal")?;
    w.set(&t)?;
    zero_bias(b)
}

fn zero_bias(b: Option<&crate::nn::Param>) -> Result<()> {
    if let Some(b) = b {
        b.set(&b.tensor().zeros_like().ctx("init bias")?)?;
    }
    Ok(())
}

/// Applies `f` to every module of `m` (itself excluded) that is a `T`.
pub(crate) fn for_each<T: Module>(
    m: &dyn Module,
    mut f: impl FnMut(&T) -> Result<()>,
) -> Result<()> {
    for (_, sub) in m.named_modules() {
        if let Some(t) = sub.as_any().downcast_ref::<T>() {
            f(t)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values checked against torchvision's `_make_divisible`.
    #[test]
    fn make_divisible_matches_torchvision() {
        assert_eq!(make_divisible(32.0, 8, None), 32);
        assert_eq!(make_divisible(16.0 * 1.1, 8, None), 16);
        assert_eq!(make_divisible(40.0 * 1.2, 8, None), 48);
        assert_eq!(make_divisible(24.0 * 1.1, 8, None), 24);
        assert_eq!(make_divisible(320.0 * 1.2, 8, None), 384);
        assert_eq!(make_divisible(3.0, 8, None), 8);
        assert_eq!(make_divisible(100.0, 8, None), 104);
    }

    #[test]
    fn conv_norm_activation_has_torchvision_keys() {
        let s = conv_norm_activation(
            3,
            8,
            3,
            2,
            1,
            BatchNormConfig::default(),
            Some(|| Box::new(crate::nn::ReLU6::new())),
        )
        .unwrap();
        let keys: Vec<String> = s.state_dict().keys().map(str::to_string).collect();
        assert_eq!(
            keys,
            [
                "0.weight",
                "1.weight",
                "1.bias",
                "1.running_mean",
                "1.running_var",
                "1.num_batches_tracked"
            ]
        );
    }
}
