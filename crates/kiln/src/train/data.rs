//! The data a [`TrainConfig`] names: the embedded digits, optionally restricted to some
//! classes (relabelled `0..k` in the order given) and to a few training images per class.

use super::config::TrainConfig;
use crate::data::digits::{self, Digits};
use crate::data::{Dataset, Subset};
use crate::error::Result;
use std::sync::Arc;

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
