//! A bounded, seeded fuzzer on stable Rust: the same entry points as the cargo-fuzz targets in
//! `fuzz/` (`kiln::io::fuzz::*`), fed with random mutations of real files (the PyTorch
//! fixtures, their pickles, kiln-written safetensors). Every reader must return — an error
//! or a value — and never panic.
//!
//! The unmutated seeds are real, valid files: each must load (`Ok`), and the malicious
//! whole-module fixtures (`evil_*.pt`) must be refused (`Err`); they are mutated all the same.
//!
//! Iterations per reader: `KILN_FUZZ_ITERS` (default 5000; `scripts/fuzz.sh` runs 20000+).

use kiln::io::fuzz;
use kiln::io::zip::{SliceSource, ZipIndex};
use std::path::PathBuf;

/// xorshift64*: deterministic, seedable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: [u8; 12] = [
    0, 1, 0x7f, 0x80, 0xff, b'(', b'.', b'q', b'h', b'X', b'c', 0x8a,
];

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = d.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => d.truncate(rng.below(len + 1)),
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(16).min(len - i);
                d.drain(i..i + n);
            }
            4 => {
                let i = rng.below(len + 1);
                let b = (rng.next() & 0xff) as u8;
                d.insert(i, b);
            }
            5 if len > 8 => {
                // Overwrite 4 or 8 bytes with an extreme little-endian integer (sizes, offsets).
                let i = rng.below(len - 8);
                let v: u64 =
                    [0, 1, u32::MAX as u64, u64::MAX, 1 << 31, 1 << 40, i as u64][rng.below(7)];
                let w = if rng.below(2) == 0 { 4 } else { 8 };
                d[i..i + w].copy_from_slice(&v.to_le_bytes()[..w]);
            }
            6 if len > 2 => {
                // Duplicate a chunk (repeats opcodes, records).
                let i = rng.below(len);
                let n = rng.below(64).min(len - i);
                let chunk = d[i..i + n].to_vec();
                let at = rng.below(d.len() + 1);
                d.splice(at..at, chunk);
            }
            7 if len > 0 => {
                let i = rng.below(len);
                d[i] = d[i].wrapping_add(1);
            }
            _ => {
                let i = rng.below(len + 1);
                d.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
        }
    }
    d
}

fn iterations() -> usize {
    std::env::var("KILN_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000)
}

fn fixture_files() -> Vec<Vec<u8>> {
    files_in("tests/fixtures/io")
}

/// The whole-module fixtures (`torch.save(net)`, TorchScript), without the malicious ones.
fn module_files() -> Vec<Vec<u8>> {
    files_matching("tests/fixtures/modules", "pt", |n| !n.starts_with("evil"))
}

/// The malicious whole-module fixtures (`evil_*.pt`), which every reader must refuse.
fn evil_module_files() -> Vec<Vec<u8>> {
    files_matching("tests/fixtures/modules", "pt", |n| n.starts_with("evil"))
}

fn files_in(sub: &str) -> Vec<Vec<u8>> {
    files_matching(sub, "pt", |_| true)
}

fn files_matching(sub: &str, ext: &str, keep: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(sub);
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.extension().is_some_and(|x| x == ext) && keep(&name) {
            out.push(std::fs::read(p).unwrap());
        }
    }
    out.sort();
    out
}

fn pickles() -> Vec<Vec<u8>> {
    pickles_of(fixture_files())
}

fn pickles_of(files: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in files {
        if let Ok(idx) = ZipIndex::parse(&SliceSource(&f), "seed") {
            for e in &idx.entries {
                if e.name.ends_with("data.pkl") {
                    let s = e.data_start as usize;
                    out.push(f[s..s + e.size as usize].to_vec());
                }
            }
        }
    }
    out
}

fn run(name: &str, seeds: &[Vec<u8>], f: fn(&[u8]) -> kiln::Result<()>, seed: u64) {
    run_with(name, seeds, &[], f, seed);
}

/// Fuzzes `f` from `valid` (real files that must load) and `refused` (hostile files that must
/// be refused): both are asserted unmutated, then mutated at random.
fn run_with(
    name: &str,
    valid: &[Vec<u8>],
    refused: &[Vec<u8>],
    f: fn(&[u8]) -> kiln::Result<()>,
    seed: u64,
) {
    assert!(!valid.is_empty(), "{name}: no seeds");
    let mut rng = Rng(seed);
    for (k, s) in valid.iter().enumerate() {
        if let Err(e) = f(s) {
            panic!(
                "{name}: valid seed {k} ({} bytes) does not load: {e}",
                s.len()
            );
        }
    }
    for (k, s) in refused.iter().enumerate() {
        assert!(f(s).is_err(), "{name}: hostile seed {k} was not refused");
    }
    let seeds: Vec<&Vec<u8>> = valid.iter().chain(refused).collect();
    for i in 0..iterations() {
        let base = seeds[rng.below(seeds.len())];
        let input = mutate(base, &mut rng);
        let r = std::panic::catch_unwind(|| f(&input).is_ok());
        if r.is_err() {
            let path = std::env::temp_dir().join(format!("kiln-fuzz-crash-{name}-{i}.bin"));
            let _ = std::fs::write(&path, &input);
            panic!(
                "{name} panicked on iteration {i}; input saved to {}",
                path.display()
            );
        }
    }
}

#[test]
fn pickle_reader_never_panics() {
    run(
        "pickle_reader",
        &pickles(),
        fuzz::pickle_reader,
        0x5eed_0001,
    );
}

#[test]
fn torch_zip_reader_never_panics() {
    let seeds: Vec<Vec<u8>> = fixture_files()
        .into_iter()
        .filter(|f| f.starts_with(b"PK"))
        .collect();
    run(
        "torch_zip_reader",
        &seeds,
        fuzz::torch_zip_reader,
        0x5eed_0002,
    );
}

#[test]
fn legacy_reader_never_panics() {
    let seeds: Vec<Vec<u8>> = fixture_files()
        .into_iter()
        .filter(|f| !f.starts_with(b"PK"))
        .collect();
    run("legacy_reader", &seeds, fuzz::legacy_reader, 0x5eed_0003);
}

#[test]
fn safetensors_reader_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.safetensors");
    let v = kiln::io::load(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/io/dataparallel.pt"),
        &kiln::io::LoadOptions::new(),
    )
    .unwrap();
    kiln::io::save(&v, &p).unwrap();
    let seeds = vec![std::fs::read(&p).unwrap()];
    run(
        "safetensors_reader",
        &seeds,
        fuzz::safetensors_reader,
        0x5eed_0004,
    );
}

#[test]
fn structural_pickle_reader_never_panics() {
    run_with(
        "structural_pickle_reader",
        &pickles_of(module_files()),
        &pickles_of(evil_module_files()),
        fuzz::structural_pickle_reader,
        0x5eed_0005,
    );
}

#[test]
fn structural_zip_reader_never_panics() {
    let zips = |v: Vec<Vec<u8>>| -> Vec<Vec<u8>> {
        v.into_iter().filter(|f| f.starts_with(b"PK")).collect()
    };
    run_with(
        "structural_zip_reader",
        &zips(module_files()),
        &zips(evil_module_files()),
        fuzz::structural_zip_reader,
        0x5eed_0006,
    );
}

/// Every file of the data fixtures under `sub` (recursively) whose name passes `keep`.
fn data_files(sub: &str, keep: &dyn Fn(&str) -> bool) -> Vec<Vec<u8>> {
    fn walk(dir: &std::path::Path, keep: &dyn Fn(&str) -> bool, out: &mut Vec<Vec<u8>>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, keep, out);
            } else if keep(&p.file_name().unwrap().to_string_lossy()) {
                out.push(std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = Vec::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data");
    walk(&root.join(sub), keep, &mut out);
    out
}

#[test]
fn image_reader_never_panics() {
    let seeds = data_files("imagefolder", &|n| {
        kiln::data::sources::IMG_EXTENSIONS
            .iter()
            .any(|e| n.to_ascii_lowercase().ends_with(e))
    });
    run(
        "image_reader",
        &seeds,
        kiln::data::fuzz::image_reader,
        0x5eed_0007,
    );
}

#[test]
fn csv_reader_never_panics() {
    let seeds = data_files("", &|n| n == "table.csv");
    run(
        "csv_reader",
        &seeds,
        kiln::data::fuzz::csv_reader,
        0x5eed_0008,
    );
}

#[test]
fn idx_reader_never_panics() {
    let seeds = data_files("mnist", &|_| true);
    run(
        "idx_reader",
        &seeds,
        kiln::data::fuzz::idx_reader,
        0x5eed_0009,
    );
}

#[test]
fn cifar_pickle_reader_never_panics() {
    let seeds = data_files("cifar-10-batches-py", &|n| {
        n == "test_batch" || n == "batches.meta"
    });
    run(
        "cifar_pickle_reader",
        &seeds,
        kiln::data::fuzz::cifar_pickle_reader,
        0x5eed_000a,
    );
}

#[test]
fn torch_tar_reader_never_panics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/io/tar");
    let mut seeds = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "tar") {
            seeds.push(std::fs::read(p).unwrap());
        }
    }
    seeds.sort();
    run(
        "torch_tar_reader",
        &seeds,
        fuzz::torch_tar_reader,
        0x5eed_000b,
    );
}
