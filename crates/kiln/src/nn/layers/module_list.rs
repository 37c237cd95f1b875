//! PyTorch's `nn.ModuleList`: `Vec<M>` of one module type (a `#[derive(Module)]` field such
//! as `blocks: Vec<Block>`, keys `blocks.0.conv1.weight`), and [`ModuleList`] for modules of
//! mixed types. Neither has a forward of its own: iterate over it, as in PyTorch.

use super::impl_as_any;
use crate::error::{Error, Result};
use crate::nn::derive_support::ModuleField;
use crate::nn::module::no_such_module;
use crate::nn::{Module, ModuleSpec};
use candle_core::Tensor;

fn no_forward() -> Error {
    Error::Unsupported {
        what: "calling a ModuleList: it has no forward; iterate over its modules (`for b in &self.blocks { x = b.forward(&x)? }`)".into(),
    }
}

fn index(name: &str, len: usize) -> Option<usize> {
    name.parse::<usize>().ok().filter(|&i| i < len)
}

/// PyTorch's `ModuleList.__repr__`: runs of identical children print once, as
/// `(0-2): 3 x Block(...)`.
fn list_repr(children: &[(String, &dyn Module)]) -> String {
    let mut groups: Vec<(usize, usize, String)> = Vec::new();
    for (i, (_, c)) in children.iter().enumerate() {
        let r = c.repr();
        match groups.last_mut() {
            Some(g) if g.2 == r => g.1 = i,
            _ => groups.push((i, i, r)),
        }
    }
    if groups.is_empty() {
        return "ModuleList()".into();
    }
    let lines: Vec<String> = groups
        .iter()
        .map(|(a, b, r)| {
            let line = if a == b {
                format!("({a}): {r}")
            } else {
                format!("({a}-{b}): {} x {r}", b - a + 1)
            };
            line.replace('\n', "\n  ")
        })
        .collect();
    format!("ModuleList(\n  {}\n)", lines.join("\n  "))
}

fn list_spec<'a>(items: impl Iterator<Item = &'a dyn Module>) -> ModuleSpec {
    let mut s = ModuleSpec::new("ModuleList");
    for (i, m) in items.enumerate() {
        s = s.child(i.to_string(), m.spec());
    }
    s
}

impl<M: Module> Module for Vec<M> {
    fn type_name(&self) -> &'static str {
        "ModuleList"
    }

    fn forward(&self, _xs: &Tensor) -> Result<Tensor> {
        Err(no_forward())
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m as &dyn Module))
            .collect()
    }

    fn child_mut(&mut self, name: &str) -> Option<&mut dyn Module> {
        let i = index(name, self.len())?;
        self.get_mut(i).map(|m| m as &mut dyn Module)
    }

    fn replace_child(&mut self, name: &str, new: Box<dyn Module>) -> Result<Box<dyn Module>> {
        match index(name, self.len()).and_then(|i| self.get_mut(i)) {
            Some(slot) => match slot.replace_field("ModuleList", name, new) {
                crate::nn::derive_support::Replaced::Done(r) => r,
                crate::nn::derive_support::Replaced::NotAChild(_) => {
                    Err(no_such_module("ModuleList", name, &self.children()))
                }
            },
            None => Err(no_such_module("ModuleList", name, &self.children())),
        }
    }

    fn spec(&self) -> ModuleSpec {
        list_spec(self.iter().map(|m| m as &dyn Module))
    }

    fn repr(&self) -> String {
        list_repr(&self.children())
    }

    fn from_boxed(b: Box<dyn Module>) -> std::result::Result<Self, Box<dyn Module>> {
        if b.as_any().is::<Vec<M>>() {
            let any: Box<dyn std::any::Any> = b;
            return any
                .downcast::<Vec<M>>()
                .map(|v| *v)
                .map_err(|_| Box::new(ModuleList::new()) as Box<dyn Module>);
        }
        if !b.as_any().is::<ModuleList>() {
            return Err(b);
        }
        let any: Box<dyn std::any::Any> = b;
        let list = match any.downcast::<ModuleList>() {
            Ok(l) => *l,
            Err(_) => return Err(Box::new(ModuleList::new())),
        };
        let mut out = Vec::with_capacity(list.items.len());
        let mut rest = list.items.into_iter();
        while let Some(m) = rest.next() {
            match M::from_boxed(m) {
                Ok(m) => out.push(m),
                Err(bad) => {
                    // Give back a list holding what was there, so the caller can name it.
                    let mut back = ModuleList::new();
                    back.push(bad);
                    for m in rest {
                        back.push(m);
                    }
                    return Err(Box::new(back));
                }
            }
        }
        Ok(out)
    }

    impl_as_any!();
}

/// `nn.ModuleList` of modules of any types (children `"0"`, `"1"`, …).
#[derive(Default)]
pub struct ModuleList {
    items: Vec<Box<dyn Module>>,
}

impl ModuleList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a module.
    pub fn push(&mut self, m: Box<dyn Module>) {
        self.items.push(m);
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The module at `i`.
    pub fn get(&self, i: usize) -> Option<&dyn Module> {
        self.items.get(i).map(|b| b.as_ref())
    }

    /// The modules in order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Module> {
        self.items.iter().map(|b| b.as_ref())
    }

    /// Builds a list from already-built children named `0`, `1`, ….
    ///
    /// # Errors
    /// `K0405` when a child's name is not its index.
    pub fn from_children(children: Vec<(String, Box<dyn Module>)>) -> Result<Self> {
        let mut items = Vec::with_capacity(children.len());
        for (i, (name, m)) in children.into_iter().enumerate() {
            if name != i.to_string() {
                return Err(Error::BadSpec {
                    detail: format!("ModuleList child {i} is named '{name}', expected '{i}'"),
                });
            }
            items.push(m);
        }
        Ok(ModuleList { items })
    }
}

impl From<Vec<Box<dyn Module>>> for ModuleList {
    fn from(items: Vec<Box<dyn Module>>) -> Self {
        ModuleList { items }
    }
}

impl Module for ModuleList {
    fn type_name(&self) -> &'static str {
        "ModuleList"
    }

    fn forward(&self, _xs: &Tensor) -> Result<Tensor> {
        Err(no_forward())
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m))
            .collect()
    }

    fn child_mut(&mut self, name: &str) -> Option<&mut dyn Module> {
        let i = index(name, self.items.len())?;
        self.items.get_mut(i).map(|b| b.as_mut() as &mut dyn Module)
    }

    fn replace_child(&mut self, name: &str, new: Box<dyn Module>) -> Result<Box<dyn Module>> {
        match index(name, self.items.len()) {
            Some(i) => Ok(std::mem::replace(&mut self.items[i], new)),
            None => Err(no_such_module("ModuleList", name, &self.children())),
        }
    }

    fn spec(&self) -> ModuleSpec {
        list_spec(self.iter())
    }

    impl_as_any!();
}
