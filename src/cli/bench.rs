//! `kiln bench …`: benchmarks side by side with PyTorch. `kiln bench io` measures
//! save/load (see [`crate::bench::io`]); other groups (`train`) can be added as variants.

use crate::bench::io;
use crate::error::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kiln bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which benchmark.
    #[command(subcommand)]
    pub which: Which,
}

/// The benchmark groups.
#[derive(clap::Subcommand, Debug)]
pub enum Which {
    /// Save/load of a float32 state dict: kiln (.pt, .safetensors) vs torch.save/torch.load
    /// and the safetensors package, with the raw sequential write speed as the ceiling.
    Io(IoArgs),
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
    /// Python with torch and safetensors for the reference figures (omit to skip them).
    #[arg(long)]
    pub python: Option<PathBuf>,
}

/// Runs `kiln bench`.
///
/// # Errors
/// I/O errors; a failing Python reference run.
pub fn run(args: &Args) -> Result<ExitCode> {
    match &args.which {
        Which::Io(a) => {
            let cfg = io::Config {
                size_mib: a.size_mib,
                dir: a.dir.clone(),
                repeat: a.repeat,
                python: a.python.clone(),
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
            let (k, p) = io::run_interleaved(&cfg)?;
            print!("{}", io::report(&cfg, &k, &p));
            let _ = std::fs::remove_dir(&cfg.dir);
            Ok(ExitCode::SUCCESS)
        }
    }
}
