//! `Sequential`: children run in order, named `"0"`, `"1"`, … as in PyTorch, or with the
//! names given to [`Sequential::from_named`] (PyTorch's `nn.Sequential(OrderedDict(...))`).

use super::impl_as_any;
use crate::error::{Error, Result};
use crate::nn::module::{call_child, no_such_module};
use crate::nn::{Module, ModuleSpec};
use candle_core::Tensor;

/// An ordered container of modules.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<(String, Box<dyn Module>)>,
}

impl Sequential {
    /// An empty container.
    pub fn new() -> Self {
        Self::default()
    }

    /// Named children, PyTorch's `nn.Sequential(OrderedDict([("conv", ...), ...]))`: the
    /// state-dict keys are `conv.weight`, ….
    ///
    /// ```
    /// use kiln::nn::{Linear, Module, ReLU, Sequential};
    /// let s = Sequential::from_named([
    ///     ("fc", Box::new(Linear::new(4, 2, true)?) as Box<dyn Module>),
    ///     ("act", Box::new(ReLU)),
    /// ])?;
    /// assert_eq!(s.state_dict().keys().collect::<Vec<_>>(), ["fc.weight", "fc.bias"]);
    /// # Ok::<(), kiln::Error>(())
    /// ```
    ///
    /// # Errors
    /// `K0003` for an empty, dotted or repeated name.
    pub fn from_named<S: Into<String>>(
        children: impl IntoIterator<Item = (S, Box<dyn Module>)>,
    ) -> Result<Self> {
        let mut s = Sequential::new();
        for (name, m) in children {
            s.push_named(name, m)?;
        }
        Ok(s)
    }

    /// Appends a named child (PyTorch's `add_module(name, module)`).
    ///
    /// # Errors
    /// `K0003` for an empty, dotted or repeated name.
    pub fn push_named(&mut self, name: impl Into<String>, m: Box<dyn Module>) -> Result<()> {
        let name = name.into();
        check_child_name(
            "Sequential",
            &name,
            self.layers.iter().map(|(n, _)| n.as_str()),
        )?;
        self.layers.push((name, m));
        Ok(())
    }

    /// Appends a module (builder style, like the arguments of `nn.Sequential(...)`), named by
    /// its index.
    pub fn with(mut self, m: impl Module) -> Self {
        self.push(Box::new(m));
        self
    }

    /// Appends a boxed module, named by its index.
    pub fn push(&mut self, m: Box<dyn Module>) {
        let name = self.layers.len().to_string();
        self.layers.push((name, m));
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
        self.layers.get(i).map(|(_, b)| b.as_ref())
    }

    /// The child named `name`.
    pub fn get_named(&self, name: &str) -> Option<&dyn Module> {
        self.position(name).map(|i| self.layers[i].1.as_ref())
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|(n, _)| n == name)
    }
}

/// Checks a container child's name: non-empty, no `.`, not taken.
pub(crate) fn check_child_name<'a>(
    container: &str,
    name: &str,
    mut taken: impl Iterator<Item = &'a str>,
) -> Result<()> {
    if name.is_empty() || name.contains('.') {
        return Err(Error::invalid(
            format!("{container} child name"),
            format!("'{name}'"),
            "a non-empty name without '.' (module name can't contain \".\")",
        ));
    }
    if taken.any(|n| n == name) {
        return Err(Error::invalid(
            format!("{container} child name"),
            format!("'{name}'"),
            "a name not already used by another child",
        ));
    }
    Ok(())
}

impl From<Vec<Box<dyn Module>>> for Sequential {
    fn from(layers: Vec<Box<dyn Module>>) -> Self {
        let mut s = Sequential::new();
        for m in layers {
            s.push(m);
        }
        s
    }
}

impl Module for Sequential {
    fn type_name(&self) -> &'static str {
        "Sequential"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (name, l) in &self.layers {
            x = call_child(name, l.as_ref(), &x)?;
        }
        Ok(x)
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.layers
            .iter()
            .map(|(n, l)| (n.clone(), l.as_ref()))
            .collect()
    }

    fn child_mut(&mut self, name: &str) -> Option<&mut dyn Module> {
        let i = self.position(name)?;
        Some(self.layers[i].1.as_mut() as &mut dyn Module)
    }

    fn replace_child(&mut self, name: &str, new: Box<dyn Module>) -> Result<Box<dyn Module>> {
        match self.position(name) {
            Some(i) => Ok(std::mem::replace(&mut self.layers[i].1, new)),
            None => Err(no_such_module("Sequential", name, &self.children())),
        }
    }

    fn spec(&self) -> ModuleSpec {
        let mut s = ModuleSpec::new("Sequential");
        for (n, l) in &self.layers {
            s = s.child(n.clone(), l.spec());
        }
        s
    }

    impl_as_any!();
}

/// Builds a Sequential from already-built children (names `0`, `1`, … or any others).
pub(crate) fn from_children(children: Vec<(String, Box<dyn Module>)>) -> Result<Sequential> {
    Sequential::from_named(children).map_err(|e| Error::BadSpec {
        detail: format!("Sequential: {e}"),
    })
}
