//! `TransformedDataset`: a data set whose inputs pass through a transform, with each
//! sample's randomness keyed by `(seed, epoch, index)`.

use super::{Image, Transform, sample_rng};
use crate::data::dataset::{Dataset, Task, regression_batch, stack_samples};
use crate::error::Result;
use candle_core::Tensor;
use std::sync::Arc;

/// `source` with `transform` applied to every input (torchvision's `transform=` argument).
/// The epoch comes from the loader ([`Dataset::get_at_epoch`]); plain [`Dataset::get`]
/// uses epoch 0.
#[derive(Clone)]
pub struct TransformedDataset {
    source: Arc<dyn Dataset>,
    transform: Arc<dyn Transform>,
    seed: u64,
}

impl std::fmt::Debug for TransformedDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformedDataset")
            .field("source", &self.source.name())
            .field("transform", &self.transform.name())
            .field("seed", &self.seed)
            .finish()
    }
}

impl TransformedDataset {
    /// `source` through `transform`, random draws seeded by `seed`.
    pub fn new(source: Arc<dyn Dataset>, transform: impl Transform + 'static, seed: u64) -> Self {
        TransformedDataset {
            source,
            transform: Arc::new(transform),
            seed,
        }
    }

    /// The untransformed data set.
    pub fn source(&self) -> &Arc<dyn Dataset> {
        &self.source
    }

    fn transformed(&self, i: usize, epoch: u64) -> Result<(Tensor, i64)> {
        let (x, y) = self.source.get_at_epoch(i, epoch)?;
        let img = Image::from_tensor(&x)?;
        let mut rng = sample_rng(self.seed, epoch, i as u64);
        let out = self.transform.apply(img, &mut rng)?;
        Ok((out.to_tensor()?, y))
    }
}

impl Dataset for TransformedDataset {
    fn name(&self) -> String {
        self.source.name()
    }

    fn len(&self) -> usize {
        self.source.len()
    }

    fn get(&self, i: usize) -> Result<(Tensor, i64)> {
        self.transformed(i, 0)
    }

    fn label(&self, i: usize) -> Result<i64> {
        self.source.label(i)
    }

    fn get_batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        self.get_batch_at_epoch(indices, 0)
    }

    fn task(&self) -> Task {
        self.source.task()
    }

    fn target(&self, i: usize) -> Result<Tensor> {
        self.source.target(i)
    }

    fn get_at_epoch(&self, i: usize, epoch: u64) -> Result<(Tensor, i64)> {
        self.transformed(i, epoch)
    }

    fn get_batch_at_epoch(&self, indices: &[usize], epoch: u64) -> Result<(Tensor, Tensor)> {
        if self.task() == Task::Regression {
            return regression_batch(self, indices, epoch);
        }
        let samples = indices
            .iter()
            .map(|&i| self.transformed(i, epoch))
            .collect::<Result<Vec<_>>>()?;
        stack_samples(&samples)
    }
}
