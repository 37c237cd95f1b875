//! `kiln train --precision`: bf16-mixed and 16-mixed runs killed mid-epoch (`--crash-after-steps`
//! aborts the process) and resumed bit-exactly, the GradScaler's state carried by the
//! checkpoint; a resume with another precision refused; `--precision 32` the run it always
//! was; the GradScaler flags validated; and everything at once (accumulation, clipping, EMA,
//! OneCycle, validation every N steps, early stopping) resumed bit-exactly.

mod common;

use common::runs::assert_same_run;
use kiln::io::{LoadOptions, Value, load};
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
        "--checkpoint-every-steps",
        "5",
    ];
    if !extra.contains(&"--scheduler") {
        args.extend_from_slice(&["--scheduler", "none"]);
    }
    args.extend_from_slice(extra);
    Command::new(KILN)
        .args(&args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `kiln.extra.grad_scaler` state of the checkpoint `checkpoints/last` names.
fn final_scaler_state(dir: &Path) -> Option<Value> {
    let ck = dir.join("checkpoints");
    let last = std::fs::read_to_string(ck.join("last")).unwrap();
    let v = load(ck.join(last.trim()), &LoadOptions::new()).unwrap();
    v.get("kiln")?.get("extra")?.get("grad_scaler").cloned()
}

/// Runs `flags` straight, then killed after update 17 (resumed from the checkpoint of update
/// 15, mid-epoch 1) and after update 12, and asserts the resumed runs ended bit-identically.
fn resumes_bit_exactly(flags: &[&str], what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    ok(&train(&straight, flags));
    for crash in ["12", "17"] {
        let run = tmp.path().join(format!("crash{crash}"));
        let mut first = flags.to_vec();
        first.extend_from_slice(&["--crash-after-steps", crash]);
        assert!(
            !train(&run, &first).status.success(),
            "the crash run must die"
        );
        let mut again = flags.to_vec();
        again.extend_from_slice(&["--resume", "last"]);
        ok(&train(&run, &again));
        let what = format!("{what}, crash after {crash}");
        assert_same_run(&straight, &run, &what);
        let state = final_scaler_state(&straight);
        assert_eq!(
            state.is_some(),
            flags.contains(&"16-mixed"),
            "{what}: a GradScaler state exactly with 16-mixed"
        );
        assert_eq!(
            state,
            final_scaler_state(&run),
            "{what}: GradScaler state differs"
        );
    }
}

#[test]
fn bf16_mixed_resumes_bit_exactly() {
    resumes_bit_exactly(&["--precision", "bf16-mixed"], "bf16-mixed");
}

/// A huge first scale overflows f16 (skipped steps, backoff) and a growth interval of 3
/// makes it overflow again and again, so the run only comes out the same if the scale and
/// the growth tracker are restored exactly.
#[test]
fn f16_mixed_with_overflows_resumes_bit_exactly() {
    let flags = [
        "--precision",
        "16-mixed",
        "--grad-scaler-init-scale",
        "1099511627776",
        "--grad-scaler-growth-interval",
        "3",
        "--accumulate-grad-batches",
        "2",
        "--clip-grad-norm",
        "1.0",
    ];
    resumes_bit_exactly(&flags, "16-mixed with overflows");
    // the scale backed off from 2^40 to where f16 gradients are finite
    let tmp = tempfile::tempdir().unwrap();
    ok(&train(&tmp.path().join("s"), &flags));
    let sd = final_scaler_state(&tmp.path().join("s")).expect("grad_scaler in the checkpoint");
    let scale = sd.get("scale").and_then(Value::as_f64).unwrap();
    assert!(scale < 1099511627776.0 / 1024.0, "scale {scale}");
    assert_eq!(sd.get("growth_interval").and_then(Value::as_i64), Some(3));
    let m = common::runs::metrics_without_seconds(&tmp.path().join("s"));
    let loss = |e: usize| m[e]["train_loss"].as_f64().unwrap();
    assert!(
        loss(1).is_finite() && loss(1) < loss(0),
        "16-mixed still learns after the overflows: {m:?}"
    );
}

#[test]
fn precision_32_is_the_run_it_always_was() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(&train(&a, &[]));
    ok(&train(&b, &["--precision", "32"]));
    assert_same_run(&a, &b, "--precision 32");
    assert_eq!(final_scaler_state(&a), None);
    // the configuration a checkpoint stores has no precision key for 32 (older checkpoints
    // compare equal)
    let ck = a.join("checkpoints");
    let last = std::fs::read_to_string(ck.join("last")).unwrap();
    let v = load(ck.join(last.trim()), &LoadOptions::new()).unwrap();
    let text = format!("{v:?}");
    assert!(!text.contains("precision"), "{text}");
}

#[test]
fn resume_with_another_precision_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (first, then) in [
        ("bf16-mixed", "32"),
        ("32", "16-mixed"),
        ("16-mixed", "bf16-mixed"),
    ] {
        let run = tmp.path().join(format!("{first}-{then}"));
        assert!(
            !train(&run, &["--precision", first, "--crash-after-steps", "7"])
                .status
                .success()
        );
        let out = train(&run, &["--precision", then, "--resume", "last"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("K0702")
                && err.contains("precision")
                && err.contains(first)
                && err.contains(then),
            "{first} → {then}: {err}"
        );
    }
}

#[test]
fn bad_precision_flags_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (flags, what) in [
        (
            &["--grad-scaler-init-scale", "1024"][..],
            "--grad-scaler-init-scale",
        ),
        (
            &[
                "--precision",
                "bf16-mixed",
                "--grad-scaler-growth-interval",
                "5",
            ][..],
            "--grad-scaler-growth-interval",
        ),
        (
            &["--precision", "16-mixed", "--grad-scaler-init-scale", "0"][..],
            "init_scale",
        ),
        (
            &[
                "--precision",
                "16-mixed",
                "--grad-scaler-growth-interval",
                "0",
            ][..],
            "growth_interval",
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

/// Issue #19 item 3's combined run: accumulation 4, norm clipping, bf16-mixed, EMA,
/// OneCycle stepped per update, validation every 5 updates with early stopping, killed
/// mid-epoch and resumed bit-exactly.
#[test]
fn everything_at_once_resumes_bit_exactly() {
    let flags = [
        "--accumulate-grad-batches",
        "4",
        "--clip-grad-norm",
        "1.0",
        "--precision",
        "bf16-mixed",
        "--ema-decay",
        "0.9",
        "--ema-warmup",
        "--scheduler",
        "onecycle",
        "--lr",
        "0.05",
        "--val-every-steps",
        "5",
        "--early-stopping-patience",
        "3",
        "--monitor",
        "test_loss",
    ];
    resumes_bit_exactly(&flags, "everything with bf16-mixed");
    let mut f16 = flags.to_vec();
    f16[5] = "16-mixed";
    resumes_bit_exactly(&f16, "everything with 16-mixed");
}

/// LeNet with kiln's defaults (15 epochs, SGD + cosine) learns the digits as well under
/// bf16-mixed and 16-mixed as in f32.
#[test]
fn mixed_precision_learns_as_well_as_f32() {
    let tmp = tempfile::tempdir().unwrap();
    let acc = |p: &str| {
        let out = tmp.path().join(p);
        let o = Command::new(KILN)
            .args(["train", "--model", "lenet", "--quiet", "--no-checkpoint"])
            .args(["--precision", p, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        ok(&o);
        let m = common::runs::metrics_without_seconds(&out);
        m.last().unwrap()["test_acc"].as_f64().unwrap()
    };
    let f32_acc = acc("32");
    for p in ["bf16-mixed", "16-mixed"] {
        let a = acc(p);
        eprintln!("{p}: test_acc {a:.4} (32: {f32_acc:.4})");
        assert!(
            a >= 0.95 && a >= f32_acc - 0.015,
            "{p}: {a} vs f32 {f32_acc}"
        );
    }
}
