//! A loss that becomes NaN or infinite stops training with K0703 naming the step, the batch
//! and the learning rate, before that step is applied; `NonFinitePolicy::Continue` (CLI:
//! `--on-nan continue`) goes on as a plain PyTorch loop would; through the CLI,
//! `metrics.jsonl` stays readable.

use kiln::candle::Tensor;
use kiln::nn::{Linear, Module};
use kiln::optim::SgdConfig;
use kiln::train::{NonFinitePolicy, OptimizerChoice, Trainer};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Module)]
struct Net {
    fc: Linear,
}

impl Net {
    fn forward(&self, x: &Tensor) -> kiln::Result<Tensor> {
        self.fc.forward(&x.flatten_from(1)?)
    }
}

/// A trainer whose loss is cross-entropy, except NaN on its `nan_at`-th call (0-based).
fn trainer(nan_at: usize, policy: NonFinitePolicy) -> (Trainer, Arc<AtomicUsize>) {
    kiln::rng::manual_seed(1);
    let (train, _) = kiln::data::digits::train_test().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let t = Trainer::builder(
        Net {
            fc: Linear::new(64, 10, true).unwrap(),
        },
        train,
    )
    .optimizer(OptimizerChoice::Sgd(SgdConfig {
        lr: 0.05,
        ..Default::default()
    }))
    .batch_size(64)
    .epochs(1)
    .seed(3)
    .loss(move |out: &Tensor, y: &Tensor| {
        let l = kiln::nn::loss::cross_entropy(out, y)?;
        if c.fetch_add(1, Ordering::SeqCst) == nan_at {
            return Ok((l * f64::NAN)?);
        }
        Ok(l)
    })
    .on_nonfinite_loss(policy)
    .build()
    .unwrap();
    (t, calls)
}

fn weights(m: &dyn Module) -> Vec<f32> {
    m.state_dict()
        .iter()
        .flat_map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

#[test]
fn nan_loss_stops_before_the_step_with_k0703() {
    let (mut t, _) = trainer(4, NonFinitePolicy::Stop);
    let mut before: Vec<f32>;
    let err = loop {
        let b = t.train_loader.batch(0, t.state.step_in_epoch).unwrap();
        before = weights(t.model.as_ref());
        match t.train_step(&b) {
            Ok(_) => {
                t.state.step_in_epoch += 1;
                t.state.global_step += 1;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), "K0703");
    let msg = err.to_string();
    assert!(msg.contains("loss is NaN at step 4"), "{msg}");
    assert!(msg.contains("learning rate 0.05"), "{msg}");
    assert_eq!(
        weights(t.model.as_ref()),
        before,
        "the NaN step was not applied"
    );
    assert!(err.hint().contains("learning rate"), "{}", err.hint());

    // Through fit(): the same error, with the step it happened at.
    let (mut t, _) = trainer(2, NonFinitePolicy::Stop);
    let e = t.fit().unwrap_err();
    assert_eq!(e.code(), "K0703");
    assert!(e.to_string().contains("at step 2"), "{e}");
}

#[test]
fn nan_loss_continues_when_asked() {
    let (mut t, calls) = trainer(2, NonFinitePolicy::Continue);
    t.fit().unwrap();
    assert!(
        calls.load(Ordering::SeqCst) > 3,
        "training went on after the NaN step"
    );
}

#[test]
fn diverging_cli_run_stops_with_k0703_and_readable_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "train",
            "--model",
            "mlp",
            "--epochs",
            "3",
            "--lr",
            "1e12",
            "--momentum",
            "0",
        ])
        .args(["--scheduler", "none", "-q", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{err}");
    assert!(err.contains("error[K0703]"), "{err}");
    assert!(err.contains("learning rate 1000000000000"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    if let Ok(text) = std::fs::read_to_string(out.join("metrics.jsonl")) {
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }
}
