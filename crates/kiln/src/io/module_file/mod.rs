//! Whole-module PyTorch files — `torch.save(net)`, zip or legacy, and TorchScript archives
//! (`torch.jit.save`) — read without executing anything.
//!
//! The file is read by the structural unpickler ([`crate::io::pickle::Mode::Structural`]):
//! tensors, containers and scalars are built as always, every other class or function
//! becomes an inert [`PyObject`] record (class path, arguments, `__dict__` state), and
//! dangerous globals (`os.system`, `builtins.eval`, `getattr`…) are refused by name
//! (`K0509`). Nothing the file names is imported or called. From the record tree:
//!
//! - [`ModuleNode::state_dict`] gives exactly `net.state_dict()` (same keys, order and
//!   bytes) for any class, `__main__.MyNet` included;
//! - [`module_repr`] prints the tree like `print(net)`;
//! - [`load_torch_module`] rebuilds it as a kiln module through [`rebuild`]'s registry
//!   (`torch.nn` layers) or, for a torchvision model class, as the zoo architecture whose
//!   keys and shapes match ([`zoo`]), and loads its weights strictly;
//! - [`list_globals`] lists every global a PyTorch file's pickles name, marked safe,
//!   rebuildable, dangerous or unknown (`kiln inspect --globals`).
//!
//! ```no_run
//! let net = kiln::io::load_torch_module("net.pkl")?;
//! println!("{}", net.repr());
//! # Ok::<(), kiln::Error>(())
//! ```

pub mod globals;
pub mod rebuild;
pub mod repr;
pub mod tree;
pub mod zoo;

pub use globals::{GlobalKind, GlobalUse, list_globals};
pub use repr::module_repr;
pub use tree::{ModuleNode, is_module, module_tree};

use super::load::{Format, LoadOptions, load_file};
use super::object::PyObject;
use super::value::{Value, value_to_state_dict};
use crate::error::{Error, Result};
use crate::nn::{Module, registry};
use std::path::Path;

/// A PyTorch file read in the structural mode.
#[derive(Debug)]
pub struct ModuleFile {
    /// The object the pickle holds (a module record, or a dict holding one).
    pub value: Value,
    /// `pytorch-zip` or `pytorch-legacy`.
    pub format: Format,
    /// Whether it is a TorchScript archive (`torch.jit.save`).
    pub torchscript: bool,
}

impl ModuleFile {
    /// The module record: the value itself, or the one module inside a top-level dict
    /// (`{"model": net, "epoch": 3}`).
    pub fn module(&self) -> Option<&Value> {
        if is_module(&self.value) {
            return Some(&self.value);
        }
        let d = self.value.as_dict()?;
        let mut found = d.entries.iter().map(|(_, v)| v).filter(|v| is_module(v));
        match (found.next(), found.next()) {
            (Some(m), None) => Some(m),
            _ => None,
        }
    }

    /// The format's name, with `torchscript` for TorchScript archives.
    pub fn format_name(&self) -> &'static str {
        if self.torchscript {
            "torchscript"
        } else {
            self.format.name()
        }
    }
}

/// Reads a PyTorch zip or legacy file in the structural mode (`opts.structural` is set;
/// location tags are kept as they are). Safetensors files have no pickle: `K0503`.
///
/// # Errors
/// As [`crate::io::load`], with `K0509` for a dangerous global instead of `K0504`.
pub fn read_module_file(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<ModuleFile> {
    let path = path.as_ref();
    let opts = LoadOptions {
        structural: true,
        ..opts.clone()
    };
    let loaded = load_file(path, &opts)?;
    if loaded.format == Format::Safetensors {
        return Err(Error::NotAModelFile {
            path: path.display().to_string(),
            detail: "a safetensors file holds no module, only tensors".into(),
        });
    }
    let torchscript =
        loaded.format == Format::TorchZip && super::torch_zip::file_is_torchscript(path)?;
    Ok(ModuleFile {
        value: loaded.value,
        format: loaded.format,
        torchscript,
    })
}

/// The state dict of a whole-module file, as `net.state_dict()` gives it.
///
/// # Errors
/// As [`read_module_file`]; `K0507` when the file holds no module.
pub fn module_state_dict(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Value> {
    let path = path.as_ref();
    let p = path.display().to_string();
    let f = read_module_file(path, opts)?;
    let m = f.module().ok_or_else(|| no_module(&p, &f.value))?;
    Ok(module_tree(m, &p)?.state_dict())
}

fn no_module(path: &str, v: &Value) -> Error {
    Error::Schema {
        path: path.to_string(),
        detail: format!(
            "holds a {}, not a torch.nn.Module (torch.save(net)) or a TorchScript module",
            match v {
                Value::Object(o) => o.class_path(),
                other => other.type_name().to_string(),
            }
        ),
    }
}

/// The classes of a module tree kiln cannot rebuild as kiln modules.
pub fn unrebuildable(tree: &ModuleNode<'_>) -> Vec<String> {
    if !zoo::candidates(&tree.class_path()).is_empty() {
        return Vec::new(); // rebuilt as a whole by the zoo (see [`zoo`])
    }
    tree.classes()
        .into_iter()
        .filter(|c| !rebuild::can_rebuild(c))
        .collect()
}

/// Loads a whole-module file (`torch.save(net)`, zip or legacy, or a TorchScript archive)
/// as a kiln module, on the CPU, in the file's `training` mode: the module tree is rebuilt
/// from the pickled attributes and its weights loaded strictly. Nothing in the file runs.
///
/// # Errors
/// As [`read_module_file`]; `K0507` when the file holds no module; `K0005` naming a class
/// (or an attribute value) kiln cannot rebuild; `K0403` when a rebuild entry names a type
/// this build has not registered.
pub fn load_torch_module(path: impl AsRef<Path>) -> Result<Box<dyn Module>> {
    let path = path.as_ref();
    let p = path.display().to_string();
    let f = read_module_file(
        path,
        &LoadOptions {
            raw_locations: true,
            ..LoadOptions::default()
        },
    )?;
    let m = f.module().ok_or_else(|| no_module(&p, &f.value))?;
    let tree = module_tree(m, &p)?;
    build_module(&tree, &p)
}

/// Rebuilds a module tree as a kiln module and loads its weights (see
/// [`load_torch_module`]).
///
/// # Errors
/// As [`load_torch_module`].
pub fn build_module(tree: &ModuleNode<'_>, path: &str) -> Result<Box<dyn Module>> {
    let class = tree.class_path();
    let mut zoo_err = None;
    if !zoo::candidates(&class).is_empty() {
        let sd = value_to_state_dict(&tree.state_dict(), &candle_core::Device::Cpu)?;
        match zoo::build_zoo_module(&class, &sd, path) {
            Ok(Some(module)) => {
                module.train(tree.training);
                return Ok(module);
            }
            Ok(None) => {}
            // Not one of the zoo's variants (another width or depth): the class-by-class
            // rebuild may still reproduce it (ResNet from its blocks).
            Err(e) => zoo_err = Some(e),
        }
    }
    let spec = match rebuild::spec_tree(tree, path) {
        Ok(spec) => spec,
        Err(e) => return Err(zoo_err.unwrap_or(e)),
    };
    let module = registry::build_in(&spec, path)?;
    let sd = value_to_state_dict(&tree.state_dict(), &candle_core::Device::Cpu)?;
    module.load_state_dict(&sd, true)?;
    module.train(tree.training);
    Ok(module)
}

/// The record of the class kiln could not rebuild, for messages.
pub fn describe(o: &PyObject) -> String {
    o.class_path()
}
