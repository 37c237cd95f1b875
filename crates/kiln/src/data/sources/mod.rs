//! Data sources, each a [`Dataset`]: image folders (torchvision's `ImageFolder`), CSV
//! tables, MNIST / Fashion-MNIST IDX files, CIFAR-10/100 batches and tensors files, behind
//! one entry point, [`open`], which detects the format from the path.
//!
//! ```no_run
//! use kiln::data::sources::{SourceOptions, open};
//! let splits = open("data/flowers".as_ref(), &SourceOptions { val_split: 0.1, ..Default::default() })?;
//! println!("{} classes, samples of shape {:?}", splits.meta.classes.len(), splits.meta.sample_shape);
//! # Ok::<(), kiln::Error>(())
//! ```

pub mod cifar;
pub mod cifar_pickle;
pub mod csv;
pub mod decode;
pub mod idx;
pub mod image_folder;
pub mod memory;
pub mod tensors;

pub use decode::{DecodeLimits, decode_image};
pub use image_folder::{IMG_EXTENSIONS, ImageFolder};
pub use memory::{MemoryDataset, Targets, Values};

use crate::data::dataset::{Dataset, Task};
use crate::data::subset::Subset;
use crate::error::{Error, Result};
use crate::rng::Generator;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A shared data set.
type Shared = Arc<dyn Dataset>;

/// The formats [`open`] reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    /// A folder of class folders of images (`DIR/train`, `DIR/val`, `DIR/test` as splits).
    ImageFolder,
    /// A `.csv` table.
    Csv,
    /// MNIST IDX files.
    Mnist,
    /// Fashion-MNIST IDX files (MNIST's layout, other class names).
    FashionMnist,
    /// CIFAR-10 batches (python or binary).
    Cifar10,
    /// CIFAR-100 batches (python or binary).
    Cifar100,
    /// A `.safetensors` / `.pt` file with `inputs` and `labels`/`targets`.
    Tensors,
}

impl DataFormat {
    /// The name used in messages and on the command line (`image-folder`, `cifar10`).
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::ImageFolder => "image-folder",
            DataFormat::Csv => "csv",
            DataFormat::Mnist => "mnist",
            DataFormat::FashionMnist => "fashion-mnist",
            DataFormat::Cifar10 => "cifar10",
            DataFormat::Cifar100 => "cifar100",
            DataFormat::Tensors => "tensors",
        }
    }

    /// Parses [`DataFormat::name`].
    ///
    /// # Errors
    /// `K0305` for an unknown name.
    pub fn parse(text: &str) -> Result<Self> {
        use DataFormat::*;
        [
            ImageFolder,
            Csv,
            Mnist,
            FashionMnist,
            Cifar10,
            Cifar100,
            Tensors,
        ]
        .into_iter()
        .find(|f| f.name().eq_ignore_ascii_case(text))
        .ok_or_else(|| Error::Parse {
            what: "data format",
            text: text.into(),
            expected: "image-folder, csv, mnist, fashion-mnist, cifar10, cifar100, tensors".into(),
        })
    }
}

/// How [`open`] reads a source.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// The format; `None` detects it from the path.
    pub format: Option<DataFormat>,
    /// Fraction of the training samples held out as the validation split when the source
    /// has none of its own (0: no validation split).
    pub val_split: f64,
    /// Seed of the validation split's shuffle.
    pub seed: u64,
    /// Decode images to one grey channel (PIL's `convert("L")`) instead of RGB.
    pub grayscale: bool,
    /// Decode every image once when opening and leave out those that fail (counted in
    /// [`DataMeta::skipped`]) instead of failing on them later.
    pub skip_bad: bool,
    /// The CSV target column.
    pub target: String,
    /// Classification or regression; `None` decides from the data (see each source).
    pub task: Option<Task>,
    /// Image decoding limits.
    pub limits: DecodeLimits,
    /// Longest CSV line, in bytes.
    pub max_line_bytes: usize,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            format: None,
            val_split: 0.0,
            seed: 0,
            grayscale: false,
            skip_bad: false,
            target: "target".into(),
            task: None,
            limits: DecodeLimits::default(),
            max_line_bytes: csv::MAX_LINE_BYTES,
        }
    }
}

/// What a source is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct DataMeta {
    /// The format read.
    pub format: DataFormat,
    /// Class names, index order (empty for regression).
    pub classes: Vec<String>,
    /// Class name → index (torchvision's `class_to_idx`).
    pub class_to_idx: BTreeMap<String, i64>,
    /// Shape of one sample (`[C, H, W]`; `[C, 0, 0]` for image folders, whose images may
    /// differ in size; `[features]` for CSV).
    pub sample_shape: Vec<usize>,
    /// Channels of an image sample (1 for tables and tensors files of rank 1).
    pub channels: usize,
    /// Classification or regression.
    pub task: Task,
    /// CSV feature column names (empty otherwise).
    pub feature_names: Vec<String>,
    /// Images left out with `skip_bad`.
    pub skipped: usize,
}

/// The splits of a source and its metadata.
#[derive(Clone)]
pub struct DataSplits {
    /// Training samples.
    pub train: Arc<dyn Dataset>,
    /// Validation samples (the source's own, or `val_split` of the training set).
    pub val: Option<Arc<dyn Dataset>>,
    /// Test samples, when the source has them.
    pub test: Option<Arc<dyn Dataset>>,
    /// What the data is.
    pub meta: DataMeta,
}

impl std::fmt::Debug for DataSplits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataSplits")
            .field("train", &self.train.len())
            .field("val", &self.val.as_ref().map(|d| d.len()))
            .field("test", &self.test.as_ref().map(|d| d.len()))
            .field("meta", &self.meta)
            .finish()
    }
}

/// Where MNIST-like or CIFAR files are under `dir`: `dir` itself or the folder the archive
/// unpacks to.
fn locate(dir: &Path) -> Option<(DataFormat, PathBuf)> {
    let fashion = |p: &Path| p.to_string_lossy().to_ascii_lowercase().contains("fashion");
    let candidates = [
        dir.to_path_buf(),
        dir.join("raw"),
        dir.join("MNIST/raw"),
        dir.join("FashionMNIST/raw"),
        dir.join("cifar-10-batches-py"),
        dir.join("cifar-10-batches-bin"),
        dir.join("cifar-100-python"),
        dir.join("cifar-100-binary"),
    ];
    for d in candidates {
        if idx::find_idx(&d, "train-images-idx3-ubyte").is_some() {
            let f = if fashion(&d) {
                DataFormat::FashionMnist
            } else {
                DataFormat::Mnist
            };
            return Some((f, d));
        }
        if cifar::is_cifar10(&d) {
            return Some((DataFormat::Cifar10, d));
        }
        if cifar::is_cifar100(&d) {
            return Some((DataFormat::Cifar100, d));
        }
    }
    None
}

/// The format of `path`: by extension for files (`.csv`; `.safetensors`, `.pt`, `.pth`),
/// by the files inside for folders (IDX, CIFAR), else an image folder.
///
/// # Errors
/// `K0002` when the path does not exist; `K0107` a file of another extension.
pub fn detect(path: &Path) -> Result<DataFormat> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("opening", path, e))?;
    if meta.is_file() {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        return match ext.as_str() {
            "csv" => Ok(DataFormat::Csv),
            "safetensors" | "pt" | "pth" | "bin" => Ok(DataFormat::Tensors),
            _ => Err(Error::DataFormat {
                path: path.display().to_string(),
                format: "data source".into(),
                detail: "a file that is neither .csv nor .safetensors/.pt; give a folder for image folders, MNIST or CIFAR".into(),
            }),
        };
    }
    Ok(locate(path).map_or(DataFormat::ImageFolder, |(f, _)| f))
}

fn class_map(classes: &[String]) -> BTreeMap<String, i64> {
    classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), i as i64))
        .collect()
}

/// `(train, val)`: `frac` of `ds`'s samples, chosen by a seeded shuffle, as the validation
/// split (both in the original order).
///
/// # Errors
/// `K0003` for `frac` outside `[0, 1)`.
pub fn random_split(
    ds: Arc<dyn Dataset>,
    frac: f64,
    seed: u64,
) -> Result<(Shared, Option<Shared>)> {
    if !(0.0..1.0).contains(&frac) {
        return Err(Error::invalid("val_split", frac, "a fraction in [0, 1)"));
    }
    if frac == 0.0 {
        return Ok((ds, None));
    }
    let n = ds.len();
    let n_val = ((n as f64) * frac).round() as usize;
    // Stream u64::MAX - 1: apart from the loader's (seed, epoch) streams.
    let perm = Generator::derived(seed, u64::MAX - 1).permutation(n);
    let mut val: Vec<usize> = perm[..n_val].to_vec();
    let mut train: Vec<usize> = perm[n_val..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    let name = ds.name();
    let t = Subset::new(ds.clone(), train)?.named(format!("{name}/train"));
    let v = Subset::new(ds, val)?.named(format!("{name}/val"));
    Ok((Arc::new(t), Some(Arc::new(v))))
}

/// Opens the data source at `path` (see the module docs) and returns its splits.
///
/// - image folder: `DIR/train` + `DIR/val` (or `DIR/test`) when present, labelled with the
///   training classes; otherwise `DIR` itself and `val_split`.
/// - MNIST / CIFAR: the archive's train and test files; `val_split` of train as val.
/// - CSV / tensors: one table; `val_split` as val.
///
/// # Errors
/// `K0002` unreadable paths; `K0101` an image folder without images; `K0104`/`K0105` bad
/// images with `skip_bad`; `K0106` CSV cells; `K0107` IDX, CIFAR or tensors files that do
/// not match their format; `K0003` a bad `val_split`.
pub fn open(path: &Path, opts: &SourceOptions) -> Result<DataSplits> {
    let format = match opts.format {
        Some(f) => f,
        None => detect(path)?,
    };
    let mut meta = DataMeta {
        format,
        classes: Vec::new(),
        class_to_idx: BTreeMap::new(),
        sample_shape: Vec::new(),
        channels: 1,
        task: Task::Classification,
        feature_names: Vec::new(),
        skipped: 0,
    };
    let (train, val, test): (Shared, Option<Shared>, Option<Shared>) = match format {
        DataFormat::ImageFolder => {
            let train_dir = path.join("train");
            let has_splits = train_dir.is_dir();
            let root = if has_splits {
                train_dir
            } else {
                path.to_path_buf()
            };
            let mut train = ImageFolder::new(&root, opts.grayscale, opts.limits)?;
            meta.classes = train.classes().to_vec();
            meta.class_to_idx = class_map(&meta.classes);
            meta.channels = if opts.grayscale { 1 } else { 3 };
            meta.sample_shape = vec![meta.channels, 0, 0];
            let split = |name: &str| -> Result<Option<ImageFolder>> {
                let d = path.join(name);
                if !has_splits || !d.is_dir() {
                    return Ok(None);
                }
                ImageFolder::with_classes(
                    &d,
                    &meta.classes,
                    &meta.class_to_idx,
                    opts.grayscale,
                    opts.limits,
                )
                .map(Some)
            };
            let mut val = split("val")?;
            let mut test = split("test")?;
            if opts.skip_bad {
                meta.skipped += train.drop_bad()?;
                for s in [&mut val, &mut test].into_iter().flatten() {
                    meta.skipped += s.drop_bad()?;
                }
            }
            let train: Arc<dyn Dataset> = Arc::new(train);
            let arc = |d: Option<ImageFolder>| d.map(|d| Arc::new(d) as Arc<dyn Dataset>);
            let (val, test) = (arc(val), arc(test));
            if val.is_none() && test.is_none() {
                let (t, v) = random_split(train, opts.val_split, opts.seed)?;
                (t, v, None)
            } else if val.is_none() && opts.val_split > 0.0 {
                let (t, v) = random_split(train, opts.val_split, opts.seed)?;
                (t, v, test)
            } else {
                (train, val, test)
            }
        }
        DataFormat::Csv => {
            let t = csv::read_csv(path, &opts.target, opts.task, opts.max_line_bytes)?;
            meta.task = t.task;
            meta.classes = t.classes.clone();
            meta.class_to_idx = class_map(&t.classes);
            meta.sample_shape = t.dataset.sample_shape().to_vec();
            meta.feature_names = t.feature_names.clone();
            let (tr, v) = random_split(Arc::new(t.dataset), opts.val_split, opts.seed)?;
            (tr, v, None)
        }
        DataFormat::Tensors => {
            let (ds, task) = tensors::read_tensors(path, opts.task)?;
            meta.task = task;
            meta.sample_shape = ds.sample_shape().to_vec();
            meta.channels = if meta.sample_shape.len() == 3 {
                meta.sample_shape[0]
            } else {
                1
            };
            if let (Task::Classification, Targets::Labels(l)) = (task, ds.targets()) {
                let k = l.iter().copied().max().map_or(0, |m| m + 1).max(0);
                meta.classes = (0..k).map(|i| i.to_string()).collect();
                meta.class_to_idx = class_map(&meta.classes);
            }
            let (tr, v) = random_split(Arc::new(ds), opts.val_split, opts.seed)?;
            (tr, v, None)
        }
        DataFormat::Mnist | DataFormat::FashionMnist => {
            let dir = locate(path).map_or(path.to_path_buf(), |(_, d)| d);
            let load = |prefix: &str| -> Result<MemoryDataset> {
                let find = |stem: &str| {
                    idx::find_idx(&dir, stem).ok_or_else(|| {
                        Error::io(
                            "opening",
                            dir.join(stem),
                            std::io::Error::new(
                                std::io::ErrorKind::NotFound,
                                "no such IDX file (raw or .gz)",
                            ),
                        )
                    })
                };
                let ip = find(&format!("{prefix}-images-idx3-ubyte"))?;
                let lp = find(&format!("{prefix}-labels-idx1-ubyte"))?;
                let images = idx::read_idx(&ip, 3)?;
                let labels = idx::read_idx(&lp, 1)?;
                if images.dims[0] != labels.dims[0] {
                    return Err(Error::DataFormat {
                        path: lp.display().to_string(),
                        format: "IDX".into(),
                        detail: format!(
                            "{} labels for {} images in {}",
                            labels.dims[0],
                            images.dims[0],
                            ip.display()
                        ),
                    });
                }
                let labels = labels.data.iter().map(|&l| l as i64).collect();
                MemoryDataset::new(
                    format!("{}/{prefix}", format.name()),
                    Values::U8(images.data),
                    &[1, images.dims[1], images.dims[2]],
                    Targets::Labels(labels),
                )
            };
            let train = load("train")?;
            let test = load("t10k")?;
            meta.sample_shape = train.sample_shape().to_vec();
            meta.classes = if format == DataFormat::FashionMnist {
                [
                    "T-shirt/top",
                    "Trouser",
                    "Pullover",
                    "Dress",
                    "Coat",
                    "Sandal",
                    "Shirt",
                    "Sneaker",
                    "Bag",
                    "Ankle boot",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
            } else {
                [
                    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                ]
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{i} - {s}"))
                .collect()
            };
            meta.class_to_idx = class_map(&meta.classes);
            let (tr, v) = random_split(Arc::new(train), opts.val_split, opts.seed)?;
            (tr, v, Some(Arc::new(test) as Arc<dyn Dataset>))
        }
        DataFormat::Cifar10 | DataFormat::Cifar100 => {
            let dir = locate(path).map_or(path.to_path_buf(), |(_, d)| d);
            let read = if format == DataFormat::Cifar10 {
                cifar::cifar10
            } else {
                cifar::cifar100
            };
            let train = read(&dir, true)?;
            let test = read(&dir, false)?;
            meta.channels = 3;
            meta.sample_shape = vec![3, 32, 32];
            meta.classes = train.classes.clone();
            meta.class_to_idx = class_map(&meta.classes);
            let (tr, v) = random_split(Arc::new(train.dataset), opts.val_split, opts.seed)?;
            (tr, v, Some(Arc::new(test.dataset) as Arc<dyn Dataset>))
        }
    };
    Ok(DataSplits {
        train,
        val,
        test,
        meta,
    })
}
