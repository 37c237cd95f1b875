//! `ImageFolder`: torchvision's `datasets.ImageFolder` — one subfolder per class, classes in
//! sorted order, files sorted within a class, images decoded lazily on `get`.

use super::decode::{DecodeLimits, decode_image};
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use candle_core::Tensor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// torchvision's `IMG_EXTENSIONS` (`.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp`), plus
/// `.gif`; compared case-insensitively as torchvision does.
pub const IMG_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp", "gif",
];

/// Whether `path` has one of [`IMG_EXTENSIONS`].
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMG_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// An image-folder data set (see the module docs). Samples are `[3, H, W]` (or `[1, H, W]`
/// with grayscale) `f32` in `[0, 1]`; images of different sizes need a transform (Resize,
/// crops) before they can be batched.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    name: String,
    samples: Vec<(PathBuf, i64)>,
    classes: Vec<String>,
    grayscale: bool,
    limits: DecodeLimits,
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))? {
        out.push(e.map_err(|e| Error::io("listing", dir, e))?.path());
    }
    // torchvision sorts by name (Python string order = code-point order, as Rust's).
    out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(out)
}

/// torchvision's `find_classes`: sorted names of the subfolders of `root`.
///
/// # Errors
/// `K0002` when `root` cannot be listed.
pub fn find_classes(root: &Path) -> Result<Vec<String>> {
    Ok(read_dir_sorted(root)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(String::from))
        .collect())
}

impl ImageFolder {
    /// The image folder at `root`, its classes found with [`find_classes`].
    ///
    /// # Errors
    /// `K0002` when a folder cannot be listed; `K0101` when there is no class folder or no
    /// image in one (torchvision: Found no valid file for the classes …).
    pub fn new(root: &Path, grayscale: bool, limits: DecodeLimits) -> Result<Self> {
        let classes = find_classes(root)?;
        let map: BTreeMap<String, i64> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i as i64))
            .collect();
        Self::with_classes(root, &classes, &map, grayscale, limits)
    }

    /// The image folder at `root` labelled with another folder's `class_to_idx` (a `val`
    /// split labelled like its `train` split).
    ///
    /// # Errors
    /// As [`ImageFolder::new`]; `K0103` for a class folder the mapping lacks.
    pub fn with_classes(
        root: &Path,
        classes: &[String],
        class_to_idx: &BTreeMap<String, i64>,
        grayscale: bool,
        limits: DecodeLimits,
    ) -> Result<Self> {
        let name = root.display().to_string();
        let mut samples = Vec::new();
        for dir in find_classes(root)? {
            let Some(&idx) = class_to_idx.get(&dir) else {
                return Err(Error::BadData {
                    source_name: name,
                    detail: format!(
                        "class folder '{dir}' is not among the training classes {classes:?}"
                    ),
                });
            };
            let mut stack = vec![root.join(&dir)];
            let mut files = Vec::new();
            // torchvision walks each class folder recursively (os.walk, followlinks=True),
            // sorted at every level.
            while let Some(d) = stack.pop() {
                let entries = read_dir_sorted(&d)?;
                let mut subdirs = Vec::new();
                for p in entries {
                    if p.is_dir() {
                        subdirs.push(p);
                    } else if has_image_extension(&p) {
                        files.push(p);
                    }
                }
                stack.extend(subdirs.into_iter().rev());
            }
            // sorted(os.walk(...)) orders by folder path string, then names within a folder.
            files.sort_by(|a, b| {
                let key = |p: &PathBuf| {
                    (
                        p.parent().map(|d| d.to_string_lossy().into_owned()),
                        p.file_name().map(|n| n.to_os_string()),
                    )
                };
                key(a).cmp(&key(b))
            });
            samples.extend(files.into_iter().map(|p| (p, idx)));
        }
        if samples.is_empty() {
            return Err(Error::EmptyDataset {
                name: format!(
                    "{name} (no image with an extension of {IMG_EXTENSIONS:?} in {} class folder(s))",
                    classes.len()
                ),
                len: 0,
                batch_size: 1,
                drop_last: false,
            });
        }
        Ok(ImageFolder {
            name,
            samples,
            classes: classes.to_vec(),
            grayscale,
            limits,
        })
    }

    /// Decodes every image once and drops those that fail (for `skip_bad`), returning how
    /// many were dropped.
    ///
    /// # Errors
    /// `K0002` for a file that cannot be read at all (a permissions problem is not a bad
    /// image).
    pub fn drop_bad(&mut self) -> Result<usize> {
        let before = self.samples.len();
        let mut kept = Vec::with_capacity(before);
        for (p, l) in std::mem::take(&mut self.samples) {
            match decode_image(&p, self.grayscale, self.limits) {
                Ok(_) => kept.push((p, l)),
                Err(Error::BadImage { .. } | Error::ImageTooLarge { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.samples = kept;
        Ok(before - self.samples.len())
    }

    /// `(path, class index)` of every sample, in order (torchvision's `samples`).
    pub fn samples(&self) -> &[(PathBuf, i64)] {
        &self.samples
    }

    /// Class names, sorted (torchvision's `classes`).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Whether images are decoded to one grey channel.
    pub fn is_grayscale(&self) -> bool {
        self.grayscale
    }

    /// The decoded image of sample `i` (before any transform).
    ///
    /// # Errors
    /// `K0003` out of range; `K0104` / `K0105` as [`decode_image`].
    pub fn image(&self, i: usize) -> Result<crate::data::transforms::Image> {
        let (path, _) = self.samples.get(i).ok_or_else(|| {
            Error::invalid(
                format!("index into data set '{}'", self.name),
                i,
                format!("an index below its length {}", self.samples.len()),
            )
        })?;
        decode_image(path, self.grayscale, self.limits)
    }
}

impl Dataset for ImageFolder {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn len(&self) -> usize {
        self.samples.len()
    }

    fn get(&self, i: usize) -> Result<(Tensor, i64)> {
        let img = self.image(i)?;
        Ok((img.to_tensor()?, self.samples[i].1))
    }

    fn label(&self, i: usize) -> Result<i64> {
        self.samples.get(i).map(|s| s.1).ok_or_else(|| {
            Error::invalid(
                format!("index into data set '{}'", self.name),
                i,
                format!("an index below its length {}", self.samples.len()),
            )
        })
    }
}
