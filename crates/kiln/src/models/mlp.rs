//! A multi-layer perceptron: `flatten → hidden (Linear, ReLU, Dropout)* → fc`.
//!
//! State-dict keys: `hidden.0.weight`, `hidden.0.bias`, `hidden.3.weight`, …, `fc.weight`.

use super::children::{NamedChildren, delegate_children};
use crate::error::{Context, Result};
use crate::nn::{Dropout, Linear, Module, ModuleSpec, ReLU, Sequential};
use candle_core::Tensor;

/// MLP configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    /// Input features after flattening (64 for 8×8 digits).
    pub in_features: usize,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Output classes.
    pub num_classes: usize,
    /// Dropout after each hidden layer (0 disables).
    pub dropout: f64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            in_features: 64,
            hidden: vec![128, 64],
            num_classes: 10,
            dropout: 0.1,
        }
    }
}

/// The MLP model.
pub struct Mlp {
    c: NamedChildren,
}

impl Mlp {
    /// A freshly initialised MLP.
    pub fn new(cfg: &MlpConfig) -> Result<Self> {
        let mut hidden = Sequential::new();
        let mut width = cfg.in_features;
        for &h in &cfg.hidden {
            hidden = hidden
                .with(Linear::new(width, h, true)?)
                .with(ReLU)
                .with(Dropout::new(cfg.dropout)?);
            width = h;
        }
        let mut c = NamedChildren::default();
        c.push("hidden", Box::new(hidden));
        c.push("fc", Box::new(Linear::new(width, cfg.num_classes, true)?));
        Ok(Mlp { c })
    }

    pub(crate) fn from_spec(
        _spec: &ModuleSpec,
        children: Vec<(String, Box<dyn Module>)>,
    ) -> Result<Box<dyn Module>> {
        Ok(Box::new(Mlp {
            c: NamedChildren::from_list("MLP", &["hidden", "fc"], children)?,
        }))
    }
}

impl Module for Mlp {
    fn type_name(&self) -> &'static str {
        "MLP"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if x.rank() > 2 {
            x.flatten_from(1).ctx("MLP flatten")?
        } else {
            x.clone()
        };
        let x = self.c.call("MLP", "hidden", &x)?;
        self.c.call("MLP", "fc", &x)
    }

    fn spec(&self) -> ModuleSpec {
        self.c.add_specs(ModuleSpec::new("MLP"))
    }

    delegate_children!(c);
}
