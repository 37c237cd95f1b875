//! `Subset`: a selection of another data set's samples, optionally with relabelled classes
//! (e.g. "digits 0–4", or "digits 5–9, 20 per class, labelled 0–4" for fine-tuning).

use super::dataset::{Dataset, Task};
use crate::error::{Context, Error, Result};
use crate::rng::Generator;
use candle_core::Tensor;
use std::sync::Arc;

/// Samples `indices` of a parent data set (PyTorch's `torch.utils.data.Subset`), with the
/// labels possibly remapped.
#[derive(Clone)]
pub struct Subset {
    parent: Arc<dyn Dataset>,
    indices: Vec<usize>,
    labels: Vec<i64>,
    name: String,
}

impl std::fmt::Debug for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subset")
            .field("name", &self.name)
            .field("len", &self.indices.len())
            .finish()
    }
}

impl Subset {
    /// The samples at `indices` of `parent`, in that order.
    ///
    /// # Errors
    /// `K0003` for an index beyond the parent's length.
    pub fn new(parent: Arc<dyn Dataset>, indices: Vec<usize>) -> Result<Self> {
        let labels = indices
            .iter()
            .map(|&i| parent.label(i))
            .collect::<Result<Vec<_>>>()?;
        let name = format!("{}[subset of {}]", parent.name(), indices.len());
        Ok(Subset {
            parent,
            indices,
            labels,
            name,
        })
    }

    /// The samples whose label is in `classes`, in the parent's order ("digits 0–4":
    /// `Subset::with_labels(ds, &[0, 1, 2, 3, 4])`).
    ///
    /// # Errors
    /// `K0003` if the parent fails to report a label.
    pub fn with_labels(parent: Arc<dyn Dataset>, classes: &[i64]) -> Result<Self> {
        let mut indices = Vec::new();
        for i in 0..parent.len() {
            if classes.contains(&parent.label(i)?) {
                indices.push(i);
            }
        }
        Self::new(parent, indices)
    }

    /// `per_class` samples of each label in `classes`, chosen by a shuffle seeded with
    /// `seed` (deterministic), returned in the parent's order ("digits 5–9, 20 per class").
    ///
    /// # Errors
    /// `K0101` when a class has fewer than `per_class` samples (naming the class and count).
    pub fn per_class(
        parent: Arc<dyn Dataset>,
        classes: &[i64],
        per_class: usize,
        seed: u64,
    ) -> Result<Self> {
        let mut chosen = Vec::new();
        for (k, &c) in classes.iter().enumerate() {
            let mut members = Vec::new();
            for i in 0..parent.len() {
                if parent.label(i)? == c {
                    members.push(i);
                }
            }
            if members.len() < per_class {
                return Err(Error::EmptyDataset {
                    name: format!(
                        "{} (class {c}: only {} samples)",
                        parent.name(),
                        members.len()
                    ),
                    len: members.len(),
                    batch_size: per_class,
                    drop_last: true,
                });
            }
            let perm = Generator::derived(seed, k as u64).permutation(members.len());
            chosen.extend(perm.iter().take(per_class).map(|&p| members[p]));
        }
        chosen.sort_unstable();
        Self::new(parent, chosen)
    }

    /// Maps every label through `f` (e.g. `|l| l - 5` so digits 5–9 become classes 0–4).
    pub fn map_labels(mut self, f: impl Fn(i64) -> i64) -> Self {
        for l in &mut self.labels {
            *l = f(*l);
        }
        self
    }

    /// Renames the subset (used in messages).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The parent indices, in order.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    fn parent_index(&self, i: usize) -> Result<usize> {
        self.indices.get(i).copied().ok_or_else(|| {
            Error::invalid(
                format!("index into data set '{}'", self.name),
                i,
                format!("an index below its length {}", self.indices.len()),
            )
        })
    }
}

impl Dataset for Subset {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, i: usize) -> Result<(Tensor, i64)> {
        self.get_at_epoch(i, 0)
    }

    fn label(&self, i: usize) -> Result<i64> {
        self.parent_index(i)?;
        Ok(self.labels[i])
    }

    fn get_batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        self.get_batch_at_epoch(indices, 0)
    }

    fn task(&self) -> Task {
        self.parent.task()
    }

    fn target(&self, i: usize) -> Result<Tensor> {
        match self.parent.task() {
            Task::Regression => self.parent.target(self.parent_index(i)?),
            Task::Classification => {
                let l = self.label(i)?;
                Tensor::new(l, &candle_core::Device::Cpu).ctx("Subset target")
            }
        }
    }

    fn get_at_epoch(&self, i: usize, epoch: u64) -> Result<(Tensor, i64)> {
        let (x, _) = self.parent.get_at_epoch(self.parent_index(i)?, epoch)?;
        Ok((x, self.labels[i]))
    }

    fn get_batch_at_epoch(&self, indices: &[usize], epoch: u64) -> Result<(Tensor, Tensor)> {
        let parent: Vec<usize> = indices
            .iter()
            .map(|&i| self.parent_index(i))
            .collect::<Result<_>>()?;
        let (x, y) = self.parent.get_batch_at_epoch(&parent, epoch)?;
        if self.parent.task() == Task::Regression {
            return Ok((x, y));
        }
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i]).collect();
        let n = labels.len();
        let y = Tensor::from_vec(labels, n, x.device()).ctx("Subset labels")?;
        Ok((x, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::digits;

    #[test]
    fn digits_zero_to_four_and_twenty_per_class_relabelled() {
        let (train, _) = digits::train_test().unwrap();
        let train: Arc<dyn Dataset> = Arc::new(train);
        let low = Subset::with_labels(train.clone(), &[0, 1, 2, 3, 4]).unwrap();
        assert!((0..low.len()).all(|i| low.label(i).unwrap() < 5));
        let few = Subset::per_class(train.clone(), &[5, 6, 7, 8, 9], 20, 1)
            .unwrap()
            .map_labels(|l| l - 5);
        assert_eq!(few.len(), 100);
        for c in 0..5 {
            assert_eq!((0..100).filter(|&i| few.label(i).unwrap() == c).count(), 20);
        }
        let again = Subset::per_class(train.clone(), &[5, 6, 7, 8, 9], 20, 1).unwrap();
        assert_eq!(few.indices(), again.indices());
        let (x, y) = few.get_batch(&[0, 99]).unwrap();
        assert_eq!(x.dims(), &[2, 1, 8, 8]);
        assert!(
            y.to_vec1::<i64>()
                .unwrap()
                .iter()
                .all(|&l| (0..5).contains(&l))
        );
        let e = Subset::per_class(train, &[1], 10_000, 0).unwrap_err();
        assert_eq!(e.code(), "K0101");
    }
}
