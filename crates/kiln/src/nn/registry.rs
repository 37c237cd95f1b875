//! Builds modules from [`ModuleSpec`]s: the built-in layers and models, plus user
//! architectures registered by name. This is how `load_model` rebuilds a model without any
//! code specific to it.
//!
//! ```
//! use kiln::nn::{Module, ModuleSpec, registry};
//! let spec = ModuleSpec::new("Linear").with("in_features", 4).with("out_features", 2);
//! let m = registry::build(&spec)?;
//! assert_eq!(m.state_dict().len(), 2);
//! # Ok::<(), kiln::Error>(())
//! ```

use super::layers::batchnorm::BatchNormKind;
use super::layers::{conv, sequential};
use super::{
    AdaptiveAvgPool2d, AvgPool2d, Dropout, Flatten, Identity, Linear, MaxPool2d, Module,
    ModuleSpec, ReLU,
};
use crate::error::{Error, Result};
use indexmap::IndexMap;
use std::sync::{Arc, OnceLock, RwLock};

/// A plain-function constructor (what `#[derive(Module)]` registers).
pub type BuildFn = fn(&ModuleSpec, Vec<(String, Box<dyn Module>)>) -> Result<Box<dyn Module>>;

/// A constructor: the spec's config plus the already-built children → the module.
pub type Builder = Arc<
    dyn Fn(&ModuleSpec, Vec<(String, Box<dyn Module>)>) -> Result<Box<dyn Module>> + Send + Sync,
>;

fn table() -> &'static RwLock<IndexMap<String, Builder>> {
    static TABLE: OnceLock<RwLock<IndexMap<String, Builder>>> = OnceLock::new();
    TABLE.get_or_init(|| RwLock::new(builtins()))
}

fn leaf<M: Module + 'static>(f: fn(&ModuleSpec) -> Result<M>) -> Builder {
    Arc::new(move |spec, _children| Ok(Box::new(f(spec)?) as Box<dyn Module>))
}

fn builtins() -> IndexMap<String, Builder> {
    let mut t: IndexMap<String, Builder> = IndexMap::new();
    t.insert(
        "Linear".into(),
        leaf(|s| {
            Linear::new(
                s.usize("in_features")?,
                s.usize("out_features")?,
                s.bool_or("bias", true)?,
            )
        }),
    );
    t.insert("Conv2d".into(), leaf(conv::from_spec));
    t.insert(
        "BatchNorm1d".into(),
        leaf(|s| super::layers::batchnorm::from_spec(s, BatchNormKind::OneD)),
    );
    t.insert(
        "BatchNorm2d".into(),
        leaf(|s| super::layers::batchnorm::from_spec(s, BatchNormKind::TwoD)),
    );
    t.insert("ReLU".into(), leaf(|_| Ok(ReLU)));
    t.insert("Identity".into(), leaf(|_| Ok(Identity)));
    t.insert(
        "Flatten".into(),
        leaf(|s| Ok(Flatten::new(s.usize_or("start_dim", 1)?))),
    );
    t.insert(
        "Dropout".into(),
        leaf(|s| Dropout::new(s.f64_or("p", 0.5)?)),
    );
    t.insert(
        "MaxPool2d".into(),
        leaf(|s| {
            let k = s.usize("kernel_size")?;
            Ok(MaxPool2d::with_ceil_mode(
                k,
                s.usize_or("stride", k)?,
                s.usize_or("padding", 0)?,
                s.bool_or("ceil_mode", false)?,
            ))
        }),
    );
    t.insert(
        "AvgPool2d".into(),
        leaf(|s| {
            let k = s.usize("kernel_size")?;
            Ok(AvgPool2d::with(
                k,
                s.usize_or("stride", k)?,
                s.usize_or("padding", 0)?,
            ))
        }),
    );
    t.insert(
        "AdaptiveAvgPool2d".into(),
        leaf(|s| {
            let o = s.usize_list("output_size")?;
            match o.as_slice() {
                [a] => Ok(AdaptiveAvgPool2d::new(*a, *a)),
                [a, b] => Ok(AdaptiveAvgPool2d::new(*a, *b)),
                _ => Err(Error::BadSpec {
                    detail: "AdaptiveAvgPool2d: output_size needs 1 or 2 entries".into(),
                }),
            }
        }),
    );
    register_layers(&mut t);
    t.insert(
        "Sequential".into(),
        Arc::new(|_, children| Ok(Box::new(sequential::from_children(children)?))),
    );
    t.insert(
        "DataParallel".into(),
        Arc::new(crate::parallel::data_parallel_from_spec),
    );
    t.insert(
        "ModuleList".into(),
        Arc::new(|_, children| {
            Ok(Box::new(super::layers::ModuleList::from_children(children)?) as Box<dyn Module>)
        }),
    );
    crate::models::register_builtins(&mut t);
    // Every `#[derive(Module)]` struct linked into the program.
    for r in inventory::iter::<crate::nn::derive_support::Registration> {
        let build = r.build;
        t.insert(r.name.to_string(), Arc::new(build));
    }
    t
}

/// The layers of issues 13 and 14 (LayerNorm, Embedding, activations); `BatchNorm1d` and
/// `BatchNorm2d` above build [`super::BatchNorm`], which [`super::BatchNorm1d`] /
/// [`super::BatchNorm2d`] wrap (same type name, spec and state dict).
fn register_layers(t: &mut IndexMap<String, Builder>) {
    use super::layers::{
        Elu, Embedding, Gelu, Hardsigmoid, Hardswish, LayerNorm, LeakyReLU, LogSoftmax, Mish,
        ReLU6, SiLU, Sigmoid, Softmax, Softplus, Tanh,
    };
    t.insert("LayerNorm".into(), leaf(LayerNorm::from_spec));
    t.insert("Embedding".into(), leaf(Embedding::from_spec));
    t.insert("GELU".into(), leaf(Gelu::from_spec));
    t.insert("SiLU".into(), leaf(SiLU::from_spec));
    t.insert("Sigmoid".into(), leaf(|_| Ok(Sigmoid)));
    t.insert("Tanh".into(), leaf(|_| Ok(Tanh)));
    t.insert("LeakyReLU".into(), leaf(LeakyReLU::from_spec));
    t.insert("ELU".into(), leaf(Elu::from_spec));
    t.insert("Hardswish".into(), leaf(Hardswish::from_spec));
    t.insert("Hardsigmoid".into(), leaf(Hardsigmoid::from_spec));
    t.insert("Mish".into(), leaf(Mish::from_spec));
    t.insert("Softplus".into(), leaf(Softplus::from_spec));
    t.insert("ReLU6".into(), leaf(ReLU6::from_spec));
    t.insert("Softmax".into(), leaf(Softmax::from_spec));
    t.insert("LogSoftmax".into(), leaf(LogSoftmax::from_spec));
}

/// Registers (or replaces) a builder for `type_name`, so `load_model` can rebuild files
/// that name it.
pub fn register(type_name: &str, builder: Builder) {
    table()
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(type_name.to_string(), builder);
}

/// Names of every registered type, built-ins first.
pub fn registered() -> Vec<String> {
    table()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect()
}

/// Builds a module (children first) from a spec.
///
/// # Errors
/// `K0403` for a type that is not registered (naming the registered ones); `K0405` for a bad
/// config.
pub fn build(spec: &ModuleSpec) -> Result<Box<dyn Module>> {
    build_in(spec, "<spec>")
}

/// Like [`build`], naming `source` (a file) in the unknown-architecture error.
pub fn build_in(spec: &ModuleSpec, source: &str) -> Result<Box<dyn Module>> {
    build_depth(spec, source, 0)
}

const MAX_DEPTH: usize = 64;

fn build_depth(spec: &ModuleSpec, source: &str, depth: usize) -> Result<Box<dyn Module>> {
    if depth > MAX_DEPTH {
        return Err(Error::BadSpec {
            detail: format!("modules nested deeper than {MAX_DEPTH}"),
        });
    }
    let builder = table()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&spec.type_name)
        .cloned()
        .ok_or_else(|| Error::UnknownArchitecture {
            name: spec.type_name.clone(),
            path: source.to_string(),
            registered: registered().join(", "),
        })?;
    let mut children = Vec::with_capacity(spec.children.len());
    for c in &spec.children {
        children.push((c.name.clone(), build_depth(&c.module, source, depth + 1)?));
    }
    builder(spec, children)
}

/// Takes the child named `name` out of a list of built children.
///
/// # Errors
/// `K0405` when it is missing.
pub fn take_child(
    children: &mut Vec<(String, Box<dyn Module>)>,
    owner: &str,
    name: &str,
) -> Result<Box<dyn Module>> {
    let i = children
        .iter()
        .position(|(n, _)| n == name)
        .ok_or_else(|| Error::BadSpec {
            detail: format!("{owner}: child '{name}' is missing"),
        })?;
    Ok(children.remove(i).1)
}
