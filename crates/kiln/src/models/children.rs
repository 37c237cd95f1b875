//! `NamedChildren`: the ordered, replaceable children of a composite model.

use crate::error::{Error, Result};
use crate::nn::Module;
use crate::nn::module::{call_child, no_such_module};
use candle_core::Tensor;

/// Ordered `(name, module)` pairs; models keep their children here so that any child can be
/// replaced (`fc` for a new head) and rebuilt from a spec.
#[derive(Default)]
pub struct NamedChildren {
    items: Vec<(String, Box<dyn Module>)>,
}

impl NamedChildren {
    /// Appends a child.
    pub fn push(&mut self, name: &str, m: Box<dyn Module>) {
        self.items.push((name.to_string(), m));
    }

    /// Builds from a list, checking that exactly `names` are present, in that order.
    ///
    /// # Errors
    /// `K0405` naming the first missing or extra child.
    pub fn from_list(
        owner: &str,
        names: &[&str],
        list: Vec<(String, Box<dyn Module>)>,
    ) -> Result<Self> {
        let got: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
        if got != names {
            return Err(Error::BadSpec {
                detail: format!("{owner}: expected children {names:?}, got {got:?}"),
            });
        }
        Ok(NamedChildren { items: list })
    }

    /// The child named `name`.
    pub fn get(&self, owner: &str, name: &str) -> Result<&dyn Module> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.as_ref())
            .ok_or_else(|| no_such_module(owner, name, &self.list()))
    }

    /// Runs the child `name` on `x`, prefixing its name to errors.
    pub fn call(&self, owner: &str, name: &str, x: &Tensor) -> Result<Tensor> {
        call_child(name, self.get(owner, name)?, x)
    }

    /// Whether a child of that name exists.
    pub fn has(&self, name: &str) -> bool {
        self.items.iter().any(|(n, _)| n == name)
    }

    /// `(name, &module)` pairs for [`Module::children`].
    pub fn list(&self) -> Vec<(String, &dyn Module)> {
        self.items
            .iter()
            .map(|(n, m)| (n.clone(), m.as_ref()))
            .collect()
    }

    /// Mutable access for [`Module::child_mut`].
    pub fn get_mut(&mut self, name: &str) -> Option<&mut dyn Module> {
        self.items
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.as_mut() as &mut dyn Module)
    }

    /// Replacement for [`Module::replace_child`].
    pub fn replace(
        &mut self,
        owner: &str,
        name: &str,
        new: Box<dyn Module>,
    ) -> Result<Box<dyn Module>> {
        match self.items.iter().position(|(n, _)| n == name) {
            Some(i) => Ok(std::mem::replace(&mut self.items[i].1, new)),
            None => Err(no_such_module(owner, name, &self.list())),
        }
    }

    /// Specs of all children, for [`Module::spec`].
    pub fn add_specs(&self, mut spec: crate::nn::ModuleSpec) -> crate::nn::ModuleSpec {
        for (n, m) in &self.items {
            spec = spec.child(n.clone(), m.spec());
        }
        spec
    }
}

/// Implements the child-related `Module` methods by delegating to a `NamedChildren` field.
macro_rules! delegate_children {
    ($field:ident) => {
        fn children(&self) -> Vec<(String, &dyn $crate::nn::Module)> {
            self.$field.list()
        }
        fn child_mut(&mut self, name: &str) -> Option<&mut dyn $crate::nn::Module> {
            self.$field.get_mut(name)
        }
        fn replace_child(
            &mut self,
            name: &str,
            new: Box<dyn $crate::nn::Module>,
        ) -> $crate::Result<Box<dyn $crate::nn::Module>> {
            let owner = self.type_name();
            self.$field.replace(owner, name, new)
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    };
}
pub(crate) use delegate_children;
