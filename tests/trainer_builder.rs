//! `Trainer::builder` for a user model: regression with f32 targets and a metric, bit-exact
//! resume after an interruption, and resume refusals that name what was really built.

use kiln::candle::{DType, Tensor};
use kiln::checkpoint::{Policy, Resume};
use kiln::data::sources::{MemoryDataset, Targets, Values};
use kiln::nn::{Dropout, Linear, Module};
use kiln::optim::{AdamConfig, SgdConfig};
use kiln::train::{Hook, OptimizerChoice, StepReport, Trainer};

#[derive(Module)]
struct Mlp {
    fc1: Linear,
    drop: Dropout,
    fc2: Linear,
}

impl Mlp {
    fn new() -> Self {
        kiln::rng::manual_seed(3);
        Mlp {
            fc1: Linear::new(64, 32, true).unwrap(),
            drop: Dropout::new(0.2).unwrap(),
            fc2: Linear::new(32, 10, true).unwrap(),
        }
    }
    fn forward(&self, x: &Tensor) -> kiln::Result<Tensor> {
        let x = x.flatten_from(1)?;
        self.fc2
            .forward(&self.drop.forward(&self.fc1.forward(&x)?.relu()?)?)
    }
}

struct StopAt(u64);

impl Hook for StopAt {
    fn on_step(&mut self, t: &Trainer, _s: &StepReport) -> kiln::Result<()> {
        if t.state.global_step >= self.0 {
            return Err(kiln::Error::Unsupported {
                what: "stop".into(),
            });
        }
        Ok(())
    }
}

fn trainer(dir: &std::path::Path, lr: f64, adam: bool, resume: bool) -> kiln::Result<Trainer> {
    let (train, test) = kiln::data::digits::train_test()?;
    let opt = if adam {
        OptimizerChoice::Adam(AdamConfig {
            lr,
            ..Default::default()
        })
    } else {
        OptimizerChoice::Sgd(SgdConfig {
            lr,
            momentum: 0.9,
            ..Default::default()
        })
    };
    let mut b = Trainer::builder(Mlp::new(), train)
        .eval_set(test)
        .optimizer(opt)
        .batch_size(50)
        .epochs(3)
        .seed(11)
        .checkpoint_dir(dir)
        .checkpoint_policy(Policy {
            every_n_steps: Some(7),
            ..Default::default()
        });
    if resume {
        b = b.resume(Resume::Last);
    }
    b.build()
}

fn weights(m: &dyn Module) -> Vec<Vec<f32>> {
    m.state_dict()
        .iter()
        .map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

#[test]
fn interrupted_user_model_resumes_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut full = trainer(&dir.path().join("a"), 0.05, false, false).unwrap();
    let m_full = full.fit().unwrap();
    assert_eq!(m_full.len(), 3);
    assert!(m_full[2].test_acc > 0.8, "{:?}", m_full[2]);

    let b = dir.path().join("b");
    let mut first = trainer(&b, 0.05, false, false).unwrap();
    first.hooks.push(Box::new(StopAt(40)));
    assert!(first.fit().is_err());
    let mut resumed = trainer(&b, 0.05, false, true).unwrap();
    assert_eq!(
        resumed.state.global_step, 35,
        "resumes at the last step checkpoint"
    );
    let m_rest = resumed.fit().unwrap();
    assert_eq!(
        weights(full.model.as_ref()),
        weights(resumed.model.as_ref())
    );
    assert_eq!(
        m_rest.last().unwrap().train_loss.to_bits(),
        m_full.last().unwrap().train_loss.to_bits()
    );
}

#[test]
fn resume_check_names_what_was_built_in_library_words() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("c");
    let mut t = trainer(&d, 0.05, false, false).unwrap();
    t.hooks.push(Box::new(StopAt(10)));
    assert!(t.fit().is_err());
    let e = trainer(&d, 0.1, false, true).err().unwrap();
    assert_eq!(e.code(), "K0702");
    let m = e.to_string();
    assert!(m.contains("learning rate of optimizer group 0"), "{m}");
    let e = trainer(&d, 0.05, true, true).err().unwrap();
    assert_eq!(e.code(), "K0702");
    let m = e.to_string();
    assert!(
        m.contains("SGD") && m.contains("Adam") && !m.contains("--"),
        "{m}"
    );
}

#[test]
fn regression_with_f32_targets_and_a_metric() {
    let n = 128;
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for i in 0..n {
        let a = i as f32 / n as f32 - 0.5;
        let b = ((i * 7) % n) as f32 / n as f32 - 0.5;
        xs.extend([a, b]);
        ys.push(2.0 * a - b + 0.5);
    }
    let data = MemoryDataset::new(
        "line",
        Values::F32(xs),
        &[2],
        Targets::Values {
            data: ys,
            shape: vec![1],
        },
    )
    .unwrap();
    kiln::rng::manual_seed(0);
    let mut t = Trainer::builder(Linear::new(2, 1, true).unwrap(), data.clone())
        .eval_set(data)
        .loss(kiln::nn::loss::mse_loss)
        .metric("mae", |o, y| {
            Ok((o - y)?
                .abs()?
                .mean_all()?
                .to_dtype(DType::F32)?
                .to_scalar::<f32>()? as f64)
        })
        .optimizer(OptimizerChoice::Sgd(SgdConfig {
            lr: 0.2,
            ..Default::default()
        }))
        .batch_size(16)
        .epochs(15)
        .build()
        .unwrap();
    assert!(!t.accuracy, "f32 targets: no accuracy");
    let m = t.fit().unwrap();
    let last = m.last().unwrap();
    assert!(last.test_loss < 1e-3, "{last:?}");
    assert!(last.metrics["mae"] < 0.03, "{last:?}");
    assert!(last.test_acc.is_nan() && last.train_loss < m[0].train_loss);
}
