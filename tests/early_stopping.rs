//! Early stopping (`--early-stopping-patience`, `--monitor`, `--min-delta`), validation every
//! N updates (`--val-every-steps`) and the best model (`model_best.safetensors`): the stop
//! follows Lightning's rule, a run killed before or at the stop and resumed ends
//! bit-identical to the uninterrupted one, and the best file holds the weights of the best
//! validation.

mod common;

use common::runs::assert_same_run;
use std::path::Path;
use std::process::{Command, Output};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn train(out: &Path, extra: &[&str]) -> Output {
    Command::new(KILN)
        .args([
            "train",
            "--model",
            "mlp",
            "--per-class",
            "10",
            "--quiet",
            "--checkpoint-every-steps",
            "4",
        ])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// 100 training digits / 16 = 7 updates per epoch; validations at steps 3, 6, 9, 12, …; with
/// accuracy as the monitor and min_delta 0.01 the run stops at step 12, in epoch 2.
const MID_EPOCH: [&str; 12] = [
    "--epochs",
    "12",
    "--val-every-steps",
    "3",
    "--early-stopping-patience",
    "2",
    "--monitor",
    "test_acc",
    "--min-delta",
    "0.01",
    "--scheduler",
    "cosine",
];

#[test]
fn stops_mid_epoch_by_lightnings_rule_and_resumes_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    let o = train(&straight, &MID_EPOCH);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = lines(&straight.join("validation.jsonl"));
    // Lightning's EarlyStopping, replayed from the logged values: mode max, improvement when
    // current - min_delta > best, stop when the wait count reaches the patience.
    let (mut best, mut wait, mut stop_at) = (f64::NEG_INFINITY, 0, None);
    for (i, line) in v.iter().enumerate() {
        let acc = line["test_acc"].as_f64().unwrap();
        assert_eq!(line["monitored"].as_f64().unwrap(), acc);
        if acc - 0.01 > best {
            best = acc;
            wait = 0;
        } else {
            wait += 1;
        }
        assert_eq!(line["wait_count"].as_u64().unwrap(), wait, "line {i}");
        assert_eq!(line["best"].as_f64().unwrap(), best, "line {i}");
        if wait >= 2 {
            stop_at = Some(i);
            break;
        }
    }
    let stop_at = stop_at.expect("the run must stop early");
    assert_eq!(stop_at, v.len() - 1, "no validation after the stop");
    assert_eq!(v[stop_at]["stop"], true);
    let stop_step = v[stop_at]["global_step"].as_u64().unwrap();
    assert_eq!(stop_step, 12);
    let m = common::runs::metrics_without_seconds(&straight);
    assert_eq!(m.len(), 2, "stopped in epoch 2");
    assert_eq!(m[1]["global_step"].as_u64().unwrap(), stop_step);
    assert!(straight.join("model_best.safetensors").exists());

    // Killed mid-run (step 10, last checkpoint at 8) and at the stop itself (step 12, whose
    // checkpoint already says "stopped"): the resumed runs end as the straight one.
    for crash in ["10", "12"] {
        let run = tmp.path().join(format!("crash{crash}"));
        let mut first = MID_EPOCH.to_vec();
        first.extend_from_slice(&["--crash-after-steps", crash]);
        assert!(
            !train(&run, &first).status.success(),
            "the crash run must die"
        );
        let mut again = MID_EPOCH.to_vec();
        again.extend_from_slice(&["--resume", "last"]);
        let o = train(&run, &again);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let what = format!("crash after step {crash}");
        assert_same_run(&straight, &run, &what);
        for f in ["validation.jsonl", "model_best.safetensors"] {
            assert!(
                std::fs::read(straight.join(f)).unwrap() == std::fs::read(run.join(f)).unwrap(),
                "{what}: {f} differs"
            );
        }
    }
}

/// Epoch-end validations: with min_delta 10 nothing after the first epoch counts as an
/// improvement, so patience 2 stops after epoch 3, and the best model is the model after
/// epoch 1 — byte-identical to the final model of a 1-epoch run.
#[test]
fn best_model_is_the_weights_of_the_best_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let es = tmp.path().join("es");
    let common = ["--scheduler", "none", "--monitor", "val_loss"];
    let mut args = vec!["--epochs", "20", "--early-stopping-patience", "2"];
    args.extend_from_slice(&["--min-delta", "10"]);
    args.extend_from_slice(&common);
    let o = Command::new(KILN)
        .args(["train", "--model", "mlp", "--per-class", "10"])
        .args(&args)
        .arg("--out")
        .arg(&es)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("early stopping: val_loss did not improve"),
        "{err}"
    );
    assert_eq!(common::runs::metrics_without_seconds(&es).len(), 3);
    let v = lines(&es.join("validation.jsonl"));
    assert_eq!(v.len(), 3);
    assert!(v.iter().all(|l| l["mid_epoch"] == false));
    let one = tmp.path().join("one");
    let mut args = vec!["--epochs", "1"];
    args.extend_from_slice(&common);
    assert!(train(&one, &args).status.success());
    assert!(
        std::fs::read(es.join("model_best.safetensors")).unwrap()
            == std::fs::read(one.join("model.safetensors")).unwrap(),
        "model_best.safetensors is not the model after epoch 1"
    );
}

#[test]
fn bad_early_stopping_settings_are_coded_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, code, says) in [
        (vec!["--min-delta", "0.1"], 2, "--early-stopping-patience"),
        (vec!["--val-every-steps", "0"], 2, "--val-every-steps"),
        (vec!["--early-stopping-patience", "0"], 2, "at least 1"),
        (
            vec!["--early-stopping-patience", "2", "--monitor", "train_loss"],
            2,
            "test_loss",
        ),
    ] {
        let mut a = vec!["--epochs", "1"];
        a.extend_from_slice(&args);
        let o = train(&tmp.path().join("x"), &a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("error[K0003]"), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    }
    // A resume with another patience is refused (K0702), like any other setting.
    let run = tmp.path().join("r");
    let mut a = MID_EPOCH.to_vec();
    a.extend_from_slice(&["--crash-after-steps", "5"]);
    assert!(!train(&run, &a).status.success());
    let mut a = MID_EPOCH.to_vec();
    a[5] = "3";
    a.extend_from_slice(&["--resume", "last"]);
    let o = train(&run, &a);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("error[K0702]"), "{err}");
}
