//! Fine-tuning through the training loop: frozen parameters stay bit-identical and get no
//! gradient, a group with `lr = 0` gives exactly the result of freezing, and unfreezing
//! mid-run adds a group with which training continues.

use kiln::StateDict;
use kiln::finetune::{FinetuneConfig, GroupRule, UnfreezeRule};
use kiln::optim::Grads;
use kiln::train::{EpochMetrics, Hook, OptimizerKind, TrainConfig, Trainer, build_trainer};

const BACKBONE: [&str; 4] = ["conv1", "conv2", "fc1", "fc2"];

fn config(optimizer: OptimizerKind, ft: FinetuneConfig) -> TrainConfig {
    let mut c = TrainConfig::for_model("lenet");
    c.optimizer = optimizer;
    c.lr = optimizer.default_lr();
    c.weight_decay = optimizer.default_weight_decay();
    c.epochs = 3;
    c.classes = Some(vec![5, 6, 7, 8, 9]);
    c.per_class = Some(20);
    c.finetune = Some(ft);
    c
}

fn bits(sd: &StateDict) -> Bits {
    sd.iter()
        .map(|(k, t)| {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            (k.to_string(), v.into_iter().map(f32::to_bits).collect())
        })
        .collect()
}

fn is_backbone(key: &str) -> bool {
    BACKBONE.iter().any(|b| key.starts_with(&format!("{b}.")))
}

type Bits = Vec<(String, Vec<u32>)>;

/// Trains `cfg`; returns the bits of the state dict before and after (copied out: the state
/// dict's tensors are the live parameters, updated in place).
fn train(cfg: &TrainConfig) -> (Bits, Bits, Trainer) {
    let mut t = build_trainer(cfg).unwrap();
    let before = bits(&t.model.state_dict());
    t.fit().unwrap();
    let after = bits(&t.model.state_dict());
    (before, after, t)
}

#[test]
fn frozen_backbone_is_bit_identical_after_training_and_gets_no_gradient() {
    for opt in [OptimizerKind::Sgd, OptimizerKind::AdamW] {
        let ft = FinetuneConfig {
            freeze: BACKBONE.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let (b, a, t) = train(&config(opt, ft));
        for ((k, x), (_, y)) in b.iter().zip(&a) {
            assert_eq!(x == y, is_backbone(k), "{opt:?} {k}");
        }
        // One more backward: the frozen parameters get no gradient.
        let batch = t.train_loader.batch(0, 0).unwrap();
        let loss =
            kiln::nn::loss::cross_entropy(&t.model.forward(&batch.inputs).unwrap(), &batch.targets)
                .unwrap();
        let named = t.model.named_parameters();
        let ps: Vec<_> = named.iter().map(|(_, p)| p.clone()).collect();
        let g = Grads::backward(&loss, &ps).unwrap();
        for (n, p) in &named {
            assert_eq!(g.get(p).is_none(), is_backbone(n), "{n}");
        }
    }
}

#[test]
fn lr_zero_group_equals_freezing_bit_for_bit() {
    for opt in [
        OptimizerKind::Sgd,
        OptimizerKind::Adam,
        OptimizerKind::AdamW,
    ] {
        let frozen = FinetuneConfig {
            freeze: BACKBONE.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let zero = FinetuneConfig {
            groups: BACKBONE
                .iter()
                .map(|b| GroupRule {
                    pattern: b.to_string(),
                    lr: 0.0,
                })
                .collect(),
            ..Default::default()
        };
        let (before, a, _) = train(&config(opt, frozen));
        let (_, b, t) = train(&config(opt, zero));
        // Backbone in 4 groups with lr 0, the head in the default group.
        assert_eq!(t.optimizer.param_groups().len(), 5);
        assert_eq!(a, b, "{opt:?}: lr=0 differs from freezing");
        let (x, y) = (before, b);
        for ((k, p), (_, q)) in x.iter().zip(&y) {
            assert_eq!(p == q, is_backbone(k), "{opt:?} {k}");
        }
    }
}

/// Records the backbone's bits at every epoch end.
struct Snapshots(Vec<Bits>, Vec<usize>);

impl Hook for Snapshots {
    fn on_epoch_end(&mut self, t: &Trainer, _m: &EpochMetrics) -> kiln::Result<()> {
        let sd = t.model.state_dict().filter(is_backbone);
        self.0.push(bits(&sd));
        self.1.push(t.optimizer.param_groups().len());
        Ok(())
    }
}

#[test]
fn unfreezing_mid_run_adds_a_group_and_training_continues() {
    let ft = FinetuneConfig {
        freeze: BACKBONE.iter().map(|s| s.to_string()).collect(),
        unfreeze: vec![
            UnfreezeRule::parse("2:fc2=0.01").unwrap(),
            UnfreezeRule::parse("3").unwrap(),
        ],
        ..Default::default()
    };
    let mut cfg = config(OptimizerKind::Sgd, ft);
    cfg.epochs = 5;
    let mut t = build_trainer(&cfg).unwrap();
    let initial = bits(&t.model.state_dict().filter(is_backbone));
    let mut snaps = Snapshots(Vec::new(), Vec::new());
    let metrics = t.fit_with(&mut [&mut snaps]).unwrap();
    // Groups: head; + fc2 at epoch 2 (0-based); + the rest at epoch 3.
    assert_eq!(snaps.1, [1, 1, 2, 3, 3]);
    assert_eq!(snaps.0[1], initial, "backbone moved before its epoch");
    let changed = |s: &[(String, Vec<u32>)]| -> Vec<String> {
        s.iter()
            .zip(&initial)
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0.clone())
            .collect()
    };
    assert_eq!(changed(&snaps.0[2]), ["fc2.weight", "fc2.bias"]);
    assert_eq!(changed(&snaps.0[4]).len(), 8);
    let g = t.optimizer.param_groups();
    assert_eq!(g[1].names, ["fc2.weight", "fc2.bias"]);
    assert_eq!(g[2].names.len(), 6);
    // The cosine schedule scales the added groups like the head's.
    let ratio = g[0].lr / cfg.lr;
    assert!(
        (g[1].lr / 0.01 - ratio * cosine(5, 2)).abs() < 1e-9,
        "{}",
        g[1].lr
    );
    assert!((g[2].lr / (0.1 * cfg.lr) - ratio * cosine(5, 3)).abs() < 1e-9);
    assert!(
        metrics[4].train_loss < metrics[1].train_loss,
        "{:?}",
        metrics.iter().map(|m| m.train_loss).collect::<Vec<_>>()
    );
    assert!(t.model.trainable_parameters().len() == 10);
}

/// 1 / (cosine factor at epoch `at`): a group added at epoch `at` starts at its own lr.
fn cosine(t_max: usize, at: usize) -> f64 {
    let f = |e: usize| (1.0 + (std::f64::consts::PI * e as f64 / t_max as f64).cos()) / 2.0;
    1.0 / f(at)
}
