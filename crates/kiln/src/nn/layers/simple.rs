//! Parameter-free layers: `ReLU`, `Flatten`, `Identity`.

use super::impl_as_any;
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec};
use candle_core::Tensor;

/// `max(x, 0)`.
#[derive(Default)]
pub struct ReLU;

impl Module for ReLU {
    fn type_name(&self) -> &'static str {
        "ReLU"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::nn::ops::relu(x)
    }
    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("ReLU")
    }
    impl_as_any!();
}

/// Flattens dimensions `start_dim..` into one (PyTorch's `nn.Flatten()`, start_dim=1).
pub struct Flatten {
    start_dim: usize,
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten { start_dim: 1 }
    }
}

impl Flatten {
    /// `Flatten(start_dim)` (end_dim = -1).
    pub fn new(start_dim: usize) -> Self {
        Flatten { start_dim }
    }
}

impl Module for Flatten {
    fn type_name(&self) -> &'static str {
        "Flatten"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() <= self.start_dim {
            return Err(Error::InputRank {
                module: "Flatten".into(),
                expected: format!("at least {} dimensions", self.start_dim + 1),
                shape: shape_str(x.dims()),
            });
        }
        x.flatten_from(self.start_dim).ctx("Flatten")
    }
    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("Flatten").with("start_dim", self.start_dim)
    }
    fn extra_repr(&self) -> String {
        format!("start_dim={}, end_dim=-1", self.start_dim)
    }
    impl_as_any!();
}

/// Returns its input (used to remove a head).
#[derive(Default)]
pub struct Identity;

impl Module for Identity {
    fn type_name(&self) -> &'static str {
        "Identity"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("Identity")
    }
    impl_as_any!();
}
