//! Persistence: PyTorch `.pt/.pth` (zip and legacy) read and write, pre-0.4 tar read, safetensors, whole-model
//! files, `map_location`, crash-safe writes.
//!
//! - [`save()`] / [`load()`]: `torch.save` / `torch.load` for a [`Value`] (nested dicts, lists and
//!   tuples of tensors and scalars). Files kiln writes load with plain `torch.load(path)`
//!   (`weights_only=True`) and `torch.load(path, mmap=True)`.
//! - [`save_state_dict`] / [`load_state_dict_file`]: the state-dict shortcuts.
//! - [`save_model`] / [`load_model`]: whole-model files (declarative spec + weights).
//! - [`atomic_write`]: the crash-safe write every writer uses.
//!
//! See `docs/FORMATS.md` for the formats, limits and differences from PyTorch.

pub mod atomic;
pub mod budget;
pub mod cast;
pub mod fault;
#[doc(hidden)]
pub mod fuzz;
pub mod inspect;
pub mod legacy;
pub mod load;
pub mod map_location;
pub mod module_file;
pub mod object;
pub mod pickle;
pub mod safetensors;
pub mod save;
pub mod sharded;
pub mod tar;
pub mod torch_tar;
pub mod torch_zip;
pub(crate) mod typed;
pub mod value;
pub mod whole_model;
pub mod zip;

pub use atomic::{atomic_write, atomic_write_bytes};
pub use load::{
    Format, LoadOptions, Loaded, detect_format, load, load_file, load_state_dict_file,
    pick_state_dict,
};
pub use map_location::MapLocation;
pub use module_file::{GlobalKind, GlobalUse, list_globals, load_torch_module};
pub use save::{save, save_as, save_safetensors, save_state_dict};
pub use value::{Bytes, Dict, Dtype, Storage, TensorValue, Value};
pub use whole_model::{load_model, save_model};
