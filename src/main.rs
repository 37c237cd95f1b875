//! The `kiln` command: a thin layer over the `kiln` library that parses arguments, shows
//! progress and charts, and turns library errors into exit codes with CLI hints.

mod bench;
mod chart;
mod cli;
mod progress;

fn main() -> std::process::ExitCode {
    cli::main()
}
