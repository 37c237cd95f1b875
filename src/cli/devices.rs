//! `kiln devices`: the devices kiln can use, with logical → physical GPU mapping.

use kiln::device::{Visible, cuda};
use kiln::error::{Result, human_bytes};
use std::process::ExitCode;

/// Arguments of `kiln devices`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One logical device as reported.
#[derive(serde::Serialize, Debug)]
pub struct DeviceInfo {
    /// `cpu` or `cuda:N` (logical index).
    pub device: String,
    /// Physical GPU (index or UUID) behind the logical index.
    pub physical: Option<String>,
    /// Device name.
    pub name: String,
    /// Total memory in bytes (GPUs only).
    pub memory_bytes: Option<u64>,
}

/// Lists the devices and, when there is no GPU, why.
pub fn list() -> (Vec<DeviceInfo>, Option<String>) {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut out = vec![DeviceInfo {
        device: "cpu".into(),
        physical: None,
        name: format!("CPU ({cpus} logical cores)"),
        memory_bytes: None,
    }];
    let reason = cuda::unavailable_reason();
    if reason.is_none() {
        let visible = Visible::from_env();
        for i in 0..cuda::device_count() {
            out.push(DeviceInfo {
                device: format!("cuda:{i}"),
                physical: visible.physical(i),
                name: cuda::device_name(i).unwrap_or_else(|e| format!("<{e}>")),
                memory_bytes: cuda::total_memory(i).ok(),
            });
        }
    }
    (out, reason)
}

/// Runs `kiln devices`.
pub fn run(args: &Args) -> Result<ExitCode> {
    let (devices, reason) = list();
    let visible = Visible::from_env();
    if args.json {
        let v = serde_json::json!({
            "cuda_built": cfg!(feature = "cuda"),
            "cuda_available": reason.is_none(),
            "cuda_unavailable_reason": reason,
            "cuda_visible_devices": std::env::var("CUDA_VISIBLE_DEVICES").ok(),
            "devices": devices,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "kiln {} (CUDA support: {})",
        env!("CARGO_PKG_VERSION"),
        if cfg!(feature = "cuda") {
            "built in"
        } else {
            "not built (CPU-only build)"
        }
    );
    println!("{}", visible.describe());
    for d in &devices {
        match (&d.physical, d.memory_bytes) {
            (Some(p), Some(m)) => println!(
                "  {:<8} physical GPU {p}  {}  {}",
                d.device,
                d.name,
                human_bytes(m)
            ),
            (Some(p), None) => println!("  {:<8} physical GPU {p}  {}", d.device, d.name),
            _ => println!("  {:<8} {}", d.device, d.name),
        }
    }
    if let Some(r) = reason {
        println!("no CUDA device: {r}");
    }
    Ok(ExitCode::SUCCESS)
}
