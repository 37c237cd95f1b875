//! torchvision's EfficientNet B0–B3 (`torchvision/models/efficientnet.py`): `features` (SiLU
//! stem, seven stages of `MBConv` blocks with SqueezeExcitation and StochasticDepth, 1×1
//! conv), `avgpool`, `classifier` = Dropout, Linear (`classifier.1`, the head).

use super::ZooConfig;
use super::misc::{
    SqueezeExcitation, conv_norm_activation, for_each, init_conv, init_linear_uniform,
    make_divisible,
};
use crate::error::{Context, Result};
use crate::nn::{
    AdaptiveAvgPool2d, BatchNormConfig, Conv2d, Dropout, Linear, Module, Sequential, SiLU, Sigmoid,
    StochasticDepth,
};
use candle_core::Tensor;

fn silu() -> Box<dyn Module> {
    Box::new(SiLU::new())
}

/// One `MBConvConfig` before width/depth scaling: expand ratio, kernel, stride, input
/// channels, output channels, layers.
type Stage = (usize, usize, usize, usize, usize, usize);

/// torchvision's `inverted_residual_setting` for B0–B7.
const STAGES: [Stage; 7] = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
];

/// torchvision's `MBConv`: optional 1×1 expansion, depthwise conv, SqueezeExcitation (SiLU,
/// squeeze to a quarter of the input channels), 1×1 projection (`block.N.*` keys); when the
/// shape is kept, `stochastic_depth(block(x)) + x`.
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "MBConv")]
pub struct MbConv {
    block: Sequential,
    stochastic_depth: StochasticDepth,
    #[module(skip)]
    use_res_connect: bool,
}

impl MbConv {
    /// `MBConv` from the scaled configuration.
    ///
    /// # Errors
    /// `K0003` for zero channels or a drop probability outside [0, 1].
    pub fn new(
        expand_ratio: usize,
        kernel: usize,
        stride: usize,
        cin: usize,
        cout: usize,
        stochastic_depth_prob: f64,
    ) -> Result<Self> {
        let bn = BatchNormConfig::default();
        let exp = make_divisible((cin * expand_ratio) as f64, 8, None);
        let mut block = Sequential::new();
        if exp != cin {
            block.push(Box::new(conv_norm_activation(
                cin,
                exp,
                1,
                1,
                1,
                bn,
                Some(silu),
            )?));
        }
        block.push(Box::new(conv_norm_activation(
            exp,
            exp,
            kernel,
            stride,
            exp,
            bn,
            Some(silu),
        )?));
        let squeeze = (cin / 4).max(1);
        block.push(Box::new(SqueezeExcitation::new(
            exp,
            squeeze,
            Box::new(SiLU::new()),
            Box::new(Sigmoid),
        )?));
        block.push(Box::new(conv_norm_activation(
            exp, cout, 1, 1, 1, bn, None,
        )?));
        Ok(MbConv {
            block,
            stochastic_depth: StochasticDepth::new(stochastic_depth_prob, "row")?,
            use_res_connect: stride == 1 && cin == cout,
        })
    }

    /// Runs the block.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.block.forward(x)?;
        if self.use_res_connect {
            (self.stochastic_depth.forward(&y)? + x).ctx("MBConv residual")
        } else {
            Ok(y)
        }
    }
}

/// EfficientNet (B0–B3).
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "EfficientNet")]
pub struct EfficientNet {
    features: Sequential,
    avgpool: AdaptiveAvgPool2d,
    classifier: Sequential,
}

impl EfficientNet {
    /// `efficientnet_b{variant}(num_classes)` for `variant` in 0..=3: width/depth multipliers
    /// (1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), dropout 0.2, 0.2, 0.3, 0.3, stochastic
    /// depth 0.2 (growing linearly with the block index), torchvision's initialisation.
    ///
    /// # Errors
    /// `K0003` for another variant or zero classes.
    pub fn new(variant: usize, cfg: ZooConfig) -> Result<Self> {
        let (width, depth, dropout) = match variant {
            0 => (1.0, 1.0, 0.2),
            1 => (1.0, 1.1, 0.2),
            2 => (1.1, 1.2, 0.3),
            3 => (1.2, 1.4, 0.3),
            other => {
                return Err(crate::Error::invalid(
                    "EfficientNet variant",
                    other,
                    "0, 1, 2 or 3 (b0-b3)",
                ));
            }
        };
        let ch = |c: usize| make_divisible(c as f64 * width, 8, None);
        let stages: Vec<(usize, usize, usize, usize, usize, usize)> = STAGES
            .iter()
            .map(|&(e, k, s, i, o, n)| (e, k, s, ch(i), ch(o), (n as f64 * depth).ceil() as usize))
            .collect();
        let total: usize = stages.iter().map(|s| s.5).sum();
        let bn = BatchNormConfig::default();
        let first = stages.first().map_or(32, |s| s.3);
        let mut features = Sequential::new();
        features.push(Box::new(conv_norm_activation(
            cfg.in_channels,
            first,
            3,
            2,
            1,
            bn,
            Some(silu),
        )?));
        let mut id = 0usize;
        for &(e, k, s, cin, cout, n) in &stages {
            let mut stage = Sequential::new();
            for b in 0..n {
                let (cin, stride) = if b == 0 { (cin, s) } else { (cout, 1) };
                let p = 0.2 * id as f64 / total as f64;
                stage.push(Box::new(MbConv::new(e, k, stride, cin, cout, p)?));
                id += 1;
            }
            features.push(Box::new(stage));
        }
        let last_in = stages.last().map_or(320, |s| s.4);
        let last_out = 4 * last_in;
        features.push(Box::new(conv_norm_activation(
            last_in,
            last_out,
            1,
            1,
            1,
            bn,
            Some(silu),
        )?));
        let classifier = Sequential::new()
            .with(Dropout::new(dropout)?)
            .with(Linear::new(last_out, cfg.num_classes, true)?);
        let m = EfficientNet {
            features,
            avgpool: AdaptiveAvgPool2d::new(1, 1),
            classifier,
        };
        for_each::<Conv2d>(&m, init_conv)?;
        for_each::<Linear>(&m, |l| {
            init_linear_uniform(l, 1.0 / (l.out_features() as f64).sqrt())
        })?;
        Ok(m)
    }

    /// Runs the network: logits `[N, num_classes]`.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.avgpool.forward(&self.features.forward(x)?)?;
        let x = x.flatten_from(1).ctx("EfficientNet flatten")?;
        self.classifier.forward(&x)
    }
}
