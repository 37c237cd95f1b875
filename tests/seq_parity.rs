//! Parity with real PyTorch for the sequence models of issue 14 (scaled_dot_product_attention,
//! MultiheadAttention, the Transformer layers, LSTM/GRU and their cells), against fixtures made
//! by `scripts/gen_seq_fixtures.py` (torch version in `tests/fixtures/seq/manifest.json`).
//!
//! Same initial state, same inputs → every output and the gradients of `sum(out · up)` w.r.t.
//! every float input and every parameter must agree element by element within
//! `|kiln − torch| ≤ ATOL + RTOL·|torch|` (f32: 2e-5 + 1e-4·|torch|; NaN exactly where torch
//! has NaN); the state-dict keys and shapes and the printed form must equal PyTorch's.
//! Run with `--nocapture` to see the measured errors.

#[path = "seq_parity/calls.rs"]
mod calls;
mod common;

use candle_core::{DType, Tensor, Var};
use common::{get, load, state_dict};
use kiln::Module;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// Absolute tolerance (f32 fixtures).
const ATOL: f64 = 2e-5;
/// Relative tolerance, on top of [`ATOL`].
const RTOL: f64 = 1e-4;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seq")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .unwrap()
}

/// The inputs of one case: float inputs with a gradient in the fixture are `Var`s.
pub struct Inputs {
    tensors: HashMap<String, Tensor>,
    vars: HashMap<String, Var>,
}

impl Inputs {
    /// Input `name` (the `Var`'s tensor for differentiable ones).
    pub fn get(&self, name: &str) -> &Tensor {
        match self.vars.get(name) {
            Some(v) => v.as_tensor(),
            None => self
                .tensors
                .get(name)
                .unwrap_or_else(|| panic!("case has no input {name}")),
        }
    }

    /// Input `name` if the case has it.
    pub fn opt(&self, name: &str) -> Option<&Tensor> {
        self.vars
            .get(name)
            .map(Var::as_tensor)
            .or_else(|| self.tensors.get(name))
    }
}

#[derive(Default)]
struct Cmp {
    items: Vec<(String, f64, bool)>,
}

impl Cmp {
    fn check(&mut self, what: impl Into<String>, kiln: &Tensor, torch: &Tensor) {
        let what = what.into();
        assert_eq!(kiln.dims(), torch.dims(), "{what}: shapes differ");
        let (a, b) = (values(kiln), values(torch));
        let mut worst = 0f64;
        let mut ok = true;
        for (x, y) in a.iter().zip(&b) {
            if x.is_nan() || y.is_nan() {
                ok &= x.is_nan() && y.is_nan();
                continue;
            }
            if x == y {
                continue;
            }
            let d = (x - y).abs();
            worst = worst.max(d);
            ok &= d <= ATOL + RTOL * y.abs();
        }
        self.items.push((what, worst, ok));
    }

    fn finish(&self, case: &str) -> Vec<String> {
        println!("{case}:");
        for (w, e, ok) in &self.items {
            println!("  {w}: max |Δ| {e:.3e}{}", if *ok { "" } else { "  FAIL" });
        }
        self.items
            .iter()
            .filter(|(_, _, ok)| !ok)
            .map(|(w, _, _)| format!("{case}: {w}"))
            .collect()
    }
}

fn check_state_keys(case: &str, c: &Value, module: &dyn Module) {
    let want: Vec<(String, Vec<usize>)> = c["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let shape = e[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (e[0].as_str().unwrap().to_string(), shape)
        })
        .collect();
    let got: Vec<(String, Vec<usize>)> = module
        .state_dict()
        .iter()
        .map(|(k, v)| (k.to_string(), v.dims().to_vec()))
        .collect();
    assert_eq!(
        got, want,
        "{case}: state_dict keys/shapes differ from PyTorch's"
    );
}

/// Builds a module from a case's config (None for functional cases).
pub type Build = fn(&Value) -> Option<Box<dyn Module>>;
/// Runs a case: module, options, inputs → named outputs.
pub type Call = fn(Option<&dyn Module>, &Value, &Inputs) -> Vec<(String, Option<Tensor>)>;

/// Runs every case of `kind`; fails listing each tensor beyond the tolerance.
fn run_kind(kind: &str, build: Build, call: Call) {
    let m = manifest();
    let mut failures = Vec::new();
    let mut n = 0;
    for (name, c) in m["cases"].as_object().unwrap() {
        if c["kind"] != kind {
            continue;
        }
        n += 1;
        let t = load(&dir().join(format!("{name}.safetensors")));
        let module = build(&c["config"]);
        if let Some(module) = &module {
            module
                .load_state_dict(&state_dict(&t, "param."), true)
                .unwrap();
            check_state_keys(name, c, module.as_ref());
            assert_eq!(
                module.repr(),
                c["repr"].as_str().unwrap(),
                "{name}: printed form"
            );
            module.train(c["mode"] == "train");
        }
        let mut inputs = Inputs {
            tensors: HashMap::new(),
            vars: HashMap::new(),
        };
        for (k, v) in &t {
            let Some(input) = k.strip_prefix("in.") else {
                continue;
            };
            if t.contains_key(&format!("grad.in.{input}")) {
                inputs
                    .vars
                    .insert(input.to_string(), Var::from_tensor(v).unwrap());
            } else {
                inputs.tensors.insert(input.to_string(), v.clone());
            }
        }
        let outs = call(module.as_deref(), &c["options"], &inputs);
        let mut cmp = Cmp::default();
        let mut loss: Option<Tensor> = None;
        for (k, out) in &outs {
            let want = t.get(&format!("out.{k}"));
            match (out, want) {
                (Some(o), Some(w)) => cmp.check(format!("out.{k}"), o, w),
                (None, None) => continue,
                (o, w) => panic!(
                    "{name}: output {k}: kiln gives {}, torch {}",
                    o.is_some(),
                    w.is_some()
                ),
            }
            if let (Some(o), Some(up)) = (out, t.get(&format!("up.{k}"))) {
                let l = (o * up).unwrap().sum_all().unwrap();
                loss = Some(match loss {
                    None => l,
                    Some(acc) => (acc + l).unwrap(),
                });
            }
        }
        if let Some(loss) = loss {
            let store = loss.backward().unwrap();
            let mut names: Vec<&String> = inputs.vars.keys().collect();
            names.sort();
            for k in names {
                let g = store
                    .get(inputs.vars[k].as_tensor())
                    .unwrap_or_else(|| panic!("{name}: input {k} has no gradient"));
                cmp.check(format!("grad.in.{k}"), g, get(&t, &format!("grad.in.{k}")));
            }
            if let Some(module) = &module {
                for (pn, p) in module.named_parameters() {
                    let want = get(&t, &format!("grad.{pn}"));
                    match p.grad(&store) {
                        Some(g) => cmp.check(format!("grad.{pn}"), &g, want),
                        None => cmp.check(format!("grad.{pn}"), &want.zeros_like().unwrap(), want),
                    }
                }
            }
        }
        failures.extend(cmp.finish(name));
    }
    assert!(n > 0, "no fixture case of kind {kind}");
    assert!(
        failures.is_empty(),
        "beyond {ATOL:e} + {RTOL:e}·|torch|: {failures:#?}"
    );
}

#[test]
fn scaled_dot_product_attention_matches_torch() {
    run_kind("sdpa", |_| None, calls::sdpa);
}

#[test]
fn multihead_attention_matches_torch() {
    run_kind("mha", calls::build_mha, calls::mha);
}

#[test]
fn transformer_encoder_layer_matches_torch() {
    run_kind("encoder_layer", calls::build_encoder_layer, calls::encoder);
}

#[test]
fn transformer_encoder_matches_torch() {
    run_kind("encoder", calls::build_encoder, calls::encoder);
}

#[test]
fn transformer_decoder_layer_matches_torch() {
    run_kind("decoder_layer", calls::build_decoder_layer, calls::decoder);
}

#[test]
fn lstm_matches_torch() {
    run_kind("lstm", calls::build_lstm, calls::lstm);
}

#[test]
fn gru_matches_torch() {
    run_kind("gru", calls::build_gru, calls::gru);
}

#[test]
fn lstm_cell_matches_torch() {
    run_kind("lstm_cell", calls::build_lstm_cell, calls::lstm_cell);
}

#[test]
fn gru_cell_matches_torch() {
    run_kind("gru_cell", calls::build_gru_cell, calls::gru_cell);
}

/// Dropout (attention weights, between LSTM layers, Transformer residuals) draws from kiln's
/// generator in training mode only: two seeds differ in training, eval is deterministic and
/// dropout-free.
#[test]
fn dropout_applies_in_training_mode_only() {
    use kiln::nn::{
        LSTM, MultiheadAttention, MultiheadAttentionConfig, RnnConfig, TransformerEncoderLayer,
        TransformerLayerConfig,
    };
    let dev = candle_core::Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (5, 2, 8), &dev).unwrap();
    let mha = MultiheadAttention::with(
        8,
        2,
        MultiheadAttentionConfig {
            dropout: 0.5,
            ..Default::default()
        },
    )
    .unwrap();
    let lstm = LSTM::with(
        8,
        4,
        RnnConfig {
            num_layers: 2,
            dropout: 0.5,
            ..Default::default()
        },
    )
    .unwrap();
    let enc = TransformerEncoderLayer::with(
        8,
        2,
        TransformerLayerConfig {
            dim_feedforward: 16,
            ..Default::default()
        },
    )
    .unwrap();
    for m in [&mha as &dyn Module, &lstm, &enc] {
        m.train(true);
        kiln::rng::manual_seed(1);
        let a = values(&m.forward(&x).unwrap());
        kiln::rng::manual_seed(2);
        let b = values(&m.forward(&x).unwrap());
        assert_ne!(a, b, "{}: dropout in training", m.type_name());
        m.eval();
        kiln::rng::manual_seed(1);
        let c = values(&m.forward(&x).unwrap());
        kiln::rng::manual_seed(2);
        let d = values(&m.forward(&x).unwrap());
        assert_eq!(c, d, "{}: no dropout in eval", m.type_name());
    }
}

/// Wrong shapes are `K0220` errors naming the layer (and, inside a Transformer layer, the
/// child), never a backend error.
#[test]
fn wrong_shapes_name_the_layer() {
    use kiln::nn::{
        GRU, LSTM, LSTMCell, MultiheadAttention, TransformerEncoder, TransformerEncoderLayer,
    };
    let dev = candle_core::Device::Cpu;
    let z = |d: &[usize]| Tensor::zeros(d, DType::F32, &dev).unwrap();
    let mha = MultiheadAttention::new(8, 2).unwrap();
    let e = mha.forward(&z(&[5, 2, 6])).unwrap_err();
    assert_eq!(e.code(), "K0220");
    assert!(
        e.to_string().contains("MultiheadAttention(embed_dim=8"),
        "{e}"
    );
    let kpm = z(&[3, 5]);
    let args = kiln::nn::AttentionArgs {
        key_padding_mask: Some(&kpm),
        ..Default::default()
    };
    let x = z(&[5, 2, 8]);
    let e = mha.forward_with(&x, &x, &x, args).unwrap_err();
    assert!(
        e.to_string().contains("key_padding_mask") && e.to_string().contains("[2, 5]"),
        "{e}"
    );
    let causal = kiln::nn::AttentionArgs {
        is_causal: true,
        ..Default::default()
    };
    assert_eq!(
        mha.forward_with(&x, &x, &x, causal).unwrap_err().code(),
        "K0003"
    );
    let enc =
        TransformerEncoder::new(TransformerEncoderLayer::new(8, 2).unwrap(), 2, None).unwrap();
    let e = enc.forward(&z(&[5, 2, 4])).unwrap_err();
    assert_eq!(e.code(), "K0220");
    assert!(
        e.to_string()
            .starts_with("layers.0.self_attn: MultiheadAttention"),
        "{e}"
    );
    let lstm = LSTM::new(3, 4).unwrap();
    let e = lstm.forward(&z(&[5, 2, 2])).unwrap_err();
    assert_eq!(e.code(), "K0220");
    assert!(e.to_string().contains("LSTM(3, 4)"), "{e}");
    let h = z(&[1, 2, 4]);
    let c = z(&[1, 3, 4]);
    let e = lstm
        .forward_with(&z(&[5, 2, 3]), Some((&h, &c)), None)
        .unwrap_err();
    assert!(
        e.to_string().contains("c0") && e.to_string().contains("[1, 2, 4]"),
        "{e}"
    );
    let gru = GRU::new(3, 4).unwrap();
    let e = gru
        .forward_with(&z(&[5, 2, 3]), None, Some(&[5]))
        .unwrap_err();
    assert_eq!(e.code(), "K0220");
    let cell = LSTMCell::new(3, 4, true).unwrap();
    assert_eq!(cell.forward(&z(&[2, 5])).unwrap_err().code(), "K0220");
}

/// Every sequence layer rebuilds from its spec through the registry (whole-model files) with
/// the same state-dict keys and shapes.
#[test]
fn sequence_layers_rebuild_from_their_spec() {
    use kiln::nn::{
        GRU, GRUCell, LSTM, LSTMCell, LayerNorm, MultiheadAttention, MultiheadAttentionConfig,
        RnnConfig, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
        TransformerEncoderLayer, registry,
    };
    let cfg = RnnConfig {
        num_layers: 2,
        bidirectional: true,
        proj_size: 2,
        ..Default::default()
    };
    let mods: Vec<Box<dyn Module>> = vec![
        Box::new(
            MultiheadAttention::with(
                8,
                2,
                MultiheadAttentionConfig {
                    kdim: Some(3),
                    add_bias_kv: true,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        Box::new(
            TransformerEncoder::new(
                TransformerEncoderLayer::new(8, 2).unwrap(),
                3,
                Some(LayerNorm::new(&[8]).unwrap()),
            )
            .unwrap(),
        ),
        Box::new(
            TransformerDecoder::new(TransformerDecoderLayer::new(8, 2).unwrap(), 2, None).unwrap(),
        ),
        Box::new(LSTM::with(3, 4, cfg).unwrap()),
        Box::new(GRU::new(3, 4).unwrap()),
        Box::new(LSTMCell::new(3, 4, false).unwrap()),
        Box::new(GRUCell::new(3, 4, true).unwrap()),
    ];
    for m in mods {
        let rebuilt = registry::build(&m.spec()).unwrap();
        let keys = |m: &dyn Module| -> Vec<(String, Vec<usize>)> {
            m.state_dict()
                .iter()
                .map(|(k, v)| (k.to_string(), v.dims().to_vec()))
                .collect()
        };
        assert_eq!(
            keys(rebuilt.as_ref()),
            keys(m.as_ref()),
            "{}",
            m.type_name()
        );
        assert_eq!(rebuilt.repr(), m.repr());
    }
}
