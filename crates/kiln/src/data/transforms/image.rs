//! `Image`: one CHW `f32` sample as transforms see it (torchvision's tensor layout).

use crate::error::{Context, Error, Result, shape_str};
use candle_core::{DType, Device, Tensor};

/// A CHW `f32` image, values in `[0, 1]` after decoding (other ranges after `Normalize`).
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Channels (1 grayscale, 3 RGB).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `channels · height · width` values, channel-major.
    pub data: Vec<f32>,
}

impl Image {
    /// An image from a CHW buffer.
    ///
    /// # Errors
    /// `K0003` when the buffer length is not `channels · height · width`.
    pub fn new(channels: usize, height: usize, width: usize, data: Vec<f32>) -> Result<Self> {
        let n = channels
            .checked_mul(height)
            .and_then(|v| v.checked_mul(width));
        if n != Some(data.len()) {
            return Err(Error::invalid(
                "image buffer length",
                data.len(),
                format!("channels·height·width for {channels}x{height}x{width}"),
            ));
        }
        Ok(Image {
            channels,
            height,
            width,
            data,
        })
    }

    /// An image from a `[C, H, W]` tensor (any float dtype, any device).
    ///
    /// # Errors
    /// `K0203` when the tensor is not three-dimensional.
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let &[c, h, w] = t.dims() else {
            return Err(Error::InputRank {
                module: "transform".into(),
                expected: "[C, H, W]".into(),
                shape: shape_str(t.dims()),
            });
        };
        let data = t
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .ctx("Image::from_tensor")?;
        Image::new(c, h, w, data)
    }

    /// The image as a `[C, H, W]` `f32` CPU tensor.
    ///
    /// # Errors
    /// `K0001` if the backend refuses the buffer.
    pub fn to_tensor(&self) -> Result<Tensor> {
        Tensor::from_slice(
            &self.data,
            (self.channels, self.height, self.width),
            &Device::Cpu,
        )
        .ctx("Image::to_tensor")
    }

    /// One channel's plane.
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.height * self.width;
        &self.data[c * n..(c + 1) * n]
    }

    /// The pixels `[top, top + h) × [left, left + w)` (which must lie inside the image).
    pub(crate) fn crop_inside(&self, top: usize, left: usize, h: usize, w: usize) -> Image {
        let mut data = Vec::with_capacity(self.channels * h * w);
        for c in 0..self.channels {
            let p = self.plane(c);
            for y in top..top + h {
                data.extend_from_slice(&p[y * self.width + left..y * self.width + left + w]);
            }
        }
        Image {
            channels: self.channels,
            height: h,
            width: w,
            data,
        }
    }

    /// torchvision's `F.crop`: rows `top..top + h`, columns `left..left + w`, where the
    /// window may extend past the image (or start before it); outside pixels are 0.
    pub fn crop(&self, top: i64, left: i64, h: usize, w: usize) -> Image {
        if top >= 0
            && left >= 0
            && top as usize + h <= self.height
            && left as usize + w <= self.width
        {
            return self.crop_inside(top as usize, left as usize, h, w);
        }
        let mut data = vec![0.0f32; self.channels * h * w];
        for c in 0..self.channels {
            let p = self.plane(c);
            for y in 0..h {
                let sy = top + y as i64;
                if sy < 0 || sy >= self.height as i64 {
                    continue;
                }
                for x in 0..w {
                    let sx = left + x as i64;
                    if sx < 0 || sx >= self.width as i64 {
                        continue;
                    }
                    data[(c * h + y) * w + x] = p[sy as usize * self.width + sx as usize];
                }
            }
        }
        Image {
            channels: self.channels,
            height: h,
            width: w,
            data,
        }
    }
}
