//! ReLU with PyTorch's gradient in one pass each way.
//!
//! candle's ReLU backward is five ops (`zeros_like`, `ge`, `to_dtype`, `mul`, `add`) and
//! passes the gradient where the input is exactly 0; PyTorch's `threshold_backward` passes
//! it only where the output is positive (or NaN), which this op does.

use super::cpu::{Float, dispatch, dispatch_dtype, slice, storage, tensor, with_slice};
use crate::error::{Context, Result};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

struct ReluOp;

/// `max(x, 0)`, NaN kept (PyTorch's `clamp_min` semantics).
fn forward<T: Float>(x: &[T]) -> Vec<T> {
    x.iter()
        .map(|&v| {
            if v > T::zero() || v.is_nan() {
                v
            } else {
                T::zero()
            }
        })
        .collect()
}

/// `g` where the output is not `<= 0`, else 0.
fn backward<T: Float>(y: &[T], g: &[T]) -> Vec<T> {
    y.iter()
        .zip(g)
        .map(|(&v, &g)| if v <= T::zero() { T::zero() } else { g })
        .collect()
}

impl CustomOp1 for ReluOp {
    fn name(&self) -> &'static str {
        "kiln-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = dispatch!(s, self.name(), |T| storage::<T>(forward::<T>(slice(s, l)?)));
        Ok((y, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        dispatch_dtype!(y.dtype(), self.name(), |T| {
            let gx = with_slice::<T, _>(y, |ys| with_slice::<T, _>(g, |gs| Ok(backward(ys, gs))))?;
            Ok(Some(tensor(gx, y.dims())?))
        })
    }
}

/// `F.relu(x)`: kiln's kernel on `f32`/`f64` CPU tensors (PyTorch's gradient), candle's
/// `relu` otherwise.
///
/// # Errors
/// Backend errors.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !super::supported(&[x]) {
        return x.relu().ctx("relu");
    }
    x.contiguous().and_then(|x| x.apply_op1(ReluOp)).ctx("relu")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn forward_and_pytorch_gradient_including_zero_and_nan() {
        let v =
            Var::from_tensor(&Tensor::new(&[-1f32, 0., 2., f32::NAN, -0.0], &Device::Cpu).unwrap())
                .unwrap();
        let y = relu(v.as_tensor()).unwrap();
        let out = y.to_vec1::<f32>().unwrap();
        assert_eq!(&out[..3], &[0., 0., 2.]);
        assert!(out[3].is_nan() && out[4] == 0.0);
        let g = y.sum_all().unwrap().backward().unwrap();
        // candle passed 1 at x == 0; PyTorch (and kiln) pass 0.
        let g = g.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g, vec![0., 0., 1., 1., 0.]);
    }
}
