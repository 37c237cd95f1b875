//! Inert Python objects: what the structural unpickler records for a class or function the
//! weights-only allow-list does not know (`torch.nn.modules.linear.Linear`,
//! `__main__.MyNet`), instead of importing or calling it.
//!
//! A [`PyObject`] is only data — the class path, the arguments the pickle would have passed,
//! the state `BUILD` would have set, and the items `APPENDS`/`SETITEMS` would have added.
//! Nothing is ever looked up or executed; [`crate::io::module_file`] reads module trees from
//! these records.

use super::value::Value;

/// How the pickle made an object.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ObjectOrigin {
    /// A bare reference to the class or function (`GLOBAL` with no call), e.g. ResNet's
    /// `_norm_layer = nn.BatchNorm2d`.
    Global,
    /// `callable(*args)` (`REDUCE`, or `INST`/`OBJ` of old protocols).
    Call,
    /// `cls.__new__(cls, *args, **kwargs)` (`NEWOBJ`, `NEWOBJ_EX`), how `torch.save(net)` writes
    /// every module.
    NewObj,
}

/// An inert record of a Python object (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct PyObject {
    /// The class's or function's module (`torch.nn.modules.linear`, `__main__`).
    pub module: String,
    /// Its qualified name (`Linear`, `MyNet`).
    pub name: String,
    /// How the pickle made it.
    pub origin: ObjectOrigin,
    /// Positional arguments of the call.
    pub args: Vec<Value>,
    /// Keyword arguments (`NEWOBJ_EX`).
    pub kwargs: Vec<(Value, Value)>,
    /// The state `BUILD` would set (for a module: its `__dict__`).
    pub state: Option<Value>,
    /// Items `APPEND`/`APPENDS` would add (list subclasses).
    pub list_items: Vec<Value>,
    /// Items `SETITEM`/`SETITEMS` would add (dict subclasses).
    pub dict_items: Vec<(Value, Value)>,
}

impl PyObject {
    /// `module.name`.
    pub fn class_path(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }

    /// An entry of the state when it is a dict (`__dict__`), or of the dict part of a
    /// `(dict, slots)` state tuple.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        match &self.state {
            Some(Value::Dict(d)) => d.get(key),
            Some(Value::Tuple(parts)) => parts
                .iter()
                .filter_map(Value::as_dict)
                .find_map(|d| d.get(key)),
            _ => None,
        }
    }
}
