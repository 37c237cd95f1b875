//! A Transformer-encoder text classifier on a tiny synthetic task: sequences of token ids of
//! varying length (padded with id 0), labelled 1 when token 1 occurs more often than token 2.
//! `Embedding` + learnt positions → `TransformerEncoder` (2 pre-norm layers, GELU,
//! `batch_first`, `src_key_padding_mask` for the padding) → mean over the real tokens →
//! `Linear`. Keys and shapes are PyTorch's, so the `.pt` it writes loads into the same model
//! built from `torch.nn`.
//!
//! `cargo run --release --example transformer_classifier -- [OUT_DIR]` (CI runs it; it asserts
//! that the loss falls and the training accuracy rises).

#![allow(clippy::result_large_err)] // kiln::Error is large (see the note on issue 13)

use kiln::candle::{D, DType, Device, Tensor};
use kiln::nn::loss::{correct, cross_entropy};
use kiln::nn::{
    Embedding, EncoderArgs, Linear, Module, Param, TransformerActivation, TransformerEncoder,
    TransformerEncoderLayer, TransformerLayerConfig,
};
use kiln::optim::{Adam, AdamConfig, Grads, Optimizer};

const VOCAB: usize = 12;
const MAX_LEN: usize = 16;
const D_MODEL: usize = 32;
const BATCH: usize = 32;
const STEPS: usize = 60;

#[derive(Module)]
struct Classifier {
    embed: Embedding,
    pos: Param,
    encoder: TransformerEncoder,
    head: Linear,
}

impl Classifier {
    fn new() -> kiln::Result<Self> {
        let cfg = TransformerLayerConfig {
            dim_feedforward: 64,
            dropout: 0.0,
            activation: TransformerActivation::Gelu,
            batch_first: true,
            norm_first: true,
            ..Default::default()
        };
        let layer = TransformerEncoderLayer::with(D_MODEL, 4, cfg)?;
        Ok(Classifier {
            embed: Embedding::new(VOCAB, D_MODEL)?,
            pos: Param::new(&kiln::nn::init::normal(&[MAX_LEN, D_MODEL], 0.02)?, true)?,
            encoder: TransformerEncoder::new(layer, 2, None)?,
            head: Linear::new(D_MODEL, 2, true)?,
        })
    }

    /// `ids [N, T]` and `pad [N, T]` (1 = padding) → logits `[N, 2]`.
    fn classify(&self, ids: &Tensor, pad: &Tensor) -> kiln::Result<Tensor> {
        let x = self.embed.forward(ids)?.broadcast_add(&self.pos.tensor())?;
        let args = EncoderArgs { src_key_padding_mask: Some(pad), ..Default::default() };
        let h = self.encoder.forward_with(&x, args)?;
        // Mean over the real tokens only.
        let keep = (1.0 - pad.to_dtype(DType::F32)?)?.unsqueeze(D::Minus1)?;
        let pooled = h.broadcast_mul(&keep)?.sum(1)?.broadcast_div(&keep.sum(1)?)?;
        self.head.forward(&pooled)
    }

    fn forward(&self, _x: &Tensor) -> kiln::Result<Tensor> {
        Err(kiln::Error::Unsupported { what: "Classifier needs ids and a padding mask".into() })
    }
}

/// A seeded batch: ids (padded with 0 after a random length), padding mask, labels.
fn batch() -> kiln::Result<(Tensor, Tensor, Tensor)> {
    let (mut ids, mut pad, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    kiln::rng::with(|g| {
        for _ in 0..BATCH {
            let len = 6 + (g.next_f64() * (MAX_LEN - 5) as f64) as usize;
            let len = len.min(MAX_LEN);
            let (mut ones, mut twos) = (0, 0);
            for t in 0..MAX_LEN {
                if t < len {
                    let id = 1 + (g.next_f64() * (VOCAB - 1) as f64) as u32;
                    let id = id.min(VOCAB as u32 - 1);
                    ones += usize::from(id == 1);
                    twos += usize::from(id == 2);
                    ids.push(id);
                    pad.push(0u8);
                } else {
                    ids.push(0);
                    pad.push(1u8);
                }
            }
            labels.push(i64::from(ones > twos));
        }
    });
    let dev = Device::Cpu;
    Ok((
        Tensor::from_vec(ids, (BATCH, MAX_LEN), &dev)?,
        Tensor::from_vec(pad, (BATCH, MAX_LEN), &dev)?,
        Tensor::from_vec(labels, BATCH, &dev)?,
    ))
}

fn main() -> kiln::Result<()> {
    let out = std::path::PathBuf::from(
        std::env::args().nth(1).unwrap_or_else(|| "runs/transformer_classifier".into()),
    );
    std::fs::create_dir_all(&out).map_err(|e| kiln::Error::io("create", &out, e))?;
    kiln::rng::manual_seed(0);
    let model = Classifier::new()?;
    let mut opt =
        Adam::new(model.trainable_parameters(), AdamConfig { lr: 3e-3, ..Default::default() })?;
    let started = std::time::Instant::now();
    let mut curve = Vec::with_capacity(STEPS);
    let mut acc = Vec::with_capacity(STEPS);
    for step in 0..STEPS {
        let (ids, pad, y) = batch()?;
        let logits = model.classify(&ids, &pad)?;
        let loss = cross_entropy(&logits, &y)?;
        let grads = Grads::backward(&loss, &model.parameters())?;
        opt.step(&grads)?;
        curve.push(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?);
        acc.push(correct(&logits, &y)? as f64 / BATCH as f64);
        if step % 10 == 0 || step + 1 == STEPS {
            println!("step {step:3}  loss {:.4}  batch accuracy {:.2}", curve[step], acc[step]);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (first, last) = (mean(&curve[..5]), mean(&curve[STEPS - 10..]));
    let last_acc = mean(&acc[STEPS - 10..]);
    println!(
        "transformer_classifier: {} parameters, loss {first:.3} -> {last:.3}, accuracy {last_acc:.2}, {:.1}s",
        model.num_parameters(),
        started.elapsed().as_secs_f64()
    );
    kiln::io::save_state_dict(&model.state_dict(), out.join("transformer_classifier.pt"))?;
    if last >= first * 0.85 {
        return Err(kiln::Error::Unsupported {
            what: format!(
                "transformer_classifier: the loss did not fall ({first:.3} -> {last:.3})"
            ),
        });
    }
    Ok(())
}
