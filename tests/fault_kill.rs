//! Fault test: SIGKILL at random moments while `kiln train` checkpoints every step, 50 times.
//! After every kill, `last` names a checkpoint that loads completely and no checkpoint file
//! is partial (a killed write leaves only a hidden temporary file, which the next run
//! removes); `--resume` then carries on. Finally a write error (injected by putting a
//! directory where the next checkpoint file must go) is a clear K0002 and leaves the previous
//! checkpoint and `last` usable; on a real full disk (a 1 MiB tmpfs, when this process may
//! mount one) the same holds.

use candle_core::Device;
use kiln::checkpoint::{Checkpoint, CheckpointManager, Policy, last_checkpoint};
use kiln::io::LoadOptions;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");
const KILLS: usize = 50;

fn check_dir(dir: &Path) -> (usize, usize) {
    let ck = dir.join("checkpoints");
    if let Some(last) = last_checkpoint(&ck).expect("'last' names an existing checkpoint") {
        Checkpoint::load(&last, &LoadOptions::new(), &Device::Cpu)
            .expect("'last' loads completely");
    }
    let (mut complete, mut temporaries) = (0, 0);
    for e in std::fs::read_dir(&ck).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("ckpt-") {
            Checkpoint::load(&e.path(), &LoadOptions::new(), &Device::Cpu)
                .unwrap_or_else(|err| panic!("partial checkpoint {name}: {err}"));
            complete += 1;
        } else if name.contains(".kiln-tmp") {
            temporaries += 1;
        }
    }
    (complete, temporaries)
}

#[test]
fn sigkill_during_checkpoint_writes_never_leaves_a_partial_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut g = kiln::rng::Generator::new(2026);
    let mut mid_write = 0;
    for i in 0..KILLS {
        let mut child = Command::new(KILN)
            .args([
                "train",
                "--model",
                "lenet",
                "--epochs",
                "60",
                "--batch-size",
                "64",
                "--quiet",
                "--checkpoint-every-steps",
                "1",
                "--keep-last",
                "2",
                "--resume",
                "auto",
                "--out",
            ])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(40 + g.below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (complete, temporaries) = check_dir(&out);
        if temporaries > 0 {
            mid_write += 1;
        }
        assert!(complete > 0 || i < 3, "kill {i}: no checkpoint written yet");
    }
    eprintln!("{KILLS} kills, {mid_write} of them in the middle of a checkpoint write");
    assert!(
        mid_write >= 5,
        "only {mid_write} kills hit a write; the test did not test much"
    );
    let st = Command::new(KILN)
        .args([
            "train",
            "--model",
            "lenet",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--quiet",
            "--resume",
            "last",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    // The run is past epoch 1 already or finishes it: either way resume succeeds.
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

fn a_checkpoint(step: usize) -> Checkpoint {
    let m = kiln::models::LeNet::new(kiln::models::LeNetConfig::default()).unwrap();
    use kiln::nn::Module;
    let mut ck = Checkpoint::new(m.state_dict(), kiln::io::Value::dict::<&str>([]));
    ck.progress.global_step = step;
    ck
}

#[test]
fn injected_write_error_is_k0002_and_keeps_the_previous_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ck");
    let mut m = CheckpointManager::new(&dir, Policy::default()).unwrap();
    m.save(&a_checkpoint(1), None).unwrap();
    let before = last_checkpoint(&dir).unwrap().unwrap();
    // The next checkpoint's file name is taken by a non-empty directory: the rename fails.
    let blocker = dir.join("ckpt-e0000-s00000002.pt");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    let e = m.save(&a_checkpoint(2), None).unwrap_err();
    assert_eq!(e.code(), "K0002", "{e}");
    assert!(e.to_string().contains("ckpt-e0000-s00000002.pt"), "{e}");
    assert_eq!(last_checkpoint(&dir).unwrap().unwrap(), before);
    Checkpoint::load(&before, &LoadOptions::new(), &Device::Cpu).unwrap();
}

#[test]
fn full_disk_is_k0002_and_keeps_the_previous_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("tiny");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "skipped the real full-disk case: cannot mount a tmpfs here (the injected error test covers the logic)"
        );
        return;
    }
    let result = std::panic::catch_unwind(|| {
        let dir = mnt.join("ck");
        let policy = Policy {
            keep_last: 0,
            keep_best: 0,
            ..Default::default()
        };
        let mut m = CheckpointManager::new(&dir, policy).unwrap();
        // LeNet checkpoints are ~250 KB: the fourth or fifth no longer fits in 1 MiB.
        let mut last_ok = None;
        let mut err = None;
        for step in 1..20 {
            match m.save(&a_checkpoint(step), None) {
                Ok(_) => last_ok = Some(step),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let e = err.expect("the disk fills up");
        assert_eq!(e.code(), "K0002", "{e}");
        assert!(e.to_string().to_lowercase().contains("space"), "{e}");
        let last = last_checkpoint(&dir).unwrap().unwrap();
        assert!(
            last.to_string_lossy()
                .contains(&format!("s{:08}", last_ok.unwrap()))
        );
        Checkpoint::load(&last, &LoadOptions::new(), &Device::Cpu).unwrap();
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("kiln-tmp"))
            .count();
        assert_eq!(leftovers, 0, "the failed write's temporary file is removed");
    });
    let _ = Command::new("umount").arg(&mnt).status();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}
