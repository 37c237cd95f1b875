//! Pooling layers: `MaxPool2d`, `AvgPool2d` (with padding, `count_include_pad=True` as in
//! PyTorch's default) and `AdaptiveAvgPool2d`.

use super::impl_as_any;
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec, functional};
use candle_core::{D, Tensor};

fn dims4(module: &str, x: &Tensor) -> Result<(usize, usize, usize, usize)> {
    x.dims4().map_err(|_| Error::InputRank {
        module: module.to_string(),
        expected: "4-D [N, C, H, W]".into(),
        shape: shape_str(x.dims()),
    })
}

/// Pads H and W of a 4-D tensor with `value` on each side.
pub(crate) fn pad_hw(x: &Tensor, pad: usize, value: f64) -> Result<Tensor> {
    if pad == 0 {
        return Ok(x.clone());
    }
    let (n, c, h, w) = x.dims4().ctx("pad")?;
    let side = Tensor::full(value, (n, c, h, pad), x.device())
        .and_then(|t| t.to_dtype(x.dtype()))
        .ctx("pad")?;
    let x = Tensor::cat(&[&side, x, &side], 3).ctx("pad")?;
    let top = Tensor::full(value, (n, c, pad, w + 2 * pad), x.device())
        .and_then(|t| t.to_dtype(x.dtype()))
        .ctx("pad")?;
    Tensor::cat(&[&top, &x, &top], 2).ctx("pad")
}

fn check_window(module: &str, h: usize, w: usize, k: usize, pad: usize) -> Result<()> {
    if h + 2 * pad < k || w + 2 * pad < k {
        return Err(Error::InputRank {
            module: module.to_string(),
            expected: format!("an image of at least {k}x{k} (with padding {pad})"),
            shape: format!("[.., .., {h}, {w}]"),
        });
    }
    Ok(())
}

/// Max pooling with a square window (PyTorch's `nn.MaxPool2d`, dilation 1; `ceil_mode`
/// through [`MaxPool2d::ceil_mode`]).
pub struct MaxPool2d {
    kernel: usize,
    stride: usize,
    padding: usize,
    ceil_mode: bool,
}

/// PyTorch's pooling output size with `ceil_mode=True`: `⌈(in + 2p − k)/s⌉ + 1`, less one when
/// the last window would start beyond the input and its left padding.
pub(crate) fn ceil_out(size: usize, k: usize, s: usize, p: usize) -> usize {
    let Some(span) = (size + 2 * p).checked_sub(k) else {
        return 0; // the window does not fit: the floor-mode op reports the shape error
    };
    let mut out = span.div_ceil(s) + 1;
    if (out - 1) * s >= size + p {
        out -= 1;
    }
    out
}

impl MaxPool2d {
    /// `MaxPool2d(kernel_size, stride=kernel_size, padding=0)`.
    pub fn new(kernel: usize) -> Self {
        Self::with(kernel, kernel, 0)
    }

    /// `MaxPool2d(kernel_size, stride, padding)`.
    pub fn with(kernel: usize, stride: usize, padding: usize) -> Self {
        MaxPool2d {
            kernel: kernel.max(1),
            stride: stride.max(1),
            padding,
            ceil_mode: false,
        }
    }

    /// PyTorch's `ceil_mode`: with `true` the output size rounds up (the last window may run
    /// past the input; it never starts beyond it and its left padding).
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }
}

impl Module for MaxPool2d {
    fn type_name(&self) -> &'static str {
        "MaxPool2d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = dims4("MaxPool2d", x)?;
        check_window("MaxPool2d", h, w, self.kernel, self.padding)?;
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        if !self.ceil_mode {
            return functional::max_pool2d(x, k, s, p);
        }
        // Rows/columns of −∞ at the bottom/right turn the floor-mode size into the ceil one.
        let mut xp = x.clone();
        for (dim, size) in [(2, h), (3, w)] {
            let extra =
                (ceil_out(size, k, s, p).saturating_sub(1) * s + k).saturating_sub(size + 2 * p);
            if extra > 0 {
                let mut d = xp.dims().to_vec();
                d[dim] = extra;
                let fill = Tensor::full(f64::NEG_INFINITY, d, x.device())
                    .and_then(|t| t.to_dtype(x.dtype()))
                    .and_then(|t| Tensor::cat(&[&xp, &t], dim))
                    .ctx("MaxPool2d ceil_mode")?;
                xp = fill;
            }
        }
        functional::max_pool2d(&xp, k, s, p)
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("MaxPool2d")
            .with("kernel_size", self.kernel)
            .with("stride", self.stride)
            .with("padding", self.padding)
            .with("ceil_mode", self.ceil_mode)
    }

    fn extra_repr(&self) -> String {
        format!(
            "kernel_size={}, stride={}, padding={}, dilation=1, ceil_mode={}",
            self.kernel,
            self.stride,
            self.padding,
            super::py_bool(self.ceil_mode)
        )
    }

    impl_as_any!();
}

/// Average pooling with a square window; padding counts as zeros (PyTorch's default).
pub struct AvgPool2d {
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl AvgPool2d {
    /// `AvgPool2d(kernel_size, stride=kernel_size, padding=0)`.
    pub fn new(kernel: usize) -> Self {
        Self::with(kernel, kernel, 0)
    }

    /// `AvgPool2d(kernel_size, stride, padding)`.
    pub fn with(kernel: usize, stride: usize, padding: usize) -> Self {
        AvgPool2d {
            kernel: kernel.max(1),
            stride: stride.max(1),
            padding,
        }
    }
}

impl Module for AvgPool2d {
    fn type_name(&self) -> &'static str {
        "AvgPool2d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = dims4("AvgPool2d", x)?;
        check_window("AvgPool2d", h, w, self.kernel, self.padding)?;
        functional::avg_pool2d(x, self.kernel, self.stride, self.padding)
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("AvgPool2d")
            .with("kernel_size", self.kernel)
            .with("stride", self.stride)
            .with("padding", self.padding)
    }

    fn extra_repr(&self) -> String {
        format!(
            "kernel_size={}, stride={}, padding={}",
            self.kernel, self.stride, self.padding
        )
    }

    impl_as_any!();
}

/// Average pooling to a fixed output size, with PyTorch's window boundaries
/// (`start = ⌊i·H/out⌋`, `end = ⌈(i+1)·H/out⌉`).
pub struct AdaptiveAvgPool2d {
    out: (usize, usize),
}

impl AdaptiveAvgPool2d {
    /// `AdaptiveAvgPool2d((out_h, out_w))`.
    pub fn new(out_h: usize, out_w: usize) -> Self {
        AdaptiveAvgPool2d {
            out: (out_h.max(1), out_w.max(1)),
        }
    }
}

pub(crate) fn adaptive_windows(size: usize, out: usize) -> Vec<(usize, usize)> {
    (0..out)
        .map(|i| {
            let start = (i * size) / out;
            let end = ((i + 1) * size).div_ceil(out);
            (start, end - start)
        })
        .collect()
}

impl Module for AdaptiveAvgPool2d {
    fn type_name(&self) -> &'static str {
        "AdaptiveAvgPool2d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = dims4("AdaptiveAvgPool2d", x)?;
        if self.out == (1, 1) {
            return x
                .mean_keepdim(D::Minus1)
                .and_then(|t| t.mean_keepdim(D::Minus2))
                .ctx("AdaptiveAvgPool2d");
        }
        let mut rows = Vec::with_capacity(self.out.0);
        for (hs, hl) in adaptive_windows(h, self.out.0) {
            let mut cols = Vec::with_capacity(self.out.1);
            let band = x.narrow(2, hs, hl).ctx("AdaptiveAvgPool2d")?;
            for (ws, wl) in adaptive_windows(w, self.out.1) {
                let cell = band
                    .narrow(3, ws, wl)
                    .and_then(|c| c.mean_keepdim(3))
                    .and_then(|c| c.mean_keepdim(2))
                    .ctx("AdaptiveAvgPool2d")?;
                cols.push(cell);
            }
            rows.push(Tensor::cat(&cols, 3).ctx("AdaptiveAvgPool2d")?);
        }
        Tensor::cat(&rows, 2).ctx("AdaptiveAvgPool2d")
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("AdaptiveAvgPool2d").with("output_size", vec![self.out.0, self.out.1])
    }

    fn extra_repr(&self) -> String {
        format!("output_size=({}, {})", self.out.0, self.out.1)
    }

    impl_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's ceil-mode sizes (checked with `F.max_pool2d(..., ceil_mode=True)`): 111 → 55
    /// and 31 → 15 (k=3, s=2) round exactly; 30 → 15 rounds up.
    #[test]
    fn ceil_mode_sizes_and_values_match_pytorch() {
        for (size, want) in [(111, 55), (31, 15), (30, 15)] {
            assert_eq!(ceil_out(size, 3, 2, 0), want, "{size}");
        }
        assert_eq!(ceil_out(6, 2, 2, 0), 3);
        // (5 + 2 - 2) / 2 rounds up to 3 windows, but the last would start in the padding.
        assert_eq!(ceil_out(5, 2, 2, 1), 3);
        assert_eq!(ceil_out(1, 3, 2, 0), 0, "a window larger than the input");
        let x = Tensor::arange(0f32, 36.0, &candle_core::Device::Cpu)
            .unwrap()
            .reshape((1, 1, 6, 6))
            .unwrap();
        let x = x.narrow(2, 0, 5).unwrap().narrow(3, 0, 5).unwrap();
        let y = MaxPool2d::with(2, 2, 0)
            .ceil_mode(true)
            .forward(&x)
            .unwrap();
        let v: Vec<Vec<f32>> = y.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(v, [[7., 9., 10.], [19., 21., 22.], [25., 27., 28.]]);
    }

    #[test]
    fn ceil_mode_sizes_match_pytorch() {
        assert_eq!(ceil_out(8, 3, 2, 0), 4);
        assert_eq!(ceil_out(7, 3, 2, 0), 3);
        assert_eq!(ceil_out(5, 2, 2, 1), 3);
        assert_eq!(ceil_out(55, 3, 2, 0), 27);
    }

    #[test]
    fn adaptive_windows_match_pytorch() {
        assert_eq!(adaptive_windows(5, 3), vec![(0, 2), (1, 3), (3, 2)]);
        assert_eq!(adaptive_windows(4, 2), vec![(0, 2), (2, 2)]);
    }
}
