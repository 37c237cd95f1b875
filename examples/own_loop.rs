//! Your own training loop, PyTorch style: forward, loss, backward, step — with kiln's
//! `DataLoader`, `Grads` and `Sgd`, then the weights saved as a `.pt` for `torch.load`.
//!
//! `cargo run --release --example own_loop -- OUT_DIR` (CI runs it).

use kiln::data::{DataLoader, digits};
use kiln::nn::loss::{correct, cross_entropy};
use kiln::nn::{Linear, Module};
use kiln::optim::{Grads, Optimizer, Sgd, SgdConfig};
use std::sync::Arc;

#[derive(Module)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn forward(&self, x: &kiln::candle::Tensor) -> kiln::Result<kiln::candle::Tensor> {
        let x = x.flatten_from(1)?;
        self.fc2.forward(&self.fc1.forward(&x)?.relu()?)
    }
}

fn main() -> kiln::Result<()> {
    let out =
        std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "runs/own_loop".into()));
    std::fs::create_dir_all(&out).map_err(|e| kiln::Error::io("create", &out, e))?;
    kiln::rng::manual_seed(0);
    let model = Mlp { fc1: Linear::new(64, 32, true)?, fc2: Linear::new(32, 10, true)? };
    let mut opt = Sgd::new(
        model.trainable_parameters(),
        SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() },
    )?;
    let (train, test) = digits::train_test()?;
    let train = DataLoader::new(Arc::new(train), 32)?.shuffle(true).seed(0);
    let test = DataLoader::new(Arc::new(test), 256)?;
    for epoch in 0..5 {
        model.train(true);
        let mut loss_sum = 0.0;
        let mut n = 0;
        for batch in train.epoch(epoch)? {
            let batch = batch?;
            let logits = model.forward(&batch.inputs)?;
            let loss = cross_entropy(&logits, &batch.targets)?;
            let grads = Grads::backward(&loss, &model.parameters())?;
            opt.step(&grads)?;
            loss_sum += loss.to_scalar::<f32>()? as f64 * batch.len() as f64;
            n += batch.len();
        }
        model.eval();
        let (mut right, mut seen) = (0, 0);
        for batch in test.epoch(0)? {
            let batch = batch?;
            right += correct(&model.forward(&batch.inputs)?, &batch.targets)?;
            seen += batch.len();
        }
        println!(
            "epoch {}: train loss {:.4}, test accuracy {:.3}",
            epoch + 1,
            loss_sum / n as f64,
            right as f64 / seen as f64
        );
        if epoch == 4 && (right as f64 / seen as f64) < 0.85 {
            return Err(kiln::Error::Unsupported { what: "own loop did not learn".into() });
        }
    }
    kiln::io::save_state_dict(&model.state_dict(), out.join("mlp.pt"))?;
    println!("wrote {}", out.join("mlp.pt").display());
    Ok(())
}
