//! torchvision's DenseNet-121 (`torchvision/models/densenet.py`): `features` with the named
//! children `conv0`, `norm0`, `relu0`, `pool0`, `denseblock1`–`4` (layers `denselayerN`),
//! `transition1`–`3` and `norm5`; the head is `classifier` (a Linear).

use super::ZooConfig;
use crate::error::{Context, Error, Result};
use crate::models::NamedChildren;
use crate::models::children::delegate_children;
use crate::nn::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Conv2dConfig, Linear, MaxPool2d, Module,
    ModuleSpec, ReLU, init,
};
use candle_core::Tensor;

fn conv(cin: usize, cout: usize, k: usize, stride: usize, padding: usize) -> Result<Conv2d> {
    Conv2d::new(
        cin,
        cout,
        k,
        Conv2dConfig {
            stride,
            padding,
            bias: false,
            ..Default::default()
        },
    )
}

/// torchvision's `_DenseLayer`: BN-ReLU-1×1 conv to `bn_size · growth_rate` channels, then
/// BN-ReLU-3×3 conv to `growth_rate` new channels (dropout `drop_rate`, 0 in densenet121).
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "_DenseLayer")]
pub struct DenseLayer {
    norm1: BatchNorm2d,
    relu1: ReLU,
    conv1: Conv2d,
    norm2: BatchNorm2d,
    relu2: ReLU,
    conv2: Conv2d,
}

impl DenseLayer {
    /// `_DenseLayer(num_input_features, growth_rate, bn_size, drop_rate=0)`.
    ///
    /// # Errors
    /// `K0003` for zero channels.
    pub fn new(num_input_features: usize, growth_rate: usize, bn_size: usize) -> Result<Self> {
        let mid = bn_size * growth_rate;
        Ok(DenseLayer {
            norm1: BatchNorm2d::new(num_input_features)?,
            relu1: ReLU,
            conv1: conv(num_input_features, mid, 1, 1, 0)?,
            norm2: BatchNorm2d::new(mid)?,
            relu2: ReLU,
            conv2: conv(mid, growth_rate, 3, 1, 1)?,
        })
    }

    /// The new features of the concatenated input.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = self
            .conv1
            .forward(&self.relu1.forward(&self.norm1.forward(x)?)?)?;
        self.conv2
            .forward(&self.relu2.forward(&self.norm2.forward(&b)?)?)
    }
}

/// torchvision's `_DenseBlock` (a `ModuleDict` of `denselayer1`…`denselayerN`): each layer
/// sees the concatenation of the block's input and every earlier layer's output; the block
/// returns the concatenation of all of them.
pub struct DenseBlock {
    c: NamedChildren,
}

impl DenseBlock {
    /// `_DenseBlock(num_layers, num_input_features, bn_size, growth_rate)`.
    ///
    /// # Errors
    /// `K0003` for zero channels.
    pub fn new(
        num_layers: usize,
        num_input_features: usize,
        bn_size: usize,
        growth_rate: usize,
    ) -> Result<Self> {
        let mut c = NamedChildren::default();
        for i in 0..num_layers {
            c.push(
                &format!("denselayer{}", i + 1),
                Box::new(DenseLayer::new(
                    num_input_features + i * growth_rate,
                    growth_rate,
                    bn_size,
                )?),
            );
        }
        Ok(DenseBlock { c })
    }

    fn from_spec(
        _spec: &ModuleSpec,
        children: Vec<(String, Box<dyn Module>)>,
    ) -> Result<Box<dyn Module>> {
        let names: Vec<String> = (1..=children.len())
            .map(|i| format!("denselayer{i}"))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(Box::new(DenseBlock {
            c: NamedChildren::from_list("_DenseBlock", &names, children)?,
        }))
    }
}

inventory::submit! {
    crate::nn::derive_support::Registration::new("_DenseBlock", DenseBlock::from_spec)
}

impl Module for DenseBlock {
    fn type_name(&self) -> &'static str {
        "_DenseBlock"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut features = vec![x.clone()];
        for (name, layer) in self.c.list() {
            let input = Tensor::cat(&features, 1).ctx("_DenseBlock concatenation")?;
            let new = crate::nn::module::call_child(&name, layer, &input)?;
            features.push(new);
        }
        Tensor::cat(&features, 1).ctx("_DenseBlock concatenation")
    }

    fn spec(&self) -> ModuleSpec {
        self.c.add_specs(ModuleSpec::new("_DenseBlock"))
    }

    delegate_children!(c);
}

/// torchvision's `_Transition`: BN, ReLU, 1×1 conv halving the channels, 2×2 average pool.
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "_Transition")]
pub struct Transition {
    norm: BatchNorm2d,
    relu: ReLU,
    conv: Conv2d,
    pool: AvgPool2d,
}

impl Transition {
    /// `_Transition(num_input_features, num_output_features)`.
    ///
    /// # Errors
    /// `K0003` for zero channels.
    pub fn new(cin: usize, cout: usize) -> Result<Self> {
        Ok(Transition {
            norm: BatchNorm2d::new(cin)?,
            relu: ReLU,
            conv: conv(cin, cout, 1, 1, 0)?,
            pool: AvgPool2d::with(2, 2, 0),
        })
    }

    /// Runs the module.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self
            .conv
            .forward(&self.relu.forward(&self.norm.forward(x)?)?)?;
        self.pool.forward(&x)
    }
}

/// DenseNet-121's `features` (torchvision builds it as a `Sequential` with named children).
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "DenseNetFeatures")]
pub struct DenseNetFeatures {
    conv0: Conv2d,
    norm0: BatchNorm2d,
    relu0: ReLU,
    pool0: MaxPool2d,
    denseblock1: DenseBlock,
    transition1: Transition,
    denseblock2: DenseBlock,
    transition2: Transition,
    denseblock3: DenseBlock,
    transition3: Transition,
    denseblock4: DenseBlock,
    norm5: BatchNorm2d,
}

impl DenseNetFeatures {
    /// Runs the feature extractor.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.pool0.forward(
            &self
                .relu0
                .forward(&self.norm0.forward(&self.conv0.forward(x)?)?)?,
        )?;
        let x = self.transition1.forward(&self.denseblock1.forward(&x)?)?;
        let x = self.transition2.forward(&self.denseblock2.forward(&x)?)?;
        let x = self.transition3.forward(&self.denseblock3.forward(&x)?)?;
        self.norm5.forward(&self.denseblock4.forward(&x)?)
    }
}

/// DenseNet (torchvision layout): `features`, then ReLU, global average pooling and the
/// head `classifier`.
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "DenseNet")]
pub struct DenseNet {
    features: DenseNetFeatures,
    classifier: Box<dyn Module>,
}

impl DenseNet {
    /// `densenet121(num_classes)`: growth rate 32, blocks (6, 12, 24, 16), 64 initial
    /// features, bottleneck size 4, no dropout; torchvision's initialisation
    /// (`kaiming_normal_` convolutions, zero Linear bias).
    ///
    /// # Errors
    /// `K0003` for zero classes or channels.
    pub fn densenet121(cfg: ZooConfig) -> Result<Self> {
        let (growth, bn_size) = (32, 4);
        let blocks = [6, 12, 24, 16];
        let mut n = 64;
        let mut dense = Vec::new();
        let mut trans = Vec::new();
        for (i, &layers) in blocks.iter().enumerate() {
            dense.push(DenseBlock::new(layers, n, bn_size, growth)?);
            n += layers * growth;
            if i + 1 != blocks.len() {
                trans.push(Transition::new(n, n / 2)?);
                n /= 2;
            }
        }
        let (mut dense, mut trans) = (dense.into_iter(), trans.into_iter());
        let missing = || Error::BadSpec {
            detail: "DenseNet: block list shorter than its configuration".into(),
        };
        let features = DenseNetFeatures {
            conv0: conv(cfg.in_channels, 64, 7, 2, 3)?,
            norm0: BatchNorm2d::new(64)?,
            relu0: ReLU,
            pool0: MaxPool2d::with(3, 2, 1),
            denseblock1: dense.next().ok_or_else(missing)?,
            transition1: trans.next().ok_or_else(missing)?,
            denseblock2: dense.next().ok_or_else(missing)?,
            transition2: trans.next().ok_or_else(missing)?,
            denseblock3: dense.next().ok_or_else(missing)?,
            transition3: trans.next().ok_or_else(missing)?,
            denseblock4: dense.next().ok_or_else(missing)?,
            norm5: BatchNorm2d::new(n)?,
        };
        let classifier = Linear::new(n, cfg.num_classes, true)?;
        if let Some(b) = classifier.bias() {
            b.set(&b.tensor().zeros_like().ctx("init bias")?)?;
        }
        let m = DenseNet {
            features,
            classifier: Box::new(classifier),
        };
        super::misc::for_each::<Conv2d>(&m, |c| {
            let dims = c.weight().dims();
            let std = (2.0 / init::fans(&dims).0 as f64).sqrt();
            c.weight().set(&init::normal(&dims, std)?)
        })?;
        Ok(m)
    }

    /// Runs the network: logits `[N, num_classes]`.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let f = crate::nn::ops::relu(&self.features.forward(x)?)?;
        let f = AdaptiveAvgPool2d::new(1, 1).forward(&f)?;
        self.classifier
            .forward(&f.flatten_from(1).ctx("DenseNet flatten")?)
    }
}
