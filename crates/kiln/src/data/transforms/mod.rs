//! Image transforms with torchvision's names, parameters and semantics, on CHW `f32`
//! images ([`Image`]), and [`TransformedDataset`], which applies one to a data set.
//!
//! | kiln | torchvision |
//! | --- | --- |
//! | [`Resize`] | `Resize(size)` (int → shorter side; `(h, w)`), bilinear, `antialias=True` |
//! | [`CenterCrop`] | `CenterCrop(size)`, offset `int(round((h - th) / 2.0))` |
//! | [`RandomResizedCrop`] | `RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(3/4, 4/3))` |
//! | [`RandomCrop`] | `RandomCrop(size, padding, pad_if_needed)`, zero fill |
//! | [`RandomHorizontalFlip`] | `RandomHorizontalFlip(p=0.5)` |
//! | [`ColorJitter`] | `ColorJitter(brightness, contrast, saturation, hue)` |
//! | [`Grayscale`] | `Grayscale(num_output_channels)` |
//! | [`ToTensor`] | `ToTensor()` (kiln's sources already yield its output) |
//! | [`Normalize`] | `Normalize(mean, std)` |
//! | [`Compose`] | `Compose([...])` |
//!
//! # Randomness
//! A random transform draws from the [`Generator`] it is given. [`TransformedDataset`] gives
//! each sample its own generator, [`sample_rng`]`(seed, epoch, index)`, instead of one
//! sequential stream: a sample's augmentation does not depend on which worker thread built
//! it or on which samples came before, so loader batches are identical for any number of
//! workers and a resumed run is bit-exact. The draws are not PyTorch's (its generator is not
//! kiln's); the distributions and parameters are.
//!
//! ```
//! use kiln::data::transforms::{Compose, Image, Transform, imagenet_eval, sample_rng};
//! let img = Image::new(3, 40, 60, vec![0.5; 3 * 40 * 60])?;
//! let out = imagenet_eval(32).apply(img, &mut sample_rng(0, 0, 0))?;
//! assert_eq!((out.channels, out.height, out.width), (3, 32, 32));
//! # Ok::<(), kiln::Error>(())
//! ```

mod color;
mod crop;
mod dataset;
mod flip;
mod image;
mod resize;

pub use color::{
    ColorJitter, Grayscale, IMAGENET_MEAN, IMAGENET_STD, Normalize, adjust_brightness,
    adjust_contrast, adjust_hue, adjust_saturation,
};
pub use crop::{CenterCrop, RandomCrop, RandomResizedCrop, center_crop};
pub use dataset::TransformedDataset;
pub use flip::{RandomHorizontalFlip, hflip};
pub use image::Image;
pub use resize::{Resize, Size, resize_bilinear_aa};

use crate::error::Result;
use crate::rng::Generator;

/// One image transform.
pub trait Transform: Send + Sync {
    /// Transforms `img`; random transforms draw from `rng`.
    ///
    /// # Errors
    /// `K0003` for parameters that do not fit the image (a crop larger than it, a mean per
    /// channel for another channel count).
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image>;

    /// torchvision-style description (`Resize(256)`).
    fn name(&self) -> String;
}

/// The generator of sample `index` in epoch `epoch` of a run seeded with `seed`.
///
/// A different stream from the loader's shuffle (`Generator::derived(seed, epoch)`): the
/// seed is mixed with the epoch (SplitMix64) and the sample index picks the stream.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> Generator {
    let mut z = seed ^ 0x7261_6e64_6175_6721 ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    Generator::derived(z, index)
}

/// torchvision's `Compose`: the transforms in order.
#[derive(Default)]
pub struct Compose {
    steps: Vec<Box<dyn Transform>>,
}

impl std::fmt::Debug for Compose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl Compose {
    /// An empty pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a transform (builder).
    pub fn then(mut self, t: impl Transform + 'static) -> Self {
        self.steps.push(Box::new(t));
        self
    }

    /// Number of transforms.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl Transform for Compose {
    fn apply(&self, mut img: Image, rng: &mut Generator) -> Result<Image> {
        for t in &self.steps {
            img = t.apply(img, rng)?;
        }
        Ok(img)
    }

    fn name(&self) -> String {
        let names: Vec<String> = self.steps.iter().map(|t| t.name()).collect();
        format!("Compose([{}])", names.join(", "))
    }
}

/// torchvision's `ToTensor`. kiln's image sources already decode to CHW `f32` in `[0, 1]`
/// (what `ToTensor` returns), so as a transform it leaves the image unchanged;
/// [`ToTensor::from_hwc_u8`] is the conversion itself.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ToTensor;

impl ToTensor {
    /// HWC `u8` pixels → CHW `f32` in `[0, 1]` (`x / 255`).
    ///
    /// # Errors
    /// `K0003` when `pixels.len() != h · w · c`.
    pub fn from_hwc_u8(pixels: &[u8], h: usize, w: usize, c: usize) -> Result<Image> {
        let n = h * w;
        if pixels.len() != n * c {
            return Err(crate::Error::invalid(
                "ToTensor pixels",
                pixels.len(),
                format!("h·w·c = {}", n * c),
            ));
        }
        let mut data = vec![0.0f32; n * c];
        for (p, px) in pixels.chunks_exact(c.max(1)).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                data[ch * n + p] = v as f32 / 255.0;
            }
        }
        Image::new(c, h, w, data)
    }
}

impl Transform for ToTensor {
    fn apply(&self, img: Image, _rng: &mut Generator) -> Result<Image> {
        Ok(img)
    }

    fn name(&self) -> String {
        "ToTensor()".into()
    }
}

/// torchvision's ImageNet training preset: `RandomResizedCrop(size)`,
/// `RandomHorizontalFlip()`, `Normalize(IMAGENET_MEAN, IMAGENET_STD)`.
pub fn imagenet_train(size: usize) -> Compose {
    Compose::new()
        .then(RandomResizedCrop::new(size))
        .then(RandomHorizontalFlip::default())
        .then(Normalize::imagenet())
}

/// torchvision's ImageNet evaluation preset: `Resize(int(size · 8 / 7))` (256 for 224),
/// `CenterCrop(size)`, `Normalize(IMAGENET_MEAN, IMAGENET_STD)`.
pub fn imagenet_eval(size: usize) -> Compose {
    Compose::new()
        .then(Resize::new(size * 8 / 7))
        .then(CenterCrop::new(size))
        .then(Normalize::imagenet())
}

#[cfg(test)]
mod tests;
