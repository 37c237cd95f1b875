//! 2-D convolution (PyTorch's `F.conv2d` with square stride/padding/dilation and groups).
//!
//! Forward: im2col of the whole batch, one GEMM per group into `[O, N·P]`, then one pass that
//! transposes to `[N, O, P]` and adds the bias. Backward: the output gradient is transposed
//! once to `[O, N·P]`; the weight gradient is one GEMM per group against the column matrix
//! (kept from the forward pass when it has at most `KEEP_COLUMNS_MAX` elements, else
//! rebuilt), the input gradient one GEMM per group followed by col2im, the bias gradient a
//! per-channel sum. A gradient is computed only for arguments that need one.

use super::cpu::{
    Float, Grads3, dispatch, dispatch_dtype, needs_grad, slice, storage, tensor, with_slice,
};
use super::gemm::{Mat, gemm};
use super::im2col::{col2im, im2col};
use super::reduce::sum_per_channel;
use crate::error::{Context, Error, Result, shape_str};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use std::sync::Mutex;

use super::im2col::Geom;

impl Geom {
    /// The geometry of `x` (`[N, C, H, W]`) convolved with `w` (`[O, C/groups, kh, kw]`);
    /// errors as [`conv2d`].
    pub fn new(
        x: &[usize],
        w: &[usize],
        stride: usize,
        pad: usize,
        dil: usize,
        groups: usize,
    ) -> Result<Self> {
        let (&[n, c, h, wd], &[o, cg, kh, kw]) = (x, w) else {
            return Err(Error::InputRank {
                module: "conv2d".into(),
                expected: "4-D input [N, C, H, W] and 4-D weight [O, C/groups, kh, kw]".into(),
                shape: format!("{} and {}", shape_str(x), shape_str(w)),
            });
        };
        if stride == 0 || dil == 0 || groups == 0 || kh == 0 || kw == 0 {
            return Err(Error::invalid(
                "conv2d stride/dilation/groups/kernel",
                format!("{stride}/{dil}/{groups}/{kh}x{kw}"),
                "positive values",
            ));
        }
        if cg * groups != c || o % groups != 0 {
            return Err(Error::invalid(
                "conv2d channels",
                format!("input {}, weight {}", shape_str(x), shape_str(w)),
                format!(
                    "input channels = {groups} groups x weight dim 1, output channels divisible by {groups}"
                ),
            ));
        }
        let (sh, sw) = (dil * (kh - 1) + 1, dil * (kw - 1) + 1);
        if h + 2 * pad < sh || wd + 2 * pad < sw {
            return Err(Error::InputRank {
                module: "conv2d".into(),
                expected: format!("an image at least {sh}x{sw} after padding {pad}"),
                shape: shape_str(x),
            });
        }
        Ok(Geom {
            n,
            c,
            h,
            w: wd,
            o,
            groups,
            kh,
            kw,
            stride,
            pad,
            dil,
            oh: (h + 2 * pad - sh) / stride + 1,
            ow: (wd + 2 * pad - sw) / stride + 1,
        })
    }

    fn out_dims(&self) -> [usize; 4] {
        [self.n, self.o, self.oh, self.ow]
    }

    /// The column matrix of `x`.
    fn columns<T: Float>(&self, x: &[T]) -> Vec<T> {
        let mut col = vec![T::zero(); self.c * self.kh * self.kw * self.np()];
        im2col(self, x, &mut col);
        col
    }

    /// The output `[N, O, P]`, and the column matrix when `keep` asks for it.
    fn forward<T: Float>(
        &self,
        x: &[T],
        w: &[T],
        b: Option<&[T]>,
        keep: bool,
    ) -> candle_core::Result<(Vec<T>, Option<Vec<T>>)> {
        let (np, p, kg, og) = (self.np(), self.p(), self.kg(), self.og());
        let col = self.columns(x);
        let mut yt = vec![T::zero(); self.o * np];
        for gi in 0..self.groups {
            gemm(
                &mut yt[gi * og * np..][..og * np],
                np,
                Mat::rows(&w[gi * og * kg..][..og * kg], og, kg),
                Mat::rows(&col[gi * kg * np..][..kg * np], kg, np),
                false,
            )?;
        }
        let mut y = vec![T::zero(); self.o * np];
        for (n, img) in y.chunks_exact_mut(self.o * p).enumerate() {
            for (o, dst) in img.chunks_exact_mut(p).enumerate() {
                let src = &yt[o * np + n * p..][..p];
                match b {
                    Some(b) => {
                        let bo = b[o];
                        for (d, &s) in dst.iter_mut().zip(src) {
                            *d = s + bo;
                        }
                    }
                    None => dst.copy_from_slice(src),
                }
            }
        }
        Ok((y, keep.then_some(col)))
    }

    /// `(gx, gw, gb)` for the requested arguments, from the output gradient `gy`; `kept` is
    /// the forward's column matrix of `x` when it was kept (else it is recomputed).
    fn backward<T: Float>(
        &self,
        x: &[T],
        w: &[T],
        gy: &[T],
        kept: Option<&[T]>,
        want: [bool; 3],
    ) -> candle_core::Result<Grads3<Vec<T>>> {
        let (np, p, kg, og) = (self.np(), self.p(), self.kg(), self.og());
        let gb = want[2].then(|| sum_per_channel(gy, self.o, p));
        if !want[0] && !want[1] {
            return Ok((None, None, gb));
        }
        // gy [N, O, P] -> gyt [O, N·P]
        let mut gyt = vec![T::zero(); self.o * np];
        for (n, img) in gy.chunks_exact(self.o * p).enumerate() {
            for (o, src) in img.chunks_exact(p).enumerate() {
                gyt[o * np + n * p..][..p].copy_from_slice(src);
            }
        }
        let gw = if want[1] {
            let recomputed;
            let col = match kept {
                Some(col) if col.len() == self.c * self.kh * self.kw * np => col,
                _ => {
                    recomputed = self.columns(x);
                    &recomputed
                }
            };
            let mut gw = vec![T::zero(); self.o * kg];
            for gi in 0..self.groups {
                gemm(
                    &mut gw[gi * og * kg..][..og * kg],
                    kg,
                    Mat::rows(&gyt[gi * og * np..][..og * np], og, np),
                    Mat::rows(&col[gi * kg * np..][..kg * np], kg, np).t(),
                    false,
                )?;
            }
            Some(gw)
        } else {
            None
        };
        let gx = if want[0] {
            let mut gcol = vec![T::zero(); self.groups * kg * np];
            for gi in 0..self.groups {
                gemm(
                    &mut gcol[gi * kg * np..][..kg * np],
                    np,
                    Mat::rows(&w[gi * og * kg..][..og * kg], og, kg).t(),
                    Mat::rows(&gyt[gi * og * np..][..og * np], og, np),
                    false,
                )?;
            }
            let mut gx = vec![T::zero(); self.n * self.c * self.h * self.w];
            col2im(self, &gcol, &mut gx);
            Some(gx)
        } else {
            None
        };
        Ok((gx, gw, gb))
    }

    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        gy: &Tensor,
        kept: Option<CpuStorage>,
    ) -> candle_core::Result<Grads3<Tensor>> {
        let want = [needs_grad(x), needs_grad(w), b.is_some_and(needs_grad)];
        dispatch_dtype!(x.dtype(), "kiln-conv2d", |T| {
            let kept = kept
                .as_ref()
                .and_then(|s| <T as candle_core::WithDType>::cpu_storage_as_slice(s).ok());
            let (gx, gw, gb) = with_slice::<T, _>(x, |xs| {
                with_slice::<T, _>(w, |ws| {
                    with_slice::<T, _>(gy, |gys| self.backward(xs, ws, gys, kept, want))
                })
            })?;
            Ok((
                gx.map(|g| tensor(g, x.dims())).transpose()?,
                gw.map(|g| tensor(g, w.dims())).transpose()?,
                gb.map(|g| tensor(g, &[self.o])).transpose()?,
            ))
        })
    }
}

/// Column matrices up to this many elements are kept from the forward pass for the weight
/// gradient instead of being rebuilt in backward (im2col only copies, so the result is the
/// same either way); larger ones are recomputed, bounding what a training graph holds.
const KEEP_COLUMNS_MAX: usize = 1 << 22;

/// The convolution as a candle op: `(x, w)` or, with a bias, `(x, w, b)`.
struct Conv2dOp {
    g: Geom,
    /// Whether to keep the forward's column matrix (the weight needs a gradient and the
    /// matrix is at most [`KEEP_COLUMNS_MAX`] elements).
    keep: bool,
    /// The kept column matrix, taken (and freed) by the backward pass.
    cols: Mutex<Option<CpuStorage>>,
}

impl Conv2dOp {
    fn new(g: Geom, w: &Tensor) -> Self {
        let len = g.c.saturating_mul(g.kh * g.kw).saturating_mul(g.np());
        Conv2dOp {
            g,
            keep: needs_grad(w) && len <= KEEP_COLUMNS_MAX,
            cols: Mutex::new(None),
        }
    }

    /// Runs the forward pass, keeping the column matrix when asked.
    fn run<T: Float>(&self, x: &[T], w: &[T], b: Option<&[T]>) -> candle_core::Result<CpuStorage> {
        let (y, col) = self.g.forward::<T>(x, w, b, self.keep)?;
        if let Some(col) = col {
            *self.cols.lock().unwrap_or_else(|p| p.into_inner()) = Some(storage(col));
        }
        Ok(storage(y))
    }

    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        gy: &Tensor,
    ) -> candle_core::Result<Grads3<Tensor>> {
        let kept = self.cols.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.g.grads(x, w, b, gy, kept)
    }
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "kiln-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = dispatch!(xs, CustomOp2::name(self), |T| self.run::<T>(
            slice(xs, xl)?,
            slice(ws, wl)?,
            None
        )?);
        Ok((y, Shape::from(self.g.out_dims().to_vec())))
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

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "kiln-conv2d-bias"
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
        let y = dispatch!(xs, CustomOp3::name(self), |T| self.run::<T>(
            slice(xs, xl)?,
            slice(ws, wl)?,
            Some(slice(bs, bl)?)
        )?);
        Ok((y, Shape::from(self.g.out_dims().to_vec())))
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

/// `F.conv2d(x, w, b, stride, padding, dilation, groups)` for `x [N, C, H, W]`,
/// `w [O, C/groups, kh, kw]`, `b [O]`, with kiln's kernels on `f32`/`f64` CPU tensors and
/// candle's `conv2d` (plus a broadcast bias) otherwise.
///
/// # Errors
/// `K0203` for inputs of the wrong rank or smaller than the dilated kernel; `K0003` for zero
/// stride/dilation/groups, channels that do not match the groups or a bias that is not
/// `[O]`; backend errors.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
) -> Result<Tensor> {
    let g = Geom::new(x.dims(), w.dims(), stride, padding, dilation, groups)?;
    if let Some(b) = b {
        if b.dims() != [g.o] {
            return Err(Error::invalid(
                "conv2d bias shape",
                shape_str(b.dims()),
                format!("[{}]", g.o),
            ));
        }
    }
    let mut all = vec![x, w];
    all.extend(b);
    if !super::supported(&all) {
        let y = x
            .conv2d(w, padding, stride, dilation, groups)
            .ctx("conv2d")?;
        return match b {
            Some(b) => b
                .reshape((1, g.o, 1, 1))
                .and_then(|b| y.broadcast_add(&b))
                .ctx("conv2d bias"),
            None => Ok(y),
        };
    }
    let x = x.contiguous().ctx("conv2d")?;
    let w = w.contiguous().ctx("conv2d")?;
    match b {
        Some(b) => {
            let b = b.contiguous().ctx("conv2d")?;
            x.apply_op3(&w, &b, Conv2dOp::new(g, &w)).ctx("conv2d")
        }
        None => x.apply_op2(&w, Conv2dOp::new(g, &w)).ctx("conv2d"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ops::test_util::{assert_close, grads_of, rand_tensor};
    use candle_core::{DType, Var};

    fn vals(t: &Tensor) -> Vec<f64> {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// The definition in `f64` loops: output and the gradients of `sum(y * probe)`.
    /// (candle's own conv backward cannot serve: it fails on some strided shapes.)
    fn naive(g: &Geom, x: &[f64], w: &[f64], b: &[f64], probe: &[f64]) -> [Vec<f64>; 4] {
        let (cg, og) = (g.c / g.groups, g.og());
        let mut y = vec![0.0; g.n * g.o * g.p()];
        let (mut gx, mut gw, mut gb) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; g.o]);
        for n in 0..g.n {
            for o in 0..g.o {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let yi = ((n * g.o + o) * g.oh + oy) * g.ow + ox;
                        let mut acc = b[o];
                        gb[o] += probe[yi];
                        for cl in 0..cg {
                            let ci = o / og * cg + cl;
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let iy = (oy * g.stride + i * g.dil) as isize - g.pad as isize;
                                    let ix = (ox * g.stride + j * g.dil) as isize - g.pad as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w
                                    {
                                        continue;
                                    }
                                    let xi =
                                        ((n * g.c + ci) * g.h + iy as usize) * g.w + ix as usize;
                                    let wi = ((o * cg + cl) * g.kh + i) * g.kw + j;
                                    acc += w[wi] * x[xi];
                                    gx[xi] += w[wi] * probe[yi];
                                    gw[wi] += x[xi] * probe[yi];
                                }
                            }
                        }
                        y[yi] = acc;
                    }
                }
            }
        }
        [y, gx, gw, gb]
    }

    fn close(a: &[f64], e: &[f64], tol: f64, what: &str) {
        assert_eq!(a.len(), e.len(), "{what}: lengths");
        let scale = e.iter().fold(1f64, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(e).enumerate() {
            assert!(
                (x - y).abs() <= tol * scale,
                "{what}: element {i}: {x} vs {y}"
            );
        }
    }

    /// Forward and all three gradients against the definition; the forward also against
    /// candle's `conv2d`.
    fn check(seed: u64, dtype: DType, case: [usize; 10], bias: bool) {
        let [n, c, h, w, o, k, s, p, d, g] = case;
        let x = Var::from_tensor(&rand_tensor(seed, &[n, c, h, w], dtype)).unwrap();
        let wt = Var::from_tensor(&rand_tensor(seed + 1, &[o, c / g, k, k], dtype)).unwrap();
        let bt = Var::from_tensor(&rand_tensor(seed + 2, &[o], dtype)).unwrap();
        let b = bias.then(|| bt.as_tensor());
        let ours = conv2d(x.as_tensor(), wt.as_tensor(), b, s, p, d, g).unwrap();
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        let mut theirs = x.as_tensor().conv2d(wt.as_tensor(), p, s, d, g).unwrap();
        if let Some(b) = b {
            theirs = theirs
                .broadcast_add(&b.reshape((1, o, 1, 1)).unwrap())
                .unwrap();
        }
        assert_close(&ours, &theirs, tol, &format!("forward vs candle {case:?}"));
        let probe = rand_tensor(seed + 3, ours.dims(), dtype);
        let geom = Geom::new(&[n, c, h, w], &[o, c / g, k, k], s, p, d, g).unwrap();
        let zero = vec![0.0; o];
        let bv = if bias { vals(bt.as_tensor()) } else { zero };
        let want = naive(
            &geom,
            &vals(x.as_tensor()),
            &vals(wt.as_tensor()),
            &bv,
            &vals(&probe),
        );
        close(&vals(&ours), &want[0], tol, &format!("forward {case:?}"));
        let vars = [x.as_tensor(), wt.as_tensor(), bt.as_tensor()];
        let got = grads_of(&ours, &probe, &vars);
        for (i, got) in got.iter().enumerate() {
            match got {
                Some(t) => close(&vals(t), &want[i + 1], tol, &format!("grad {i} {case:?}")),
                None => assert!(i == 2 && !bias, "grad {i} missing for {case:?}"),
            }
        }
    }

    #[test]
    fn matches_candle_on_a_sweep_of_geometries() {
        let cases = [
            // n, c, h, w, o, k, s, p, d, g
            [2, 1, 8, 8, 6, 3, 1, 1, 1, 1],
            [3, 6, 4, 4, 16, 3, 1, 1, 1, 1],
            [2, 4, 9, 7, 6, 3, 2, 1, 1, 2],
            [1, 4, 8, 8, 4, 3, 2, 1, 1, 4],
            [2, 3, 10, 10, 5, 3, 1, 2, 2, 1],
            [2, 8, 6, 6, 4, 1, 2, 0, 1, 1],
            [1, 2, 5, 6, 3, 5, 3, 2, 1, 1],
            [2, 1, 12, 12, 8, 7, 2, 3, 1, 1],
        ];
        for (i, case) in cases.into_iter().enumerate() {
            for bias in [true, false] {
                check(10 * i as u64, DType::F32, case, bias);
            }
            check(10 * i as u64 + 5, DType::F64, case, true);
        }
    }

    #[test]
    fn random_geometries_match_candle() {
        // A seeded sweep (a cheap stand-in for proptest: the same cases every run).
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % m as u64) as usize
        };
        for seed in 0..40u64 {
            let g = [1, 2, 3][next(3)];
            let (k, s, d) = (1 + next(4), 1 + next(3), 1 + next(2));
            let p = next(k / 2 * d + 1);
            let span = d * (k - 1) + 1;
            let h = span.saturating_sub(2 * p).max(1) + next(6);
            let w = span.saturating_sub(2 * p).max(1) + next(6);
            let case = [
                1 + next(3),
                g * (1 + next(3)),
                h,
                w,
                g * (1 + next(3)),
                k,
                s,
                p,
                d,
                g,
            ];
            check(1000 + seed, DType::F32, case, next(2) == 0);
        }
    }

    #[test]
    fn kept_columns_give_the_same_gradients_as_rebuilt_ones() {
        let g = Geom::new(&[2, 4, 6, 5], &[6, 2, 3, 3], 2, 1, 1, 2).unwrap();
        let v = |len: usize, k: f64| -> Vec<f64> {
            (0..len)
                .map(|i| ((i as f64 * k).sin() * 3.0) / 7.0)
                .collect()
        };
        let (x, w) = (v(2 * 4 * 6 * 5, 0.37), v(6 * 2 * 3 * 3, 1.3));
        let (y, col) = g.forward(&x, &w, None, true).unwrap();
        let (y2, none) = g.forward(&x, &w, None, false).unwrap();
        assert!(none.is_none() && y == y2);
        let gy = v(y.len(), 2.9);
        let want = [true, true, true];
        let kept = g.backward(&x, &w, &gy, col.as_deref(), want).unwrap();
        let rebuilt = g.backward(&x, &w, &gy, None, want).unwrap();
        assert_eq!(kept, rebuilt);
        // A column matrix of the wrong size is ignored, not trusted.
        let wrong = g.backward(&x, &w, &gy, Some(&[1.0]), want).unwrap();
        assert_eq!(wrong, rebuilt);
    }

    #[test]
    fn data_input_and_frozen_weight_get_no_gradient() {
        let x = rand_tensor(1, &[2, 3, 5, 5], DType::F32);
        let w = Var::from_tensor(&rand_tensor(2, &[4, 3, 3, 3], DType::F32)).unwrap();
        let b = rand_tensor(3, &[4], DType::F32); // frozen
        let y = conv2d(&x, w.as_tensor(), Some(&b), 1, 1, 1, 1).unwrap();
        let store = y.sum_all().unwrap().backward().unwrap();
        assert!(store.get(&x).is_none() && store.get(&b).is_none());
        assert!(store.get(w.as_tensor()).is_some());
    }

    #[test]
    fn bad_shapes_are_errors() {
        let x = Tensor::zeros((1, 3, 4, 4), DType::F32, &candle_core::Device::Cpu).unwrap();
        let w = Tensor::zeros((2, 2, 3, 3), DType::F32, &candle_core::Device::Cpu).unwrap();
        assert_eq!(
            conv2d(&x, &w, None, 1, 0, 1, 1).unwrap_err().code(),
            "K0003"
        );
        let w = Tensor::zeros((2, 3, 5, 5), DType::F32, &candle_core::Device::Cpu).unwrap();
        assert_eq!(
            conv2d(&x, &w, None, 1, 0, 1, 1).unwrap_err().code(),
            "K0203"
        );
    }
}
