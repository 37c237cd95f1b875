//! torchvision's ConvNeXt tiny/small (`torchvision/models/convnext.py`): `features` (4×4
//! patchify stem with LayerNorm2d, `CNBlock` stages with downsampling between them),
//! `avgpool`, `classifier` = LayerNorm2d, Flatten, Linear (`classifier.2`, the head).

use super::ZooConfig;
use super::misc::{Permute, init_trunc_normal};
use crate::error::{Context, Result};
use crate::nn::{
    AdaptiveAvgPool2d, Conv2d, Conv2dConfig, Flatten, Gelu, LayerNorm, LayerNorm2d,
    LayerNormConfig, Linear, Module, Param, Sequential, StochasticDepth,
};
use candle_core::{DType, Device, Tensor};

const EPS: f64 = 1e-6;

/// torchvision's `CNBlock(dim, layer_scale, stochastic_depth_prob)`: `block` = 7×7 depthwise
/// conv, Permute to NHWC, LayerNorm, Linear to 4·dim, GELU, Linear back, Permute to NCHW; the
/// result is `x + stochastic_depth(layer_scale · block(x))` (`layer_scale` is `[dim, 1, 1]`).
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "CNBlock")]
pub struct CnBlock {
    layer_scale: Param,
    block: Sequential,
    stochastic_depth: StochasticDepth,
}

impl CnBlock {
    /// The block (torchvision uses `layer_scale = 1e-6`).
    ///
    /// # Errors
    /// `K0003` for zero channels or a drop probability outside [0, 1].
    pub fn new(dim: usize, layer_scale: f64, stochastic_depth_prob: f64) -> Result<Self> {
        let dw = Conv2dConfig {
            padding: 3,
            groups: dim,
            bias: true,
            ..Default::default()
        };
        let ln = LayerNormConfig {
            eps: EPS,
            ..Default::default()
        };
        let block = Sequential::new()
            .with(Conv2d::new(dim, dim, 7, dw)?)
            .with(Permute::new(&[0, 2, 3, 1])?)
            .with(LayerNorm::with(&[dim], ln)?)
            .with(Linear::new(dim, 4 * dim, true)?)
            .with(Gelu::default())
            .with(Linear::new(4 * dim, dim, true)?)
            .with(Permute::new(&[0, 3, 1, 2])?);
        let scale = (Tensor::ones((dim, 1, 1), DType::F32, &Device::Cpu).ctx("layer_scale")?
            * layer_scale)
            .ctx("layer_scale")?;
        Ok(CnBlock {
            layer_scale: Param::new(&scale, true)?,
            block,
            stochastic_depth: StochasticDepth::new(stochastic_depth_prob, "row")?,
        })
    }

    /// Runs the block.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.block.forward(x)?;
        let y = y
            .broadcast_mul(&self.layer_scale.tensor())
            .ctx("CNBlock layer_scale")?;
        (self.stochastic_depth.forward(&y)? + x).ctx("CNBlock residual")
    }
}

/// ConvNeXt (tiny or small).
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "ConvNeXt")]
pub struct ConvNeXt {
    features: Sequential,
    avgpool: AdaptiveAvgPool2d,
    classifier: Sequential,
}

impl ConvNeXt {
    fn build(depths: [usize; 4], stochastic_depth_prob: f64, cfg: ZooConfig) -> Result<Self> {
        let dims = [96, 192, 384, 768];
        let stem = Conv2dConfig {
            stride: 4,
            bias: true,
            ..Default::default()
        };
        let mut features = Sequential::new();
        features.push(Box::new(
            Sequential::new()
                .with(Conv2d::new(cfg.in_channels, dims[0], 4, stem)?)
                .with(LayerNorm2d::new(dims[0], EPS)?),
        ));
        let total: usize = depths.iter().sum();
        let mut id = 0usize;
        for (i, (&n, &dim)) in depths.iter().zip(&dims).enumerate() {
            let mut stage = Sequential::new();
            for _ in 0..n {
                let p = stochastic_depth_prob * id as f64 / (total as f64 - 1.0);
                stage.push(Box::new(CnBlock::new(dim, 1e-6, p)?));
                id += 1;
            }
            features.push(Box::new(stage));
            if let Some(&next) = dims.get(i + 1) {
                let down = Conv2dConfig {
                    stride: 2,
                    bias: true,
                    ..Default::default()
                };
                features.push(Box::new(
                    Sequential::new()
                        .with(LayerNorm2d::new(dim, EPS)?)
                        .with(Conv2d::new(dim, next, 2, down)?),
                ));
            }
        }
        let classifier = Sequential::new()
            .with(LayerNorm2d::new(dims[3], EPS)?)
            .with(Flatten::new(1))
            .with(Linear::new(dims[3], cfg.num_classes, true)?);
        let m = ConvNeXt {
            features,
            avgpool: AdaptiveAvgPool2d::new(1, 1),
            classifier,
        };
        super::misc::for_each::<Conv2d>(&m, |c| init_trunc_normal(c.weight(), c.bias()))?;
        super::misc::for_each::<Linear>(&m, |l| init_trunc_normal(l.weight(), l.bias()))?;
        Ok(m)
    }

    /// `convnext_tiny(num_classes)`: depths (3, 3, 9, 3), stochastic depth 0.1.
    ///
    /// # Errors
    /// `K0003` for zero classes or channels.
    pub fn tiny(cfg: ZooConfig) -> Result<Self> {
        Self::build([3, 3, 9, 3], 0.1, cfg)
    }

    /// `convnext_small(num_classes)`: depths (3, 3, 27, 3), stochastic depth 0.4.
    ///
    /// # Errors
    /// `K0003` for zero classes or channels.
    pub fn small(cfg: ZooConfig) -> Result<Self> {
        Self::build([3, 3, 27, 3], 0.4, cfg)
    }

    /// Runs the network: logits `[N, num_classes]`.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.avgpool.forward(&self.features.forward(x)?)?;
        self.classifier.forward(&x)
    }
}
