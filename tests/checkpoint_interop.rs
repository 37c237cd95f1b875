//! Resuming PyTorch recipe checkpoints, and writing checkpoints PyTorch loads. Needs the files
//! `scripts/checkpoint_interop.py gen` writes; run through `scripts/checkpoint_interop.sh`
//! (`#[ignore]`d under a plain `cargo test`; run with `--include-ignored` but without
//! `KILN_INTEROP_DIR` they fail loudly).

use candle_core::Device;
use kiln::checkpoint::Checkpoint;
use kiln::data::Batch;
use kiln::io::LoadOptions;
use kiln::train::checkpointing::{checkpoint_of, restore};
use kiln::train::{OptimizerKind, TrainConfig, build_trainer};
use std::path::PathBuf;

/// The folder of the generated PyTorch files. These tests are `#[ignore]`d (a plain
/// `cargo test` reports them as ignored, not as passed) and run by `scripts/checkpoint_interop.sh`, which
/// generates the files and sets `KILN_INTEROP_DIR`; run without it, they fail loudly.
fn interop_dir() -> PathBuf {
    match std::env::var_os("KILN_INTEROP_DIR") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "KILN_INTEROP_DIR is not set: run scripts/checkpoint_interop.sh, which generates the PyTorch files"
        ),
    }
}

fn config(name: &str, hyper: &serde_json::Value) -> TrainConfig {
    let mut c = TrainConfig::for_model("lenet");
    let h = &hyper[name];
    c.optimizer = OptimizerKind::parse(name).unwrap();
    c.lr = h["lr"].as_f64().unwrap();
    c.momentum = h.get("momentum").and_then(|m| m.as_f64()).unwrap_or(0.0);
    c.weight_decay = h["weight_decay"].as_f64().unwrap();
    c.scheduler = None;
    c.batch_size = 32;
    c
}

#[test]
#[ignore = "run by scripts/checkpoint_interop.sh (needs KILN_INTEROP_DIR)"]
fn kiln_resumes_pytorch_recipe_checkpoints_and_steps_like_pytorch() {
    let dir = interop_dir();
    let hyper: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("hyper.json")).unwrap()).unwrap();
    let batch =
        candle_core::safetensors::load(dir.join("batch.safetensors"), &Device::Cpu).unwrap();
    let b = Batch {
        inputs: batch["input"].clone(),
        targets: batch["target"].clone(),
        indices: (0..16).collect(),
    };
    for name in ["sgd", "adam"] {
        let cfg = config(name, &hyper);
        let mut t = build_trainer(&cfg).unwrap();
        let ck = Checkpoint::load(
            &dir.join(format!("pt_{name}.pt")),
            &LoadOptions::new(),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(
            ck.progress.epoch, 2,
            "recipe epoch 1 resumes at epoch index 2"
        );
        restore(&mut t, &ck).unwrap();
        t.train_step(&b).unwrap();
        let want = candle_core::safetensors::load(
            dir.join(format!("next_{name}.safetensors")),
            &Device::Cpu,
        )
        .unwrap();
        let mut worst = 0f32;
        for (k, v) in t.model.state_dict().iter() {
            let w = &want[k];
            let diff = (v - w)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let scale = w
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                .max(1e-12);
            worst = worst.max(diff / scale);
        }
        eprintln!(
            "{name}: first kiln step after resuming PyTorch's checkpoint: max rel err {worst:.2e}"
        );
        assert!(worst < 1e-5, "{name}: {worst}");
        // kiln's checkpoint of the same run, for the PyTorch side of the check.
        let mine = checkpoint_of(&t, 0.5).unwrap();
        kiln::io::save(
            &mine.to_value().unwrap(),
            dir.join(format!("kiln_ckpt_{name}.pt")),
        )
        .unwrap();
        // And one with a cosine schedule after a step, for PyTorch's scheduler.
        let mut cfg = config(name, &hyper);
        cfg.scheduler = kiln::train::SchedulerSpec::parse("cosine:10").unwrap();
        let mut t = build_trainer(&cfg).unwrap();
        t.train_step(&b).unwrap();
        let mine = checkpoint_of(&t, 0.5).unwrap();
        assert!(mine.scheduler.is_some());
        kiln::io::save(
            &mine.to_value().unwrap(),
            dir.join(format!("kiln_ckpt_{name}_cosine.pt")),
        )
        .unwrap();
    }
}
