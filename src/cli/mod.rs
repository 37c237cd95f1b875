//! The `kiln` command line. One file per subcommand; each exposes `Args` (clap) and `run`.

pub mod bench;
pub mod bench_data;
pub mod bench_forward;
pub mod bench_parallel;
pub mod convert;
pub mod devices;
pub mod diff;
pub mod explain;
pub mod finetune;
pub mod forward;
pub mod inspect;
pub mod train;
pub mod train_features;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// kiln: train, save/load, checkpoint/resume and fine-tune neural networks, PyTorch-compatible.
#[derive(Parser, Debug)]
#[command(name = "kiln", version, about, long_about = None)]
pub struct Cli {
    /// Print the chain of underlying errors on failure.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// kiln's subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the devices kiln can use (CPU, CUDA GPUs with physical index, name, memory).
    Devices(devices::Args),
    /// Explain an error code (or list them all).
    Explain(explain::Args),
    /// Show the tree of a model file: keys, shapes, dtypes, devices, totals.
    Inspect(inspect::Args),
    /// Convert between .pt/.pth/.bin and .safetensors (prefixes, renames, dtype, devices).
    Convert(convert::Args),
    /// Compare two model files (exit 0 when they agree, 1 otherwise).
    Diff(diff::Args),
    /// Run an eval-mode forward pass of a model on a safetensors input.
    Forward(forward::Args),
    /// Train a model on the embedded digits data set.
    Train(Box<train::Args>),
    /// Fine-tune pretrained weights on the digits: new head, frozen layers, per-pattern
    /// learning rates, gradual unfreezing (every `kiln train` flag works too).
    Finetune(Box<finetune::Args>),
    /// Benchmarks (`kiln bench train|forward|checkpoint|io|dp|ddp|freeze|data`), beside PyTorch where it has a twin.
    Bench(bench::Args),
}

/// Runs the CLI: parses arguments, dispatches, prints errors with code and hint.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let verbose = cli.verbose;
    let result: kiln::Result<ExitCode> = match cli.command {
        Command::Devices(a) => devices::run(&a),
        Command::Explain(a) => explain::run(&a),
        Command::Inspect(a) => inspect::run(&a),
        Command::Convert(a) => convert::run(&a),
        Command::Diff(a) => diff::run(&a),
        Command::Forward(a) => forward::run(&a),
        Command::Train(a) => train::run(&a),
        Command::Finetune(a) => finetune::run(&a),
        Command::Bench(a) => bench::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => report(&e, verbose),
    }
}

/// Prints `error[K0301]: message`, the hint, and with `verbose` the source chain; returns
/// exit code 2 for usage errors and 1 otherwise.
pub fn report(e: &kiln::Error, verbose: bool) -> ExitCode {
    eprintln!("error[{}]: {e}", e.code());
    let hint = e.hint();
    if !hint.is_empty() {
        eprintln!("  hint: {hint}");
    }
    eprintln!("  explain: kiln explain {}", e.code());
    if verbose {
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            eprintln!("  caused by: {s}");
            src = s.source();
        }
    }
    if e.is_usage() {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}
