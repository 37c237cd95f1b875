//! Crops: `CenterCrop`, `RandomCrop` (with padding), `RandomResizedCrop`.

use super::resize::resize_bilinear_aa;
use super::{Image, Transform};
use crate::error::{Error, Result};
use crate::rng::Generator;

/// Python's `int(round(x))` (round half to even).
fn py_round(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// torchvision's `CenterCrop(size)`: offsets `int(round((h - th) / 2.0))`; an image smaller
/// than the crop is zero-padded first (as torchvision pads).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CenterCrop {
    /// `(height, width)` of the crop.
    pub size: (usize, usize),
}

impl CenterCrop {
    /// A square crop `size × size`.
    pub fn new(size: usize) -> Self {
        CenterCrop { size: (size, size) }
    }
}

/// torchvision's `F.center_crop`.
pub fn center_crop(img: &Image, th: usize, tw: usize) -> Image {
    let (h, w) = (img.height, img.width);
    if th > h || tw > w {
        // torchvision pads [left, top, right, bottom] = [(tw-w)//2, (th-h)//2, (tw-w+1)//2, (th-h+1)//2]
        // with zeros, then crops the centre again; the result is the crop window below.
        let pad_top = th.saturating_sub(h) / 2;
        let pad_left = tw.saturating_sub(w) / 2;
        let ph = h + th.saturating_sub(h);
        let pw = w + tw.saturating_sub(w);
        let padded = img.crop(-(pad_top as i64), -(pad_left as i64), ph, pw);
        return center_crop(&padded, th, tw);
    }
    let top = py_round((h - th) as f64 / 2.0);
    let left = py_round((w - tw) as f64 / 2.0);
    img.crop_inside(top as usize, left as usize, th, tw)
}

impl Transform for CenterCrop {
    fn apply(&self, img: Image, _rng: &mut Generator) -> Result<Image> {
        Ok(center_crop(&img, self.size.0, self.size.1))
    }

    fn name(&self) -> String {
        format!("CenterCrop({:?})", self.size)
    }
}

/// torchvision's `RandomCrop(size, padding, pad_if_needed)` with zero (constant) fill.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RandomCrop {
    /// `(height, width)` of the crop.
    pub size: (usize, usize),
    /// Padding `(left, top, right, bottom)` applied first (torchvision's `padding`).
    pub padding: (usize, usize, usize, usize),
    /// Pads a side that is still smaller than the crop (torchvision's `pad_if_needed`).
    pub pad_if_needed: bool,
}

impl RandomCrop {
    /// `RandomCrop(size, padding=padding)` (the same padding on all four sides).
    pub fn new(size: usize, padding: usize) -> Self {
        RandomCrop {
            size: (size, size),
            padding: (padding, padding, padding, padding),
            pad_if_needed: false,
        }
    }
}

fn pad(img: &Image, left: usize, top: usize, right: usize, bottom: usize) -> Image {
    img.crop(
        -(top as i64),
        -(left as i64),
        img.height + top + bottom,
        img.width + left + right,
    )
}

impl Transform for RandomCrop {
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image> {
        let (l, t, r, b) = self.padding;
        let mut img = if (l, t, r, b) != (0, 0, 0, 0) {
            pad(&img, l, t, r, b)
        } else {
            img
        };
        let (th, tw) = self.size;
        if self.pad_if_needed && img.width < tw {
            let p = tw - img.width;
            img = pad(&img, p, 0, p, 0);
        }
        if self.pad_if_needed && img.height < th {
            let p = th - img.height;
            img = pad(&img, 0, p, 0, p);
        }
        let (h, w) = (img.height, img.width);
        if h < th || w < tw {
            return Err(Error::invalid(
                "RandomCrop size",
                format!("({th}, {tw})"),
                format!("at most the (padded) image size ({h}, {w})"),
            ));
        }
        if (h, w) == (th, tw) {
            return Ok(img);
        }
        let i = rng.below((h - th + 1) as u64) as usize;
        let j = rng.below((w - tw + 1) as u64) as usize;
        Ok(img.crop_inside(i, j, th, tw))
    }

    fn name(&self) -> String {
        format!("RandomCrop({:?}, padding={:?})", self.size, self.padding)
    }
}

/// torchvision's `RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(3/4, 4/3))`, bilinear
/// with antialias.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RandomResizedCrop {
    /// Output `(height, width)`.
    pub size: (usize, usize),
    /// Range of the crop's area as a fraction of the image's.
    pub scale: (f64, f64),
    /// Range of the crop's aspect ratio (width / height).
    pub ratio: (f64, f64),
}

impl RandomResizedCrop {
    /// `RandomResizedCrop(size)` with the default scale and ratio.
    pub fn new(size: usize) -> Self {
        RandomResizedCrop {
            size: (size, size),
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }

    /// torchvision's `get_params`: `(top, left, h, w)` after at most 10 attempts, else the
    /// centre-crop fallback.
    pub fn params(
        &self,
        height: usize,
        width: usize,
        rng: &mut Generator,
    ) -> (usize, usize, usize, usize) {
        let area = (height * width) as f64;
        let (lr0, lr1) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target_area = area * rng.uniform(self.scale.0, self.scale.1);
            let aspect = rng.uniform(lr0, lr1).exp();
            let w = py_round((target_area * aspect).sqrt());
            let h = py_round((target_area / aspect).sqrt());
            if 0 < w && w as usize <= width && 0 < h && h as usize <= height {
                let (h, w) = (h as usize, w as usize);
                let i = rng.below((height - h + 1) as u64) as usize;
                let j = rng.below((width - w + 1) as u64) as usize;
                return (i, j, h, w);
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (lo, hi) = (
            self.ratio.0.min(self.ratio.1),
            self.ratio.0.max(self.ratio.1),
        );
        let (h, w) = if in_ratio < lo {
            (py_round(width as f64 / lo) as usize, width)
        } else if in_ratio > hi {
            (height, py_round(height as f64 * hi) as usize)
        } else {
            (height, width)
        };
        ((height - h) / 2, (width - w) / 2, h, w)
    }
}

impl Transform for RandomResizedCrop {
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image> {
        let (i, j, h, w) = self.params(img.height, img.width, rng);
        let cropped = img.crop_inside(i, j, h, w);
        resize_bilinear_aa(&cropped, self.size.0, self.size.1)
    }

    fn name(&self) -> String {
        format!(
            "RandomResizedCrop({:?}, scale={:?}, ratio={:?})",
            self.size, self.scale, self.ratio
        )
    }
}
