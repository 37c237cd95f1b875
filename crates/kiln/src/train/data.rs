//! The data a [`TrainConfig`] names: the embedded digits, optionally restricted to some
//! classes (relabelled `0..k` in the order given) and to a few training images per class.

use super::config::{
    DEFAULT_IMAGE_SIZE, DEFAULT_VAL_SPLIT, DataConfig, TrainConfig, TransformKind,
};
use crate::data::digits::{self, Digits};
use crate::data::sources::{self, DataFormat, SourceOptions};
use crate::data::transforms::TransformedDataset;
use crate::data::transforms::{CenterCrop, Compose, Resize, imagenet_eval, imagenet_train};
use crate::data::{Dataset, Subset, Task};
use crate::error::{Error, Result};
use std::sync::Arc;

/// The data of a run and what the model must fit: the training and evaluation sets, the
/// number of outputs, the input channels and image side, and the task.
#[derive(Clone)]
pub struct RunData {
    /// Training samples.
    pub train: Arc<dyn Dataset>,
    /// Evaluation samples (reported as `test_loss` / `test_acc`).
    pub test: Arc<dyn Dataset>,
    /// Outputs of the model: `num_classes`, else the classes found (regression: the target
    /// width).
    pub outputs: usize,
    /// Input channels of a sample (CSV: the number of features, with `image_size` 1).
    pub in_channels: usize,
    /// Side of a (square) sample.
    pub image_size: usize,
    /// Classification or regression.
    pub task: Task,
    /// Class names (empty for regression and the digits).
    pub classes: Vec<String>,
}

impl std::fmt::Debug for RunData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunData")
            .field("train", &self.train.len())
            .field("test", &self.test.len())
            .field("outputs", &self.outputs)
            .field("in_channels", &self.in_channels)
            .field("image_size", &self.image_size)
            .field("task", &self.task)
            .finish()
    }
}

/// The data of `cfg`: the embedded digits ([`train_test`]) unless `cfg.data` names a source.
///
/// With a source: opened by [`sources::open`] (seed `cfg.seed`); evaluation on its
/// validation split, else its test split; `val_split` defaults to 0.2 when the source has
/// neither. Image folders are transformed to `S×S` (`image_size`, default 224) with the
/// ImageNet presets (training `imagenet_train(S)`, evaluation `imagenet_eval(S)`, random
/// draws keyed by `(seed, epoch, index)`) unless `transform` is `none` (resize and centre
/// crop only). MNIST gives 1×28×28, CIFAR 3×32×32, a CSV of F features F×1×1.
///
/// # Errors
/// The source's errors; `K0003` for a `num_classes` below the classes found, or a source
/// without an evaluation split and `val_split` 0.
pub fn run_data(cfg: &TrainConfig) -> Result<RunData> {
    let Some(d) = &cfg.data else {
        let (train, test) = train_test(cfg)?;
        return Ok(RunData {
            train,
            test,
            outputs: cfg.outputs(),
            in_channels: 1,
            image_size: digits::IMAGE_SIZE,
            task: Task::Classification,
            classes: Vec::new(),
        });
    };
    open_source(cfg, d)
}

/// Whether the source at `d.path` has a validation or test split of its own.
fn has_own_split(format: DataFormat, d: &DataConfig) -> bool {
    match format {
        DataFormat::Mnist
        | DataFormat::FashionMnist
        | DataFormat::Cifar10
        | DataFormat::Cifar100 => true,
        DataFormat::ImageFolder => {
            d.path.join("train").is_dir()
                && (d.path.join("val").is_dir() || d.path.join("test").is_dir())
        }
        DataFormat::Csv | DataFormat::Tensors => false,
    }
}

fn open_source(cfg: &TrainConfig, d: &DataConfig) -> Result<RunData> {
    let format = match d.format {
        Some(f) => f,
        None => sources::detect(&d.path)?,
    };
    let val_split = d.val_split.unwrap_or(if has_own_split(format, d) {
        0.0
    } else {
        DEFAULT_VAL_SPLIT
    });
    let opts = SourceOptions {
        format: Some(format),
        val_split,
        seed: cfg.seed,
        skip_bad: d.skip_bad_images,
        target: d.target.clone(),
        task: d.task,
        ..Default::default()
    };
    let splits = sources::open(&d.path, &opts)?;
    let meta = &splits.meta;
    let Some(eval) = splits.val.clone().or(splits.test.clone()) else {
        return Err(Error::invalid(
            "val_split",
            val_split,
            format!(
                "a fraction in (0, 1): {} has no validation or test split of its own",
                d.path.display()
            ),
        ));
    };
    let task = meta.task;
    let found = match task {
        Task::Classification => meta.classes.len(),
        Task::Regression => splits.train.target(0)?.elem_count().max(1),
    };
    if let Some(k) = cfg.num_classes
        && task == Task::Classification
        && k < found
    {
        return Err(Error::invalid(
            "num_classes",
            k,
            format!("at least the {found} classes found in {}", d.path.display()),
        ));
    }
    let outputs = cfg.num_classes.unwrap_or(found);
    let shape = meta.sample_shape.clone();
    let is_folder = format == DataFormat::ImageFolder;
    let transform = d.transform.unwrap_or(if is_folder {
        TransformKind::Imagenet
    } else {
        TransformKind::None
    });
    let (mut train, mut test) = (splits.train.clone(), eval);
    let (in_channels, image_size) = if shape.len() == 3 {
        let native = (shape[1] == shape[2] && shape[1] > 0).then_some(shape[1]);
        let size = d
            .image_size
            .or(if is_folder { None } else { native })
            .unwrap_or(DEFAULT_IMAGE_SIZE);
        let seed = cfg.seed;
        match transform {
            TransformKind::Imagenet => {
                train = Arc::new(TransformedDataset::new(train, imagenet_train(size), seed));
                test = Arc::new(TransformedDataset::new(test, imagenet_eval(size), seed));
            }
            TransformKind::None if native != Some(size) => {
                let fit = || {
                    Compose::new()
                        .then(Resize::new(size))
                        .then(CenterCrop::new(size))
                };
                train = Arc::new(TransformedDataset::new(train, fit(), seed));
                test = Arc::new(TransformedDataset::new(test, fit(), seed));
            }
            TransformKind::None => {}
        }
        (meta.channels.max(shape[0]), size)
    } else {
        if transform == TransformKind::Imagenet && d.transform.is_some() {
            return Err(Error::invalid(
                "transform",
                "imagenet",
                format!("none: {} holds no images", d.path.display()),
            ));
        }
        (shape.iter().product::<usize>().max(1), 1)
    };
    Ok(RunData {
        train,
        test,
        outputs,
        in_channels,
        image_size,
        task,
        classes: meta.classes.clone(),
    })
}

/// The training and test sets of `cfg`: the digits split, then `classes` (relabelled `0..k`
/// in the order given) and `per_class`. The `per_class` images are drawn from the training
/// split with `cfg.seed` (runs with the same seed train on the same images), and the test set
/// then holds every image of the classes that is not trained on: the test split plus the
/// unused rest of the training split (none of it was ever trained on).
///
/// # Errors
/// `K0101` when a class has fewer training images than `per_class`.
pub fn train_test(cfg: &TrainConfig) -> Result<(Arc<dyn Dataset>, Arc<dyn Dataset>)> {
    if cfg.classes.is_none() && cfg.per_class.is_none() {
        let (train, test) = digits::train_test()?;
        return Ok((Arc::new(train), Arc::new(test)));
    }
    let d = Digits::embedded()?;
    let (train_idx, mut held_idx) = d.split_indices();
    let train: Arc<dyn Dataset> = Arc::new(d.to_dataset("digits/train", &train_idx)?);
    let classes = cfg.class_list();
    let relabel = {
        let classes = classes.clone();
        move |l: i64| classes.iter().position(|&c| c == l).map_or(l, |p| p as i64)
    };
    let name = format!("digits {}", describe(&classes));
    let (train, test_name) = match cfg.per_class {
        Some(k) => {
            let chosen = Subset::per_class(train, &classes, k, cfg.seed)?;
            let used: std::collections::HashSet<usize> = chosen.indices().iter().copied().collect();
            held_idx.extend(
                (0..train_idx.len())
                    .filter(|p| !used.contains(p))
                    .map(|p| train_idx[p]),
            );
            held_idx.sort_unstable();
            (
                chosen.named(format!("{name}, {k} per class (train)")),
                format!("{name} (test split + unused training images)"),
            )
        }
        None => (
            Subset::with_labels(train, &classes)?.named(format!("{name} (train)")),
            format!("{name} (test)"),
        ),
    };
    let held: Arc<dyn Dataset> = Arc::new(d.to_dataset("digits/held-out", &held_idx)?);
    let test = Subset::with_labels(held, &classes)?
        .named(test_name)
        .map_labels(relabel.clone());
    Ok((Arc::new(train.map_labels(relabel)), Arc::new(test)))
}

fn describe(classes: &[i64]) -> String {
    let contiguous = classes.windows(2).all(|w| w[1] == w[0] + 1);
    match (classes.first(), classes.last()) {
        (Some(a), Some(b)) if contiguous && classes.len() > 2 => format!("{a}-{b}"),
        _ => classes
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_selected_relabelled_and_subsampled() {
        let mut cfg = TrainConfig::for_model("lenet");
        cfg.classes = Some(vec![5, 6, 7, 8, 9]);
        cfg.per_class = Some(20);
        let (train, test) = train_test(&cfg).unwrap();
        assert_eq!(train.len(), 100);
        let labels: Vec<i64> = (0..100).map(|i| train.label(i).unwrap()).collect();
        for c in 0..5 {
            assert_eq!(labels.iter().filter(|&&l| l == c).count(), 20);
        }
        // Every 5-9 image but the 100 trained on.
        let n = test.len();
        let (a, b) = digits::train_test().unwrap();
        let fives = a
            .labels()
            .iter()
            .chain(b.labels())
            .filter(|&&l| l >= 5)
            .count();
        assert_eq!(n, fives - 100);
        assert!((0..n).all(|i| (0..5).contains(&test.label(i).unwrap())));
        // Same seed, same images; another seed, other images.
        let (again, _) = train_test(&cfg).unwrap();
        assert_eq!(
            again.get(7).unwrap().0.to_vec3::<f32>().unwrap(),
            train.get(7).unwrap().0.to_vec3::<f32>().unwrap()
        );
        assert_eq!(describe(&[5, 6, 7, 8, 9]), "5-9");
        assert_eq!(describe(&[0, 2]), "0,2");
    }
}
