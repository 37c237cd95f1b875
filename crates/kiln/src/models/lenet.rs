//! LeNet-5 for small single-channel images (8×8 digits by default).
//!
//! Same layout as the PyTorch class in `scripts/torch_models.py`:
//! `conv1 (C→6, 3×3, pad 1) → ReLU → max-pool 2 → conv2 (6→16, 3×3, pad 1) → ReLU → max-pool 2
//! → flatten → fc1 (→120) → ReLU → fc2 (120→84) → ReLU → fc (84→num_classes)`.

use super::children::{NamedChildren, delegate_children};
use crate::error::{Context, Error, Result};
use crate::nn::functional::max_pool2d;
use crate::nn::layers::Conv2dConfig;
use crate::nn::ops::relu;
use crate::nn::{Conv2d, Linear, Module, ModuleSpec};
use candle_core::Tensor;

/// LeNet configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeNetConfig {
    /// Input channels (1 for digits).
    pub in_channels: usize,
    /// Square input size (8 for digits; must be divisible by 4).
    pub image_size: usize,
    /// Output classes.
    pub num_classes: usize,
}

impl Default for LeNetConfig {
    fn default() -> Self {
        LeNetConfig {
            in_channels: 1,
            image_size: 8,
            num_classes: 10,
        }
    }
}

/// The LeNet-5 model.
pub struct LeNet {
    cfg: LeNetConfig,
    c: NamedChildren,
}

const NAMES: [&str; 5] = ["conv1", "conv2", "fc1", "fc2", "fc"];

impl LeNet {
    /// A freshly initialised LeNet.
    ///
    /// # Errors
    /// `K0003` when `image_size` is not a positive multiple of 4.
    pub fn new(cfg: LeNetConfig) -> Result<Self> {
        if cfg.image_size < 4 || cfg.image_size % 4 != 0 {
            return Err(Error::invalid(
                "LeNet image_size",
                cfg.image_size,
                "a positive multiple of 4",
            ));
        }
        let conv = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let flat = 16 * (cfg.image_size / 4) * (cfg.image_size / 4);
        let mut c = NamedChildren::default();
        c.push("conv1", Box::new(Conv2d::new(cfg.in_channels, 6, 3, conv)?));
        c.push("conv2", Box::new(Conv2d::new(6, 16, 3, conv)?));
        c.push("fc1", Box::new(Linear::new(flat, 120, true)?));
        c.push("fc2", Box::new(Linear::new(120, 84, true)?));
        c.push("fc", Box::new(Linear::new(84, cfg.num_classes, true)?));
        Ok(LeNet { cfg, c })
    }

    /// The configuration.
    pub fn config(&self) -> LeNetConfig {
        self.cfg
    }

    pub(crate) fn from_spec(
        spec: &ModuleSpec,
        children: Vec<(String, Box<dyn Module>)>,
    ) -> Result<Box<dyn Module>> {
        let cfg = LeNetConfig {
            in_channels: spec.usize_or("in_channels", 1)?,
            image_size: spec.usize_or("image_size", 8)?,
            num_classes: spec.usize_or("num_classes", 10)?,
        };
        Ok(Box::new(LeNet {
            cfg,
            c: NamedChildren::from_list("LeNet", &NAMES, children)?,
        }))
    }
}

impl Module for LeNet {
    fn type_name(&self) -> &'static str {
        "LeNet"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = "LeNet";
        let x = relu(&self.c.call(n, "conv1", x)?)?;
        let x = max_pool2d(&x, 2, 2, 0)?;
        let x = relu(&self.c.call(n, "conv2", &x)?)?;
        let x = max_pool2d(&x, 2, 2, 0)?;
        let x = x.flatten_from(1).ctx("LeNet flatten")?;
        let x = relu(&self.c.call(n, "fc1", &x)?)?;
        let x = relu(&self.c.call(n, "fc2", &x)?)?;
        self.c.call(n, "fc", &x)
    }

    fn spec(&self) -> ModuleSpec {
        self.c.add_specs(
            ModuleSpec::new("LeNet")
                .with("in_channels", self.cfg.in_channels)
                .with("image_size", self.cfg.image_size)
                .with("num_classes", self.cfg.num_classes),
        )
    }

    delegate_children!(c);
}
