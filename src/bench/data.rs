//! `kiln bench data`: images/s through an image folder of JPEGs with kiln's ImageNet training
//! preset (`ImageFolder` + `RandomResizedCrop(S)` + `RandomHorizontalFlip` + `Normalize`) and
//! a `DataLoader` with N worker threads, beside torchvision's `ImageFolder` + the same
//! transforms + `DataLoader(num_workers=N)` on the same files (`scripts/bench_data.py`).
//!
//! Each timed pass starts the loader from scratch (worker start-up counts, on both sides),
//! shuffles, and consumes every batch of one epoch; the median of `repeat` passes counts. The
//! two sides alternate pass by pass so both meet the same page cache and machine load. One
//! untimed pass of each brings the files into the page cache first.

use kiln::data::sources::{DecodeLimits, ImageFolder};
use kiln::data::transforms::{TransformedDataset, imagenet_train};
use kiln::data::{DataLoader, Dataset};
use kiln::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The image folder (its `train/` subfolder when there is one).
    pub data: PathBuf,
    /// Worker threads (kiln) and worker processes (PyTorch).
    pub workers: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Crop size of RandomResizedCrop.
    pub image_size: usize,
    /// Timed passes per side; the median counts.
    pub repeat: usize,
    /// Python with torch and torchvision, or `None` to skip PyTorch.
    pub python: Option<PathBuf>,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// Images in the folder.
    pub images: usize,
    /// kiln's images/s per pass.
    pub kiln: Vec<f64>,
    /// PyTorch's images/s per pass (empty without Python).
    pub torch: Vec<f64>,
    /// torch and torchvision versions.
    pub torch_version: String,
}

/// The median of `v` (0 for an empty slice).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn root(data: &Path) -> PathBuf {
    let train = data.join("train");
    if train.is_dir() {
        train
    } else {
        data.to_path_buf()
    }
}

/// kiln's pipeline over the folder: the loader a `kiln train --data DIR --workers N` builds.
fn loader(cfg: &Config, folder: &Arc<dyn Dataset>, seed: u64) -> Result<DataLoader> {
    let ds = TransformedDataset::new(folder.clone(), imagenet_train(cfg.image_size), seed);
    Ok(DataLoader::new(Arc::new(ds), cfg.batch_size)?
        .shuffle(true)
        .seed(seed)
        .workers(cfg.workers))
}

/// One pass of kiln's pipeline: images/s.
fn kiln_pass(cfg: &Config, folder: &Arc<dyn Dataset>, pass: u64) -> Result<f64> {
    let start = Instant::now();
    let l = loader(cfg, folder, pass)?;
    let mut n = 0;
    for b in l.epoch(0)? {
        n += b?.len();
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn torch_pass(cfg: &Config, python: &Path) -> Result<(f64, String)> {
    let (workers, batch, size) = (
        cfg.workers.to_string(),
        cfg.batch_size.to_string(),
        cfg.image_size.to_string(),
    );
    let j = super::io::run_json_script(
        python,
        "bench_data.py",
        &[
            "--data".as_ref(),
            cfg.data.as_os_str(),
            "--workers".as_ref(),
            workers.as_ref(),
            "--batch-size".as_ref(),
            batch.as_ref(),
            "--image-size".as_ref(),
            size.as_ref(),
            "--repeat".as_ref(),
            "1".as_ref(),
        ],
        "torch and torchvision",
    )?;
    let ips = j["images_per_s"]
        .as_f64()
        .ok_or_else(|| Error::invalid("bench_data.py output", j.to_string(), "images_per_s"))?;
    let version = format!(
        "torch {}, torchvision {}",
        j["torch_version"].as_str().unwrap_or("?"),
        j["torchvision_version"].as_str().unwrap_or("?")
    );
    Ok((ips, version))
}

/// Runs the benchmark.
///
/// # Errors
/// `K0104`/`K0105` for a folder kiln cannot read; `K0003` when a size is 0 or the Python side
/// fails.
pub fn run(cfg: &Config) -> Result<Report> {
    if cfg.batch_size == 0 || cfg.image_size == 0 || cfg.repeat == 0 {
        return Err(Error::invalid(
            "bench data settings",
            format!(
                "batch_size={} image_size={} repeat={}",
                cfg.batch_size, cfg.image_size, cfg.repeat
            ),
            "all at least 1",
        ));
    }
    let folder: Arc<dyn Dataset> = Arc::new(ImageFolder::new(
        &root(&cfg.data),
        false,
        DecodeLimits::default(),
    )?);
    let images = folder.len();
    // Untimed warm-up of both sides: the files in the page cache, the Python imports cached.
    kiln_pass(cfg, &folder, 0)?;
    let mut torch_version = String::new();
    if let Some(py) = &cfg.python {
        torch_version = torch_pass(cfg, py)?.1;
    }
    let (mut kiln, mut torch) = (Vec::new(), Vec::new());
    for pass in 1..=cfg.repeat as u64 {
        kiln.push(kiln_pass(cfg, &folder, pass)?);
        if let Some(py) = &cfg.python {
            torch.push(torch_pass(cfg, py)?.0);
        }
    }
    Ok(Report {
        images,
        kiln,
        torch,
        torch_version,
    })
}
