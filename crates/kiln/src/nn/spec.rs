//! Declarative module descriptions: what a whole-model file stores instead of code.
//!
//! A spec is a tree of `{type, config, children}`; [`crate::nn::registry`] turns it back into a
//! module. Nothing in a spec is executed: an unknown type is an error, never a lookup of code.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A module's type, its constructor arguments and its children's specs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleSpec {
    /// Registered type name (`"Linear"`, `"ResNet"`, or a user architecture's name).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Constructor arguments.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    /// Children in registration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<NamedSpec>,
}

/// A child's attribute name and spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedSpec {
    /// Attribute name (`"fc"`, `"0"`).
    pub name: String,
    /// The child's spec.
    pub module: ModuleSpec,
}

impl ModuleSpec {
    /// A spec with no config and no children.
    pub fn new(type_name: &str) -> Self {
        ModuleSpec {
            type_name: type_name.to_string(),
            config: Map::new(),
            children: Vec::new(),
        }
    }

    /// Adds a config entry.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.config.insert(key.to_string(), value.into());
        self
    }

    /// Adds a child spec.
    pub fn child(mut self, name: impl Into<String>, module: ModuleSpec) -> Self {
        self.children.push(NamedSpec {
            name: name.into(),
            module,
        });
        self
    }

    fn missing(&self, key: &str, what: &str) -> Error {
        Error::BadSpec {
            detail: format!(
                "{}: config '{key}' is missing or not {what}",
                self.type_name
            ),
        }
    }

    /// A required unsigned integer.
    pub fn usize(&self, key: &str) -> Result<usize> {
        self.config
            .get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| self.missing(key, "an unsigned integer"))
    }

    /// An unsigned integer with a default.
    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.usize(key),
        }
    }

    /// A required float.
    pub fn f64(&self, key: &str) -> Result<f64> {
        self.config
            .get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| self.missing(key, "a number"))
    }

    /// A float with a default.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.config.get(key) {
            None => Ok(default),
            Some(_) => self.f64(key),
        }
    }

    /// An optional float (`null` → None).
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.f64(key).map(Some),
        }
    }

    /// A boolean with a default.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.config.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.missing(key, "a boolean")),
        }
    }

    /// A list of unsigned integers.
    pub fn usize_list(&self, key: &str) -> Result<Vec<usize>> {
        let arr = self
            .config
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| self.missing(key, "a list of integers"))?;
        arr.iter()
            .map(|v| {
                v.as_u64()
                    .map(|x| x as usize)
                    .ok_or_else(|| self.missing(key, "a list of integers"))
            })
            .collect()
    }
}
