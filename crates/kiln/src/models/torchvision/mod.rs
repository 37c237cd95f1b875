//! torchvision's model zoo with its exact module names, state-dict keys, shapes, defaults and
//! forward passes: a `torchvision.models.<arch>(weights=None)` state dict loads into the kiln
//! model of the same name with `strict = true` and gives the same logits.
//!
//! ```
//! use kiln::Module;
//! let m = kiln::models::torchvision::build("resnet50", 10, 3)?;
//! assert_eq!(m.state_dict().keys().next(), Some("conv1.weight"));
//! assert_eq!(kiln::models::torchvision::head("resnet50"), Some("fc"));
//! # Ok::<(), kiln::Error>(())
//! ```

pub mod alexnet;
pub mod convnext;
pub mod densenet;
pub mod efficientnet;
pub mod misc;
pub mod mobilenet_v2;
pub mod mobilenet_v3;
pub mod resnet;
pub mod squeezenet;
pub mod vgg;
pub mod vit;

pub use alexnet::AlexNet;
pub use convnext::{CnBlock, ConvNeXt};
pub use densenet::{DenseBlock, DenseLayer, DenseNet, DenseNetFeatures, Transition};
pub use efficientnet::{EfficientNet, MbConv};
pub use misc::{Permute, SqueezeExcitation, conv_norm_activation, make_divisible};
pub use mobilenet_v2::{InvertedResidual, MobileNetV2};
pub use mobilenet_v3::{InvertedResidualV3, MobileNetV3};
pub use resnet::{BasicBlock, Bottleneck, ResNet, ResNetConfig};
pub use squeezenet::{Fire, SqueezeNet};
pub use vgg::Vgg;
pub use vit::{Encoder, EncoderBlock, VisionTransformer};

use crate::error::Result;
use crate::nn::Module;

/// What every zoo constructor takes besides the architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZooConfig {
    /// Output classes (torchvision's `num_classes`, 1000 for ImageNet weights).
    pub num_classes: usize,
    /// Input channels of the first convolution (3 for torchvision weights).
    pub in_channels: usize,
}

impl Default for ZooConfig {
    fn default() -> Self {
        ZooConfig {
            num_classes: 1000,
            in_channels: 3,
        }
    }
}

/// The architectures of the zoo with their heads (the submodule torchvision users replace
/// for a new number of classes), in `kiln train --help` order.
pub const ZOO: [(&str, &str); 28] = [
    ("resnet18", "fc"),
    ("resnet34", "fc"),
    ("resnet50", "fc"),
    ("resnet101", "fc"),
    ("resnet152", "fc"),
    ("resnext50_32x4d", "fc"),
    ("wide_resnet50_2", "fc"),
    ("vgg11", "classifier.6"),
    ("vgg11_bn", "classifier.6"),
    ("vgg13", "classifier.6"),
    ("vgg13_bn", "classifier.6"),
    ("vgg16", "classifier.6"),
    ("vgg16_bn", "classifier.6"),
    ("vgg19", "classifier.6"),
    ("vgg19_bn", "classifier.6"),
    ("alexnet", "classifier.6"),
    ("squeezenet1_1", "classifier.1"),
    ("densenet121", "classifier"),
    ("mobilenet_v2", "classifier.1"),
    ("mobilenet_v3_small", "classifier.3"),
    ("mobilenet_v3_large", "classifier.3"),
    ("efficientnet_b0", "classifier.1"),
    ("efficientnet_b1", "classifier.1"),
    ("efficientnet_b2", "classifier.1"),
    ("efficientnet_b3", "classifier.1"),
    ("convnext_tiny", "classifier.2"),
    ("convnext_small", "classifier.2"),
    ("vit_b_16", "heads.head"),
];

/// The head of a zoo architecture (`fc`, `classifier.6`, …), `None` for other names.
pub fn head(arch: &str) -> Option<&'static str> {
    ZOO.iter().find(|(a, _)| *a == arch).map(|(_, h)| *h)
}

/// Builds the zoo architecture `arch` (torchvision's function name) with torchvision's
/// initialisation; `None` for a name outside the zoo.
///
/// # Errors
/// `K0003` for zero classes or channels.
pub fn try_build(arch: &str, cfg: ZooConfig) -> Result<Option<Box<dyn Module>>> {
    let rc = ResNetConfig {
        num_classes: cfg.num_classes,
        in_channels: cfg.in_channels,
    };
    let vgg = |depth: usize, bn: bool| -> Result<Box<dyn Module>> {
        Ok(Box::new(Vgg::new(depth, bn, cfg)?))
    };
    let m: Box<dyn Module> = match arch {
        "resnet18" => Box::new(ResNet::resnet18(rc)?),
        "resnet34" => Box::new(ResNet::resnet34(rc)?),
        "resnet50" => Box::new(ResNet::resnet50(rc)?),
        "resnet101" => Box::new(ResNet::resnet101(rc)?),
        "resnet152" => Box::new(ResNet::resnet152(rc)?),
        "resnext50_32x4d" => Box::new(ResNet::resnext50_32x4d(rc)?),
        "wide_resnet50_2" => Box::new(ResNet::wide_resnet50_2(rc)?),
        "vgg11" => vgg(11, false)?,
        "vgg11_bn" => vgg(11, true)?,
        "vgg13" => vgg(13, false)?,
        "vgg13_bn" => vgg(13, true)?,
        "vgg16" => vgg(16, false)?,
        "vgg16_bn" => vgg(16, true)?,
        "vgg19" => vgg(19, false)?,
        "vgg19_bn" => vgg(19, true)?,
        "alexnet" => Box::new(AlexNet::new(cfg)?),
        "squeezenet1_1" => Box::new(SqueezeNet::squeezenet1_1(cfg)?),
        "densenet121" => Box::new(DenseNet::densenet121(cfg)?),
        "mobilenet_v2" => Box::new(MobileNetV2::new(cfg)?),
        "mobilenet_v3_small" => Box::new(MobileNetV3::small(cfg)?),
        "mobilenet_v3_large" => Box::new(MobileNetV3::large(cfg)?),
        "efficientnet_b0" => Box::new(EfficientNet::new(0, cfg)?),
        "efficientnet_b1" => Box::new(EfficientNet::new(1, cfg)?),
        "efficientnet_b2" => Box::new(EfficientNet::new(2, cfg)?),
        "efficientnet_b3" => Box::new(EfficientNet::new(3, cfg)?),
        "convnext_tiny" => Box::new(ConvNeXt::tiny(cfg)?),
        "convnext_small" => Box::new(ConvNeXt::small(cfg)?),
        "vit_b_16" => Box::new(VisionTransformer::b_16(cfg)?),
        _ => return Ok(None),
    };
    Ok(Some(m))
}

/// [`try_build`] with an error for a name outside the zoo.
///
/// # Errors
/// `K0003` for an unknown name (listing the zoo) or zero classes/channels.
pub fn build(arch: &str, num_classes: usize, in_channels: usize) -> Result<Box<dyn Module>> {
    let cfg = ZooConfig {
        num_classes,
        in_channels,
    };
    try_build(arch, cfg)?.ok_or_else(|| {
        let names: Vec<&str> = ZOO.iter().map(|(a, _)| *a).collect();
        crate::Error::invalid(
            "torchvision model",
            arch,
            format!("one of {}", names.join(", ")),
        )
    })
}
