//! Disk faults while checkpointing (issue 17, deliverable 5): ENOSPC or EIO while writing a
//! checkpoint, with the synchronous and the asynchronous (background-thread) writer, stops
//! `kiln train` with a coded error (K0002 naming the checkpoint and the operating system's
//! message, never lost in the writer thread) and leaves `last` naming the previous
//! checkpoint, which loads; no temporary file stays behind. The faults are the real
//! `io::Error`s (`ENOSPC` = `ErrorKind::StorageFull`, `EIO`) raised inside kiln's atomic
//! writer by the test-only hook `KILN_FAULT_INJECT` (`kiln::io::fault`).

use candle_core::Device;
use kiln::checkpoint::{Checkpoint, last_checkpoint};
use kiln::io::LoadOptions;
use std::path::Path;
use std::process::Command;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// Trains LeNet for `epochs`, checkpointing every 2 steps (and at epoch ends), with the
/// fault `spec`; returns (exit code, stderr).
fn faulty_run(out: &Path, spec: &str, asynchronous: bool, epochs: &str) -> (Option<i32>, String) {
    let mut c = Command::new(KILN);
    c.args([
        "train",
        "--model",
        "lenet",
        "--epochs",
        epochs,
        "--threads",
        "1",
    ])
    .args([
        "--checkpoint-every-steps",
        "2",
        "--keep-last",
        "2",
        "--quiet",
    ])
    .env(kiln::io::fault::FAULT_ENV, spec)
    .arg("--out")
    .arg(out);
    if asynchronous {
        c.arg("--async-checkpoint");
    }
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The fault hit the 4th checkpoint write (steps 2, 4, 6 written; step 8 failed).
fn check(out: &Path, rc: Option<i32>, err: &str, os_message: &str) {
    eprintln!("{}", err.lines().next().unwrap_or(""));
    assert_eq!(rc, Some(1), "{err}");
    assert!(err.contains("error[K0002]"), "{err}");
    assert!(err.contains(os_message), "{err}");
    assert!(err.contains("ckpt-e0000-s00000008.pt"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let ck = out.join("checkpoints");
    let last = last_checkpoint(&ck).unwrap().expect("'last' survives");
    assert!(
        last.ends_with("ckpt-e0000-s00000006.pt"),
        "{}",
        last.display()
    );
    let loaded = Checkpoint::load(&last, &LoadOptions::new(), &Device::Cpu).unwrap();
    assert_eq!(loaded.progress.global_step, 6);
    let names: Vec<String> = std::fs::read_dir(&ck)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("kiln-tmp")), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("s00000008")), "{names:?}");
    assert!(!out.join("model.safetensors").exists(), "the run stopped");
}

#[test]
fn enospc_in_the_synchronous_writer_stops_the_run_and_keeps_last() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sync");
    let (rc, err) = faulty_run(&out, "ckpt-write:enospc:after=3", false, "2");
    check(&out, rc, &err, "No space left on device");
}

#[test]
fn eio_in_the_synchronous_writer_stops_the_run_and_keeps_last() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sync-eio");
    let (rc, err) = faulty_run(&out, "ckpt-write:eio:after=3", false, "2");
    check(&out, rc, &err, "Input/output error");
}

#[test]
fn enospc_in_the_background_writer_is_reported_and_keeps_last() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("async");
    let (rc, err) = faulty_run(&out, "ckpt-write:enospc:after=3", true, "2");
    check(&out, rc, &err, "No space left on device");
}

#[test]
fn eio_in_the_background_writer_is_reported_and_keeps_last() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("async-eio");
    let (rc, err) = faulty_run(&out, "ckpt-write:eio:after=3", true, "2");
    check(&out, rc, &err, "Input/output error");
}

/// The background writer's failure on the run's very last checkpoint (nothing saves after
/// it to collect the error) still fails the run.
#[test]
fn failure_of_the_last_background_write_is_not_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("async-last");
    let o = Command::new(KILN)
        .args(["train", "--model", "mlp", "--epochs", "1", "--threads", "1"])
        .args(["--async-checkpoint", "--quiet", "--out"])
        .arg(&out)
        .env(kiln::io::fault::FAULT_ENV, "ckpt-write:enospc")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("{}", err.lines().next().unwrap_or(""));
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error[K0002]") && err.contains("No space left on device"),
        "{err}"
    );
    assert!(err.contains("ckpt-e0001-s"), "{err}");
}

#[test]
fn malformed_fault_spec_is_a_usage_error_not_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let (rc, err) = faulty_run(&tmp.path().join("bad"), "ckpt-write:full", false, "1");
    assert_eq!(rc, Some(2), "{err}");
    assert!(
        err.contains("error[K0003]") && err.contains("KILN_FAULT_INJECT"),
        "{err}"
    );
}
