//! Decoding one image file with bounded memory: the header's dimensions are checked against
//! the limits before any pixel is decoded, and the decoder itself runs under `image`'s
//! `Limits`.

use crate::data::transforms::Image;
use crate::error::{Error, Result};
use std::io::Cursor;
use std::path::Path;

/// Largest side, in pixels, an image may declare by default.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// Most bytes a decoded image may take by default (RGBA, 16 bits a channel included).
pub const MAX_IMAGE_BYTES: u64 = 512 << 20;

/// Decoding limits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest width or height.
    pub max_side: u32,
    /// Most decoded bytes.
    pub max_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_side: MAX_IMAGE_SIDE,
            max_bytes: MAX_IMAGE_BYTES,
        }
    }
}

fn bad(path: &Path, detail: impl std::fmt::Display) -> Error {
    Error::BadImage {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

/// Decodes `path` into a CHW `f32` image in `[0, 1]`: RGB (alpha dropped, palettes
/// expanded, as PIL's `convert("RGB")`), or one grey channel with PIL's `convert("L")`
/// weights (`(19595 R + 38470 G + 7471 B + 2^15) >> 16`) when `grayscale`.
///
/// # Errors
/// `K0002` when the file cannot be read; `K0105` when the header declares more than
/// `limits` allow; `K0104` for anything the decoder rejects (truncated, not an image).
pub fn decode_image(path: &Path, grayscale: bool, limits: DecodeLimits) -> Result<Image> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let too_large = |w: u64, h: u64| Error::ImageTooLarge {
        path: path.display().to_string(),
        width: w,
        height: h,
        max_side: limits.max_side,
        max_bytes: limits.max_bytes,
    };
    let reader = image::io::Reader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| bad(path, e))?;
    if reader.format().is_none() {
        return Err(bad(path, "not a PNG, JPEG, BMP, GIF, WebP or TIFF image"));
    }
    let (w, h) = reader.into_dimensions().map_err(|e| bad(path, e))?;
    // 8 bytes a pixel covers RGBA with 16-bit channels, the widest the decoders produce.
    let decoded = (w as u64).saturating_mul(h as u64).saturating_mul(8);
    if w > limits.max_side || h > limits.max_side || decoded > limits.max_bytes {
        return Err(too_large(w as u64, h as u64));
    }
    let mut reader = image::io::Reader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| bad(path, e))?;
    let mut l = image::io::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_bytes);
    reader.limits(l);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => too_large(w as u64, h as u64),
        e => bad(path, e),
    })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let n = w * h;
    if grayscale {
        let data: Vec<f32> = match &img {
            image::DynamicImage::ImageLuma8(g) => {
                g.as_raw().iter().map(|&v| v as f32 / 255.0).collect()
            }
            _ => img
                .to_rgb8()
                .as_raw()
                .chunks_exact(3)
                .map(|p| {
                    let l =
                        (p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000)
                            >> 16;
                    l as f32 / 255.0
                })
                .collect(),
        };
        return Image::new(1, h, w, data);
    }
    let rgb = img.to_rgb8();
    let mut data = vec![0.0f32; 3 * n];
    for (p, px) in rgb.as_raw().chunks_exact(3).enumerate() {
        data[p] = px[0] as f32 / 255.0;
        data[n + p] = px[1] as f32 / 255.0;
        data[2 * n + p] = px[2] as f32 / 255.0;
    }
    Image::new(3, h, w, data)
}
