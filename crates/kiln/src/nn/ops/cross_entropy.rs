//! Fused cross-entropy: log-softmax + NLL (mean over the batch) forward and backward in one
//! op, PyTorch's `F.cross_entropy(logits, targets)`.
//!
//! Forward per row: `logp_t = (x_t − max) − ln Σ exp(x − max)`; the loss is `−Σ logp_t / N`
//! (the sums in `f64`). Backward (PyTorch's `log_softmax_backward` of the NLL gradient
//! `s = −g/N` at each target): `gx = onehot · s − exp(logp) · s`.

use super::cpu::{Float, dispatch, dispatch_dtype, slice, storage, tensor, with_slice};
use crate::error::{Context, Result};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

struct CrossEntropyOp {
    n: usize,
    c: usize,
    targets: Vec<u32>,
}

impl CrossEntropyOp {
    /// Per row: the maximum and `ln Σ exp(x − max)`.
    fn row_stats<T: Float>(row: &[T]) -> (T, T) {
        let mut max = T::from_f64(f64::NEG_INFINITY);
        for &v in row {
            if v > max || v.is_nan() {
                max = v;
            }
        }
        let sum: f64 = row.iter().map(|&v| (v - max).exp().to_f64()).sum();
        (max, T::from_f64(sum).ln())
    }

    fn forward<T: Float>(&self, x: &[T]) -> T {
        let mut total = 0f64;
        for (row, &t) in x.chunks_exact(self.c.max(1)).zip(&self.targets) {
            let (max, lse) = Self::row_stats(row);
            total -= ((row[t as usize] - max) - lse).to_f64();
        }
        T::from_f64(total / self.n as f64)
    }

    fn backward<T: Float>(&self, x: &[T], g: T) -> Vec<T> {
        let s = -(g / T::from_f64(self.n as f64));
        let mut gx = vec![T::zero(); x.len()];
        for ((row, out), &t) in x
            .chunks_exact(self.c.max(1))
            .zip(gx.chunks_exact_mut(self.c.max(1)))
            .zip(&self.targets)
        {
            let (max, lse) = Self::row_stats(row);
            for (o, &v) in out.iter_mut().zip(row) {
                *o = -(((v - max) - lse).exp() * s);
            }
            out[t as usize] += s;
        }
        gx
    }
}

impl CustomOp1 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "kiln-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = dispatch!(s, self.name(), |T| storage::<T>(vec![
            self.forward::<T>(slice(s, l)?)
        ]));
        Ok((y, Shape::from(())))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        dispatch_dtype!(x.dtype(), self.name(), |T| {
            let g = g.to_dtype(x.dtype())?.to_scalar::<T>()?;
            let gx = with_slice::<T, _>(x, |xs| Ok(self.backward(xs, g)))?;
            Ok(Some(tensor(gx, x.dims())?))
        })
    }
}

/// Mean cross-entropy of `f32`/`f64` CPU logits `[N, C]` against class indices that the
/// caller has checked to lie in `0..C`.
///
/// # Errors
/// Backend errors.
pub fn cross_entropy(logits: &Tensor, targets: Vec<u32>) -> Result<Tensor> {
    let (n, c) = logits.dims2().ctx("cross_entropy")?;
    if targets.len() != n || targets.iter().any(|&t| t as usize >= c) {
        return Err(crate::error::Error::invalid(
            "cross_entropy targets",
            format!("{} labels", targets.len()),
            format!("{n} labels in 0..{c}"),
        ));
    }
    let op = CrossEntropyOp { n, c, targets };
    logits
        .contiguous()
        .and_then(|l| l.apply_op1(op))
        .ctx("cross_entropy")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ops::test_util::{assert_close, rand_tensor};
    use candle_core::{D, DType, Var};

    /// candle's op chain (what kiln used before).
    fn reference(logits: &Tensor, targets: &[u32]) -> Tensor {
        let t = Tensor::new(targets, logits.device())
            .unwrap()
            .unsqueeze(1)
            .unwrap();
        let max = logits.max_keepdim(D::Minus1).unwrap().detach();
        let shifted = logits.broadcast_sub(&max).unwrap();
        let lse = shifted
            .exp()
            .unwrap()
            .sum_keepdim(D::Minus1)
            .unwrap()
            .log()
            .unwrap();
        let logp = shifted.broadcast_sub(&lse).unwrap();
        logp.gather(&t, 1)
            .unwrap()
            .mean_all()
            .unwrap()
            .neg()
            .unwrap()
    }

    #[test]
    fn matches_the_op_chain_forward_and_backward() {
        for (seed, (n, c)) in [(64, 10), (1, 1), (3, 7), (16, 1000)]
            .into_iter()
            .enumerate()
        {
            for dtype in [DType::F32, DType::F64] {
                let x =
                    Var::from_tensor(&(rand_tensor(seed as u64, &[n, c], dtype) * 5.0).unwrap())
                        .unwrap();
                let t: Vec<u32> = (0..n).map(|i| ((i * 7 + seed) % c) as u32).collect();
                let ours = cross_entropy(x.as_tensor(), t.clone()).unwrap();
                let theirs = reference(x.as_tensor(), &t);
                let tol = if dtype == DType::F32 { 1e-6 } else { 1e-12 };
                assert_close(&ours, &theirs, tol, "loss");
                let go = ours.backward().unwrap();
                let gt = theirs.backward().unwrap();
                assert_close(
                    go.get(x.as_tensor()).unwrap(),
                    gt.get(x.as_tensor()).unwrap(),
                    tol,
                    "gradient",
                );
            }
        }
    }

    #[test]
    fn out_of_range_targets_are_refused() {
        let x = rand_tensor(0, &[2, 3], DType::F32);
        assert_eq!(cross_entropy(&x, vec![0, 3]).unwrap_err().code(), "K0003");
        assert_eq!(cross_entropy(&x, vec![0]).unwrap_err().code(), "K0003");
    }
}
