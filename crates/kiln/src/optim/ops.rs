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

/// Whether `ts` are all `f32` or all `f64` CPU tensors of one shape (the fused kernels'
/// domain; otherwise callers use candle ops).
fn fusable(ts: &[&Tensor]) -> Option<DType> {
    let first = ts.first()?;
    let same = ts
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == first.dtype() && t.dims() == first.dims());
    (same && matches!(first.dtype(), DType::F32 | DType::F64)).then(|| first.dtype())
}

/// Runs `f` on the contiguous elements of CPU tensors (read in place, no copy when they are
/// contiguous already).
fn with_slices<T: candle_core::WithDType, R>(
    ts: &[&Tensor],
    f: impl FnOnce(&[&[T]]) -> R,
) -> Result<R> {
    let owned = ts
        .iter()
        .map(|t| t.contiguous())
        .collect::<candle_core::Result<Vec<_>>>()
        .ctx("optimizer: fused op")?;
    let guards: Vec<_> = owned.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        let candle_core::Storage::Cpu(cpu) = &**storage else {
            return Err(crate::error::Error::Unsupported {
                what: "fused optimizer op on a non-CPU tensor".into(),
            });
        };
        let all = T::cpu_storage_as_slice(cpu).ctx("optimizer: fused op")?;
        let part = layout
            .contiguous_offsets()
            .and_then(|(a, b)| all.get(a..b))
            .ok_or_else(|| crate::error::Error::Unsupported {
                what: "fused optimizer op on a non-contiguous layout".into(),
            })?;
        slices.push(part);
    }
    Ok(f(&slices))
}

/// Runs `f` compiled with the FMA instruction set when the CPU has it, so `mul_add` becomes
/// one instruction instead of a libm call (same result either way: `mul_add` is IEEE fma).
pub(crate) fn with_fma<R>(f: impl FnOnce() -> R) -> R {
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

/// `out[i] = f(a[i], b[i])` over two same-length slices.
fn zip2<T: Copy>(v: &[&[T]], f: impl Fn(T, T) -> T) -> Vec<T> {
    let (Some(a), Some(b)) = (v.first(), v.get(1)) else {
        return Vec::new();
    };
    with_fma(|| a.iter().zip(b.iter()).map(|(&x, &y)| f(x, y)).collect())
}

/// `out[i] = f(a[i], b[i], c[i])` over three same-length slices.
fn zip3<T: Copy>(v: &[&[T]], f: impl Fn(T, T, T) -> T) -> Vec<T> {
    let (Some(a), Some(b), Some(c)) = (v.first(), v.get(1), v.get(2)) else {
        return Vec::new();
    };
    with_fma(|| {
        a.iter()
            .zip(b.iter())
            .zip(c.iter())
            .map(|((&x, &y), &z)| f(x, y, z))
            .collect()
    })
}

/// A CPU tensor of `like`'s shape.
pub(crate) fn cpu_tensor<T: candle_core::WithDType>(data: Vec<T>, like: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(data, like.shape(), &Device::Cpu).ctx("optimizer: fused op")
}

/// `a.add(b, alpha=alpha)` = `a + alpha * b` (exactly `a + b` when `alpha == 1`).
pub(crate) fn add_scaled(a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor> {
    if alpha == 1.0 {
        return a.add(b).ctx("optimizer: add");
    }
    let al32 = alpha as f32;
    match fusable(&[a, b]) {
        Some(DType::F32) => cpu_tensor(
            with_slices(&[a, b], |v| zip2(v, |x: f32, y| y.mul_add(al32, x)))?,
            a,
        ),
        Some(_) => cpu_tensor(
            with_slices(&[a, b], |v| zip2(v, |x: f64, y| y.mul_add(alpha, x)))?,
            a,
        ),
        None => scale(b, alpha)?.add(a).ctx("optimizer: add"),
    }
}

/// `s.addcmul(a, b, value=value)` = `s + value * a * b`.
pub(crate) fn addcmul(s: &Tensor, a: &Tensor, b: &Tensor, value: f64) -> Result<Tensor> {
    let v32 = value as f32;
    match fusable(&[s, a, b]) {
        Some(DType::F32) => cpu_tensor(
            with_slices(&[s, a, b], |v| {
                zip3(v, |x: f32, y, z| (v32 * y).mul_add(z, x))
            })?,
            s,
        ),
        Some(_) => cpu_tensor(
            with_slices(&[s, a, b], |v| {
                zip3(v, |x: f64, y, z| (value * y).mul_add(z, x))
            })?,
            s,
        ),
        None => scale(a, value)?
            .mul(b)
            .and_then(|p| p.add(s))
            .ctx("optimizer: addcmul"),
    }
}

/// `s.addcdiv(a, b, value=value)` = `s + (value * a) / b`, in PyTorch's order of operations.
pub(crate) fn addcdiv(s: &Tensor, a: &Tensor, b: &Tensor, value: f64) -> Result<Tensor> {
    scale(a, value)?
        .div(b)
        .and_then(|u| s.add(&u))
        .ctx("optimizer: addcdiv")
}

/// The weight decay the Adam family and its relatives share, before the update: decoupled
/// `param.mul_(1 - lr * weight_decay)`, or L2 `grad = grad.add(param, alpha=weight_decay)`;
/// nothing when `weight_decay == 0`. Returns `(param, grad)`.
pub(crate) fn weight_decay(
    param: Tensor,
    grad: Tensor,
    lr: f64,
    weight_decay: f64,
    decoupled: bool,
) -> Result<(Tensor, Tensor)> {
    if weight_decay == 0.0 {
        Ok((param, grad))
    } else if decoupled {
        Ok((scale(&param, 1.0 - lr * weight_decay)?, grad))
    } else {
        let grad = add_scaled(&grad, &param, weight_decay)?;
        Ok((param, grad))
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
    let pair = [start, end];
    match (fusable(&pair), small) {
        (Some(DType::F32), true) => {
            let v = with_slices(&pair, |v| zip2(v, |s: f32, e| w32.mul_add(e - s, s)))?;
            return cpu_tensor(v, start);
        }
        (Some(DType::F32), false) => {
            let v = with_slices(&pair, |v| zip2(v, |s: f32, e| (-(e - s)).mul_add(omw32, e)))?;
            return cpu_tensor(v, start);
        }
        (Some(_), true) => {
            let v = with_slices(&pair, |v| zip2(v, |s: f64, e| weight.mul_add(e - s, s)))?;
            return cpu_tensor(v, start);
        }
        (Some(_), false) => {
            let v = with_slices(&pair, |v| zip2(v, |s: f64, e| (-(e - s)).mul_add(omw64, e)))?;
            return cpu_tensor(v, start);
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
