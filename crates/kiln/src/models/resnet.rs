//! ResNet-18 with torchvision's exact module names, parameter/buffer names and shapes, so a
//! torchvision `resnet18` state dict loads with `strict = true`.

use super::children::{NamedChildren, delegate_children};
use crate::error::{Context, Result};
use crate::nn::layers::Conv2dConfig;
use crate::nn::{
    AdaptiveAvgPool2d, BatchNorm, Conv2d, Linear, MaxPool2d, Module, ModuleSpec, ReLU, Sequential,
};
use candle_core::Tensor;

/// ResNet configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
) -> Result<Box<dyn Module>> {
    let c = Conv2d::new(
        cin,
        cout,
        k,
        Conv2dConfig {
            stride,
            padding,
            bias: false,
            ..Default::default()
        },
    )?;
    c.kaiming_normal_fan_out()?;
    Ok(Box::new(c))
}

/// torchvision's `BasicBlock`: two 3×3 convs with BatchNorm and a residual connection.
pub struct BasicBlock {
    c: NamedChildren,
}

const BLOCK_NAMES: [&str; 5] = ["conv1", "bn1", "relu", "conv2", "bn2"];

impl BasicBlock {
    /// A block from `inplanes` to `planes` channels with the given stride; a 1×1 conv +
    /// BatchNorm `downsample` is added when the shape changes.
    pub fn new(inplanes: usize, planes: usize, stride: usize) -> Result<Self> {
        let mut c = NamedChildren::default();
        c.push("conv1", conv(inplanes, planes, 3, stride, 1)?);
        c.push("bn1", Box::new(BatchNorm::new_2d(planes)?));
        c.push("relu", Box::new(ReLU));
        c.push("conv2", conv(planes, planes, 3, 1, 1)?);
        c.push("bn2", Box::new(BatchNorm::new_2d(planes)?));
        if stride != 1 || inplanes != planes {
            let mut ds = Sequential::new();
            ds.push(conv(inplanes, planes, 1, stride, 0)?);
            ds.push(Box::new(BatchNorm::new_2d(planes)?));
            c.push("downsample", Box::new(ds));
        }
        Ok(BasicBlock { c })
    }

    pub(crate) fn from_spec(
        _spec: &ModuleSpec,
        children: Vec<(String, Box<dyn Module>)>,
    ) -> Result<Box<dyn Module>> {
        let with_ds: Vec<&str> = BLOCK_NAMES.iter().copied().chain(["downsample"]).collect();
        let names: &[&str] = if children.len() == 6 {
            &with_ds
        } else {
            &BLOCK_NAMES
        };
        Ok(Box::new(BasicBlock {
            c: NamedChildren::from_list("BasicBlock", names, children)?,
        }))
    }
}

impl Module for BasicBlock {
    fn type_name(&self) -> &'static str {
        "BasicBlock"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = "BasicBlock";
        let out = self.c.call(n, "conv1", x)?;
        let out = self.c.call(n, "bn1", &out)?;
        let out = self.c.call(n, "relu", &out)?;
        let out = self.c.call(n, "conv2", &out)?;
        let out = self.c.call(n, "bn2", &out)?;
        let identity = if self.c.has("downsample") {
            self.c.call(n, "downsample", x)?
        } else {
            x.clone()
        };
        crate::nn::ops::relu(&(out + identity).ctx("BasicBlock residual")?)
    }

    fn spec(&self) -> ModuleSpec {
        self.c.add_specs(ModuleSpec::new("BasicBlock"))
    }

    delegate_children!(c);
}

/// ResNet-18 (torchvision layout).
pub struct ResNet {
    cfg: ResNetConfig,
    c: NamedChildren,
}

const NAMES: [&str; 10] = [
    "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc",
];

impl ResNet {
    /// A freshly initialised ResNet-18 (torchvision's initialisation scheme).
    pub fn resnet18(cfg: ResNetConfig) -> Result<Self> {
        let mut c = NamedChildren::default();
        c.push("conv1", conv(cfg.in_channels, 64, 7, 2, 3)?);
        c.push("bn1", Box::new(BatchNorm::new_2d(64)?));
        c.push("relu", Box::new(ReLU));
        c.push("maxpool", Box::new(MaxPool2d::with(3, 2, 1)));
        let mut inplanes = 64;
        for (i, (planes, stride)) in [(64, 1), (128, 2), (256, 2), (512, 2)]
            .into_iter()
            .enumerate()
        {
            let mut layer = Sequential::new();
            layer.push(Box::new(BasicBlock::new(inplanes, planes, stride)?));
            layer.push(Box::new(BasicBlock::new(planes, planes, 1)?));
            inplanes = planes;
            c.push(&format!("layer{}", i + 1), Box::new(layer));
        }
        c.push("avgpool", Box::new(AdaptiveAvgPool2d::new(1, 1)));
        c.push("fc", Box::new(Linear::new(512, cfg.num_classes, true)?));
        Ok(ResNet { cfg, c })
    }

    /// The configuration.
    pub fn config(&self) -> ResNetConfig {
        self.cfg
    }

    pub(crate) fn from_spec(
        spec: &ModuleSpec,
        children: Vec<(String, Box<dyn Module>)>,
    ) -> Result<Box<dyn Module>> {
        let cfg = ResNetConfig {
            num_classes: spec.usize_or("num_classes", 1000)?,
            in_channels: spec.usize_or("in_channels", 3)?,
        };
        Ok(Box::new(ResNet {
            cfg,
            c: NamedChildren::from_list("ResNet", &NAMES, children)?,
        }))
    }
}

impl Module for ResNet {
    fn type_name(&self) -> &'static str {
        "ResNet"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = "ResNet";
        let mut x = x.clone();
        for name in &NAMES[..9] {
            x = self.c.call(n, name, &x)?;
        }
        let x = x.flatten_from(1).ctx("ResNet flatten")?;
        self.c.call(n, "fc", &x)
    }

    fn spec(&self) -> ModuleSpec {
        self.c.add_specs(
            ModuleSpec::new("ResNet")
                .with("arch", "resnet18")
                .with("num_classes", self.cfg.num_classes)
                .with("in_channels", self.cfg.in_channels),
        )
    }

    delegate_children!(c);
}
