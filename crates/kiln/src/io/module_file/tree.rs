//! The module tree of a whole-module pickle: each `nn.Module` record's `_parameters`,
//! `_buffers` (less `_non_persistent_buffers_set`) and `_modules`, read from the inert
//! objects the structural unpickler made; and the state dict `net.state_dict()` gives.
//!
//! TorchScript objects (`__torch__.…` classes) keep parameters, buffers and submodules as
//! plain attributes: tensors are taken as entries, `__torch__` objects as submodules, in
//! attribute order.

use crate::error::{Error, Result};
use crate::io::object::PyObject;
use crate::io::value::{Dict, TensorValue, Value};

/// Deepest module nesting followed.
pub const MAX_MODULE_DEPTH: usize = 128;

/// One module of the tree.
#[derive(Debug)]
pub struct ModuleNode<'a> {
    /// The record (class path, attributes).
    pub obj: &'a PyObject,
    /// `_parameters` in order (`None`: registered as `None`, e.g. `bias=False`).
    pub params: Vec<(String, Option<&'a TensorValue>)>,
    /// Persistent `_buffers` in order.
    pub buffers: Vec<(String, Option<&'a TensorValue>)>,
    /// `_modules` in order (`None`: a slot registered as `None`).
    pub children: Vec<(String, Option<ModuleNode<'a>>)>,
    /// The `training` flag.
    pub training: bool,
    /// Whether it came from a TorchScript archive.
    pub scripted: bool,
}

impl ModuleNode<'_> {
    /// `module.name` of the class; for TorchScript the Python class path without the
    /// `__torch__.` prefix and mangling (`torch.nn.modules.linear.Linear`).
    pub fn class_path(&self) -> String {
        let p = self.obj.class_path();
        if !self.scripted {
            return p;
        }
        let p = p.strip_prefix("__torch__.").unwrap_or(&p);
        p.split('.')
            .filter(|s| !s.starts_with("___torch_mangle"))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The class name alone (`Linear`, `MyNet`).
    pub fn class_name(&self) -> String {
        let p = self.class_path();
        p.rsplit('.').next().unwrap_or_default().to_string()
    }

    /// An attribute of the module's `__dict__`.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.obj.attr(key)
    }

    /// Every class path in the tree, depth first, without duplicates.
    pub fn classes(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut |n| {
            let c = n.class_path();
            if !out.contains(&c) {
                out.push(c);
            }
        });
        out
    }

    fn walk(&self, f: &mut dyn FnMut(&ModuleNode<'_>)) {
        f(self);
        for (_, c) in &self.children {
            if let Some(c) = c {
                c.walk(f);
            }
        }
    }

    /// The state dict `net.state_dict()` gives: parameters, then persistent buffers, then
    /// each submodule's under `name.`, skipping `None` entries; `_metadata` carries each
    /// module's prefix (its `version` is the class's `_version`, which the pickle does not
    /// hold, so only modules kiln knows get one). Values share the file's storages.
    pub fn state_dict(&self) -> Value {
        let mut entries = Vec::new();
        self.collect("", &mut entries);
        Value::Dict(Dict {
            entries,
            ordered: true,
            metadata: None,
        })
    }

    fn collect(&self, prefix: &str, out: &mut Vec<(Value, Value)>) {
        for (name, t) in self.params.iter().chain(&self.buffers) {
            if let Some(t) = t {
                let t = TensorValue {
                    requires_grad: false,
                    is_parameter: false,
                    ..(*t).clone()
                };
                out.push((Value::Str(format!("{prefix}{name}")), Value::Tensor(t)));
            }
        }
        for (name, c) in &self.children {
            if let Some(c) = c {
                c.collect(&format!("{prefix}{name}."), out);
            }
        }
    }
}

fn schema(path: &str, detail: impl Into<String>) -> Error {
    Error::Schema {
        path: path.to_string(),
        detail: detail.into(),
    }
}

/// Whether `v` is an `nn.Module` record (its state has `_modules` and `_parameters`) or a
/// TorchScript object.
pub fn is_module(v: &Value) -> bool {
    match v {
        Value::Object(o) => {
            (o.attr("_modules").is_some() && o.attr("_parameters").is_some())
                || o.module.starts_with("__torch__")
        }
        _ => false,
    }
}

/// The module tree rooted at `v`. `path` names the file in errors.
///
/// # Errors
/// `K0507` when `v` is not a module record, or its `_parameters` / `_buffers` / `_modules`
/// hold something else than PyTorch puts there.
pub fn module_tree<'a>(v: &'a Value, path: &str) -> Result<ModuleNode<'a>> {
    let Value::Object(o) = v else {
        return Err(schema(
            path,
            format!("holds a {}, not a torch.nn.Module", v.type_name()),
        ));
    };
    if o.module.starts_with("__torch__") {
        return scripted(o, path, 0);
    }
    node(o, path, 0)
}

fn entries<'a>(o: &'a PyObject, key: &str, path: &str) -> Result<&'a [(Value, Value)]> {
    match o.attr(key) {
        None | Some(Value::None) => Ok(&[]),
        Some(Value::Dict(d)) => Ok(&d.entries),
        Some(Value::Object(inner)) if !inner.dict_items.is_empty() || inner.args.is_empty() => {
            // An OrderedDict subclass recorded as an object.
            Ok(&inner.dict_items)
        }
        Some(other) => Err(schema(
            path,
            format!(
                "{}.{key} is a {}, not a dict",
                o.class_path(),
                other.type_name()
            ),
        )),
    }
}

fn name_of(k: &Value, o: &PyObject, key: &str, path: &str) -> Result<String> {
    k.as_str().map(str::to_string).ok_or_else(|| {
        schema(
            path,
            format!("{}.{key} has a non-string key", o.class_path()),
        )
    })
}

fn tensor<'a>(
    v: &'a Value,
    o: &PyObject,
    what: &str,
    path: &str,
) -> Result<Option<&'a TensorValue>> {
    match v {
        Value::None => Ok(None),
        Value::Tensor(t) => Ok(Some(t)),
        other => Err(schema(
            path,
            format!(
                "{}: {what} is a {}, not a tensor",
                o.class_path(),
                other.type_name()
            ),
        )),
    }
}

fn node<'a>(o: &'a PyObject, path: &str, depth: usize) -> Result<ModuleNode<'a>> {
    if depth > MAX_MODULE_DEPTH {
        return Err(schema(
            path,
            format!("modules nested deeper than {MAX_MODULE_DEPTH}"),
        ));
    }
    let mut params = Vec::new();
    for (k, v) in entries(o, "_parameters", path)? {
        let name = name_of(k, o, "_parameters", path)?;
        let t = tensor(v, o, &format!("parameter '{name}'"), path)?;
        params.push((name, t));
    }
    let non_persistent: Vec<&str> = match o.attr("_non_persistent_buffers_set") {
        Some(Value::List(items) | Value::Tuple(items)) => {
            items.iter().filter_map(Value::as_str).collect()
        }
        _ => Vec::new(),
    };
    let mut buffers = Vec::new();
    for (k, v) in entries(o, "_buffers", path)? {
        let name = name_of(k, o, "_buffers", path)?;
        let t = tensor(v, o, &format!("buffer '{name}'"), path)?;
        if !non_persistent.contains(&name.as_str()) {
            buffers.push((name, t));
        }
    }
    let mut children = Vec::new();
    for (k, v) in entries(o, "_modules", path)? {
        let name = name_of(k, o, "_modules", path)?;
        let child = match v {
            Value::None => None,
            Value::Object(c) if is_module(v) => Some(node(c, path, depth + 1)?),
            other => {
                return Err(schema(
                    path,
                    format!(
                        "{}: submodule '{name}' is a {}, not a torch.nn.Module",
                        o.class_path(),
                        match other {
                            Value::Object(c) => c.class_path(),
                            x => x.type_name().to_string(),
                        }
                    ),
                ));
            }
        };
        children.push((name, child));
    }
    Ok(ModuleNode {
        obj: o,
        params,
        buffers,
        children,
        training: o.attr("training").and_then(Value::as_bool).unwrap_or(true),
        scripted: false,
    })
}

fn scripted<'a>(o: &'a PyObject, path: &str, depth: usize) -> Result<ModuleNode<'a>> {
    if depth > MAX_MODULE_DEPTH {
        return Err(schema(
            path,
            format!("modules nested deeper than {MAX_MODULE_DEPTH}"),
        ));
    }
    let attrs: &[(Value, Value)] = match &o.state {
        Some(Value::Dict(d)) => &d.entries,
        _ => &[],
    };
    let mut params = Vec::new();
    let mut buffers = Vec::new();
    let mut children = Vec::new();
    for (k, v) in attrs {
        let Some(name) = k.as_str() else { continue };
        match v {
            Value::Tensor(t) if t.requires_grad || t.is_parameter => {
                params.push((name.to_string(), Some(t)));
            }
            Value::Tensor(t) => buffers.push((name.to_string(), Some(t))),
            Value::Object(c) if c.module.starts_with("__torch__") => {
                children.push((name.to_string(), Some(scripted(c, path, depth + 1)?)));
            }
            _ => {}
        }
    }
    Ok(ModuleNode {
        obj: o,
        params,
        buffers,
        children,
        training: o.attr("training").and_then(Value::as_bool).unwrap_or(true),
        scripted: true,
    })
}
