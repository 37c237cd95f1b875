//! Your own model with `#[derive(Module)]`: a residual CNN (Conv2d, BatchNorm2d, LayerNorm,
//! GELU, Dropout) and a text classifier (Embedding), trained with `Trainer::builder` on
//! in-memory data, saved as a `.pt` that `torch.load` reads into the twin PyTorch classes
//! (scripts/custom_model_twin.py), and resumed bit-exactly after an interruption.
//!
//! `cargo run --release --example custom_model -- OUT_DIR` (CI runs it).

use kiln::candle::{DType, Device, IndexOp, Tensor};
use kiln::checkpoint::Resume;
use kiln::data::{Dataset, TensorDataset};
use kiln::nn::{
    BatchNorm2d, Conv2d, Conv2dConfig, Dropout, Embedding, Gelu, LayerNorm, Linear, Module,
    TensorExt,
};
use kiln::optim::SgdConfig;
use kiln::train::{Hook, OptimizerChoice, StepReport, Trainer};

// ---- the models (count: Block + Net with constructors and forward = 41 non-blank,
// non-comment lines; the PyTorch twin in scripts/custom_model_twin.py = 27; ratio 1.52, see
// docs/GUIDE.md) ----

#[derive(Module)]
struct Block {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
}

impl Block {
    fn new(c: usize) -> kiln::Result<Self> {
        let cfg = Conv2dConfig { padding: 1, bias: false, ..Default::default() };
        let (conv1, conv2) = (Conv2d::new(c, c, 3, cfg)?, Conv2d::new(c, c, 3, cfg)?);
        Ok(Block { conv1, bn1: BatchNorm2d::new(c)?, conv2, bn2: BatchNorm2d::new(c)? })
    }
    fn forward(&self, x: &Tensor) -> kiln::Result<Tensor> {
        let y = x.then(&self.conv1)?.then(&self.bn1)?.relu()?.then(&self.conv2)?.then(&self.bn2)?;
        Ok((y + x)?.relu()?)
    }
}

#[derive(Module)]
struct Net {
    stem: Conv2d,
    blocks: Vec<Block>,
    norm: LayerNorm,
    act: Gelu,
    drop: Dropout,
    head: Linear,
    #[module(skip)]
    width: usize,
}

impl Net {
    fn new(width: usize, classes: usize) -> kiln::Result<Self> {
        let stem = Conv2d::new(1, width, 3, Conv2dConfig { padding: 1, ..Default::default() })?;
        let blocks = vec![Block::new(width)?, Block::new(width)?];
        let (norm, act, drop) = (LayerNorm::new(&[width])?, Gelu::default(), Dropout::new(0.1)?);
        Ok(Net { stem, blocks, norm, act, drop, head: Linear::new(width, classes, true)?, width })
    }
    fn forward(&self, x: &Tensor) -> kiln::Result<Tensor> {
        let x = x.then(&self.stem)?.then_each(&self.blocks)?.mean((2, 3))?;
        x.then(&self.norm)?.then(&self.act)?.then(&self.drop)?.then(&self.head)
    }
}

#[derive(Module)]
struct TextClf {
    emb: Embedding,
    head: Linear,
}

impl TextClf {
    fn forward(&self, ids: &Tensor) -> kiln::Result<Tensor> {
        self.head.forward(&self.emb.forward(ids)?.mean(1)?)
    }
}

// ---- the run ----

/// Stops training after `n` steps with an error, like a crash (the checkpoint before it stays).
struct StopAfter(u64);

impl Hook for StopAfter {
    fn on_step(&mut self, t: &Trainer, _s: &StepReport) -> kiln::Result<()> {
        if t.state.global_step >= self.0 {
            return Err(kiln::Error::Unsupported { what: "simulated crash".into() });
        }
        Ok(())
    }
}

fn digits() -> kiln::Result<(TensorDataset, TensorDataset)> {
    kiln::data::digits::train_test()
}

fn net_trainer(dir: &std::path::Path, resume: bool) -> kiln::Result<Trainer> {
    kiln::rng::manual_seed(7);
    let (train, test) = digits()?;
    let mut b = Trainer::builder(Net::new(8, 10)?, train)
        .eval_set(test)
        .optimizer(OptimizerChoice::Sgd(SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            ..Default::default()
        }))
        .batch_size(64)
        .epochs(3)
        .seed(7)
        .checkpoint_dir(dir.join("checkpoints"))
        .checkpoint_policy(kiln::checkpoint::Policy {
            every_n_steps: Some(10),
            ..Default::default()
        });
    if resume {
        b = b.resume(Resume::Last);
    }
    b.build()
}

fn bytes_of(m: &dyn Module) -> kiln::Result<Vec<Vec<f32>>> {
    m.state_dict()
        .iter()
        .map(|(_, t)| Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?))
        .collect()
}

fn main() -> kiln::Result<()> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "runs/custom_model".into());
    let out = std::path::PathBuf::from(out);
    std::fs::create_dir_all(&out).map_err(|e| kiln::Error::io("create", &out, e))?;

    // 1. Train Net on the embedded digits, uninterrupted.
    let mut full = net_trainer(&out.join("full"), false)?;
    let metrics = full.fit()?;
    let first = metrics.first().map_or(f64::NAN, |m| m.train_loss);
    let last = metrics.last().map_or(f64::NAN, |m| m.train_loss);
    println!(
        "Net: train loss {first:.4} -> {last:.4}, test accuracy {:.3}",
        metrics.last().map_or(0.0, |m| m.test_acc)
    );
    if last.is_nan() || last >= first {
        return Err(kiln::Error::Unsupported {
            what: format!("loss did not go down ({first} -> {last})"),
        });
    }

    // 2. The same run interrupted after 25 steps, then resumed from the last checkpoint.
    let mut crashed = net_trainer(&out.join("crash"), false)?;
    crashed.hooks.push(Box::new(StopAfter(25)));
    if crashed.fit().is_ok() {
        return Err(kiln::Error::Unsupported { what: "the interrupted run did not stop".into() });
    }
    let mut resumed = net_trainer(&out.join("crash"), true)?;
    println!("resumed at step {}", resumed.state.global_step);
    resumed.fit()?;
    let same = bytes_of(full.model.as_ref())? == bytes_of(resumed.model.as_ref())?;
    println!("resumed run bit-identical to the uninterrupted one: {same}");
    if !same {
        return Err(kiln::Error::Unsupported { what: "resume was not bit-exact".into() });
    }

    // 3. Save for PyTorch: a .pt state dict, plus an input and kiln's eval-mode output.
    full.model.eval();
    kiln::io::save_state_dict(&full.model.state_dict(), out.join("net.pt"))?;
    let x = digits()?.1.get_batch(&(0..16).collect::<Vec<_>>())?.0;
    let y = full.model.forward(&x)?;
    let mut io = kiln::StateDict::new();
    io.insert("x".to_string(), x);
    io.insert("y".to_string(), y);
    kiln::io::save_state_dict(&io, out.join("net_io.safetensors"))?;

    // 4. The text classifier: token 3 anywhere in the sequence means class 1.
    kiln::rng::manual_seed(1);
    let n = 256;
    let mut ids = Vec::with_capacity(n * 6);
    let mut labels = Vec::with_capacity(n);
    let mut g = kiln::rng::Generator::new(5);
    for i in 0..n {
        let class = (i % 2) as i64;
        for j in 0..6 {
            let t = 4 + (g.next_u64() % 20) as i64;
            ids.push(if class == 1 && j == (i / 2) % 6 { 3 } else { t });
        }
        labels.push(class);
    }
    let ids = Tensor::from_vec(ids, (n, 6), &Device::Cpu)?;
    let data = TokenDataset { ids, labels };
    let clf = TextClf { emb: Embedding::new(24, 16)?, head: Linear::new(16, 2, true)? };
    let mut t = Trainer::builder(clf, data)
        .optimizer(OptimizerChoice::Adam(kiln::optim::AdamConfig {
            lr: 0.05,
            ..Default::default()
        }))
        .batch_size(32)
        .epochs(8)
        .build()?;
    let m = t.fit()?;
    let (a, b) = (m[0].train_loss, m[m.len() - 1].train_loss);
    println!(
        "TextClf: train loss {a:.4} -> {b:.4}, train accuracy {:.3}",
        m[m.len() - 1].train_acc
    );
    if b >= a {
        return Err(kiln::Error::Unsupported {
            what: format!("TextClf loss did not go down ({a} -> {b})"),
        });
    }
    kiln::io::save_state_dict(&t.model.state_dict(), out.join("text.pt"))?;
    Ok(())
}

/// Token-id sequences (i64) with class labels.
struct TokenDataset {
    ids: Tensor,
    labels: Vec<i64>,
}

impl Dataset for TokenDataset {
    fn name(&self) -> String {
        "tokens".into()
    }
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn get(&self, i: usize) -> kiln::Result<(Tensor, i64)> {
        let label =
            *self.labels.get(i).ok_or_else(|| kiln::Error::invalid("index", i, "below len"))?;
        Ok((self.ids.i(i)?, label))
    }
}
