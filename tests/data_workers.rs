//! `DataLoader::workers(n)`: batches bit-identical for n = 0, 1, 3 (random transforms
//! included), a mid-epoch start identical to the uninterrupted epoch, worker errors
//! delivered with their codes in batch order, a worker's panic as K0108.

use candle_core::Tensor;
use kiln::data::sources::{SourceOptions, open};
use kiln::data::transforms::{
    ColorJitter, Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop, TransformedDataset,
};
use kiln::data::{DataLoader, Dataset, TensorDataset};
use std::path::Path;
use std::sync::Arc;

fn augmented() -> Arc<dyn Dataset> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/imagefolder/train");
    let s = open(&root, &SourceOptions::default()).unwrap();
    let t = Compose::new()
        .then(RandomResizedCrop::new(8))
        .then(RandomHorizontalFlip::default())
        .then(ColorJitter {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
        })
        .then(Normalize::imagenet());
    Arc::new(TransformedDataset::new(s.train, t, 11))
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn epoch(l: &DataLoader, e: u64, start: usize) -> Vec<(Vec<usize>, Vec<u32>, Vec<i64>)> {
    l.epoch_from(e, start)
        .unwrap()
        .map(|b| {
            let b = b.unwrap();
            (
                b.indices.clone(),
                bits(&b.inputs),
                b.targets.to_vec1::<i64>().unwrap(),
            )
        })
        .collect()
}

#[test]
fn batches_are_bit_identical_for_0_1_and_3_workers() {
    let ds = augmented();
    let base = DataLoader::new(ds, 2).unwrap().shuffle(true).seed(4);
    for e in 0..2 {
        let want = epoch(&base, e, 0);
        assert_eq!(want.len(), 4);
        for n in [1, 3] {
            assert_eq!(
                epoch(&base.clone().workers(n), e, 0),
                want,
                "workers={n} epoch={e}"
            );
        }
        // a resumed epoch (start at batch 2) is the tail of the uninterrupted one
        assert_eq!(epoch(&base.clone().workers(3), e, 2), want[2..].to_vec());
    }
    // the augmentation changes with the epoch
    assert_ne!(
        epoch(&base, 0, 0)[0].1,
        epoch(&base.clone().seed(4), 1, 0)[0].1
    );
}

#[test]
fn dropping_an_epoch_early_stops_the_workers() {
    let l = DataLoader::new(augmented(), 1)
        .unwrap()
        .workers(3)
        .prefetch_factor(1);
    let mut it = l.epoch(0).unwrap();
    assert!(it.next().unwrap().is_ok());
    drop(it); // joins the workers; must not hang
    assert_eq!(l.prefetch_capacity(), 3);
}

struct Faulty {
    inner: TensorDataset,
    fail_at: usize,
    panic: bool,
}

impl Dataset for Faulty {
    fn name(&self) -> String {
        "faulty".into()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, i: usize) -> kiln::Result<(Tensor, i64)> {
        if i == self.fail_at {
            if self.panic {
                panic!("sample {i} exploded");
            }
            return Err(kiln::Error::BadData {
                source_name: "faulty".into(),
                detail: format!("sample {i}"),
            });
        }
        self.inner.get(i)
    }
}

fn faulty(panic: bool) -> Arc<dyn Dataset> {
    let inner = TensorDataset::from_vec(
        "t",
        (0..20).map(|v| v as f32).collect(),
        &[1],
        (0..20).collect(),
    )
    .unwrap();
    Arc::new(Faulty {
        inner,
        fail_at: 7,
        panic,
    })
}

#[test]
fn worker_errors_keep_their_code_and_position() {
    for n in [0, 1, 3] {
        let l = DataLoader::new(faulty(false), 2).unwrap().workers(n);
        let r: Vec<kiln::Result<kiln::data::Batch>> = l.epoch(0).unwrap().collect();
        assert_eq!(r.len(), 10);
        for (k, b) in r.iter().enumerate() {
            match b {
                Ok(b) => assert_ne!(k, 3, "{:?}", b.indices),
                Err(e) => {
                    assert_eq!((k, e.code()), (3, "K0103"), "workers={n}");
                    assert!(e.to_string().contains("sample 7"));
                }
            }
        }
    }
}

#[test]
fn a_panicking_worker_is_k0108_not_a_lost_batch() {
    let l = DataLoader::new(faulty(true), 2).unwrap().workers(2);
    let r: Vec<_> = l.epoch(0).unwrap().collect();
    assert_eq!(r.len(), 10);
    let e = r[3].as_ref().unwrap_err();
    assert_eq!(e.code(), "K0108");
    assert!(
        e.to_string().contains("batch 3") && e.to_string().contains("exploded"),
        "{e}"
    );
    assert!(r.iter().enumerate().all(|(k, b)| k == 3 || b.is_ok()));
}
