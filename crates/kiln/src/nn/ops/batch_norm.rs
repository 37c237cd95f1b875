//! Training-mode batch normalisation over `[N, C, L]` (L = H·W for `BatchNorm2d`, 1 or L for
//! `BatchNorm1d`) in one op, with PyTorch's CPU formulas.
//!
//! candle's op chain for a BatchNorm (two `sum_keepdim`s over axes (0, 2, 3), broadcasts,
//! and their backward: more generic sums) was the largest cost of a ResNet-18 step after the
//! convolutions. Here, per channel, in `f64` (PyTorch's CPU accumulation type for `f32`):
//! `mean = Σx / M`, `var = Σ(x − mean)² / M`, `invstd = 1 / √(var + eps)`; the output is
//! `x · α + β` with `α = invstd · w`, `β = b − mean · α`. Backward (PyTorch's
//! `batch_norm_backward` in training mode): `Σgy`, `dotp = Σ(x − mean) · gy`;
//! `gw = dotp · invstd`, `gb = Σgy`, `gx = (gy − Σgy/M − (x − mean) · dotp · invstd² / M) ·
//! invstd · w`.

use super::cpu::with_slice;
use super::cpu::{Float, Grads3, dispatch, dispatch_dtype, needs_grad, slice, storage, tensor};
use super::reduce::sum_f64;
use super::threads::parallel_for;
use crate::error::{Context, Result};
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Batch statistics of one BatchNorm call: per channel, the mean and the sum of squared
/// deviations (both `f64`), and the number `M` of values averaged.
#[derive(Clone, Debug)]
pub struct BatchStats {
    /// Per-channel mean.
    pub mean: Vec<f64>,
    /// Per-channel `Σ(x − mean)²`.
    pub sq_sum: Vec<f64>,
    /// Values per channel (`N·L`).
    pub count: usize,
}

impl BatchStats {
    /// The biased variance `Σ(x − mean)² / M` of channel `c`.
    pub fn var(&self, c: usize) -> f64 {
        self.sq_sum[c] / self.count as f64
    }
}

/// Layout `[N, C, L]` of the input.
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    c: usize,
    l: usize,
}

impl Dims {
    /// The `N` blocks of channel `c`.
    fn blocks<'a, T>(&self, x: &'a [T], c: usize) -> impl Iterator<Item = &'a [T]> {
        (0..self.n).map(move |n| &x[(n * self.c + c) * self.l..][..self.l])
    }

    /// `f(c)` for every channel, over threads when the work is large (each channel's result
    /// depends only on its own data, so the split does not change it).
    fn per_channel<R: Send>(&self, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
        if parallel_for(self.n * self.c * self.l) {
            (0..self.c).into_par_iter().map(f).collect()
        } else {
            (0..self.c).map(f).collect()
        }
    }
}

fn stats<T: Float>(d: Dims, x: &[T]) -> BatchStats {
    let count = d.n * d.l;
    let pairs = d.per_channel(|c| {
        let mean = d.blocks(x, c).map(sum_f64).sum::<f64>() / count as f64;
        let sq = d
            .blocks(x, c)
            .map(|b| {
                let mut lanes = [0f64; 4];
                for (i, &v) in b.iter().enumerate() {
                    let dv = v.to_f64() - mean;
                    lanes[i % 4] += dv * dv;
                }
                lanes.iter().sum::<f64>()
            })
            .sum::<f64>();
        (mean, sq)
    });
    let (mean, sq_sum) = pairs.into_iter().unzip();
    BatchStats {
        mean,
        sq_sum,
        count,
    }
}

/// The normalisation op over `(x, w, b)` (affine) or `x` alone, with the batch statistics
/// computed before it.
struct BatchNormOp {
    d: Dims,
    /// Per-channel mean and `1/√(var + eps)`, rounded to the tensor's dtype as PyTorch's
    /// `save_mean` / `save_invstd`.
    mean: Vec<f64>,
    invstd: Vec<f64>,
}

impl BatchNormOp {
    fn forward<T: Float>(&self, x: &[T], w: Option<&[T]>, b: Option<&[T]>) -> Vec<T> {
        let d = self.d;
        let mut y = vec![T::zero(); x.len()];
        let coef: Vec<(T, T)> = (0..d.c)
            .map(|c| {
                let (mean, invstd) = (T::from_f64(self.mean[c]), T::from_f64(self.invstd[c]));
                let alpha = w.map_or(invstd, |w| invstd * w[c]);
                let beta = b.map_or(T::zero(), |b| b[c]) - mean * alpha;
                (alpha, beta)
            })
            .collect();
        let block = |i: usize, out: &mut [T]| {
            let (alpha, beta) = coef[i % d.c];
            for (o, &v) in out.iter_mut().zip(&x[i * d.l..][..d.l]) {
                *o = v * alpha + beta;
            }
        };
        if d.l == 0 {
            return y;
        }
        if parallel_for(x.len()) {
            y.par_chunks_mut(d.l)
                .enumerate()
                .for_each(|(i, o)| block(i, o));
        } else {
            for (i, o) in y.chunks_mut(d.l).enumerate() {
                block(i, o);
            }
        }
        y
    }

    /// `(gx, gw, gb)` for the requested arguments.
    fn backward<T: Float>(
        &self,
        x: &[T],
        w: Option<&[T]>,
        gy: &[T],
        want: [bool; 3],
    ) -> (Option<Vec<T>>, Vec<(f64, f64)>) {
        let d = self.d;
        let m = (d.n * d.l) as f64;
        // Per channel: (Σgy, dotp)
        let sums = d.per_channel(|c| {
            let mean = T::from_f64(self.mean[c]);
            let mut s = 0f64;
            let mut dot = 0f64;
            for (xb, gb) in d.blocks(x, c).zip(d.blocks(gy, c)) {
                s += sum_f64(gb);
                let mut lanes = [0f64; 4];
                for (i, (&xv, &g)) in xb.iter().zip(gb).enumerate() {
                    lanes[i % 4] += ((xv - mean) * g).to_f64();
                }
                dot += lanes.iter().sum::<f64>();
            }
            (s, dot)
        });
        let gx = want[0].then(|| {
            let coef: Vec<(T, T, T, T)> = (0..d.c)
                .map(|c| {
                    let invstd = self.invstd[c];
                    let (s, dot) = sums[c];
                    let k = T::from_f64(dot * invstd * invstd / m);
                    let grad_mean = T::from_f64(s / m);
                    let inv = T::from_f64(invstd);
                    let scale = w.map_or(inv, |w| inv * w[c]);
                    (T::from_f64(self.mean[c]), k, grad_mean, scale)
                })
                .collect();
            let mut gx = vec![T::zero(); x.len()];
            let block = |i: usize, out: &mut [T]| {
                let (mean, k, grad_mean, scale) = coef[i % d.c];
                let xb = &x[i * d.l..][..d.l];
                let gb = &gy[i * d.l..][..d.l];
                for ((o, &xv), &g) in out.iter_mut().zip(xb).zip(gb) {
                    *o = (g - grad_mean - (xv - mean) * k) * scale;
                }
            };
            if d.l > 0 {
                if parallel_for(x.len()) {
                    gx.par_chunks_mut(d.l)
                        .enumerate()
                        .for_each(|(i, o)| block(i, o));
                } else {
                    for (i, o) in gx.chunks_mut(d.l).enumerate() {
                        block(i, o);
                    }
                }
            }
            gx
        });
        (gx, sums)
    }

    fn grads(
        &self,
        x: &Tensor,
        w: Option<&Tensor>,
        b: Option<&Tensor>,
        gy: &Tensor,
    ) -> candle_core::Result<Grads3<Tensor>> {
        let want = [
            needs_grad(x),
            w.is_some_and(needs_grad),
            b.is_some_and(needs_grad),
        ];
        dispatch_dtype!(x.dtype(), "kiln-batch-norm", |T| self
            .grads_as::<T>(x, w, gy, want))
    }

    fn grads_as<T: Float>(
        &self,
        x: &Tensor,
        w: Option<&Tensor>,
        gy: &Tensor,
        want: [bool; 3],
    ) -> candle_core::Result<Grads3<Tensor>> {
        let (gx, sums) = with_slice::<T, _>(x, |xs| {
            with_slice::<T, _>(gy, |gys| match w {
                Some(w) => with_slice::<T, _>(w, |ws| Ok(self.backward(xs, Some(ws), gys, want))),
                None => Ok(self.backward(xs, None, gys, want)),
            })
        })?;
        let c = [self.d.c];
        let gw: Vec<T> = (0..self.d.c)
            .map(|i| T::from_f64(sums[i].1 * self.invstd[i]))
            .collect();
        let gb: Vec<T> = sums.iter().map(|s| T::from_f64(s.0)).collect();
        Ok((
            gx.map(|g| tensor(g, x.dims())).transpose()?,
            if want[1] { Some(tensor(gw, &c)?) } else { None },
            if want[2] { Some(tensor(gb, &c)?) } else { None },
        ))
    }
}

impl CustomOp1 for BatchNormOp {
    fn name(&self) -> &'static str {
        "kiln-batch-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = dispatch!(s, CustomOp1::name(self), |T| storage::<T>(
            self.forward::<T>(slice(s, l)?, None, None)
        ));
        Ok((y, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, gy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(self.grads(x, None, None, gy)?.0)
    }
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "kiln-batch-norm-affine"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = dispatch!(xs, CustomOp3::name(self), |T| storage::<T>(
            self.forward::<T>(slice(xs, xl)?, Some(slice(ws, wl)?), Some(slice(bs, bl)?))
        ));
        Ok((y, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        gy: &Tensor,
    ) -> candle_core::Result<Grads3<Tensor>> {
        self.grads(x, Some(w), Some(b), gy)
    }
}

/// Training-mode batch normalisation of an `f32`/`f64` CPU tensor `[N, C, ...]` with the
/// batch's statistics, and optionally an affine `(weight, bias)` of shape `[C]` each; returns
/// the output and the statistics (for the running averages).
///
/// # Errors
/// `K0003` for an input of rank below 2 or affine parameters that are not `[C]`; backend
/// errors.
pub fn batch_norm_train(
    x: &Tensor,
    affine: Option<(&Tensor, &Tensor)>,
    eps: f64,
) -> Result<(Tensor, BatchStats)> {
    let dims = x.dims();
    let (n, c) = match dims {
        [n, c, ..] => (*n, *c),
        _ => {
            return Err(crate::error::Error::invalid(
                "batch_norm input rank",
                dims.len(),
                "at least 2 ([N, C, ...])",
            ));
        }
    };
    if let Some((w, b)) = affine {
        if w.dims() != [c] || b.dims() != [c] {
            return Err(crate::error::Error::invalid(
                "batch_norm weight/bias shape",
                format!("{:?}/{:?}", w.dims(), b.dims()),
                format!("[{c}]"),
            ));
        }
    }
    let d = Dims {
        n,
        c,
        l: dims[2..].iter().product(),
    };
    let x = x.contiguous().ctx("batch_norm")?;
    let st = (|| {
        dispatch_dtype!(x.dtype(), "kiln-batch-norm", |T| with_slice::<T, _>(
            &x,
            |xs| { Ok(stats(d, xs)) }
        ))
    })()
    .ctx("batch_norm statistics")?;
    let invstd = (0..c)
        .map(|i| 1.0 / (st.var(i) + eps).sqrt())
        .collect::<Vec<f64>>();
    // PyTorch keeps mean and invstd in the tensor's dtype (save_mean / save_invstd).
    let round = |v: f64| -> f64 {
        match x.dtype() {
            candle_core::DType::F32 => v as f32 as f64,
            _ => v,
        }
    };
    let op = BatchNormOp {
        d,
        mean: st.mean.iter().map(|&v| round(v)).collect(),
        invstd: invstd.into_iter().map(round).collect(),
    };
    let y = match affine {
        Some((w, b)) => {
            let w = w.contiguous().ctx("batch_norm")?;
            let b = b.contiguous().ctx("batch_norm")?;
            x.apply_op3(&w, &b, op)
        }
        None => x.apply_op1(op),
    }
    .ctx("batch_norm")?;
    Ok((y, st))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ops::test_util::{assert_close, grads_of, rand_tensor};
    use candle_core::{DType, Var};

    /// candle's op chain (what kiln's BatchNorm did before).
    fn reference(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Tensor {
        let rank = x.rank();
        let red: Vec<usize> = (0..rank).filter(|&d| d != 1).collect();
        let n: usize = red.iter().map(|&d| x.dims()[d]).product();
        let mut bshape = vec![1; rank];
        bshape[1] = x.dims()[1];
        let mean = (x.sum_keepdim(red.as_slice()).unwrap() / n as f64).unwrap();
        let centered = x.broadcast_sub(&mean).unwrap();
        let var =
            (centered.sqr().unwrap().sum_keepdim(red.as_slice()).unwrap() / n as f64).unwrap();
        let inv = ((var + eps).unwrap().sqrt().unwrap().recip()).unwrap();
        centered
            .broadcast_mul(&inv)
            .unwrap()
            .broadcast_mul(&w.reshape(bshape.as_slice()).unwrap())
            .unwrap()
            .broadcast_add(&b.reshape(bshape.as_slice()).unwrap())
            .unwrap()
    }

    #[test]
    fn matches_the_op_chain_forward_and_gradients() {
        for (seed, dims) in [
            vec![4, 3, 5, 5],
            vec![8, 6],
            vec![3, 4, 7],
            vec![2, 16, 1, 1],
        ]
        .into_iter()
        .enumerate()
        {
            for dtype in [DType::F32, DType::F64] {
                let seed = seed as u64 * 10;
                let c = dims[1];
                let x =
                    Var::from_tensor(&rand_tensor(seed, &dims, dtype).affine(3.0, 1.0).unwrap())
                        .unwrap();
                let w = Var::from_tensor(&rand_tensor(seed + 1, &[c], dtype)).unwrap();
                let b = Var::from_tensor(&rand_tensor(seed + 2, &[c], dtype)).unwrap();
                let (ours, st) =
                    batch_norm_train(x.as_tensor(), Some((w.as_tensor(), b.as_tensor())), 1e-5)
                        .unwrap();
                assert_eq!(st.mean.len(), c);
                let theirs = reference(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5);
                let tol = if dtype == DType::F32 { 2e-5 } else { 1e-10 };
                assert_close(&ours, &theirs, tol, "forward");
                let probe = rand_tensor(seed + 3, &dims, dtype);
                let vars = [x.as_tensor(), w.as_tensor(), b.as_tensor()];
                let go = grads_of(&ours, &probe, &vars);
                let gt = grads_of(&theirs, &probe, &vars);
                for (i, (a, e)) in go.iter().zip(&gt).enumerate() {
                    assert_close(
                        a.as_ref().unwrap(),
                        e.as_ref().unwrap(),
                        tol,
                        &format!("grad {i}"),
                    );
                }
                // without affine parameters
                let (plain, _) = batch_norm_train(x.as_tensor(), None, 1e-5).unwrap();
                let ones = Tensor::ones(c, dtype, &candle_core::Device::Cpu).unwrap();
                let zeros = Tensor::zeros(c, dtype, &candle_core::Device::Cpu).unwrap();
                assert_close(
                    &plain,
                    &reference(x.as_tensor(), &ones, &zeros, 1e-5),
                    tol,
                    "plain",
                );
                let gp = grads_of(&plain, &probe, &[x.as_tensor()]);
                let gr = grads_of(
                    &reference(x.as_tensor(), &ones, &zeros, 1e-5),
                    &probe,
                    &[x.as_tensor()],
                );
                assert_close(
                    gp[0].as_ref().unwrap(),
                    gr[0].as_ref().unwrap(),
                    tol,
                    "plain grad",
                );
            }
        }
    }
}
