//! DistributedDataParallel logic over a thread group (the MPI run is in scripts/mpi-check.sh).

use candle_core::{Device, Tensor};
use kiln::models::{LeNet, LeNetConfig, Mlp, MlpConfig};
use kiln::nn::{Module, loss};
use kiln::optim::Grads;
use kiln::parallel::{Communicator, DdpOptions, DistributedDataParallel, ThreadGroup};
use std::sync::Arc;

fn data(n: usize) -> (Tensor, Tensor) {
    kiln::rng::manual_seed(123);
    let x = kiln::rng::with(|g| g.uniform_vec(n * 64, 0.0, 1.0));
    let y: Vec<i64> = (0..n as i64).map(|i| (i * 7) % 10).collect();
    (
        Tensor::from_vec(x, (n, 1, 8, 8), &Device::Cpu).unwrap(),
        Tensor::new(y.as_slice(), &Device::Cpu).unwrap(),
    )
}

fn sgd(params: &[kiln::Param], g: &Grads, lr: f64) {
    for p in params {
        if let Some(gr) = g.get(p) {
            p.set(&(p.detached() - (gr * lr).unwrap()).unwrap())
                .unwrap();
        }
    }
}

fn flat(m: &dyn Module) -> Vec<f32> {
    m.parameters()
        .iter()
        .flat_map(|p| {
            p.detached()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

const STEPS: usize = 6;
const B: usize = 8;

#[test]
fn two_ranks_equal_one_process_with_the_combined_batch() {
    let (x, y) = data(STEPS * 2 * B);
    // Single process, combined batch of 2B per step, rank 0's initial weights.
    kiln::rng::manual_seed(0);
    let single = LeNet::new(LeNetConfig::default()).unwrap();
    for s in 0..STEPS {
        let xb = x.narrow(0, s * 2 * B, 2 * B).unwrap();
        let yb = y.narrow(0, s * 2 * B, 2 * B).unwrap();
        let l = loss::cross_entropy(&single.forward(&xb).unwrap(), &yb).unwrap();
        let g = Grads::backward(&l, &single.parameters()).unwrap();
        sgd(&single.parameters(), &g, 0.1);
    }
    let want = flat(&single);

    let group = ThreadGroup::new(2);
    let results: Vec<Vec<Vec<f32>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = group
            .into_iter()
            .map(|c| {
                let (x, y) = (x.clone(), y.clone());
                scope.spawn(move || {
                    let rank = c.rank();
                    kiln::rng::manual_seed(rank as u64); // different init: DDP must broadcast
                    let m = LeNet::new(LeNetConfig::default()).unwrap();
                    let comm: Arc<dyn Communicator> = Arc::new(c);
                    let ddp =
                        DistributedDataParallel::new(Box::new(m), comm, DdpOptions::default())
                            .unwrap();
                    let mut per_step = Vec::new();
                    for s in 0..STEPS {
                        let off = s * 2 * B + rank * B;
                        let xb = x.narrow(0, off, B).unwrap();
                        let yb = y.narrow(0, off, B).unwrap();
                        let l = loss::cross_entropy(&ddp.forward(&xb).unwrap(), &yb).unwrap();
                        let mut g = Grads::backward(&l, &ddp.parameters()).unwrap();
                        ddp.reduce_gradients(&mut g).unwrap();
                        sgd(&ddp.parameters(), &g, 0.1);
                        per_step.push(flat(&ddp));
                    }
                    per_step
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (s, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        assert_eq!(a, b, "ranks differ after step {s}");
    }
    let got = &results[0][STEPS - 1];
    let max = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max < 1e-5, "max abs diff {max}");
}

#[test]
fn ranks_with_different_models_are_refused() {
    let group = ThreadGroup::new(2);
    let codes: Vec<String> = std::thread::scope(|scope| {
        let hs: Vec<_> = group
            .into_iter()
            .map(|c| {
                scope.spawn(move || {
                    let m: Box<dyn Module> = if c.rank() == 0 {
                        Box::new(LeNet::new(LeNetConfig::default()).unwrap())
                    } else {
                        Box::new(Mlp::new(&MlpConfig::default()).unwrap())
                    };
                    let comm: Arc<dyn Communicator> = Arc::new(c);
                    DistributedDataParallel::new(m, comm, DdpOptions::default())
                        .err()
                        .map(|e| format!("{} {e}", e.code()))
                        .unwrap_or_default()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for c in codes {
        assert!(c.starts_with("K0802") && c.contains("disagree"), "{c}");
    }
}

#[test]
fn no_sync_accumulation_equals_one_reduction() {
    let (x, y) = data(4 * B);
    let group = ThreadGroup::new(2);
    let out: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|scope| {
        let hs: Vec<_> = group
            .into_iter()
            .map(|c| {
                let (x, y) = (x.clone(), y.clone());
                scope.spawn(move || {
                    let rank = c.rank();
                    kiln::rng::manual_seed(0);
                    let comm: Arc<dyn Communicator> = Arc::new(c);
                    let ddp = DistributedDataParallel::new(
                        Box::new(LeNet::new(LeNetConfig::default()).unwrap()),
                        comm,
                        DdpOptions {
                            bucket_cap_mb: 0.01,
                            first_bucket_mb: 0.001,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                    assert!(ddp.buckets().len() > 2);
                    let grad = |i: usize| {
                        let off = (2 * i + rank) * B;
                        let l = loss::cross_entropy(
                            &ddp.forward(&x.narrow(0, off, B).unwrap()).unwrap(),
                            &y.narrow(0, off, B).unwrap(),
                        )
                        .unwrap();
                        Grads::backward(&l, &ddp.parameters()).unwrap()
                    };
                    let mut acc = {
                        let _guard = ddp.no_sync();
                        let mut g = grad(0);
                        ddp.reduce_gradients(&mut g).unwrap(); // skipped
                        g
                    };
                    acc.accumulate(&grad(1)).unwrap();
                    ddp.reduce_gradients(&mut acc).unwrap();
                    let mut a = grad(0);
                    ddp.reduce_gradients(&mut a).unwrap();
                    let mut b = grad(1);
                    ddp.reduce_gradients(&mut b).unwrap();
                    a.accumulate(&b).unwrap();
                    let f = |g: &Grads| -> Vec<f32> {
                        ddp.parameters()
                            .iter()
                            .flat_map(|p| {
                                g.get(p)
                                    .unwrap()
                                    .flatten_all()
                                    .unwrap()
                                    .to_vec1::<f32>()
                                    .unwrap()
                            })
                            .collect()
                    };
                    (f(&acc), f(&a))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (acc, sep) in out {
        let max = acc
            .iter()
            .zip(&sep)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max < 1e-6, "{max}");
    }
}

#[test]
fn ddp_state_dict_keys_carry_module_prefix() {
    let comm: Arc<dyn Communicator> = Arc::new(kiln::parallel::SingleProcess);
    let ddp = DistributedDataParallel::new(
        Box::new(LeNet::new(LeNetConfig::default()).unwrap()),
        comm,
        DdpOptions::default(),
    )
    .unwrap();
    assert!(ddp.state_dict().keys().all(|k| k.starts_with("module.")));
    assert_eq!(ddp.get_submodule("fc").err().unwrap().code(), "K0306");
}
