//! `.pt` interop for the sequence layers, both ways, with real PyTorch (run by scripts/test.sh
//! through `scripts/seq_interop.sh`; ignored otherwise because it needs files that script
//! makes):
//!
//! 1. `scripts/seq_interop.py write DIR` builds `SeqNet` below in `torch.nn` (Embedding,
//!    MultiheadAttention, TransformerEncoder with a final norm, TransformerDecoderLayer,
//!    bidirectional 2-layer LSTM, GRU, GRUCell, LSTMCell, Linear), saves its `state_dict()` with
//!    `torch.save` and its eval output on fixed ids;
//! 2. this test loads that `.pt` strictly into kiln's `SeqNet`, checks the output (≤ 1e-5
//!    relative), then re-initialises the weights from kiln's generator and writes its own
//!    `.pt` and output;
//! 3. `scripts/seq_interop.py check DIR` loads kiln's file strictly (`torch.load`,
//!    `weights_only=True`) into the twin and compares the outputs.

#![allow(clippy::result_large_err)] // kiln::Error is large (see the note on issue 13)

use kiln::candle::{Device, Tensor};
use kiln::nn::{
    AttentionArgs, DecoderArgs, Embedding, GRU, GRUCell, LSTM, LSTMCell, LayerNorm, Linear, Module,
    MultiheadAttention, MultiheadAttentionConfig, RnnConfig, TransformerDecoderLayer,
    TransformerEncoder, TransformerEncoderLayer, TransformerLayerConfig,
};
use std::path::PathBuf;

#[derive(Module)]
struct SeqNet {
    embed: Embedding,
    attn: MultiheadAttention,
    encoder: TransformerEncoder,
    decoder: TransformerDecoderLayer,
    lstm: LSTM,
    gru: GRU,
    cell: GRUCell,
    lstm_cell: LSTMCell,
    head: Linear,
}

impl SeqNet {
    fn new() -> kiln::Result<Self> {
        let layer_cfg = TransformerLayerConfig {
            dim_feedforward: 16,
            dropout: 0.0,
            batch_first: true,
            ..Default::default()
        };
        let mha_cfg = MultiheadAttentionConfig {
            batch_first: true,
            ..Default::default()
        };
        let lstm_cfg = RnnConfig {
            num_layers: 2,
            bidirectional: true,
            batch_first: true,
            ..Default::default()
        };
        let gru_cfg = RnnConfig {
            batch_first: true,
            ..Default::default()
        };
        Ok(SeqNet {
            embed: Embedding::new(20, 8)?,
            attn: MultiheadAttention::with(8, 2, mha_cfg)?,
            encoder: TransformerEncoder::new(
                TransformerEncoderLayer::with(8, 2, layer_cfg)?,
                2,
                Some(LayerNorm::new(&[8])?),
            )?,
            decoder: TransformerDecoderLayer::with(8, 2, layer_cfg)?,
            lstm: LSTM::with(8, 6, lstm_cfg)?,
            gru: GRU::with(12, 5, gru_cfg)?,
            cell: GRUCell::new(5, 5, true)?,
            lstm_cell: LSTMCell::new(5, 4, true)?,
            head: Linear::new(4, 3, true)?,
        })
    }

    fn forward(&self, ids: &Tensor) -> kiln::Result<Tensor> {
        let x = self.embed.forward(ids)?;
        let args = AttentionArgs {
            need_weights: false,
            ..Default::default()
        };
        let (a, _) = self.attn.forward_with(&x, &x, &x, args)?;
        let x = (x + a)?;
        let mem = self.encoder.forward(&x)?;
        let x = self
            .decoder
            .forward_with(&x, &mem, DecoderArgs::default())?;
        let (y, _) = self.lstm.forward_with(&x, None, None)?;
        let (_, h) = self.gru.forward_with(&y, None, None)?;
        let h = self.cell.forward_with(&h.get(0)?, None)?;
        let (h, _) = self.lstm_cell.forward_with(&h, None)?;
        self.head.forward(&h)
    }
}

fn dir() -> Option<PathBuf> {
    std::env::var_os("KILN_SEQ_INTEROP_DIR").map(PathBuf::from)
}

fn ids() -> Tensor {
    let v: Vec<u32> = (0..2 * 7).map(|i| (i * 7 + 3) % 20).collect();
    Tensor::from_vec(v, (2, 7), &Device::Cpu).unwrap()
}

#[test]
#[ignore = "needs the files of scripts/seq_interop.sh"]
fn seq_models_round_trip_through_pt_with_pytorch() {
    let dir = dir().expect("set KILN_SEQ_INTEROP_DIR (scripts/seq_interop.sh does)");
    // PyTorch → kiln.
    kiln::rng::manual_seed(5);
    let net = SeqNet::new().unwrap();
    net.eval();
    let sd = kiln::io::load_state_dict_file(dir.join("torch_seq.pt"), &kiln::LoadOptions::new())
        .unwrap();
    net.load_state_dict(&sd, true).unwrap();
    let want = candle_core::safetensors::load(dir.join("torch_seq_out.safetensors"), &Device::Cpu)
        .unwrap();
    let got = net.forward(&ids()).unwrap();
    let err = rel(&got, &want["y"]);
    println!(
        "torch -> kiln: {} keys, max relative error {err:.3e}",
        sd.len()
    );
    assert!(err <= 1e-5, "{err}");
    // kiln → PyTorch.
    kiln::rng::manual_seed(6);
    let net = SeqNet::new().unwrap();
    net.eval();
    kiln::io::save_state_dict(&net.state_dict(), dir.join("kiln_seq.pt")).unwrap();
    let y = net.forward(&ids()).unwrap();
    let mut out = std::collections::HashMap::new();
    out.insert("y".to_string(), y);
    out.insert(
        "ids".to_string(),
        ids().to_dtype(candle_core::DType::I64).unwrap(),
    );
    candle_core::safetensors::save(&out, dir.join("kiln_seq_out.safetensors")).unwrap();
}

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    a.iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
        .max(0.0) as f64
        / scale as f64
}
