//! The models kiln ships: MLP, LeNet-5 and torchvision-compatible ResNet-18.

mod children;
pub mod lenet;
pub mod mlp;
pub mod resnet;

pub use children::NamedChildren;
pub use lenet::{LeNet, LeNetConfig};
pub use mlp::{Mlp, MlpConfig};
pub use resnet::{BasicBlock, ResNet, ResNetConfig};

use crate::error::{Error, Result};
use crate::nn::Module;
use crate::nn::registry::Builder;
use indexmap::IndexMap;
use std::sync::Arc;

/// Architectures `kiln train --model` knows.
pub const ARCHITECTURES: [&str; 3] = ["mlp", "lenet", "resnet18"];

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
        "resnet18" => Box::new(ResNet::resnet18(ResNetConfig {
            num_classes,
            in_channels,
        })?),
        other => {
            return Err(Error::invalid(
                "model",
                other,
                format!("one of {}", ARCHITECTURES.join(", ")),
            ));
        }
    })
}

pub(crate) fn register_builtins(t: &mut IndexMap<String, Builder>) {
    t.insert("LeNet".into(), Arc::new(LeNet::from_spec));
    t.insert("MLP".into(), Arc::new(Mlp::from_spec));
    t.insert("BasicBlock".into(), Arc::new(BasicBlock::from_spec));
    t.insert("ResNet".into(), Arc::new(ResNet::from_spec));
}
