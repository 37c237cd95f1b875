//! Colour transforms on CHW `f32` images: `Normalize`, `Grayscale`, `ColorJitter`, with
//! torchvision's tensor arithmetic (`f32`, the same operation order).

use super::{Image, Transform};
use crate::error::{Error, Result};
use crate::rng::Generator;

/// ImageNet channel means (torchvision's reference scripts).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// torchvision's `Normalize(mean, std)`: `(x - mean[c]) / std[c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

impl Normalize {
    /// `Normalize(mean, std)`.
    pub fn new(mean: &[f32], std: &[f32]) -> Self {
        Normalize {
            mean: mean.to_vec(),
            std: std.to_vec(),
        }
    }

    /// ImageNet's mean and std.
    pub fn imagenet() -> Self {
        Self::new(&IMAGENET_MEAN, &IMAGENET_STD)
    }
}

impl Transform for Normalize {
    fn apply(&self, mut img: Image, _rng: &mut Generator) -> Result<Image> {
        let c = img.channels;
        let ok = |v: &[f32]| v.len() == c || v.len() == 1;
        if !ok(&self.mean) || !ok(&self.std) {
            return Err(Error::invalid(
                "Normalize mean/std",
                format!("{} means, {} stds", self.mean.len(), self.std.len()),
                format!("one value per channel ({c}) or one for all"),
            ));
        }
        if let Some(i) = self.std.iter().position(|&s| s == 0.0) {
            return Err(Error::invalid(
                "Normalize std",
                format!("std[{i}] = 0"),
                "non-zero values (torchvision: std evaluated to zero, leading to division by zero)",
            ));
        }
        let n = img.height * img.width;
        for ch in 0..c {
            let m = self.mean[if self.mean.len() == 1 { 0 } else { ch }];
            let s = self.std[if self.std.len() == 1 { 0 } else { ch }];
            for v in &mut img.data[ch * n..(ch + 1) * n] {
                *v = (*v - m) / s;
            }
        }
        Ok(img)
    }

    fn name(&self) -> String {
        format!("Normalize(mean={:?}, std={:?})", self.mean, self.std)
    }
}

/// torchvision's `rgb_to_grayscale` luma, `0.2989 r + 0.587 g + 0.114 b` (one plane); a
/// one-channel image is returned as is.
fn luma(img: &Image) -> Vec<f32> {
    if img.channels < 3 {
        return img.plane(0).to_vec();
    }
    let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
    r.iter()
        .zip(g)
        .zip(b)
        .map(|((r, g), b)| 0.2989f32 * r + 0.587f32 * g + 0.114f32 * b)
        .collect()
}

/// torchvision's `Grayscale(num_output_channels)` (1 or 3).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Grayscale {
    /// 1 or 3 output channels (3 repeats the grey plane).
    pub num_output_channels: usize,
}

impl Transform for Grayscale {
    fn apply(&self, img: Image, _rng: &mut Generator) -> Result<Image> {
        if self.num_output_channels != 1 && self.num_output_channels != 3 {
            return Err(Error::invalid(
                "Grayscale num_output_channels",
                self.num_output_channels,
                "1 or 3",
            ));
        }
        let l = luma(&img);
        let mut data = Vec::with_capacity(l.len() * self.num_output_channels);
        for _ in 0..self.num_output_channels {
            data.extend_from_slice(&l);
        }
        Image::new(self.num_output_channels, img.height, img.width, data)
    }

    fn name(&self) -> String {
        format!(
            "Grayscale(num_output_channels={})",
            self.num_output_channels
        )
    }
}

/// torchvision's `ColorJitter(brightness, contrast, saturation, hue)`: the factors are drawn
/// uniformly from `[max(0, 1 - b), 1 + b]` (hue from `[-h, h]`) and applied in a random order.
#[derive(Copy, Clone, Debug, PartialEq, Default)]
pub struct ColorJitter {
    /// Brightness jitter `b` (0: none).
    pub brightness: f64,
    /// Contrast jitter.
    pub contrast: f64,
    /// Saturation jitter.
    pub saturation: f64,
    /// Hue jitter in `[0, 0.5]`.
    pub hue: f64,
}

fn blend(a: &mut [f32], b: impl Fn(usize) -> f32, ratio: f32) {
    for (i, v) in a.iter_mut().enumerate() {
        *v = (ratio * *v + (1.0 - ratio) * b(i)).clamp(0.0, 1.0);
    }
}

/// torchvision's `adjust_brightness` on a float image.
pub fn adjust_brightness(mut img: Image, factor: f32) -> Image {
    blend(&mut img.data, |_| 0.0, factor);
    img
}

/// torchvision's `adjust_contrast`: blends with the mean of the grey image.
pub fn adjust_contrast(mut img: Image, factor: f32) -> Image {
    let l = luma(&img);
    let mean = (l.iter().map(|&v| v as f64).sum::<f64>() / l.len().max(1) as f64) as f32;
    blend(&mut img.data, |_| mean, factor);
    img
}

/// torchvision's `adjust_saturation`: blends with the grey image (no-op on one channel).
pub fn adjust_saturation(mut img: Image, factor: f32) -> Image {
    if img.channels < 3 {
        return img;
    }
    let l = luma(&img);
    let n = l.len();
    blend(&mut img.data, |i| l[i % n], factor);
    img
}

/// torchvision's `adjust_hue` (`_rgb2hsv`, shift, `_hsv2rgb`); no-op on one channel.
pub fn adjust_hue(mut img: Image, factor: f32) -> Image {
    if img.channels < 3 {
        return img;
    }
    let n = img.height * img.width;
    for p in 0..n {
        let (r, g, b) = (img.data[p], img.data[n + p], img.data[2 * n + p]);
        let maxc = r.max(g).max(b);
        let minc = r.min(g).min(b);
        let eqc = maxc == minc;
        let cr = maxc - minc;
        let s = cr / if eqc { 1.0 } else { maxc };
        let div = if eqc { 1.0 } else { cr };
        let (rc, gc, bc) = ((maxc - r) / div, (maxc - g) / div, (maxc - b) / div);
        let h = if maxc == r {
            bc - gc
        } else if maxc == g {
            2.0 + rc - bc
        } else {
            4.0 + gc - rc
        };
        let h = (h / 6.0 + 1.0) % 1.0;
        let h = (h + factor).rem_euclid(1.0);
        let v = maxc;
        let i = (h * 6.0).floor();
        let f = h * 6.0 - i;
        let i = (i as i32).rem_euclid(6);
        let pp = (v * (1.0 - s)).clamp(0.0, 1.0);
        let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
        let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
        let (r, g, b) = match i {
            0 => (v, t, pp),
            1 => (q, v, pp),
            2 => (pp, v, t),
            3 => (pp, q, v),
            4 => (t, pp, v),
            _ => (v, pp, q),
        };
        img.data[p] = r;
        img.data[n + p] = g;
        img.data[2 * n + p] = b;
    }
    img
}

impl Transform for ColorJitter {
    fn apply(&self, mut img: Image, rng: &mut Generator) -> Result<Image> {
        if !(0.0..=0.5).contains(&self.hue) {
            return Err(Error::invalid(
                "ColorJitter hue",
                self.hue,
                "a value in [0, 0.5]",
            ));
        }
        let order = rng.permutation(4);
        let mut draw = |j: f64, centre: f64| {
            (j > 0.0).then(|| rng.uniform((centre - j).max(0.0), centre + j) as f32)
        };
        let b = draw(self.brightness, 1.0);
        let c = draw(self.contrast, 1.0);
        let s = draw(self.saturation, 1.0);
        let h = (self.hue > 0.0).then(|| rng.uniform(-self.hue, self.hue) as f32);
        for k in order {
            img = match (k, b, c, s, h) {
                (0, Some(f), _, _, _) => adjust_brightness(img, f),
                (1, _, Some(f), _, _) => adjust_contrast(img, f),
                (2, _, _, Some(f), _) => adjust_saturation(img, f),
                (3, _, _, _, Some(f)) => adjust_hue(img, f),
                _ => img,
            };
        }
        Ok(img)
    }

    fn name(&self) -> String {
        format!(
            "ColorJitter(brightness={}, contrast={}, saturation={}, hue={})",
            self.brightness, self.contrast, self.saturation, self.hue
        )
    }
}
