//! `Resize`: bilinear interpolation with antialiasing, as torchvision's tensor path
//! (`F.interpolate(mode="bilinear", align_corners=False, antialias=True)`, PyTorch's
//! `_upsample_bilinear2d_aa`): separable, width first, then height; a dimension whose size
//! does not change is not touched.

use super::{Image, Transform};
use crate::error::{Error, Result};
use crate::rng::Generator;

/// The size a [`Resize`] asks for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Size {
    /// The shorter side becomes this; the other keeps the ratio (`int(size · long / short)`).
    Shorter(usize),
    /// Exactly `(height, width)`.
    Exact(usize, usize),
}

/// torchvision's `Resize(size)` (bilinear, `antialias=True`).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Resize {
    /// The requested size.
    pub size: Size,
}

impl Resize {
    /// `Resize(size)` with an int: the shorter side becomes `size`.
    pub fn new(size: usize) -> Self {
        Resize {
            size: Size::Shorter(size),
        }
    }

    /// `Resize((h, w))`.
    pub fn exact(h: usize, w: usize) -> Self {
        Resize {
            size: Size::Exact(h, w),
        }
    }

    /// The output `(height, width)` for an input of `(h, w)`, with torchvision's rounding
    /// (`_compute_resized_output_size`).
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        match self.size {
            Size::Exact(oh, ow) => (oh, ow),
            Size::Shorter(s) => {
                let (short, long) = if w <= h { (w, h) } else { (h, w) };
                // Python: int(requested_new_short * long / short), true division in f64.
                let new_long = (s as f64 * long as f64 / short as f64) as usize;
                if w <= h { (new_long, s) } else { (s, new_long) }
            }
        }
    }
}

impl Transform for Resize {
    fn apply(&self, img: Image, _rng: &mut Generator) -> Result<Image> {
        let (oh, ow) = self.output_size(img.height, img.width);
        resize_bilinear_aa(&img, oh, ow)
    }

    fn name(&self) -> String {
        match self.size {
            Size::Shorter(s) => format!("Resize({s})"),
            Size::Exact(h, w) => format!("Resize(({h}, {w}))"),
        }
    }
}

/// Per output index: the first input index and the normalised weights.
fn weights_aa(input: usize, output: usize) -> Vec<(usize, Vec<f32>)> {
    // area_pixel_compute_scale with align_corners=False and no scale factor: in / out.
    let scale = input as f64 / output as f64;
    let support = if scale >= 1.0 { scale } else { 1.0 };
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    (0..output)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(input as i64).max(0) as usize;
            let mut w: Vec<f64> = (xmin..xmax.max(xmin))
                .map(|j| {
                    let x = ((j - xmin) as f64 + xmin as f64 - center + 0.5) * invscale;
                    (1.0 - x.abs()).max(0.0)
                })
                .collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                for v in &mut w {
                    *v /= total;
                }
            }
            (xmin, w.into_iter().map(|v| v as f32).collect())
        })
        .collect()
}

/// Resizes `img` to `oh × ow` (bilinear, antialias), like torchvision on a float tensor.
///
/// # Errors
/// `K0003` for a zero output size or an empty image.
pub fn resize_bilinear_aa(img: &Image, oh: usize, ow: usize) -> Result<Image> {
    if oh == 0 || ow == 0 || img.height == 0 || img.width == 0 {
        return Err(Error::invalid(
            "resize",
            format!("{}x{} -> {oh}x{ow}", img.height, img.width),
            "non-empty input and output sizes",
        ));
    }
    if (oh, ow) == (img.height, img.width) {
        return Ok(img.clone());
    }
    let (c, h, w) = (img.channels, img.height, img.width);
    // Horizontal pass (width), skipped when the width is unchanged.
    let mut cur = img.data.clone();
    let mut cw = w;
    if ow != w {
        let wts = weights_aa(w, ow);
        let mut out = vec![0.0f32; c * h * ow];
        for row in 0..c * h {
            let src = &cur[row * w..(row + 1) * w];
            let dst = &mut out[row * ow..(row + 1) * ow];
            for (x, (xmin, ws)) in wts.iter().enumerate() {
                // 0 + a·w₀ is exactly a·w₀: the same sums as PyTorch's.
                let mut t = 0.0f32;
                for (j, wj) in ws.iter().enumerate() {
                    t += src[xmin + j] * wj;
                }
                dst[x] = t;
            }
        }
        cur = out;
        cw = ow;
    }
    if oh != h {
        let wts = weights_aa(h, oh);
        let mut out = vec![0.0f32; c * oh * cw];
        for ch in 0..c {
            let src = &cur[ch * h * cw..(ch + 1) * h * cw];
            let dst = &mut out[ch * oh * cw..(ch + 1) * oh * cw];
            for (y, (ymin, ws)) in wts.iter().enumerate() {
                for x in 0..cw {
                    let mut t = 0.0f32;
                    for (j, wj) in ws.iter().enumerate() {
                        t += src[(ymin + j) * cw + x] * wj;
                    }
                    dst[y * cw + x] = t;
                }
            }
        }
        cur = out;
    }
    Image::new(c, oh, ow, cur)
}
