//! Must-show: with the defaults (`kiln train --model lenet --epochs 15`), LeNet reaches
//! ≥ 97 % test accuracy on digits and the MLP ≥ 95 %, for every seed 0..4.

use kiln::train::{TrainConfig, build_trainer};

fn final_accuracy(model: &str, seed: u64) -> f64 {
    let mut cfg = TrainConfig::for_model(model);
    cfg.seed = seed;
    assert_eq!(cfg.epochs, 15);
    let mut t = build_trainer(&cfg).unwrap();
    let m = t.fit().unwrap();
    m.last().unwrap().test_acc
}

fn check(model: &str, threshold: f64) {
    let accs: Vec<f64> = (0..5).map(|s| final_accuracy(model, s)).collect();
    println!("{model}: test accuracy per seed 0..4: {accs:?}");
    for (s, a) in accs.iter().enumerate() {
        assert!(*a >= threshold, "{model} seed {s}: {a} < {threshold}");
    }
}

#[test]
fn lenet_defaults_reach_97_percent_for_seeds_0_to_4() {
    check("lenet", 0.97);
}

#[test]
fn mlp_defaults_reach_95_percent_for_seeds_0_to_4() {
    check("mlp", 0.95);
}
