//! torchvision's MobileNetV3 (`torchvision/models/mobilenetv3.py`), small and large:
//! `features` (Hardswish stem, `InvertedResidual` blocks with optional SqueezeExcitation, 1×1
//! conv), `avgpool`, `classifier` = Linear, Hardswish, Dropout(0.2), Linear (`classifier.3`,
//! the head). BatchNorm uses `eps=0.001, momentum=0.01` as torchvision.

use super::ZooConfig;
use super::misc::{
    SqueezeExcitation, conv_norm_activation, for_each, init_conv, init_linear_normal,
    make_divisible,
};
use crate::error::{Context, Result};
use crate::nn::{
    AdaptiveAvgPool2d, BatchNormConfig, Conv2d, Dropout, Hardsigmoid, Hardswish, Linear, Module,
    ReLU, Sequential,
};
use candle_core::Tensor;

fn hardswish() -> Box<dyn Module> {
    Box::new(Hardswish::new())
}

fn relu() -> Box<dyn Module> {
    Box::new(ReLU)
}

const BN: BatchNormConfig = BatchNormConfig {
    eps: 0.001,
    momentum: Some(0.01),
    affine: true,
    track_running_stats: true,
};

/// One row of torchvision's `InvertedResidualConfig` table: input channels, kernel,
/// expanded channels, output channels, squeeze-excitation, Hardswish (else ReLU), stride.
type Row = (usize, usize, usize, usize, bool, bool, usize);

/// torchvision's MobileNetV3 `InvertedResidual(cnf)`: `block` = optional 1×1 expansion,
/// depthwise conv, optional SqueezeExcitation (Hardsigmoid scale), 1×1 projection; plus the
/// input when the shape is kept.
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "MobileNetV3InvertedResidual")]
pub struct InvertedResidualV3 {
    block: Sequential,
    #[module(skip)]
    use_res_connect: bool,
}

impl InvertedResidualV3 {
    fn new(r: Row) -> Result<Self> {
        let (cin, kernel, exp, out, se, hs, stride) = r;
        let act = if hs { hardswish } else { relu };
        let mut block = Sequential::new();
        if exp != cin {
            block.push(Box::new(conv_norm_activation(
                cin,
                exp,
                1,
                1,
                1,
                BN,
                Some(act),
            )?));
        }
        block.push(Box::new(conv_norm_activation(
            exp,
            exp,
            kernel,
            stride,
            exp,
            BN,
            Some(act),
        )?));
        if se {
            let squeeze = make_divisible((exp / 4) as f64, 8, None);
            block.push(Box::new(SqueezeExcitation::new(
                exp,
                squeeze,
                Box::new(ReLU),
                Box::new(Hardsigmoid::new()),
            )?));
        }
        block.push(Box::new(conv_norm_activation(exp, out, 1, 1, 1, BN, None)?));
        Ok(InvertedResidualV3 {
            block,
            use_res_connect: stride == 1 && cin == out,
        })
    }

    /// Runs the block.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.block.forward(x)?;
        if self.use_res_connect {
            (y + x).ctx("InvertedResidual residual")
        } else {
            Ok(y)
        }
    }
}

const LARGE: [Row; 15] = [
    (16, 3, 16, 16, false, false, 1),
    (16, 3, 64, 24, false, false, 2),
    (24, 3, 72, 24, false, false, 1),
    (24, 5, 72, 40, true, false, 2),
    (40, 5, 120, 40, true, false, 1),
    (40, 5, 120, 40, true, false, 1),
    (40, 3, 240, 80, false, true, 2),
    (80, 3, 200, 80, false, true, 1),
    (80, 3, 184, 80, false, true, 1),
    (80, 3, 184, 80, false, true, 1),
    (80, 3, 480, 112, true, true, 1),
    (112, 3, 672, 112, true, true, 1),
    (112, 5, 672, 160, true, true, 2),
    (160, 5, 960, 160, true, true, 1),
    (160, 5, 960, 160, true, true, 1),
];

const SMALL: [Row; 11] = [
    (16, 3, 16, 16, true, false, 2),
    (16, 3, 72, 24, false, false, 2),
    (24, 3, 88, 24, false, false, 1),
    (24, 5, 96, 40, true, true, 2),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 120, 48, true, true, 1),
    (48, 5, 144, 48, true, true, 1),
    (48, 5, 288, 96, true, true, 2),
    (96, 5, 576, 96, true, true, 1),
    (96, 5, 576, 96, true, true, 1),
];

/// MobileNetV3 (width multiplier 1.0).
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "MobileNetV3")]
pub struct MobileNetV3 {
    features: Sequential,
    avgpool: AdaptiveAvgPool2d,
    classifier: Sequential,
}

impl MobileNetV3 {
    fn build(rows: &[Row], last_channel: usize, cfg: ZooConfig) -> Result<Self> {
        let mut features = Sequential::new();
        let first = rows.first().map_or(16, |r| r.0);
        features.push(Box::new(conv_norm_activation(
            cfg.in_channels,
            first,
            3,
            2,
            1,
            BN,
            Some(hardswish),
        )?));
        for &r in rows {
            features.push(Box::new(InvertedResidualV3::new(r)?));
        }
        let last_in = rows.last().map_or(16, |r| r.3);
        let last_out = 6 * last_in;
        features.push(Box::new(conv_norm_activation(
            last_in,
            last_out,
            1,
            1,
            1,
            BN,
            Some(hardswish),
        )?));
        let classifier = Sequential::new()
            .with(Linear::new(last_out, last_channel, true)?)
            .with(Hardswish::new())
            .with(Dropout::new(0.2)?)
            .with(Linear::new(last_channel, cfg.num_classes, true)?);
        let m = MobileNetV3 {
            features,
            avgpool: AdaptiveAvgPool2d::new(1, 1),
            classifier,
        };
        for_each::<Conv2d>(&m, init_conv)?;
        for_each::<Linear>(&m, |l| init_linear_normal(l, 0.01))?;
        Ok(m)
    }

    /// `mobilenet_v3_large(num_classes, dropout=0.2)`.
    ///
    /// # Errors
    /// `K0003` for zero classes or channels.
    pub fn large(cfg: ZooConfig) -> Result<Self> {
        Self::build(&LARGE, 1280, cfg)
    }

    /// `mobilenet_v3_small(num_classes, dropout=0.2)`.
    ///
    /// # Errors
    /// `K0003` for zero classes or channels.
    pub fn small(cfg: ZooConfig) -> Result<Self> {
        Self::build(&SMALL, 1024, cfg)
    }

    /// Runs the network: logits `[N, num_classes]`.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.avgpool.forward(&self.features.forward(x)?)?;
        let x = x.flatten_from(1).ctx("MobileNetV3 flatten")?;
        self.classifier.forward(&x)
    }
}
