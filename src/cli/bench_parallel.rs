//! `kiln bench dp` and `kiln bench ddp` (see [`crate::bench::parallel`]).

use kiln::error::Result;
use std::process::ExitCode;

/// Arguments of `kiln bench dp`.
#[derive(clap::Args, Debug)]
pub struct DpArgs {
    /// Architecture.
    #[arg(long, short = 'm', default_value = "lenet", value_parser = clap::builder::PossibleValuesParser::new(kiln::models::ARCHITECTURES))]
    pub model: String,
    /// Batch size of one step (split over the replicas).
    #[arg(long, short = 'b', default_value_t = 64)]
    pub batch_size: usize,
    /// Timed steps per replica count (after 5 warm-up steps); the median is reported.
    #[arg(long, short = 'n', default_value_t = 50)]
    pub steps: usize,
    /// Replica counts to compare, comma-separated (each a CPU "device").
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 2])]
    pub replicas: Vec<usize>,
    /// Instead of timing: check that DataParallel over these devices (e.g. cuda:0,cuda:0)
    /// gives LeNet's plain outputs and gradients within --tolerance; exit 1 if not.
    #[arg(long, value_delimiter = ',')]
    pub check: Option<Vec<String>>,
    /// Largest absolute difference --check accepts.
    #[arg(long, default_value_t = 1e-5)]
    pub tolerance: f64,
}

/// Arguments of `kiln bench ddp`.
#[derive(clap::Args, Debug)]
pub struct DdpArgs {
    /// Architecture.
    #[arg(long, short = 'm', default_value = "lenet", value_parser = clap::builder::PossibleValuesParser::new(kiln::models::ARCHITECTURES))]
    pub model: String,
    /// Batch size per process.
    #[arg(long, short = 'b', default_value_t = 32)]
    pub batch_size: usize,
    /// Timed steps (after 5 warm-up steps); medians are reported.
    #[arg(long, short = 'n', default_value_t = 50)]
    pub steps: usize,
}

/// Runs `kiln bench dp`: one line per replica count and the speed-up over the first.
///
/// # Errors
/// Benchmark errors.
pub fn run_dp(a: &DpArgs) -> Result<ExitCode> {
    if let Some(devices) = &a.check {
        let ids: Vec<&str> = devices.iter().map(String::as_str).collect();
        let c = crate::bench::parallel::check_data_parallel(&ids, a.batch_size)?;
        let ok = c.output <= a.tolerance && c.grad <= a.tolerance;
        println!(
            "DataParallel over {}: max |output diff| {:.3e}, max |grad diff| {:.3e} over {} parameters (tolerance {:.0e}): {}",
            devices.join(","),
            c.output,
            c.grad,
            c.params,
            a.tolerance,
            if ok { "ok" } else { "FAILED" }
        );
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let rows = crate::bench::parallel::data_parallel(&a.model, a.batch_size, a.steps, &a.replicas)?;
    let base = rows.first().map_or(1.0, |r| r.step_ms);
    for r in &rows {
        println!(
            "DataParallel {} batch {} replicas {}: {:.3} ms/step median over {} steps, speed-up x{:.2}",
            a.model,
            a.batch_size,
            r.replicas,
            r.step_ms,
            a.steps,
            base / r.step_ms
        );
    }
    println!(
        "({} CPU cores here)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `kiln bench ddp` on every rank; rank 0 prints the step split into compute,
/// all-reduce and update, and the throughput of the whole group.
///
/// # Errors
/// Benchmark and communication errors.
pub fn run_ddp(a: &DdpArgs) -> Result<ExitCode> {
    let comm: std::sync::Arc<dyn kiln::parallel::Communicator> =
        match kiln::parallel::launcher_env() {
            Some((_, _, size)) if size > 1 => kiln::parallel::connect("mpi")?,
            _ => std::sync::Arc::new(kiln::parallel::SingleProcess),
        };
    let t = crate::bench::parallel::ddp(&a.model, a.batch_size, a.steps, comm.clone())?;
    if comm.rank() == 0 {
        println!(
            "DDP {} world {} batch {}/process, {:.2} MiB of gradients: step {:.3} ms = compute {:.3} + all-reduce {:.3} + update {:.3} (medians over {} steps, mean of ranks)",
            a.model,
            t.world_size,
            t.batch,
            t.grad_bytes as f64 / 1048576.0,
            t.step_ms,
            t.compute_ms,
            t.allreduce_ms,
            t.update_ms,
            a.steps
        );
        println!(
            "throughput {:.0} samples/s; all-reduce {:.1}% of the step",
            (t.world_size * t.batch) as f64 / (t.step_ms / 1e3),
            100.0 * t.allreduce_ms / t.step_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
