//! Persistence: PyTorch `.pt/.pth` (zip and legacy) read and write, safetensors, whole-model
//! files, `map_location`, crash-safe writes.

pub mod pickle;
pub mod value;

pub use value::{Bytes, Dict, Dtype, Storage, TensorValue, Value};
