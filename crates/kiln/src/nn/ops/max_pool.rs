//! Max pooling that keeps the arg-max of every window for its backward.
//!
//! Semantics of PyTorch's CPU kernel: the maximum is the first in row-major window order
//! (NaN wins), padding is never selected, and the backward adds each output gradient to its
//! arg-max in output order (so overlapping windows accumulate as in PyTorch).

use super::cpu::{Float, dispatch, dispatch_dtype, slice, storage, tensor, with_slice};
use super::threads::parallel_for;
use crate::error::{Context, Result};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::sync::OnceLock;

/// One max-pool call: geometry, plus the arg-max (index within its plane) of every output,
/// filled by the forward.
struct MaxPoolOp {
    planes: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    oh: usize,
    ow: usize,
    argmax: OnceLock<Vec<u32>>,
}

impl MaxPoolOp {
    /// The clipped input ranges of the windows along one axis.
    fn ranges(&self, outs: usize, size: usize) -> Vec<(usize, usize)> {
        (0..outs)
            .map(|o| {
                let start = (o * self.s) as isize - self.p as isize;
                let clip = |v: isize| v.clamp(0, size as isize) as usize;
                (clip(start), clip(start + self.k as isize))
            })
            .collect()
    }

    /// Output values and arg-maxes.
    fn forward<T: Float>(&self, x: &[T]) -> (Vec<T>, Vec<u32>) {
        let (hw, ohw) = (self.h * self.w, self.oh * self.ow);
        let (rows, cols) = (self.ranges(self.oh, self.h), self.ranges(self.ow, self.w));
        let plane = |plane: &[T], out: &mut [T], idx: &mut [u32]| {
            for (oy, &(ys, ye)) in rows.iter().enumerate() {
                for (ox, &(xs, xe)) in cols.iter().enumerate() {
                    let mut best = ys * self.w + xs;
                    let mut max = T::from_f64(f64::NEG_INFINITY);
                    'window: for y in ys..ye {
                        let row = y * self.w;
                        for (i, &v) in plane[row + xs..row + xe].iter().enumerate() {
                            if v > max {
                                max = v;
                                best = row + xs + i;
                            } else if v.is_nan() {
                                best = row + xs + i;
                                break 'window;
                            }
                        }
                    }
                    out[oy * self.ow + ox] = plane[best];
                    idx[oy * self.ow + ox] = best as u32;
                }
            }
        };
        let mut out = vec![T::zero(); self.planes * ohw];
        let mut idx = vec![0u32; self.planes * ohw];
        if parallel_for(x.len()) {
            out.par_chunks_mut(ohw)
                .zip(idx.par_chunks_mut(ohw))
                .zip(x.par_chunks(hw))
                .for_each(|((o, i), p)| plane(p, o, i));
        } else {
            for ((o, i), p) in out
                .chunks_mut(ohw)
                .zip(idx.chunks_mut(ohw))
                .zip(x.chunks(hw))
            {
                plane(p, o, i);
            }
        }
        (out, idx)
    }

    /// The input gradient: each output gradient added to its arg-max, in output order.
    fn backward<T: Float>(&self, idx: &[u32], g: &[T]) -> Vec<T> {
        let (hw, ohw) = (self.h * self.w, self.oh * self.ow);
        let mut gx = vec![T::zero(); self.planes * hw];
        let plane = |gp: &mut [T], i: &[u32], g: &[T]| {
            for (&i, &g) in i.iter().zip(g) {
                gp[i as usize] += g;
            }
        };
        if parallel_for(gx.len()) {
            gx.par_chunks_mut(hw)
                .zip(idx.par_chunks(ohw))
                .zip(g.par_chunks(ohw))
                .for_each(|((gp, i), g)| plane(gp, i, g));
        } else {
            for ((gp, i), g) in gx.chunks_mut(hw).zip(idx.chunks(ohw)).zip(g.chunks(ohw)) {
                plane(gp, i, g);
            }
        }
        gx
    }
}

impl CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "kiln-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l.dims();
        let mut out_dims = dims.to_vec();
        if let [.., oh, ow] = out_dims.as_mut_slice() {
            (*oh, *ow) = (self.oh, self.ow);
        }
        let y = dispatch!(s, self.name(), |T| {
            let (y, idx) = self.forward::<T>(slice(s, l)?);
            // A second forward of the same op (candle never does one) would find the same
            // indices already stored.
            self.argmax.get_or_init(|| idx);
            storage::<T>(y)
        });
        Ok((y, Shape::from(out_dims)))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        dispatch_dtype!(x.dtype(), self.name(), |T| {
            let gx = with_slice::<T, _>(g, |gs| match self.argmax.get() {
                Some(idx) => Ok(self.backward(idx, gs)),
                None => with_slice::<T, _>(x, |xs| Ok(self.backward(&self.forward(xs).1, gs))),
            })?;
            Ok(Some(tensor(gx, x.dims())?))
        })
    }
}

/// Max pooling of a contiguous-able `[N, C, H, W]` `f32`/`f64` CPU tensor whose geometry the
/// caller has validated (`k, s >= 1`, `2p <= k`, window fits the padded image).
///
/// # Errors
/// `K0003` for planes of more than 2³² elements; backend errors.
pub fn max_pool2d(x: &Tensor, k: usize, s: usize, p: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4().ctx("max_pool2d")?;
    if u32::try_from(h * w).is_err() {
        return Err(crate::error::Error::invalid(
            "max_pool2d plane size",
            h * w,
            "at most 2^32 elements per plane",
        ));
    }
    let op = MaxPoolOp {
        planes: n * c,
        h,
        w,
        k,
        s,
        p,
        oh: (h + 2 * p - k) / s + 1,
        ow: (w + 2 * p - k) / s + 1,
        argmax: OnceLock::new(),
    };
    x.contiguous()
        .and_then(|x| x.apply_op1(op))
        .ctx("max_pool2d")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ops::test_util::rand_tensor;
    use candle_core::{DType, Var};

    /// The definition: per window, the first maximum (NaN wins); gradients added in output
    /// order.
    fn naive(x: &[f64], dims: [usize; 4], k: usize, s: usize, p: usize) -> (Vec<f64>, Vec<f64>) {
        let [n, c, h, w] = dims;
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let (mut y, mut gx) = (Vec::new(), vec![0.0; x.len()]);
        for pl in 0..n * c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best: Option<usize> = None;
                    for i in 0..k {
                        for j in 0..k {
                            let (iy, ix) = (
                                (oy * s + i) as isize - p as isize,
                                (ox * s + j) as isize - p as isize,
                            );
                            if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                                continue;
                            }
                            let at = pl * h * w + iy as usize * w + ix as usize;
                            let better = match best {
                                None => true,
                                Some(b) => !x[b].is_nan() && (x[at] > x[b] || x[at].is_nan()),
                            };
                            if better {
                                best = Some(at);
                            }
                        }
                    }
                    let b = best.unwrap();
                    y.push(x[b]);
                    gx[b] += (y.len() % 5) as f64 + 1.0; // the probe used below
                }
            }
        }
        (y, gx)
    }

    #[test]
    fn matches_the_definition_with_ties_nans_padding_and_overlap() {
        for (seed, (dims, k, s, p)) in [
            ([2, 3, 8, 8], 2, 2, 0),
            ([1, 2, 7, 9], 3, 2, 1),
            ([2, 1, 5, 5], 3, 1, 1),
            ([1, 1, 6, 6], 2, 3, 1),
        ]
        .into_iter()
        .enumerate()
        {
            // Coarse values make ties common; one NaN per tensor.
            let t = (rand_tensor(seed as u64, &dims, DType::F64) * 3.0)
                .unwrap()
                .round()
                .unwrap();
            let mut v: Vec<f64> = t.flatten_all().unwrap().to_vec1().unwrap();
            v[5] = f64::NAN;
            let x = Var::from_tensor(
                &Tensor::from_vec(v.clone(), &dims, &candle_core::Device::Cpu).unwrap(),
            )
            .unwrap();
            let y = max_pool2d(x.as_tensor(), k, s, p).unwrap();
            let (want_y, want_g) = naive(&v, dims, k, s, p);
            let got: Vec<f64> = y.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(got.len(), want_y.len());
            for (a, b) in got.iter().zip(&want_y) {
                assert!(a == b || (a.is_nan() && b.is_nan()));
            }
            let probe: Vec<f64> = (1..=got.len()).map(|i| (i % 5) as f64 + 1.0).collect();
            let probe = Tensor::from_vec(probe, y.dims(), &candle_core::Device::Cpu).unwrap();
            let g = y
                .mul(&probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g: Vec<f64> = g
                .get(x.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(g, want_g, "case {seed}");
            // f32 gives the same selection
            let y32 = max_pool2d(&x.as_tensor().to_dtype(DType::F32).unwrap(), k, s, p).unwrap();
            assert_eq!(y32.dims(), y.dims());
        }
    }
}
