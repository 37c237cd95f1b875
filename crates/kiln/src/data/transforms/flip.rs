//! `RandomHorizontalFlip`.

use super::{Image, Transform};
use crate::error::Result;
use crate::rng::Generator;

/// torchvision's `RandomHorizontalFlip(p=0.5)`: flips when a uniform draw is below `p`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RandomHorizontalFlip {
    /// Probability of flipping.
    pub p: f64,
}

impl Default for RandomHorizontalFlip {
    fn default() -> Self {
        RandomHorizontalFlip { p: 0.5 }
    }
}

/// torchvision's `F.hflip`: mirrors the columns.
pub fn hflip(mut img: Image) -> Image {
    let w = img.width;
    if w > 0 {
        for row in img.data.chunks_mut(w) {
            row.reverse();
        }
    }
    img
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image> {
        Ok(if rng.next_f64() < self.p {
            hflip(img)
        } else {
            img
        })
    }

    fn name(&self) -> String {
        format!("RandomHorizontalFlip(p={})", self.p)
    }
}
