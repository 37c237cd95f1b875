//! The structural mode of the reader: globals off the allow-list become inert
//! [`ObjNode`] records — class path, arguments, state and items — instead of being refused.
//! Nothing is imported or called; dangerous globals are refused by name (`K0509`), and in
//! `Mode::Scan` every global is only recorded.

use super::danger;
use super::globals::{self, Global};
use super::reader::{Id, Machine, Mode, Node, ObjNode};
use crate::error::{Error, Result};
use crate::io::object::{ObjectOrigin, PyObject};
use crate::io::value::Value;

impl Machine<'_> {
    /// Resolves the global `module.name` for the reader's mode.
    pub(super) fn global(&mut self, module: &str, name: &str) -> Result<Global> {
        // Python 2 names, as pickle's fix_imports maps them.
        let module = match module {
            "__builtin__" => "builtins",
            m => m,
        };
        if self.mode == Mode::Scan {
            let key = (module.to_string(), name.to_string());
            if !self.seen_set.contains(&key) {
                self.charge(2 * (module.len() + name.len() + 48), "the list of globals")?;
                self.seen_set.insert(key.clone());
                self.seen.push(key);
            }
            return Ok(Global::Class {
                module: module.to_string(),
                name: name.to_string(),
            });
        }
        if self.mode == Mode::Structural
            && let Some(why) = danger::why_dangerous(module, name)
        {
            return Err(Error::DangerousGlobal {
                path: self.path.to_string(),
                global: format!("{module}.{name}"),
                why: why.to_string(),
            });
        }
        match globals::resolve(module, name, self.path) {
            Err(Error::UnsafeGlobal { .. }) if self.mode == Mode::Structural => Ok(Global::Class {
                module: module.to_string(),
                name: name.to_string(),
            }),
            other => other,
        }
    }

    /// The class of a legacy whole-module persistent id `('module', cls, file, source)`.
    pub(super) fn module_pid(&self, pid: Id) -> Result<Option<Id>> {
        let Node::Tuple(items) = self.node(pid)? else {
            return Ok(None);
        };
        match items.as_slice() {
            [tag, class, ..] if matches!(self.node(*tag)?, Node::Str(s) if s == "module") => {
                Ok(Some(*class))
            }
            // Pre-0.4 tar checkpoints: (cls, source_file, source).
            [class, _, _] if matches!(self.node(*class)?, Node::Global(_)) => Ok(Some(*class)),
            _ => Ok(None),
        }
    }

    /// `f(*args)` recorded, not called: `f` must be a global (a class or function).
    pub(super) fn inert_call(&self, f: Id, args: Id, origin: ObjectOrigin) -> Result<Node> {
        let (module, name) = match self.node(f)? {
            Node::Global(Global::Class { module, name }) => (module.clone(), name.clone()),
            Node::Global(g) => (String::new(), format!("{g:?}")),
            _ if self.mode == Mode::Scan => (String::new(), "?".to_string()),
            other => {
                return Err(self.err(format!(
                    "can only call a global class or function, got a {}",
                    other.kind()
                )));
            }
        };
        let args = match self.node(args)? {
            Node::Tuple(v) | Node::List(v) => {
                self.charge(v.len() * std::mem::size_of::<Id>(), "a copy of a tuple")?;
                v.clone()
            }
            _ if self.mode == Mode::Scan => Vec::new(),
            other => {
                return Err(self.err(format!("arguments must be a tuple, got a {}", other.kind())));
            }
        };
        self.charge(module.len() + name.len(), "an object record")?;
        Ok(Node::Object(Box::new(ObjNode {
            module,
            name,
            origin,
            args,
            kwargs: Vec::new(),
            state: None,
            list_items: Vec::new(),
            dict_items: Vec::new(),
        })))
    }

    /// The `Value` of an object record (children converted by `conv`).
    pub(super) fn object_value(
        &self,
        o: &ObjNode,
        conv: &mut dyn FnMut(Id) -> Result<Value>,
    ) -> Result<Value> {
        let mut args = Vec::with_capacity(o.args.len());
        for &a in &o.args {
            args.push(conv(a)?);
        }
        let mut kwargs = Vec::with_capacity(o.kwargs.len());
        for &(k, v) in &o.kwargs {
            kwargs.push((conv(k)?, conv(v)?));
        }
        let state = match o.state {
            Some(s) => Some(conv(s)?),
            None => None,
        };
        let mut list_items = Vec::with_capacity(o.list_items.len());
        for &a in &o.list_items {
            list_items.push(conv(a)?);
        }
        let mut dict_items = Vec::with_capacity(o.dict_items.len());
        for &(k, v) in &o.dict_items {
            dict_items.push((conv(k)?, conv(v)?));
        }
        Ok(Value::Object(Box::new(PyObject {
            module: o.module.clone(),
            name: o.name.clone(),
            origin: o.origin,
            args,
            kwargs,
            state,
            list_items,
            dict_items,
        })))
    }
}

/// A bare class or function reference as a value.
pub(super) fn bare_global(g: &Global) -> Value {
    let (module, name) = match g {
        Global::Class { module, name } => (module.clone(), name.clone()),
        other => (String::new(), format!("{other:?}")),
    };
    Value::Object(Box::new(PyObject {
        module,
        name,
        origin: ObjectOrigin::Global,
        args: Vec::new(),
        kwargs: Vec::new(),
        state: None,
        list_items: Vec::new(),
        dict_items: Vec::new(),
    }))
}
