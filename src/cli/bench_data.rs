//! `kiln bench data`: the arguments and the report (the measurement is in
//! `crate::bench::data`).

use kiln::error::{Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kiln bench data`.
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// An image folder of JPEGs (class subfolders; its `train/` when there is one).
    /// `scripts/make_jpeg_folder.py DIR` writes one.
    #[arg(long)]
    pub data: PathBuf,
    /// Worker threads (kiln) and DataLoader worker processes (PyTorch).
    #[arg(long, short = 'j', default_value_t = 2)]
    pub workers: usize,
    /// Batch size.
    #[arg(long, short = 'b', default_value_t = 32)]
    pub batch_size: usize,
    /// RandomResizedCrop size.
    #[arg(long, default_value_t = 224)]
    pub image_size: usize,
    /// Timed passes per side; the median counts.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Python with torch and torchvision ($KILN_PYTHON, else ./.venv/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Measure kiln only.
    #[arg(long)]
    pub no_python: bool,
}

/// Runs `kiln bench data` and prints both sides; the last line is
/// `ratio kiln/pytorch: X` in images/s (above 1: kiln faster).
///
/// # Errors
/// As [`crate::bench::data::run`]; `K0002` when Python is asked for but not found.
pub fn run(a: &DataArgs) -> Result<ExitCode> {
    let python = match (&a.python, a.no_python) {
        (_, true) => None,
        (Some(p), false) => Some(p.clone()),
        (None, false) => Some(super::bench::find_python()?),
    };
    let cfg = crate::bench::data::Config {
        data: a.data.clone(),
        workers: a.workers,
        batch_size: a.batch_size,
        image_size: a.image_size,
        repeat: a.repeat,
        python,
    };
    eprintln!(
        "{}: {} passes per side, {} workers, batch {}, RandomResizedCrop({})…",
        cfg.data.display(),
        cfg.repeat,
        cfg.workers,
        cfg.batch_size,
        cfg.image_size
    );
    let r = crate::bench::data::run(&cfg)?;
    use crate::bench::data::median;
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "ImageFolder of {} images, RandomResizedCrop({}) + flip + normalize, batch {}, {} workers, median of {} passes",
        r.images, cfg.image_size, cfg.batch_size, cfg.workers, cfg.repeat
    );
    println!(
        "kiln:    {:8.1} images/s  (passes: {})",
        median(&r.kiln),
        fmt(&r.kiln)
    );
    if r.torch.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "pytorch: {:8.1} images/s  (passes: {}; {})",
        median(&r.torch),
        fmt(&r.torch),
        r.torch_version
    );
    let ratio = median(&r.kiln) / median(&r.torch);
    if !ratio.is_finite() {
        return Err(Error::invalid(
            "bench data ratio",
            ratio,
            "a finite images/s ratio",
        ));
    }
    println!("ratio kiln/pytorch: {ratio:.3}");
    Ok(ExitCode::SUCCESS)
}
