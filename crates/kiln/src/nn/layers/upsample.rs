//! `Upsample` (PyTorch's `nn.Upsample` / `F.interpolate`): `mode='nearest'` over `[N, C, L]`
//! or `[N, C, H, W]`, `mode='bilinear'` over `[N, C, H, W]` with `align_corners` true or
//! false, to a `size` or by a `scale_factor`.
//!
//! The source indices and weights are PyTorch's CPU kernels' (computed in `f32`): nearest
//! takes `min(⌊dst·scale⌋, in−1)`, bilinear samples `dst·(in−1)/(out−1)` with
//! `align_corners=True`, else `max((dst+½)·scale − ½, 0)`, where `scale` is `1/scale_factor`
//! when a scale factor was given and `in/out` otherwise. The output is gathered with
//! `index_select` along each spatial axis (bilinear: two gathers blended per axis), so the
//! backward is exact.

use super::{impl_as_any, py_float};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec};
use candle_core::Tensor;

/// How [`Upsample`] computes the new values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsampleMode {
    /// `mode='nearest'`, PyTorch's default.
    Nearest,
    /// `mode='bilinear'` (4-D inputs).
    Bilinear,
}

impl UpsampleMode {
    /// PyTorch's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UpsampleMode::Nearest => "nearest",
            UpsampleMode::Bilinear => "bilinear",
        }
    }

    /// From PyTorch's spelling.
    ///
    /// # Errors
    /// `K0003` for a mode kiln does not implement.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "nearest" => Ok(UpsampleMode::Nearest),
            "bilinear" => Ok(UpsampleMode::Bilinear),
            other => Err(Error::invalid(
                "Upsample mode",
                format!("'{other}'"),
                "'nearest' or 'bilinear'",
            )),
        }
    }
}

/// The target of an [`Upsample`].
#[derive(Clone, Debug, PartialEq)]
pub enum UpsampleTarget {
    /// `size=(h, w)` (one entry for 3-D inputs).
    Size(Vec<usize>),
    /// `scale_factor=s` for every spatial axis: the output size is `⌊in·s⌋`.
    ScaleFactor(f64),
}

/// PyTorch's `nn.Upsample(size=None, scale_factor=None, mode='nearest', align_corners=None)`.
///
/// ```
/// use kiln::nn::{Module, Upsample, UpsampleMode};
/// let up = Upsample::scale(2.0, UpsampleMode::Nearest, None)?;
/// assert_eq!(up.repr(), "Upsample(scale_factor=2.0, mode='nearest')");
/// let x = candle_core::Tensor::zeros((1, 3, 4, 5), candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// assert_eq!(up.forward(&x)?.dims(), &[1, 3, 8, 10]);
/// let bl = Upsample::size(&[5, 7], UpsampleMode::Bilinear, Some(true))?;
/// assert_eq!(bl.forward(&x)?.dims(), &[1, 3, 5, 7]);
/// # Ok::<(), kiln::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Upsample {
    target: UpsampleTarget,
    mode: UpsampleMode,
    align_corners: Option<bool>,
}

impl Upsample {
    /// `Upsample(size=..., mode=..., align_corners=...)`.
    ///
    /// # Errors
    /// As [`Upsample::new`].
    pub fn size(size: &[usize], mode: UpsampleMode, align_corners: Option<bool>) -> Result<Self> {
        Self::new(UpsampleTarget::Size(size.to_vec()), mode, align_corners)
    }

    /// `Upsample(scale_factor=..., mode=..., align_corners=...)`.
    ///
    /// # Errors
    /// As [`Upsample::new`].
    pub fn scale(
        scale_factor: f64,
        mode: UpsampleMode,
        align_corners: Option<bool>,
    ) -> Result<Self> {
        Self::new(
            UpsampleTarget::ScaleFactor(scale_factor),
            mode,
            align_corners,
        )
    }

    /// The general constructor.
    ///
    /// # Errors
    /// `K0003` for an empty or zero size, a scale factor that is not positive and finite, or
    /// `align_corners` with `mode='nearest'` (PyTorch: "align_corners option can only be set
    /// with the interpolating modes").
    pub fn new(
        target: UpsampleTarget,
        mode: UpsampleMode,
        align_corners: Option<bool>,
    ) -> Result<Self> {
        match &target {
            UpsampleTarget::Size(s) if s.is_empty() || s.len() > 2 || s.contains(&0) => {
                return Err(Error::invalid(
                    "Upsample size",
                    shape_str(s),
                    "one or two positive sizes",
                ));
            }
            UpsampleTarget::ScaleFactor(f) if !(f.is_finite() && *f > 0.0) => {
                return Err(Error::invalid(
                    "Upsample scale_factor",
                    f,
                    "a positive finite number",
                ));
            }
            _ => {}
        }
        if mode == UpsampleMode::Nearest && align_corners.is_some() {
            return Err(Error::invalid(
                "Upsample align_corners",
                format!("{align_corners:?}"),
                "None with mode='nearest' (align_corners option can only be set with the interpolating modes)",
            ));
        }
        Ok(Upsample {
            target,
            mode,
            align_corners,
        })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a mistyped entry; as [`Upsample::new`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        let mode = match spec.config.get("mode").and_then(serde_json::Value::as_str) {
            Some(m) => UpsampleMode::parse(m)?,
            None => UpsampleMode::Nearest,
        };
        let align = spec
            .config
            .get("align_corners")
            .and_then(serde_json::Value::as_bool);
        let target = match spec.opt_f64("scale_factor")? {
            Some(f) => UpsampleTarget::ScaleFactor(f),
            None => UpsampleTarget::Size(spec.usize_list("size")?),
        };
        Self::new(target, mode, align)
    }

    fn out_sizes(&self, me: &str, spatial: &[usize]) -> Result<(Vec<usize>, Option<f64>)> {
        match &self.target {
            UpsampleTarget::Size(s) if s.len() == spatial.len() => Ok((s.clone(), None)),
            UpsampleTarget::Size(s) if s.len() == 1 => Ok((vec![s[0]; spatial.len()], None)),
            UpsampleTarget::Size(s) => Err(Error::InputRank {
                module: me.to_string(),
                expected: format!("{} spatial dimensions (size={})", s.len(), shape_str(s)),
                shape: shape_str(spatial),
            }),
            UpsampleTarget::ScaleFactor(f) => {
                let out: Vec<usize> = spatial
                    .iter()
                    .map(|&d| (d as f64 * f).floor() as usize)
                    .collect();
                if out.contains(&0) || out.iter().any(|&o| o > (1 << 24)) {
                    return Err(Error::invalid(
                        format!("{me} output size"),
                        shape_str(&out),
                        "positive sizes below 2^24 (scale the input less)",
                    ));
                }
                Ok((out, Some(*f)))
            }
        }
    }
}

/// `F.interpolate`'s nearest source index of every output position.
fn nearest_index(input: usize, output: usize, scale_factor: Option<f64>) -> Vec<u32> {
    if output == input {
        return (0..output as u32).collect();
    }
    if output == 2 * input {
        return (0..output as u32).map(|o| o >> 1).collect();
    }
    let scale = match scale_factor {
        Some(f) => (1.0 / f) as f32,
        None => input as f32 / output as f32,
    };
    (0..output)
        .map(|o| ((o as f32 * scale).floor() as usize).min(input - 1) as u32)
        .collect()
}

/// Bilinear source indices `(i0, i1)` and weights `(λ0, λ1)` along one axis.
fn linear_weights(
    input: usize,
    output: usize,
    align_corners: bool,
    scale_factor: Option<f64>,
) -> (Vec<u32>, Vec<u32>, Vec<f32>, Vec<f32>) {
    let scale = if align_corners {
        if output > 1 {
            (input as f32 - 1.0) / (output as f32 - 1.0)
        } else {
            0.0
        }
    } else {
        match scale_factor {
            Some(f) if f > 0.0 => (1.0 / f) as f32,
            _ => input as f32 / output as f32,
        }
    };
    let (mut i0, mut i1, mut l0, mut l1) = (vec![], vec![], vec![], vec![]);
    for o in 0..output {
        let src = if align_corners {
            scale * o as f32
        } else {
            (scale * (o as f32 + 0.5) - 0.5).max(0.0)
        };
        let a = (src as usize).min(input - 1);
        let b = if a < input - 1 { a + 1 } else { a };
        let lam = (src - a as f32).clamp(0.0, 1.0);
        i0.push(a as u32);
        i1.push(b as u32);
        l0.push(1.0 - lam);
        l1.push(lam);
    }
    (i0, i1, l0, l1)
}

impl Module for Upsample {
    fn type_name(&self) -> &'static str {
        "Upsample"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let me = self.repr();
        if !x.dtype().is_float() {
            return Err(Error::invalid(
                format!("{me} input dtype"),
                format!("{:?}", x.dtype()),
                "a floating-point tensor",
            ));
        }
        let rank = x.rank();
        let ok_rank = match self.mode {
            UpsampleMode::Nearest => rank == 3 || rank == 4,
            UpsampleMode::Bilinear => rank == 4,
        };
        if !ok_rank {
            return Err(Error::InputRank {
                module: me,
                expected: match self.mode {
                    UpsampleMode::Nearest => "3-D [N, C, L] or 4-D [N, C, H, W]".into(),
                    UpsampleMode::Bilinear => "4-D [N, C, H, W] (bilinear)".into(),
                },
                shape: shape_str(x.dims()),
            });
        }
        let spatial = &x.dims()[2..];
        let (out, sf) = self.out_sizes(&me, spatial)?;
        let mut full = x.dims()[..2].to_vec();
        full.extend(&out);
        super::check_alloc(&full, x.dtype())?;
        let dev = x.device();
        let idx = |v: Vec<u32>| {
            let n = v.len();
            Tensor::from_vec(v, n, dev).ctx(&me)
        };
        let mut y = x.clone();
        for (i, (&inp, &o)) in spatial.iter().zip(&out).enumerate() {
            let dim = 2 + i;
            y = match self.mode {
                UpsampleMode::Nearest => y
                    .index_select(&idx(nearest_index(inp, o, sf))?, dim)
                    .ctx(&me)?,
                UpsampleMode::Bilinear => {
                    let ac = self.align_corners.unwrap_or(false);
                    let (i0, i1, l0, l1) = linear_weights(inp, o, ac, sf);
                    let mut shape = vec![1usize; rank];
                    shape[dim] = o;
                    let w = |v: Vec<f32>| {
                        Tensor::from_vec(v, shape.as_slice(), dev)
                            .and_then(|t| t.to_dtype(x.dtype()))
                            .ctx(&me)
                    };
                    let (w0, w1) = (w(l0)?, w(l1)?);
                    let a = y.index_select(&idx(i0)?, dim).ctx(&me)?;
                    let b = y.index_select(&idx(i1)?, dim).ctx(&me)?;
                    a.broadcast_mul(&w0)
                        .and_then(|a| a.add(&b.broadcast_mul(&w1)?))
                        .ctx(&me)?
                }
            };
        }
        Ok(y)
    }

    fn spec(&self) -> ModuleSpec {
        let s = ModuleSpec::new("Upsample").with("mode", self.mode.as_str());
        let s = match &self.target {
            UpsampleTarget::Size(v) => s.with("size", v.clone()),
            UpsampleTarget::ScaleFactor(f) => s.with("scale_factor", *f),
        };
        match self.align_corners {
            Some(a) => s.with("align_corners", a),
            None => s,
        }
    }

    fn extra_repr(&self) -> String {
        let t = match &self.target {
            UpsampleTarget::ScaleFactor(f) => format!("scale_factor={}", py_float(*f)),
            UpsampleTarget::Size(v) if v.len() == 1 => format!("size={}", v[0]),
            UpsampleTarget::Size(v) => format!(
                "size=({})",
                v.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!("{t}, mode='{}'", self.mode.as_str())
    }

    impl_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_indices_match_pytorch() {
        assert_eq!(nearest_index(3, 7, None), vec![0, 0, 0, 1, 1, 2, 2]);
        assert_eq!(nearest_index(4, 8, Some(2.0)), vec![0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(nearest_index(5, 3, None), vec![0, 1, 3]);
    }

    #[test]
    fn align_corners_with_nearest_is_refused() {
        let e = Upsample::scale(2.0, UpsampleMode::Nearest, Some(true)).unwrap_err();
        assert_eq!(e.code(), "K0003");
    }
}
