//! Parameter-free layers: `ReLU`, `Flatten`, `Unflatten`, `Identity`.

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

/// PyTorch's `nn.Unflatten(dim, unflattened_size)`: splits dimension `dim` (negative counts
/// from the end) into `unflattened_size`, whose product must equal its size; one entry may be
/// `-1` (inferred).
///
/// ```
/// use kiln::nn::{Module, Unflatten};
/// let u = Unflatten::new(1, &[2, -1]);
/// assert_eq!(u.repr(), "Unflatten(dim=1, unflattened_size=(2, -1))");
/// let x = candle_core::Tensor::zeros((3, 12), candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// assert_eq!(u.forward(&x)?.dims(), &[3, 2, 6]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unflatten {
    dim: isize,
    sizes: Vec<i64>,
}

impl Unflatten {
    /// `Unflatten(dim, unflattened_size)`.
    pub fn new(dim: isize, unflattened_size: &[i64]) -> Self {
        Unflatten {
            dim,
            sizes: unflattened_size.to_vec(),
        }
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing or mistyped entry.
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        let bad = |what: &str| Error::BadSpec {
            detail: format!("Unflatten: config '{what}' is missing or not an integer (list)"),
        };
        let dim = spec
            .config
            .get("dim")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| bad("dim"))?;
        let sizes = spec
            .config
            .get("unflattened_size")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| bad("unflattened_size"))?
            .iter()
            .map(|v| v.as_i64().ok_or_else(|| bad("unflattened_size")))
            .collect::<Result<Vec<i64>>>()?;
        Ok(Unflatten::new(dim as isize, &sizes))
    }

    fn target(&self, dims: &[usize]) -> Option<Vec<usize>> {
        let rank = dims.len() as isize;
        let d = if self.dim < 0 {
            self.dim + rank
        } else {
            self.dim
        };
        if d < 0 || d >= rank || self.sizes.is_empty() {
            return None;
        }
        let d = d as usize;
        let known: i64 = self.sizes.iter().filter(|&&s| s != -1).product();
        let holes = self.sizes.iter().filter(|&&s| s == -1).count();
        if self.sizes.iter().any(|&s| s < -1) || holes > 1 || known <= 0 && holes == 1 {
            return None;
        }
        let size = dims[d] as i64;
        let fill = if holes == 1 { size / known } else { 1 };
        let new: Vec<usize> = self
            .sizes
            .iter()
            .map(|&s| if s == -1 { fill as usize } else { s as usize })
            .collect();
        if new.iter().product::<usize>() != dims[d] {
            return None;
        }
        let mut out = dims[..d].to_vec();
        out.extend(new);
        out.extend_from_slice(&dims[d + 1..]);
        Some(out)
    }
}

impl Module for Unflatten {
    fn type_name(&self) -> &'static str {
        "Unflatten"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.target(x.dims()) {
            Some(t) => x.reshape(t).ctx("Unflatten"),
            None => Err(Error::InputRank {
                module: self.repr(),
                expected: format!(
                    "a dimension {} whose size is the product of unflattened_size {:?}",
                    self.dim, self.sizes
                ),
                shape: shape_str(x.dims()),
            }),
        }
    }
    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("Unflatten")
            .with("dim", self.dim as i64)
            .with("unflattened_size", self.sizes.clone())
    }
    fn extra_repr(&self) -> String {
        let s: Vec<String> = self.sizes.iter().map(|v| v.to_string()).collect();
        let t = if s.len() == 1 {
            format!("({},)", s[0])
        } else {
            format!("({})", s.join(", "))
        };
        format!("dim={}, unflattened_size={t}", self.dim)
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
