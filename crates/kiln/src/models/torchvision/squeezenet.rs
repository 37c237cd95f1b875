//! torchvision's SqueezeNet 1.1 (`torchvision/models/squeezenet.py`): `features` with `Fire`
//! modules and ceil-mode max-pools, `classifier` = Dropout, the 1×1 `final_conv`
//! (`classifier.1`, the head), ReLU, global average pooling.

use super::ZooConfig;
use crate::error::{Context, Result};
use crate::nn::{
    AdaptiveAvgPool2d, Conv2d, Conv2dConfig, Dropout, MaxPool2d, Module, ReLU, Sequential, init,
};
use candle_core::Tensor;

/// torchvision's `Fire(inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes)`: a 1×1
/// squeeze, then 1×1 and 3×3 expansions concatenated on the channels.
#[derive(crate::nn::Module)]
#[module(crate = "crate")]
pub struct Fire {
    squeeze: Conv2d,
    squeeze_activation: ReLU,
    expand1x1: Conv2d,
    expand1x1_activation: ReLU,
    expand3x3: Conv2d,
    expand3x3_activation: ReLU,
}

impl Fire {
    /// The module.
    ///
    /// # Errors
    /// `K0003` for zero channels.
    pub fn new(inplanes: usize, squeeze: usize, e1: usize, e3: usize) -> Result<Self> {
        let one = Conv2dConfig::default();
        let three = Conv2dConfig { padding: 1, ..one };
        Ok(Fire {
            squeeze: Conv2d::new(inplanes, squeeze, 1, one)?,
            squeeze_activation: ReLU,
            expand1x1: Conv2d::new(squeeze, e1, 1, one)?,
            expand1x1_activation: ReLU,
            expand3x3: Conv2d::new(squeeze, e3, 3, three)?,
            expand3x3_activation: ReLU,
        })
    }

    /// Runs the module.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.squeeze_activation.forward(&self.squeeze.forward(x)?)?;
        let a = self
            .expand1x1_activation
            .forward(&self.expand1x1.forward(&x)?)?;
        let b = self
            .expand3x3_activation
            .forward(&self.expand3x3.forward(&x)?)?;
        Tensor::cat(&[&a, &b], 1).ctx("Fire concatenation")
    }
}

/// SqueezeNet (version 1.1).
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "SqueezeNet")]
pub struct SqueezeNet {
    features: Sequential,
    classifier: Sequential,
}

impl SqueezeNet {
    /// `squeezenet1_1(num_classes, dropout=0.5)`, with torchvision's initialisation
    /// (`kaiming_uniform_` convolutions, `normal_(0, 0.01)` for `final_conv`, zero biases).
    ///
    /// # Errors
    /// `K0003` for zero classes or channels.
    pub fn squeezenet1_1(cfg: ZooConfig) -> Result<Self> {
        let pool = || MaxPool2d::with(3, 2, 0).ceil_mode(true);
        let stem = Conv2dConfig {
            stride: 2,
            ..Default::default()
        };
        let features = Sequential::new()
            .with(Conv2d::new(cfg.in_channels, 64, 3, stem)?)
            .with(ReLU)
            .with(pool())
            .with(Fire::new(64, 16, 64, 64)?)
            .with(Fire::new(128, 16, 64, 64)?)
            .with(pool())
            .with(Fire::new(128, 32, 128, 128)?)
            .with(Fire::new(256, 32, 128, 128)?)
            .with(pool())
            .with(Fire::new(256, 48, 192, 192)?)
            .with(Fire::new(384, 48, 192, 192)?)
            .with(Fire::new(384, 64, 256, 256)?)
            .with(Fire::new(512, 64, 256, 256)?);
        let final_conv = Conv2d::new(512, cfg.num_classes, 1, Conv2dConfig::default())?;
        final_conv
            .weight()
            .set(&init::normal(&final_conv.weight().dims(), 0.01)?)?;
        let classifier = Sequential::new()
            .with(Dropout::new(0.5)?)
            .with(final_conv)
            .with(ReLU)
            .with(AdaptiveAvgPool2d::new(1, 1));
        let m = SqueezeNet {
            features,
            classifier,
        };
        for (name, sub) in m.named_modules() {
            if let Some(c) = sub.as_any().downcast_ref::<Conv2d>() {
                if name != "classifier.1" {
                    let fan_in = init::fans(&c.weight().dims()).0;
                    let bound = (6.0 / fan_in as f64).sqrt();
                    c.weight()
                        .set(&init::uniform(&c.weight().dims(), -bound, bound)?)?;
                }
                if let Some(b) = c.bias() {
                    b.set(&b.tensor().zeros_like().ctx("init bias")?)?;
                }
            }
        }
        Ok(m)
    }

    /// Runs the network: logits `[N, num_classes]`.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.classifier.forward(&self.features.forward(x)?)?;
        x.flatten_from(1).ctx("SqueezeNet flatten")
    }
}
