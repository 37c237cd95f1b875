//! `kiln bench forward`: eval-mode inference of a torchvision architecture at a real image
//! size (3 channels, 1000 classes, 224×224 by default), kiln beside torchvision's
//! `model.eval()` under `torch.no_grad()` with the same batch, size and thread count:
//! milliseconds per batch, images per second and each process's peak resident memory.

use crate::cli::bench::{Timing, find_python, peak_rss_mib, process_cpu_ms, timing_of};
use kiln::candle::{DType, Device, Tensor};
use kiln::error::{Context, Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Arguments of `kiln bench forward`.
#[derive(clap::Args, Debug, Clone)]
pub struct ForwardArgs {
    /// torchvision architecture (1000 classes, 3 input channels, random weights).
    #[arg(long, short = 'm', default_value = "resnet50", value_parser = clap::builder::PossibleValuesParser::new(kiln::models::torchvision::ZOO.map(|(a, _)| a)))]
    pub model: String,
    /// Batch size.
    #[arg(long, short = 'b', default_value_t = 8)]
    pub batch_size: usize,
    /// Square image side.
    #[arg(long, short = 's', default_value_t = 224)]
    pub image_size: usize,
    /// Timed batches after the warm-up; the median is reported.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub steps: usize,
    /// Untimed batches first (allocator and caches warm).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Compute threads for both kiln and PyTorch, set once at start-up.
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,
    /// Time kiln only; no ratio is printed.
    #[arg(long)]
    pub kiln_only: bool,
}

impl ForwardArgs {
    fn check(&self) -> Result<()> {
        for (what, v) in [
            ("batch_size", self.batch_size),
            ("steps", self.steps),
            ("threads", self.threads),
            ("image_size", self.image_size),
        ] {
            if v == 0 {
                return Err(Error::invalid(what, 0, "at least 1"));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "{} eval batch {} image {}x{} threads {}",
            self.model, self.batch_size, self.image_size, self.image_size, self.threads
        )
    }
}

/// One side's result: per-batch timing and peak resident memory in MiB.
#[derive(Clone, Copy, Debug)]
pub struct ForwardResult {
    /// Per-batch wall-clock and CPU time.
    pub timing: Timing,
    /// The process's peak resident set (VmHWM), MiB.
    pub peak_rss_mib: f64,
}

/// A deterministic input in [-1, 1): xorshift64, top 24 bits (the same values on every run).
fn input(a: &ForwardArgs) -> Result<Tensor> {
    let n = a.batch_size * 3 * a.image_size * a.image_size;
    let mut s = 0x9E37_79B9_7F4A_7C15_u64;
    let data: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_vec(
        data,
        (a.batch_size, 3, a.image_size, a.image_size),
        &Device::Cpu,
    )
    .ctx("bench input")
}

/// Times kiln's eval-mode forward: parameters frozen (no autograd graph, as under
/// `torch.no_grad()`), BatchNorm on its running statistics, Dropout off.
///
/// # Errors
/// `K0003` for zero sizes or an unknown architecture; model errors (e.g. ViT at a size other
/// than 224).
pub fn time_kiln(a: &ForwardArgs) -> Result<ForwardResult> {
    a.check()?;
    let model = kiln::models::torchvision::build(&a.model, 1000, 3)?;
    for p in model.parameters() {
        p.set_requires_grad(false)?;
    }
    model.eval();
    let x = input(a)?;
    let (mut ms, mut cpu) = (Vec::with_capacity(a.steps), Vec::with_capacity(a.steps));
    for i in 0..a.warmup + a.steps {
        let (t0, c0) = (Instant::now(), process_cpu_ms());
        let y = model.forward(&x)?;
        // Read one value so the work cannot be skipped.
        let _ = y
            .sum_all()
            .and_then(|s| s.to_dtype(DType::F32)?.to_scalar::<f32>());
        if i >= a.warmup {
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
            cpu.push(process_cpu_ms() - c0);
        }
    }
    Ok(ForwardResult {
        timing: timing_of(ms, cpu),
        peak_rss_mib: peak_rss_mib(),
    })
}

fn script() -> PathBuf {
    let here = Path::new("scripts/bench_forward_torch.py");
    if here.exists() {
        return here.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_forward_torch.py")
}

/// Runs `scripts/bench_forward_torch.py` and reads its JSON line; returns the result and
/// torch's version.
///
/// # Errors
/// `K0002` when Python cannot be started; `K0103` when it fails or prints no result.
pub fn time_torch(a: &ForwardArgs) -> Result<(ForwardResult, String)> {
    let py = find_python()?;
    let script = script();
    let out = Command::new(&py)
        .arg(&script)
        .args(["--model", &a.model])
        .args(["--batch-size", &a.batch_size.to_string()])
        .args(["--image-size", &a.image_size.to_string()])
        .args(["--steps", &a.steps.to_string()])
        .args(["--warmup", &a.warmup.to_string()])
        .args(["--threads", &a.threads.to_string()])
        .output()
        .map_err(|e| Error::io("run", &py, e))?;
    let (timing, v) = crate::cli::bench::read_torch_result(&script, &out)?;
    let peak = v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN);
    let version = v["torch"].as_str().unwrap_or("?").to_string();
    Ok((
        ForwardResult {
            timing,
            peak_rss_mib: peak,
        },
        version,
    ))
}

fn line(who: &str, a: &ForwardArgs, r: &ForwardResult) -> String {
    let t = &r.timing;
    format!(
        "{who:<8} {}: {:.1} ms/batch median (p10 {:.1}, p90 {:.1}; cpu {:.1}), {:.2} images/s, peak RSS {:.0} MiB, over {} batches",
        a.describe(),
        t.median_ms,
        t.p10_ms,
        t.p90_ms,
        t.cpu_median_ms,
        a.batch_size as f64 * 1e3 / t.median_ms,
        r.peak_rss_mib,
        a.steps
    )
}

/// Runs `kiln bench forward`.
///
/// # Errors
/// Benchmark and Python errors.
pub fn run(a: &ForwardArgs) -> Result<ExitCode> {
    a.check()?;
    // SAFETY: `kiln bench` runs straight from `main`; no other thread exists yet.
    unsafe { kiln::train::threads::set_threads(a.threads)? };
    let py = if a.kiln_only {
        None
    } else {
        Some(find_python()?)
    };
    let kiln = time_kiln(a)?;
    println!("{}", line("kiln", a, &kiln));
    let Some(py) = py else {
        return Ok(ExitCode::SUCCESS);
    };
    let (torch, version) = time_torch(a)?;
    println!("{}", line("pytorch", a, &torch));
    println!("(PyTorch {version} via {})", py.display());
    println!(
        "peak-RSS ratio kiln/pytorch: {:.3}",
        kiln.peak_rss_mib / torch.peak_rss_mib
    );
    println!(
        "cpu-time ratio kiln/pytorch: {:.3}",
        kiln.timing.cpu_median_ms / torch.timing.cpu_median_ms
    );
    println!(
        "ratio kiln/pytorch: {:.3}",
        kiln.timing.median_ms / torch.timing.median_ms
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(model: &str, size: usize) -> ForwardArgs {
        ForwardArgs {
            model: model.into(),
            batch_size: 1,
            image_size: size,
            steps: 1,
            warmup: 0,
            threads: 1,
            kiln_only: true,
        }
    }

    #[test]
    fn kiln_side_runs_and_reports_memory() {
        let r = time_kiln(&args("squeezenet1_1", 64)).unwrap();
        assert!(r.timing.median_ms > 0.0);
        assert!(r.peak_rss_mib > 1.0, "peak RSS {}", r.peak_rss_mib);
    }

    #[test]
    fn bad_arguments_are_coded_errors() {
        let mut a = args("squeezenet1_1", 64);
        a.batch_size = 0;
        assert_eq!(time_kiln(&a).unwrap_err().code(), "K0003");
        assert_eq!(time_kiln(&args("lenet", 64)).unwrap_err().code(), "K0003");
        // ViT takes 224x224 only: a coded error, not a panic.
        assert_eq!(
            time_kiln(&args("vit_b_16", 64)).unwrap_err().code(),
            "K0003"
        );
    }

    #[test]
    fn the_input_is_deterministic_and_in_range() {
        let a = args("resnet18", 8);
        let x = input(&a)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(
            x,
            input(&a)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );
        assert!(x.iter().all(|v| (-1.0..1.0).contains(v)));
    }
}
