//! The scikit-learn "digits" data set (1,797 8×8 images, 10 classes), embedded in the binary.
//!
//! Source, licence and the file format are described in `data/README.md`; the file is made by
//! `scripts/make_digits.py` from scikit-learn's `digits.csv.gz`.

use super::dataset::TensorDataset;
use crate::error::{Error, Result};
use crate::rng::Generator;

/// The embedded file (`data/digits.bin`).
pub static DIGITS_BIN: &[u8] = include_bytes!("../../../../data/digits.bin");

/// Seed of the fixed train/test split (see [`train_test`]).
pub const DIGITS_SPLIT_SEED: u64 = 2026;

/// Fraction of each class that goes to the test set.
pub const TEST_FRACTION: f64 = 0.2;

/// Number of classes.
pub const NUM_CLASSES: usize = 10;

/// Image side in pixels.
pub const IMAGE_SIZE: usize = 8;

const MAGIC: &[u8; 8] = b"KDIGITS1";
const HEADER_LEN: usize = 8 + 5 * 4;
const MAX_PIXEL: u8 = 16;

/// The raw data set: `n` images of `rows × cols` pixels in `0..=16` and their labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digits {
    /// Pixels, row-major, image after image.
    pub pixels: Vec<u8>,
    /// Labels `0..classes`.
    pub labels: Vec<u8>,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// Number of classes.
    pub classes: usize,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::BadData {
        source_name: "digits.bin".into(),
        detail: detail.into(),
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32> {
    let b = bytes
        .get(at..at + 4)
        .ok_or_else(|| bad(format!("header ends before byte {}", at + 4)))?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Digits {
    /// The embedded data set.
    ///
    /// # Errors
    /// `K0103` if the embedded file is damaged (it is checked like any other file).
    pub fn embedded() -> Result<Self> {
        Self::parse(DIGITS_BIN)
    }

    /// Parses a file in the `digits.bin` format, checking magic, sizes, ranges and CRC-32.
    ///
    /// # Errors
    /// `K0103` naming what does not fit.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.get(..8) != Some(MAGIC.as_slice()) {
            return Err(bad("missing magic 'KDIGITS1'"));
        }
        let n = read_u32(bytes, 8)? as usize;
        let rows = read_u32(bytes, 12)? as usize;
        let cols = read_u32(bytes, 16)? as usize;
        let classes = read_u32(bytes, 20)? as usize;
        let crc = read_u32(bytes, 24)?;
        let npix = n
            .checked_mul(rows)
            .and_then(|v| v.checked_mul(cols))
            .ok_or_else(|| bad("image count overflows"))?;
        let payload = bytes.get(HEADER_LEN..).ok_or_else(|| bad("no payload"))?;
        if Some(payload.len()) != npix.checked_add(n) {
            return Err(bad(format!(
                "payload has {} bytes, header announces {n} images of {rows}x{cols} + labels = {}",
                payload.len(),
                npix.saturating_add(n)
            )));
        }
        let actual = crc32fast::hash(payload);
        if actual != crc {
            return Err(bad(format!(
                "checksum mismatch: header {crc:08x}, payload {actual:08x}"
            )));
        }
        let (pixels, labels) = payload.split_at(npix);
        if let Some(p) = pixels.iter().position(|&v| v > MAX_PIXEL) {
            return Err(bad(format!("pixel {p} has value {} > 16", pixels[p])));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= classes) {
            return Err(bad(format!("label {i} is {} >= {classes}", labels[i])));
        }
        Ok(Digits {
            pixels: pixels.to_vec(),
            labels: labels.to_vec(),
            rows,
            cols,
            classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The deterministic stratified split: for each class, its indices are shuffled by
    /// `Generator::derived(DIGITS_SPLIT_SEED, class)` and the first `round(TEST_FRACTION · n_c)`
    /// go to the test set. Returns `(train, test)` indices, each in file order.
    pub fn split_indices(&self) -> (Vec<usize>, Vec<usize>) {
        let mut is_test = vec![false; self.len()];
        for class in 0..self.classes {
            let members: Vec<usize> = (0..self.len())
                .filter(|&i| self.labels[i] as usize == class)
                .collect();
            let k = (members.len() as f64 * TEST_FRACTION).round() as usize;
            let perm =
                Generator::derived(DIGITS_SPLIT_SEED, class as u64).permutation(members.len());
            for &p in perm.iter().take(k) {
                is_test[members[p]] = true;
            }
        }
        let train = (0..self.len()).filter(|&i| !is_test[i]).collect();
        let test = (0..self.len()).filter(|&i| is_test[i]).collect();
        (train, test)
    }

    /// The images at `indices` as a data set of f32 `[1, rows, cols]` tensors scaled to
    /// `[0, 1]` (`pixel / 16`), with i64 labels.
    pub fn to_dataset(&self, name: &str, indices: &[usize]) -> Result<TensorDataset> {
        let per = self.rows * self.cols;
        let mut data = Vec::with_capacity(indices.len() * per);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let px = self.pixels.get(i * per..(i + 1) * per).ok_or_else(|| {
                Error::invalid("digits index", i, format!("below {}", self.len()))
            })?;
            data.extend(px.iter().map(|&v| v as f32 / MAX_PIXEL as f32));
            labels.push(self.labels[i] as i64);
        }
        TensorDataset::from_vec(name, data, &[1, self.rows, self.cols], labels)
    }
}

/// The embedded digits, split: `(train, test)` with 1,438 and 359 images.
///
/// # Errors
/// `K0103` if the embedded file is damaged.
pub fn train_test() -> Result<(TensorDataset, TensorDataset)> {
    let d = Digits::embedded()?;
    let (train, test) = d.split_indices();
    Ok((
        d.to_dataset("digits/train", &train)?,
        d.to_dataset("digits/test", &test)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;

    #[test]
    fn embedded_file_parses_with_the_documented_counts() {
        let d = Digits::embedded().unwrap();
        assert_eq!((d.len(), d.rows, d.cols, d.classes), (1797, 8, 8, 10));
        let counts: Vec<usize> = (0..10u8)
            .map(|c| d.labels.iter().filter(|&&l| l == c).count())
            .collect();
        assert_eq!(
            counts,
            vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        );
        // First row of sklearn's load_digits().images[0].
        assert_eq!(&d.pixels[..8], &[0, 0, 5, 13, 9, 1, 0, 0]);
        assert_eq!(d.labels[0], 0);
    }

    #[test]
    fn split_is_stratified_disjoint_and_fixed() {
        let d = Digits::embedded().unwrap();
        let (train, test) = d.split_indices();
        assert_eq!((train.len(), test.len()), (1438, 359));
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort();
        assert_eq!(all, (0..1797).collect::<Vec<_>>());
        assert_eq!(d.split_indices(), (train, test.clone()));
        for c in 0..10u8 {
            let k = test.iter().filter(|&&i| d.labels[i] == c).count();
            assert!((34..=37).contains(&k), "class {c}: {k}");
        }
    }

    #[test]
    fn images_are_scaled_to_unit_range() {
        let (train, _) = train_test().unwrap();
        let (x, _) = train.get(0).unwrap();
        assert_eq!(x.dims(), &[1, 8, 8]);
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert!(v.contains(&1.0) || v.iter().any(|&p| p > 0.5));
    }

    #[test]
    fn damaged_files_are_bad_data() {
        let mut b = DIGITS_BIN.to_vec();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(
            Digits::parse(&b)
                .unwrap_err()
                .to_string()
                .contains("checksum")
        );
        assert_eq!(Digits::parse(&b[..20]).unwrap_err().code(), "K0103");
        assert_eq!(Digits::parse(b"nope").unwrap_err().code(), "K0103");
        assert_eq!(
            Digits::parse(&DIGITS_BIN[..DIGITS_BIN.len() - 3])
                .unwrap_err()
                .code(),
            "K0103"
        );
    }
}
