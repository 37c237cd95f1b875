//! Must-show: the same seed gives a bit-identical `model.safetensors`, another seed different
//! weights; and a run interrupted mid-epoch and resumed from its state ends bit-identical to an
//! uninterrupted one (the trainer's state, loader order and RNG are enough to continue).

use kiln::train::{Hook, StepReport, TrainConfig, Trainer, build_trainer, run};
use std::path::Path;

fn config(model: &str, seed: u64, out: &Path) -> TrainConfig {
    let mut cfg = TrainConfig::for_model(model);
    cfg.epochs = 2;
    cfg.seed = seed;
    cfg.out = out.to_path_buf();
    cfg
}

fn model_bytes(model: &str, seed: u64, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("{model}-{seed}-{}", rand_suffix()));
    let summary = run(&config(model, seed, &out), true).unwrap();
    // curves.png is the `kiln` command's (tests/cli_train.rs); the library writes these.
    assert!(out.join("metrics.jsonl").exists() && out.join("model.safetensors").exists());
    assert_eq!(summary.epochs.len(), 2);
    std::fs::read(summary.model_path).unwrap()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn same_seed_same_bytes_other_seed_other_weights() {
    let dir = tempfile::tempdir().unwrap();
    for model in ["mlp", "lenet"] {
        let a = model_bytes(model, 7, dir.path());
        let b = model_bytes(model, 7, dir.path());
        let c = model_bytes(model, 8, dir.path());
        assert!(a == b, "{model}: same seed gave different files");
        assert!(a != c, "{model}: another seed gave the same file");
        assert_eq!(a.len(), c.len(), "{model}: same layout for both seeds");
    }
}

#[test]
fn metrics_lines_have_the_required_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    run(&config("mlp", 1, &out), true).unwrap();
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (i, l) in lines.iter().enumerate() {
        for k in [
            "epoch",
            "train_loss",
            "test_loss",
            "test_acc",
            "lr",
            "seconds",
        ] {
            assert!(l.get(k).is_some(), "line {i} lacks {k}: {l}");
        }
        assert_eq!(l["epoch"], i + 1);
    }
    // A second run into the same folder starts the log afresh.
    run(&config("mlp", 1, &out), true).unwrap();
    let again = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(again.lines().count(), 2);
}

/// Stops training (with an error) once `global_step` reaches `at`.
struct StopAt(u64);

impl Hook for StopAt {
    fn on_step(&mut self, t: &Trainer, _s: &StepReport) -> kiln::Result<()> {
        if t.state.global_step >= self.0 {
            return Err(kiln::Error::Unsupported {
                what: "stop requested by the test".into(),
            });
        }
        Ok(())
    }
}

fn final_state(t: &Trainer) -> Vec<(String, Vec<f32>)> {
    t.model
        .state_dict()
        .iter()
        .filter(|(_, v)| v.dtype() == candle_core::DType::F32)
        .map(|(k, v)| (k.to_string(), v.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

#[test]
fn resuming_mid_epoch_from_the_trainer_state_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("mlp", 3, dir.path()); // MLP: dropout draws from the RNG every step
    let mut full = build_trainer(&cfg).unwrap();
    let whole = full.fit().unwrap();

    // Interrupt after 100 steps (epoch 1 has 90 batches of 16, so mid-epoch 2).
    let mut first = build_trainer(&cfg).unwrap();
    assert!(first.fit_with(&mut [&mut StopAt(100)]).is_err());
    assert_eq!((first.state.epoch, first.state.step_in_epoch), (1, 10));
    let model = first.model.state_dict();
    let opt = first.optimizer.state_dict().unwrap();
    let sched = first.scheduler.as_ref().map(|s| s.state_dict());
    let state = first.state.clone();
    drop(first);

    // A fresh process would rebuild the trainer and load the four pieces.
    let mut resumed = build_trainer(&cfg).unwrap();
    resumed.model.load_state_dict(&model, true).unwrap();
    resumed.optimizer.load_state_dict(&opt).unwrap();
    if let (Some(s), Some(v)) = (resumed.scheduler.as_mut(), sched.as_ref()) {
        s.load_state_dict(v).unwrap();
    }
    resumed.state = state;
    let rest = resumed.fit().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(final_state(&resumed), final_state(&full));
    let (a, b) = (&rest[0], &whole[1]);
    assert_eq!(
        (a.train_loss, a.test_loss, a.test_acc, a.lr),
        (b.train_loss, b.test_loss, b.test_acc, b.lr)
    );
}
