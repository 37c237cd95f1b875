//! PyTorch's in-place tensor primitives used by the update rules, computed in the
//! parameter's dtype with PyTorch's order of operations. Python scalars are rounded to the
//! tensor's dtype first, as PyTorch's kernels do.
//!
//! PyTorch's vectorized CPU kernels fuse `a + alpha * b` (`add` with `alpha`), `lerp` and
//! `addcmul` into fused multiply-adds (one rounding). kiln does the same for `f32`/`f64` CPU
//! tensors, so CPU updates round like PyTorch's. On other devices and dtypes it uses candle
//! ops, which round the product and the sum separately (a last-bit difference per step).

use crate::error::{Context, Result};
use candle_core::{DType, Device, Tensor};

/// `t * s` (`tensor.mul(s)`).
pub(crate) fn scale(t: &Tensor, s: f64) -> Result<Tensor> {
    t.affine(s, 0.0).ctx("optimizer: scale")
}

/// Applies `f32`/`f64` element functions to same-shape CPU tensors; `None` when the tensors
/// are not all `f32` or all `f64` on the CPU (the caller then uses candle ops).
macro_rules! cpu_fused {
    ($tensors:expr, |$($v:ident),+| $f32:expr, $f64:expr) => {{
        let ts: &[&Tensor] = &$tensors;
        let first = ts[0];
        let same = ts.iter().all(|t| {
            t.device().is_cpu() && t.dtype() == first.dtype() && t.dims() == first.dims()
        });
        match (same, first.dtype()) {
            (true, DType::F32) => {
                let vecs = ts
                    .iter()
                    .map(|t| t.flatten_all().and_then(|t| t.to_vec1::<f32>()))
                    .collect::<candle_core::Result<Vec<_>>>()
                    .ctx("optimizer: fused op")?;
                let n = first.elem_count();
                let out: Vec<f32> = (0..n)
                    .map(|i| {
                        let mut it = vecs.iter().map(|v| v[i]);
                        $(let $v = it.next().unwrap_or_default();)+
                        $f32
                    })
                    .collect();
                Some(Tensor::from_vec(out, first.shape(), &Device::Cpu).ctx("optimizer: fused op")?)
            }
            (true, DType::F64) => {
                let vecs = ts
                    .iter()
                    .map(|t| t.flatten_all().and_then(|t| t.to_vec1::<f64>()))
                    .collect::<candle_core::Result<Vec<_>>>()
                    .ctx("optimizer: fused op")?;
                let n = first.elem_count();
                let out: Vec<f64> = (0..n)
                    .map(|i| {
                        let mut it = vecs.iter().map(|v| v[i]);
                        $(let $v = it.next().unwrap_or_default();)+
                        $f64
                    })
                    .collect();
                Some(Tensor::from_vec(out, first.shape(), &Device::Cpu).ctx("optimizer: fused op")?)
            }
            _ => None,
        }
    }};
}

/// `a.add(b, alpha=alpha)` = `a + alpha * b` (exactly `a + b` when `alpha == 1`).
pub(crate) fn add_scaled(a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor> {
    if alpha == 1.0 {
        return a.add(b).ctx("optimizer: add");
    }
    let al32 = alpha as f32;
    if let Some(t) = cpu_fused!([a, b], |x, y| y.mul_add(al32, x), y.mul_add(alpha, x)) {
        return Ok(t);
    }
    scale(b, alpha)?.add(a).ctx("optimizer: add")
}

/// `s.addcmul(a, b, value=value)` = `s + value * a * b`.
pub(crate) fn addcmul(s: &Tensor, a: &Tensor, b: &Tensor, value: f64) -> Result<Tensor> {
    let v32 = value as f32;
    if let Some(t) = cpu_fused!(
        [s, a, b],
        |x, y, z| (v32 * y).mul_add(z, x),
        (value * y).mul_add(z, x)
    ) {
        return Ok(t);
    }
    scale(a, value)?
        .mul(b)
        .and_then(|p| p.add(s))
        .ctx("optimizer: addcmul")
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
/// `|w| < 0.5`, else `end - (end - start) * (1 - w)`, with `w` and `1 - w` in PyTorch's
/// opmath type (`f32` for reduced and single precision, `f64` for double).
pub(crate) fn lerp(start: &Tensor, end: &Tensor, weight: f64) -> Result<Tensor> {
    let w32 = weight as f32;
    let small = if start.dtype() == DType::F64 {
        weight.abs() < 0.5
    } else {
        w32.abs() < 0.5
    };
    let (omw32, omw64) = (1.0f32 - w32, 1.0f64 - weight);
    let fused = if small {
        cpu_fused!(
            [start, end],
            |s, e| w32.mul_add(e - s, s),
            weight.mul_add(e - s, s)
        )
    } else {
        cpu_fused!(
            [start, end],
            |s, e| (-(e - s)).mul_add(omw32, e),
            (-(e - s)).mul_add(omw64, e)
        )
    };
    if let Some(t) = fused {
        return Ok(t);
    }
    let diff = end.sub(start).ctx("optimizer: lerp")?;
    if small {
        scale(&diff, w32 as f64)?.add(start).ctx("optimizer: lerp")
    } else {
        end.sub(&scale(&diff, omw32 as f64)?).ctx("optimizer: lerp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = addcmul(&a, &b, &b, 0.5).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(r, vec![1.125, 6.0, 3.5]);
    }

    #[test]
    fn cpu_path_fuses_like_pytorch_and_other_dtypes_fall_back() {
        // 1 + 3 * (1/3 rounded): one rounding (fma) differs from two here
        let third = 1.0f32 / 3.0;
        let a = Tensor::new(&[-1f32], &Device::Cpu).unwrap();
        let b = Tensor::new(&[third], &Device::Cpu).unwrap();
        let r = add_scaled(&a, &b, 3.0).unwrap().to_vec1::<f32>().unwrap()[0];
        assert_eq!(r, third.mul_add(3.0, -1.0));
        let a16 = a.to_dtype(DType::BF16).unwrap();
        let b16 = b.to_dtype(DType::BF16).unwrap();
        let r = add_scaled(&a16, &b16, 3.0).unwrap();
        assert_eq!(r.dtype(), DType::BF16);
    }
}
