//! `kiln forward --model ARCH --weights FILE --input X.safetensors --output Y.safetensors`:
//! builds a built-in architecture (or the model of a whole-model file), loads the weights
//! strictly, runs an eval-mode forward pass on the tensor named `input` and writes the
//! result as the tensor named `output`.

use candle_core::Device;
use kiln::error::{Error, Result};
use kiln::io::{
    LoadOptions, TensorValue, Value, load, load_model, load_state_dict_file, save_safetensors,
};
use kiln::nn::Module;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kiln forward`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Architecture (mlp, lenet, or a torchvision name such as resnet50; see `kiln train
    /// --help`); omit when --weights is a whole-model file.
    #[arg(long)]
    pub model: Option<String>,
    /// Weights: a state dict / checkpoint (.pt, .safetensors) or a whole-model file.
    #[arg(long)]
    pub weights: PathBuf,
    /// A safetensors file with a tensor named `input` ([N, C, H, W], or [N, F] for mlp).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the tensor `output` (safetensors).
    #[arg(long)]
    pub output: PathBuf,
    /// Number of classes (default: rows of the weights' `fc.weight`).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Input channels (default: from the input's shape).
    #[arg(long)]
    pub in_channels: Option<usize>,
    /// Image side (default: from the input's shape).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Device to compute on: cpu, cuda or cuda:N (the weights are loaded with
    /// map_location cpu and then moved there; the output is written from the CPU).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

fn input_tensor(path: &PathBuf) -> Result<candle_core::Tensor> {
    let v = load(path, &LoadOptions::new().map_location("cpu"))?;
    let t = v
        .get("input")
        .and_then(Value::as_tensor)
        .ok_or_else(|| Error::Schema {
            path: path.display().to_string(),
            detail: "no tensor named 'input'".into(),
        })?;
    t.to_tensor(&Device::Cpu)
}

/// Runs `kiln forward`.
///
/// # Errors
/// Loading errors; `K0401` when the weights do not fit the architecture; `K0003` for an
/// unknown architecture; layer errors for an input of the wrong shape; `K0303`/`K0304`/`K0305`
/// for a device that is not there or does not parse.
pub fn run(args: &Args) -> Result<ExitCode> {
    let device = kiln::train::parse_device(&args.device)?;
    let x = input_tensor(&args.input)?;
    let opts = LoadOptions::new().map_location("cpu");
    let model: Box<dyn Module> = match &args.model {
        None => match load_model(&args.weights, &opts) {
            Ok(m) => m,
            // Not a kiln whole-model file: a PyTorch whole-module file (`torch.save(net)`,
            // TorchScript), rebuilt without running it.
            Err(e) if matches!(e.code(), "K0504" | "K0503" | "K0507") => {
                kiln::io::load_torch_module(&args.weights).map_err(|e2| match e2.code() {
                    "K0507" | "K0503" => e,
                    _ => e2,
                })?
            }
            Err(e) => return Err(e),
        },
        Some(arch) => {
            let sd = load_state_dict_file(&args.weights, &opts)?;
            let num_classes = match args.num_classes {
                Some(n) => n,
                None => sd
                    .get("fc.weight")
                    .and_then(|w| w.dims().first().copied())
                    .ok_or_else(|| {
                        Error::invalid(
                            "--num-classes",
                            "missing",
                            "a value (the weights have no fc.weight to infer it from)",
                        )
                    })?,
            };
            let dims = x.dims();
            let (c, s) = match dims {
                [_, c, h, _] => (*c, *h),
                [_, f] => {
                    let side = (*f as f64).sqrt().round() as usize;
                    if side * side == *f {
                        (1, side)
                    } else {
                        (*f, 1)
                    }
                }
                _ => {
                    return Err(Error::invalid(
                        "input shape",
                        format!("{dims:?}"),
                        "[N, C, H, W] (or [N, F] for mlp)",
                    ));
                }
            };
            let m = kiln::models::build(
                arch,
                num_classes,
                args.in_channels.unwrap_or(c),
                args.image_size.unwrap_or(s),
            )?;
            m.load_state_dict(&sd, true)?;
            m
        }
    };
    model.eval();
    model.to_device(&device)?;
    let x = x
        .to_device(&device)
        .map_err(|e| Error::backend("input to device", e))?;
    let y = model
        .forward(&x)?
        .to_device(&Device::Cpu)
        .map_err(|e| Error::backend("output to cpu", e))?;
    let out = TensorValue::from_tensor(&y)?;
    save_safetensors(
        &[("output".to_string(), &out)],
        &BTreeMap::new(),
        &args.output,
    )?;
    eprintln!("wrote output {:?} to {}", y.dims(), args.output.display());
    Ok(ExitCode::SUCCESS)
}
