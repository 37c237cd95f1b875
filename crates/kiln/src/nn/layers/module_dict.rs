//! PyTorch's `nn.ModuleDict`: modules of any types under string keys, in insertion order
//! (state-dict keys `name.param`). Like PyTorch's, it has no forward: look modules up by name.

use super::impl_as_any;
use super::sequential::check_child_name;
use crate::error::{Error, Result};
use crate::nn::module::no_such_module;
use crate::nn::{Module, ModuleSpec};
use candle_core::Tensor;

/// `nn.ModuleDict`: an insertion-ordered map from names to modules.
///
/// ```
/// use kiln::nn::{Linear, Module, ModuleDict, ReLU};
/// let mut d = ModuleDict::new();
/// d.insert("proj", Box::new(Linear::new(4, 2, true)?))?;
/// d.insert("act", Box::new(ReLU))?;
/// assert_eq!(d.keys().collect::<Vec<_>>(), ["proj", "act"]);
/// assert_eq!(d.state_dict().keys().collect::<Vec<_>>(), ["proj.weight", "proj.bias"]);
/// # Ok::<(), kiln::Error>(())
/// ```
#[derive(Default)]
pub struct ModuleDict {
    items: Vec<(String, Box<dyn Module>)>,
}

impl ModuleDict {
    /// An empty dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// From `(name, module)` pairs, in order.
    ///
    /// # Errors
    /// As [`ModuleDict::insert`], for a repeated name too.
    pub fn from_named<S: Into<String>>(
        items: impl IntoIterator<Item = (S, Box<dyn Module>)>,
    ) -> Result<Self> {
        let mut d = ModuleDict::new();
        for (k, m) in items {
            let k = k.into();
            check_child_name("ModuleDict", &k, d.keys())?;
            d.items.push((k, m));
        }
        Ok(d)
    }

    /// Inserts (or replaces, keeping its place) the module under `name`; returns the module
    /// it replaced.
    ///
    /// # Errors
    /// `K0003` for an empty or dotted name.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        m: Box<dyn Module>,
    ) -> Result<Option<Box<dyn Module>>> {
        let name = name.into();
        if let Some(i) = self.items.iter().position(|(n, _)| *n == name) {
            return Ok(Some(std::mem::replace(&mut self.items[i].1, m)));
        }
        check_child_name("ModuleDict", &name, std::iter::empty())?;
        self.items.push((name, m));
        Ok(None)
    }

    /// Removes and returns the module under `name` (PyTorch's `pop`).
    pub fn remove(&mut self, name: &str) -> Option<Box<dyn Module>> {
        let i = self.items.iter().position(|(n, _)| n == name)?;
        Some(self.items.remove(i).1)
    }

    /// The module under `name`.
    pub fn get(&self, name: &str) -> Option<&dyn Module> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.as_ref())
    }

    /// Whether `name` is a key.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The names, in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|(n, _)| n.as_str())
    }

    /// `(name, module)` pairs, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &dyn Module)> {
        self.items.iter().map(|(n, m)| (n.as_str(), m.as_ref()))
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl Module for ModuleDict {
    fn type_name(&self) -> &'static str {
        "ModuleDict"
    }

    fn forward(&self, _xs: &Tensor) -> Result<Tensor> {
        Err(Error::Unsupported {
            what: "calling a ModuleDict: it has no forward; look modules up by name (`dict.get(\"proj\")`)".into(),
        })
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.items
            .iter()
            .map(|(n, m)| (n.clone(), m.as_ref()))
            .collect()
    }

    fn child_mut(&mut self, name: &str) -> Option<&mut dyn Module> {
        let i = self.items.iter().position(|(n, _)| n == name)?;
        Some(self.items[i].1.as_mut() as &mut dyn Module)
    }

    fn replace_child(&mut self, name: &str, new: Box<dyn Module>) -> Result<Box<dyn Module>> {
        match self.items.iter().position(|(n, _)| n == name) {
            Some(i) => Ok(std::mem::replace(&mut self.items[i].1, new)),
            None => Err(no_such_module("ModuleDict", name, &self.children())),
        }
    }

    fn spec(&self) -> ModuleSpec {
        let mut s = ModuleSpec::new("ModuleDict");
        for (n, m) in &self.items {
            s = s.child(n.clone(), m.spec());
        }
        s
    }

    impl_as_any!();
}
