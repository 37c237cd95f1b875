//! `kiln bench io`: save and load of a float32 state dict (default 1 GiB, tensors of 4 Mi
//! elements) with kiln (.pt and .safetensors) against `torch.save`/`torch.load` and the
//! Python `safetensors` package (run through `scripts/bench_io.py`), with the machine's raw
//! sequential write speed (write + fsync of the same size) as the ceiling.
//!
//! kiln and PyTorch run in alternating rounds so both meet the same disk and load.
//! Every save is durable (kiln: temporary file, fsync, rename, directory fsync; PyTorch:
//! `torch.save` then `os.fsync`). Loads read from the page cache, for every contender alike:
//! an untimed load precedes each timed one.
//! Each figure is the median of `repeat` runs.

use kiln::StateDict;
use kiln::error::{Error, Result};
use kiln::io::{LoadOptions, TensorValue, Value, load, save};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Elements per tensor (16 MiB of float32), as in `scripts/bench_io.py`.
pub const CHUNK: usize = 4 * 1024 * 1024;

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Size of the state dict in MiB.
    pub size_mib: usize,
    /// Directory for the files (deleted afterwards).
    pub dir: PathBuf,
    /// Runs per measurement (the median counts).
    pub repeat: usize,
    /// Python with torch and safetensors, or `None` to skip PyTorch.
    pub python: Option<PathBuf>,
}

/// One measured operation (median seconds).
#[derive(Clone, Debug)]
pub struct Measurement {
    /// What was timed.
    pub name: String,
    /// Median time in seconds.
    pub seconds: f64,
}

/// The value benchmarked: an `OrderedDict` of float32 tensors totalling `size_mib` MiB.
pub fn state_dict_value(size_mib: usize) -> Result<Value> {
    let mut total = size_mib * 1024 * 1024 / 4;
    let mut entries = Vec::new();
    let mut x: u32 = 0x1234_5678;
    let mut i = 0;
    while total > 0 {
        let n = total.min(CHUNK);
        let mut bytes = Vec::with_capacity(n * 4);
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            bytes.extend_from_slice(&((x >> 8) as f32 / 16_777_216.0).to_le_bytes());
        }
        entries.push((
            format!("layer{i}.weight"),
            Value::Tensor(TensorValue::from_bytes(
                kiln::io::Dtype::F32,
                vec![n],
                bytes,
                "cpu",
            )?),
        ));
        total -= n;
        i += 1;
    }
    let mut v = Value::dict(entries);
    if let Value::Dict(d) = &mut v {
        d.ordered = true;
    }
    Ok(v)
}

/// The median time of `repeat` runs (robust to the allocator and page-cache state that
/// make single runs of both kiln and PyTorch vary).
fn best(repeat: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut t = Vec::new();
    for _ in 0..repeat.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

/// Like [`best`], after one untimed run that brings the file into the page cache (loads are
/// measured from memory for every contender alike).
fn warm(repeat: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    best(repeat, f)
}

/// Raw sequential write of the value's tensor bytes, one `write` per tensor (what `dd` of the
/// same data would do), then fsync: the speed limit of any format writing this data.
///
/// # Errors
/// `K0002` on I/O failure.
pub fn raw_write(path: &Path, v: &Value) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io("creating", path, e))?;
    let mut res = Ok(());
    v.visit_tensors(&mut |_, t| {
        if res.is_ok() {
            res = f.write_all(t.storage.data.as_slice());
        }
    });
    res.map_err(|e| Error::io("writing", path, e))?;
    f.sync_all().map_err(|e| Error::io("syncing", path, e))
}

/// Runs kiln's measurements (and the ceiling) on an already built value.
///
/// # Errors
/// I/O and loading errors.
pub fn run_kiln_with(cfg: &Config, v: &Value) -> Result<Vec<Measurement>> {
    std::fs::create_dir_all(&cfg.dir).map_err(|e| Error::io("creating", &cfg.dir, e))?;
    let pt = cfg.dir.join("kiln.pt");
    let st = cfg.dir.join("kiln.safetensors");
    let raw = cfg.dir.join("raw.bin");
    let mut out = Vec::new();
    let mut m = |name: &str, s: f64| {
        out.push(Measurement {
            name: name.to_string(),
            seconds: s,
        })
    };
    m(
        "raw write+fsync (ceiling)",
        best(cfg.repeat, || raw_write(&raw, v))?,
    );
    let _ = std::fs::remove_file(&raw);
    m("kiln save .pt", best(cfg.repeat, || save(v, &pt))?);
    m(
        "kiln load .pt",
        warm(cfg.repeat, || load(&pt, &LoadOptions::new()).map(drop))?,
    );
    m(
        "kiln load .pt (no CRC check)",
        warm(cfg.repeat, || {
            let o = LoadOptions {
                skip_crc: true,
                ..LoadOptions::default()
            };
            load(&pt, &o).map(drop)
        })?,
    );
    m(
        "kiln load .pt (mmap)",
        warm(cfg.repeat, || {
            load(&pt, &LoadOptions::new().mmap(true)).map(drop)
        })?,
    );
    m("kiln save .safetensors", best(cfg.repeat, || save(v, &st))?);
    m(
        "kiln load .safetensors",
        warm(cfg.repeat, || load(&st, &LoadOptions::new()).map(drop))?,
    );
    m(
        "kiln load .safetensors (mmap)",
        warm(cfg.repeat, || {
            load(&st, &LoadOptions::new().mmap(true)).map(drop)
        })?,
    );
    // A state dict as candle tensors, the way a model would be loaded.
    m(
        "kiln load_state_dict_file .pt (→ candle tensors)",
        warm(cfg.repeat, || {
            kiln::io::load_state_dict_file(&pt, &LoadOptions::new()).map(|s: StateDict| drop(s))
        })?,
    );
    for p in [&pt, &st] {
        let _ = std::fs::remove_file(p);
    }
    Ok(out)
}

/// Runs `scripts/NAME` with `python` and returns the last JSON line it printed.
///
/// # Errors
/// `K0002` when Python cannot be started; `K0003` when the script fails (its stderr) or
/// prints no JSON line.
pub(crate) fn run_json_script(
    python: &Path,
    name: &str,
    args: &[&std::ffi::OsStr],
    needs: &str,
) -> Result<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name);
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .map_err(|e| Error::io("running", python, e))?;
    if !out.status.success() {
        return Err(Error::invalid(
            "python benchmark",
            String::from_utf8_lossy(&out.stderr),
            format!("scripts/{name} to succeed ({needs})"),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| Error::invalid("python benchmark output", text.to_string(), "a JSON line"))
}

/// Runs `scripts/bench_io.py` with `python`, returning its measurements.
///
/// # Errors
/// `K0002` when Python cannot be started; `K0003` when it fails or prints no JSON.
pub fn run_python(cfg: &Config, python: &Path) -> Result<Vec<Measurement>> {
    let size = cfg.size_mib.to_string();
    let repeat = cfg.repeat.to_string();
    let j = run_json_script(
        python,
        "bench_io.py",
        &[
            "--size-mib".as_ref(),
            size.as_ref(),
            "--dir".as_ref(),
            cfg.dir.as_os_str(),
            "--repeat".as_ref(),
            repeat.as_ref(),
        ],
        "torch and safetensors installed",
    )?;
    let mut v = Vec::new();
    if let Some(o) = j.as_object() {
        for (k, x) in o {
            if let Some(s) = x.as_f64() {
                v.push(Measurement {
                    name: k.clone(),
                    seconds: s,
                });
            }
        }
        if let Some(ver) = o.get("torch_version").and_then(|x| x.as_str()) {
            v.push(Measurement {
                name: format!("torch {ver}"),
                seconds: f64::NAN,
            });
        }
    }
    Ok(v)
}

/// Runs kiln and PyTorch in alternation — one run of every operation each, `repeat` rounds —
/// so both see the same disk and machine load (the disk of a shared machine varies by 2×
/// within minutes), and reports the median of each operation over the rounds.
///
/// # Errors
/// I/O errors; a failing Python run.
pub fn run_interleaved(cfg: &Config) -> Result<(Vec<Measurement>, Vec<Measurement>)> {
    let v = state_dict_value(cfg.size_mib)?;
    let once = Config {
        repeat: 1,
        ..cfg.clone()
    };
    let (mut k, mut p) = (Vec::new(), Vec::new());
    for round in 0..cfg.repeat.max(1) {
        eprintln!("round {}/{}…", round + 1, cfg.repeat.max(1));
        k.push(run_kiln_with(&once, &v)?);
        if let Some(py) = &cfg.python {
            p.push(run_python(&once, py)?);
        }
    }
    Ok((median_of(&k), median_of(&p)))
}

fn median_of(rounds: &[Vec<Measurement>]) -> Vec<Measurement> {
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|m| {
            let mut t: Vec<f64> = rounds
                .iter()
                .filter_map(|r| r.iter().find(|x| x.name == m.name).map(|x| x.seconds))
                .collect();
            t.sort_by(f64::total_cmp);
            Measurement {
                name: m.name.clone(),
                seconds: t.get(t.len() / 2).copied().unwrap_or(f64::NAN),
            }
        })
        .collect()
}

/// Formats the side-by-side table.
pub fn report(cfg: &Config, kiln: &[Measurement], py: &[Measurement]) -> String {
    let mb = (cfg.size_mib << 20) as f64 / 1e6;
    let get = |v: &[Measurement], n: &str| v.iter().find(|m| m.name == n).map(|m| m.seconds);
    let rate = |s: f64| mb / s;
    let ceiling = get(kiln, "raw write+fsync (ceiling)").unwrap_or(f64::NAN);
    let mut s = format!(
        "save/load of a {} MiB float32 state dict ({} tensors), median of {} interleaved rounds\n\n| operation | kiln s | kiln MB/s | reference | ref s | ref MB/s | kiln speed-up |\n| --- | ---: | ---: | --- | ---: | ---: | ---: |\n",
        cfg.size_mib,
        (cfg.size_mib << 20).div_ceil(CHUNK * 4),
        cfg.repeat
    );
    let rows = [
        ("kiln save .pt", "torch.save"),
        ("kiln load .pt", "torch.load"),
        ("kiln load .pt (no CRC check)", "torch.load"),
        ("kiln load .pt (mmap)", "torch.load(mmap=True)"),
        ("kiln save .safetensors", "safetensors.save_file"),
        ("kiln load .safetensors", ""),
        // safetensors.load_file maps the file: compare it with kiln's mapped load.
        ("kiln load .safetensors (mmap)", "safetensors.load_file"),
        (
            "kiln load_state_dict_file .pt (→ candle tensors)",
            "torch.load",
        ),
    ];
    for (k, r) in rows {
        let ks = get(kiln, k).unwrap_or(f64::NAN);
        let rs = get(py, r).unwrap_or(f64::NAN);
        s.push_str(&format!(
            "| {k} | {ks:.3} | {:.0} | {} | {rs:.3} | {:.0} | {:.2}× |\n",
            rate(ks),
            if r.is_empty() { "—" } else { r },
            rate(rs),
            rs / ks
        ));
    }
    let save_pt = get(kiln, "kiln save .pt").unwrap_or(f64::NAN);
    let save_st = get(kiln, "kiln save .safetensors").unwrap_or(f64::NAN);
    s.push_str(&format!(
        "\nceiling (raw sequential write + fsync): {ceiling:.3} s = {:.0} MB/s; kiln save .pt reaches {:.0}% of it, .safetensors {:.0}%\n",
        rate(ceiling),
        100.0 * ceiling / save_pt,
        100.0 * ceiling / save_st
    ));
    if let Some(v) = py.iter().find(|m| m.name.starts_with("torch ")) {
        s.push_str(&format!("reference: {}\n", v.name));
    }
    s
}

/// `kiln bench io --many N`: what was measured on a file of `n` small tensors.
#[derive(Clone, Debug)]
pub struct Many {
    /// Number of tensors.
    pub tensors: usize,
    /// Size of the file kiln wrote.
    pub file_bytes: u64,
    /// Median seconds of kiln's `load` (read into memory, CRCs checked: what `torch.load`
    /// does).
    pub kiln_load: f64,
    /// Median seconds of kiln's mapped load (what `kiln inspect` does).
    pub kiln_mmap: f64,
    /// Median seconds of `torch.load` of the same file, when Python ran.
    pub torch_load: Option<f64>,
    /// `torch.__version__`.
    pub torch_version: Option<String>,
}

/// A state dict of `n` float32 tensors of 4 elements (`layer{i}.weight`): a file whose cost
/// is all structure (records, pickle, keys), none of it data.
///
/// # Errors
/// None in practice (the tensor sizes are fixed).
pub fn many_value(n: usize) -> Result<Value> {
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let bytes: Vec<u8> = (0..4u32)
            .flat_map(|j| ((i as u32).wrapping_add(j) as f32).to_le_bytes())
            .collect();
        entries.push((
            format!("layer{i}.weight"),
            Value::Tensor(TensorValue::from_bytes(
                kiln::io::Dtype::F32,
                vec![4],
                bytes,
                "cpu",
            )?),
        ));
    }
    let mut v = Value::dict(entries);
    if let Value::Dict(d) = &mut v {
        d.ordered = true;
    }
    Ok(v)
}

/// Writes a `.pt` of `n` small tensors with kiln into `dir`, then times kiln's read and
/// `torch.load` of that same file (`scripts/bench_io_many.py`) in this run; each figure is
/// the median of `repeat` loads after an untimed one.
///
/// # Errors
/// I/O and loading errors; a failing Python run.
pub fn run_many(n: usize, dir: &Path, repeat: usize, python: Option<&Path>) -> Result<Many> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let pt = dir.join("many.pt");
    save(&many_value(n)?, &pt)?;
    let file_bytes = std::fs::metadata(&pt)
        .map_err(|e| Error::io("reading", &pt, e))?
        .len();
    let check = |v: Value| -> Result<()> {
        let got = v.as_dict().map_or(0, |d| d.entries.len());
        if got == n {
            Ok(())
        } else {
            Err(Error::invalid("tensors read back", got, format!("{n}")))
        }
    };
    let kiln_load = warm(repeat, || check(load(&pt, &LoadOptions::new())?))?;
    let kiln_mmap = warm(repeat, || {
        let o = LoadOptions {
            raw_locations: true,
            mmap: true,
            ..LoadOptions::default()
        };
        check(load(&pt, &o)?)
    })?;
    let (mut torch_load, mut torch_version) = (None, None);
    if let Some(py) = python {
        let repeat = repeat.max(1).to_string();
        let j = run_json_script(
            py,
            "bench_io_many.py",
            &[
                "--file".as_ref(),
                pt.as_os_str(),
                "--repeat".as_ref(),
                repeat.as_ref(),
            ],
            "torch installed",
        )?;
        torch_load = j.get("torch.load").and_then(serde_json::Value::as_f64);
        torch_version = j
            .get("torch_version")
            .and_then(|x| x.as_str())
            .map(str::to_string);
    }
    let _ = std::fs::remove_file(&pt);
    Ok(Many {
        tensors: n,
        file_bytes,
        kiln_load,
        kiln_mmap,
        torch_load,
        torch_version,
    })
}

/// The report of [`run_many`]; the last line is `ratio kiln/pytorch: X` when PyTorch ran.
pub fn report_many(m: &Many, repeat: usize) -> String {
    let mut s = format!(
        "read of a .pt of {} small tensors ({}), median of {} loads after a warm one\n",
        m.tensors,
        kiln::error::human_bytes(m.file_bytes),
        repeat.max(1)
    );
    s.push_str(&format!(
        "kiln load (CRC-checked, into memory): {:.3} s\n",
        m.kiln_load
    ));
    s.push_str(&format!(
        "kiln load (mmap, as kiln inspect):    {:.3} s\n",
        m.kiln_mmap
    ));
    match m.torch_load {
        Some(t) => {
            s.push_str(&format!(
                "torch.load ({}):{}{t:.3} s\n",
                m.torch_version.as_deref().unwrap_or("torch"),
                " ".repeat(20usize.saturating_sub(m.torch_version.as_deref().map_or(5, str::len)))
            ));
            s.push_str(&format!("ratio kiln/pytorch: {:.3}\n", m.kiln_load / t));
        }
        None => s.push_str("torch.load: not run (no Python; set KILN_PYTHON)\n"),
    }
    s
}
