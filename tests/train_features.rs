//! Training features through `kiln train`: gradient accumulation and clipping, killed
//! mid-epoch and resumed bit-exactly; their flags validated; the gradient norm logged.

mod common;

use common::runs::assert_same_run;
use std::path::Path;
use std::process::Command;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn train(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--model",
        "lenet",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--quiet",
        "--scheduler",
        "none",
        "--checkpoint-every-steps",
        "5",
    ];
    args.extend_from_slice(extra);
    Command::new(KILN)
        .args(&args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const FEATURES: [&str; 6] = [
    "--accumulate-grad-batches",
    "4",
    "--clip-grad-norm",
    "0.5",
    "--clip-grad-value",
    "0.2",
];

#[test]
fn accumulation_and_clipping_resume_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    let out = train(&straight, &FEATURES);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 1438 digits / 32 = 45 batches an epoch: 11 updates of 4 and one of 1.
    let m = metrics(&straight);
    assert_eq!(m[0]["global_step"], 12);
    assert_eq!(m[1]["global_step"], 24);
    let norm = m[0]["grad_norm"].as_f64().expect("grad_norm is logged");
    assert!(norm > 0.0 && norm.is_finite(), "{norm}");
    assert!(
        m[1]["train_loss"].as_f64().unwrap().is_finite(),
        "{:?}",
        m[1]
    );
    // Update 12 ends epoch 1; update 17 is in epoch 2, resumed from the checkpoint of
    // update 15 (batch 12 of the epoch).
    for crash in ["12", "17"] {
        let run = tmp.path().join(format!("crash{crash}"));
        let mut first = FEATURES.to_vec();
        first.extend_from_slice(&["--crash-after-steps", crash]);
        assert!(
            !train(&run, &first).status.success(),
            "the crash run must die"
        );
        let mut again = FEATURES.to_vec();
        again.extend_from_slice(&["--resume", "last"]);
        let out = train(&run, &again);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_same_run(
            &straight,
            &run,
            &format!("accumulate 4 + clipping, crash after {crash}"),
        );
    }
}

#[test]
fn accumulation_changes_the_run_and_a_resume_notices() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let mut first = FEATURES.to_vec();
    first.extend_from_slice(&["--crash-after-steps", "7"]);
    assert!(!train(&a, &first).status.success());
    let out = train(&a, &["--accumulate-grad-batches", "2", "--resume", "last"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("K0702") && err.contains("step"), "{err}");
}

#[test]
fn bad_feature_flags_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (flags, what) in [
        (
            &["--accumulate-grad-batches", "0"][..],
            "accumulate_grad_batches",
        ),
        (&["--clip-grad-norm=-1"][..], "clip_grad_norm"),
        (
            &["--clip-grad-norm", "1", "--clip-grad-norm-type", "two"][..],
            "clip-grad-norm-type",
        ),
    ] {
        let out = train(&tmp.path().join("x"), flags);
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("K0003") && err.contains(what),
            "{flags:?}: {err}"
        );
    }
}

#[test]
fn nonfinite_gradient_norm_stops_with_k0704() {
    let tmp = tempfile::tempdir().unwrap();
    let out = train(
        &tmp.path().join("nan"),
        &[
            "--lr",
            "1e30",
            "--clip-grad-norm",
            "1",
            "--error-if-nonfinite",
            "--on-nan",
            "continue",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("K0704") && err.contains("non-finite"), "{err}");
}
