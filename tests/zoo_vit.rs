//! torchvision's ViT-B/16 against real torchvision, on the fixture
//! `scripts/gen_vit_fixture.py` writes into target/vit-fixture (run by scripts/test.sh): the
//! state-dict keys, order and shapes, a strict load, and eval-mode logits on 224×224 within
//! 1e-4 of torchvision's (relative to the logits' scale) in float32 and 1e-9 in float64.

use kiln::candle::{DType, Device, Tensor};
use kiln::models::torchvision::{ZooConfig, try_build};
use std::path::PathBuf;

mod common;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/vit-fixture")
}

#[test]
#[ignore = "needs target/vit-fixture from scripts/gen_vit_fixture.py (scripts/test.sh runs it)"]
fn vit_b_16_matches_torchvision() {
    let d = dir();
    let keys: Vec<(String, Vec<usize>)> =
        serde_json::from_str(&std::fs::read_to_string(d.join("keys.json")).unwrap()).unwrap();
    let cfg = ZooConfig {
        num_classes: 10,
        in_channels: 3,
    };
    let m = try_build("vit_b_16", cfg).unwrap().unwrap();
    let ours: Vec<(String, Vec<usize>)> = m
        .state_dict()
        .iter()
        .map(|(k, t)| (k.to_string(), t.dims().to_vec()))
        .collect();
    assert_eq!(ours, keys, "state-dict keys, order and shapes");
    let sd =
        kiln::io::load_state_dict_file(d.join("vit_b_16.safetensors"), &kiln::LoadOptions::new())
            .unwrap();
    m.load_state_dict(&sd, true).unwrap();
    m.eval();
    let io = candle_core::safetensors::load(d.join("io.safetensors"), &Device::Cpu).unwrap();
    let y = m.forward(&io["input"]).unwrap();
    let e32 = common::rel_err("vit_b_16 float32 logits", &y, &io["logits"]);
    m.to_dtype(DType::F64).unwrap();
    let y64 = m
        .forward(&io["input"].to_dtype(DType::F64).unwrap())
        .unwrap();
    let e64 = common::rel_err("vit_b_16 float64 logits", &y64, &io["logits64"]);
    println!("vit_b_16: float32 logits {e32:.3e}, float64 {e64:.3e} (relative to scale)");
    assert!(e32 < 1e-4, "float32: {e32}");
    assert!(e64 < 1e-9, "float64: {e64}");
    // Another image size is a coded error, not a panic (torchvision asserts 224).
    let small = Tensor::zeros((1, 3, 64, 64), DType::F64, &Device::Cpu).unwrap();
    assert_eq!(m.forward(&small).unwrap_err().code(), "K0003");
}
