//! torchvision's MobileNetV2 (`torchvision/models/mobilenetv2.py`): `features` (stem,
//! seventeen `InvertedResidual` blocks, 1×1 conv to 1280), `classifier` = Dropout(0.2),
//! Linear (`classifier.1`, the head).

use super::ZooConfig;
use super::misc::{conv_norm_activation, for_each, init_conv, init_linear_normal, make_divisible};
use crate::error::{Context, Result};
use crate::nn::{
    BatchNorm2d, BatchNormConfig, Conv2d, Conv2dConfig, Dropout, Linear, Module, ReLU6, Sequential,
};
use candle_core::Tensor;

fn relu6() -> Box<dyn Module> {
    Box::new(ReLU6::new())
}

/// torchvision's MobileNetV2 `InvertedResidual(inp, oup, stride, expand_ratio)`: optional 1×1
/// expansion, 3×3 depthwise, 1×1 linear projection (`conv.N.*` keys), plus the input when the
/// shape is kept.
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "InvertedResidual")]
pub struct InvertedResidual {
    conv: Sequential,
    #[module(skip)]
    use_res_connect: bool,
}

impl InvertedResidual {
    /// The block.
    ///
    /// # Errors
    /// `K0003` for zero channels.
    pub fn new(inp: usize, oup: usize, stride: usize, expand_ratio: usize) -> Result<Self> {
        let hidden = inp * expand_ratio;
        let bn = BatchNormConfig::default();
        let mut conv = Sequential::new();
        if expand_ratio != 1 {
            conv.push(Box::new(conv_norm_activation(
                inp,
                hidden,
                1,
                1,
                1,
                bn,
                Some(relu6),
            )?));
        }
        conv.push(Box::new(conv_norm_activation(
            hidden,
            hidden,
            3,
            stride,
            hidden,
            bn,
            Some(relu6),
        )?));
        let project = Conv2dConfig {
            bias: false,
            ..Default::default()
        };
        conv.push(Box::new(Conv2d::new(hidden, oup, 1, project)?));
        conv.push(Box::new(BatchNorm2d::new(oup)?));
        Ok(InvertedResidual {
            conv,
            use_res_connect: stride == 1 && inp == oup,
        })
    }

    /// Runs the block.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv.forward(x)?;
        if self.use_res_connect {
            (x + y).ctx("InvertedResidual residual")
        } else {
            Ok(y)
        }
    }
}

/// MobileNetV2 (width multiplier 1.0).
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "MobileNetV2")]
pub struct MobileNetV2 {
    features: Sequential,
    classifier: Sequential,
}

impl MobileNetV2 {
    /// `mobilenet_v2(num_classes, width_mult=1.0, dropout=0.2)` with torchvision's
    /// initialisation.
    ///
    /// # Errors
    /// `K0003` for zero classes or channels.
    pub fn new(cfg: ZooConfig) -> Result<Self> {
        let setting: [(usize, usize, usize, usize); 7] = [
            (1, 16, 1, 1),
            (6, 24, 2, 2),
            (6, 32, 3, 2),
            (6, 64, 4, 2),
            (6, 96, 3, 1),
            (6, 160, 3, 2),
            (6, 320, 1, 1),
        ];
        let bn = BatchNormConfig::default();
        let mut input = make_divisible(32.0, 8, None);
        let last = make_divisible(1280.0, 8, None);
        let mut features = Sequential::new();
        features.push(Box::new(conv_norm_activation(
            cfg.in_channels,
            input,
            3,
            2,
            1,
            bn,
            Some(relu6),
        )?));
        for (t, c, n, s) in setting {
            let out = make_divisible(c as f64, 8, None);
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                features.push(Box::new(InvertedResidual::new(input, out, stride, t)?));
                input = out;
            }
        }
        features.push(Box::new(conv_norm_activation(
            input,
            last,
            1,
            1,
            1,
            bn,
            Some(relu6),
        )?));
        let classifier = Sequential::new().with(Dropout::new(0.2)?).with(Linear::new(
            last,
            cfg.num_classes,
            true,
        )?);
        let m = MobileNetV2 {
            features,
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
        let x = self.features.forward(x)?;
        let x = x
            .mean_keepdim(3)
            .and_then(|x| x.mean_keepdim(2))
            .and_then(|x| x.flatten_from(1))
            .ctx("MobileNetV2 pooling")?;
        self.classifier.forward(&x)
    }
}
