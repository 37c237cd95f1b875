//! `kiln bench dp` and `kiln bench ddp`: what data parallelism buys on this machine.
//!
//! `dp` times a training step of one process with `DataParallel` over 1, 2, … CPU replicas
//! (threads) on the same batch. `ddp` runs under a launcher (`mpirun -np N kiln bench ddp`)
//! and splits each step into compute (forward + backward), the gradient all-reduce and the
//! optimizer update, so the cost of communication is visible beside the work it overlaps.

use super::checkpoint::median;
use kiln::error::{Context, Error, Result};
use kiln::nn::Module;
use kiln::nn::loss::cross_entropy;
use kiln::optim::Grads;
use kiln::parallel::{Communicator, DataParallel, DdpOptions, DistributedDataParallel};
use kiln::train::{TrainConfig, build_trainer};
use std::sync::Arc;
use std::time::Instant;

/// One row of `kiln bench dp`.
#[derive(Clone, Debug)]
pub struct DpRow {
    /// Number of replicas.
    pub replicas: usize,
    /// Median training-step time, ms.
    pub step_ms: f64,
}

fn config(model: &str, batch: usize) -> Result<TrainConfig> {
    if batch == 0 {
        return Err(Error::invalid("batch size", 0, "at least 1"));
    }
    let mut cfg = TrainConfig::for_model(model);
    cfg.batch_size = batch;
    cfg.scheduler = None;
    Ok(cfg)
}

/// Times `steps` training steps (after 5 warm-up steps) of `model` at `batch` with
/// `DataParallel` over each count of CPU replicas in `replicas`.
///
/// # Errors
/// `K0003` for a zero batch, step count or replica count; training errors.
pub fn data_parallel(
    model: &str,
    batch: usize,
    steps: usize,
    replicas: &[usize],
) -> Result<Vec<DpRow>> {
    if steps == 0 {
        return Err(Error::invalid("steps", 0, "at least 1"));
    }
    let mut rows = Vec::new();
    for &n in replicas {
        if n == 0 {
            return Err(Error::invalid("replicas", 0, "at least 1"));
        }
        let mut t = build_trainer(&config(model, batch)?)?;
        let devices = vec!["cpu"; n];
        let inner = t.take_model();
        t.model = Box::new(DataParallel::new(inner, &devices, None)?);
        let b = t.train_loader.batch(0, 0)?;
        let mut times = Vec::with_capacity(steps);
        for i in 0..steps + 5 {
            let started = Instant::now();
            t.train_step(&b)?;
            if i >= 5 {
                times.push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
        rows.push(DpRow {
            replicas: n,
            step_ms: median(times),
        });
    }
    Ok(rows)
}

/// The largest differences between `DataParallel` and the plain model.
#[derive(Clone, Debug)]
pub struct DpCheck {
    /// Max |output difference|.
    pub output: f64,
    /// Max |gradient difference| over all parameters.
    pub grad: f64,
    /// Number of parameter gradients compared.
    pub params: usize,
}

fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> Result<f64> {
    let cpu = candle_core::Device::Cpu;
    let a = a
        .to_device(&cpu)
        .and_then(|t| t.to_dtype(candle_core::DType::F64))
        .ctx("compare")?;
    let b = b
        .to_device(&cpu)
        .and_then(|t| t.to_dtype(candle_core::DType::F64))
        .ctx("compare")?;
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f64>())
        .ctx("compare")
}

/// Runs LeNet (no BatchNorm, no dropout) plain and under `DataParallel` over `devices`
/// (e.g. `["cuda:0", "cuda:0"]`) on the same batch of `batch` digits, and returns the largest
/// output and gradient differences. The plain model runs on `devices[0]`.
///
/// # Errors
/// Device, model and backward errors; `K0003` for an empty device list.
pub fn check_data_parallel(devices: &[&str], batch: usize) -> Result<DpCheck> {
    let first = devices
        .first()
        .ok_or_else(|| Error::invalid("devices", "empty", "at least one device"))?;
    let device = kiln::train::parse_device(first)?;
    let mut t = build_trainer(&config("lenet", batch)?)?;
    let b = t.train_loader.batch(0, 0)?;
    let model = t.take_model();
    model.to_device(&device)?;
    let x = b.inputs.to_device(&device).ctx("batch to device")?;
    let y = b.targets.to_device(&device).ctx("batch to device")?;
    let out = model.forward(&x)?;
    let params = model.parameters();
    let g = Grads::backward(&cross_entropy(&out, &y)?, &params)?;
    let plain: Vec<Option<candle_core::Tensor>> =
        params.iter().map(|p| g.get(p).cloned()).collect();
    let dp = DataParallel::new(model, devices, None)?;
    let out2 = dp.forward(&x)?;
    let params2 = dp.parameters();
    let g2 = Grads::backward(&cross_entropy(&out2, &y)?, &params2)?;
    let mut grad: f64 = 0.0;
    let mut n = 0;
    for (p, want) in params2.iter().zip(&plain) {
        match (g2.get(p), want) {
            (Some(got), Some(want)) => {
                grad = grad.max(max_abs_diff(got, want)?);
                n += 1;
            }
            (None, None) => {}
            _ => {
                return Err(Error::invalid(
                    "DataParallel gradients",
                    "missing",
                    "one per parameter",
                ));
            }
        }
    }
    Ok(DpCheck {
        output: max_abs_diff(&out, &out2)?,
        grad,
        params: n,
    })
}

/// Per-step medians of one rank under DDP, ms.
#[derive(Clone, Debug)]
pub struct DdpTimes {
    /// Processes in the group.
    pub world_size: usize,
    /// Batch per process.
    pub batch: usize,
    /// Gradient bytes all-reduced per step.
    pub grad_bytes: usize,
    /// Forward + loss + backward.
    pub compute_ms: f64,
    /// The bucketed gradient all-reduce (averaging included).
    pub allreduce_ms: f64,
    /// The optimizer update.
    pub update_ms: f64,
    /// The whole step.
    pub step_ms: f64,
}

/// Times `steps` DDP training steps (after 5 warm-up steps) of `model` with `batch` samples
/// per process, on the communicator `comm` (a one-process group measures the baseline).
///
/// # Errors
/// `K0003` for zero steps; `K0802` when a collective fails; training errors.
pub fn ddp(
    model: &str,
    batch: usize,
    steps: usize,
    comm: Arc<dyn Communicator>,
) -> Result<DdpTimes> {
    if steps == 0 {
        return Err(Error::invalid("steps", 0, "at least 1"));
    }
    let mut t = build_trainer(&config(model, batch)?)?;
    let world = comm.world_size();
    let inner = t.take_model();
    let ddp = DistributedDataParallel::new(inner, comm.clone(), DdpOptions::default())?;
    let loader = t.train_loader.clone().distributed(world, comm.rank())?;
    let b = loader.batch(0, 0)?;
    let (x, y) = (b.inputs.clone(), b.targets.clone());
    let params = ddp.parameters();
    let grad_bytes = params
        .iter()
        .map(|p| p.elem_count() * p.dtype().size_in_bytes())
        .sum();
    let (mut compute, mut reduce, mut update, mut total) = (vec![], vec![], vec![], vec![]);
    for i in 0..steps + 5 {
        comm.barrier()?;
        let t0 = Instant::now();
        let loss = cross_entropy(&ddp.forward(&x)?, &y)?;
        let mut grads = Grads::backward(&loss, &params)?;
        let t1 = Instant::now();
        ddp.reduce_gradients(&mut grads)?;
        let t2 = Instant::now();
        t.optimizer.step(&grads)?;
        let t3 = Instant::now();
        if i >= 5 {
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
            compute.push(ms(t0, t1));
            reduce.push(ms(t1, t2));
            update.push(ms(t2, t3));
            total.push(ms(t0, t3));
        }
    }
    // The ranks' medians, averaged over the ranks.
    let mut v = [
        median(compute),
        median(reduce),
        median(update),
        median(total),
    ];
    comm.all_reduce_sum_f64(&mut v)?;
    v.iter_mut().for_each(|x| *x /= world as f64);
    Ok(DdpTimes {
        world_size: world,
        batch,
        grad_bytes,
        compute_ms: v[0],
        allreduce_ms: v[1],
        update_ms: v[2],
        step_ms: v[3],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dp_rows_and_bad_arguments() {
        let rows = data_parallel("mlp", 8, 2, &[1, 2]).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.step_ms > 0.0));
        assert_eq!(
            data_parallel("mlp", 8, 0, &[1]).unwrap_err().code(),
            "K0003"
        );
        assert_eq!(
            data_parallel("mlp", 8, 1, &[0]).unwrap_err().code(),
            "K0003"
        );
    }

    #[test]
    fn dp_check_on_cpu_replicas_agrees() {
        let c = check_data_parallel(&["cpu", "cpu"], 10).unwrap();
        assert_eq!(c.params, 10);
        assert!(c.output < 1e-5 && c.grad < 1e-5, "{c:?}");
        assert_eq!(check_data_parallel(&[], 4).unwrap_err().code(), "K0003");
    }

    #[test]
    fn ddp_single_process_has_no_allreduce_cost_to_speak_of() {
        let t = ddp("mlp", 8, 2, Arc::new(kiln::parallel::SingleProcess)).unwrap();
        assert_eq!(t.world_size, 1);
        assert!(t.grad_bytes > 0 && t.step_ms >= t.compute_ms);
        assert!(t.allreduce_ms < t.step_ms);
    }
}
