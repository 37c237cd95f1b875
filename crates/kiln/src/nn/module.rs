//! The `Module` trait: PyTorch's `nn.Module` — forward, train/eval, named parameters and
//! buffers in registration order, `state_dict` / `load_state_dict`, device and dtype moves.

use super::param::{Buffer, Param, ParamId};
use super::spec::ModuleSpec;
use super::state_dict::{LoadReport, ShapeMismatch, StateDict};
use crate::error::{Context, Error, Result};
use candle_core::{DType, Device, Tensor};
use indexmap::IndexMap;
use std::any::Any;
use std::collections::HashSet;

/// A neural-network module. Implementors describe their own parameters, buffers and children;
/// everything recursive (names, state dicts, moves, modes) is provided.
///
/// Names follow PyTorch exactly: a module's own parameters come first, then its own
/// buffers, then each child in registration order, joined with dots (`layer1.0.bn1.weight`).
pub trait Module: Send + Sync + Any {
    /// The class name PyTorch would print (`"Linear"`, `"ResNet"`); used in messages.
    fn type_name(&self) -> &'static str;

    /// Runs the module on a batch.
    fn forward(&self, xs: &Tensor) -> Result<Tensor>;

    /// This module's own parameters (not its children's), in registration order.
    fn local_params(&self) -> Vec<(String, Param)> {
        Vec::new()
    }

    /// This module's own buffers (persistent or not), in registration order.
    fn local_buffers(&self) -> Vec<(String, Buffer)> {
        Vec::new()
    }

    /// Direct children with their attribute names, in registration order.
    fn children(&self) -> Vec<(String, &dyn Module)> {
        Vec::new()
    }

    /// A direct child, mutably (used to reach nested modules for replacement).
    fn child_mut(&mut self, _name: &str) -> Option<&mut dyn Module> {
        None
    }

    /// Replaces the direct child `name`, returning the old one.
    ///
    /// # Errors
    /// `K0404` when there is no such child or it cannot be replaced.
    fn replace_child(&mut self, name: &str, _new: Box<dyn Module>) -> Result<Box<dyn Module>> {
        Err(no_such_module(self.type_name(), name, &self.children()))
    }

    /// Sets this module's own training flag (containers need not store one).
    fn set_training(&self, _training: bool) {}

    /// This module's own training flag, if it keeps one.
    fn training_flag(&self) -> Option<bool> {
        None
    }

    /// The declarative description `save_model` stores (type, config, children).
    fn spec(&self) -> ModuleSpec;

    /// PyTorch's `_version` of this module class, written to `_metadata`.
    fn version(&self) -> i64 {
        1
    }

    /// Extra text for the printed representation, like PyTorch's `extra_repr`.
    fn extra_repr(&self) -> String {
        String::new()
    }

    /// For downcasting to the concrete type.
    fn as_any(&self) -> &dyn Any;

    /// Takes a boxed module back as this concrete type (used by `#[derive(Module)]` fields
    /// and whole-model rebuilding); the box is returned when it holds another type.
    ///
    /// # Errors
    /// The original box, when it holds another type.
    fn from_boxed(b: Box<dyn Module>) -> std::result::Result<Self, Box<dyn Module>>
    where
        Self: Sized,
    {
        if !b.as_any().is::<Self>() {
            return Err(b);
        }
        let any: Box<dyn Any> = b;
        match any.downcast::<Self>() {
            Ok(m) => Ok(*m),
            // Unreachable after the `is` check; an Identity keeps this free of panics.
            Err(_) => Err(Box::new(crate::nn::Identity)),
        }
    }

    // ------------------------------------------------------------------ provided

    /// All parameters with dotted names, shared ones listed once (PyTorch's
    /// `named_parameters()`).
    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (n, p) in self.local_params() {
            if seen.insert(p.id()) {
                out.push((n, p));
            }
        }
        for (cn, c) in self.children() {
            collect_params(c, &cn, &mut out, &mut seen);
        }
        out
    }

    /// All parameters in order.
    fn parameters(&self) -> Vec<Param> {
        self.named_parameters()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Parameters that require a gradient, with names.
    fn trainable_parameters(&self) -> Vec<(String, Param)> {
        self.named_parameters()
            .into_iter()
            .filter(|(_, p)| p.requires_grad())
            .collect()
    }

    /// All buffers with dotted names (persistent and not).
    fn named_buffers(&self) -> Vec<(String, Buffer)> {
        let mut out = self.local_buffers();
        for (cn, c) in self.children() {
            for (n, b) in c.named_buffers() {
                out.push((format!("{cn}.{n}"), b));
            }
        }
        out
    }

    /// Total number of parameter elements.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|p| p.elem_count()).sum()
    }

    /// Parameters and persistent buffers, in PyTorch's `state_dict()` order, with `_metadata`.
    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        let mut meta = IndexMap::new();
        meta.insert(String::new(), self.version());
        for (n, p) in self.local_params() {
            sd.insert(n, p.detached());
        }
        for (n, b) in self.local_buffers() {
            if b.persistent() {
                sd.insert(n, b.get());
            }
        }
        for (cn, c) in self.children() {
            collect_state(c, &cn, &mut sd, &mut meta);
        }
        sd.metadata = Some(meta);
        sd
    }

    /// Copies `sd` into this module's parameters and buffers in place (identity and
    /// `requires_grad` are kept; values are cast to each parameter's dtype and device).
    ///
    /// Strict mode fails, before copying anything, with one error listing every missing,
    /// unexpected and mismatched key in PyTorch's wording. Non-strict mode loads what fits
    /// and reports the rest; unlike PyTorch it skips shape mismatches instead of raising, so a
    /// fine-tuning head of another size can be left out.
    ///
    /// # Errors
    /// `K0401` (strict) with the full report; `K0001` if a copy fails in the backend.
    fn load_state_dict(&self, sd: &StateDict, strict: bool) -> Result<LoadReport> {
        let targets = state_targets(self.local_params(), self.local_buffers(), &self.children());
        let mut report = LoadReport::default();
        let mut expected = HashSet::new();
        for (key, target) in &targets {
            expected.insert(key.as_str());
            match sd.get(key) {
                None => report.missing_keys.push(key.clone()),
                Some(v) => {
                    let model = target.dims();
                    if v.dims() != model.as_slice() {
                        report.mismatched.push(ShapeMismatch {
                            key: key.clone(),
                            checkpoint: v.dims().to_vec(),
                            model,
                        });
                    }
                }
            }
        }
        report.unexpected_keys = sd
            .keys()
            .filter(|k| !expected.contains(k))
            .map(str::to_string)
            .collect();
        if strict && !report.is_clean() {
            return Err(report.to_error(self.type_name()));
        }
        for (key, target) in &targets {
            if report.missing_keys.contains(key) || report.mismatched.iter().any(|m| &m.key == key)
            {
                continue;
            }
            if let Some(v) = sd.get(key) {
                target.set(v).map_err(|e| match e {
                    Error::Backend { source, .. } => {
                        Error::backend(format!("load_state_dict: copying {key}"), source)
                    }
                    other => other,
                })?;
                report.loaded.push(key.clone());
            }
        }
        Ok(report)
    }

    /// Puts this module and all descendants in training (`true`) or evaluation mode.
    fn train(&self, mode: bool) {
        self.set_training(mode);
        for (_, c) in self.children() {
            c.train(mode);
        }
    }

    /// Evaluation mode (`train(false)`).
    fn eval(&self) {
        self.train(false);
    }

    /// Whether the module is in training mode (the first flag found, depth first; modules
    /// start in training mode as in PyTorch).
    fn is_training(&self) -> bool {
        if let Some(t) = self.training_flag() {
            return t;
        }
        for (_, c) in self.children() {
            if let Some(t) = find_flag(c) {
                return t;
            }
        }
        true
    }

    /// Moves every parameter and buffer to `device` in place (handles keep their identity).
    fn to_device(&self, device: &Device) -> Result<()> {
        for p in self.parameters() {
            let moved = p.detached().to_device(device).ctx("Module::to_device")?;
            p.replace(&moved)?;
        }
        for (_, b) in self.named_buffers() {
            b.replace(b.get().to_device(device).ctx("Module::to_device")?);
        }
        Ok(())
    }

    /// Casts floating-point parameters and buffers to `dtype` in place; integer buffers such
    /// as `num_batches_tracked` keep their dtype, as in PyTorch.
    fn to_dtype(&self, dtype: DType) -> Result<()> {
        if !dtype.is_float() {
            return Err(Error::invalid(
                "Module::to_dtype",
                format!("{dtype:?}"),
                "a floating-point dtype (f64, f32, f16, bf16)",
            ));
        }
        for p in self.parameters() {
            if p.dtype().is_float() {
                let cast = p.detached().to_dtype(dtype).ctx("Module::to_dtype")?;
                p.replace(&cast)?;
            }
        }
        for (_, b) in self.named_buffers() {
            let v = b.get();
            if v.dtype().is_float() {
                b.replace(v.to_dtype(dtype).ctx("Module::to_dtype")?);
            }
        }
        Ok(())
    }

    /// The submodule at a dotted path (`"layer4.1.conv2"`); `""` is the module itself.
    ///
    /// # Errors
    /// `K0404` naming the available children at the point where the path breaks.
    fn get_submodule(&self, path: &str) -> Result<&dyn Module> {
        let mut parts = path.split('.').filter(|s| !s.is_empty());
        let Some(first) = parts.next() else {
            return Err(Error::invalid(
                "module path",
                "''",
                "a child name such as 'fc' or 'layer4.1'",
            ));
        };
        let children = self.children();
        let mut cur = children
            .iter()
            .find(|(n, _)| n == first)
            .map(|(_, c)| *c)
            .ok_or_else(|| no_such_module(self.type_name(), first, &children))?;
        for part in parts {
            let ch = cur.children();
            cur = ch
                .iter()
                .find(|(n, _)| n == part)
                .map(|(_, c)| *c)
                .ok_or_else(|| no_such_module(cur.type_name(), part, &ch))?;
        }
        Ok(cur)
    }

    /// Replaces the submodule at a dotted path (e.g. `"fc"`), returning the old one.
    ///
    /// # Errors
    /// `K0404` when the path does not name a replaceable submodule.
    fn replace_submodule(&mut self, path: &str, new: Box<dyn Module>) -> Result<Box<dyn Module>> {
        let Some((parent, last)) = path.rsplit_once('.') else {
            return self.replace_child(path, new);
        };
        let mut parts = parent.split('.');
        let first = parts.next().unwrap_or_default();
        let err = no_such_module(self.type_name(), first, &self.children());
        let mut cur = self.child_mut(first).ok_or(err)?;
        for part in parts {
            let err = no_such_module(cur.type_name(), part, &cur.children());
            cur = cur.child_mut(part).ok_or(err)?;
        }
        cur.replace_child(last, new)
    }

    /// All modules with dotted paths, the module itself first as `""` excluded; depth first.
    fn named_modules(&self) -> Vec<(String, &dyn Module)> {
        let mut out = Vec::new();
        for (cn, c) in self.children() {
            out.push((cn.clone(), c));
            for (n, m) in c.named_modules() {
                out.push((format!("{cn}.{n}"), m));
            }
        }
        out
    }

    /// PyTorch-style printed structure.
    fn repr(&self) -> String {
        let children = self.children();
        let extra = self.extra_repr();
        if children.is_empty() {
            return format!("{}({extra})", self.type_name());
        }
        let mut s = format!("{}(", self.type_name());
        if !extra.is_empty() {
            s.push_str(&format!("\n  {extra}"));
        }
        for (n, c) in children {
            let inner = c.repr().replace('\n', "\n  ");
            s.push_str(&format!("\n  ({n}): {inner}"));
        }
        s.push_str("\n)");
        s
    }
}

/// A parameter or buffer that `load_state_dict` writes into.
enum Target {
    Param(Param),
    Buffer(Buffer),
}

impl Target {
    fn dims(&self) -> Vec<usize> {
        match self {
            Target::Param(p) => p.dims(),
            Target::Buffer(b) => b.get().dims().to_vec(),
        }
    }
    fn set(&self, v: &Tensor) -> Result<()> {
        match self {
            Target::Param(p) => p.set(v),
            Target::Buffer(b) => b.set(v),
        }
    }
}

fn state_targets(
    params: Vec<(String, Param)>,
    buffers: Vec<(String, Buffer)>,
    children: &[(String, &dyn Module)],
) -> Vec<(String, Target)> {
    let mut out: Vec<(String, Target)> = params
        .into_iter()
        .map(|(n, p)| (n, Target::Param(p)))
        .collect();
    out.extend(
        buffers
            .into_iter()
            .filter(|(_, b)| b.persistent())
            .map(|(n, b)| (n, Target::Buffer(b))),
    );
    for (cn, c) in children {
        for (n, t) in state_targets(c.local_params(), c.local_buffers(), &c.children()) {
            out.push((format!("{cn}.{n}"), t));
        }
    }
    out
}

fn collect_params(
    m: &dyn Module,
    prefix: &str,
    out: &mut Vec<(String, Param)>,
    seen: &mut HashSet<ParamId>,
) {
    for (n, p) in m.local_params() {
        if seen.insert(p.id()) {
            out.push((format!("{prefix}.{n}"), p));
        }
    }
    for (cn, c) in m.children() {
        collect_params(c, &format!("{prefix}.{cn}"), out, seen);
    }
}

fn collect_state(
    m: &dyn Module,
    prefix: &str,
    sd: &mut StateDict,
    meta: &mut IndexMap<String, i64>,
) {
    meta.insert(prefix.to_string(), m.version());
    for (n, p) in m.local_params() {
        sd.insert(format!("{prefix}.{n}"), p.detached());
    }
    for (n, b) in m.local_buffers() {
        if b.persistent() {
            sd.insert(format!("{prefix}.{n}"), b.get());
        }
    }
    for (cn, c) in m.children() {
        collect_state(c, &format!("{prefix}.{cn}"), sd, meta);
    }
}

fn find_flag(m: &dyn Module) -> Option<bool> {
    if let Some(t) = m.training_flag() {
        return Some(t);
    }
    m.children().into_iter().find_map(|(_, c)| find_flag(c))
}

fn child_names(children: &[(String, &dyn Module)]) -> String {
    if children.is_empty() {
        "(none)".to_string()
    } else {
        children
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The `K0404` error for a missing child.
pub fn no_such_module(model: &str, name: &str, children: &[(String, &dyn Module)]) -> Error {
    Error::NoSuchModule {
        model: model.to_string(),
        name: name.to_string(),
        available: child_names(children),
    }
}

/// Runs a child's forward, prefixing the child's name to the module named in its errors,
/// so a message says `features.0: Conv2d(...)` rather than just `Conv2d(...)`.
pub fn call_child(name: &str, child: &dyn Module, xs: &Tensor) -> Result<Tensor> {
    child.forward(xs).map_err(|e| e.within(name))
}

impl Error {
    /// Prefixes a child's attribute name to the `module` field of layer errors.
    pub fn within(self, name: &str) -> Error {
        fn prefix(name: &str, module: String) -> String {
            match module.split_once(": ") {
                Some((path, rest)) => format!("{name}.{path}: {rest}"),
                None => format!("{name}: {module}"),
            }
        }
        match self {
            Error::ConvChannels {
                module,
                groups,
                weight,
                input,
                expected,
                got,
            } => Error::ConvChannels {
                module: prefix(name, module),
                groups,
                weight,
                input,
                expected,
                got,
            },
            Error::LinearInFeatures {
                module,
                rows,
                got,
                in_features,
                out_features,
            } => Error::LinearInFeatures {
                module: prefix(name, module),
                rows,
                got,
                in_features,
                out_features,
            },
            Error::InputRank {
                module,
                expected,
                shape,
            } => Error::InputRank {
                module: prefix(name, module),
                expected,
                shape,
            },
            Error::SequenceShape {
                module,
                what,
                got,
                expected,
            } => Error::SequenceShape {
                module: prefix(name, module),
                what,
                got,
                expected,
            },
            Error::BatchNormSingleValue { module, shape } => Error::BatchNormSingleValue {
                module: prefix(name, module),
                shape,
            },
            Error::DeviceMismatch {
                module,
                weights,
                input,
            } => Error::DeviceMismatch {
                module: prefix(name, module),
                weights,
                input,
            },
            Error::DtypeMismatch {
                module,
                weights,
                input,
            } => Error::DtypeMismatch {
                module: prefix(name, module),
                weights,
                input,
            },
            other => other,
        }
    }
}
