//! Unit tests of the schedulers (sequences against PyTorch live in tests/optim_parity.rs).

use super::*;
use crate::io::value::key_string;
use crate::nn::Param;
use crate::optim::{GroupSpec, Sgd, SgdConfig};
use candle_core::{Device, Tensor};

fn opt(lrs: &[f64]) -> Sgd {
    let groups = lrs
        .iter()
        .enumerate()
        .map(|(i, lr)| {
            let p = Param::new(&Tensor::new(&[1f32], &Device::Cpu).unwrap(), true).unwrap();
            GroupSpec::new(vec![(format!("p{i}"), p)]).lr(*lr)
        })
        .collect();
    Sgd::with_groups(groups, SgdConfig::default()).unwrap()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_dict()
        .unwrap()
        .entries
        .iter()
        .map(|(k, _)| key_string(k))
        .collect()
}

const COMMON: [&str; 6] = [
    "base_lrs",
    "last_epoch",
    "_step_count",
    "_is_initial",
    "_get_lr_called_within_step",
    "_last_lr",
];

fn with_common(own: &[&str]) -> Vec<String> {
    own.iter()
        .chain(COMMON.iter())
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn construction_sets_initial_lr_and_takes_the_initial_step() {
    let mut o = opt(&[0.1, 0.05]);
    let s = StepLr::new(&mut o, 3, 0.1).unwrap();
    assert_eq!(s.last_epoch(), 0);
    assert_eq!(s.get_last_lr(), &[0.1, 0.05]);
    let g = o.param_groups();
    assert_eq!((g[0].initial_lr, g[1].initial_lr), (Some(0.1), Some(0.05)));
    let sd = s.state_dict();
    assert_eq!(sd.get("_step_count"), Some(&Value::Int(1)));
    // a second scheduler keeps the existing initial_lr (PyTorch's setdefault)
    o.set_lr(0, 0.5);
    let s2 = ExponentialLr::new(&mut o, 0.9).unwrap();
    assert_eq!(o.param_groups()[0].initial_lr, Some(0.1));
    assert_eq!(
        s2.state_dict().get("base_lrs"),
        Some(&Value::List(vec![Value::Float(0.1), Value::Float(0.05)]))
    );
}

#[test]
fn step_lr_sequence() {
    let mut o = opt(&[1.0]);
    let mut s = StepLr::new(&mut o, 2, 0.5).unwrap();
    let mut seq = vec![s.get_last_lr()[0]];
    for _ in 0..5 {
        s.step(&mut o).unwrap();
        seq.push(s.get_last_lr()[0]);
    }
    assert_eq!(seq, vec![1.0, 1.0, 0.5, 0.5, 0.25, 0.25]);
    assert_eq!(o.param_groups()[0].lr, 0.25);
}

#[test]
fn multistep_counts_repeated_milestones_and_applies_epoch_zero() {
    let mut o = opt(&[1.0]);
    let mut s = MultiStepLr::new(&mut o, &[2, 0, 2], 0.5).unwrap();
    assert_eq!(s.milestones(), &[(2, 2), (0, 1)]);
    assert_eq!(s.get_last_lr(), &[0.5]);
    s.step(&mut o).unwrap();
    s.step(&mut o).unwrap();
    assert_eq!(s.get_last_lr(), &[0.125]);
    let sd = s.state_dict();
    assert_eq!(keys(&sd), with_common(&["milestones", "gamma"]));
    let m = sd.get("milestones").unwrap().as_dict().unwrap();
    assert_eq!(m.get_int(2), Some(&Value::Int(2)));
}

#[test]
fn cosine_reaches_eta_min_at_t_max_and_rises_after() {
    let mut o = opt(&[0.1]);
    let mut s = CosineAnnealingLr::new(&mut o, 4, 0.01).unwrap();
    let mut seq = vec![];
    for _ in 0..8 {
        s.step(&mut o).unwrap();
        seq.push(s.get_last_lr()[0]);
    }
    assert!((seq[3] - 0.01).abs() < 1e-12, "{seq:?}");
    assert!((seq[7] - 0.1).abs() < 1e-12, "{seq:?}");
    assert!(seq[4] > seq[3]);
    assert_eq!(keys(&s.state_dict()), with_common(&["T_max", "eta_min"]));
    // a group added after attaching has no base rate: cosine refuses, like PyTorch's zip
    let p = Param::new(&Tensor::new(&[1f32], &Device::Cpu).unwrap(), true).unwrap();
    o.add_param_group(vec![("extra".into(), p)], Some(0.2))
        .unwrap();
    assert_eq!(s.step(&mut o).unwrap_err().code(), "K0003");
}

#[test]
fn bad_arguments_are_k0003() {
    let mut o = opt(&[0.1]);
    assert_eq!(StepLr::new(&mut o, 0, 0.1).unwrap_err().code(), "K0003");
    assert_eq!(
        CosineAnnealingLr::new(&mut o, 0, 0.0).unwrap_err().code(),
        "K0003"
    );
    assert_eq!(
        ExponentialLr::new(&mut o, f64::NAN).unwrap_err().code(),
        "K0003"
    );
    let e = build("linear", &SchedulerArgs::default(), &mut o)
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("step, multistep, exponential, cosine")
    );
    let e = build("step", &SchedulerArgs::default(), &mut o)
        .err()
        .unwrap();
    assert!(e.to_string().contains("step_size"), "{e}");
    let args = SchedulerArgs {
        t_max: Some(5),
        step_size: Some(3),
        ..Default::default()
    };
    let e = build("cosine", &args, &mut o).err().unwrap();
    assert!(e.to_string().contains("step_size"), "{e}");
}

#[test]
fn build_accepts_short_and_pytorch_names() {
    let mut o = opt(&[0.1]);
    let args = SchedulerArgs {
        t_max: Some(5),
        ..Default::default()
    };
    for name in ["cosine", "CosineAnnealingLR", "cosine_annealing"] {
        assert_eq!(
            build(name, &args, &mut o).unwrap().name(),
            "CosineAnnealingLR"
        );
    }
    let args = SchedulerArgs {
        milestones: Some(vec![3]),
        ..Default::default()
    };
    assert_eq!(
        build("MultiStepLR", &args, &mut o).unwrap().name(),
        "MultiStepLR"
    );
    let args = SchedulerArgs {
        gamma: Some(0.9),
        ..Default::default()
    };
    assert_eq!(
        build("exponential", &args, &mut o).unwrap().name(),
        "ExponentialLR"
    );
}

#[test]
fn state_round_trip_and_wrong_state_is_k0603() {
    let mut o = opt(&[0.1, 0.2]);
    let mut s = StepLr::new(&mut o, 2, 0.5).unwrap();
    for _ in 0..3 {
        s.step(&mut o).unwrap();
    }
    let sd = s.state_dict();
    assert_eq!(keys(&sd), with_common(&["step_size", "gamma"]));
    let mut o2 = opt(&[0.1, 0.2]);
    let mut s2 = StepLr::new(&mut o2, 9, 0.9).unwrap();
    s2.load_state_dict(&sd).unwrap();
    assert_eq!(s2.state_dict(), sd);
    o2.load_state_dict(&o.state_dict().unwrap()).unwrap();
    for _ in 0..4 {
        s.step(&mut o).unwrap();
        s2.step(&mut o2).unwrap();
        assert_eq!(s.get_last_lr(), s2.get_last_lr());
    }
    let mut c = CosineAnnealingLr::new(&mut o2, 5, 0.0).unwrap();
    let e = c.load_state_dict(&sd).unwrap_err();
    assert_eq!(e.code(), "K0603");
    assert!(e.to_string().contains("no 'T_max'"), "{e}");
    let e = c.load_state_dict(&Value::None).unwrap_err();
    assert_eq!(e.code(), "K0603");
}
