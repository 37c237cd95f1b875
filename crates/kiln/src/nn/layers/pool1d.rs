//! 1-D pooling over `[N, C, L]` (or unbatched `[C, L]`): `MaxPool1d` (with dilation),
//! `AvgPool1d` (`count_include_pad=True`, PyTorch's default) and `AdaptiveAvgPool1d`, plus
//! `AdaptiveMaxPool2d` over `[N, C, H, W]`. `ceil_mode=True` and `return_indices=True` are
//! not offered.
//!
//! The windows are gathered with one `index_select` (`[N, C, out·k]`) and reduced, so the
//! backward is exact: a max window's gradient goes to its first maximum (PyTorch's choice
//! among ties, e.g. the zeros after a ReLU; `argmax` + `gather`), an average window's is
//! spread evenly, and overlapping windows add up.

use super::conv1d::batched_3d;
use super::impl_as_any;
use super::pool::adaptive_windows;
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec};
use candle_core::{D, Tensor};

/// The first maximum along `dim` (dropping it), with the gradient to that element only.
fn first_max(t: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
    let idx = t.argmax_keepdim(dim)?;
    t.contiguous()?.gather(&idx, dim)?.squeeze(dim)
}

/// Pads the last dimension with `value` on both sides.
fn pad_last(x: &Tensor, pad: usize, value: f64) -> candle_core::Result<Tensor> {
    if pad == 0 {
        return Ok(x.clone());
    }
    let mut d = x.dims().to_vec();
    let last = d.len() - 1;
    d[last] = pad;
    let side = Tensor::full(value, d, x.device())?.to_dtype(x.dtype())?;
    Tensor::cat(&[&side, x, &side], last)
}

/// The windows of a 1-D pooling as `[N, C, out, k]`.
fn windows(
    me: &str,
    x: &Tensor,
    (k, s, p, d): (usize, usize, usize, usize),
    fill: f64,
) -> Result<Tensor> {
    if !x.dtype().is_float() {
        return Err(Error::invalid(
            format!("{me} input dtype"),
            format!("{:?}", x.dtype()),
            "a floating-point tensor",
        ));
    }
    let (n, c, l) = x.dims3().ctx(me)?;
    let span = d * (k - 1) + 1;
    if l + 2 * p < span {
        return Err(Error::InputRank {
            module: me.to_string(),
            expected: format!("a length of at least {span} (with padding {p})"),
            shape: shape_str(x.dims()),
        });
    }
    let out = (l + 2 * p - span) / s + 1;
    let idx: Vec<u32> = (0..out)
        .flat_map(|o| (0..k).map(move |j| (o * s + j * d) as u32))
        .collect();
    let idx = Tensor::from_vec(idx, out * k, x.device()).ctx(me)?;
    pad_last(x, p, fill)
        .and_then(|x| x.index_select(&idx, 2))
        .and_then(|w| w.reshape((n, c, out, k)))
        .ctx(me)
}

fn check_pool_args(layer: &str, k: usize, s: usize, p: usize, d: usize) -> Result<()> {
    if k == 0 || s == 0 || d == 0 || 2 * p > k {
        return Err(Error::invalid(
            format!("{layer} kernel_size/stride/padding/dilation"),
            format!("{k}/{s}/{p}/{d}"),
            "kernel_size, stride, dilation >= 1 and padding <= kernel_size/2 (PyTorch: pad should be at most half of effective kernel size)",
        ));
    }
    Ok(())
}

/// Runs `f` on the `[N, C, L]` form of `x`, restoring an unbatched input's rank.
fn on_3d(me: &str, x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let (x3, unbatched) = batched_3d(me, x)?;
    let y = f(&x3)?;
    if unbatched {
        y.squeeze(0).ctx(me)
    } else {
        Ok(y)
    }
}

/// PyTorch's `nn.MaxPool1d(kernel_size, stride=kernel_size, padding=0, dilation=1)`;
/// padding is `−∞` (never selected).
///
/// ```
/// use kiln::nn::{MaxPool1d, Module};
/// let p = MaxPool1d::with(3, 2, 1, 1)?;
/// assert_eq!(p.repr(), "MaxPool1d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)");
/// # Ok::<(), kiln::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool1d {
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
}

impl MaxPool1d {
    /// `MaxPool1d(kernel_size)` (stride = kernel_size).
    ///
    /// # Errors
    /// `K0003` for a zero kernel.
    pub fn new(kernel_size: usize) -> Result<Self> {
        Self::with(kernel_size, kernel_size, 0, 1)
    }

    /// `MaxPool1d(kernel_size, stride, padding, dilation)`.
    ///
    /// # Errors
    /// `K0003` for a zero size or padding above half the kernel.
    pub fn with(
        kernel_size: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
    ) -> Result<Self> {
        check_pool_args("MaxPool1d", kernel_size, stride, padding, dilation)?;
        Ok(MaxPool1d {
            kernel: kernel_size,
            stride,
            padding,
            dilation,
        })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing or mistyped entry; as [`MaxPool1d::with`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        let k = spec.usize("kernel_size")?;
        Self::with(
            k,
            spec.usize_or("stride", k)?,
            spec.usize_or("padding", 0)?,
            spec.usize_or("dilation", 1)?,
        )
    }
}

impl Module for MaxPool1d {
    fn type_name(&self) -> &'static str {
        "MaxPool1d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let me = self.repr();
        on_3d(&me, x, |x| {
            let g = (self.kernel, self.stride, self.padding, self.dilation);
            let w = windows(&me, x, g, f64::NEG_INFINITY)?;
            first_max(&w, 3).ctx(&me)
        })
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("MaxPool1d")
            .with("kernel_size", self.kernel)
            .with("stride", self.stride)
            .with("padding", self.padding)
            .with("dilation", self.dilation)
    }

    fn extra_repr(&self) -> String {
        format!(
            "kernel_size={}, stride={}, padding={}, dilation={}, ceil_mode=False",
            self.kernel, self.stride, self.padding, self.dilation
        )
    }

    impl_as_any!();
}

/// PyTorch's `nn.AvgPool1d(kernel_size, stride=kernel_size, padding=0)`: zero padding that
/// counts in the average (`count_include_pad=True`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool1d {
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl AvgPool1d {
    /// `AvgPool1d(kernel_size)` (stride = kernel_size).
    ///
    /// # Errors
    /// `K0003` for a zero kernel.
    pub fn new(kernel_size: usize) -> Result<Self> {
        Self::with(kernel_size, kernel_size, 0)
    }

    /// `AvgPool1d(kernel_size, stride, padding)`.
    ///
    /// # Errors
    /// `K0003` for a zero size or padding above half the kernel.
    pub fn with(kernel_size: usize, stride: usize, padding: usize) -> Result<Self> {
        check_pool_args("AvgPool1d", kernel_size, stride, padding, 1)?;
        Ok(AvgPool1d {
            kernel: kernel_size,
            stride,
            padding,
        })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing or mistyped entry; as [`AvgPool1d::with`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        let k = spec.usize("kernel_size")?;
        Self::with(k, spec.usize_or("stride", k)?, spec.usize_or("padding", 0)?)
    }
}

impl Module for AvgPool1d {
    fn type_name(&self) -> &'static str {
        "AvgPool1d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let me = self.repr();
        on_3d(&me, x, |x| {
            let g = (self.kernel, self.stride, self.padding, 1);
            windows(&me, x, g, 0.0)?.mean(D::Minus1).ctx(&me)
        })
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("AvgPool1d")
            .with("kernel_size", self.kernel)
            .with("stride", self.stride)
            .with("padding", self.padding)
    }

    fn extra_repr(&self) -> String {
        format!(
            "kernel_size=({},), stride=({},), padding=({},)",
            self.kernel, self.stride, self.padding
        )
    }

    impl_as_any!();
}

/// PyTorch's `nn.AdaptiveAvgPool1d(output_size)`: windows `⌊i·L/out⌋ .. ⌈(i+1)·L/out⌉`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveAvgPool1d {
    out: usize,
}

impl AdaptiveAvgPool1d {
    /// `AdaptiveAvgPool1d(output_size)`.
    ///
    /// # Errors
    /// `K0003` for a zero size.
    pub fn new(output_size: usize) -> Result<Self> {
        if output_size == 0 {
            return Err(Error::invalid(
                "AdaptiveAvgPool1d output_size",
                0,
                "a positive size",
            ));
        }
        Ok(AdaptiveAvgPool1d { out: output_size })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing entry; as [`AdaptiveAvgPool1d::new`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        Self::new(spec.usize("output_size")?)
    }
}

impl Module for AdaptiveAvgPool1d {
    fn type_name(&self) -> &'static str {
        "AdaptiveAvgPool1d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let me = self.repr();
        on_3d(&me, x, |x| {
            let l = x.dim(2).ctx(&me)?;
            let mut cells = Vec::with_capacity(self.out);
            for (s, len) in adaptive_windows(l, self.out) {
                cells.push(
                    x.narrow(2, s, len)
                        .and_then(|c| c.mean_keepdim(2))
                        .ctx(&me)?,
                );
            }
            Tensor::cat(&cells, 2).ctx(&me)
        })
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("AdaptiveAvgPool1d").with("output_size", self.out)
    }

    fn extra_repr(&self) -> String {
        format!("output_size={}", self.out)
    }

    impl_as_any!();
}

/// PyTorch's `nn.AdaptiveMaxPool2d(output_size)` over `[N, C, H, W]` (or `[C, H, W]`), with
/// [`super::AdaptiveAvgPool2d`]'s windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveMaxPool2d {
    out: (usize, usize),
}

impl AdaptiveMaxPool2d {
    /// `AdaptiveMaxPool2d((out_h, out_w))`.
    ///
    /// # Errors
    /// `K0003` for a zero size.
    pub fn new(out_h: usize, out_w: usize) -> Result<Self> {
        if out_h == 0 || out_w == 0 {
            return Err(Error::invalid(
                "AdaptiveMaxPool2d output_size",
                format!("({out_h}, {out_w})"),
                "positive sizes",
            ));
        }
        Ok(AdaptiveMaxPool2d {
            out: (out_h, out_w),
        })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a bad `output_size`; as [`AdaptiveMaxPool2d::new`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        match spec.usize_list("output_size")?.as_slice() {
            [a] => Self::new(*a, *a),
            [a, b] => Self::new(*a, *b),
            _ => Err(Error::BadSpec {
                detail: "AdaptiveMaxPool2d: output_size needs 1 or 2 entries".into(),
            }),
        }
    }
}

impl Module for AdaptiveMaxPool2d {
    fn type_name(&self) -> &'static str {
        "AdaptiveMaxPool2d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let me = self.repr();
        let (x4, unbatched) = match x.rank() {
            4 => (x.clone(), false),
            3 => (x.unsqueeze(0).ctx(&me)?, true),
            _ => {
                return Err(Error::InputRank {
                    module: me,
                    expected: "4-D [N, C, H, W] (or unbatched 3-D [C, H, W])".into(),
                    shape: shape_str(x.dims()),
                });
            }
        };
        let (h, w) = (x4.dim(2).ctx(&me)?, x4.dim(3).ctx(&me)?);
        let mut rows = Vec::with_capacity(self.out.0);
        for (hs, hl) in adaptive_windows(h, self.out.0) {
            let band = x4.narrow(2, hs, hl).ctx(&me)?;
            let mut cols = Vec::with_capacity(self.out.1);
            for (ws, wl) in adaptive_windows(w, self.out.1) {
                let cell = band
                    .narrow(3, ws, wl)
                    .and_then(|c| c.flatten_from(2))
                    .and_then(|c| first_max(&c, 2))
                    .and_then(|c| c.unsqueeze(2)?.unsqueeze(3))
                    .ctx(&me)?;
                cols.push(cell);
            }
            rows.push(Tensor::cat(&cols, 3).ctx(&me)?);
        }
        let y = Tensor::cat(&rows, 2).ctx(&me)?;
        if unbatched {
            y.squeeze(0).ctx(&me)
        } else {
            Ok(y)
        }
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("AdaptiveMaxPool2d").with("output_size", vec![self.out.0, self.out.1])
    }

    fn extra_repr(&self) -> String {
        format!("output_size=({}, {})", self.out.0, self.out.1)
    }

    impl_as_any!();
}
