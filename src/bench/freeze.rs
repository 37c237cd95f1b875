//! `kiln bench freeze`: backward time of ResNet-18 on the CPU with everything but the head
//! frozen vs nothing frozen.
//!
//! A frozen parameter holds a plain tensor, not a candle `Var`, so candle's backward neither
//! visits the layers that only frozen parameters feed nor computes their weight gradients:
//! with a frozen backbone, backward is the head's matrix product alone.

use candle_core::{Device, Tensor};
use kiln::error::{Context, Error, Result};
use kiln::finetune::{Selector, freeze, unfreeze};
use kiln::models::{ResNet, ResNetConfig};
use kiln::nn::Module;
use kiln::nn::loss::cross_entropy;
use kiln::optim::Grads;
use std::time::Instant;

use super::checkpoint::median;

/// Median backward times in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FreezeBench {
    /// Nothing frozen.
    pub full_ms: f64,
    /// Everything but `fc` frozen.
    pub frozen_ms: f64,
    /// Forward (training mode) with nothing frozen, for scale.
    pub forward_ms: f64,
}

/// Times `steps` backward passes of each variant (after one warm-up each), alternating the
/// two so that machine noise hits both alike, on a fixed random batch of `batch` images of
/// 3×`image`×`image` with 10 classes.
///
/// # Errors
/// `K0003` for zero steps, batch or image size; model errors.
pub fn run(batch: usize, image: usize, steps: usize) -> Result<FreezeBench> {
    for (what, v) in [("steps", steps), ("batch", batch), ("image", image)] {
        if v == 0 {
            return Err(Error::invalid(what, 0, "at least 1"));
        }
    }
    kiln::rng::manual_seed(0);
    let cfg = ResNetConfig {
        num_classes: 10,
        in_channels: 3,
    };
    let full = ResNet::resnet18(cfg)?;
    let frozen = ResNet::resnet18(cfg)?;
    freeze(&frozen, &Selector::new(&["*"])?)?;
    unfreeze(&frozen, &Selector::new(&["fc"])?)?;
    let mut g = kiln::rng::Generator::new(1);
    let x = Tensor::from_vec(
        g.uniform_vec(batch * 3 * image * image, -1.0, 1.0),
        (batch, 3, image, image),
        &Device::Cpu,
    )
    .ctx("bench input")?;
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    let y = Tensor::new(labels.as_slice(), &Device::Cpu).ctx("bench labels")?;
    let time = |m: &ResNet| -> Result<(f64, f64)> {
        m.train(true);
        let t0 = Instant::now();
        let loss = cross_entropy(&m.forward(&x)?, &y)?;
        let fwd = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        let grads = Grads::backward(&loss, &m.parameters())?;
        let bwd = t1.elapsed().as_secs_f64() * 1e3;
        drop(grads);
        Ok((fwd, bwd))
    };
    time(&full)?;
    time(&frozen)?;
    let (mut f, mut z, mut fwd) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..steps {
        let (a, b) = time(&full)?;
        fwd.push(a);
        f.push(b);
        z.push(time(&frozen)?.1);
    }
    Ok(FreezeBench {
        full_ms: median(f),
        frozen_ms: median(z),
        forward_ms: median(fwd),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_backbone_backward_is_faster() {
        let r = run(2, 16, 3).unwrap();
        assert!(r.frozen_ms < r.full_ms, "{r:?}");
    }
}
