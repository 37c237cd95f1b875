//! `DistributedSampler`: each rank's disjoint share of the (shuffled) data set.

/// PyTorch's `DistributedSampler`: the epoch's permutation (a pure function of
/// `(seed, epoch)`, from kiln's generator) is padded by wrapping around to a multiple of the
/// world size (or truncated with `drop_last`), and rank `r` takes every `world`-th index from
/// position `r`. Call [`DistributedSampler::set_epoch`] every epoch so the order changes; a
/// resumed run rebuilds the same order from the epoch number.
#[derive(Clone, Debug)]
pub struct DistributedSampler {
    len: usize,
    world: usize,
    rank: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
    epoch: u64,
}

impl DistributedSampler {
    /// A sampler over `len` samples for `rank` of `world`.
    ///
    /// # Errors
    /// `K0003` when `rank >= world` or `world == 0`.
    pub fn new(
        len: usize,
        world: usize,
        rank: usize,
        shuffle: bool,
        seed: u64,
        drop_last: bool,
    ) -> crate::Result<Self> {
        if world == 0 || rank >= world {
            return Err(crate::Error::invalid(
                "DistributedSampler rank",
                format!("rank {rank} of {world}"),
                "0 <= rank < world size",
            ));
        }
        Ok(DistributedSampler {
            len,
            world,
            rank,
            shuffle,
            seed,
            drop_last,
            epoch: 0,
        })
    }

    /// Sets the epoch whose order [`Self::indices`] returns.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// Samples per rank.
    pub fn num_samples(&self) -> usize {
        if self.drop_last {
            self.len / self.world
        } else {
            self.len.div_ceil(self.world)
        }
    }

    /// The permutation of the whole data set for the current epoch (before splitting).
    pub fn epoch_order(&self) -> Vec<usize> {
        if self.shuffle {
            crate::rng::Generator::derived(self.seed, self.epoch).permutation(self.len)
        } else {
            (0..self.len).collect()
        }
    }

    /// This rank's indices for the current epoch.
    pub fn indices(&self) -> Vec<usize> {
        let mut order = self.epoch_order();
        let total = self.num_samples() * self.world;
        if order.is_empty() {
            return Vec::new();
        }
        if total > order.len() {
            let mut i = 0;
            while order.len() < total {
                order.push(order[i % self.len]);
                i += 1;
            }
        } else {
            order.truncate(total);
        }
        order
            .into_iter()
            .skip(self.rank)
            .step_by(self.world)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_disjoint_and_cover_the_data() {
        let mut all = Vec::new();
        for r in 0..3 {
            let mut s = DistributedSampler::new(12, 3, r, true, 7, false).unwrap();
            s.set_epoch(2);
            let idx = s.indices();
            assert_eq!(idx.len(), 4);
            all.extend(idx);
        }
        all.sort();
        assert_eq!(all, (0..12).collect::<Vec<_>>());
    }

    #[test]
    fn padding_and_drop_last_like_pytorch() {
        let s = DistributedSampler::new(10, 4, 3, false, 0, false).unwrap();
        assert_eq!(s.indices(), vec![3, 7, 1]);
        let s = DistributedSampler::new(10, 4, 3, false, 0, true).unwrap();
        assert_eq!(s.indices(), vec![3, 7]);
    }

    #[test]
    fn epoch_changes_order_and_is_reproducible() {
        let mut a = DistributedSampler::new(50, 2, 0, true, 1, false).unwrap();
        let e0 = a.indices();
        a.set_epoch(1);
        assert_ne!(e0, a.indices());
        a.set_epoch(0);
        assert_eq!(e0, a.indices());
        assert!(DistributedSampler::new(5, 2, 2, true, 0, false).is_err());
    }
}
