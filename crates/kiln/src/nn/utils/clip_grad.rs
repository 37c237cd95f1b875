//! Gradient clipping with PyTorch's semantics: `torch.nn.utils.clip_grad_norm_` and
//! `clip_grad_value_`.
//!
//! kiln keeps gradients apart from parameters (in [`Grads`]), so these functions take both:
//! the parameters give the order in which the per-tensor norms are combined (PyTorch's
//! `parameters` order), the gradients are changed in place.
//!
//! ```
//! use kiln::candle::{Device, Tensor};
//! use kiln::nn::Param;
//! use kiln::nn::utils::clip_grad_norm;
//! use kiln::optim::Grads;
//!
//! let w = Param::new(&Tensor::new(&[0f32, 0.], &Device::Cpu)?, true)?;
//! let mut grads = Grads::new();
//! grads.insert(w.id(), Tensor::new(&[3f32, 4.], &Device::Cpu)?);
//! let total = clip_grad_norm(&[w.clone()], &mut grads, 1.0, 2.0, false)?;
//! assert!((total - 5.0).abs() < 1e-6);                     // the norm before clipping
//! let g = grads.get(&w).unwrap().to_vec1::<f32>()?;
//! assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
//! # Ok::<(), kiln::Error>(())
//! ```

use crate::error::{Context, Error, Result};
use crate::nn::Param;
use crate::optim::Grads;
use candle_core::{DType, Tensor};

/// The total norm of order `norm_type` of the gradients of `params` (those that have one),
/// as PyTorch computes it: the norm of the per-tensor norms. `norm_type` may be any
/// positive `p`, `f64::INFINITY` (largest absolute value), `f64::NEG_INFINITY` (smallest)
/// or 0 (number of non-zero entries). No gradient gives 0.
///
/// Per-tensor norms are accumulated in f64 and rounded to the gradients' dtype, as PyTorch
/// returns them (its f32 reductions differ from the exact value by a few ulps).
///
/// # Errors
/// `K0003` for a negative or NaN `norm_type`; candle's errors.
pub fn grad_norm(params: &[Param], grads: &Grads, norm_type: f64) -> Result<f64> {
    if norm_type.is_nan() || (norm_type < 0.0 && norm_type != f64::NEG_INFINITY) {
        return Err(Error::invalid(
            "norm_type",
            norm_type,
            "a p ≥ 0, inf or -inf (PyTorch's vector_norm orders)",
        ));
    }
    let mut norms = Vec::new();
    let mut f64_only = true;
    for p in params {
        let Some(g) = grads.get(p) else { continue };
        f64_only &= g.dtype() == DType::F64;
        norms.push(tensor_norm(g, norm_type)?);
    }
    if norms.is_empty() {
        return Ok(0.0);
    }
    let round = |v: f64| if f64_only { v } else { v as f32 as f64 };
    let norms: Vec<f64> = norms.into_iter().map(round).collect();
    Ok(round(combine(&norms, norm_type)))
}

/// `torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite)`:
/// scales every gradient of `params` by `min(1, max_norm / (total_norm + 1e-6))` and returns
/// the total norm before clipping (see [`grad_norm`]).
///
/// The coefficient is computed in the gradients' dtype exactly as PyTorch does
/// (`reciprocal(total + 1e-6) * max_norm`, clamped to 1) and every gradient is multiplied by
/// it, even when it is 1.
///
/// # Errors
/// `K0704` when the total norm is NaN or infinite and `error_if_nonfinite` is set (the
/// gradients are left unchanged); `K0003` for a negative or NaN `max_norm`.
pub fn clip_grad_norm(
    params: &[Param],
    grads: &mut Grads,
    max_norm: f64,
    norm_type: f64,
    error_if_nonfinite: bool,
) -> Result<f64> {
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(Error::invalid("max_norm", max_norm, "a number ≥ 0"));
    }
    let total = grad_norm(params, grads, norm_type)?;
    if error_if_nonfinite && !total.is_finite() {
        return Err(Error::NonFiniteGradNorm {
            norm_type,
            norm: total,
            at: String::new(),
        });
    }
    let f64_only = params
        .iter()
        .filter_map(|p| grads.get(p))
        .all(|g| g.dtype() == DType::F64);
    let coef = if f64_only {
        clamp_one((1.0 / (total + 1e-6)) * max_norm)
    } else {
        let t = total as f32;
        clamp_one(((1.0f32 / (t + 1e-6f32)) * max_norm as f32) as f64)
    };
    for p in params {
        let Some(g) = grads.get(p) else { continue };
        let scaled = scale_like(g, coef)?;
        grads.insert(p.id(), scaled);
    }
    Ok(total)
}

/// `torch.nn.utils.clip_grad_value_(parameters, clip_value)`: clamps every gradient of
/// `params` into `[-clip_value, clip_value]`.
///
/// # Errors
/// `K0003` for a negative or NaN `clip_value`; candle's errors.
pub fn clip_grad_value(params: &[Param], grads: &mut Grads, clip_value: f64) -> Result<()> {
    if clip_value.is_nan() || clip_value < 0.0 {
        return Err(Error::invalid("clip_value", clip_value, "a number ≥ 0"));
    }
    for p in params {
        let Some(g) = grads.get(p) else { continue };
        let clamped = g.clamp(-clip_value, clip_value).ctx("clip_grad_value")?;
        grads.insert(p.id(), clamped);
    }
    Ok(())
}

/// `torch.clamp(c, max=1.0)`: NaN stays NaN (Rust's `f64::min` would give 1).
fn clamp_one(c: f64) -> f64 {
    if c > 1.0 { 1.0 } else { c }
}

/// `g * coef` in `g`'s dtype (a tensor-scalar multiply, like PyTorch's `g.mul_(coef)`).
fn scale_like(g: &Tensor, coef: f64) -> Result<Tensor> {
    let c = Tensor::new(coef, g.device())
        .and_then(|c| c.to_dtype(g.dtype()))
        .ctx("clip_grad_norm coefficient")?;
    g.broadcast_mul(&c).ctx("clip_grad_norm")
}

/// The norm of one tensor, accumulated in f64.
fn tensor_norm(g: &Tensor, p: f64) -> Result<f64> {
    let x = g.to_dtype(DType::F64).ctx("gradient norm")?;
    let scalar = |t: Tensor| t.to_scalar::<f64>().ctx("gradient norm");
    if x.elem_count() == 0 {
        return Ok(if p == f64::NEG_INFINITY {
            f64::INFINITY
        } else {
            0.0
        });
    }
    let a = x.abs().ctx("gradient norm")?;
    if p == f64::INFINITY {
        return scalar(
            a.flatten_all()
                .and_then(|t| t.max(0))
                .ctx("gradient norm")?,
        );
    }
    if p == f64::NEG_INFINITY {
        return scalar(
            a.flatten_all()
                .and_then(|t| t.min(0))
                .ctx("gradient norm")?,
        );
    }
    if p == 0.0 {
        let nz = a
            .ne(0f64)
            .and_then(|m| m.to_dtype(DType::F64))
            .ctx("gradient norm")?;
        return scalar(nz.sum_all().ctx("gradient norm")?);
    }
    if p == 2.0 {
        return Ok(scalar(a.sqr().and_then(|t| t.sum_all()).ctx("gradient norm")?)?.sqrt());
    }
    if p == 1.0 {
        return scalar(a.sum_all().ctx("gradient norm")?);
    }
    let s = scalar(a.powf(p).and_then(|t| t.sum_all()).ctx("gradient norm")?)?;
    Ok(s.powf(1.0 / p))
}

/// The norm of order `p` of the per-tensor norms.
fn combine(norms: &[f64], p: f64) -> f64 {
    if p == f64::INFINITY {
        norms.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    } else if p == f64::NEG_INFINITY {
        norms.iter().copied().fold(f64::INFINITY, f64::min)
    } else if p == 0.0 {
        norms.iter().filter(|n| **n != 0.0).count() as f64
    } else if p == 2.0 {
        norms.iter().map(|n| n * n).sum::<f64>().sqrt()
    } else if p == 1.0 {
        norms.iter().sum()
    } else {
        norms.iter().map(|n| n.powf(p)).sum::<f64>().powf(1.0 / p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn setup(values: &[&[f32]]) -> (Vec<Param>, Grads) {
        let mut grads = Grads::new();
        let mut params = Vec::new();
        for v in values {
            let t = Tensor::new(*v, &Device::Cpu).unwrap();
            let p = Param::new(&t.zeros_like().unwrap(), true).unwrap();
            grads.insert(p.id(), t);
            params.push(p);
        }
        (params, grads)
    }

    #[test]
    fn norms_of_every_order() {
        let (p, g) = setup(&[&[3.0, -4.0], &[0.0, 12.0]]);
        assert!((grad_norm(&p, &g, 2.0).unwrap() - 13.0).abs() < 1e-6);
        assert_eq!(grad_norm(&p, &g, f64::INFINITY).unwrap(), 12.0);
        assert_eq!(grad_norm(&p, &g, f64::NEG_INFINITY).unwrap(), 0.0);
        assert_eq!(grad_norm(&p, &g, 1.0).unwrap(), 19.0);
        // Order 0 counts the non-zero norms of the non-zero counts, as torch.
        assert_eq!(grad_norm(&p, &g, 0.0).unwrap(), 2.0);
        assert!(grad_norm(&p, &g, -1.0).is_err());
    }

    #[test]
    fn clipping_scales_only_when_above() {
        let (p, mut g) = setup(&[&[3.0, 4.0]]);
        let n = clip_grad_norm(&p, &mut g, 10.0, 2.0, false).unwrap();
        assert!((n - 5.0).abs() < 1e-6);
        assert_eq!(
            g.get(&p[0]).unwrap().to_vec1::<f32>().unwrap(),
            vec![3.0, 4.0]
        );
        clip_grad_norm(&p, &mut g, 1.0, 2.0, false).unwrap();
        let v = g.get(&p[0]).unwrap().to_vec1::<f32>().unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn nonfinite_norm_is_k0704_and_leaves_gradients() {
        let (p, mut g) = setup(&[&[f32::NAN, 1.0]]);
        let e = clip_grad_norm(&p, &mut g, 1.0, 2.0, true).unwrap_err();
        assert_eq!(e.code(), "K0704");
        assert_eq!(g.get(&p[0]).unwrap().to_vec1::<f32>().unwrap()[1], 1.0);
        // Without the flag PyTorch scales by the NaN coefficient.
        clip_grad_norm(&p, &mut g, 1.0, 2.0, false).unwrap();
        assert!(g.get(&p[0]).unwrap().to_vec1::<f32>().unwrap()[1].is_nan());
    }

    #[test]
    fn value_clipping_clamps() {
        let (p, mut g) = setup(&[&[-3.0, 0.5, 2.0]]);
        clip_grad_value(&p, &mut g, 1.0).unwrap();
        assert_eq!(
            g.get(&p[0]).unwrap().to_vec1::<f32>().unwrap(),
            vec![-1.0, 0.5, 1.0]
        );
        assert!(clip_grad_value(&p, &mut g, -1.0).is_err());
    }
}
