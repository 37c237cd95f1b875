//! A tiny character-level language model: `Embedding → LSTM (2 layers) → Linear`, trained
//! with Adam on an embedded text to predict each next character. The same model in PyTorch
//! is `nn.Embedding`, `nn.LSTM(16, 64, num_layers=2, batch_first=True)`, `nn.Linear`, and
//! the `.pt` this example writes loads into it strictly.
//!
//! `cargo run --release --example char_lstm -- [OUT_DIR]` (CI runs it; it asserts that the
//! loss falls and finishes in well under a minute).

#![allow(clippy::result_large_err)] // kiln::Error is large (see the note on issue 13)

use kiln::candle::{DType, Device, Tensor};
use kiln::nn::loss::cross_entropy;
use kiln::nn::{Embedding, LSTM, Linear, Module, RnnConfig};
use kiln::optim::{Adam, AdamConfig, Grads, Optimizer};

const TEXT: &str = "the quick brown fox jumps over the lazy dog. \
a stitch in time saves nine. all that glitters is not gold. \
the early bird catches the worm. actions speak louder than words. \
the pen is mightier than the sword. when in rome, do as the romans do. \
the quick brown fox jumps over the lazy dog again and again. ";

const SEQ: usize = 24;
const BATCH: usize = 16;
const STEPS: usize = 80;

#[derive(Module)]
struct CharLm {
    embed: Embedding,
    lstm: LSTM,
    head: Linear,
}

impl CharLm {
    fn new(vocab: usize) -> kiln::Result<Self> {
        let cfg = RnnConfig { num_layers: 2, batch_first: true, ..Default::default() };
        Ok(CharLm {
            embed: Embedding::new(vocab, 16)?,
            lstm: LSTM::with(16, 64, cfg)?,
            head: Linear::new(64, vocab, true)?,
        })
    }

    /// `ids [N, T]` → logits `[N·T, vocab]`.
    fn forward(&self, ids: &Tensor) -> kiln::Result<Tensor> {
        let x = self.embed.forward(ids)?;
        let (y, _) = self.lstm.forward_with(&x, None, None)?;
        let (n, t, h) = y.dims3()?;
        self.head.forward(&y.reshape((n * t, h))?)
    }
}

/// `BATCH` windows of `SEQ + 1` characters at seeded random offsets: inputs and next chars.
fn batch(ids: &[u32], step: usize) -> kiln::Result<(Tensor, Tensor)> {
    let mut xs = Vec::with_capacity(BATCH * SEQ);
    let mut ys = Vec::with_capacity(BATCH * SEQ);
    for b in 0..BATCH {
        // A simple deterministic spread of offsets (kiln::rng drives the weights).
        let start = (step * 7919 + b * 104_729) % (ids.len() - SEQ - 1);
        xs.extend_from_slice(&ids[start..start + SEQ]);
        ys.extend(ids[start + 1..start + SEQ + 1].iter().map(|&v| v as i64));
    }
    Ok((
        Tensor::from_vec(xs, (BATCH, SEQ), &Device::Cpu)?,
        Tensor::from_vec(ys, BATCH * SEQ, &Device::Cpu)?,
    ))
}

fn main() -> kiln::Result<()> {
    let out = std::path::PathBuf::from(
        std::env::args().nth(1).unwrap_or_else(|| "runs/char_lstm".into()),
    );
    std::fs::create_dir_all(&out).map_err(|e| kiln::Error::io("create", &out, e))?;
    kiln::rng::manual_seed(0);
    let mut vocab: Vec<char> = TEXT.chars().collect();
    vocab.sort_unstable();
    vocab.dedup();
    let ids: Vec<u32> =
        TEXT.chars().map(|c| vocab.iter().position(|&v| v == c).unwrap_or(0) as u32).collect();
    let model = CharLm::new(vocab.len())?;
    let mut opt =
        Adam::new(model.trainable_parameters(), AdamConfig { lr: 1e-2, ..Default::default() })?;
    let started = std::time::Instant::now();
    let mut curve = Vec::with_capacity(STEPS);
    for step in 0..STEPS {
        let (x, y) = batch(&ids, step)?;
        let loss = cross_entropy(&model.forward(&x)?, &y)?;
        let grads = Grads::backward(&loss, &model.parameters())?;
        opt.step(&grads)?;
        curve.push(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?);
        if step % 10 == 0 || step + 1 == STEPS {
            println!("step {step:3}  loss {:.4}", curve[step]);
        }
    }
    let first: f64 = curve[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = curve[STEPS - 5..].iter().sum::<f64>() / 5.0;
    println!(
        "char_lstm: vocab {}, {} parameters, loss {first:.3} -> {last:.3} in {:.1}s",
        vocab.len(),
        model.num_parameters(),
        started.elapsed().as_secs_f64()
    );
    // Greedy continuation of a prompt, to see what it learnt.
    model.eval();
    let mut text: Vec<u32> = "the "
        .chars()
        .filter_map(|c| vocab.iter().position(|&v| v == c))
        .map(|i| i as u32)
        .collect();
    for _ in 0..30 {
        let x = Tensor::from_vec(text.clone(), (1, text.len()), &Device::Cpu)?;
        let logits = model.forward(&x)?;
        let next = logits.get(text.len() - 1)?.argmax(0)?.to_scalar::<u32>()?;
        text.push(next);
    }
    let sample: String = text.iter().map(|&i| vocab[i as usize]).collect();
    println!("sample: {sample:?}");
    kiln::io::save_state_dict(&model.state_dict(), out.join("char_lstm.pt"))?;
    if last >= first * 0.75 {
        return Err(kiln::Error::Unsupported {
            what: format!("char_lstm: the loss did not fall enough ({first:.3} -> {last:.3})"),
        });
    }
    Ok(())
}
