//! Functional forms of kiln's layers (PyTorch's `torch.nn.functional`): pooling and the
//! activations (`gelu`, `silu`, `sigmoid`, `softmax`, …; see [`gelu`]).
//!
//! Pooling with PyTorch's forward *and backward* semantics (`F.max_pool2d`, `F.avg_pool2d`).
//!
//! candle 0.11.1's own pooling backward is wrong for training: `max_pool2d`'s gradient is
//! divided by the window area (¼ of PyTorch's for a 2×2 pool, so every layer before a pool
//! learns 4× slower), tied maxima all receive gradient (PyTorch gives it to the first one),
//! and neither max- nor avg-pool has a backward when `kernel != stride` (ResNet's
//! `MaxPool2d(3, 2, 1)`). These custom ops compute both passes on the CPU the way PyTorch's
//! CPU kernels do: the max is the first in row-major window order (NaN wins), padding is
//! never selected, average pooling counts the padding (`count_include_pad=True`; its forward
//! sums in f64), and gradients are accumulated in the tensor's dtype in output order. Max
//! pooling runs `kiln::nn::ops::max_pool2d` (which keeps its arg-maxes for the backward),
//! average pooling the op below. Other devices fall back to candle's kernels (forward only
//! when `kernel != stride`).

pub use crate::nn::layers::sdpa::scaled_dot_product_attention;

use crate::error::{Context, Error, Result, shape_str};
use crate::nn::layers::pointwise::{Pointwise, apply};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, WithDType};

pub use crate::nn::layers::conv_transpose::conv_transpose2d;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Max,
    Avg,
}

/// Geometry of a square pooling window over one `[N, C, H, W]` input.
#[derive(Clone, Copy, Debug)]
struct Pool {
    kind: Kind,
    k: usize,
    s: usize,
    p: usize,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl Pool {
    fn new(kind: Kind, dims: &[usize], k: usize, s: usize, p: usize) -> Result<Self> {
        let name = match kind {
            Kind::Max => "max_pool2d",
            Kind::Avg => "avg_pool2d",
        };
        let [n, c, h, w] = *dims else {
            return Err(Error::InputRank {
                module: name.into(),
                expected: "4-D [N, C, H, W]".into(),
                shape: shape_str(dims),
            });
        };
        if k == 0 || s == 0 || 2 * p > k {
            return Err(Error::invalid(
                format!("{name} kernel/stride/padding"),
                format!("{k}/{s}/{p}"),
                "kernel and stride >= 1 and padding <= kernel/2 (PyTorch: pad should be at most half of effective kernel size)",
            ));
        }
        if h + 2 * p < k || w + 2 * p < k {
            return Err(Error::InputRank {
                module: name.into(),
                expected: format!("an image of at least {k}x{k} (with padding {p})"),
                shape: shape_str(dims),
            });
        }
        Ok(Pool {
            kind,
            k,
            s,
            p,
            n,
            c,
            h,
            w,
            oh: (h + 2 * p - k) / s + 1,
            ow: (w + 2 * p - k) / s + 1,
        })
    }

    /// The input rows/columns the window of output `(oy, ox)` covers, clipped to the image.
    fn window(&self, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
        let y0 = (oy * self.s) as isize - self.p as isize;
        let x0 = (ox * self.s) as isize - self.p as isize;
        let clip = |v: isize, hi: usize| v.clamp(0, hi as isize) as usize;
        (
            clip(y0, self.h),
            clip(y0 + self.k as isize, self.h),
            clip(x0, self.w),
            clip(x0 + self.k as isize, self.w),
        )
    }

    fn forward<T: WithDType>(&self, x: &[T]) -> Vec<T> {
        let (hw, ohw) = (self.h * self.w, self.oh * self.ow);
        let area = (self.k * self.k) as f64;
        let mut out = Vec::with_capacity(self.n * self.c * ohw);
        for plane in x.chunks_exact(hw) {
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let (ys, ye, xs, xe) = self.window(oy, ox);
                    let mut sum = 0f64;
                    for y in ys..ye {
                        for v in &plane[y * self.w + xs..y * self.w + xe] {
                            sum += v.to_f64();
                        }
                    }
                    out.push(T::from_f64(sum / area));
                }
            }
        }
        out
    }

    /// The input gradient, accumulated in `T` in output order as PyTorch's CPU kernels do.
    fn backward<T: WithDType>(&self, x: &[T], grad: &[T]) -> Vec<T> {
        let (hw, ohw) = (self.h * self.w, self.oh * self.ow);
        let area = T::from_f64((self.k * self.k) as f64);
        let mut gx = vec![T::zero(); x.len()];
        for (pi, gplane) in gx.chunks_exact_mut(hw).enumerate() {
            let g = &grad[pi * ohw..(pi + 1) * ohw];
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let delta = g[oy * self.ow + ox] / area;
                    let (ys, ye, xs, xe) = self.window(oy, ox);
                    for y in ys..ye {
                        for v in &mut gplane[y * self.w + xs..y * self.w + xe] {
                            *v += delta;
                        }
                    }
                }
            }
        }
        gx
    }

    fn out_shape(&self) -> Shape {
        Shape::from((self.n, self.c, self.oh, self.ow))
    }
}

fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("pooling expects a contiguous input".into()))?;
    Ok(&T::cpu_storage_as_slice(s)?[a..b])
}

impl CustomOp1 for Pool {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Max => "kiln-max-pool2d",
            Kind::Avg => "kiln-avg-pool2d",
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(self.forward(slice::<f32>(s, l)?)),
            CpuStorage::F64(_) => CpuStorage::F64(self.forward(slice::<f64>(s, l)?)),
            _ => candle_core::bail!("{}: only f32 and f64 are supported", self.name()),
        };
        Ok((out, self.out_shape()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?.flatten_all()?;
        let x = arg.flatten_all()?;
        let gx = match arg.dtype() {
            DType::F32 => Tensor::from_vec(
                self.backward(&x.to_vec1::<f32>()?, &grad.to_vec1::<f32>()?),
                arg.shape(),
                arg.device(),
            )?,
            DType::F64 => Tensor::from_vec(
                self.backward(&x.to_vec1::<f64>()?, &grad.to_vec1::<f64>()?),
                arg.shape(),
                arg.device(),
            )?,
            other => candle_core::bail!("{}: no backward for {other:?}", self.name()),
        };
        Ok(Some(gx))
    }
}

fn pool(kind: Kind, x: &Tensor, k: usize, s: usize, p: usize) -> Result<Tensor> {
    let op = Pool::new(kind, x.dims(), k, s, p)?;
    let name = op.name();
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        if kind == Kind::Max {
            return crate::nn::ops::max_pool2d(x, k, s, p);
        }
        return x.contiguous().and_then(|x| x.apply_op1(op)).ctx(name);
    }
    let fill = match kind {
        Kind::Max => f64::NEG_INFINITY,
        Kind::Avg => 0.0,
    };
    let x = crate::nn::layers::pool::pad_hw(x, p, fill)?;
    match kind {
        Kind::Max => x.max_pool2d_with_stride(k, s),
        Kind::Avg => x.avg_pool2d_with_stride(k, s),
    }
    .ctx(name)
}

/// `F.max_pool2d(x, kernel, stride, padding)` on `[N, C, H, W]` with PyTorch's gradient (to
/// the first maximum of each window).
///
/// # Errors
/// `K0203` for an input that is not 4-D or smaller than the window; `K0003` for a zero
/// kernel/stride or padding above half the kernel.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    pool(Kind::Max, x, kernel, stride, padding)
}

/// `F.avg_pool2d(x, kernel, stride, padding)` (`count_include_pad=True`, `ceil_mode=False`)
/// with PyTorch's gradient.
///
/// # Errors
/// As [`max_pool2d`].
pub fn avg_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    pool(Kind::Avg, x, kernel, stride, padding)
}

// ------------------------------------------------------------------------------ activations

/// Which formula [`gelu`] uses: PyTorch's `approximate='none'` (the exact `erf` form) or
/// `approximate='tanh'`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GeluApproximate {
    /// `x · Φ(x)` with the exact normal CDF (`erf`), PyTorch's default.
    #[default]
    None,
    /// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
    Tanh,
}

impl GeluApproximate {
    /// Parses PyTorch's spelling, `"none"` or `"tanh"`.
    ///
    /// # Errors
    /// `K0003` for any other string (PyTorch: approximate argument must be either none or
    /// tanh).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(GeluApproximate::None),
            "tanh" => Ok(GeluApproximate::Tanh),
            other => Err(Error::invalid(
                "GELU approximate",
                format!("'{other}'"),
                "'none' or 'tanh' (PyTorch: approximate argument must be either none or tanh)",
            )),
        }
    }

    /// PyTorch's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GeluApproximate::None => "none",
            GeluApproximate::Tanh => "tanh",
        }
    }
}

fn pointwise(
    name: &'static str,
    f: impl Fn(f64) -> f64 + Send + Sync + 'static,
    df: impl Fn(f64, f64) -> f64 + Send + Sync + 'static,
) -> Pointwise {
    Pointwise {
        name,
        f: Box::new(f),
        df: Box::new(df),
    }
}

fn sigmoid_f64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `F.gelu(x, approximate)`: `x · Φ(x)` (exact, with `erf`) or its tanh approximation, with
/// PyTorch's gradient (computed per element in f64 on the CPU).
///
/// # Errors
/// Backend errors only.
pub fn gelu(x: &Tensor, approximate: GeluApproximate) -> Result<Tensor> {
    use candle_core::cpu::erf::erf_f64;
    use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};
    match approximate {
        GeluApproximate::None => {
            let alpha = FRAC_2_SQRT_PI * FRAC_1_SQRT_2 * 0.5;
            let op = pointwise(
                "gelu",
                |x| 0.5 * x * (1.0 + erf_f64(x * FRAC_1_SQRT_2)),
                move |x, _| {
                    let cdf = 0.5 * (1.0 + erf_f64(x * FRAC_1_SQRT_2));
                    cdf + x * alpha * (-0.5 * x * x).exp()
                },
            );
            apply(x, op, |x| x.gelu_erf())
        }
        GeluApproximate::Tanh => {
            const KAPPA: f64 = 0.044715;
            let beta = std::f64::consts::SQRT_2 * FRAC_2_SQRT_PI * 0.5;
            let op = pointwise(
                "gelu_tanh",
                move |x| 0.5 * x * (1.0 + (beta * (x + KAPPA * x * x * x)).tanh()),
                move |x, _| {
                    let t = (beta * (x + KAPPA * x * x * x)).tanh();
                    let inner = beta * (1.0 + 3.0 * KAPPA * x * x);
                    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * inner
                },
            );
            apply(x, op, |x| x.gelu())
        }
    }
}

/// `F.silu(x)` = `x · σ(x)`.
///
/// # Errors
/// Backend errors only.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    let op = pointwise(
        "silu",
        |x| x * sigmoid_f64(x),
        |x, _| {
            let s = sigmoid_f64(x);
            s * (1.0 + x * (1.0 - s))
        },
    );
    apply(x, op, |x| x.silu())
}

/// `torch.sigmoid(x)` = `1 / (1 + e^(−x))`, saturating cleanly at both ends.
///
/// # Errors
/// Backend errors only.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    let op = pointwise("sigmoid", sigmoid_f64, |_, y| y * (1.0 - y));
    apply(x, op, |x| (x.neg()?.exp()? + 1.0)?.recip())
}

/// `torch.tanh(x)`.
///
/// # Errors
/// Backend errors only.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    let op = pointwise("tanh", f64::tanh, |_, y| 1.0 - y * y);
    apply(x, op, |x| x.tanh())
}

/// `F.leaky_relu(x, negative_slope)`: `x` where `x > 0`, else `negative_slope · x` (the
/// gradient at 0 is `negative_slope`, as in PyTorch).
///
/// # Errors
/// Backend errors only.
pub fn leaky_relu(x: &Tensor, negative_slope: f64) -> Result<Tensor> {
    let s = negative_slope;
    let op = pointwise(
        "leaky_relu",
        move |x| if x > 0.0 { x } else { x * s },
        move |x, _| if x > 0.0 { 1.0 } else { s },
    );
    apply(x, op, |x| x.gt(0.0)?.where_cond(x, &(x * s)?))
}

/// `F.elu(x, alpha)`: `x` where `x > 0`, else `alpha · (e^x − 1)`.
///
/// # Errors
/// Backend errors only.
pub fn elu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    let op = pointwise(
        "elu",
        move |x| if x > 0.0 { x } else { alpha * x.exp_m1() },
        move |x, _| if x > 0.0 { 1.0 } else { alpha * x.exp() },
    );
    apply(x, op, |x| x.elu(alpha))
}

/// `F.hardsigmoid(x)` = `relu6(x + 3) / 6`.
///
/// # Errors
/// Backend errors only.
pub fn hardsigmoid(x: &Tensor) -> Result<Tensor> {
    let op = pointwise(
        "hardsigmoid",
        |x| (x + 3.0).clamp(0.0, 6.0) / 6.0,
        // PyTorch's backward kernel uses the float constant `1.0f / 6.0f` for every dtype,
        // so a float64 gradient is 0.1666666716337204, not 1/6.
        |x, _| {
            if x > -3.0 && x < 3.0 {
                f64::from(1.0f32 / 6.0)
            } else {
                0.0
            }
        },
    );
    apply(x, op, |x| (x + 3.0)?.clamp(0.0, 6.0)? / 6.0)
}

/// `F.hardswish(x)` = `x · relu6(x + 3) / 6`.
///
/// # Errors
/// Backend errors only.
pub fn hardswish(x: &Tensor) -> Result<Tensor> {
    let op = pointwise(
        "hardswish",
        |x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        |x, _| {
            // PyTorch's kernel: 0 up to and including -3, 1 from 3 on.
            if x <= -3.0 {
                0.0
            } else if x < 3.0 {
                x / 3.0 + 0.5
            } else {
                1.0
            }
        },
    );
    apply(x, op, |x| x * ((x + 3.0)?.clamp(0.0, 6.0)? / 6.0)?)
}

/// `F.relu6(x)` = `min(max(x, 0), 6)` (PyTorch's `hardtanh(0, 6)`: no gradient at 0 and 6).
///
/// # Errors
/// Backend errors only.
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    let op = pointwise(
        "relu6",
        |x| x.clamp(0.0, 6.0),
        |x, _| if x > 0.0 && x < 6.0 { 1.0 } else { 0.0 },
    );
    apply(x, op, |x| x.clamp(0.0, 6.0))
}

/// `F.softplus(x, beta, threshold)` = `log(1 + e^(beta·x)) / beta`, and `x` itself where
/// `beta · x > threshold`.
///
/// # Errors
/// `K0003` for `beta == 0`.
pub fn softplus(x: &Tensor, beta: f64, threshold: f64) -> Result<Tensor> {
    if beta == 0.0 {
        return Err(Error::invalid("softplus beta", beta, "a non-zero number"));
    }
    let op = pointwise(
        "softplus",
        move |x| {
            if x * beta > threshold {
                x
            } else {
                (x * beta).exp().ln_1p() / beta
            }
        },
        move |x, _| {
            if x * beta > threshold {
                1.0
            } else {
                let z = (x * beta).exp();
                z / (z + 1.0)
            }
        },
    );
    apply(x, op, |x| {
        let soft = ((x * beta)?.exp()? + 1.0)?.log()? / beta;
        (x * beta)?.gt(threshold)?.where_cond(x, &soft?)
    })
}

/// `F.mish(x)` = `x · tanh(softplus(x))`.
///
/// # Errors
/// Backend errors only.
pub fn mish(x: &Tensor) -> Result<Tensor> {
    let op = pointwise(
        "mish",
        |x| x * x.exp().ln_1p().tanh(),
        |x, _| {
            let t = x.exp().ln_1p().tanh();
            t + x * sigmoid_f64(x) * (1.0 - t * t)
        },
    );
    apply(x, op, |x| x * (x.exp()? + 1.0)?.log()?.tanh()?)
}

/// Resolves a PyTorch dim (negative counts from the end) for a tensor of `rank`.
fn resolve_dim(op: &str, dim: isize, rank: usize) -> Result<usize> {
    let r = rank.max(1) as isize;
    let d = if dim < 0 { dim + r } else { dim };
    if !(0..r).contains(&d) {
        return Err(Error::invalid(
            format!("{op} dim"),
            dim,
            format!(
                "Dimension out of range (expected to be in range of [{}, {}], but got {dim})",
                -r,
                r - 1
            ),
        ));
    }
    Ok(d as usize)
}

/// `log_softmax` along `dim`, shifted by the (detached) maximum so large logits do not
/// overflow; differentiable through candle's ops.
fn log_softmax_impl(op: &str, x: &Tensor, dim: isize) -> Result<Tensor> {
    if x.rank() == 0 {
        let y = log_softmax_impl(op, &x.reshape(1).ctx(op)?, dim)?;
        return y.reshape(()).ctx(op);
    }
    let d = resolve_dim(op, dim, x.rank())?;
    let max = x.max_keepdim(d).ctx(op)?.detach();
    let shifted = x.broadcast_sub(&max).ctx(op)?;
    let lse = shifted
        .exp()
        .and_then(|e| e.sum_keepdim(d))
        .and_then(|s| s.log())
        .ctx(op)?;
    shifted.broadcast_sub(&lse).ctx(op)
}

/// `F.log_softmax(x, dim)`: `x − log Σ e^x` along `dim` (negative dims count from the end),
/// numerically stable.
///
/// # Errors
/// `K0003` when `dim` is out of range (PyTorch's wording).
pub fn log_softmax(x: &Tensor, dim: isize) -> Result<Tensor> {
    log_softmax_impl("log_softmax", x, dim)
}

/// `F.softmax(x, dim)`: `e^x / Σ e^x` along `dim`, numerically stable.
///
/// # Errors
/// `K0003` when `dim` is out of range.
pub fn softmax(x: &Tensor, dim: isize) -> Result<Tensor> {
    if x.rank() == 0 {
        return softmax(&x.reshape(1).ctx("softmax")?, dim)?
            .reshape(())
            .ctx("softmax");
    }
    let d = resolve_dim("softmax", dim, x.rank())?;
    let max = x.max_keepdim(d).ctx("softmax")?.detach();
    let e = x.broadcast_sub(&max).and_then(|s| s.exp()).ctx("softmax")?;
    let sum = e.sum_keepdim(d).ctx("softmax")?;
    e.broadcast_div(&sum).ctx("softmax")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn grad_of(
        x: &[f32],
        dims: (usize, usize, usize, usize),
        f: impl Fn(&Tensor) -> Tensor,
    ) -> Vec<f32> {
        let v = Var::from_tensor(&Tensor::from_slice(x, dims, &Device::Cpu).unwrap()).unwrap();
        let y = f(v.as_tensor()).sum_all().unwrap();
        let g = y.backward().unwrap();
        g.get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// Regression: candle 0.11.1 returned 0.25 here (gradient divided by the window area).
    #[test]
    fn max_pool_backward_is_not_scaled_by_window_area() {
        let g = grad_of(&[1., 2., 3., 4.], (1, 1, 2, 2), |x| {
            max_pool2d(x, 2, 2, 0).unwrap()
        });
        assert_eq!(g, vec![0., 0., 0., 1.]);
    }

    /// Regression: candle gave every tied maximum a share; PyTorch gives the first one all.
    #[test]
    fn max_pool_tie_sends_gradient_to_the_first_maximum() {
        let g = grad_of(&[5., 5., 1., 5.], (1, 1, 2, 2), |x| {
            max_pool2d(x, 2, 2, 0).unwrap()
        });
        assert_eq!(g, vec![1., 0., 0., 0.]);
    }

    /// Regression: candle has no backward for overlapping windows (ResNet's maxpool).
    #[test]
    fn overlapping_padded_windows_have_a_backward() {
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let g = grad_of(&x, (1, 1, 4, 4), |x| max_pool2d(x, 3, 2, 1).unwrap());
        // Outputs are the maxima at (1,1), (1,3), (3,1), (3,3) → indices 5, 7, 13, 15.
        let mut want = vec![0f32; 16];
        for i in [5, 7, 13, 15] {
            want[i] = 1.0;
        }
        assert_eq!(g, want);
        let y = avg_pool2d(
            &Tensor::from_slice(&x, (1, 1, 4, 4), &Device::Cpu).unwrap(),
            3,
            2,
            1,
        )
        .unwrap();
        // Top-left window covers x[0,1,4,5] = 0+1+4+5 = 10, divided by 9 (padding counts).
        let first: f32 = y.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
        assert!((first - 10.0 / 9.0).abs() < 1e-6);
        let g = grad_of(&x, (1, 1, 4, 4), |x| avg_pool2d(x, 3, 2, 1).unwrap());
        assert!((g[0] - 1.0 / 9.0).abs() < 1e-7 && (g[5] - 4.0 / 9.0).abs() < 1e-7);
    }

    #[test]
    fn bad_geometry_is_an_error() {
        let x = Tensor::zeros((1, 1, 2, 2), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(max_pool2d(&x, 3, 1, 0).unwrap_err().code(), "K0203");
        assert_eq!(max_pool2d(&x, 2, 0, 0).unwrap_err().code(), "K0003");
        let x = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(avg_pool2d(&x, 2, 2, 0).unwrap_err().code(), "K0203");
    }
}
