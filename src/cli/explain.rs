//! `kiln explain CODE | --list | --markdown`: the error catalogue.

use kiln::error::{CATALOG, Error, Result, lookup, markdown};
use std::process::ExitCode;

/// Arguments of `kiln explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The error code to explain, e.g. K0301.
    pub code: Option<String>,
    /// List every code with its one-line title.
    #[arg(long)]
    pub list: bool,
    /// Print the whole catalogue as Markdown (this is how docs/errors.md is made).
    #[arg(long)]
    pub markdown: bool,
}

/// Runs `kiln explain`.
pub fn run(args: &Args) -> Result<ExitCode> {
    if args.markdown {
        print!("{}", markdown());
        return Ok(ExitCode::SUCCESS);
    }
    if args.list || args.code.is_none() {
        for c in CATALOG {
            println!("{}  {:<22} {}", c.code, c.name, c.title);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let code = args.code.as_deref().unwrap_or_default();
    let c = lookup(code).ok_or_else(|| {
        Error::invalid(
            "error code",
            code,
            "a code listed by `kiln explain --list` (K0001 … K0802)",
        )
    })?;
    println!(
        "{} {}: {}\n\n{}\n\nFix: {}",
        c.code, c.name, c.title, c.explanation, c.hint
    );
    Ok(ExitCode::SUCCESS)
}
