//! `y = x Wᵀ + b` (PyTorch's `F.linear` on `[M, in]` inputs).
//!
//! Forward is one GEMM accumulating into an output pre-filled with the bias (PyTorch's
//! `addmm`). Backward reads `gy`, `x` and `W` through strides (no transposed copies):
//! `gx = gy W`, `gW = gyᵀ x`, `gb = gy.sum(0)`, each only when needed.

use super::cpu::{
    Float, Grads3, dispatch, dispatch_dtype, needs_grad, slice, storage, tensor, with_slice,
};
use super::gemm::{Mat, gemm};
use super::reduce::sum_over_rows;
use crate::error::{Context, Error, Result, shape_str};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

/// Rows, input and output features of one linear map.
#[derive(Clone, Copy, Debug)]
struct LinearOp {
    m: usize,
    inp: usize,
    out: usize,
}

impl LinearOp {
    fn forward<T: Float>(&self, x: &[T], w: &[T], b: Option<&[T]>) -> candle_core::Result<Vec<T>> {
        let mut y = vec![T::zero(); self.m * self.out];
        if let Some(b) = b {
            for row in y.chunks_exact_mut(self.out) {
                row.copy_from_slice(b);
            }
        }
        gemm(
            &mut y,
            self.out,
            Mat::rows(x, self.m, self.inp),
            Mat::rows(w, self.out, self.inp).t(),
            b.is_some(),
        )?;
        Ok(y)
    }

    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        gy: &Tensor,
    ) -> candle_core::Result<Grads3<Tensor>> {
        let want = [needs_grad(x), needs_grad(w), b.is_some_and(needs_grad)];
        dispatch_dtype!(x.dtype(), "kiln-linear", |T| self
            .grads_as::<T>(x, w, gy, want))
    }

    fn grads_as<T: Float>(
        &self,
        x: &Tensor,
        w: &Tensor,
        gy: &Tensor,
        [want_x, want_w, want_b]: [bool; 3],
    ) -> candle_core::Result<Grads3<Tensor>> {
        let (m, inp, out) = (self.m, self.inp, self.out);
        with_slice::<T, _>(gy, |gy| {
            let gx = if want_x {
                let mut gx = vec![T::zero(); m * inp];
                with_slice::<T, _>(w, |w| {
                    gemm(
                        &mut gx,
                        inp,
                        Mat::rows(gy, m, out),
                        Mat::rows(w, out, inp),
                        false,
                    )
                })?;
                Some(tensor(gx, x.dims())?)
            } else {
                None
            };
            let gw = if want_w {
                let mut gw = vec![T::zero(); out * inp];
                with_slice::<T, _>(x, |x| {
                    gemm(
                        &mut gw,
                        inp,
                        Mat::rows(gy, m, out).t(),
                        Mat::rows(x, m, inp),
                        false,
                    )
                })?;
                Some(tensor(gw, w.dims())?)
            } else {
                None
            };
            let gb = if want_b {
                Some(tensor(sum_over_rows(gy, out), &[out])?)
            } else {
                None
            };
            Ok((gx, gw, gb))
        })
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "kiln-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = dispatch!(xs, CustomOp2::name(self), |T| storage::<T>(
            self.forward::<T>(slice(xs, xl)?, slice(ws, wl)?, None)?
        ));
        Ok((y, Shape::from((self.m, self.out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        gy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (gx, gw, _) = self.grads(x, w, None, gy)?;
        Ok((gx, gw))
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "kiln-linear-bias"
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
            self.forward::<T>(slice(xs, xl)?, slice(ws, wl)?, Some(slice(bs, bl)?))?
        ));
        Ok((y, Shape::from((self.m, self.out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        gy: &Tensor,
    ) -> candle_core::Result<Grads3<Tensor>> {
        self.grads(x, w, Some(b), gy)
    }
}

/// `F.linear(x, w, b)` for `x [M, in]`, `w [out, in]`, `b [out]`: kiln's kernel on
/// `f32`/`f64` CPU tensors, candle's `matmul` + broadcast add otherwise.
///
/// # Errors
/// `K0003` when the shapes do not fit together; backend errors.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (m, inp, out) = match (x.dims(), w.dims()) {
        (&[m, i], &[o, wi]) if i == wi => (m, i, o),
        _ => {
            return Err(Error::invalid(
                "linear shapes",
                format!(
                    "input {}, weight {}",
                    shape_str(x.dims()),
                    shape_str(w.dims())
                ),
                "input [M, in] and weight [out, in]",
            ));
        }
    };
    if let Some(b) = b {
        if b.dims() != [out] {
            return Err(Error::invalid(
                "linear bias shape",
                shape_str(b.dims()),
                format!("[{out}]"),
            ));
        }
    }
    let mut all = vec![x, w];
    all.extend(b);
    if !super::supported(&all) {
        let y = x.matmul(&w.t().ctx("linear")?).ctx("linear matmul")?;
        return match b {
            Some(b) => y.broadcast_add(b).ctx("linear bias"),
            None => Ok(y),
        };
    }
    let op = LinearOp { m, inp, out };
    let x = x.contiguous().ctx("linear")?;
    let w = w.contiguous().ctx("linear")?;
    match b {
        Some(b) => {
            let b = b.contiguous().ctx("linear")?;
            x.apply_op3(&w, &b, op).ctx("linear")
        }
        None => x.apply_op2(&w, op).ctx("linear"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ops::test_util::{assert_close, grads_of, rand_tensor};
    use candle_core::{DType, Var};

    #[test]
    fn matches_candle_forward_and_gradients() {
        for (i, (m, inp, out)) in [
            (1, 1, 1),
            (64, 64, 128),
            (7, 120, 84),
            (3, 5, 10),
            (0, 4, 3),
        ]
        .into_iter()
        .enumerate()
        {
            for dtype in [DType::F32, DType::F64] {
                for bias in [true, false] {
                    let seed = 10 * i as u64;
                    let x = Var::from_tensor(&rand_tensor(seed, &[m, inp], dtype)).unwrap();
                    let w = Var::from_tensor(&rand_tensor(seed + 1, &[out, inp], dtype)).unwrap();
                    let b = Var::from_tensor(&rand_tensor(seed + 2, &[out], dtype)).unwrap();
                    let bo = bias.then(|| b.as_tensor());
                    let ours = linear(x.as_tensor(), w.as_tensor(), bo).unwrap();
                    let mut theirs = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
                    if bias {
                        theirs = theirs.broadcast_add(b.as_tensor()).unwrap();
                    }
                    let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
                    assert_close(&ours, &theirs, tol, "forward");
                    if m == 0 {
                        continue;
                    }
                    let probe = rand_tensor(seed + 3, &[m, out], dtype);
                    let vars = [x.as_tensor(), w.as_tensor(), b.as_tensor()];
                    let go = grads_of(&ours, &probe, &vars);
                    let gt = grads_of(&theirs, &probe, &vars);
                    for (a, e) in go.iter().zip(&gt) {
                        match (a, e) {
                            (Some(a), Some(e)) => assert_close(a, e, tol, "grad"),
                            (None, None) => {}
                            _ => panic!("gradient presence differs"),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn frozen_weight_and_data_input_get_no_gradient() {
        let x = rand_tensor(1, &[4, 3], DType::F32);
        let w = rand_tensor(2, &[2, 3], DType::F32);
        let b = Var::from_tensor(&rand_tensor(3, &[2], DType::F32)).unwrap();
        let y = linear(&x, &w, Some(b.as_tensor())).unwrap();
        let store = y.sum_all().unwrap().backward().unwrap();
        assert!(store.get(&x).is_none() && store.get(&w).is_none());
        assert_eq!(
            store.get(b.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            vec![4.0, 4.0]
        );
    }

    #[test]
    fn mismatched_shapes_are_k0003() {
        let x = rand_tensor(1, &[4, 3], DType::F32);
        let w = rand_tensor(2, &[2, 4], DType::F32);
        assert_eq!(linear(&x, &w, None).unwrap_err().code(), "K0003");
    }
}
