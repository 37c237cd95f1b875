//! `kiln convert IN OUT`: between PyTorch files (`.pt/.pth/.bin`, zip, legacy or pre-0.4 tar) and
//! `.safetensors`, optionally stripping/adding a key prefix, renaming keys by regex,
//! remapping device tags and casting floating-point tensors.
//!
//! A `.pt` → `.pt` conversion keeps the whole object (checkpoint dicts, views, shared
//! storages); key edits then apply to the state dict inside it. safetensors holds only a flat
//! dict of tensors: the state dict of a checkpoint is picked (`state_dict`,
//! `model_state_dict`…).

use kiln::error::{Error, Result};
use kiln::io::value::key_string;
use kiln::io::{
    Dtype, LoadOptions, MapLocation, Value, load, pick_state_dict, save, save_safetensors,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kiln convert`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input file.
    pub input: PathBuf,
    /// Output file; `.safetensors` writes safetensors, anything else the PyTorch zip format.
    pub output: PathBuf,
    /// Remove this prefix from keys that carry it (e.g. `module.` of DataParallel).
    #[arg(long, value_name = "P")]
    pub strip_prefix: Option<String>,
    /// Add this prefix to every key.
    #[arg(long, value_name = "P")]
    pub add_prefix: Option<String>,
    /// Rename keys: REGEX=REPLACEMENT (`$1` refers to groups); repeatable, applied in order,
    /// after --strip-prefix and --add-prefix.
    #[arg(long, value_name = "REGEX=REPLACEMENT")]
    pub rename: Vec<String>,
    /// Cast floating-point tensors to this dtype (f32, f16, bf16, f64).
    #[arg(long, value_name = "D")]
    pub dtype: Option<String>,
    /// Rewrite storage device tags: a device (cpu) or FROM=TO pairs (cuda:1=cuda:0).
    #[arg(long, value_name = "M")]
    pub map_location: Option<String>,
    /// Read budget in bytes (default max(64 MiB, 16 × file size)); raise it only for a
    /// trusted file refused with K0508.
    #[arg(long, value_name = "N")]
    pub max_expanded_bytes: Option<u64>,
    /// Write a Hugging Face sharded checkpoint into the directory OUTPUT, as
    /// `save_pretrained` does: `model-00001-of-0000N.safetensors` shards of at most this size
    /// (5GB = 5·10⁹ bytes, 2GiB = 2³⁰·2, or bytes) plus `model.safetensors.index.json`.
    #[arg(long, value_name = "SIZE")]
    pub max_shard_size: Option<String>,
    /// Merge a LoRA adapter directory (PEFT's layout: adapter_config.json +
    /// adapter_model.safetensors, what `kiln finetune --lora-rank` writes to OUT/adapter)
    /// into the base model INPUT: each adapted weight becomes W + B·A·alpha/r and the
    /// adapter's modules_to_save (a new head) replace the base's; OUTPUT is a plain model.
    #[arg(long, value_name = "ADAPTER_DIR", conflicts_with = "max_shard_size")]
    pub merge_lora: Option<PathBuf>,
}

/// Applies the key edits to a dict of tensors in place.
fn edit_keys(d: &mut Value, args: &Args) -> Result<()> {
    let Value::Dict(dict) = d else {
        return Ok(());
    };
    let mut renames = Vec::new();
    for r in &args.rename {
        let (pat, rep) = r.split_once('=').ok_or_else(|| {
            Error::invalid(
                "--rename",
                r,
                "REGEX=REPLACEMENT, e.g. '^features\\.=body.'",
            )
        })?;
        let re = regex::Regex::new(pat).map_err(|e| Error::Pattern {
            pattern: pat.to_string(),
            problem: format!("is not a valid regex: {e}"),
        })?;
        renames.push((re, rep.to_string()));
    }
    let mut seen = std::collections::HashSet::new();
    for (k, _) in &mut dict.entries {
        let Value::Str(key) = k else { continue };
        let mut nk = key.clone();
        if let Some(p) = &args.strip_prefix
            && let Some(rest) = nk.strip_prefix(p.as_str())
        {
            nk = rest.to_string();
        }
        if let Some(p) = &args.add_prefix {
            nk = format!("{p}{nk}");
        }
        for (re, rep) in &renames {
            nk = re.replace(&nk, rep.as_str()).into_owned();
        }
        if !seen.insert(nk.clone()) {
            return Err(Error::invalid(
                "key edit",
                format!("'{key}' -> '{nk}'"),
                "renamed keys must stay unique",
            ));
        }
        *key = nk;
    }
    // `_metadata` prefixes follow the same edits (only prefix changes are meaningful there).
    if let Some(meta) = dict.metadata.as_deref_mut()
        && let Value::Dict(m) = meta
    {
        for (k, _) in &mut m.entries {
            let Value::Str(key) = k else { continue };
            let mut nk = key.clone();
            if let Some(p) = &args.strip_prefix {
                let bare = p.trim_end_matches('.');
                if nk == bare {
                    nk.clear();
                } else if let Some(rest) = nk.strip_prefix(p.as_str()) {
                    nk = rest.to_string();
                }
            }
            if let Some(p) = &args.add_prefix {
                nk = if nk.is_empty() {
                    p.trim_end_matches('.').to_string()
                } else {
                    format!("{p}{nk}")
                };
            }
            // A module prefix is renamed as the keys under it are: `layer1.0` as
            // `layer1.0.` (so `^features\.` renames `features` too).
            if !nk.is_empty() {
                for (re, rep) in &renames {
                    let dotted = format!("{nk}.");
                    let r = re.replace(&dotted, rep.as_str()).into_owned();
                    nk = r.strip_suffix('.').map(str::to_string).unwrap_or(r);
                }
            }
            *key = nk;
        }
    }
    Ok(())
}

/// Runs `kiln convert`.
///
/// # Errors
/// Loading/saving errors; `K0402` for a bad regex; `K0003` for colliding keys; `K0507`
/// when safetensors is asked for a file without a state dict.
pub fn run(args: &Args) -> Result<ExitCode> {
    if let Some(dir) = &args.merge_lora {
        return merge_lora(args, dir);
    }
    let mut opts = LoadOptions {
        raw_locations: true,
        max_expanded_bytes: args.max_expanded_bytes,
        ..LoadOptions::default()
    };
    if let Some(m) = &args.map_location {
        opts.map_location = Some(MapLocation::parse(m)?);
    }
    if let Some(d) = &args.dtype {
        let d = Dtype::parse(d)?;
        if !d.is_float() {
            return Err(Error::invalid(
                "--dtype",
                d.name(),
                "a floating-point dtype (f64, f32, f16, bf16)",
            ));
        }
        opts.dtype = Some(d);
    }
    let input = args.input.display().to_string();
    let mut value = match load(&args.input, &opts) {
        Ok(v) => v,
        // A whole-module file (`torch.save(net)`, TorchScript): its state dict, read without
        // running anything.
        Err(e) if matches!(e.code(), "K0504" | "K0503") => {
            match kiln::io::module_file::module_state_dict(&args.input, &opts) {
                Ok(sd) => {
                    eprintln!("{input}: a whole-module file; converting its state_dict()");
                    sd
                }
                Err(e2) if e2.code() == "K0507" || e2.code() == "K0503" => return Err(e),
                Err(e2) => return Err(e2),
            }
        }
        Err(e) => return Err(e),
    };
    let to_st = kiln::io::Format::for_path(&args.output) == kiln::io::Format::Safetensors;
    let editing =
        args.strip_prefix.is_some() || args.add_prefix.is_some() || !args.rename.is_empty();
    let shard = args
        .max_shard_size
        .as_deref()
        .map(kiln::io::sharded::parse_size)
        .transpose()?;
    if to_st || editing || shard.is_some() {
        // Find the state dict (the value itself or the entry of a checkpoint) and edit it.
        let sd = pick_state_dict(&value, &input)?.clone();
        let mut sd = sd;
        edit_keys(&mut sd, args)?;
        if let Some(max) = shard {
            let files = kiln::io::sharded::save_sharded(&sd, &args.output, max)?;
            eprintln!("wrote {} files to {}", files.len(), args.output.display());
            return Ok(ExitCode::SUCCESS);
        }
        if to_st {
            let tensors = kiln::io::safetensors::flat_tensors(&sd)?;
            save_safetensors(&tensors, &BTreeMap::new(), &args.output)?;
            eprintln!(
                "wrote {} tensors to {}",
                tensors.len(),
                args.output.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        replace_state_dict(&mut value, sd, &input)?;
    }
    save(&value, &args.output)?;
    eprintln!("wrote {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}

fn replace_state_dict(value: &mut Value, sd: Value, input: &str) -> Result<()> {
    if pick_state_dict(value, input).is_ok_and(|v| std::ptr::eq(v, &*value)) {
        *value = sd;
        return Ok(());
    }
    let key = kiln::io::load::STATE_DICT_KEYS
        .iter()
        .find(|k| {
            value
                .get(k)
                .is_some_and(|x| pick_state_dict(x, input).is_ok())
        })
        .copied();
    if let (Some(k), Value::Dict(d)) = (key, value) {
        for (ek, ev) in &mut d.entries {
            if key_string(ek) == k {
                *ev = sd;
                return Ok(());
            }
        }
    }
    Err(Error::Schema {
        path: input.to_string(),
        detail: "cannot locate the state dict to edit".into(),
    })
}

/// `--merge-lora`: base state dict + adapter → a plain model file (key edits and casts
/// apply to the merged state dict).
fn merge_lora(args: &Args, dir: &std::path::Path) -> Result<ExitCode> {
    let mut opts = LoadOptions::new().map_location("cpu");
    opts.max_expanded_bytes = args.max_expanded_bytes;
    let base = kiln::io::load_state_dict_file(&args.input, &opts)?;
    let (mut merged, report) = kiln::nn::lora::merge_adapter(&base, dir)?;
    if let Some(d) = &args.dtype {
        let d = Dtype::parse(d)?;
        let dt = d.to_candle().filter(|t| t.is_float()).ok_or_else(|| {
            Error::invalid(
                "--dtype",
                d.name(),
                "a floating-point dtype (f64, f32, f16, bf16)",
            )
        })?;
        merged = merged.to_dtype(dt)?;
    }
    if let Some(p) = &args.strip_prefix {
        merged = merged.strip_prefix(p);
    }
    if let Some(p) = &args.add_prefix {
        merged = merged.add_prefix(p);
    }
    for r in &args.rename {
        let (pat, rep) = r.split_once('=').ok_or_else(|| {
            Error::invalid(
                "--rename",
                r,
                "REGEX=REPLACEMENT, e.g. '^features\\.=body.'",
            )
        })?;
        merged = merged.rename_regex(pat, rep)?;
    }
    kiln::io::save_state_dict(&merged, &args.output)?;
    eprintln!(
        "merged {} LoRA layers ({}) into {}{}; wrote {}",
        report.merged.len(),
        report.merged.join(", "),
        args.input.display(),
        if report.replaced.is_empty() {
            String::new()
        } else {
            format!(
                ", took {} tensors from modules_to_save",
                report.replaced.len()
            )
        },
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
