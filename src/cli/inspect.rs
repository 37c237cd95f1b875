//! `kiln inspect FILE [--json]`: the tree of a model file — keys, shapes, dtypes, storage
//! device tags, element counts — with total elements and bytes. Reads any PyTorch checkpoint
//! (zip or legacy, nested dicts included) or safetensors file; CUDA-tagged files need no GPU.
//! Tensor data is not read (the file is mapped); `--verify` also checks the CRC-32 of every
//! record of a PyTorch zip file, streaming each record without materialising a tensor.

use kiln::error::Result;
use kiln::io::{Format, LoadOptions, inspect, load_file};
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
    /// Check the CRC-32 of every record (PyTorch zip files), streamed: catches a flipped byte
    /// in tensor data without loading the tensors.
    #[arg(long)]
    pub verify: bool,
    /// Read budget in bytes (default max(64 MiB, 16 × file size)); raise it only for a
    /// trusted file refused with K0508.
    #[arg(long, value_name = "N")]
    pub max_expanded_bytes: Option<u64>,
}

/// Runs `kiln inspect`.
///
/// # Errors
/// The loading errors of [`kiln::io::load()`] (K05xx, K0002).
pub fn run(args: &Args) -> Result<ExitCode> {
    let opts = LoadOptions {
        raw_locations: true,
        mmap: true,
        max_expanded_bytes: args.max_expanded_bytes,
        ..LoadOptions::default()
    };
    let verified = if args.verify {
        match kiln::io::detect_format(&args.file)? {
            Format::TorchZip => Some(kiln::io::torch_zip::verify_file(&args.file)?),
            _ => None,
        }
    } else {
        None
    };
    let loaded = load_file(&args.file, &opts)?;
    let file = args.file.display().to_string();
    let verify_line = |f: Format| match &verified {
        Some(v) => format!(
            "verified: CRC-32 of {} records ok ({}){}",
            v.records,
            kiln::error::human_bytes(v.bytes),
            if v.without_crc > 0 {
                format!(", {} records without a CRC", v.without_crc)
            } else {
                String::new()
            }
        ),
        None => format!(
            "verify: {} files carry no checksums; structure and sizes checked",
            f.name()
        ),
    };
    if args.json {
        let mut report = inspect::json_report(&file, loaded.format, &loaded.value);
        if args.verify
            && let Some(o) = report.as_object_mut()
        {
            o.insert("verify".into(), verify_line(loaded.format).into());
        }
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
    if args.verify {
        println!("{}", verify_line(loaded.format));
    }
    Ok(ExitCode::SUCCESS)
}
