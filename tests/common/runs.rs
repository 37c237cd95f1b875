//! Reading what a `kiln train` / `kiln finetune` run left in its output folder.

use kiln::io::{LoadOptions, Value, load};
use std::path::Path;

/// `metrics.jsonl`, one JSON value per epoch, without the wall-clock `seconds`.
pub fn metrics_without_seconds(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

/// The optimizer state of the checkpoint `checkpoints/last` names.
pub fn final_optimizer_state(dir: &Path) -> Value {
    let ck = dir.join("checkpoints");
    let last = std::fs::read_to_string(ck.join("last")).unwrap();
    let v = load(ck.join(last.trim()), &LoadOptions::new()).unwrap();
    v.get("optimizer_state_dict").unwrap().clone()
}

/// Asserts that two run folders ended bit-identically: `model.safetensors` bytes, metrics
/// (but wall-clock seconds) and the optimizer state of the last checkpoint.
pub fn assert_same_run(straight: &Path, run: &Path, what: &str) {
    let a = std::fs::read(straight.join("model.safetensors")).unwrap();
    let b = std::fs::read(run.join("model.safetensors")).unwrap();
    assert!(a == b, "{what}: model differs");
    assert_eq!(
        metrics_without_seconds(straight),
        metrics_without_seconds(run),
        "{what}: metrics differ"
    );
    assert!(
        final_optimizer_state(straight) == final_optimizer_state(run),
        "{what}: optimizer state differs"
    );
}
