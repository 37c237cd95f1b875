//! torchvision's VGG (`torchvision/models/vgg.py`): vgg11/13/16/19 and their `_bn` variants.
//! Keys `features.N.*` and `classifier.{0,3,6}.*`; the head is `classifier.6`.

use super::ZooConfig;
use super::misc::{for_each, init_conv, init_linear_normal};
use crate::error::{Context, Result};
use crate::nn::{
    AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Conv2dConfig, Dropout, Linear, MaxPool2d, Module, ReLU,
    Sequential,
};
use candle_core::Tensor;

/// One entry of a VGG configuration: a 3×3 convolution to that many channels, or `None` for
/// a 2×2 max-pool (torchvision's `"M"`).
type Layer = Option<usize>;

const M: Layer = None;

fn c(n: usize) -> Layer {
    Some(n)
}

/// torchvision's `cfgs["A"|"B"|"D"|"E"]`.
fn layers(depth: usize) -> Vec<Layer> {
    match depth {
        11 => vec![
            c(64),
            M,
            c(128),
            M,
            c(256),
            c(256),
            M,
            c(512),
            c(512),
            M,
            c(512),
            c(512),
            M,
        ],
        13 => vec![
            c(64),
            c(64),
            M,
            c(128),
            c(128),
            M,
            c(256),
            c(256),
            M,
            c(512),
            c(512),
            M,
            c(512),
            c(512),
            M,
        ],
        16 => vec![
            c(64),
            c(64),
            M,
            c(128),
            c(128),
            M,
            c(256),
            c(256),
            c(256),
            M,
            c(512),
            c(512),
            c(512),
            M,
            c(512),
            c(512),
            c(512),
            M,
        ],
        _ => vec![
            c(64),
            c(64),
            M,
            c(128),
            c(128),
            M,
            c(256),
            c(256),
            c(256),
            c(256),
            M,
            c(512),
            c(512),
            c(512),
            c(512),
            M,
            c(512),
            c(512),
            c(512),
            c(512),
            M,
        ],
    }
}

/// VGG: `features` (convolutions, optional BatchNorm, ReLU, max-pools), `avgpool` to 7×7 and
/// `classifier` (Linear 25088→4096, ReLU, Dropout, Linear 4096→4096, ReLU, Dropout, Linear
/// → classes).
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "VGG")]
pub struct Vgg {
    features: Sequential,
    avgpool: AdaptiveAvgPool2d,
    classifier: Sequential,
}

impl Vgg {
    /// `vgg{depth}[_bn](num_classes, dropout=0.5)` for `depth` in 11, 13, 16, 19.
    ///
    /// # Errors
    /// `K0003` for another depth or zero classes.
    pub fn new(depth: usize, batch_norm: bool, cfg: ZooConfig) -> Result<Self> {
        if ![11, 13, 16, 19].contains(&depth) {
            return Err(crate::Error::invalid(
                "VGG depth",
                depth,
                "11, 13, 16 or 19",
            ));
        }
        let mut features = Sequential::new();
        let mut cin = cfg.in_channels;
        for l in layers(depth) {
            match l {
                None => features.push(Box::new(MaxPool2d::with(2, 2, 0))),
                Some(v) => {
                    let conv = Conv2dConfig {
                        padding: 1,
                        ..Default::default()
                    };
                    features.push(Box::new(Conv2d::new(cin, v, 3, conv)?));
                    if batch_norm {
                        features.push(Box::new(BatchNorm2d::new(v)?));
                    }
                    features.push(Box::new(ReLU));
                    cin = v;
                }
            }
        }
        let classifier = Sequential::new()
            .with(Linear::new(512 * 7 * 7, 4096, true)?)
            .with(ReLU)
            .with(Dropout::new(0.5)?)
            .with(Linear::new(4096, 4096, true)?)
            .with(ReLU)
            .with(Dropout::new(0.5)?)
            .with(Linear::new(4096, cfg.num_classes, true)?);
        let m = Vgg {
            features,
            avgpool: AdaptiveAvgPool2d::new(7, 7),
            classifier,
        };
        for_each::<Conv2d>(&m, init_conv)?;
        for_each::<Linear>(&m, |l| init_linear_normal(l, 0.01))?;
        Ok(m)
    }

    /// Runs the network: logits `[N, num_classes]`.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.avgpool.forward(&self.features.forward(x)?)?;
        let x = x.flatten_from(1).ctx("VGG flatten")?;
        self.classifier.forward(&x)
    }
}
