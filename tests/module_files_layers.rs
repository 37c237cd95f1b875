//! Whole-module files of every torch.nn layer kiln rebuilds (issue 16 item 2), against the
//! `layers_*` fixtures of `scripts/gen_module_fixtures.py --layers` (real `torch.save` files
//! of torch 2.15): each is rebuilt from its pickled attributes, its weights loaded strictly,
//! and its eval output equals PyTorch's; its module tree prints like `print(net)`; every
//! rebuild entry names a class torch (or torchvision) really defines; what kiln cannot
//! reproduce is refused (`K0005`) naming the class and the attribute.

use candle_core::{Device, Tensor};
use kiln::io::module_file::rebuild::REBUILDERS;
use kiln::io::module_file::{module_repr, module_tree, read_module_file, unrebuildable};
use kiln::io::{LoadOptions, load, load_torch_module};
use kiln::nn::layers::{DecoderArgs, TransformerDecoder};
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/modules")
        .join(name)
}

fn cases() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("layers_cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The tensors of `NAME.io.safetensors`.
fn io(name: &str, key: &str) -> Tensor {
    let v = load(
        fixture(&format!("{name}.io.safetensors")),
        &LoadOptions::new(),
    )
    .unwrap();
    v.get(key)
        .unwrap()
        .as_tensor()
        .unwrap()
        .to_tensor(&Device::Cpu)
        .unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Largest |a − b| relative to max |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn check(name: &str, got: &Tensor) {
    let want = io(name, "output");
    assert_eq!(got.dims(), want.dims(), "{name}: output shape");
    let e = rel_err(&values(got), &values(&want));
    assert!(e < 1e-5, "{name}: relative error {e:e}");
}

fn forward_matches(name: &str) {
    let m = load_torch_module(fixture(&format!("{name}.pt")))
        .unwrap_or_else(|e| panic!("{name}: {e} [{}]", e.code()));
    assert!(!m.is_training(), "{name}: saved in eval mode");
    let y = m.forward(&io(name, "input")).unwrap();
    check(name, &y);
    // The rebuilt module has exactly torch's state-dict keys, in order.
    let want: Vec<String> = cases()["cases"][name]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let got: Vec<String> = m.state_dict().keys().map(str::to_string).collect();
    assert_eq!(got, want, "{name}: state-dict keys");
}

/// ConvTranspose1d/2d, GroupNorm, InstanceNorm2d (with and without running statistics),
/// Upsample / UpsamplingNearest2d / UpsamplingBilinear2d, AdaptiveMaxPool2d, Dropout1d/2d,
/// MaxPool1d, AvgPool1d, AdaptiveAvgPool1d, RMSNorm, StochasticDepth and Unflatten in one
/// Sequential.
#[test]
fn conv_norm_pool_upsample_sequential_matches_pytorch() {
    forward_matches("layers_conv");
}

/// A 2-layer bidirectional, batch-first LSTM with `proj_size` and dropout: `lstm(x)[0]`.
#[test]
fn lstm_matches_pytorch() {
    forward_matches("layers_lstm");
}

/// A 2-layer sequence-first GRU without biases: `gru(x)[0]`.
#[test]
fn gru_matches_pytorch() {
    forward_matches("layers_gru");
}

/// LSTMCell (`cell(x)[0]`) and GRUCell without biases (`cell(x)`), from zero states.
#[test]
fn rnn_cells_match_pytorch() {
    forward_matches("layers_lstmcell");
    forward_matches("layers_grucell");
}

/// MultiheadAttention (batch first, `add_bias_kv`, `add_zero_attn`): `attn(x, x, x)[0]`.
#[test]
fn multihead_attention_matches_pytorch() {
    forward_matches("layers_mha");
}

/// A TransformerEncoder of 2 pre-norm, batch-first GELU layers (`activation="gelu"`, a
/// pickled `F.gelu` reference) with a final LayerNorm; and a default TransformerEncoderLayer
/// alone (sequence first, post-norm, `F.relu`).
#[test]
fn transformer_encoder_matches_pytorch() {
    forward_matches("layers_encoder");
    forward_matches("layers_encoder_layer");
}

/// A TransformerDecoder of 2 layers without biases and a `GELU()` module activation:
/// `dec(tgt, memory)`.
#[test]
fn transformer_decoder_matches_pytorch() {
    let m = load_torch_module(fixture("layers_decoder.pt")).unwrap();
    let dec = m
        .as_any()
        .downcast_ref::<TransformerDecoder>()
        .expect("rebuilt as kiln's TransformerDecoder");
    let y = dec
        .forward_with(
            &io("layers_decoder", "input"),
            &io("layers_decoder", "memory"),
            DecoderArgs::default(),
        )
        .unwrap();
    check("layers_decoder", &y);
}

/// `kiln inspect` prints each fixture's tree exactly like `print(net)`.
#[test]
fn layer_trees_print_like_print_net() {
    let all = cases();
    for (name, c) in all["cases"].as_object().unwrap() {
        let f = read_module_file(fixture(&format!("{name}.pt")), &LoadOptions::default()).unwrap();
        let tree = module_tree(f.module().unwrap(), name).unwrap();
        assert_eq!(module_repr(&tree), c["repr"].as_str().unwrap(), "{name}");
        assert!(unrebuildable(&tree).is_empty(), "{name}");
    }
}

/// Every class path of the rebuild registry is one that torch.nn (or torchvision) defines:
/// `torch_classes` lists every nn.Module subclass of `torch.nn.modules.*`,
/// `torchvision.models.*` and `torchvision.ops.*`, collected from the installed packages.
#[test]
fn every_rebuild_entry_is_a_real_torch_class() {
    let all = cases();
    let classes: Vec<&str> = all["torch_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(classes.contains(&"torch.nn.modules.linear.Linear"));
    for (k, _) in REBUILDERS {
        assert!(classes.contains(k), "{k} is not a torch class");
    }
}

/// `kiln forward --weights` on a whole-module LSTM file.
#[test]
fn cli_forward_on_whole_module_lstm() {
    let dir = tempfile::tempdir().unwrap();
    let y = dir.path().join("y.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "forward",
            "--weights",
            fixture("layers_lstm.pt").to_str().unwrap(),
            "--input",
            fixture("layers_lstm.io.safetensors").to_str().unwrap(),
            "--output",
            y.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = load(&y, &LoadOptions::new()).unwrap();
    let t = got
        .as_dict()
        .unwrap()
        .entries
        .first()
        .unwrap()
        .1
        .as_tensor()
        .unwrap();
    check("layers_lstm", &t.to_tensor(&Device::Cpu).unwrap());
}

/// `kiln inspect --globals` marks every global of the layer files safe or rebuildable
/// (the Transformer's `F.relu` / `F.gelu` references included): exit code 0.
#[test]
fn layer_files_globals_are_all_known() {
    for name in cases()["cases"].as_object().unwrap().keys() {
        let uses = kiln::io::list_globals(fixture(&format!("{name}.pt"))).unwrap();
        let unknown: Vec<String> = uses
            .iter()
            .filter(|u| {
                !matches!(
                    u.kind,
                    kiln::io::module_file::GlobalKind::Safe
                        | kiln::io::module_file::GlobalKind::Rebuildable
                )
            })
            .map(|u| format!("{}.{} ({})", u.module, u.name, u.kind.name()))
            .collect();
        assert!(unknown.is_empty(), "{name}: {unknown:?}");
    }
}
