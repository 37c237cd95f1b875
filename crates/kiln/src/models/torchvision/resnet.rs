//! torchvision's ResNet family (`torchvision/models/resnet.py`): resnet18/34/50/101/152,
//! resnext50_32x4d and wide_resnet50_2, with its module names, parameter/buffer names and
//! shapes, so a torchvision state dict loads with `strict = true`.

use super::misc::{for_each, init_conv};
use crate::error::{Context, Result};
use crate::nn::layers::Conv2dConfig;
use crate::nn::{
    AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d, Module, ReLU, Sequential,
};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// ResNet configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Output classes (1000 for ImageNet weights).
    pub num_classes: usize,
    /// Input channels (3 for torchvision weights, 1 for digits).
    pub in_channels: usize,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        ResNetConfig {
            num_classes: 1000,
            in_channels: 3,
        }
    }
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, groups: usize) -> Result<Conv2d> {
    Conv2d::new(
        cin,
        cout,
        k,
        Conv2dConfig {
            stride,
            padding: (k - 1) / 2,
            groups,
            bias: false,
            ..Default::default()
        },
    )
}

fn downsample(inplanes: usize, out: usize, stride: usize) -> Result<Sequential> {
    Ok(Sequential::new()
        .with(conv(inplanes, out, 1, stride, 1)?)
        .with(BatchNorm2d::new(out)?))
}

fn residual(out: Tensor, identity: Tensor, what: &str) -> Result<Tensor> {
    crate::nn::ops::relu(&(out + identity).ctx(what)?)
}

/// torchvision's `BasicBlock`: two 3×3 convs with BatchNorm and a residual connection
/// (`expansion = 1`).
#[derive(crate::nn::Module)]
#[module(crate = "crate")]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    relu: ReLU,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<Sequential>,
}

impl BasicBlock {
    /// A block from `inplanes` to `planes` channels with the given stride; a 1×1 conv +
    /// BatchNorm `downsample` is added when the shape changes.
    ///
    /// # Errors
    /// `K0003` for zero channels.
    pub fn new(inplanes: usize, planes: usize, stride: usize) -> Result<Self> {
        Ok(BasicBlock {
            conv1: conv(inplanes, planes, 3, stride, 1)?,
            bn1: BatchNorm2d::new(planes)?,
            relu: ReLU,
            conv2: conv(planes, planes, 3, 1, 1)?,
            bn2: BatchNorm2d::new(planes)?,
            downsample: (stride != 1 || inplanes != planes)
                .then(|| downsample(inplanes, planes, stride))
                .transpose()?,
        })
    }

    /// Runs the block.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = self
            .relu
            .forward(&self.bn1.forward(&self.conv1.forward(x)?)?)?;
        let out = self.bn2.forward(&self.conv2.forward(&out)?)?;
        let identity = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        residual(out, identity, "BasicBlock residual")
    }
}

/// torchvision's `Bottleneck` (ResNet V1.5: the stride is on the 3×3 conv): 1×1, 3×3 (with
/// `groups`), 1×1 to `planes · 4` channels, each followed by BatchNorm, plus the residual.
#[derive(crate::nn::Module)]
#[module(crate = "crate")]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    conv3: Conv2d,
    bn3: BatchNorm2d,
    relu: ReLU,
    downsample: Option<Sequential>,
}

impl Bottleneck {
    /// `Bottleneck(inplanes, planes, stride, groups, base_width)`: the inner width is
    /// `⌊planes · base_width / 64⌋ · groups`.
    ///
    /// # Errors
    /// `K0003` for zero channels or groups that do not divide the width.
    pub fn new(
        inplanes: usize,
        planes: usize,
        stride: usize,
        groups: usize,
        base_width: usize,
    ) -> Result<Self> {
        let width = (planes * base_width / 64) * groups;
        let out = planes * 4;
        Ok(Bottleneck {
            conv1: conv(inplanes, width, 1, 1, 1)?,
            bn1: BatchNorm2d::new(width)?,
            conv2: conv(width, width, 3, stride, groups)?,
            bn2: BatchNorm2d::new(width)?,
            conv3: conv(width, out, 1, 1, 1)?,
            bn3: BatchNorm2d::new(out)?,
            relu: ReLU,
            downsample: (stride != 1 || inplanes != out)
                .then(|| downsample(inplanes, out, stride))
                .transpose()?,
        })
    }

    /// Runs the block.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = self
            .relu
            .forward(&self.bn1.forward(&self.conv1.forward(x)?)?)?;
        let out = self
            .relu
            .forward(&self.bn2.forward(&self.conv2.forward(&out)?)?)?;
        let out = self.bn3.forward(&self.conv3.forward(&out)?)?;
        let identity = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        residual(out, identity, "Bottleneck residual")
    }
}

/// The block kind and layout of one ResNet variant.
#[derive(Clone, Copy, Debug)]
struct Variant {
    bottleneck: bool,
    layers: [usize; 4],
    groups: usize,
    width_per_group: usize,
}

/// A ResNet (torchvision layout): `conv1`, `bn1`, `relu`, `maxpool`, `layer1`–`layer4`,
/// `avgpool` and the head `fc` (replaceable by any module).
#[derive(crate::nn::Module)]
#[module(crate = "crate")]
pub struct ResNet {
    #[module(skip)]
    cfg: ResNetConfig,
    conv1: Conv2d,
    bn1: BatchNorm2d,
    relu: ReLU,
    maxpool: MaxPool2d,
    layer1: Sequential,
    layer2: Sequential,
    layer3: Sequential,
    layer4: Sequential,
    avgpool: AdaptiveAvgPool2d,
    fc: Box<dyn Module>,
}

impl ResNet {
    fn build(cfg: ResNetConfig, v: Variant) -> Result<Self> {
        let expansion = if v.bottleneck { 4 } else { 1 };
        let mut inplanes = 64;
        let mut make_layer = |i: usize, planes: usize| -> Result<Sequential> {
            let stride = if i == 0 { 1 } else { 2 };
            let mut layer = Sequential::new();
            for b in 0..v.layers[i] {
                let s = if b == 0 { stride } else { 1 };
                if v.bottleneck {
                    layer.push(Box::new(Bottleneck::new(
                        inplanes,
                        planes,
                        s,
                        v.groups,
                        v.width_per_group,
                    )?));
                } else {
                    layer.push(Box::new(BasicBlock::new(inplanes, planes, s)?));
                }
                inplanes = planes * expansion;
            }
            Ok(layer)
        };
        let (layer1, layer2) = (make_layer(0, 64)?, make_layer(1, 128)?);
        let (layer3, layer4) = (make_layer(2, 256)?, make_layer(3, 512)?);
        let m = ResNet {
            cfg,
            conv1: Conv2d::new(
                cfg.in_channels,
                64,
                7,
                Conv2dConfig {
                    stride: 2,
                    padding: 3,
                    bias: false,
                    ..Default::default()
                },
            )?,
            bn1: BatchNorm2d::new(64)?,
            relu: ReLU,
            maxpool: MaxPool2d::with(3, 2, 1),
            layer1,
            layer2,
            layer3,
            layer4,
            avgpool: AdaptiveAvgPool2d::new(1, 1),
            fc: Box::new(Linear::new(512 * expansion, cfg.num_classes, true)?),
        };
        for_each::<Conv2d>(&m, init_conv)?;
        Ok(m)
    }

    fn basic(cfg: ResNetConfig, layers: [usize; 4]) -> Result<Self> {
        Self::build(
            cfg,
            Variant {
                bottleneck: false,
                layers,
                groups: 1,
                width_per_group: 64,
            },
        )
    }

    fn bottleneck(
        cfg: ResNetConfig,
        layers: [usize; 4],
        groups: usize,
        width_per_group: usize,
    ) -> Result<Self> {
        Self::build(
            cfg,
            Variant {
                bottleneck: true,
                layers,
                groups,
                width_per_group,
            },
        )
    }

    /// `torchvision.models.resnet18()`: BasicBlock, [2, 2, 2, 2].
    ///
    /// # Errors
    /// `K0003` for zero classes or channels.
    pub fn resnet18(cfg: ResNetConfig) -> Result<Self> {
        Self::basic(cfg, [2, 2, 2, 2])
    }

    /// `resnet34()`: BasicBlock, [3, 4, 6, 3].
    ///
    /// # Errors
    /// As [`ResNet::resnet18`].
    pub fn resnet34(cfg: ResNetConfig) -> Result<Self> {
        Self::basic(cfg, [3, 4, 6, 3])
    }

    /// `resnet50()`: Bottleneck, [3, 4, 6, 3].
    ///
    /// # Errors
    /// As [`ResNet::resnet18`].
    pub fn resnet50(cfg: ResNetConfig) -> Result<Self> {
        Self::bottleneck(cfg, [3, 4, 6, 3], 1, 64)
    }

    /// `resnet101()`: Bottleneck, [3, 4, 23, 3].
    ///
    /// # Errors
    /// As [`ResNet::resnet18`].
    pub fn resnet101(cfg: ResNetConfig) -> Result<Self> {
        Self::bottleneck(cfg, [3, 4, 23, 3], 1, 64)
    }

    /// `resnet152()`: Bottleneck, [3, 8, 36, 3].
    ///
    /// # Errors
    /// As [`ResNet::resnet18`].
    pub fn resnet152(cfg: ResNetConfig) -> Result<Self> {
        Self::bottleneck(cfg, [3, 8, 36, 3], 1, 64)
    }

    /// `resnext50_32x4d()`: Bottleneck, [3, 4, 6, 3], groups 32, width per group 4.
    ///
    /// # Errors
    /// As [`ResNet::resnet18`].
    pub fn resnext50_32x4d(cfg: ResNetConfig) -> Result<Self> {
        Self::bottleneck(cfg, [3, 4, 6, 3], 32, 4)
    }

    /// `wide_resnet50_2()`: Bottleneck, [3, 4, 6, 3], width per group 128.
    ///
    /// # Errors
    /// As [`ResNet::resnet18`].
    pub fn wide_resnet50_2(cfg: ResNetConfig) -> Result<Self> {
        Self::bottleneck(cfg, [3, 4, 6, 3], 1, 128)
    }

    /// The configuration.
    pub fn config(&self) -> ResNetConfig {
        self.cfg
    }

    /// Runs the network: logits `[N, num_classes]`.
    ///
    /// # Errors
    /// As the layers inside (input shape, dtype, device).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.maxpool.forward(
            &self
                .relu
                .forward(&self.bn1.forward(&self.conv1.forward(x)?)?)?,
        )?;
        let x = self.layer1.forward(&x)?;
        let x = self.layer2.forward(&x)?;
        let x = self.layer3.forward(&x)?;
        let x = self.layer4.forward(&x)?;
        let x = self
            .avgpool
            .forward(&x)?
            .flatten_from(1)
            .ctx("ResNet flatten")?;
        self.fc.forward(&x)
    }
}
