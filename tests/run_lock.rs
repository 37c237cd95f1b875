//! One live run per output directory (issue 17, finding 5): a second `kiln train` on an
//! `--out` a live run holds is refused with K0730 naming the holder's pid and the lock file;
//! the lock of a SIGKILLed run is taken over silently; the library's `Trainer::builder` with
//! a checkpoint directory holds the same lock from `build()` until `fit` returns.

use kiln::candle::Tensor;
use kiln::checkpoint::Policy;
use kiln::nn::{Linear, Module};
use kiln::train::Trainer;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");
const LOCK: &str = ".kiln-run.lock";

/// A long `kiln train` into `out` (killed by the test).
fn long_run(out: &Path) -> Child {
    Command::new(KILN)
        .args([
            "train",
            "--model",
            "lenet",
            "--epochs",
            "500",
            "--threads",
            "1",
        ])
        .args(["--quiet", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `child` has taken the lock of `out` (the lock file holds its pid) and has
/// started training (`checkpoints/` exists); panics after 60 s or if it exited.
fn wait_until_training(child: &mut Child, out: &Path) {
    let pid = child.id().to_string();
    let start = Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first run exited before the test could use it"
        );
        let held = std::fs::read_to_string(out.join(LOCK)).is_ok_and(|t| t.trim() == pid);
        if held && out.join("checkpoints").exists() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn short_run(out: &Path) -> std::process::Output {
    Command::new(KILN)
        .args(["train", "--model", "mlp", "--epochs", "1", "--threads", "1"])
        .args(["--quiet", "--out"])
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn second_run_on_a_live_out_is_k0730_with_the_holders_pid() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cc");
    let mut first = long_run(&out);
    wait_until_training(&mut first, &out);
    let second = short_run(&out);
    let still_running = first.try_wait().unwrap().is_none();
    first.kill().unwrap();
    first.wait().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    eprintln!("second run: {}", err.lines().next().unwrap_or(""));
    assert!(
        still_running,
        "the first run ended before the second was refused"
    );
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains("error[K0730]"), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    assert!(err.contains(&out.join(LOCK).display().to_string()), "{err}");
    // The refused run touched nothing: the first run's checkpoints and metrics are its own.
    assert!(
        out.join("checkpoints").exists(),
        "the refused run cleared checkpoints/"
    );
    if let Ok(text) = std::fs::read_to_string(out.join("metrics.jsonl")) {
        let epochs: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert!(epochs.windows(2).all(|w| w[1] == w[0] + 1), "{epochs:?}");
    }
}

#[test]
fn lock_of_a_sigkilled_run_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("stale");
    let mut first = long_run(&out);
    wait_until_training(&mut first, &out);
    first.kill().unwrap(); // SIGKILL: no destructor runs, the lock file stays behind
    first.wait().unwrap();
    let stale = std::fs::read_to_string(out.join(LOCK)).unwrap();
    assert_eq!(
        stale.trim(),
        first.id().to_string(),
        "the killed run's pid is left"
    );
    let second = short_run(&out);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let now = std::fs::read_to_string(out.join(LOCK)).unwrap();
    assert_ne!(now.trim(), stale.trim(), "the new run wrote its own pid");
    assert!(out.join("model.safetensors").exists());
}

#[derive(Module)]
struct Net {
    fc: Linear,
}

impl Net {
    fn forward(&self, x: &Tensor) -> kiln::Result<Tensor> {
        self.fc.forward(&x.flatten_from(1)?)
    }
}

fn builder_trainer(dir: &Path) -> kiln::Result<Trainer> {
    let (train, _) = kiln::data::digits::train_test()?;
    Trainer::builder(
        Net {
            fc: Linear::new(64, 10, true)?,
        },
        train,
    )
    .batch_size(64)
    .epochs(1)
    .checkpoint_dir(dir)
    .checkpoint_policy(Policy::default())
    .build()
}

#[test]
fn library_trainer_holds_the_checkpoint_directory_until_fit_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ck");
    let mut first = builder_trainer(&dir).unwrap();
    let e = builder_trainer(&dir).err().unwrap();
    assert_eq!(e.code(), "K0730", "{e}");
    assert!(
        e.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{e}"
    );
    first.fit().unwrap();
    // The run is over: a new one may take the directory (and resume from it).
    let mut second = builder_trainer(&dir).unwrap();
    second.fit().unwrap();
    assert!(dir.join(LOCK).exists() && dir.join("last").exists());
}
