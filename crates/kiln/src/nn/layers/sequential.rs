//! `Sequential`: children run in order, named `"0"`, `"1"`, … as in PyTorch.

use super::impl_as_any;
use crate::error::{Error, Result};
use crate::nn::module::{call_child, no_such_module};
use crate::nn::{Module, ModuleSpec};
use candle_core::Tensor;

/// An ordered container of modules.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty container.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a module (builder style, like the arguments of `nn.Sequential(...)`).
    pub fn with(mut self, m: impl Module) -> Self {
        self.layers.push(Box::new(m));
        self
    }

    /// Appends a boxed module.
    pub fn push(&mut self, m: Box<dyn Module>) {
        self.layers.push(m);
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether it has no children.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The child at `i`.
    pub fn get(&self, i: usize) -> Option<&dyn Module> {
        self.layers.get(i).map(|b| b.as_ref())
    }
}

impl From<Vec<Box<dyn Module>>> for Sequential {
    fn from(layers: Vec<Box<dyn Module>>) -> Self {
        Sequential { layers }
    }
}

impl Module for Sequential {
    fn type_name(&self) -> &'static str {
        "Sequential"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            x = call_child(&i.to_string(), l.as_ref(), &x)?;
        }
        Ok(x)
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l.as_ref()))
            .collect()
    }

    fn child_mut(&mut self, name: &str) -> Option<&mut dyn Module> {
        let i: usize = name.parse().ok()?;
        self.layers
            .get_mut(i)
            .map(|b| b.as_mut() as &mut dyn Module)
    }

    fn replace_child(&mut self, name: &str, new: Box<dyn Module>) -> Result<Box<dyn Module>> {
        let idx = name
            .parse::<usize>()
            .ok()
            .filter(|&i| i < self.layers.len());
        match idx {
            Some(i) => Ok(std::mem::replace(&mut self.layers[i], new)),
            None => Err(no_such_module("Sequential", name, &self.children())),
        }
    }

    fn spec(&self) -> ModuleSpec {
        let mut s = ModuleSpec::new("Sequential");
        for (i, l) in self.layers.iter().enumerate() {
            s = s.child(i.to_string(), l.spec());
        }
        s
    }

    impl_as_any!();
}

/// Builds a Sequential from already-built children (their names must be 0, 1, …).
pub(crate) fn from_children(children: Vec<(String, Box<dyn Module>)>) -> Result<Sequential> {
    let mut layers = Vec::with_capacity(children.len());
    for (i, (name, m)) in children.into_iter().enumerate() {
        if name != i.to_string() {
            return Err(Error::BadSpec {
                detail: format!("Sequential child {i} is named '{name}', expected '{i}'"),
            });
        }
        layers.push(m);
    }
    Ok(Sequential { layers })
}
