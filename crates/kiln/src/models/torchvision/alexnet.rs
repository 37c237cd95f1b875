//! torchvision's AlexNet (`torchvision/models/alexnet.py`): keys `features.{0,3,6,8,10}.*`
//! and `classifier.{1,4,6}.*`; the head is `classifier.6`.

use super::ZooConfig;
use crate::error::{Context, Result};
use crate::nn::{
    AdaptiveAvgPool2d, Conv2d, Conv2dConfig, Dropout, Linear, MaxPool2d, Module, ReLU, Sequential,
};
use candle_core::Tensor;

/// AlexNet: `features`, `avgpool` to 6×6, `classifier` (Dropout, Linear 9216→4096, ReLU,
/// Dropout, Linear 4096→4096, ReLU, Linear → classes).
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "AlexNet")]
pub struct AlexNet {
    features: Sequential,
    avgpool: AdaptiveAvgPool2d,
    classifier: Sequential,
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, padding: usize) -> Result<Conv2d> {
    Conv2d::new(
        cin,
        cout,
        k,
        Conv2dConfig {
            stride,
            padding,
            ..Default::default()
        },
    )
}

impl AlexNet {
    /// `alexnet(num_classes, dropout=0.5)` (PyTorch's default layer initialisation, as
    /// torchvision).
    ///
    /// # Errors
    /// `K0003` for zero classes or channels.
    pub fn new(cfg: ZooConfig) -> Result<Self> {
        let features = Sequential::new()
            .with(conv(cfg.in_channels, 64, 11, 4, 2)?)
            .with(ReLU)
            .with(MaxPool2d::with(3, 2, 0))
            .with(conv(64, 192, 5, 1, 2)?)
            .with(ReLU)
            .with(MaxPool2d::with(3, 2, 0))
            .with(conv(192, 384, 3, 1, 1)?)
            .with(ReLU)
            .with(conv(384, 256, 3, 1, 1)?)
            .with(ReLU)
            .with(conv(256, 256, 3, 1, 1)?)
            .with(ReLU)
            .with(MaxPool2d::with(3, 2, 0));
        let classifier = Sequential::new()
            .with(Dropout::new(0.5)?)
            .with(Linear::new(256 * 6 * 6, 4096, true)?)
            .with(ReLU)
            .with(Dropout::new(0.5)?)
            .with(Linear::new(4096, 4096, true)?)
            .with(ReLU)
            .with(Linear::new(4096, cfg.num_classes, true)?);
        Ok(AlexNet {
            features,
            avgpool: AdaptiveAvgPool2d::new(6, 6),
            classifier,
        })
    }

    /// Runs the network: logits `[N, num_classes]`.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.avgpool.forward(&self.features.forward(x)?)?;
        let x = x.flatten_from(1).ctx("AlexNet flatten")?;
        self.classifier.forward(&x)
    }
}
