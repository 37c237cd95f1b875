//! Reading pickled module attributes for the rebuild fns: each helper refuses (`K0005`,
//! naming the class and the attribute) a value that is missing or of another type.

use super::super::tree::ModuleNode;
use crate::error::{Error, Result};
use crate::io::value::Value;

/// `K0005`: "`Class` with `what`".
pub(super) fn bad(n: &ModuleNode<'_>, what: impl std::fmt::Display) -> Error {
    Error::Unsupported {
        what: format!("{} with {what}", n.class_name()),
    }
}

/// An integer attribute (not a bool).
pub(super) fn int(n: &ModuleNode<'_>, key: &str) -> Result<i64> {
    n.attr(key)
        .and_then(Value::as_i64)
        .filter(|_| !matches!(n.attr(key), Some(Value::Bool(_))))
        .ok_or_else(|| {
            bad(
                n,
                format_args!("attribute '{key}' missing or not an integer"),
            )
        })
}

/// A non-negative integer attribute.
pub(super) fn uint(n: &ModuleNode<'_>, key: &str) -> Result<usize> {
    let v = int(n, key)?;
    usize::try_from(v).map_err(|_| bad(n, format_args!("{key}={v}")))
}

/// A number attribute.
pub(super) fn float(n: &ModuleNode<'_>, key: &str) -> Result<f64> {
    n.attr(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| bad(n, format_args!("attribute '{key}' missing or not a number")))
}

/// A number attribute that may be `None`.
pub(super) fn opt_float(n: &ModuleNode<'_>, key: &str) -> Result<Option<f64>> {
    match n.attr(key) {
        None | Some(Value::None) => Ok(None),
        Some(_) => float(n, key).map(Some),
    }
}

/// A bool attribute; `default` when absent.
pub(super) fn flag(n: &ModuleNode<'_>, key: &str, default: bool) -> Result<bool> {
    match n.attr(key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad(n, format_args!("attribute '{key}' is not a bool"))),
    }
}

/// A string attribute; `default` when absent.
pub(super) fn string<'a>(n: &'a ModuleNode<'_>, key: &str, default: &'a str) -> Result<&'a str> {
    match n.attr(key) {
        None => Ok(default),
        Some(v) => v
            .as_str()
            .ok_or_else(|| bad(n, format_args!("attribute '{key}' is not a string"))),
    }
}

/// An int or a tuple of ints.
pub(super) fn ints(n: &ModuleNode<'_>, key: &str) -> Result<Vec<i64>> {
    match n.attr(key) {
        Some(Value::Tuple(items) | Value::List(items)) => items
            .iter()
            .map(|x| {
                x.as_i64()
                    .filter(|_| !matches!(x, Value::Bool(_)))
                    .ok_or_else(|| bad(n, format_args!("a non-integer in '{key}'")))
            })
            .collect(),
        Some(Value::Int(i)) => Ok(vec![*i]),
        _ => Err(bad(
            n,
            format_args!("attribute '{key}' missing or not an int tuple"),
        )),
    }
}

/// An int or a tuple of non-negative ints.
pub(super) fn uints(n: &ModuleNode<'_>, key: &str) -> Result<Vec<usize>> {
    ints(n, key)?
        .iter()
        .map(|&k| usize::try_from(k).map_err(|_| bad(n, format_args!("{key} {k}"))))
        .collect()
}

/// An int or a tuple whose entries are all equal (kiln's layers take one value).
pub(super) fn square(n: &ModuleNode<'_>, key: &str) -> Result<usize> {
    let v = ints(n, key)?;
    match v.as_slice() {
        [a, rest @ ..] if rest.iter().all(|b| b == a) => {
            usize::try_from(*a).map_err(|_| bad(n, format_args!("{key}={a}")))
        }
        _ => Err(bad(
            n,
            format_args!("{key}={v:?} (kiln's layer takes one value for every side)"),
        )),
    }
}

/// Whether parameter `name` is registered and not `None`.
pub(super) fn has_param(n: &ModuleNode<'_>, name: &str) -> bool {
    n.params.iter().any(|(k, t)| k == name && t.is_some())
}

/// `Ok` when `ok`, else `K0005` with `what`.
pub(super) fn require(n: &ModuleNode<'_>, ok: bool, what: impl std::fmt::Display) -> Result<()> {
    if ok { Ok(()) } else { Err(bad(n, what)) }
}

/// The submodule `name` (registered and not `None`).
pub(super) fn child<'a, 'b>(n: &'a ModuleNode<'b>, name: &str) -> Result<&'a ModuleNode<'b>> {
    n.children
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, c)| c.as_ref())
        .ok_or_else(|| bad(n, format_args!("no '{name}' submodule")))
}

/// The submodule `name`, which must be of the `torch.nn` class `class` (`Linear`).
pub(super) fn child_of<'a, 'b>(
    n: &'a ModuleNode<'b>,
    name: &str,
    classes: &[&str],
) -> Result<&'a ModuleNode<'b>> {
    let c = child(n, name)?;
    let path = c.class_path();
    require(
        n,
        classes
            .iter()
            .any(|k| path == format!("torch.nn.modules.{k}")),
        format_args!("submodule '{name}' of class {path}"),
    )?;
    Ok(c)
}
