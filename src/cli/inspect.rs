//! `kiln inspect FILE [--json]`: the tree of a model file — keys, shapes, dtypes, storage
//! device tags, element counts — with total elements and bytes. Reads any PyTorch checkpoint
//! (zip or legacy, nested dicts included) or safetensors file; CUDA-tagged files need no GPU.

use kiln::error::Result;
use kiln::io::{LoadOptions, inspect, load_file};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kiln inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file to inspect (.pt, .pth, .bin, .ckpt, .safetensors).
    pub file: PathBuf,
    /// Print the report as JSON instead of a text tree.
    #[arg(long)]
    pub json: bool,
}

/// Runs `kiln inspect`.
///
/// # Errors
/// The loading errors of [`kiln::io::load()`] (K05xx, K0002).
pub fn run(args: &Args) -> Result<ExitCode> {
    let opts = LoadOptions {
        raw_locations: true,
        mmap: true,
        ..LoadOptions::default()
    };
    let loaded = load_file(&args.file, &opts)?;
    let file = args.file.display().to_string();
    if args.json {
        let report = inspect::json_report(&file, loaded.format, &loaded.value);
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let t = inspect::totals(&loaded.value);
    println!("{file} ({})", loaded.format.name());
    for (k, v) in &loaded.metadata {
        let short: String = v.chars().take(80).collect();
        println!(
            "  __metadata__ {k}: {short}{}",
            if v.len() > 80 { "…" } else { "" }
        );
    }
    print!("{}", inspect::text_tree(&loaded.value));
    let locs: Vec<String> = t
        .locations
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    println!(
        "total: {} tensors, {} elements, {} in {} storages ({})",
        t.tensors,
        t.elements,
        kiln::error::human_bytes(t.bytes),
        t.storages,
        locs.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
