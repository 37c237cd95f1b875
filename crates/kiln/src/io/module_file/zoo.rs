//! Whole-module files of torchvision models (`torch.save(torchvision.models.mobilenet_v2())`):
//! the pickled top-level class names the family (`torchvision.models.mobilenetv2.MobileNetV2`),
//! and the variant is the one zoo architecture of that family whose state-dict keys and shapes
//! equal the file's (resnet18 vs resnet50, efficientnet_b0 vs b3, vgg16 vs vgg16_bn…), with the
//! number of classes read from the head's weight and the input channels from the first
//! convolution. The weights are then loaded strictly.

use crate::error::{Error, Result};
use crate::models::torchvision::{ZooConfig, head, try_build};
use crate::nn::{Module, StateDict};

/// torchvision model classes and the zoo architectures each can be.
pub const FAMILIES: &[(&str, &[&str])] = &[
    (
        "torchvision.models.resnet.ResNet",
        &[
            "resnet18",
            "resnet34",
            "resnet50",
            "resnet101",
            "resnet152",
            "resnext50_32x4d",
            "wide_resnet50_2",
        ],
    ),
    (
        "torchvision.models.vgg.VGG",
        &[
            "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
        ],
    ),
    ("torchvision.models.alexnet.AlexNet", &["alexnet"]),
    (
        "torchvision.models.squeezenet.SqueezeNet",
        &["squeezenet1_1"],
    ),
    ("torchvision.models.densenet.DenseNet", &["densenet121"]),
    (
        "torchvision.models.mobilenetv2.MobileNetV2",
        &["mobilenet_v2"],
    ),
    (
        "torchvision.models.mobilenetv3.MobileNetV3",
        &["mobilenet_v3_small", "mobilenet_v3_large"],
    ),
    (
        "torchvision.models.efficientnet.EfficientNet",
        &[
            "efficientnet_b0",
            "efficientnet_b1",
            "efficientnet_b2",
            "efficientnet_b3",
        ],
    ),
    (
        "torchvision.models.convnext.ConvNeXt",
        &["convnext_tiny", "convnext_small"],
    ),
    (
        "torchvision.models.vision_transformer.VisionTransformer",
        &["vit_b_16"],
    ),
];

/// torchvision's building blocks inside those models: rebuilt as part of their model.
pub const PARTS: &[&str] = &[
    "torchvision.models.resnet.BasicBlock",
    "torchvision.models.resnet.Bottleneck",
    "torchvision.models.squeezenet.Fire",
    "torchvision.models.densenet._DenseBlock",
    "torchvision.models.densenet._DenseLayer",
    "torchvision.models.densenet._Transition",
    "torchvision.models.mobilenetv2.InvertedResidual",
    "torchvision.models.mobilenetv3.InvertedResidual",
    "torchvision.models.efficientnet.MBConv",
    "torchvision.models.convnext.CNBlock",
    "torchvision.models.convnext.LayerNorm2d",
    "torchvision.ops.misc.Conv2dNormActivation",
    "torchvision.ops.misc.ConvNormActivation",
    "torchvision.ops.misc.SqueezeExcitation",
    "torchvision.ops.misc.Permute",
    "torchvision.ops.stochastic_depth.StochasticDepth",
    "torchvision.models.vision_transformer.Encoder",
    "torchvision.models.vision_transformer.EncoderBlock",
    "torchvision.models.vision_transformer.MLPBlock",
];

/// Whether `class_path` is a torchvision model class of the zoo or one of its parts.
pub fn is_zoo_class(class_path: &str) -> bool {
    !candidates(class_path).is_empty() || PARTS.contains(&class_path)
}

/// The zoo architectures a class path can be (empty for other classes).
pub fn candidates(class_path: &str) -> &'static [&'static str] {
    FAMILIES
        .iter()
        .find(|(c, _)| *c == class_path)
        .map_or(&[], |(_, a)| a)
}

fn signature(sd: &StateDict) -> Vec<(String, Vec<usize>)> {
    sd.iter()
        .map(|(k, t)| (k.to_string(), t.dims().to_vec()))
        .collect()
}

/// Builds the zoo architecture of family `class_path` whose keys and shapes equal `sd`'s and
/// loads `sd` into it strictly; `Ok(None)` for a class outside the zoo's families.
///
/// # Errors
/// `K0005` when no architecture of the family has the file's keys and shapes (naming the
/// candidates tried and the first difference from the closest one); errors of the strict load.
pub fn build_zoo_module(
    class_path: &str,
    sd: &StateDict,
    path: &str,
) -> Result<Option<Box<dyn Module>>> {
    let archs = candidates(class_path);
    if archs.is_empty() {
        return Ok(None);
    }
    let want = signature(sd);
    let in_channels = want
        .iter()
        .find(|(_, s)| s.len() == 4)
        .map_or(3, |(_, s)| s[1]);
    let mut closest: Option<(usize, String)> = None;
    for arch in archs {
        let Some(h) = head(arch) else { continue };
        let Some(num_classes) = sd.get(&format!("{h}.weight")).map(|w| w.dims()[0]) else {
            continue;
        };
        let cfg = ZooConfig {
            num_classes,
            in_channels,
        };
        let Some(m) = try_build(arch, cfg)? else {
            continue;
        };
        let got = signature(&m.state_dict());
        if got == want {
            m.load_state_dict(sd, true)?;
            return Ok(Some(m));
        }
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        let diff = match (got.get(same), want.get(same)) {
            (Some(g), Some(w)) => format!(
                "{arch} has {} {:?} where the file has {} {:?}",
                g.0, g.1, w.0, w.1
            ),
            _ => format!("{arch} has {} tensors, the file {}", got.len(), want.len()),
        };
        if closest.as_ref().is_none_or(|(n, _)| same > *n) {
            closest = Some((same, diff));
        }
    }
    Err(Error::Unsupported {
        what: format!(
            "rebuilding {class_path} (in '{path}'): no architecture of kiln's zoo ({}) has this file's {} state-dict keys and shapes{}; `kiln convert` and `kiln inspect` still read its state dict",
            archs.join(", "),
            want.len(),
            closest
                .map(|(_, d)| format!(" (closest: {d})"))
                .unwrap_or_default()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_lists_zoo_architectures() {
        for (class, archs) in FAMILIES {
            assert!(class.starts_with("torchvision.models."), "{class}");
            for a in *archs {
                assert!(head(a).is_some(), "{a} is not in the zoo");
            }
        }
        assert!(candidates("__main__.MyNet").is_empty());
    }

    /// A state dict of mobilenet_v3_large is recognised as the large variant (not small),
    /// and a resnet34's as resnet34; a truncated one is refused naming the candidates.
    #[test]
    fn the_variant_is_the_one_whose_keys_and_shapes_match() -> Result<()> {
        for (class, arch) in [
            (
                "torchvision.models.mobilenetv3.MobileNetV3",
                "mobilenet_v3_large",
            ),
            ("torchvision.models.resnet.ResNet", "resnet34"),
        ] {
            let m = try_build(
                arch,
                ZooConfig {
                    num_classes: 7,
                    in_channels: 3,
                },
            )?
            .ok_or_else(|| Error::invalid("arch", arch, "a zoo architecture"))?;
            let sd = m.state_dict();
            let back = build_zoo_module(class, &sd, "mem")?
                .ok_or_else(|| Error::invalid("class", class, "a zoo family"))?;
            assert_eq!(signature(&back.state_dict()), signature(&sd), "{arch}");
            let mut cut: StateDict = sd
                .iter()
                .take(10)
                .map(|(k, t)| (k.to_string(), t.clone()))
                .collect();
            if let Some((k, t)) = sd.iter().last() {
                cut.insert(k, t.clone());
            }
            let e = build_zoo_module(class, &cut, "mem")
                .err()
                .map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.contains("no architecture of kiln's zoo")),
                "{e:?}"
            );
        }
        Ok(())
    }
}
