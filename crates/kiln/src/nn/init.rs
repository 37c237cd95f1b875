//! PyTorch's default initialisations, drawn from kiln's seeded generator ([`crate::rng`]).
//!
//! The distributions match PyTorch's (`kaiming_uniform_(a=√5)` for Linear/Conv weights,
//! `uniform(±1/√fan_in)` for their biases, `kaiming_normal_(fan_out, relu)` for torchvision's
//! ResNet convs); the numbers differ because the generator differs.

use crate::error::{Context, Result};
use crate::rng;
use candle_core::{Device, Tensor};

/// `fan_in` and `fan_out` of a weight shape as PyTorch computes them.
pub fn fans(dims: &[usize]) -> (usize, usize) {
    let receptive: usize = dims.iter().skip(2).product();
    let fan_in = dims.get(1).copied().unwrap_or(1) * receptive;
    let fan_out = dims.first().copied().unwrap_or(1) * receptive;
    (fan_in.max(1), fan_out.max(1))
}

/// A tensor of `uniform(lo, hi)` samples.
pub fn uniform(dims: &[usize], lo: f64, hi: f64) -> Result<Tensor> {
    let n = crate::error::alloc::numel(dims, 4)?;
    let mut v = crate::error::alloc::try_vec::<f32>(n)?;
    rng::with(|g| v.extend((0..n).map(|_| g.uniform(lo, hi) as f32)));
    Tensor::from_vec(v, dims, &Device::Cpu).ctx("init::uniform")
}

/// A tensor of `normal(0, std)` samples.
pub fn normal(dims: &[usize], std: f64) -> Result<Tensor> {
    let n = crate::error::alloc::numel(dims, 4)?;
    let mut v = crate::error::alloc::try_vec::<f32>(n)?;
    rng::with(|g| v.extend((0..n).map(|_| (g.normal() * std) as f32)));
    Tensor::from_vec(v, dims, &Device::Cpu).ctx("init::normal")
}

/// PyTorch's default for Linear and Conv weights: `kaiming_uniform_(w, a=√5)`, i.e.
/// `uniform(±1/√fan_in)`.
pub fn default_weight(dims: &[usize]) -> Result<Tensor> {
    let (fan_in, _) = fans(dims);
    let gain = (2.0f64 / (1.0 + 5.0)).sqrt();
    let bound = gain * (3.0 / fan_in as f64).sqrt();
    uniform(dims, -bound, bound)
}

/// PyTorch's default for Linear and Conv biases: `uniform(±1/√fan_in)`.
pub fn default_bias(out: usize, fan_in: usize) -> Result<Tensor> {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    uniform(&[out], -bound, bound)
}

/// `xavier_uniform_(w)`: `uniform(±√(6 / (fan_in + fan_out)))` (gain 1).
pub fn xavier_uniform(dims: &[usize]) -> Result<Tensor> {
    let (fan_in, fan_out) = fans(dims);
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
    uniform(dims, -bound, bound)
}

/// `xavier_normal_(w)`: `normal(0, √(2 / (fan_in + fan_out)))` (gain 1).
pub fn xavier_normal(dims: &[usize]) -> Result<Tensor> {
    let (fan_in, fan_out) = fans(dims);
    normal(dims, (2.0 / (fan_in + fan_out) as f64).sqrt())
}

/// `kaiming_normal_(w, mode="fan_out", nonlinearity="relu")`, as torchvision's ResNet uses.
pub fn kaiming_normal_fan_out(dims: &[usize]) -> Result<Tensor> {
    let (_, fan_out) = fans(dims);
    normal(dims, (2.0 / fan_out as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_weight_is_within_bound_and_seeded() {
        rng::manual_seed(1);
        let a = default_weight(&[20, 30]).unwrap();
        let v: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let bound = 1.0 / 30f32.sqrt();
        assert!(v.iter().all(|x| x.abs() <= bound));
        assert!(v.iter().any(|x| x.abs() > 0.9 * bound));
        rng::manual_seed(1);
        let b: Vec<f32> = default_weight(&[20, 30])
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(v, b);
    }

    #[test]
    fn fans_of_conv_weight() {
        assert_eq!(fans(&[6, 3, 5, 5]), (75, 150));
    }
}
