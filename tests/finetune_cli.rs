//! `kiln finetune` end to end: the transfer-learning demo (fine-tuning beats training from
//! scratch on 100 images), the load report, coded errors for bad groups, and gradual
//! unfreezing that survives a crash and `--resume` bit-exactly (optimizer state of the added
//! group included).

mod common;

use common::runs::{assert_same_run, final_optimizer_state};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn kiln(args: &[&str]) -> Output {
    Command::new(KILN).args(args).output().unwrap()
}

/// LeNet pretrained on digits 0-4 (kiln's defaults), shared by the tests.
fn pretrained() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("pre");
        let o = kiln(&[
            "train",
            "--classes",
            "0-4",
            "--quiet",
            "--no-checkpoint",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        d
    });
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| dir.path().join("pre/model.safetensors"))
}

fn accuracy(dir: &Path) -> f64 {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    last["test_acc"].as_f64().unwrap()
}

const DATA: [&str; 6] = ["--classes", "5-9", "--per-class", "20", "--epochs", "5"];

/// The demo's short budget (35 steps, kiln's default lr, seed 0): both fine-tuning variants
/// beat training from scratch on the same 100 images by a wide margin (docs/FINETUNE.md).
#[test]
fn finetuning_beats_scratch_on_100_images() {
    let tmp = tempfile::tempdir().unwrap();
    let pre = pretrained().to_str().unwrap();
    let run = |name: &str, args: &[&str]| -> f64 {
        let out = tmp.path().join(name);
        let mut a = args.to_vec();
        a.extend_from_slice(&DATA);
        a.extend_from_slice(&["--quiet", "--no-checkpoint", "--out", out.to_str().unwrap()]);
        let o = kiln(&a);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        accuracy(&out)
    };
    let frozen = run(
        "frozen",
        &[
            "finetune", "--from", pre, "--freeze", "conv1", "conv2", "fc1", "fc2",
        ],
    );
    let small = run(
        "small",
        &[
            "finetune",
            "--from",
            pre,
            "--group",
            "conv*=0.003",
            "fc1=0.003",
            "fc2=0.003",
        ],
    );
    let scratch = run("scratch", &["train", "--model", "lenet"]);
    println!("frozen {frozen:.3} small-lr {small:.3} scratch {scratch:.3}");
    assert!(
        frozen > scratch + 0.2,
        "frozen {frozen} vs scratch {scratch}"
    );
    assert!(
        small > scratch + 0.2,
        "small-lr {small} vs scratch {scratch}"
    );
}

#[test]
fn prints_the_head_skip_report_and_the_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ft");
    let o = kiln(&[
        "finetune",
        "--from",
        pretrained().to_str().unwrap(),
        "--classes",
        "5-7",
        "--per-class",
        "5",
        "--epochs",
        "1",
        "--freeze",
        "conv*",
        "--group",
        "fc1=1e-3",
        "--no-checkpoint",
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in [
        "loaded 8 tensors from",
        "skipped fc.weight: excluded by the skip pattern",
        "frozen: 4 of 10 parameter tensors",
        "group 1: 'fc1': 2 tensors",
        "test accuracy",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(out.join("metrics.jsonl").exists() && out.join("curves.png").exists());
}

#[test]
fn overlapping_groups_and_nothing_trainable_are_coded_errors() {
    let pre = pretrained().to_str().unwrap();
    let o = kiln(&[
        "finetune",
        "--from",
        pre,
        "--group",
        "fc*=0.1",
        "*.bias=0.2",
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("error[K0602]"), "{err}");
    assert!(
        err.contains(
            "'fc1.bias' is in groups 1 and 2 (selected by the group patterns 'fc*' and '*.bias')"
        ),
        "{err}"
    );
    // Freezing everything freezes the new head too, which the file did not provide.
    let o = kiln(&["finetune", "--from", pre, "--freeze", "*", "--quiet"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("error[K0408]") && err.contains("fc"), "{err}");
    assert!(!err.contains("head"), "{err}");
    let o = kiln(&[
        "finetune",
        "--from",
        pre,
        "--freeze",
        "*",
        "--allow-frozen-random",
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("error[K0601]"), "{err}");
    let o = kiln(&["finetune", "--from", pre, "--freeze", "layer9", "--quiet"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("error[K0402]"));
}

fn finetune(out: &Path, extra: &[&str]) -> std::process::ExitStatus {
    finetune_cmd(out, "2=0.005", extra).status().unwrap()
}

fn finetune_cmd(out: &Path, unfreeze_at: &str, extra: &[&str]) -> Command {
    let mut args = vec![
        "finetune",
        "--from",
        pretrained().to_str().unwrap(),
        "--classes",
        "5-9",
        "--per-class",
        "20",
        "--epochs",
        "4",
        "--freeze",
        "conv1",
        "conv2",
        "fc1",
        "fc2",
        "--unfreeze-at",
        unfreeze_at,
        "--quiet",
        "--checkpoint-every-steps",
        "4",
    ];
    args.extend_from_slice(extra);
    let mut c = Command::new(KILN);
    c.args(&args).arg("--out").arg(out);
    c
}

fn groups_of(state: &kiln::io::Value) -> usize {
    state.get("param_groups").unwrap().as_seq().unwrap().len()
}

/// 100 images / batch 16 = 7 steps per epoch; the backbone unfreezes at the start of epoch
/// index 2 (step 15). Checkpoints every 4 steps and at epoch ends: a crash after step 10
/// resumes from step 8 (before the unfreeze), after 15 from the end of epoch index 1
/// (step 14, unfreeze still to come), after 18 from step 16 (group already added).
fn check_resume(name: &str, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    assert!(finetune(&straight, extra).success());
    let want = final_optimizer_state(&straight);
    assert_eq!(groups_of(&want), 2, "{name}: head + unfrozen backbone");
    for crash_at in ["10", "15", "18"] {
        let run = tmp.path().join(format!("crash{crash_at}"));
        let mut first = extra.to_vec();
        first.extend_from_slice(&["--crash-after-steps", crash_at]);
        assert!(
            !finetune(&run, &first).success(),
            "{name}: the crash run must die"
        );
        let mut again = extra.to_vec();
        again.extend_from_slice(&["--resume", "last"]);
        assert!(
            finetune(&run, &again).success(),
            "{name}: resume after {crash_at}"
        );
        assert_same_run(
            &straight,
            &run,
            &format!("{name}, crash after step {crash_at}"),
        );
    }
}

#[test]
fn gradual_unfreezing_resumes_bit_exactly_with_sgd_momentum() {
    check_resume("sgd", &[]);
}

#[test]
fn gradual_unfreezing_resumes_bit_exactly_with_adam_and_step_lr() {
    check_resume(
        "adam",
        &[
            "--optimizer",
            "adam",
            "--lr",
            "0.003",
            "--scheduler",
            "step:1:0.7",
        ],
    );
}

#[test]
fn resume_with_another_finetune_setup_is_k0702() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    assert!(!finetune(&run, &["--crash-after-steps", "9"]).success());
    let out = finetune_cmd(&run, "3=0.005", &["--resume", "last"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error[K0702]") && err.contains("finetune differs"),
        "{err}"
    );
}
