//! PyTorch's in-place tensor primitives used by the update rules, written with candle ops in
//! the parameter's dtype, with PyTorch's order of operations. Python scalars are rounded to
//! the tensor's dtype first, as PyTorch's CPU/CUDA kernels do.
//!
//! Difference from PyTorch: its vectorized CPU kernels fuse `a + alpha * b` (and `lerp`) into
//! one fused multiply-add; candle rounds the product and the sum separately, so single steps
//! can differ in the last bit.

use crate::error::{Context, Result};
use candle_core::Tensor;

/// `t * s` (`tensor.mul(s)`).
pub(crate) fn scale(t: &Tensor, s: f64) -> Result<Tensor> {
    t.affine(s, 0.0).ctx("optimizer: scale")
}

/// `a.add(b, alpha=alpha)` = `a + alpha * b` (exactly `a + b` when `alpha == 1`).
pub(crate) fn add_scaled(a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor> {
    if alpha == 1.0 {
        a.add(b).ctx("optimizer: add")
    } else {
        scale(b, alpha)?.add(a).ctx("optimizer: add")
    }
}

/// `t / s` as a true division by the scalar rounded to `t`'s dtype (candle's `t / s` would
/// multiply by `1/s`, which rounds differently).
pub(crate) fn div_scalar(t: &Tensor, s: f64) -> Result<Tensor> {
    let s = Tensor::new(s, t.device())
        .and_then(|s| s.to_dtype(t.dtype()))
        .ctx("optimizer: scalar")?;
    t.broadcast_div(&s).ctx("optimizer: divide")
}

/// `start.lerp(end, weight)` with PyTorch's two formulas: `start + w * (end - start)` for
/// `|w| < 0.5`, else `end - (end - start) * (1 - w)` (with `1 - w` taken in `f32`, PyTorch's
/// opmath type).
pub(crate) fn lerp(start: &Tensor, end: &Tensor, weight: f64) -> Result<Tensor> {
    let diff = end.sub(start).ctx("optimizer: lerp")?;
    let w = weight as f32;
    if w.abs() < 0.5 {
        scale(&diff, w as f64)?.add(start).ctx("optimizer: lerp")
    } else {
        end.sub(&scale(&diff, (1.0f32 - w) as f64)?)
            .ctx("optimizer: lerp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn primitives_match_pytorch_formulas() {
        let a = Tensor::new(&[1f32, -2., 3.], &Device::Cpu).unwrap();
        let b = Tensor::new(&[0.5f32, 4., -1.], &Device::Cpu).unwrap();
        let r = add_scaled(&a, &b, 2.0).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(r, vec![2., 6., 1.]);
        let r = div_scalar(&a, 4.0).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(r, vec![0.25, -0.5, 0.75]);
        let r = lerp(&a, &b, 0.25).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(r, vec![0.875, -0.5, 2.0]);
        let r = lerp(&a, &b, 0.75).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(r, vec![0.625, 2.5, 0.0]);
    }
}
