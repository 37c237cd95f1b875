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

/// The element data of same-shape `f32` (or `f64`) CPU tensors.
enum CpuData {
    F32(Vec<Vec<f32>>),
    F64(Vec<Vec<f64>>),
}

/// The tensors' data when they are all `f32` or all `f64` CPU tensors of one shape; `None`
/// otherwise (the caller then uses candle ops).
fn cpu_data(ts: &[&Tensor]) -> Result<Option<CpuData>> {
    let Some(first) = ts.first() else {
        return Ok(None);
    };
    let same = ts
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == first.dtype() && t.dims() == first.dims());
    if !same {
        return Ok(None);
    }
    fn vecs<T: candle_core::WithDType>(ts: &[&Tensor]) -> Result<Vec<Vec<T>>> {
        ts.iter()
            .map(|t| t.flatten_all().and_then(|t| t.to_vec1::<T>()))
            .collect::<candle_core::Result<Vec<_>>>()
            .ctx("optimizer: fused op")
    }
    Ok(match first.dtype() {
        DType::F32 => Some(CpuData::F32(vecs(ts)?)),
        DType::F64 => Some(CpuData::F64(vecs(ts)?)),
        _ => None,
    })
}

/// Runs `f` compiled with the FMA instruction set when the CPU has it, so `mul_add` becomes
/// one instruction instead of a libm call (same result either way: `mul_add` is IEEE fma).
fn with_fma<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The CPU must support FMA.
        #[target_feature(enable = "fma")]
        unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: a `target_feature(enable = "fma")` function may only run on a CPU with
            // FMA, which was detected just above.
            return unsafe { run(f) };
        }
    }
    f()
}

/// `a[i] = f(a[i], b[i])`, reusing the first input's buffer.
fn zip2<T: Copy>(v: Vec<Vec<T>>, f: impl Fn(T, T) -> T) -> Vec<T> {
    let mut it = v.into_iter();
    let (Some(mut a), Some(b)) = (it.next(), it.next()) else {
        return Vec::new();
    };
    with_fma(|| {
        for (x, &y) in a.iter_mut().zip(&b) {
            *x = f(*x, y);
        }
    });
    a
}

/// `a[i] = f(a[i], b[i], c[i])`, reusing the first input's buffer.
fn zip3<T: Copy>(v: Vec<Vec<T>>, f: impl Fn(T, T, T) -> T) -> Vec<T> {
    let mut it = v.into_iter();
    let (Some(mut a), Some(b), Some(c)) = (it.next(), it.next(), it.next()) else {
        return Vec::new();
    };
    with_fma(|| {
        for ((x, &y), &z) in a.iter_mut().zip(&b).zip(&c) {
            *x = f(*x, y, z);
        }
    });
    a
}

/// A CPU tensor of `like`'s shape.
fn cpu_tensor<T: candle_core::WithDType>(data: Vec<T>, like: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(data, like.shape(), &Device::Cpu).ctx("optimizer: fused op")
}

/// `a.add(b, alpha=alpha)` = `a + alpha * b` (exactly `a + b` when `alpha == 1`).
pub(crate) fn add_scaled(a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor> {
    if alpha == 1.0 {
        return a.add(b).ctx("optimizer: add");
    }
    let al32 = alpha as f32;
    match cpu_data(&[a, b])? {
        Some(CpuData::F32(v)) => cpu_tensor(zip2(v, |x, y| y.mul_add(al32, x)), a),
        Some(CpuData::F64(v)) => cpu_tensor(zip2(v, |x, y| y.mul_add(alpha, x)), a),
        None => scale(b, alpha)?.add(a).ctx("optimizer: add"),
    }
}

/// `s.addcmul(a, b, value=value)` = `s + value * a * b`.
pub(crate) fn addcmul(s: &Tensor, a: &Tensor, b: &Tensor, value: f64) -> Result<Tensor> {
    let v32 = value as f32;
    match cpu_data(&[s, a, b])? {
        Some(CpuData::F32(v)) => cpu_tensor(zip3(v, |x, y, z| (v32 * y).mul_add(z, x)), s),
        Some(CpuData::F64(v)) => cpu_tensor(zip3(v, |x, y, z| (value * y).mul_add(z, x)), s),
        None => scale(a, value)?
            .mul(b)
            .and_then(|p| p.add(s))
            .ctx("optimizer: addcmul"),
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
    match (cpu_data(&[start, end])?, small) {
        (Some(CpuData::F32(v)), true) => {
            return cpu_tensor(zip2(v, |s, e| w32.mul_add(e - s, s)), start);
        }
        (Some(CpuData::F64(v)), true) => {
            return cpu_tensor(zip2(v, |s, e| weight.mul_add(e - s, s)), start);
        }
        (Some(CpuData::F32(v)), false) => {
            return cpu_tensor(zip2(v, |s, e| (-(e - s)).mul_add(omw32, e)), start);
        }
        (Some(CpuData::F64(v)), false) => {
            return cpu_tensor(zip2(v, |s, e| (-(e - s)).mul_add(omw64, e)), start);
        }
        (None, _) => {}
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
