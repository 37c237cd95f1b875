//! `kiln inspect FILE [--json]`: the tree of a model file — keys, shapes, dtypes, storage
//! device tags, element counts — with total elements and bytes. Reads any PyTorch checkpoint
//! (zip, legacy or pre-0.4 tar, nested dicts included) or safetensors file; CUDA-tagged files need no GPU.
//! Tensor data is not read (the file is mapped); `--verify` also checks the CRC-32 of every
//! record of a PyTorch zip file, streaming each record without materialising a tensor.
//!
//! Whole-module files (`torch.save(net)`, zip or legacy) and TorchScript archives are read
//! in the structural mode, nothing in them run: the module tree is printed like
//! `print(net)`, then its state dict, and the classes kiln cannot rebuild are named.
//!
//! `--globals` lists every class and function the file's pickles would import or call, each
//! marked safe, rebuildable, dangerous or unknown; the exit code is 0 when all are safe or
//! rebuildable, 1 when some are unknown, 2 when any is dangerous.

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
    /// List every class and function the pickle would import or call (safe, rebuildable,
    /// dangerous, unknown); exit code 0 all safe or rebuildable, 1 some unknown, 2 any
    /// dangerous.
    #[arg(long)]
    pub globals: bool,
}

fn globals_report(args: &Args) -> Result<ExitCode> {
    let uses = kiln::io::list_globals(&args.file)?;
    let code = kiln::io::module_file::globals::exit_code(&uses);
    if args.json {
        let list: Vec<serde_json::Value> = uses
            .iter()
            .map(|u| {
                serde_json::json!({
                    "module": u.module,
                    "name": u.name,
                    "kind": u.kind.name(),
                    "why": u.why,
                })
            })
            .collect();
        let report = serde_json::json!({
            "file": args.file.display().to_string(),
            "globals": list,
            "exit_code": code,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!("{}: {} globals", args.file.display(), uses.len());
        for u in &uses {
            let why = if u.why.is_empty() {
                String::new()
            } else {
                format!("  ({})", u.why)
            };
            println!("  {:<12} {}.{}{why}", u.kind.name(), u.module, u.name);
        }
        println!(
            "{}",
            match code {
                0 => "all safe or rebuildable",
                1 => "some globals are unknown to kiln (read as inert records, never called)",
                _ => "DANGEROUS: the file names globals that run code; kiln refuses to read it",
            }
        );
    }
    Ok(ExitCode::from(code as u8))
}

/// `kiln inspect` of a whole-module or TorchScript file.
fn module_report(args: &Args, opts: &LoadOptions) -> Result<Option<ExitCode>> {
    use kiln::io::module_file::{module_repr, module_tree, read_module_file, unrebuildable};
    let f = match read_module_file(&args.file, opts) {
        Ok(f) => f,
        Err(e) if matches!(e.code(), "K0503" | "K0507") => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(m) = f.module() else {
        return Ok(None);
    };
    let file = args.file.display().to_string();
    let tree = module_tree(m, &file)?;
    let sd = tree.state_dict();
    let missing = unrebuildable(&tree);
    if args.json {
        let mut report = inspect::json_report(&file, f.format, &sd);
        if let Some(o) = report.as_object_mut() {
            o.insert("format".into(), f.format_name().into());
            o.insert("module".into(), module_repr(&tree).into());
            o.insert("classes".into(), tree.classes().into());
            o.insert("cannot_rebuild".into(), missing.clone().into());
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(Some(ExitCode::SUCCESS));
    }
    println!(
        "{file} ({}, whole module {}, read without running it)",
        f.format_name(),
        tree.class_path()
    );
    println!("{}", module_repr(&tree));
    println!("state_dict:");
    print!("{}", inspect::text_tree(&sd));
    let t = inspect::totals(&sd);
    println!(
        "total: {} tensors, {} elements, {} in {} storages",
        t.tensors,
        t.elements,
        kiln::error::human_bytes(t.bytes),
        t.storages
    );
    if missing.is_empty() {
        println!("rebuild: kiln rebuilds every class (kiln forward --weights FILE runs it)");
    } else {
        println!(
            "rebuild: kiln cannot rebuild {} (`kiln convert FILE out.safetensors` still extracts the state dict)",
            missing.join(", ")
        );
    }
    Ok(Some(ExitCode::SUCCESS))
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
    if args.globals {
        return globals_report(args);
    }
    let verified = if args.verify {
        match kiln::io::detect_format(&args.file)? {
            Format::TorchZip => Some(kiln::io::torch_zip::verify_file(&args.file)?),
            _ => None,
        }
    } else {
        None
    };
    let loaded = match load_file(&args.file, &opts) {
        Ok(l) => l,
        Err(e) if matches!(e.code(), "K0504" | "K0503") => {
            return match module_report(args, &opts)? {
                Some(code) => Ok(code),
                None => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
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
