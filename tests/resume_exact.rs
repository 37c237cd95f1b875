//! A run that crashes (abort) and resumes with `--resume last` ends bit-identical to a run
//! that never stopped: model file, optimizer state of the final checkpoint and metrics (all
//! but wall-clock seconds). Crash at an epoch boundary and mid-epoch, with SGD-momentum, Adam
//! a StepLR schedule and a per-step OneCycleLR.

mod common;

use common::runs::assert_same_run;
use kiln::io::{LoadOptions, Value, load};
use std::path::Path;
use std::process::Command;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn train(out: &Path, extra: &[&str]) -> std::process::ExitStatus {
    train_epochs(out, "2", extra)
}

fn train_epochs(out: &Path, epochs: &str, extra: &[&str]) -> std::process::ExitStatus {
    let mut args = vec![
        "train",
        "--model",
        "lenet",
        "--epochs",
        epochs,
        "--batch-size",
        "32",
        "--quiet",
        "--checkpoint-every-steps",
        "10",
    ];
    args.extend_from_slice(extra);
    Command::new(KILN)
        .args(&args)
        .arg("--out")
        .arg(out)
        .status()
        .unwrap()
}

fn check(name: &str, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    assert!(train(&straight, extra).success());
    // 1438 training digits / 32 = 45 batches per epoch: step 45 ends epoch 1, step 57 is mid-epoch 2.
    for crash_at in ["45", "57"] {
        let run = tmp.path().join(format!("crash{crash_at}"));
        let mut first = extra.to_vec();
        first.extend_from_slice(&["--crash-after-steps", crash_at]);
        let st = train(&run, &first);
        assert!(!st.success(), "{name}: the crash run must die");
        let mut again = extra.to_vec();
        again.extend_from_slice(&["--resume", "last"]);
        assert!(
            train(&run, &again).success(),
            "{name}: resume after crash at {crash_at}"
        );
        assert_same_run(
            &straight,
            &run,
            &format!("{name}, crash after step {crash_at}"),
        );
    }
}

#[test]
fn sgd_momentum_resume_is_bit_exact() {
    check(
        "sgd",
        &[
            "--optimizer",
            "sgd",
            "--momentum",
            "0.9",
            "--scheduler",
            "none",
        ],
    );
}

#[test]
fn adam_resume_is_bit_exact() {
    check("adam", &["--optimizer", "adam", "--scheduler", "none"]);
}

#[test]
fn steplr_resume_is_bit_exact() {
    check(
        "steplr",
        &["--optimizer", "sgd", "--scheduler", "step:1:0.5"],
    );
}

/// OneCycleLR stepped after every optimizer update (`--lr-interval step`): the crash at
/// step 57 falls mid-epoch, between two scheduler steps of the same epoch.
#[test]
fn onecycle_per_step_resume_is_bit_exact() {
    check(
        "onecycle per step",
        &[
            "--optimizer",
            "sgd",
            "--momentum",
            "0.9",
            "--scheduler",
            "onecycle",
            "--max-lr",
            "0.2",
            "--lr-interval",
            "step",
        ],
    );
}

#[test]
fn mlp_with_dropout_resume_is_bit_exact() {
    // The MLP has dropout: the RNG state must be restored too.
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let base = [
        "train",
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--quiet",
        "--checkpoint-every-steps",
        "25",
    ];
    assert!(
        Command::new(KILN)
            .args(base)
            .arg("--out")
            .arg(&a)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        !Command::new(KILN)
            .args(base)
            .args(["--crash-after-steps", "110"])
            .arg("--out")
            .arg(&b)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new(KILN)
            .args(base)
            .args(["--resume", "auto"])
            .arg("--out")
            .arg(&b)
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
}

#[test]
fn resume_with_another_configuration_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    assert!(train_epochs(&run, "1", &[]).success());
    let out = Command::new(KILN)
        .args([
            "train", "--model", "lenet", "--epochs", "2", "--quiet", "--lr", "0.5", "--resume",
            "last", "--out",
        ])
        .arg(&run)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("K0702")
            && err.contains("lr differs")
            && err.contains("0.03")
            && err.contains("0.5"),
        "{err}"
    );
    let out = Command::new(KILN)
        .args([
            "train", "--model", "mlp", "--epochs", "2", "--quiet", "--resume", "last", "--out",
        ])
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("K0702") && err.contains("model differs"),
        "{err}"
    );
}

#[test]
fn resume_auto_starts_fresh_and_last_without_checkpoint_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    assert!(train_epochs(&run, "1", &["--resume", "auto"]).success());
    let empty = tmp.path().join("empty");
    let out = Command::new(KILN)
        .args([
            "train", "--model", "lenet", "--epochs", "1", "--quiet", "--resume", "last", "--out",
        ])
        .arg(&empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("K0701"));
}

#[test]
fn async_checkpoints_hold_exactly_the_snapshot_values() {
    // Asynchronous snapshots copy nothing (copy-on-write parameters, deferred conversion):
    // every checkpoint must still equal the synchronous run's at the same step.
    let tmp = tempfile::tempdir().unwrap();
    let sync = tmp.path().join("sync");
    let asyn = tmp.path().join("async");
    assert!(train(&sync, &["--keep-last", "0"]).success());
    assert!(train(&asyn, &["--keep-last", "0", "--async-checkpoint"]).success());
    let mut n = 0;
    for e in std::fs::read_dir(sync.join("checkpoints"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("ckpt-") {
            continue;
        }
        let a = load(e.path(), &LoadOptions::new()).unwrap();
        let b = load(asyn.join("checkpoints").join(&name), &LoadOptions::new()).unwrap();
        for key in [
            "model_state_dict",
            "optimizer_state_dict",
            "scheduler_state_dict",
        ] {
            assert!(a.get(key) == b.get(key), "{name}: {key} differs");
        }
        n += 1;
    }
    assert!(n >= 9, "compared {n} checkpoints");
    let mut crash = vec!["--async-checkpoint", "--crash-after-steps", "57"];
    let run = tmp.path().join("crash");
    assert!(!train(&run, &crash).success());
    crash.truncate(1);
    crash.extend_from_slice(&["--resume", "last"]);
    assert!(train(&run, &crash).success());
    assert_eq!(
        std::fs::read(sync.join("model.safetensors")).unwrap(),
        std::fs::read(run.join("model.safetensors")).unwrap()
    );
}

#[test]
fn deferred_snapshot_survives_in_place_updates_only_with_copy_on_write() {
    use candle_core::{Device, Tensor};
    let p = kiln::Param::new(&Tensor::new(&[1f32, 2.], &Device::Cpu).unwrap(), true).unwrap();
    let snap =
        |p: &kiln::Param| kiln::io::value::deferred(|| Value::from_tensor(&p.detached()).unwrap());
    // Without marking: the in-place update reaches the not-yet-written snapshot.
    let unmarked = snap(&p);
    p.set(&Tensor::new(&[5f32, 6.], &Device::Cpu).unwrap())
        .unwrap();
    let bytes = |v: &Value| v.as_tensor().unwrap().contiguous_bytes().unwrap().to_vec();
    assert_eq!(
        bytes(&unmarked),
        [5f32, 6.]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<_>>()
    );
    // Marked copy-on-write: the snapshot keeps the value it was taken with.
    p.mark_shared();
    let marked = snap(&p);
    p.set(&Tensor::new(&[7f32, 8.], &Device::Cpu).unwrap())
        .unwrap();
    assert_eq!(
        bytes(&marked),
        [5f32, 6.]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<_>>()
    );
    assert_eq!(p.detached().to_vec1::<f32>().unwrap(), vec![7., 8.]);
    assert!(p.requires_grad());
}

/// Regression: the fused SGD step updates parameters in place without going through
/// `Param::set`; it must still honour `mark_shared`, or an asynchronous checkpoint's
/// deferred snapshot would be written with the next step's values.
#[test]
fn fused_sgd_step_keeps_a_marked_snapshot() {
    use candle_core::{Device, Tensor};
    use kiln::optim::{Grads, Optimizer, Sgd, SgdConfig};
    let p = kiln::Param::new(&Tensor::new(&[1f32, 2.], &Device::Cpu).unwrap(), true).unwrap();
    let frozen = kiln::Param::new(&Tensor::new(&[3f32, 4.], &Device::Cpu).unwrap(), false).unwrap();
    let mut opt = Sgd::new(
        vec![("p".into(), p.clone()), ("frozen".into(), frozen.clone())],
        SgdConfig {
            lr: 0.5,
            momentum: 0.9,
            ..Default::default()
        },
    )
    .unwrap();
    let step = |opt: &mut Sgd| {
        let loss = (p.tensor() * 2.0)
            .unwrap()
            .add(&(frozen.tensor() * 2.0).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = Grads::backward(&loss, &[p.clone(), frozen.clone()]).unwrap();
        opt.step(&grads).unwrap();
    };
    let bytes = |v: &Value| v.as_tensor().unwrap().contiguous_bytes().unwrap().to_vec();
    let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>();
    step(&mut opt); // p = [1, 2] - 0.5 * 2 = [0, 1]
    p.mark_shared();
    let marked = kiln::io::value::deferred(|| Value::from_tensor(&p.detached()).unwrap());
    step(&mut opt); // buffer 0.9 * 2 + 2 = 3.8: p = [0, 1] - 1.9 = [-1.9, -0.9]
    assert_eq!(bytes(&marked), le(&[0., 1.]));
    assert_eq!(p.detached().to_vec1::<f32>().unwrap(), vec![-1.9, -0.9]);
    // After the copy, steps are in place again and still correct.
    let unmarked = kiln::io::value::deferred(|| Value::from_tensor(&p.detached()).unwrap());
    step(&mut opt); // buffer 0.9 * 3.8 + 2 = 5.42: p = [-1.9, -0.9] - 2.71
    assert_eq!(
        bytes(&unmarked),
        bytes(&Value::from_tensor(&p.detached()).unwrap())
    );
    assert!(p.requires_grad());
    assert_eq!(frozen.detached().to_vec1::<f32>().unwrap(), vec![3., 4.]);
}

#[test]
fn resuming_from_an_unindexed_file_in_checkpoints_keeps_it() {
    // `--resume PATH` of a `ckpt-*` file the index does not list (copied in by hand, or left
    // by a kill): opening the directory removes orphans, but never the file resumed from,
    // and the resumed run equals the one resumed from `last` at the same step.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    assert!(train_epochs(&run, "1", &["--crash-after-steps", "30"]).code() != Some(0));
    let ckdir = run.join("checkpoints");
    let last = std::fs::read_to_string(ckdir.join("last")).unwrap();
    let by_hand = ckdir.join("ckpt-by-hand.pt");
    std::fs::copy(ckdir.join(last.trim()), &by_hand).unwrap();
    let reference = tmp.path().join("reference");
    copy_dir(&run, &reference);

    let path = by_hand.to_string_lossy().into_owned();
    assert!(train(&run, &["--resume", &path]).success());
    assert!(by_hand.exists(), "the checkpoint resumed from was deleted");
    assert!(train(&reference, &["--resume", "last"]).success());
    assert_same_run(&reference, &run, "resume from an unindexed copy of last");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}
