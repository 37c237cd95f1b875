//! The whole `kiln train` job: seed, data, model, optimizer, loop, and the files in `out`.

use super::chart::write_curves;
use super::config::{TrainConfig, parse_device};
use super::hooks::Hook;
use super::metrics::{EpochMetrics, MetricsLog};
use super::optimizers;
use super::progress::Progress;
use super::save::save_state_dict;
use super::state::TrainState;
use super::trainer::{EVAL_BATCH_SIZE, Trainer};
use crate::data::{DataLoader, Dataset, digits};
use crate::error::{Error, Result};
use crate::rng;
use std::path::PathBuf;
use std::sync::Arc;

/// File names written into the output directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The final state dict.
pub const MODEL_FILE: &str = "model.safetensors";
/// The chart.
pub const CURVES_FILE: &str = "curves.png";

/// What a finished run left behind.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Metrics of every epoch.
    pub epochs: Vec<EpochMetrics>,
    /// Path of `model.safetensors`.
    pub model_path: PathBuf,
    /// Path of `metrics.jsonl`.
    pub metrics_path: PathBuf,
    /// Path of `curves.png`.
    pub curves_path: PathBuf,
}

impl RunSummary {
    /// Test accuracy after the last epoch.
    pub fn final_test_acc(&self) -> f64 {
        self.epochs.last().map_or(0.0, |m| m.test_acc)
    }
}

/// Builds a [`Trainer`] for `cfg` on the embedded digits: seeds kiln's generator with
/// `cfg.seed`, builds the model (its initialisation draws from that generator), the optimizer
/// and the loaders (training shuffled with `cfg.seed`, test in order).
///
/// # Errors
/// `K0003` for a bad configuration; `K0303`/`K0305` for a bad device.
pub fn build_trainer(cfg: &TrainConfig) -> Result<Trainer> {
    cfg.validate()?;
    let device = parse_device(&cfg.device)?;
    let (train, test) = digits::train_test()?;
    rng::manual_seed(cfg.seed);
    let model = crate::models::build(&cfg.model, digits::NUM_CLASSES, 1, digits::IMAGE_SIZE)?;
    model.to_device(&device)?;
    let mut optimizer = optimizers::build(cfg, model.trainable_parameters())?;
    let scheduler = optimizers::build_scheduler(cfg, optimizer.as_mut())?;
    let train: Arc<dyn Dataset> = Arc::new(train);
    let test: Arc<dyn Dataset> = Arc::new(test);
    let train_loader = DataLoader::new(train, cfg.batch_size)?
        .shuffle(true)
        .drop_last(cfg.drop_last)
        .seed(cfg.seed);
    let test_loader = DataLoader::new(test, EVAL_BATCH_SIZE)?;
    Ok(Trainer {
        config: cfg.clone(),
        model,
        optimizer,
        scheduler,
        train_loader,
        test_loader,
        state: TrainState::start(),
        device,
    })
}

/// Runs `kiln train`: trains `cfg` from scratch and writes `metrics.jsonl` (one line per
/// epoch, appended as each ends), `model.safetensors` (the final state dict) and
/// `curves.png` into `cfg.out` (created if needed). For hooks of your own, call
/// [`build_trainer`] and [`Trainer::fit`] directly.
///
/// # Errors
/// Configuration, training and I/O errors.
pub fn run(cfg: &TrainConfig, quiet: bool) -> Result<RunSummary> {
    let mut trainer = build_trainer(cfg)?;
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io("create directory", &cfg.out, e))?;
    let metrics_path = cfg.out.join(METRICS_FILE);
    let mut log = MetricsLog::new(&metrics_path, true)?;
    let mut progress = Progress::new(quiet);
    let epochs = trainer.fit(&mut [&mut log as &mut dyn Hook, &mut progress])?;
    let model_path = cfg.out.join(MODEL_FILE);
    save_state_dict(&trainer.model.state_dict(), &model_path)?;
    let curves_path = cfg.out.join(CURVES_FILE);
    write_curves(&epochs, &curves_path)?;
    Ok(RunSummary {
        epochs,
        model_path,
        metrics_path,
        curves_path,
    })
}
