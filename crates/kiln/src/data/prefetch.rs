//! The worker threads of [`DataLoader::workers`]: batches of one epoch built ahead of the
//! consumer, in any thread, handed over in batch order.
//!
//! Workers claim batch indices in increasing order but never more than `capacity` ahead of
//! the batch the consumer waits for, so memory stays bounded. A batch's content depends only
//! on `(order, k, epoch)`, never on which worker built it. A worker that panics leaves a
//! `K0108` error in its batch's place; errors a data set returns are passed on unchanged.

use super::loader::{Batch, DataLoader};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

struct State {
    /// Next batch index a worker may claim.
    claim: usize,
    /// The batch the consumer is waiting for (or will ask for next).
    consumer: usize,
    ready: BTreeMap<usize, Result<Batch>>,
    stop: bool,
    /// Workers still running.
    alive: usize,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    end: usize,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker never panics while holding the lock (batches are built outside it), so a
        // poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(g).unwrap_or_else(|p| p.into_inner())
    }
}

/// Worker threads building the batches `start..end` of one epoch.
pub(crate) struct Prefetcher {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts `loader.num_workers()` threads for batches `start..end` of `order`.
    pub(crate) fn start(
        loader: &DataLoader,
        order: Arc<Vec<usize>>,
        epoch: u64,
        start: usize,
        end: usize,
    ) -> Self {
        let workers = loader.num_workers().max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                claim: start,
                consumer: start,
                ready: BTreeMap::new(),
                stop: false,
                alive: workers,
            }),
            changed: Condvar::new(),
            end,
            capacity: loader.prefetch_capacity().max(1),
        });
        let handles = (0..workers)
            .map(|w| {
                let shared = shared.clone();
                let loader = loader.clone();
                let order = order.clone();
                std::thread::spawn(move || work(w, &shared, &loader, &order, epoch))
            })
            .collect();
        Prefetcher { shared, handles }
    }

    /// Batch `k`, waiting for a worker to finish it.
    pub(crate) fn take(&self, k: usize) -> Result<Batch> {
        let s = &self.shared;
        let mut g = s.lock();
        g.consumer = k;
        s.changed.notify_all();
        loop {
            if let Some(b) = g.ready.remove(&k) {
                g.consumer = k + 1;
                s.changed.notify_all();
                return b;
            }
            if g.alive == 0 {
                return Err(Error::DataWorker {
                    worker: 0,
                    batch: k,
                    detail: "every worker stopped before building this batch".into(),
                });
            }
            g = s.wait(g);
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        for h in self.handles.drain(..) {
            // A worker's panic was caught and reported as K0108 already.
            let _joined = h.join();
        }
    }
}

fn work(worker: usize, s: &Shared, loader: &DataLoader, order: &[usize], epoch: u64) {
    loop {
        let k = {
            let mut g = s.lock();
            loop {
                if g.stop || g.claim >= s.end {
                    g.alive -= 1;
                    s.changed.notify_all();
                    return;
                }
                if g.claim < g.consumer + s.capacity {
                    break;
                }
                g = s.wait(g);
            }
            g.claim += 1;
            g.claim - 1
        };
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            loader.batch_in(order, k, epoch)
        }))
        .unwrap_or_else(|p| {
            let detail = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(Error::DataWorker {
                worker,
                batch: k,
                detail,
            })
        });
        let mut g = s.lock();
        g.ready.insert(k, built);
        s.changed.notify_all();
    }
}
