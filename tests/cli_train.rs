//! `kiln train` end to end through the binary: files written, coded errors and exit codes.

use std::process::Command;

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

#[test]
fn train_writes_the_three_files_and_reports_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = kiln()
        .args(["train", "--model", "mlp", "--epochs", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("epoch   2/2") && stdout.contains("test accuracy"),
        "{stdout}"
    );
    for f in ["metrics.jsonl", "model.safetensors", "curves.png"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let q = kiln()
        .args([
            "train", "--model", "mlp", "--epochs", "1", "--quiet", "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(q.status.success());
    assert!(q.stdout.is_empty() && q.stderr.is_empty());
}

#[test]
fn cuda_without_the_feature_is_k0303_and_bad_values_exit_2() {
    if cfg!(feature = "cuda") {
        return;
    }
    let o = kiln()
        .args([
            "train",
            "--model",
            "mlp",
            "--device",
            "cuda:0",
            "--out",
            "/nonexistent/x",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("error[K0303]"));
    let o = kiln()
        .args(["train", "--scheduler", "triangle"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("error[K0003]"));
    let o = kiln().args(["train", "--model", "vgg"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// `--threads` is bounded (4 per core, at most 1024): an absurd count is K0003 before any
/// thread is spawned, never an attempt to start 100 000 threads.
#[test]
fn absurd_thread_counts_are_refused() {
    for n in ["0", "100000"] {
        let out = kiln()
            .args([
                "train",
                "--model",
                "mlp",
                "--epochs",
                "1",
                "--threads",
                n,
                "-q",
                "-o",
            ])
            .arg(std::env::temp_dir().join("kiln-threads-never-written"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--threads {n}: {err}");
        assert!(
            err.contains("K0003") && err.contains("threads"),
            "--threads {n}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn every_new_optimizer_trains_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    for opt in ["rmsprop", "adagrad", "adamax", "nadam", "radam"] {
        let out = dir.path().join(opt);
        let o = kiln()
            .args([
                "train",
                "--model",
                "mlp",
                "--epochs",
                "1",
                "--quiet",
                "--optimizer",
                opt,
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{opt}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.join("model.safetensors").is_file(), "{opt}");
    }
}
