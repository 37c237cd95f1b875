//! SGD's whole per-parameter update in one pass over `f32`/`f64` CPU tensors.
//!
//! The op-by-op path (`neg`, `add_scaled`, `scale`, …, then `Param::set`) allocates and walks
//! the parameter's size six or seven times; on ResNet-18 (11 M parameters) that was a tenth
//! of a training step. This kernel reads the gradient and the old momentum buffer once,
//! writes the new buffer (a fresh tensor: a buffer handed out earlier, to a checkpoint say,
//! never changes) and updates the parameter in place (as `Param::set` does), doing *exactly*
//! the element operations of the op-by-op path in the same order — same roundings and fused
//! multiply-adds — so results are bit-identical to it.

use crate::error::{Context, Result};
use candle_core::{CpuStorage, DType, InplaceOp3, Layout, Tensor, WithDType};
use std::sync::OnceLock;

/// The hyper-parameters of one SGD step on one parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SgdStep {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub maximize: bool,
}

/// Element arithmetic in the parameter's dtype, with the scalars rounded to it as the
/// op-by-op path rounds them.
trait Elem: WithDType + std::ops::Neg<Output = Self> {
    fn fma(self, a: Self, b: Self) -> Self;
    fn scalar(v: f64) -> Self;
    fn owned(v: Vec<Self>) -> CpuStorage;
}

impl Elem for f32 {
    #[inline(always)]
    fn fma(self, a: f32, b: f32) -> f32 {
        self.mul_add(a, b)
    }
    fn scalar(v: f64) -> f32 {
        v as f32
    }
    fn owned(v: Vec<f32>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl Elem for f64 {
    #[inline(always)]
    fn fma(self, a: f64, b: f64) -> f64 {
        self.mul_add(a, b)
    }
    fn scalar(v: f64) -> f64 {
        v
    }
    fn owned(v: Vec<f64>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

/// `ops::add_scaled(a, b, alpha)` on one element: `a + b` when `alpha` is 1 (`one`), else
/// `fma(b, alpha, a)`.
#[inline(always)]
fn add_scaled<T: Elem>(a: T, b: T, alpha: T, one: bool) -> T {
    if one { a + b } else { b.fma(alpha, a) }
}

/// The per-step constants, rounded once.
#[derive(Clone, Copy)]
struct Consts<T> {
    neg: bool,
    wd: Option<(T, bool)>,
    m: T,
    damp: (T, bool),
    nesterov: (T, bool),
    lr: (T, bool),
}

impl<T: Elem> Consts<T> {
    fn new(h: &SgdStep) -> Self {
        let s = |v: f64| (T::scalar(v), v == 1.0);
        Consts {
            neg: h.maximize,
            wd: (h.weight_decay != 0.0).then(|| s(h.weight_decay)),
            m: T::scalar(h.momentum),
            damp: s(1.0 - h.dampening),
            nesterov: s(h.momentum),
            lr: s(-h.lr),
        }
    }

    /// The gradient after `maximize` and weight decay.
    #[inline(always)]
    fn d(&self, p: T, g: T) -> T {
        let d = if self.neg { -g } else { g };
        match self.wd {
            Some((wd, one)) => add_scaled(d, p, wd, one),
            None => d,
        }
    }

    /// The new momentum buffer from the old one (`scale` is candle's affine `v * m + 0`).
    #[inline(always)]
    fn buf(&self, b: T, d: T) -> T {
        add_scaled(b * self.m + T::zero(), d, self.damp.0, self.damp.1)
    }

    /// The new parameter from the step direction `d` and the buffer.
    #[inline(always)]
    fn param(&self, p: T, d: T, buf: Option<T>, nesterov: bool) -> T {
        let d = match buf {
            Some(b) if nesterov => add_scaled(d, b, self.nesterov.0, self.nesterov.1),
            Some(b) => b,
            None => d,
        };
        add_scaled(p, d, self.lr.0, self.lr.1)
    }
}

/// Updates `p` in place and returns the new momentum buffer (when there is momentum).
#[inline(always)]
fn update<T: Elem>(p: &mut [T], g: &[T], old: Option<&[T]>, h: &SgdStep) -> Option<Vec<T>> {
    let c = Consts::<T>::new(h);
    if h.momentum == 0.0 {
        for (pv, &gv) in p.iter_mut().zip(g) {
            *pv = c.param(*pv, c.d(*pv, gv), None, false);
        }
        return None;
    }
    let mut nb = vec![T::zero(); p.len()];
    match old {
        Some(old) => {
            for (((pv, &gv), &bv), nbv) in p.iter_mut().zip(g).zip(old).zip(nb.iter_mut()) {
                let d = c.d(*pv, gv);
                let b = c.buf(bv, d);
                *nbv = b;
                *pv = c.param(*pv, d, Some(b), h.nesterov);
            }
        }
        None => {
            for ((pv, &gv), nbv) in p.iter_mut().zip(g).zip(nb.iter_mut()) {
                let d = c.d(*pv, gv);
                *nbv = d;
                *pv = c.param(*pv, d, Some(d), h.nesterov);
            }
        }
    }
    Some(nb)
}

/// [`update`] compiled for AVX2 + FMA when the CPU has them (vectorized, `mul_add` one
/// instruction; the same IEEE results either way).
fn update_fast<T: Elem>(p: &mut [T], g: &[T], old: Option<&[T]>, h: &SgdStep) -> Option<Vec<T>> {
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The CPU must support AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run<T: Elem>(
            p: &mut [T],
            g: &[T],
            old: Option<&[T]>,
            h: &SgdStep,
        ) -> Option<Vec<T>> {
            update(p, g, old, h)
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: `run` needs AVX2 and FMA, both detected just above.
            return unsafe { run(p, g, old, h) };
        }
    }
    update(p, g, old, h)
}

/// The update as an in-place op on the parameter, reading the gradient and the old buffer
/// (the gradient again when there is none yet); the new buffer is left in `new_buf`.
struct SgdInPlace {
    h: SgdStep,
    has_old: bool,
    new_buf: OnceLock<CpuStorage>,
}

fn part<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("fused SGD: non-contiguous operand".into()))?;
    T::cpu_storage_as_slice(s)?
        .get(a..b)
        .ok_or_else(|| candle_core::Error::Msg("fused SGD: layout outside its storage".into()))
}

impl SgdInPlace {
    fn apply<T: Elem>(
        &self,
        p: &mut [T],
        pl: &Layout,
        g: &[T],
        old: &[T],
    ) -> candle_core::Result<()> {
        let (a, b) = pl
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("fused SGD: non-contiguous parameter".into()))?;
        let p = p
            .get_mut(a..b)
            .ok_or_else(|| candle_core::Error::Msg("fused SGD: bad parameter layout".into()))?;
        if g.len() != p.len() || (self.has_old && old.len() != p.len()) {
            candle_core::bail!("fused SGD: operand sizes differ");
        }
        let old = self.has_old.then_some(old);
        if let Some(nb) = update_fast(p, g, old, &self.h) {
            self.new_buf.get_or_init(|| T::owned(nb));
        }
        Ok(())
    }
}

impl InplaceOp3 for SgdInPlace {
    fn name(&self) -> &'static str {
        "kiln-sgd-step"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        pl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<()> {
        match p {
            CpuStorage::F32(p) => self.apply(p, pl, part(g, gl)?, part(b, bl)?),
            CpuStorage::F64(p) => self.apply(p, pl, part(g, gl)?, part(b, bl)?),
            _ => candle_core::bail!("fused SGD: f32 or f64 only"),
        }
    }
}

/// One SGD step on the trainable value `p` (a handle on the parameter's storage, updated in
/// place) with gradient `g` and momentum buffer `old` (None before the first step). Returns
/// `Ok(Some(new buffer))` (None inside without momentum), or `Ok(None)` when the tensors are
/// not same-shape contiguous `f32`/`f64` CPU tensors — then nothing was changed and the caller
/// uses the op-by-op path.
///
/// # Errors
/// Backend errors.
pub(crate) fn sgd_step(
    p: &Tensor,
    g: &Tensor,
    old: Option<&Tensor>,
    h: &SgdStep,
) -> Result<Option<Option<Tensor>>> {
    let fits = [Some(p), Some(g), old]
        .iter()
        .flatten()
        .all(|t| t.device().is_cpu() && t.dtype() == p.dtype() && t.dims() == p.dims());
    if !fits || !matches!(p.dtype(), DType::F32 | DType::F64) || !p.is_contiguous() {
        return Ok(None);
    }
    let g = g.contiguous().ctx("SGD step")?;
    let old = old.map(|b| b.contiguous()).transpose().ctx("SGD step")?;
    let op = SgdInPlace {
        h: *h,
        has_old: old.is_some(),
        new_buf: OnceLock::new(),
    };
    p.inplace_op3(&g, old.as_ref().unwrap_or(&g), &op)
        .ctx("SGD step")?;
    let buf = op.new_buf.into_inner().map(|s| {
        Tensor::from_storage(
            candle_core::Storage::Cpu(s),
            p.shape().clone(),
            candle_core::op::BackpropOp::none(),
            false,
        )
    });
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::ops::{add_scaled, scale};
    use candle_core::Device;

    /// The op-by-op path of `Sgd::step_param`.
    fn reference(
        p: &Tensor,
        g: &Tensor,
        buf: Option<&Tensor>,
        h: &SgdStep,
    ) -> (Tensor, Option<Tensor>) {
        let mut d = if h.maximize {
            g.neg().unwrap()
        } else {
            g.clone()
        };
        if h.weight_decay != 0.0 {
            d = add_scaled(&d, p, h.weight_decay).unwrap();
        }
        let mut new_buf = None;
        if h.momentum != 0.0 {
            let b = match buf {
                None => d.copy().unwrap(),
                Some(b) => {
                    add_scaled(&scale(b, h.momentum).unwrap(), &d, 1.0 - h.dampening).unwrap()
                }
            };
            d = if h.nesterov {
                add_scaled(&d, &b, h.momentum).unwrap()
            } else {
                b.clone()
            };
            new_buf = Some(b);
        }
        (add_scaled(p, &d, -h.lr).unwrap(), new_buf)
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        t.to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    #[test]
    fn bit_identical_to_the_op_by_op_path() {
        let v = |k: f32| -> Tensor {
            let data: Vec<f32> = (0..257)
                .map(|i| ((i as f32 * k).sin() * 3.0) / 7.0)
                .collect();
            Tensor::from_vec(data, 257, &Device::Cpu).unwrap()
        };
        let (p, g, b) = (v(0.37), v(1.3), v(2.9));
        for (lr, momentum, dampening, weight_decay, nesterov, maximize) in [
            (0.01, 0.9, 0.0, 0.0, false, false),
            (0.03, 0.9, 0.1, 5e-4, false, false),
            (0.1, 0.5, 0.0, 1e-2, true, true),
            (1e-3, 0.0, 0.0, 0.0, false, false),
            (-1.0, 1.0, 0.0, 1.0, true, false),
        ] {
            let h = SgdStep {
                lr,
                momentum,
                dampening,
                weight_decay,
                nesterov,
                maximize,
            };
            for buf in [None, Some(&b)] {
                let np = p.copy().unwrap();
                let nb = sgd_step(&np, &g, buf, &h).unwrap().unwrap();
                let (rp, rb) = reference(&p, &g, buf, &h);
                assert_eq!(bits(&np), bits(&rp), "{h:?}");
                assert_eq!(nb.map(|t| bits(&t)), rb.map(|t| bits(&t)), "{h:?}");
            }
        }
        let half = p.to_dtype(DType::BF16).unwrap();
        let h = SgdStep {
            lr: 0.1,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        };
        assert!(sgd_step(&half, &half, None, &h).unwrap().is_none());
        let t = Tensor::zeros((2, 3), DType::F32, &Device::Cpu)
            .unwrap()
            .t()
            .unwrap();
        assert!(sgd_step(&t, &t, None, &h).unwrap().is_none());
    }
}
