//! `kiln bench …`: benchmarks that compare kiln with PyTorch (not tests).
//!
//! `kiln bench train --model lenet --batch-size 64 --steps 100 --threads 1` times kiln's
//! training step (forward, cross-entropy, backward, SGD step with momentum), then PyTorch's on
//! the same architecture, batch, image size and thread count via `scripts/bench_torch.py`, and
//! prints both; the last line is `ratio kiln/pytorch: X` (below 1 means kiln is faster).
//! `--model resnet18` (any torchvision model) defaults to batch 16 on the digits enlarged to
//! 32×32 (64×64 for alexnet).

use kiln::data::Dataset;
use kiln::data::digits::{self, Digits};
use kiln::error::{Context, Error, Result};
use kiln::rng;
use kiln::train::{OptimizerKind, TrainConfig, build_trainer, optimizers};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Arguments of `kiln bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to benchmark.
    #[command(subcommand)]
    pub what: What,
}

/// The benchmarks.
#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Training step time, kiln vs PyTorch on the CPU.
    Train(TrainArgs),
    /// Training stall per checkpoint, synchronous vs asynchronous writing.
    Checkpoint(CheckpointArgs),
    /// Save/load of a float32 state dict: kiln (.pt, .safetensors) vs torch.save/torch.load
    /// and the safetensors package, with the raw sequential write speed as the ceiling.
    Io(IoArgs),
    /// DataParallel training step over 1, 2, … CPU replicas in one process.
    Dp(crate::cli::bench_parallel::DpArgs),
    /// DDP step split into compute, gradient all-reduce and update; run under
    /// `mpirun -np N` (alone it measures one process).
    Ddp(crate::cli::bench_parallel::DdpArgs),
    /// Backward time of ResNet-18 on the CPU, everything but `fc` frozen vs nothing frozen.
    Freeze(FreezeArgs),
    /// Images/s through an image folder of JPEGs (RandomResizedCrop + flip + normalize, N
    /// workers), kiln vs torchvision's ImageFolder + DataLoader(num_workers=N).
    Data(crate::cli::bench_data::DataArgs),
    /// Eval-mode inference of a torchvision architecture at 224x224 (1000 classes), kiln vs
    /// torchvision under `torch.no_grad()`: ms/batch, images/s, peak resident memory.
    Forward(crate::cli::bench_forward::ForwardArgs),
}

/// Arguments of `kiln bench freeze`.
#[derive(clap::Args, Debug)]
pub struct FreezeArgs {
    /// Batch size.
    #[arg(long, short = 'b', default_value_t = 16)]
    pub batch_size: usize,
    /// Image side (3 channels).
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
    /// Timed backward passes per variant (after one warm-up); medians are reported.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub steps: usize,
    /// Compute threads.
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,
}

fn bench_freeze(a: &FreezeArgs) -> Result<ExitCode> {
    if a.threads == 0 {
        return Err(Error::invalid("threads", 0, "at least 1"));
    }
    // SAFETY: `kiln bench` runs straight from `main`; no other thread exists yet.
    unsafe { kiln::train::threads::set_threads(a.threads)? };
    let r = crate::bench::freeze::run(a.batch_size, a.image_size, a.steps)?;
    println!(
        "resnet18 batch {} 3x{}x{}, {} thread(s), median of {} steps (forward {:.1} ms)",
        a.batch_size, a.image_size, a.image_size, a.threads, a.steps, r.forward_ms
    );
    println!("backward, nothing frozen:      {:8.2} ms", r.full_ms);
    println!("backward, all but fc frozen:   {:8.2} ms", r.frozen_ms);
    println!(
        "ratio frozen/full backward: {:.4} ({:.0}x faster)",
        r.frozen_ms / r.full_ms,
        r.full_ms / r.frozen_ms.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `kiln bench io`.
#[derive(clap::Args, Debug)]
pub struct IoArgs {
    /// Size of the state dict in MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: usize,
    /// Directory for the temporary files (on the disk to measure).
    #[arg(long, default_value = "target/bench-io")]
    pub dir: PathBuf,
    /// Runs per measurement; the median counts.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Python with torch and safetensors for the reference figures (default: $KILN_PYTHON or
    /// ./.venv/bin/python when present).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the PyTorch reference figures.
    #[arg(long)]
    pub no_python: bool,
    /// Instead: write a .pt of N small tensors and time kiln's read against torch.load of
    /// the same file (the last line is `ratio kiln/pytorch: X`).
    #[arg(long, value_name = "N")]
    pub many: Option<usize>,
}

fn bench_io(a: &IoArgs) -> Result<ExitCode> {
    let python = match (&a.python, a.no_python) {
        (_, true) => None,
        (Some(p), false) => Some(p.clone()),
        (None, false) => find_python().ok(),
    };
    if let Some(n) = a.many {
        eprintln!("{n} small tensors…");
        let m = crate::bench::io::run_many(n, &a.dir, a.repeat, python.as_deref())?;
        print!("{}", crate::bench::io::report_many(&m, a.repeat));
        let _ = std::fs::remove_dir(&a.dir);
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = crate::bench::io::Config {
        size_mib: a.size_mib,
        dir: a.dir.clone(),
        repeat: a.repeat,
        python,
    };
    eprintln!(
        "{} MiB, {} rounds of kiln{}…",
        cfg.size_mib,
        cfg.repeat,
        if cfg.python.is_some() {
            " and PyTorch"
        } else {
            ""
        }
    );
    let (k, p) = crate::bench::io::run_interleaved(&cfg)?;
    print!("{}", crate::bench::io::report(&cfg, &k, &p));
    let _ = std::fs::remove_dir(&cfg.dir);
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `kiln bench checkpoint`.
#[derive(clap::Args, Debug)]
pub struct CheckpointArgs {
    /// Architecture (its checkpoint size decides the write time).
    #[arg(long, short = 'm', default_value = "lenet", value_parser = clap::builder::PossibleValuesParser::new(kiln::models::ARCHITECTURES))]
    pub model: String,
    /// Checkpoints saved in each mode; medians are reported.
    #[arg(long, short = 'n', default_value_t = 20)]
    pub saves: usize,
    /// Training steps timed to estimate an epoch (batch 64).
    #[arg(long, default_value_t = 23)]
    pub epoch_steps: usize,
    /// Scratch directory for the checkpoints (removed afterwards).
    #[arg(long, default_value = "target/bench-checkpoint")]
    pub dir: PathBuf,
}

fn bench_checkpoint(a: &CheckpointArgs) -> Result<ExitCode> {
    let r = crate::bench::checkpoint::run(&a.model, a.saves, a.epoch_steps, &a.dir)?;
    println!(
        "model {}  checkpoint {:.1} MiB  epoch {:.1} ms",
        r.model,
        r.bytes as f64 / 1048576.0,
        r.epoch_ms
    );
    println!(
        "synchronous  stall {:8.2} ms/checkpoint  = {:6.2}% of an epoch",
        r.sync_ms,
        100.0 * r.sync_ms / r.epoch_ms
    );
    println!(
        "asynchronous stall {:8.2} ms/checkpoint  = {:6.2}% of an epoch",
        r.async_ms,
        100.0 * r.async_ms / r.epoch_ms
    );
    println!(
        "ratio async/sync stall: {:.3}",
        r.async_ms / r.sync_ms.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `kiln bench train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Architecture.
    #[arg(long, short = 'm', default_value = "lenet", value_parser = clap::builder::PossibleValuesParser::new(kiln::models::ARCHITECTURES))]
    pub model: String,
    /// Batch size, the first B digits images [default: 64; 16 for the torchvision models].
    #[arg(long, short = 'b')]
    pub batch_size: Option<usize>,
    /// Timed steps after 10 warm-up steps; the median is reported [default: 100; 20 for
    /// the torchvision models].
    #[arg(long, short = 'n')]
    pub steps: Option<usize>,
    /// Compute threads for both kiln and PyTorch, set once at start-up (kiln: its kernels,
    /// candle's RAYON_NUM_THREADS and rayon's pool; PyTorch: torch.set_num_threads).
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,
    /// Square image size: the 8x8 digits are enlarged by an integer factor (nearest
    /// neighbour) [default: 8; 32 for the torchvision models, 64 for alexnet].
    #[arg(long, short = 's')]
    pub image_size: Option<usize>,
    /// Time kiln only (for profiling); no ratio is printed.
    #[arg(long)]
    pub kiln_only: bool,
    /// Device for both sides: cpu, cuda or cuda:N (kiln needs a `--features cuda` build).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Parameter and input dtype for both sides: f32 or bf16.
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16"])]
    pub dtype: String,
}

/// A benchmark's settings with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchSpec {
    /// Architecture.
    pub model: String,
    /// Batch size.
    pub batch_size: usize,
    /// Timed steps.
    pub steps: usize,
    /// Threads.
    pub threads: usize,
    /// Square image size (a multiple of 8).
    pub image_size: usize,
    /// Device (`cpu`, `cuda:N`).
    pub device: String,
    /// `f32` or `bf16`.
    pub dtype: String,
}

impl TrainArgs {
    /// The settings with the per-model defaults: batch 64, 100 steps, 8×8 images for the
    /// digits models; batch 16, 20 steps, 32×32 images for ResNet-18.
    ///
    /// # Errors
    /// `K0003` for zero threads/steps or an image size that is not a positive multiple of 8.
    pub fn spec(&self) -> Result<BenchSpec> {
        let zoo = !matches!(self.model.as_str(), "mlp" | "lenet");
        // AlexNet's 11x11 stride-4 stem and three pools need at least 64x64.
        let zoo_size = if self.model == "alexnet" { 64 } else { 32 };
        let spec = BenchSpec {
            model: self.model.clone(),
            batch_size: self.batch_size.unwrap_or(if zoo { 16 } else { 64 }),
            steps: self.steps.unwrap_or(if zoo { 20 } else { 100 }),
            threads: self.threads,
            image_size: self.image_size.unwrap_or(if zoo { zoo_size } else { 8 }),
            device: self.device.clone(),
            dtype: self.dtype.clone(),
        };
        if spec.threads == 0 {
            return Err(Error::invalid("threads", 0, "at least 1"));
        }
        if spec.steps == 0 {
            return Err(Error::invalid("steps", 0, "at least 1"));
        }
        if spec.image_size == 0 || spec.image_size % digits::IMAGE_SIZE != 0 {
            return Err(Error::invalid(
                "image_size",
                spec.image_size,
                "a positive multiple of 8 (the digits are enlarged by an integer factor)",
            ));
        }
        Ok(spec)
    }
}

/// Warm-up steps before timing.
pub const WARMUP: usize = 10;
const LR: f64 = 0.01;
const MOMENTUM: f64 = 0.9;

/// Step-time statistics in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Median wall-clock time.
    pub median_ms: f64,
    /// 10th percentile.
    pub p10_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Median CPU time of the process (all threads) per step: on a shared, loaded machine
    /// it is less inflated by waiting than the wall-clock time.
    pub cpu_median_ms: f64,
}

fn median(ms: &mut [f64]) -> f64 {
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => ms[n / 2],
        _ => (ms[n / 2 - 1] + ms[n / 2]) / 2.0,
    }
}

/// Median and 10th/90th percentiles of per-step wall-clock times, and the median CPU time.
pub fn timing_of(mut ms: Vec<f64>, mut cpu_ms: Vec<f64>) -> Timing {
    let median_ms = median(&mut ms);
    let q = |p: f64| {
        let i = ((p * ms.len() as f64) as usize).min(ms.len().saturating_sub(1));
        ms.get(i).copied().unwrap_or(f64::NAN)
    };
    Timing {
        median_ms,
        p10_ms: q(0.1),
        p90_ms: q(0.9),
        cpu_median_ms: median(&mut cpu_ms),
    }
}

/// CPU time used by this process so far (all threads), in milliseconds.
pub(crate) fn process_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through the valid pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// This process's peak resident set so far (`VmHWM` of /proc/self/status), in MiB; NaN
/// where the kernel does not report it.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Times `steps` kiln training steps (after [`WARMUP`]) of `model` on the first
/// `batch_size` digits enlarged to `image_size`², with SGD (lr 0.01, momentum 0.9) in
/// training mode, through [`kiln::train::Trainer::train_step`].
///
/// # Errors
/// `K0003` for a zero batch size or step count, more images than the data set has, or an
/// image size that is not a positive multiple of 8.
#[cfg(test)]
pub fn time_kiln(
    model: &str,
    batch_size: usize,
    steps: usize,
    image_size: usize,
) -> Result<Timing> {
    time_kiln_on(model, batch_size, steps, image_size, "cpu", "f32")
}

/// Kiln's training-step timing on `device` with parameters and inputs in `dtype` (`f32` or `bf16`).
///
/// # Errors
/// As `time_kiln`; device errors (`K0303`, `K0304`, `K0305`).
pub fn time_kiln_on(
    model: &str,
    batch_size: usize,
    steps: usize,
    image_size: usize,
    device: &str,
    dtype: &str,
) -> Result<Timing> {
    let dtype = match dtype {
        "f32" => candle_core::DType::F32,
        "bf16" => candle_core::DType::BF16,
        other => return Err(Error::invalid("dtype", other, "f32 or bf16")),
    };
    if steps == 0 {
        return Err(Error::invalid("steps", 0, "at least 1"));
    }
    if image_size == 0 || image_size % digits::IMAGE_SIZE != 0 {
        return Err(Error::invalid(
            "image_size",
            image_size,
            "a positive multiple of 8",
        ));
    }
    let digits = Digits::embedded()?;
    if batch_size == 0 || batch_size > digits.len() {
        return Err(Error::invalid(
            "batch_size",
            batch_size,
            format!("between 1 and {}", digits.len()),
        ));
    }
    let indices: Vec<usize> = (0..batch_size).collect();
    let data = digits.to_dataset("bench", &indices)?;
    let (inputs, targets) = data.get_batch(&indices)?;
    let inputs = if image_size == digits::IMAGE_SIZE {
        inputs
    } else {
        inputs
            .upsample_nearest2d(image_size, image_size)
            .ctx("enlarge the digits")?
    };
    let inputs = inputs.to_dtype(dtype).ctx("inputs to the dtype")?;
    let batch = kiln::data::Batch {
        inputs,
        targets,
        indices,
    };
    let mut cfg = TrainConfig::for_model(model);
    cfg.device = device.to_string();
    cfg.batch_size = batch_size;
    cfg.optimizer = OptimizerKind::Sgd;
    cfg.lr = LR;
    cfg.momentum = MOMENTUM;
    cfg.scheduler = None;
    let mut trainer = build_trainer(&cfg)?;
    if image_size != digits::IMAGE_SIZE {
        rng::manual_seed(cfg.seed);
        trainer.model = kiln::models::build(model, digits::NUM_CLASSES, 1, image_size)?;
        trainer.model.to_device(&trainer.device)?;
    }
    if dtype != candle_core::DType::F32 {
        trainer.model.to_dtype(dtype)?;
    }
    if image_size != digits::IMAGE_SIZE || dtype != candle_core::DType::F32 {
        trainer.optimizer = optimizers::build(&cfg, trainer.model.trainable_parameters())?;
    }
    trainer.model.train(true);
    let (mut ms, mut cpu) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    for i in 0..WARMUP + steps {
        let (t0, c0) = (Instant::now(), process_cpu_ms());
        trainer.train_step(&batch)?;
        if i >= WARMUP {
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
            cpu.push(process_cpu_ms() - c0);
        }
    }
    Ok(timing_of(ms, cpu))
}

/// The Python that runs the PyTorch side: `$KILN_PYTHON`, else `./.venv/bin/python`.
///
/// # Errors
/// `K0003` saying how to provide one.
pub fn find_python() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KILN_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let local = Path::new(".venv/bin/python");
    if local.exists() {
        return Ok(local.to_path_buf());
    }
    Err(Error::invalid(
        "Python for the PyTorch side",
        "none found ($KILN_PYTHON unset, no ./.venv/bin/python)",
        "set KILN_PYTHON=/path/to/python, or: python3 -m venv .venv && .venv/bin/pip install torch numpy (torchvision too for the torchvision models)",
    ))
}

fn bench_script() -> PathBuf {
    let here = Path::new("scripts/bench_torch.py");
    if here.exists() {
        return here.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_torch.py")
}

/// Runs `scripts/bench_torch.py` and reads its JSON line; returns the timing, the Python
/// process's peak resident memory in MiB (NaN if not reported) and torch's version.
///
/// # Errors
/// `K0002` when Python cannot be started; `K0103` when it fails or prints no result.
pub fn time_torch(a: &BenchSpec) -> Result<(Timing, f64, String)> {
    let py = find_python()?;
    let script = bench_script();
    let out = Command::new(&py)
        .arg(&script)
        .args(["--model", &a.model])
        .args(["--batch-size", &a.batch_size.to_string()])
        .args(["--steps", &a.steps.to_string()])
        .args(["--warmup", &WARMUP.to_string()])
        .args(["--threads", &a.threads.to_string()])
        .args(["--image-size", &a.image_size.to_string()])
        .args(["--device", &a.device, "--dtype", &a.dtype])
        .args(["--lr", &LR.to_string(), "--momentum", &MOMENTUM.to_string()])
        .output()
        .map_err(|e| Error::io("run", &py, e))?;
    let (timing, v) = read_torch_result(&script, &out)?;
    let peak = v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN);
    Ok((timing, peak, v["torch"].as_str().unwrap_or("?").to_string()))
}

/// Reads the JSON result line a PyTorch bench script printed last: its timing fields
/// (`median_ms`, `p10_ms`, `p90_ms`, `cpu_median_ms`) and the whole object.
///
/// # Errors
/// `K0103` naming the script when it failed or its last line is not such a result.
pub fn read_torch_result(
    script: &Path,
    out: &std::process::Output,
) -> Result<(Timing, serde_json::Value)> {
    let bad = |detail: String| Error::BadData {
        source_name: script.display().to_string(),
        detail,
    };
    if !out.status.success() {
        return Err(bad(format!(
            "exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| bad(format!("unreadable result '{line}': {e}")))?;
    let f = |k: &str| {
        v[k].as_f64()
            .ok_or_else(|| bad(format!("result lacks '{k}': {line}")))
    };
    let timing = Timing {
        median_ms: f("median_ms")?,
        p10_ms: f("p10_ms")?,
        p90_ms: f("p90_ms")?,
        cpu_median_ms: f("cpu_median_ms").unwrap_or(f64::NAN),
    };
    Ok((timing, v))
}

fn line(who: &str, a: &BenchSpec, t: &Timing) -> String {
    format!(
        "{who:<8} {} {} {} batch {} image {}x{} threads {}: {:.3} ms/step median (p10 {:.3}, p90 {:.3}; cpu {:.3}) over {} steps",
        a.model,
        a.device,
        a.dtype,
        a.batch_size,
        a.image_size,
        a.image_size,
        a.threads,
        t.median_ms,
        t.p10_ms,
        t.p90_ms,
        t.cpu_median_ms,
        a.steps
    )
}

/// Runs `kiln bench`.
///
/// # Errors
/// Benchmark and Python errors.
pub fn run(args: &Args) -> Result<ExitCode> {
    match &args.what {
        What::Train(a) => {
            let spec = a.spec()?;
            // SAFETY: `kiln bench` runs straight from `main`; no other thread exists yet.
            unsafe { kiln::train::threads::set_threads(spec.threads)? };
            let py = if a.kiln_only {
                None
            } else {
                Some(find_python()?)
            };
            let kiln = time_kiln_on(
                &spec.model,
                spec.batch_size,
                spec.steps,
                spec.image_size,
                &spec.device,
                &spec.dtype,
            )?;
            println!("{}", line("kiln", &spec, &kiln));
            let Some(py) = py else {
                println!("peak RSS: kiln {:.0} MiB", peak_rss_mib());
                return Ok(ExitCode::SUCCESS);
            };
            let kiln_rss = peak_rss_mib();
            let (torch, torch_rss, version) = time_torch(&spec)?;
            println!("{}", line("pytorch", &spec, &torch));
            println!("(PyTorch {version} via {})", py.display());
            println!("peak RSS: kiln {kiln_rss:.0} MiB, pytorch {torch_rss:.0} MiB");
            println!(
                "cpu-time ratio kiln/pytorch: {:.3}",
                kiln.cpu_median_ms / torch.cpu_median_ms
            );
            println!(
                "ratio kiln/pytorch: {:.3}",
                kiln.median_ms / torch.median_ms
            );
            Ok(ExitCode::SUCCESS)
        }
        What::Checkpoint(a) => bench_checkpoint(a),
        What::Io(a) => bench_io(a),
        What::Dp(a) => crate::cli::bench_parallel::run_dp(a),
        What::Ddp(a) => crate::cli::bench_parallel::run_ddp(a),
        What::Freeze(a) => bench_freeze(a),
        What::Data(a) => crate::cli::bench_data::run(a),
        What::Forward(a) => crate::cli::bench_forward::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_is_median_and_quantiles() {
        let t = timing_of(vec![5.0, 1.0, 3.0, 2.0, 4.0], vec![2.0, 1.0, 3.0]);
        assert_eq!(t.median_ms, 3.0);
        assert_eq!((t.p10_ms, t.p90_ms, t.cpu_median_ms), (1.0, 5.0, 2.0));
        assert_eq!(timing_of(vec![1.0, 2.0], vec![]).median_ms, 1.5);
    }

    #[test]
    fn kiln_side_runs_and_checks_its_arguments() {
        let t = time_kiln("mlp", 8, 2, 8).unwrap();
        assert!(t.median_ms > 0.0);
        assert!(time_kiln("lenet", 2, 1, 16).unwrap().median_ms > 0.0);
        assert_eq!(time_kiln("mlp", 0, 2, 8).unwrap_err().code(), "K0003");
        assert_eq!(time_kiln("mlp", 8, 0, 8).unwrap_err().code(), "K0003");
        assert_eq!(time_kiln("mlp", 8, 1, 12).unwrap_err().code(), "K0003");
        // bf16 parameters and inputs train on the CPU too; a bad dtype is K0003.
        assert!(
            time_kiln_on("mlp", 8, 1, 8, "cpu", "bf16")
                .unwrap()
                .median_ms
                > 0.0
        );
        assert_eq!(
            time_kiln_on("mlp", 8, 1, 8, "cpu", "f16")
                .unwrap_err()
                .code(),
            "K0003"
        );
    }

    #[test]
    fn defaults_depend_on_the_model() {
        let args = |model: &str| TrainArgs {
            model: model.into(),
            batch_size: None,
            steps: None,
            threads: 1,
            image_size: None,
            kiln_only: false,
            device: "cpu".into(),
            dtype: "f32".into(),
        };
        let r = args("resnet18").spec().unwrap();
        assert_eq!((r.batch_size, r.steps, r.image_size), (16, 20, 32));
        let l = args("lenet").spec().unwrap();
        assert_eq!((l.batch_size, l.steps, l.image_size), (64, 100, 8));
        let mut bad = args("mlp");
        bad.threads = 0;
        assert_eq!(bad.spec().unwrap_err().code(), "K0003");
    }
}
