//! CIFAR-10 / CIFAR-100 from a directory laid out as their archives unpack: python batches
//! (`data_batch_1`…`5` + `test_batch` + `batches.meta`; `train` + `test` + `meta` for 100)
//! or binary batches (`data_batch_1.bin`…`5.bin` + `test_batch.bin` + `batches.meta.txt`;
//! `train.bin` + `test.bin` for 100). Samples are `[3, 32, 32]` in `[0, 1]`; CIFAR-100 uses
//! the fine labels, as torchvision does.

use super::cifar_pickle::{PVal, unpickle};
use super::memory::{MemoryDataset, Targets, Values};
use crate::error::{Error, Result};
use std::path::Path;

/// Bytes of one CIFAR image (3 × 32 × 32, channel-major).
pub const IMAGE_BYTES: usize = 3072;

/// CIFAR-10's class names (torchvision's order).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

fn fmt_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::DataFormat {
        path: path.display().to_string(),
        format: "CIFAR".into(),
        detail: detail.into(),
    }
}

/// One CIFAR split with its class names.
#[derive(Debug)]
pub struct CifarSplit {
    /// The samples.
    pub dataset: MemoryDataset,
    /// Class names.
    pub classes: Vec<String>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("reading", path, e))
}

/// `data`/`labels` of one python batch.
fn python_batch(
    path: &Path,
    label_key: &str,
    images: &mut Vec<u8>,
    labels: &mut Vec<i64>,
) -> Result<()> {
    let bytes = read(path)?;
    let v = unpickle(&bytes, &path.display().to_string())?;
    let Some(PVal::Array { shape, dtype, data }) = v.get("data") else {
        return Err(fmt_err(path, "no numpy array under 'data'"));
    };
    if !matches!(dtype.as_str(), "u1" | "|u1" | "uint8") {
        return Err(fmt_err(
            path,
            format!("'data' has dtype {dtype}, not uint8"),
        ));
    }
    let n = shape.first().copied().unwrap_or(0);
    if shape.len() != 2 || shape[1] != IMAGE_BYTES || data.len() != n * IMAGE_BYTES {
        return Err(fmt_err(
            path,
            format!(
                "'data' has shape {shape:?} and {} bytes; expected [N, 3072]",
                data.len()
            ),
        ));
    }
    let Some(PVal::List(ls)) = v.get(label_key) else {
        return Err(fmt_err(path, format!("no list under '{label_key}'")));
    };
    if ls.len() != n {
        return Err(fmt_err(path, format!("{} labels for {n} images", ls.len())));
    }
    for l in ls {
        match l {
            PVal::Int(i) => labels.push(*i),
            _ => {
                return Err(fmt_err(
                    path,
                    format!("a label in '{label_key}' is not an integer"),
                ));
            }
        }
    }
    images.extend_from_slice(data);
    Ok(())
}

fn binary_batch(
    path: &Path,
    label_bytes: usize,
    images: &mut Vec<u8>,
    labels: &mut Vec<i64>,
) -> Result<()> {
    let bytes = read(path)?;
    let rec = label_bytes + IMAGE_BYTES;
    if bytes.is_empty() || bytes.len() % rec != 0 {
        return Err(fmt_err(
            path,
            format!(
                "{} bytes is not a whole number of {rec}-byte records",
                bytes.len()
            ),
        ));
    }
    for r in bytes.chunks_exact(rec) {
        // CIFAR-100 records are <coarse><fine><pixels>: the fine label is the last label byte.
        labels.push(r[label_bytes - 1] as i64);
        images.extend_from_slice(&r[label_bytes..]);
    }
    Ok(())
}

fn names_from_pickle(path: &Path, key: &str) -> Result<Option<Vec<String>>> {
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = read(path)?;
    let v = unpickle(&bytes, &path.display().to_string())?;
    match v.get(key) {
        Some(PVal::List(l)) => Ok(Some(l.iter().filter_map(|x| x.text()).collect())),
        _ => Ok(None),
    }
}

fn names_from_text(path: &Path) -> Result<Option<Vec<String>>> {
    if !path.is_file() {
        return Ok(None);
    }
    let s = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    Ok(Some(
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
    ))
}

fn finish(
    name: String,
    images: Vec<u8>,
    labels: Vec<i64>,
    classes: Vec<String>,
    path: &Path,
) -> Result<CifarSplit> {
    if let Some(bad) = labels
        .iter()
        .find(|&&l| l < 0 || l as usize >= classes.len())
    {
        return Err(fmt_err(
            path,
            format!("label {bad} outside the {} classes", classes.len()),
        ));
    }
    Ok(CifarSplit {
        dataset: MemoryDataset::new(
            name,
            Values::U8(images),
            &[3, 32, 32],
            Targets::Labels(labels),
        )?,
        classes,
    })
}

/// Whether `dir` holds CIFAR-10 batches (python or binary).
pub fn is_cifar10(dir: &Path) -> bool {
    dir.join("data_batch_1").is_file() || dir.join("data_batch_1.bin").is_file()
}

/// Whether `dir` holds CIFAR-100 batches (python or binary).
pub fn is_cifar100(dir: &Path) -> bool {
    (dir.join("train").is_file() && dir.join("test").is_file()) || dir.join("train.bin").is_file()
}

/// CIFAR-10's train (`train = true`: batches 1–5) or test split from `dir`.
///
/// # Errors
/// `K0002` a missing batch; `K0107` a batch that is not what CIFAR-10's are.
pub fn cifar10(dir: &Path, train: bool) -> Result<CifarSplit> {
    let binary = dir.join("data_batch_1.bin").is_file();
    let stems: Vec<String> = if train {
        (1..=5).map(|k| format!("data_batch_{k}")).collect()
    } else {
        vec!["test_batch".into()]
    };
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for s in &stems {
        if binary {
            binary_batch(&dir.join(format!("{s}.bin")), 1, &mut images, &mut labels)?;
        } else {
            python_batch(&dir.join(s), "labels", &mut images, &mut labels)?;
        }
    }
    let classes = if binary {
        names_from_text(&dir.join("batches.meta.txt"))?
    } else {
        names_from_pickle(&dir.join("batches.meta"), "label_names")?
    }
    .unwrap_or_else(|| CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect());
    let name = format!("cifar10/{}", if train { "train" } else { "test" });
    finish(name, images, labels, classes, dir)
}

/// CIFAR-100's train or test split (fine labels) from `dir`.
///
/// # Errors
/// As [`cifar10`].
pub fn cifar100(dir: &Path, train: bool) -> Result<CifarSplit> {
    let stem = if train { "train" } else { "test" };
    let binary = dir.join("train.bin").is_file();
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    if binary {
        binary_batch(
            &dir.join(format!("{stem}.bin")),
            2,
            &mut images,
            &mut labels,
        )?;
    } else {
        python_batch(&dir.join(stem), "fine_labels", &mut images, &mut labels)?;
    }
    let classes = if binary {
        names_from_text(&dir.join("fine_label_names.txt"))?
    } else {
        names_from_pickle(&dir.join("meta"), "fine_label_names")?
    }
    .unwrap_or_else(|| (0..100).map(|i| i.to_string()).collect());
    finish(format!("cifar100/{stem}"), images, labels, classes, dir)
}
