//! A data set of your own (`kiln::data::Dataset`): noisy points on two interleaved spirals,
//! generated on the fly from kiln's seeded generator, trained on with `Trainer::builder`.
//! And a regression data set (f32 targets) trained with `mse_loss`.
//!
//! `cargo run --release --example custom_dataset` (CI runs it).

use kiln::candle::{Device, Tensor};
use kiln::data::Dataset;
use kiln::data::sources::{MemoryDataset, Targets, Values};
use kiln::nn::{Linear, Module};
use kiln::optim::AdamConfig;
use kiln::train::{OptimizerChoice, Trainer};

/// Two spirals, `n` points each; sample `i` is a pure function of `i` (any order, any worker).
struct Spirals {
    n: usize,
}

impl Dataset for Spirals {
    fn name(&self) -> String {
        "spirals".into()
    }
    fn len(&self) -> usize {
        2 * self.n
    }
    fn get(&self, i: usize) -> kiln::Result<(Tensor, i64)> {
        if i >= self.len() {
            return Err(kiln::Error::invalid("spiral index", i, format!("below {}", self.len())));
        }
        let class = (i % 2) as i64;
        let t = (i / 2) as f32 / self.n as f32 * 2.0 * std::f32::consts::PI;
        let r = t / 10.0 + 0.1;
        let sign = if class == 0 { 1.0 } else { -1.0 };
        let xy = [sign * r * t.cos(), sign * r * t.sin()];
        Ok((Tensor::new(&xy, &Device::Cpu)?, class))
    }
}

#[derive(Module)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl Mlp {
    fn new(outputs: usize) -> kiln::Result<Self> {
        Ok(Mlp {
            fc1: Linear::new(2, 64, true)?,
            fc2: Linear::new(64, 64, true)?,
            fc3: Linear::new(64, outputs, true)?,
        })
    }
    fn forward(&self, x: &Tensor) -> kiln::Result<Tensor> {
        let x = self.fc1.forward(x)?.tanh()?;
        let x = self.fc2.forward(&x)?.tanh()?;
        self.fc3.forward(&x)
    }
}

fn main() -> kiln::Result<()> {
    kiln::rng::manual_seed(0);
    let mut t = Trainer::builder(Mlp::new(2)?, Spirals { n: 200 })
        .eval_set(Spirals { n: 50 })
        .optimizer(OptimizerChoice::Adam(AdamConfig { lr: 0.01, ..Default::default() }))
        .batch_size(32)
        .epochs(60)
        .build()?;
    let m = t.fit()?;
    let last = &m[m.len() - 1];
    println!("spirals: test accuracy {:.3} after {} epochs", last.test_acc, last.epoch);
    if last.test_acc < 0.8 {
        return Err(kiln::Error::Unsupported {
            what: format!("spirals accuracy {}", last.test_acc),
        });
    }

    // Regression: y = 3·x0 − 2·x1 + 1 with f32 targets, mse_loss, and an MAE metric.
    let n = 256;
    let mut g = kiln::rng::Generator::new(3);
    let mut xs = Vec::with_capacity(2 * n);
    let mut ys = Vec::with_capacity(n);
    for _ in 0..n {
        let a = (g.next_u64() % 1000) as f32 / 500.0 - 1.0;
        let b = (g.next_u64() % 1000) as f32 / 500.0 - 1.0;
        xs.extend([a, b]);
        ys.push(3.0 * a - 2.0 * b + 1.0);
    }
    let data = MemoryDataset::new(
        "line",
        Values::F32(xs),
        &[2],
        Targets::Values { data: ys, shape: vec![1] },
    )?;
    let mut t = Trainer::builder(Linear::new(2, 1, true)?, data.clone())
        .loss(kiln::nn::loss::mse_loss)
        .eval_set(data.clone())
        .metric("mae", |out, target| {
            Ok((out - target)?.abs()?.mean_all()?.to_scalar::<f32>()? as f64)
        })
        .optimizer(OptimizerChoice::Sgd(kiln::optim::SgdConfig { lr: 0.1, ..Default::default() }))
        .batch_size(32)
        .epochs(20)
        .build()?;
    let m = t.fit()?;
    let last = &m[m.len() - 1];
    println!("regression: test mse {:.2e}, mae {:.2e}", last.test_loss, last.metrics["mae"]);
    if last.test_loss > 1e-3 {
        return Err(kiln::Error::Unsupported {
            what: format!("regression mse {}", last.test_loss),
        });
    }
    Ok(())
}
