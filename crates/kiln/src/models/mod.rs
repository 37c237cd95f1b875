//! The models kiln ships: MLP, LeNet-5 and torchvision's model zoo ([`torchvision`]: the
//! ResNets, VGG, AlexNet, SqueezeNet, DenseNet, MobileNet V2/V3, EfficientNet, ConvNeXt).

mod children;
pub mod lenet;
pub mod mlp;
pub mod torchvision;

pub use children::NamedChildren;
pub use lenet::{LeNet, LeNetConfig};
pub use mlp::{Mlp, MlpConfig};
pub use torchvision::resnet;
pub use torchvision::{BasicBlock, Bottleneck, ResNet, ResNetConfig, ZooConfig};

use crate::error::{Error, Result};
use crate::nn::Module;
use crate::nn::registry::Builder;
use indexmap::IndexMap;
use std::sync::Arc;

/// Architectures `kiln train --model` knows: kiln's own, then torchvision's zoo.
pub const ARCHITECTURES: [&str; 2 + torchvision::ZOO.len()] = {
    let mut names = ["mlp"; 2 + torchvision::ZOO.len()];
    names[1] = "lenet";
    let mut i = 0;
    while i < torchvision::ZOO.len() {
        names[i + 2] = torchvision::ZOO[i].0;
        i += 1;
    }
    names
};

/// The head of a built-in architecture: the submodule built with the run's number of classes
/// (`fc` for the ResNets and LeNet/MLP, `classifier.6` for VGG, …; see
/// [`torchvision::ZOO`]).
pub fn default_head(arch: &str) -> &'static str {
    torchvision::head(arch).unwrap_or("fc")
}

/// Builds a built-in architecture by CLI name for images of `in_channels`×`image_size`².
///
/// # Errors
/// `K0003` for an unknown name (listing the known ones).
pub fn build(
    arch: &str,
    num_classes: usize,
    in_channels: usize,
    image_size: usize,
) -> Result<Box<dyn Module>> {
    Ok(match arch {
        "mlp" => Box::new(Mlp::new(&MlpConfig {
            in_features: in_channels * image_size * image_size,
            num_classes,
            ..Default::default()
        })?),
        "lenet" => Box::new(LeNet::new(LeNetConfig {
            in_channels,
            image_size,
            num_classes,
        })?),
        other => {
            let cfg = ZooConfig {
                num_classes,
                in_channels,
            };
            match torchvision::try_build(other, cfg)? {
                Some(m) => m,
                None => {
                    return Err(Error::invalid(
                        "model",
                        other,
                        format!("one of {}", ARCHITECTURES.join(", ")),
                    ));
                }
            }
        }
    })
}

pub(crate) fn register_builtins(t: &mut IndexMap<String, Builder>) {
    t.insert("LeNet".into(), Arc::new(LeNet::from_spec));
    t.insert("MLP".into(), Arc::new(Mlp::from_spec));
}
