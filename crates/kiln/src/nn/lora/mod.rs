//! LoRA (low-rank adaptation, Hu et al. 2021) with PEFT's semantics and file layout.
//!
//! [`apply_lora`] wraps the Linear and Conv2d layers a [`LoraConfig`] targets in a
//! [`LoraLayer`]: `y = base(x) + B(A(dropout(x))) · alpha / r`, `lora_A` Kaiming-uniform
//! (`a = √5`), `lora_B` zeros. [`mark_only_lora_trainable`] freezes everything but the
//! adapters (and `modules_to_save`, such as a new head). The base keys are unchanged
//! (`fc1.weight`), the adapters add `fc1.lora_A.weight` / `fc1.lora_B.weight`, so
//! checkpoints hold them as any parameter and resume is bit-exact.
//!
//! [`save_adapter`] / [`load_adapter`] write and read PEFT's adapter directory
//! (`adapter_config.json` + `adapter_model.safetensors` with `base_model.model.` keys);
//! [`merge_adapter`] merges a saved adapter into a base state dict and [`merge_and_unload`]
//! merges a live model back into plain layers.
//!
//! ```
//! use kiln::nn::lora::{LoraConfig, apply_lora, mark_only_lora_trainable};
//! use kiln::models::{LeNet, LeNetConfig};
//! use kiln::Module;
//! let mut net = LeNet::new(LeNetConfig::default())?;
//! let report = apply_lora(&mut net, &LoraConfig::new(4, 8.0, &["fc1", "conv2"]))?;
//! assert_eq!(report.targets, ["conv2", "fc1"]);
//! mark_only_lora_trainable(&net, &[])?;
//! let trainable: Vec<String> = net.trainable_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(trainable, ["conv2.lora_A.weight", "conv2.lora_B.weight",
//!                        "fc1.lora_A.weight", "fc1.lora_B.weight"]);
//! # Ok::<(), kiln::Error>(())
//! ```

mod adapter;
mod apply;
mod config;
mod layer;
mod merge;

pub use adapter::{
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterConfig, adapter_config_json, load_adapter,
    read_adapter_config, read_adapter_weights, save_adapter,
};
pub use apply::{
    LoraReport, PEFT_PREFIX, adapter_state_dict, apply_lora, apply_lora_to, is_adapter_param,
    lora_candidates, lora_layers, mark_only_lora_trainable, merge_and_unload,
};
pub use config::{LoraConfig, TargetPattern, select_targets};
pub use layer::{LoraKind, LoraLayer, merge_weight};
pub use merge::{MergeReport, merge_adapter};
