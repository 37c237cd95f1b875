//! `kiln finetune`: `kiln train` starting from pretrained weights, with a new head, frozen
//! parameters, per-pattern learning rates and gradual unfreezing. Every flag of `kiln train`
//! works here too (same loop, metrics, chart, checkpoints and `--resume`).

use super::train::{self, print_summary};
use kiln::error::Result;
use kiln::finetune::{FinetuneConfig, GroupRule, UnfreezeRule};
use kiln::nn::lora::LoraConfig;
use kiln::train::TrainConfig;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kiln finetune`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pretrained weights: a state dict or checkpoint (.pt, .pth, .safetensors) or a
    /// whole-model file.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// Outputs of the new head (default: the classes of --data, else the number of
    /// --classes, else 10).
    #[arg(long, short = 'k', value_name = "N")]
    pub num_classes: Option<usize>,
    /// Freeze the parameters these patterns select (glob `conv*`, regex `^fc\.`, or a module
    /// name such as `layer4`); repeat or list several.
    #[arg(long, value_name = "PATTERN", num_args = 1..)]
    pub freeze: Vec<String>,
    /// A parameter group with its own learning rate, PATTERN=LR (e.g. 'layer4.*=1e-4');
    /// trainable parameters no group selects use --lr.
    #[arg(long, value_name = "PATTERN=LR", num_args = 1..)]
    pub group: Vec<String>,
    /// Gradual unfreezing, EPOCH[:PATTERN][=LR]: at the start of 0-based epoch EPOCH,
    /// unfreeze the frozen parameters PATTERN selects (default: all) as a new group with
    /// learning rate LR (default: a tenth of --lr).
    #[arg(long, value_name = "EPOCH[:PATTERN][=LR]")]
    pub unfreeze_at: Vec<String>,
    /// The head: the submodule built with --num-classes outputs and left at its new
    /// initialisation [default: the model's, e.g. fc for resnet*, classifier.6 for vgg*,
    /// classifier.1 for mobilenet_v2/efficientnet*, classifier.3 for mobilenet_v3*].
    #[arg(long)]
    pub head: Option<String>,
    /// Load the pretrained head too when its shape fits.
    #[arg(long)]
    pub keep_head: bool,
    /// Keep BatchNorm layers whose parameters are all frozen in eval mode (running
    /// statistics untouched, so a frozen backbone stays bit-identical). The default; the
    /// flag is accepted for scripts that spell it out.
    #[arg(long, conflicts_with = "bn_train")]
    pub bn_eval: bool,
    /// Let frozen BatchNorm layers run in training mode as PyTorch's `model.train()` does:
    /// batch statistics in the forward and running statistics updated, though their weight
    /// and bias stay frozen.
    #[arg(long)]
    pub bn_train: bool,
    /// Allow freezing parameters the pretrained file does not provide (they stay at their
    /// random initialisation); without it that is error K0408.
    #[arg(long)]
    pub allow_frozen_random: bool,
    /// LoRA fine-tuning: the rank r of the low-rank adapters added to the --lora-targets
    /// layers; every other parameter is frozen except the new head, which trains in full
    /// (PEFT's modules_to_save; with --keep-head it stays frozen and may be a target).
    #[arg(long, value_name = "R", requires = "lora_targets")]
    pub lora_rank: Option<usize>,
    /// LoRA alpha: the adapters' update is scaled by alpha / r [default: 8, PEFT's].
    #[arg(long, value_name = "A", requires = "lora_rank")]
    pub lora_alpha: Option<f64>,
    /// Layers that get LoRA adapters (Linear and Conv2d): exact module paths, a suffix
    /// after a dot (conv2 matches layer1.0.conv2), a glob (fc*) or re:REGEX.
    #[arg(long, value_name = "PATTERN", num_args = 1.., requires = "lora_rank")]
    pub lora_targets: Vec<String>,
    /// LoRA dropout on the adapters' input (0 = none).
    #[arg(long, value_name = "P", requires = "lora_rank")]
    pub lora_dropout: Option<f64>,
    /// Everything `kiln train` takes.
    #[command(flatten)]
    pub train: train::Args,
}

impl Args {
    /// The run's configuration: `kiln train`'s with the fine-tuning part.
    ///
    /// # Errors
    /// `K0003` for a bad value; `K0402` for a pattern that does not compile.
    pub fn config(&self) -> Result<TrainConfig> {
        let mut cfg = self.train.config()?;
        cfg.num_classes = self.num_classes;
        if self.train.out.is_none() {
            cfg.out = PathBuf::from("runs").join(format!("{}-finetune", cfg.model));
        }
        let head = self
            .head
            .clone()
            .unwrap_or_else(|| kiln::models::default_head(&cfg.model).to_string());
        let lora = match self.lora_rank {
            None => None,
            Some(r) => {
                let l = LoraConfig {
                    r,
                    alpha: self.lora_alpha.unwrap_or(8.0),
                    dropout: self.lora_dropout.unwrap_or(0.0),
                    target_modules: self.lora_targets.clone(),
                    modules_to_save: if self.keep_head {
                        Vec::new()
                    } else {
                        vec![head.clone()]
                    },
                };
                l.validate()?;
                Some(l)
            }
        };
        cfg.finetune = Some(FinetuneConfig {
            from: Some(self.from.clone()),
            head,
            keep_head: self.keep_head,
            freeze: self.freeze.clone(),
            groups: self
                .group
                .iter()
                .map(|g| GroupRule::parse(g))
                .collect::<Result<_>>()?,
            unfreeze: self
                .unfreeze_at
                .iter()
                .map(|u| UnfreezeRule::parse(u))
                .collect::<Result<_>>()?,
            bn_eval: self.bn_eval || !self.bn_train,
            allow_frozen_random: self.allow_frozen_random,
            lora,
        });
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Runs `kiln finetune`.
///
/// # Errors
/// Configuration, loading, training and I/O errors.
pub fn run(args: &Args) -> Result<ExitCode> {
    let cfg = args.config()?;
    let opts = args.train.run_options()?;
    // SAFETY: `kiln finetune` runs straight from `main`; no other thread exists yet.
    unsafe { kiln::train::threads::set_threads(cfg.threads)? };
    let summary = super::train::run_job(&cfg, &opts)?;
    print_summary(&args.train, &summary);
    if args.lora_rank.is_some() && !args.train.quiet {
        let dir = cfg.out.join(kiln::train::run::ADAPTER_DIR);
        println!(
            "LoRA adapters (PEFT layout) in {}; a plain model: kiln convert {} merged.safetensors --merge-lora {}",
            dir.display(),
            args.from.display(),
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    fn parse(args: &[&str]) -> std::result::Result<Args, clap::Error> {
        T::try_parse_from(std::iter::once("finetune").chain(args.iter().copied())).map(|t| t.a)
    }

    /// clap's own consistency checks (duplicate flags between `kiln finetune` and the
    /// flattened `kiln train` flags, short-flag clashes), which release builds skip.
    #[test]
    fn the_whole_command_line_is_consistent() {
        use clap::CommandFactory;
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn tensorboard_flag_is_shared_with_train() {
        let a = parse(&["--from", "pre.safetensors", "--tensorboard"]).unwrap();
        assert!(a.train.run_options().unwrap().tensorboard);
    }

    #[test]
    fn flags_reach_the_config() {
        let a = parse(&[
            "--from",
            "pre.safetensors",
            "--classes",
            "5-9",
            "--per-class",
            "20",
            "--freeze",
            "conv*",
            "fc1",
            "--group",
            "fc2=1e-3",
            "--unfreeze-at",
            "3:conv*=1e-4",
            "--bn-eval",
        ])
        .unwrap();
        let c = a.config().unwrap();
        let ft = c.finetune.clone().unwrap();
        assert_eq!(ft.freeze, ["conv*", "fc1"]);
        assert_eq!(ft.groups[0].lr, 1e-3);
        assert_eq!(ft.unfreeze[0].epoch, 3);
        assert!(ft.bn_eval && !ft.keep_head);
        let plain = parse(&["--from", "pre.safetensors", "--freeze", "conv*"]).unwrap();
        assert!(
            plain.config().unwrap().finetune.unwrap().bn_eval,
            "the default"
        );
        let train = parse(&["--from", "pre.safetensors", "--bn-train"]).unwrap();
        assert!(!train.config().unwrap().finetune.unwrap().bn_eval);
        assert!(parse(&["--from", "x", "--bn-eval", "--bn-train"]).is_err());
        assert_eq!(ft.head, "fc");
        assert_eq!(c.outputs(), 5);
        assert_eq!(c.out, PathBuf::from("runs/lenet-finetune"));
    }

    #[test]
    fn lora_flags_reach_the_config() {
        let a = parse(&[
            "--from",
            "pre.safetensors",
            "--lora-rank",
            "4",
            "--lora-alpha",
            "16",
            "--lora-targets",
            "fc1",
            "conv*",
            "--lora-dropout",
            "0.1",
        ])
        .unwrap();
        let l = a.config().unwrap().finetune.unwrap().lora.unwrap();
        assert_eq!((l.r, l.alpha, l.dropout), (4, 16.0, 0.1));
        assert_eq!(l.target_modules, ["fc1", "conv*"]);
        assert_eq!(l.modules_to_save, ["fc"], "the new head trains in full");
        let kept = parse(&[
            "--from",
            "x",
            "--lora-rank",
            "2",
            "--lora-targets",
            "fc",
            "--keep-head",
        ])
        .unwrap();
        let l = kept.config().unwrap().finetune.unwrap().lora.unwrap();
        assert!(l.modules_to_save.is_empty() && l.alpha == 8.0);
        assert!(
            parse(&["--from", "x", "--lora-rank", "2"]).is_err(),
            "targets required"
        );
        assert!(
            parse(&["--from", "x", "--lora-targets", "fc1"]).is_err(),
            "rank required"
        );
        let zero = parse(&["--from", "x", "--lora-rank", "0", "--lora-targets", "fc1"]).unwrap();
        assert_eq!(zero.config().unwrap_err().code(), "K0742");
        let plain = parse(&["--from", "x"]).unwrap();
        assert!(plain.config().unwrap().finetune.unwrap().lora.is_none());
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse(&[]).is_err(), "--from is required");
        let e = parse(&["--from", "x", "--group", "fc"]).unwrap().config();
        assert_eq!(e.unwrap_err().code(), "K0003");
        let e = parse(&["--from", "x", "--unfreeze-at", "soon"])
            .unwrap()
            .config();
        assert_eq!(e.unwrap_err().code(), "K0003");
        let e = parse(&["--from", "x", "--classes", "0-4", "-k", "3"])
            .unwrap()
            .config();
        assert_eq!(e.unwrap_err().code(), "K0003");
    }
}
