//! Training: configuration, the loop with explicit state and hook points, metrics, the
//! final model file and the loss/accuracy chart.
//!
//! ```no_run
//! let mut cfg = kiln::train::TrainConfig::for_model("lenet");
//! cfg.epochs = 2;
//! let summary = kiln::train::run(&cfg, true)?;
//! println!("test accuracy {:.3}", summary.final_test_acc());
//! # Ok::<(), kiln::Error>(())
//! ```

pub mod chart;
pub mod checkpointing;
pub mod config;
pub mod data;
pub mod ddp_verify;
pub mod hooks;
pub mod metrics;
pub mod optimizers;
pub mod progress;
pub mod run;
pub mod save;
pub mod state;
pub mod threads;
pub mod trainer;

pub use config::{OptimizerKind, SchedulerSpec, TrainConfig, parse_classes, parse_device};
pub use hooks::{Hook, StepReport};
pub use metrics::{EpochMetrics, MetricsLog};
pub use run::{RunOptions, RunSummary, build_trainer, run, run_with};
pub use state::TrainState;
pub use trainer::{Trainer, evaluate};
