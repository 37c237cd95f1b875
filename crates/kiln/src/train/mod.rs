//! Training: configuration, the loop with explicit state and hook points, metrics and the
//! final model file.
//!
//! ```no_run
//! let mut cfg = kiln::train::TrainConfig::for_model("lenet");
//! cfg.epochs = 2;
//! let summary = kiln::train::run(&cfg, true)?;
//! println!("test accuracy {:.3}", summary.final_test_acc());
//! # Ok::<(), kiln::Error>(())
//! ```

pub mod best;
pub mod builder;
pub mod checkpointing;
pub mod config;
pub mod data;
pub mod ddp_verify;
pub mod early_stopping;
pub mod ema;
pub mod hooks;
pub mod metrics;
pub mod optimizers;
pub mod run;
pub mod run_lock;
pub mod save;
pub mod setup;
pub mod state;
pub mod step;
pub mod tensorboard;
pub mod threads;
pub mod trainer;
pub mod validation;

pub use builder::{IntoDataset, IntoModel, OptimizerChoice, SchedulerFn, TrainerBuilder};
pub use config::{
    DataConfig, OptimizerKind, SchedulerSpec, TrainConfig, TransformKind, parse_classes,
    parse_device,
};
pub use early_stopping::{EarlyStopping, EarlyStoppingConfig, MonitorMode};
pub use ema::{Ema, EmaConfig};
pub use hooks::{Hook, StepReport};
pub use metrics::{EpochMetrics, MetricsLog};
pub use run::{
    RunOptions, RunSummary, TENSORBOARD_DIR, build_trainer, run, run_with, run_with_hooks,
};
pub use run_lock::RunLock;
pub use setup::RunSetup;
pub use state::TrainState;
pub use step::StepOptions;
pub use tensorboard::TensorBoardHook;
pub use trainer::{
    EvalResult, LossFn, MetricFn, NonFinitePolicy, Trainer, evaluate, evaluate_with,
};
pub use validation::{Validation, ValidationConfig};
