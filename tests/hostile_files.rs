//! Hostile files (issue 17): memory amplification through the pickle memo, duplicate and
//! overlapping zip records, CRC-32 checked by every command that reads tensor bytes, and
//! reading in linear time. Every file is built here in Rust (pickle bytes written by hand,
//! zips by kiln's writer or by hand), so these run without Python;
//! `scripts/gen_hostile_fixtures.py` makes the same shapes with real pickle/torch.
//!
//! The amplification tests run the `kiln` binary under a 2 GiB address-space limit
//! (`RLIMIT_AS`): without the read budget each file asks for terabytes.

use kiln::io::zip::{SliceSource, ZipIndex, ZipWriter};
use kiln::io::{LoadOptions, TensorValue, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");
const MIB: usize = 1 << 20;

// ------------------------------------------------------------------ pickle bytes by hand

/// BINUNICODE of `n` bytes of `c`.
fn big_str(n: usize, c: u8) -> Vec<u8> {
    let mut p = vec![b'X'];
    p.extend_from_slice(&(n as u32).to_le_bytes());
    p.extend(std::iter::repeat_n(c, n));
    p
}

/// BINBYTES of `n` bytes.
fn big_bytes(n: usize) -> Vec<u8> {
    let mut p = vec![b'B'];
    p.extend_from_slice(&(n as u32).to_le_bytes());
    p.extend(std::iter::repeat_n(0xab, n));
    p
}

/// `{'k': <1 MiB str>}`.
fn big_dict() -> Vec<u8> {
    let mut p = vec![b'}', b'('];
    p.extend(big_str(1, b'k'));
    p.extend(big_str(MIB, b'v'));
    p.push(b'u');
    p
}

/// A pickle whose object `base` is put in the memo, then nested in `levels` tuples that
/// each reference the level below twice (`t_i = (t_{i-1}, t_{i-1})`): 2^levels references
/// to `base` in a file of a few dozen bytes more than `base`.
fn doubling(base: &[u8], levels: u8) -> Vec<u8> {
    let mut p = vec![0x80, 2];
    p.extend_from_slice(base);
    p.extend_from_slice(&[b'q', 0]);
    for l in 1..=levels {
        p.extend_from_slice(&[b'h', l - 1, b'h', l - 1, 0x86, b'q', l]);
    }
    p.push(b'.');
    p
}

/// A flat list of `n` memo references (BINGET) to `base`.
fn flat_list(base: &[u8], n: usize) -> Vec<u8> {
    let mut p = vec![0x80, 2];
    p.extend_from_slice(base);
    p.extend_from_slice(&[b'q', 0, b'0', b']', b'(']);
    for _ in 0..n {
        p.extend_from_slice(&[b'h', 0]);
    }
    p.extend_from_slice(b"e.");
    p
}

/// A PyTorch-layout zip holding `pickle` as `archive/data.pkl`, written by kiln's writer.
fn torch_zip(path: &Path, pickle: &[u8]) {
    let mut out = Vec::new();
    let mut z = ZipWriter::new(&mut out, "mem");
    z.add("archive/data.pkl", &[pickle]).unwrap();
    z.add("archive/byteorder", &[b"little"]).unwrap();
    z.add("archive/version", &[b"3\n"]).unwrap();
    z.finish().unwrap();
    std::fs::write(path, out).unwrap();
}

/// Runs `kiln ARGS` with its address space limited to 2 GiB; (exit code, stdout, stderr,
/// seconds).
fn kiln_limited(args: &[&str]) -> (i32, String, String, Duration) {
    let mut cmd = Command::new(KILN);
    cmd.args(args);
    // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 2 << 30,
                rlim_max: 2 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t = Instant::now();
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        t.elapsed(),
    )
}

fn kiln(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(KILN).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `kiln inspect` of an amplification file: refused with K0508 naming the budget and the
/// override, under the 2 GiB limit, in under a second; the library says the same.
#[track_caller]
fn assert_refused(name: &str, pickle: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    torch_zip(&p, pickle);
    let (code, out, err, took) = kiln_limited(&["inspect", s(&p)]);
    eprintln!(
        "{name}: {} bytes, kiln inspect exit {code} in {:.3} s",
        pickle.len(),
        took.as_secs_f64()
    );
    assert_eq!(code, 1, "{name}: stdout {out}\nstderr {err}");
    assert!(err.contains("error[K0508]"), "{name}: {err}");
    assert!(err.contains("max_expanded_bytes"), "{name}: {err}");
    let limit = kiln::io::budget::default_limit(std::fs::metadata(&p).unwrap().len());
    assert!(
        err.contains(&format!("read budget of {limit} bytes")),
        "{name}: names the limit ({limit}): {err}"
    );
    assert!(out.len() < 4096, "{name}: output not bounded");
    assert!(took < Duration::from_secs(1), "{name}: took {took:?}");
    let e = kiln::io::load(&p, &LoadOptions::new()).unwrap_err();
    assert_eq!(e.code(), "K0508", "{e}");
}

// ------------------------------------------------------------------ 1. amplification

/// Regression (issue 17.1): one 1 MiB str referenced 2^21 times through the memo made kiln
/// build 2 TiB of copies.
#[test]
fn shared_str_referenced_2_pow_21_times_is_refused_quickly() {
    assert_refused("str.pt", &doubling(&big_str(MIB, b'a'), 21));
}

/// Regression (issue 17.1): the same with a 1 MiB bytes object.
#[test]
fn shared_bytes_referenced_2_pow_21_times_is_refused_quickly() {
    assert_refused("bytes.pt", &doubling(&big_bytes(MIB), 21));
}

/// Regression (issue 17.1): the same with a dict holding 1 MiB.
#[test]
fn shared_dict_referenced_2_pow_21_times_is_refused_quickly() {
    assert_refused("dict.pt", &doubling(&big_dict(), 21));
}

/// Regression (issue 17.1): a flat list of 4 Mi BINGETs of one 1 MiB str (8 MiB of file).
#[test]
fn flat_list_of_4m_references_is_refused_quickly() {
    assert_refused("list.pt", &flat_list(&big_str(MIB, b'a'), 4 << 20));
}

#[test]
fn budget_override_lets_a_trusted_file_through() {
    // 40 references to 1 MiB: over a 16 MiB budget, under the default 64 MiB floor.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("forty.pt");
    torch_zip(&p, &flat_list(&big_str(MIB, b'a'), 40));
    let v = kiln::io::load(&p, &LoadOptions::new()).unwrap();
    assert_eq!(v.as_seq().map(<[Value]>::len), Some(40));
    let tight = LoadOptions::new().max_expanded_bytes(16 << 20);
    let e = kiln::io::load(&p, &tight).unwrap_err();
    assert_eq!(e.code(), "K0508", "{e}");
    assert!(e.to_string().contains("16.00 MiB"), "{e}");
    let (code, out, err) = kiln(&["inspect", "--max-expanded-bytes", "16777216", s(&p)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("K0508"), "{err}");
    // inspect output stays bounded: each 1 MiB string is shown by its start and length.
    let (code, out, err) = kiln(&["inspect", s(&p)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.len() < 40 * 400, "{} bytes of output", out.len());
    assert!(out.contains("(1048576 bytes)"), "{out}");
}

#[test]
fn safetensors_header_is_charged_to_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.safetensors");
    let t = TensorValue::from_bytes(kiln::io::Dtype::F32, vec![2], vec![0; 8], "cpu").unwrap();
    kiln::io::save(&Value::dict([("w", Value::Tensor(t))]), &p).unwrap();
    kiln::io::load(&p, &LoadOptions::new()).unwrap();
    let e = kiln::io::load(&p, &LoadOptions::new().max_expanded_bytes(64)).unwrap_err();
    assert_eq!(e.code(), "K0508", "{e}");
    assert!(e.to_string().contains("safetensors header"), "{e}");
}

// ------------------------------------------------------------------ 2. zip records

/// A zip made by hand: local records at chosen places, a central directory listing any
/// (name, local header offset) — so duplicates, mismatches and overlaps can be written.
struct RawZip {
    buf: Vec<u8>,
    central: Vec<u8>,
    count: u16,
}

impl RawZip {
    fn new() -> Self {
        RawZip {
            buf: Vec::new(),
            central: Vec::new(),
            count: 0,
        }
    }

    fn local(name: &str, data: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        h.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(data);
        h
    }

    /// Appends a local record; its offset.
    fn add_local(&mut self, name: &str, data: &[u8]) -> u32 {
        let at = self.buf.len() as u32;
        self.buf.extend(Self::local(name, data));
        at
    }

    /// Lists `name` in the central directory, its record at `offset`.
    fn list(&mut self, name: &str, data: &[u8], offset: u32) {
        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        c.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&[0; 12]);
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        self.count += 1;
    }

    fn add(&mut self, name: &str, data: &[u8]) {
        let at = self.add_local(name, data);
        self.list(name, data, at);
    }

    fn finish(mut self) -> Vec<u8> {
        let cd_off = self.buf.len() as u32;
        let cd_len = self.central.len() as u32;
        self.buf.extend_from_slice(&self.central);
        self.buf.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&self.count.to_le_bytes());
        self.buf.extend_from_slice(&self.count.to_le_bytes());
        self.buf.extend_from_slice(&cd_len.to_le_bytes());
        self.buf.extend_from_slice(&cd_off.to_le_bytes());
        self.buf.extend_from_slice(&[0; 2]);
        self.buf
    }
}

/// BINUNICODE of `text`.
fn ustr(text: &str) -> Vec<u8> {
    let mut p = vec![b'X'];
    p.extend_from_slice(&(text.len() as u32).to_le_bytes());
    p.extend_from_slice(text.as_bytes());
    p
}

/// The pickle of `{'w': tensor(storage '0', 1 float)}`.
fn one_tensor_pickle() -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    p.extend(ustr("w"));
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
    p.extend(ustr("storage"));
    p.extend_from_slice(b"ctorch\nFloatStorage\n");
    p.extend(ustr("0"));
    p.extend(ustr("cpu"));
    p.extend_from_slice(&[b'K', 1, b't', b'Q', b'K', 0, b'K', 1, 0x85, b'K', 1, 0x85]);
    p.extend_from_slice(&[0x89, b't', b'R', b'u', b'.']);
    p
}

fn pt_records(z: &mut RawZip, pkl: &[u8]) {
    z.add("archive/data.pkl", pkl);
    z.add("archive/byteorder", b"little");
}

fn write_tmp(dir: &Path, name: &str, b: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, b).unwrap();
    p
}

#[track_caller]
fn assert_k0502(bytes: &[u8], needle: &str) {
    let e = ZipIndex::parse(&SliceSource(bytes), "mem").unwrap_err();
    assert_eq!(e.code(), "K0502", "{e}");
    assert!(e.to_string().contains(needle), "'{needle}' not in: {e}");
    let dir = tempfile::tempdir().unwrap();
    let p = write_tmp(dir.path(), "hostile.pt", bytes);
    let e = kiln::io::load(&p, &LoadOptions::new()).unwrap_err();
    assert_eq!(e.code(), "K0502", "{e}");
}

#[test]
fn hand_made_zip_of_one_tensor_loads() {
    // The control: the same builder without the defect reads fine.
    let mut z = RawZip::new();
    pt_records(&mut z, &one_tensor_pickle());
    z.add("archive/data/0", &1.5f32.to_le_bytes());
    let b = z.finish();
    let dir = tempfile::tempdir().unwrap();
    let p = write_tmp(dir.path(), "ok.pt", &b);
    let v = kiln::io::load(&p, &LoadOptions::new()).unwrap();
    let t = v.get("w").and_then(Value::as_tensor).unwrap();
    assert_eq!(t.contiguous_bytes().unwrap().as_ref(), 1.5f32.to_le_bytes());
}

/// Regression (issue 17.2): kiln read the first of two `data.pkl` records, torch the last.
#[test]
fn duplicate_data_pkl_is_k0502() {
    let mut z = RawZip::new();
    pt_records(&mut z, &one_tensor_pickle());
    z.add("archive/data/0", &1.5f32.to_le_bytes());
    z.add("archive/data.pkl", b"\x80\x02K\x07.");
    assert_k0502(&z.finish(), "appears twice");
}

/// Regression (issue 17.2): two records of one storage, different bytes.
#[test]
fn duplicate_storage_record_is_k0502() {
    let mut z = RawZip::new();
    pt_records(&mut z, &one_tensor_pickle());
    z.add("archive/data/0", &1.5f32.to_le_bytes());
    z.add("archive/data/0", &9.0f32.to_le_bytes());
    assert_k0502(&z.finish(), "'archive/data/0' appears twice");
}

#[test]
fn local_header_name_differing_from_the_directory_is_k0502() {
    let mut z = RawZip::new();
    pt_records(&mut z, &one_tensor_pickle());
    let data = 1.5f32.to_le_bytes();
    let at = z.add_local("archive/data/9", &data);
    z.list("archive/data/0", &data, at);
    assert_k0502(&z.finish(), "names 'archive/data/9'");
}

#[test]
fn overlapping_records_are_k0502() {
    // Record A's data holds a whole local record B; the directory lists both.
    let mut z = RawZip::new();
    pt_records(&mut z, &one_tensor_pickle());
    let inner_data = 1.5f32.to_le_bytes();
    let inner = RawZip::local("archive/data/0", &inner_data);
    let a_at = z.add_local("archive/extra", &inner);
    let a_header = 30 + "archive/extra".len() as u32;
    z.list("archive/extra", &inner, a_at);
    z.list("archive/data/0", &inner_data, a_at + a_header);
    assert_k0502(&z.finish(), "overlap");
}

#[test]
fn record_reaching_into_the_central_directory_is_k0502() {
    let mut z = RawZip::new();
    pt_records(&mut z, &one_tensor_pickle());
    let data = 1.5f32.to_le_bytes();
    let at = z.add_local("archive/data/0", &data);
    // Listed as 64 bytes long: the data runs into the central directory.
    let long = [0u8; 64];
    z.list("archive/data/0", &long, at);
    let b = z.finish();
    assert_k0502(&b, "central directory");
}

// ------------------------------------------------------------------ 3. integrity

/// A kiln-written .pt of one tensor and a copy with one byte of its storage flipped.
fn flipped_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let data: Vec<u8> = (0..16u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let t = TensorValue::from_bytes(kiln::io::Dtype::F32, vec![16], data, "cpu").unwrap();
    let good = dir.join("good.pt");
    kiln::io::save(&Value::dict([("w", Value::Tensor(t))]), &good).unwrap();
    let mut b = std::fs::read(&good).unwrap();
    let idx = ZipIndex::parse(&SliceSource(&b), "mem").unwrap();
    let e = idx
        .entries
        .iter()
        .find(|e| e.name.ends_with("/data/0"))
        .unwrap();
    b[e.data_start as usize + 5] ^= 0x40;
    let bad = write_tmp(dir, "bad.pt", &b);
    (good, bad)
}

/// Regression (issue 17.3): `kiln inspect` said ok for a flipped storage byte.
#[test]
fn crc_flip_is_caught_by_inspect_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = flipped_pair(dir.path());
    let (code, out, err) = kiln(&["inspect", "--verify", s(&good)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("verified: CRC-32 of"), "{out}");
    let (code, _, err) = kiln(&["inspect", "--verify", s(&bad)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("K0502") && err.contains("CRC-32 mismatch"),
        "{err}"
    );
    assert!(err.contains("/data/0"), "names the record: {err}");
    let (code, out, err) = kiln(&["inspect", "--verify", "--json", s(&good)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"verify\""), "{out}");
}

#[test]
fn crc_flip_is_caught_by_convert() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bad) = flipped_pair(dir.path());
    let out = dir.path().join("out.safetensors");
    let (code, _, err) = kiln(&["convert", s(&bad), s(&out)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("K0502") && err.contains("CRC-32"), "{err}");
    assert!(!out.exists());
}

/// Regression (issue 17.3): `kiln diff` reported a value difference for a damaged file.
#[test]
fn crc_flip_is_caught_by_diff() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = flipped_pair(dir.path());
    let (code, out, err) = kiln(&["diff", s(&good), s(&good)]);
    assert_eq!(code, 0, "{out}{err}");
    for (a, b) in [(&good, &bad), (&bad, &good)] {
        let (code, out, err) = kiln(&["diff", s(a), s(b)]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("K0502") && err.contains("CRC-32"), "{err}");
        assert!(!out.contains("differ"), "reported as a difference: {out}");
    }
}

// ------------------------------------------------------------------ 4. linear time

/// `n` tensors of 4 f32 each (the file `kiln bench io --many` reads).
fn many(n: usize) -> Value {
    let entries = (0..n).map(|i| {
        let bytes: Vec<u8> = (0..4u32)
            .flat_map(|j| ((i as u32).wrapping_add(j) as f32).to_le_bytes())
            .collect();
        let t = kiln::io::TensorValue::from_bytes(kiln::io::Dtype::F32, vec![4], bytes, "cpu");
        (format!("layer{i}.weight"), Value::Tensor(t.unwrap()))
    });
    let mut v = Value::dict(entries.collect::<Vec<_>>());
    if let Value::Dict(d) = &mut v {
        d.ordered = true;
    }
    v
}

fn time_load(p: &Path, mmap: bool) -> f64 {
    let o = LoadOptions {
        raw_locations: true,
        mmap,
        ..LoadOptions::default()
    };
    let t = Instant::now();
    let v = kiln::io::load(p, &o).unwrap();
    let s = t.elapsed().as_secs_f64();
    assert!(v.as_dict().is_some());
    s
}

/// Regression (issue 17.4): reading was quadratic in the number of records (a linear scan of
/// the zip directory per storage). 16× the tensors must take well under 16² = 256× the time
/// (the bound, 64×, leaves room for a loaded machine's noise).
#[test]
fn reading_many_tensors_is_linear() {
    let dir = tempfile::tempdir().unwrap();
    let (small, big) = (dir.path().join("4k.pt"), dir.path().join("64k.pt"));
    kiln::io::save(&many(4_000), &small).unwrap();
    kiln::io::save(&many(64_000), &big).unwrap();
    for mmap in [true, false] {
        time_load(&small, mmap);
        let best = |p: &Path| (0..3).map(|_| time_load(p, mmap)).fold(f64::MAX, f64::min);
        let (ts, tb) = (best(&small), best(&big));
        eprintln!(
            "mmap={mmap}: 4k tensors {ts:.3} s, 64k {tb:.3} s, ratio {:.1}",
            tb / ts
        );
        assert!(tb / ts < 64.0, "mmap={mmap}: 4k {ts:.3} s, 64k {tb:.3} s");
    }
}
