//! Entry points for fuzzers (`fuzz/` cargo-fuzz targets and `tests/fuzz_smoke.rs`) of the
//! data-set readers: image decoding, CSV, IDX (MNIST) and the CIFAR pickle batches. Each runs
//! one reader on arbitrary bytes and must return (an error, usually), never panic, hang or
//! exhaust memory. The path-based readers get the bytes through a per-process temporary
//! file, so what is fuzzed is exactly what `kiln train --data` runs.

use crate::data::dataset::Task;
use crate::data::sources::{DecodeLimits, cifar_pickle, csv, decode_image, idx};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// Decoding limits for fuzzing: small enough that a hostile header is refused long before
/// it costs the fuzzer's memory budget, large enough for every real fixture.
const LIMITS: DecodeLimits = DecodeLimits {
    max_side: 4096,
    max_bytes: 64 << 20,
};

fn scratch(data: &[u8], ext: &str) -> Result<PathBuf> {
    let p = std::env::temp_dir().join(format!("kiln-fuzz-{}.{ext}", std::process::id()));
    std::fs::write(&p, data).map_err(|e| Error::io("writing", &p, e))?;
    Ok(p)
}

/// Decodes `data` as an image file (PNG, JPEG, BMP, GIF, …: the format is sniffed), in
/// colour and in grey, as `ImageFolder` does.
pub fn image_reader(data: &[u8]) -> Result<()> {
    let p = scratch(data, "img")?;
    let a = decode_image(&p, false, LIMITS).map(drop);
    let b = decode_image(&p, true, LIMITS).map(drop);
    a.and(b)
}

/// Reads `data` as a CSV table with a `target` column, once as classification and once as
/// regression; `Ok` when either reading succeeds.
pub fn csv_reader(data: &[u8]) -> Result<()> {
    let p = scratch(data, "csv")?;
    let a = csv::read_csv(&p, "target", Some(Task::Classification), 1 << 16).map(drop);
    let b = csv::read_csv(&p, "target", Some(Task::Regression), 1 << 16).map(drop);
    a.or(b)
}

/// Reads `data` as an IDX file (MNIST's format) of rank 3 (images) and of rank 1 (labels),
/// plain or, when `data` starts with gzip's magic, gzip-compressed; `Ok` when either
/// reading succeeds.
pub fn idx_reader(data: &[u8]) -> Result<()> {
    let ext = if data.starts_with(&[0x1f, 0x8b]) {
        "gz"
    } else {
        "idx"
    };
    let p = scratch(data, ext)?;
    let a = idx::read_idx(&p, 3).map(drop);
    let b = idx::read_idx(&p, 1).map(drop);
    a.or(b)
}

/// Reads `data` as one pickled CIFAR batch (`data_batch_1`, `batches.meta`, CIFAR-100's
/// `train`/`meta`): the restricted unpickler of the Python-version batches.
pub fn cifar_pickle_reader(data: &[u8]) -> Result<()> {
    cifar_pickle::unpickle(data, "fuzz").map(drop)
}
