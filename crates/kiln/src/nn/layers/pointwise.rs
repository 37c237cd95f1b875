//! Element-wise activations as one candle custom op each way, with PyTorch's gradient.
//!
//! candle's own activations are either missing (sigmoid, softplus, mish, hardswish, …) or
//! differentiate with rounded constants (`gelu`'s backward uses `0.398942` for 1/√(2π)) and
//! their own conventions at kinks. [`Pointwise`] computes `f(x)` forward and `g · f'(x)`
//! backward per element in `f64` (then rounds to the tensor's dtype) with the derivative
//! PyTorch's CPU kernels use, including the value at kinks (`LeakyReLU` at 0, `Hardswish` at
//! ±3, `ReLU6` at 0 and 6). `f32`/`f64` CPU tensors only; [`apply`] falls back to a composite
//! of candle ops (whose autograd then applies) for other dtypes and devices.

use crate::error::{Context, Result};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, WithDType};

/// `f(x)` and `f'(x)` of an element-wise function; the derivative also sees the forward
/// output `y` (cheaper for sigmoid and tanh).
pub(crate) struct Pointwise {
    pub(crate) name: &'static str,
    pub(crate) f: Box<dyn Fn(f64) -> f64 + Send + Sync>,
    /// `(x, y) -> dy/dx`.
    pub(crate) df: Box<dyn Fn(f64, f64) -> f64 + Send + Sync>,
}

fn contiguous_slice<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("pointwise op expects a contiguous input".into()))?;
    Ok(&T::cpu_storage_as_slice(s)?[a..b])
}

impl Pointwise {
    fn fwd<T: WithDType>(&self, x: &[T]) -> Vec<T> {
        x.iter()
            .map(|v| T::from_f64((self.f)(v.to_f64())))
            .collect()
    }

    fn bwd_values<T: WithDType>(&self, x: &[T], y: &[T], g: &[T]) -> Vec<T> {
        x.iter()
            .zip(y)
            .zip(g)
            .map(|((x, y), g)| T::from_f64(g.to_f64() * (self.df)(x.to_f64(), y.to_f64())))
            .collect()
    }
}

fn values<T: WithDType>(t: &Tensor) -> candle_core::Result<Vec<T>> {
    t.flatten_all()?.to_vec1::<T>()
}

impl CustomOp1 for Pointwise {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(self.fwd(contiguous_slice::<f32>(s, l)?)),
            CpuStorage::F64(_) => CpuStorage::F64(self.fwd(contiguous_slice::<f64>(s, l)?)),
            _ => candle_core::bail!("{}: only f32 and f64 are supported", self.name),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let gx = match x.dtype() {
            DType::F32 => Tensor::from_vec(
                self.bwd_values(&values::<f32>(x)?, &values::<f32>(y)?, &values::<f32>(g)?),
                x.shape(),
                x.device(),
            )?,
            DType::F64 => Tensor::from_vec(
                self.bwd_values(&values::<f64>(x)?, &values::<f64>(y)?, &values::<f64>(g)?),
                x.shape(),
                x.device(),
            )?,
            other => candle_core::bail!("{}: no backward for {other:?}", self.name),
        };
        Ok(Some(gx))
    }
}

/// Applies `op` with kiln's kernel on `f32`/`f64` CPU tensors, or `fallback` (candle ops,
/// differentiated by candle) elsewhere.
pub(crate) fn apply(
    x: &Tensor,
    op: Pointwise,
    fallback: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<Tensor> {
    let name = op.name;
    if crate::nn::ops::supported(&[x]) {
        return x.contiguous().and_then(|x| x.apply_op1(op)).ctx(name);
    }
    fallback(x).ctx(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn forward_and_backward_use_f_and_df() {
        let v = Var::from_tensor(&Tensor::new(&[1f32, -2., 3.], &Device::Cpu).unwrap()).unwrap();
        let op = Pointwise {
            name: "square",
            f: Box::new(|x| x * x),
            df: Box::new(|x, _| 2.0 * x),
        };
        let y = apply(v.as_tensor(), op, |x| x.sqr()).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), vec![1., 4., 9.]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g, vec![2., -4., 6.]);
    }
}
