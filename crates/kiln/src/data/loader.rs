//! `DataLoader`: batches of a [`Dataset`] with batch size, shuffling and `drop_last`, whose
//! order is a pure function of `(seed, epoch)`.
//!
//! Each epoch's order is `Generator::derived(seed, epoch).permutation(len)` when shuffling
//! (`0..len` otherwise), so any batch of any epoch can be rebuilt without replaying earlier
//! ones: this is what a mid-epoch resume needs ([`DataLoader::epoch_from`]).
//!
//! With [`DataLoader::workers`]`(n)`, `n` threads build the batches of an epoch ahead of the
//! consumer (at most `prefetch_factor · n` batches ahead; see [`super::prefetch`]). A batch is
//! a pure function of `(seed, epoch, k)` — random transforms are keyed by the sample index,
//! not by a shared stream — so the batches are bit-identical for every `n`.

use super::dataset::Dataset;
use super::prefetch::Prefetcher;
use crate::error::{Error, Result};
use crate::rng::Generator;
use candle_core::Tensor;
use std::sync::Arc;

/// One batch: inputs `[B, ...]`, i64 labels `[B]`, and the data-set indices it holds.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Stacked inputs.
    pub inputs: Tensor,
    /// Labels (i64), or f32 targets for a regression data set.
    pub targets: Tensor,
    /// Which samples of the data set, in batch order.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Number of samples in the batch.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty (never, for batches a loader yields).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// Iterates over a data set in batches (PyTorch's `DataLoader` with the default collate).
#[derive(Clone)]
pub struct DataLoader {
    dataset: Arc<dyn Dataset>,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    seed: u64,
    /// `(world_size, rank)` when each process loads only its share (DDP).
    distributed: Option<(usize, usize)>,
    /// Worker threads building batches ahead (0: in the caller's thread).
    workers: usize,
    /// Batches each worker may have ready ahead of the consumer.
    prefetch_factor: usize,
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("dataset", &self.dataset.name())
            .field("len", &self.dataset.len())
            .field("batch_size", &self.batch_size)
            .field("shuffle", &self.shuffle)
            .field("drop_last", &self.drop_last)
            .field("seed", &self.seed)
            .field("workers", &self.workers)
            .finish()
    }
}

impl DataLoader {
    /// A loader with `batch_size`, no shuffling, `drop_last = false`, seed 0.
    ///
    /// # Errors
    /// `K0003` for `batch_size == 0`.
    pub fn new(dataset: Arc<dyn Dataset>, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::invalid(
                "batch_size",
                0,
                "a positive integer (PyTorch: batch_size should be a positive integer value)",
            ));
        }
        Ok(DataLoader {
            dataset,
            batch_size,
            shuffle: false,
            drop_last: false,
            seed: 0,
            distributed: None,
            workers: 0,
            prefetch_factor: 2,
        })
    }

    /// Builds batches in `n` worker threads ahead of the consumer (builder; PyTorch's
    /// `num_workers`). `0` (the default) builds them in the caller's thread. The batches are
    /// identical for every `n`; errors of a worker reach the consumer with their own codes,
    /// in batch order.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Batches each worker may prepare ahead (builder; PyTorch's `prefetch_factor`, default
    /// 2): at most `prefetch_factor · workers` batches wait in memory. Values below 1 count as 1.
    pub fn prefetch_factor(mut self, k: usize) -> Self {
        self.prefetch_factor = k.max(1);
        self
    }

    /// The number of worker threads.
    pub fn num_workers(&self) -> usize {
        self.workers
    }

    /// Batches prepared ahead at most (`prefetch_factor · workers`).
    pub fn prefetch_capacity(&self) -> usize {
        self.prefetch_factor * self.workers
    }

    /// Loads only rank `rank`'s share of each epoch, as PyTorch's `DistributedSampler`
    /// gives it (builder): the epoch's permutation is padded to a multiple of `world_size`
    /// and rank `r` takes every `world_size`-th index from position `r`.
    ///
    /// # Errors
    /// `K0003` when `rank >= world_size`.
    pub fn distributed(mut self, world_size: usize, rank: usize) -> Result<Self> {
        crate::parallel::DistributedSampler::new(1, world_size, rank, false, 0, false)?;
        self.distributed = Some((world_size, rank));
        Ok(self)
    }

    fn sampler(&self) -> Option<crate::parallel::DistributedSampler> {
        let (world, rank) = self.distributed?;
        crate::parallel::DistributedSampler::new(
            self.dataset.len(),
            world,
            rank,
            self.shuffle,
            self.seed,
            false,
        )
        .ok()
    }

    /// Samples this loader's process sees per epoch (the whole data set unless distributed).
    fn samples_per_epoch(&self) -> usize {
        match self.sampler() {
            Some(s) => s.num_samples(),
            None => self.dataset.len(),
        }
    }

    /// Shuffles each epoch (builder).
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// Drops the last incomplete batch (builder).
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// The seed from which every epoch's order is derived (builder).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The data set.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Whether epochs are shuffled.
    pub fn is_shuffled(&self) -> bool {
        self.shuffle
    }

    /// Whether the last incomplete batch is dropped.
    pub fn drops_last(&self) -> bool {
        self.drop_last
    }

    /// The seed.
    pub fn seed_value(&self) -> u64 {
        self.seed
    }

    /// Number of batches per epoch (`len(loader)` in PyTorch).
    pub fn num_batches(&self) -> usize {
        let n = self.samples_per_epoch();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Number of samples one epoch visits (fewer than the data set with `drop_last`).
    pub fn num_samples(&self) -> usize {
        if self.drop_last {
            self.num_batches() * self.batch_size
        } else {
            self.samples_per_epoch()
        }
    }

    /// The order in which epoch `epoch` visits the data set: a pure function of
    /// `(seed, epoch)` when shuffling, `0..len` otherwise.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        if let Some(mut s) = self.sampler() {
            s.set_epoch(epoch);
            return s.indices();
        }
        let n = self.dataset.len();
        if self.shuffle {
            Generator::derived(self.seed, epoch).permutation(n)
        } else {
            (0..n).collect()
        }
    }

    fn check_nonempty(&self) -> Result<()> {
        if self.num_batches() == 0 {
            return Err(Error::EmptyDataset {
                name: self.dataset.name(),
                len: self.dataset.len(),
                batch_size: self.batch_size,
                drop_last: self.drop_last,
            });
        }
        Ok(())
    }

    /// Batch `k` of epoch `epoch`.
    ///
    /// # Errors
    /// `K0101` when the loader yields no batch; `K0003` when `k >= num_batches()`.
    pub fn batch(&self, epoch: u64, k: usize) -> Result<Batch> {
        self.check_nonempty()?;
        let order = self.order(epoch);
        self.batch_in(&order, k, epoch)
    }

    pub(crate) fn batch_in(&self, order: &[usize], k: usize, epoch: u64) -> Result<Batch> {
        if k >= self.num_batches() {
            return Err(Error::invalid(
                "batch index",
                k,
                format!("below the number of batches {}", self.num_batches()),
            ));
        }
        let start = k * self.batch_size;
        let end = (start + self.batch_size).min(order.len());
        let indices = order[start..end].to_vec();
        let (inputs, targets) = self.dataset.get_batch_at_epoch(&indices, epoch)?;
        Ok(Batch {
            inputs,
            targets,
            indices,
        })
    }

    /// The batches of epoch `epoch`, from the first.
    ///
    /// # Errors
    /// `K0101` when the data set is empty, or `drop_last` with a batch larger than the data
    /// leaves no batch.
    pub fn epoch(&self, epoch: u64) -> Result<EpochIter<'_>> {
        self.epoch_from(epoch, 0)
    }

    /// The batches of epoch `epoch` starting at batch `start` (for a resume mid-epoch: the
    /// batches are exactly those an uninterrupted epoch would have yielded from `start` on).
    ///
    /// # Errors
    /// `K0101` as [`DataLoader::epoch`]; `K0003` when `start > num_batches()`.
    pub fn epoch_from(&self, epoch: u64, start: usize) -> Result<EpochIter<'_>> {
        self.check_nonempty()?;
        if start > self.num_batches() {
            return Err(Error::invalid(
                "start batch",
                start,
                format!("at most the number of batches {}", self.num_batches()),
            ));
        }
        let order = Arc::new(self.order(epoch));
        let prefetch = (self.workers > 0)
            .then(|| Prefetcher::start(self, order.clone(), epoch, start, self.num_batches()));
        Ok(EpochIter {
            loader: self,
            order,
            epoch,
            next: start,
            prefetch,
        })
    }
}

/// The batches of one epoch; yields `Result<Batch>`. With workers, dropping the iterator
/// stops and joins them.
pub struct EpochIter<'a> {
    loader: &'a DataLoader,
    order: Arc<Vec<usize>>,
    epoch: u64,
    next: usize,
    prefetch: Option<Prefetcher>,
}

impl EpochIter<'_> {
    /// Index of the batch the next call to `next` yields.
    pub fn position(&self) -> usize {
        self.next
    }
}

impl Iterator for EpochIter<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.loader.num_batches() {
            return None;
        }
        let b = match &self.prefetch {
            Some(p) => p.take(self.next),
            None => self.loader.batch_in(&self.order, self.next, self.epoch),
        };
        self.next += 1;
        Some(b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.loader.num_batches().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TensorDataset;

    fn ds(n: usize) -> Arc<dyn Dataset> {
        let data: Vec<f32> = (0..n).map(|v| v as f32).collect();
        let labels: Vec<i64> = (0..n as i64).collect();
        Arc::new(TensorDataset::from_vec("toy", data, &[1], labels).unwrap())
    }

    fn all_indices(l: &DataLoader, epoch: u64, start: usize) -> Vec<Vec<usize>> {
        l.epoch_from(epoch, start)
            .unwrap()
            .map(|b| b.unwrap().indices)
            .collect()
    }

    #[test]
    fn batch_counts_with_and_without_drop_last() {
        let l = DataLoader::new(ds(10), 4).unwrap();
        assert_eq!(l.num_batches(), 3);
        let sizes: Vec<usize> = l.epoch(0).unwrap().map(|b| b.unwrap().len()).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        let l = l.drop_last(true);
        assert_eq!((l.num_batches(), l.num_samples()), (2, 8));
    }

    #[test]
    fn order_is_a_pure_function_of_seed_and_epoch() {
        let l = DataLoader::new(ds(50), 8).unwrap().shuffle(true).seed(3);
        assert_eq!(all_indices(&l, 2, 0), all_indices(&l.clone(), 2, 0));
        assert_ne!(all_indices(&l, 2, 0), all_indices(&l, 3, 0));
        assert_ne!(l.order(2), l.clone().seed(4).order(2));
        let unshuffled = DataLoader::new(ds(50), 8).unwrap();
        assert_eq!(unshuffled.order(7), (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn starting_at_batch_k_yields_the_tail_of_the_epoch() {
        let l = DataLoader::new(ds(37), 5).unwrap().shuffle(true).seed(9);
        let full = all_indices(&l, 4, 0);
        assert_eq!(all_indices(&l, 4, 3), full[3..].to_vec());
        assert!(all_indices(&l, 4, l.num_batches()).is_empty());
        assert_eq!(l.epoch_from(4, 99).err().map(|e| e.code()), Some("K0003"));
        let batches = l.batch(4, 2).unwrap();
        assert_eq!(batches.indices, full[2]);
        let x: Vec<f32> = batches.inputs.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(x, full[2].iter().map(|&i| i as f32).collect::<Vec<_>>());
    }

    #[test]
    fn empty_or_all_dropped_is_k0101_with_the_numbers() {
        let l = DataLoader::new(ds(0), 4).unwrap();
        assert_eq!(l.epoch(0).err().map(|e| e.code()), Some("K0101"));
        let l = DataLoader::new(ds(3), 4).unwrap().drop_last(true);
        let e = l.epoch(0).err().unwrap();
        assert_eq!(e.code(), "K0101");
        let s = e.to_string();
        assert!(
            s.contains("3 samples") && s.contains("batch_size=4") && s.contains("drop_last=true")
        );
        assert_eq!(DataLoader::new(ds(3), 0).unwrap_err().code(), "K0003");
    }
}
