//! `kiln diff A B [--atol X]`: compares two model files key by key — keys, shapes, dtypes
//! and values (bit-exact, or within an absolute tolerance for floating-point tensors).
//! Exit 0 when they agree, 1 otherwise, listing every difference. A PyTorch file can be
//! compared with a safetensors file: the state dict of a checkpoint is then compared, and
//! `dict` vs `OrderedDict`, views vs copies and storage sharing do not count as differences.
//! The CRC-32 of every record of a PyTorch zip file is checked before comparing: a damaged
//! file is an error (K0502), never a "difference".

use kiln::error::{Error, Result};
use kiln::io::cast::to_f64_vec;
use kiln::io::value::key_string;
use kiln::io::{Format, LoadOptions, TensorValue, Value, load_file, pick_state_dict};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kiln diff`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// First file.
    pub a: PathBuf,
    /// Second file.
    pub b: PathBuf,
    /// Absolute tolerance for floating-point values (default 0: bit-identical).
    #[arg(long, value_name = "X", default_value_t = 0.0)]
    pub atol: f64,
    /// Print at most this many differences.
    #[arg(long, default_value_t = 50)]
    pub max_lines: usize,
}

/// A leaf of a flattened value.
enum Leaf<'a> {
    Tensor(&'a TensorValue),
    Scalar(&'a Value),
}

fn flatten<'a>(v: &'a Value, path: String, out: &mut Vec<(String, Leaf<'a>)>) {
    let join = |k: String| {
        if path.is_empty() {
            k
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Tensor(t) => out.push((path, Leaf::Tensor(t))),
        Value::Dict(d) => {
            for (k, x) in &d.entries {
                flatten(x, join(key_string(k)), out);
            }
        }
        Value::List(items) | Value::Tuple(items) => {
            for (i, x) in items.iter().enumerate() {
                flatten(x, join(format!("[{i}]")), out);
            }
            if items.is_empty() {
                out.push((path, Leaf::Scalar(v)));
            }
        }
        other => out.push((path, Leaf::Scalar(other))),
    }
}

/// Compares two tensors; `None` when equal (within `atol`).
pub fn tensor_difference(a: &TensorValue, b: &TensorValue, atol: f64) -> Result<Option<String>> {
    if a.dtype() != b.dtype() {
        return Ok(Some(format!(
            "dtype {} vs {}",
            a.dtype().name(),
            b.dtype().name()
        )));
    }
    if a.shape != b.shape {
        return Ok(Some(format!("shape {:?} vs {:?}", a.shape, b.shape)));
    }
    if a.contiguous_bytes()? == b.contiguous_bytes()? {
        return Ok(None);
    }
    let (x, y) = (to_f64_vec(a)?, to_f64_vec(b)?);
    let mut worst = 0f64;
    let mut count = 0usize;
    let mut first = None;
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        let same = if atol > 0.0 && a.dtype().is_float() {
            (p.is_nan() && q.is_nan()) || p == q || (p - q).abs() <= atol
        } else {
            p.to_bits() == q.to_bits() || (p == q && atol > 0.0)
        };
        if !same {
            count += 1;
            first.get_or_insert(i);
            let d = (p - q).abs();
            if d.is_nan() || d > worst {
                worst = d;
            }
        }
    }
    if count == 0 {
        return Ok(None);
    }
    Ok(Some(format!(
        "{count} of {} values differ (max abs difference {worst:e}, first at flat index {})",
        x.len(),
        first.unwrap_or(0)
    )))
}

/// Runs `kiln diff`: prints the differences; exit 1 when there are any.
///
/// # Errors
/// Loading errors; `K0003` for a negative tolerance.
pub fn run(args: &Args) -> Result<ExitCode> {
    if args.atol.is_nan() || args.atol < 0.0 {
        return Err(Error::invalid("--atol", args.atol, "a tolerance ≥ 0"));
    }
    let opts = LoadOptions {
        raw_locations: true,
        mmap: true,
        ..LoadOptions::default()
    };
    let la = load_file(&args.a, &opts)?;
    let lb = load_file(&args.b, &opts)?;
    // The tensors are mapped (mapped records are not CRC-checked as they load): check every
    // record's CRC-32 first, so a damaged file is reported as damaged (K0502), not as a value
    // difference.
    for (f, l) in [(&args.a, &la), (&args.b, &lb)] {
        if l.format == Format::TorchZip {
            kiln::io::torch_zip::verify_file(f)?;
        }
    }
    let (pa, pb) = (args.a.display().to_string(), args.b.display().to_string());
    let (va, vb) = if la.format == Format::Safetensors || lb.format == Format::Safetensors {
        (
            pick_state_dict(&la.value, &pa)?,
            pick_state_dict(&lb.value, &pb)?,
        )
    } else {
        (&la.value, &lb.value)
    };
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    flatten(va, String::new(), &mut fa);
    flatten(vb, String::new(), &mut fb);
    let mut diffs = Vec::new();
    let ib: std::collections::HashMap<&str, &Leaf> =
        fb.iter().map(|(k, l)| (k.as_str(), l)).collect();
    let ia: std::collections::HashSet<&str> = fa.iter().map(|(k, _)| k.as_str()).collect();
    for (k, a) in &fa {
        match ib.get(k.as_str()) {
            None => diffs.push(format!("only in A: {k}")),
            Some(b) => match (a, *b) {
                (Leaf::Tensor(x), Leaf::Tensor(y)) => {
                    if let Some(d) = tensor_difference(x, y, args.atol)? {
                        diffs.push(format!("{k}: {d}"));
                    }
                }
                (Leaf::Scalar(x), Leaf::Scalar(y)) => {
                    let close = match (x.as_f64(), y.as_f64()) {
                        (Some(p), Some(q))
                            if matches!(x, Value::Float(_)) || matches!(y, Value::Float(_)) =>
                        {
                            p.to_bits() == q.to_bits() || (p - q).abs() <= args.atol
                        }
                        _ => x == y,
                    };
                    if !close {
                        diffs.push(format!("{k}: {x:?} vs {y:?}"));
                    }
                }
                (Leaf::Tensor(_), Leaf::Scalar(y)) => {
                    diffs.push(format!("{k}: Tensor vs {}", y.type_name()))
                }
                (Leaf::Scalar(x), Leaf::Tensor(_)) => {
                    diffs.push(format!("{k}: {} vs Tensor", x.type_name()))
                }
            },
        }
    }
    for (k, _) in &fb {
        if !ia.contains(k.as_str()) {
            diffs.push(format!("only in B: {k}"));
        }
    }
    if diffs.is_empty() {
        println!(
            "{} and {} agree ({} entries{})",
            pa,
            pb,
            fa.len(),
            if args.atol > 0.0 {
                format!(", atol {}", args.atol)
            } else {
                ", bit-identical".into()
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    for d in diffs.iter().take(args.max_lines) {
        println!("{d}");
    }
    if diffs.len() > args.max_lines {
        println!("… and {} more", diffs.len() - args.max_lines);
    }
    println!("{} difference(s) between {pa} and {pb}", diffs.len());
    Ok(ExitCode::from(1))
}
