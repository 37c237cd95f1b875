//! Parity of kiln's optimizers and LR schedulers with real PyTorch.
//!
//! The fixtures in `tests/fixtures/optim/` come from `scripts/gen_optim_fixtures.py` (torch
//! 2.15): 20-step parameter trajectories on a fixed problem, the optimizers' `state_dict()`
//! after 3 steps, and 30-epoch LR sequences with the schedulers' `state_dict()`s.

use candle_core::{DType, Device, Tensor};
use kiln::Param;
use kiln::io::{Dtype, TensorValue, Value, value::Dict};
use kiln::optim::scheduler::{LrScheduler, SchedulerArgs, build};
use kiln::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, Adamax, AdamaxConfig, Grads, GroupSpec, NAdam,
    NAdamConfig, Optimizer, RAdam, RAdamConfig, RMSprop, RMSpropConfig, Sgd, SgdConfig,
};
use serde_json::Value as J;
use std::collections::HashMap;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/optim");
const NAMES: [&str; 3] = ["W", "b", "C"];
/// Acceptance bound for trajectories and state tensors (relative).
const TRAJ_TOL: f64 = 1e-5;
/// Element-wise relative errors divide by `max(|torch value|, FLOOR)`.
const FLOOR: f64 = 1e-3;

fn json(name: &str) -> J {
    let text = std::fs::read_to_string(format!("{DIR}/{name}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn tensors(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(format!("{DIR}/{name}"), &Device::Cpu).unwrap()
}

fn f64_of(j: &J) -> f64 {
    j.as_f64().unwrap()
}

// ------------------------------------------------------------------ building runs

struct Run {
    params: Vec<(String, Param)>,
    opt: Box<dyn Optimizer>,
    sched: Option<Box<dyn LrScheduler>>,
}

fn sgd_config(d: &J) -> SgdConfig {
    let mut c = SgdConfig::default();
    for (k, v) in d.as_object().unwrap() {
        match k.as_str() {
            "lr" => c.lr = f64_of(v),
            "momentum" => c.momentum = f64_of(v),
            "dampening" => c.dampening = f64_of(v),
            "weight_decay" => c.weight_decay = f64_of(v),
            "nesterov" => c.nesterov = v.as_bool().unwrap(),
            "maximize" => c.maximize = v.as_bool().unwrap(),
            other => panic!("unknown SGD option {other}"),
        }
    }
    c
}

fn adam_config(d: &J, adamw: bool) -> AdamConfig {
    let mut c = if adamw {
        AdamConfig::adamw()
    } else {
        AdamConfig::default()
    };
    for (k, v) in d.as_object().unwrap() {
        match k.as_str() {
            "lr" => c.lr = f64_of(v),
            "betas" => c.betas = (f64_of(&v[0]), f64_of(&v[1])),
            "eps" => c.eps = f64_of(v),
            "weight_decay" => c.weight_decay = f64_of(v),
            "amsgrad" => c.amsgrad = v.as_bool().unwrap(),
            "maximize" => c.maximize = v.as_bool().unwrap(),
            other => panic!("unknown Adam option {other}"),
        }
    }
    c
}

fn rmsprop_config(d: &J) -> RMSpropConfig {
    let mut c = RMSpropConfig::default();
    for (k, v) in d.as_object().unwrap() {
        match k.as_str() {
            "lr" => c.lr = f64_of(v),
            "alpha" => c.alpha = f64_of(v),
            "eps" => c.eps = f64_of(v),
            "weight_decay" => c.weight_decay = f64_of(v),
            "momentum" => c.momentum = f64_of(v),
            "centered" => c.centered = v.as_bool().unwrap(),
            "maximize" => c.maximize = v.as_bool().unwrap(),
            other => panic!("unknown RMSprop option {other}"),
        }
    }
    c
}

fn adagrad_config(d: &J) -> AdagradConfig {
    let mut c = AdagradConfig::default();
    for (k, v) in d.as_object().unwrap() {
        match k.as_str() {
            "lr" => c.lr = f64_of(v),
            "lr_decay" => c.lr_decay = f64_of(v),
            "weight_decay" => c.weight_decay = f64_of(v),
            "initial_accumulator_value" => c.initial_accumulator_value = f64_of(v),
            "eps" => c.eps = f64_of(v),
            "maximize" => c.maximize = v.as_bool().unwrap(),
            other => panic!("unknown Adagrad option {other}"),
        }
    }
    c
}

fn adamax_config(d: &J) -> AdamaxConfig {
    let mut c = AdamaxConfig::default();
    for (k, v) in d.as_object().unwrap() {
        match k.as_str() {
            "lr" => c.lr = f64_of(v),
            "betas" => c.betas = (f64_of(&v[0]), f64_of(&v[1])),
            "eps" => c.eps = f64_of(v),
            "weight_decay" => c.weight_decay = f64_of(v),
            "maximize" => c.maximize = v.as_bool().unwrap(),
            other => panic!("unknown Adamax option {other}"),
        }
    }
    c
}

fn nadam_config(d: &J) -> NAdamConfig {
    let mut c = NAdamConfig::default();
    for (k, v) in d.as_object().unwrap() {
        match k.as_str() {
            "lr" => c.lr = f64_of(v),
            "betas" => c.betas = (f64_of(&v[0]), f64_of(&v[1])),
            "eps" => c.eps = f64_of(v),
            "weight_decay" => c.weight_decay = f64_of(v),
            "momentum_decay" => c.momentum_decay = f64_of(v),
            "decoupled_weight_decay" => c.decoupled_weight_decay = v.as_bool().unwrap(),
            "maximize" => c.maximize = v.as_bool().unwrap(),
            other => panic!("unknown NAdam option {other}"),
        }
    }
    c
}

fn radam_config(d: &J) -> RAdamConfig {
    let mut c = RAdamConfig::default();
    for (k, v) in d.as_object().unwrap() {
        match k.as_str() {
            "lr" => c.lr = f64_of(v),
            "betas" => c.betas = (f64_of(&v[0]), f64_of(&v[1])),
            "eps" => c.eps = f64_of(v),
            "weight_decay" => c.weight_decay = f64_of(v),
            "decoupled_weight_decay" => c.decoupled_weight_decay = v.as_bool().unwrap(),
            "maximize" => c.maximize = v.as_bool().unwrap(),
            other => panic!("unknown RAdam option {other}"),
        }
    }
    c
}

fn group_spec(g: &J, params: &[(String, Param)]) -> GroupSpec {
    let mut names = vec![];
    let mut spec = GroupSpec::new(vec![]);
    for (k, v) in g.as_object().unwrap() {
        match k.as_str() {
            "params" => names = v.as_array().unwrap().to_vec(),
            "lr" => spec = spec.lr(f64_of(v)),
            "momentum" => spec = spec.momentum(f64_of(v)),
            "weight_decay" => spec = spec.weight_decay(f64_of(v)),
            other => panic!("unknown group option {other}"),
        }
    }
    spec.params = names
        .iter()
        .map(|n| {
            params
                .iter()
                .find(|(name, _)| name == n.as_str().unwrap())
                .unwrap()
                .clone()
        })
        .collect();
    spec
}

fn scheduler_args(name: &str, kwargs: &J) -> SchedulerArgs {
    let mut a = SchedulerArgs::default();
    for (k, v) in kwargs.as_object().unwrap() {
        match k.as_str() {
            "step_size" => a.step_size = Some(v.as_u64().unwrap() as usize),
            "gamma" => a.gamma = Some(f64_of(v)),
            "milestones" => {
                a.milestones = Some(
                    v.as_array()
                        .unwrap()
                        .iter()
                        .map(|m| m.as_u64().unwrap() as usize)
                        .collect(),
                )
            }
            "T_max" => a.t_max = Some(v.as_u64().unwrap() as usize),
            "eta_min" => a.eta_min = Some(f64_of(v)),
            other => panic!("unknown {name} argument {other}"),
        }
    }
    a
}

/// Builds the case's parameters (from `init`), optimizer and scheduler like the script.
fn build_run(case: &J, init: &HashMap<String, Tensor>) -> Run {
    let frozen: Vec<&str> = case["frozen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let params: Vec<(String, Param)> = NAMES
        .iter()
        .map(|n| {
            let p = Param::new(&init[*n], !frozen.contains(n)).unwrap();
            (n.to_string(), p)
        })
        .collect();
    let groups = match &case["groups"] {
        J::Null => vec![GroupSpec::new(params.clone())],
        J::Array(gs) => gs.iter().map(|g| group_spec(g, &params)).collect(),
        other => panic!("bad groups {other}"),
    };
    let d = &case["defaults"];
    let mut opt: Box<dyn Optimizer> = match case["optimizer"].as_str().unwrap() {
        "SGD" => Box::new(Sgd::with_groups(groups, sgd_config(d)).unwrap()),
        "Adam" => Box::new(Adam::with_groups(groups, adam_config(d, false)).unwrap()),
        "AdamW" => Box::new(AdamW::with_groups(groups, adam_config(d, true)).unwrap()),
        "RMSprop" => Box::new(RMSprop::with_groups(groups, rmsprop_config(d)).unwrap()),
        "Adagrad" => Box::new(Adagrad::with_groups(groups, adagrad_config(d)).unwrap()),
        "Adamax" => Box::new(Adamax::with_groups(groups, adamax_config(d)).unwrap()),
        "NAdam" => Box::new(NAdam::with_groups(groups, nadam_config(d)).unwrap()),
        "RAdam" => Box::new(RAdam::with_groups(groups, radam_config(d)).unwrap()),
        other => panic!("unknown optimizer {other}"),
    };
    let sched = match &case["scheduler"] {
        J::Null => None,
        s => {
            let name = s["name"].as_str().unwrap();
            Some(build(name, &scheduler_args(name, &s["kwargs"]), opt.as_mut()).unwrap())
        }
    };
    Run { params, opt, sched }
}

/// `((x @ W.T + b - y) ** 2).sum() + ((C @ u - v) ** 2).sum()`.
fn loss(run: &Run, data: &HashMap<String, Tensor>) -> Tensor {
    let p = |n: &str| {
        run.params
            .iter()
            .find(|(name, _)| name == n)
            .unwrap()
            .1
            .tensor()
    };
    let lin = data["x"]
        .matmul(&p("W").t().unwrap())
        .unwrap()
        .broadcast_add(&p("b"))
        .unwrap()
        .sub(&data["y"])
        .unwrap();
    let mat = p("C").matmul(&data["u"]).unwrap().sub(&data["v"]).unwrap();
    (lin.sqr().unwrap().sum_all().unwrap() + mat.sqr().unwrap().sum_all().unwrap()).unwrap()
}

fn train_step(run: &mut Run, data: &HashMap<String, Tensor>) {
    let l = loss(run, data);
    let handles: Vec<Param> = run.params.iter().map(|(_, p)| p.clone()).collect();
    let grads = Grads::backward(&l, &handles).unwrap();
    run.opt.step(&grads).unwrap();
    if let Some(s) = &mut run.sched {
        s.step(run.opt.as_mut()).unwrap();
    }
}

/// One step driven by PyTorch's own gradients (recorded by the script), so only the update
/// rule is compared, not autograd.
fn torch_grad_step(run: &mut Run, traj: &HashMap<String, Tensor>, case: &str, step: usize) {
    let mut grads = Grads::new();
    for (name, p) in &run.params {
        if let Some(g) = traj.get(&format!("{case}.{name}.grad")) {
            grads.insert(p.id(), g.get(step - 1).unwrap());
        }
    }
    run.opt.step(&grads).unwrap();
    if let Some(s) = &mut run.sched {
        s.step(run.opt.as_mut()).unwrap();
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Max of |a - b| / max(|b|, FLOOR).
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs() / (*y as f64).abs().max(FLOOR))
        .fold(0.0, f64::max)
}

/// max |a - b| / max |b| over a tensor.
fn norm_err(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().map(|y| (*y as f64).abs()).fold(0.0, f64::max);
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max);
    diff / scale.max(f64::MIN_POSITIVE)
}

fn expected_at(traj: &HashMap<String, Tensor>, case: &str, name: &str, step: usize) -> Vec<f32> {
    values(&traj[&format!("{case}.{name}")].get(step).unwrap())
}

fn param_values(run: &Run, name: &str) -> Vec<f32> {
    values(
        &run.params
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .tensor(),
    )
}

// ------------------------------------------------------------------ describing values

fn bits_of(j: &J) -> u64 {
    j["bits"].as_u64().unwrap()
}

/// kiln's `Value` in the script's JSON description format.
fn describe(v: &Value) -> J {
    use serde_json::json;
    match v {
        Value::None => json!({"type": "None"}),
        Value::Bool(b) => json!({"type": "bool", "value": b}),
        Value::Int(i) => json!({"type": "int", "value": i}),
        Value::Float(f) => json!({"type": "float", "value": f, "bits": f.to_bits()}),
        Value::Str(s) => json!({"type": "str", "value": s}),
        Value::List(items) => {
            json!({"type": "list", "items": items.iter().map(describe).collect::<Vec<_>>()})
        }
        Value::Tuple(items) => {
            json!({"type": "tuple", "items": items.iter().map(describe).collect::<Vec<_>>()})
        }
        Value::Dict(d) => json!({
            "type": "dict",
            "items": d.entries.iter().map(|(k, v)| json!([describe(k), describe(v)])).collect::<Vec<_>>()
        }),
        Value::Tensor(t) => {
            let tensor = t.to_tensor(&Device::Cpu).unwrap();
            let vals: Vec<f64> = tensor
                .flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1()
                .unwrap();
            json!({
                "type": "Tensor",
                "dtype": t.dtype().torch_name().trim_start_matches("torch."),
                "shape": t.shape,
                "device": t.storage.location,
                "requires_grad": t.requires_grad,
                "values": vals,
            })
        }
        other => panic!("cannot describe {}", other.type_name()),
    }
}

/// A PyTorch value from its JSON description (tensors become float32 CPU tensors).
fn to_value(j: &J) -> Value {
    let items = |j: &J| {
        j["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(to_value)
            .collect()
    };
    match j["type"].as_str().unwrap() {
        "None" => Value::None,
        "bool" => Value::Bool(j["value"].as_bool().unwrap()),
        "int" => Value::Int(j["value"].as_i64().unwrap()),
        "float" => Value::Float(f64::from_bits(bits_of(j))),
        "str" => Value::Str(j["value"].as_str().unwrap().to_string()),
        "list" => Value::List(items(j)),
        "tuple" => Value::Tuple(items(j)),
        "dict" | "Counter" => Value::Dict(Dict {
            entries: j["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|kv| (to_value(&kv[0]), to_value(&kv[1])))
                .collect(),
            ordered: false,
            metadata: None,
        }),
        "Tensor" => {
            assert_eq!(j["dtype"], "float32");
            let shape: Vec<usize> = j["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let bytes: Vec<u8> = j["values"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|x| (x.as_f64().unwrap() as f32).to_le_bytes())
                .collect();
            Value::Tensor(TensorValue::from_bytes(Dtype::F32, shape, bytes, "cpu").unwrap())
        }
        other => panic!("unknown type {other}"),
    }
}

/// Compares two descriptions: same types, keys, order and ints/bools/strings; floats within
/// `float_tol` relative; tensor dtype/shape/device exact and values within `TRAJ_TOL`
/// relative (floor `FLOOR`). Differences are collected in `errs`; returns the max tensor
/// relative error.
fn compare(path: &str, kiln: &J, torch: &J, float_tol: f64, errs: &mut Vec<String>) -> f64 {
    let (kt, tt) = (&kiln["type"], &torch["type"]);
    // A Counter is written by kiln as a plain dict (documented in MultiStepLr).
    let same_type = kt == tt || (kt == "dict" && tt == "Counter");
    if !same_type {
        errs.push(format!("{path}: kiln has {kt}, torch has {tt}"));
        return 0.0;
    }
    let mut worst: f64 = 0.0;
    match tt.as_str().unwrap() {
        "float" => {
            let (a, b) = (f64_of(&kiln["value"]), f64_of(&torch["value"]));
            if (a - b).abs() > float_tol * b.abs().max(f64::MIN_POSITIVE) {
                errs.push(format!("{path}: kiln {a:e}, torch {b:e}"));
            }
        }
        "Tensor" => {
            for key in ["dtype", "shape", "device", "requires_grad"] {
                if kiln[key] != torch[key] {
                    errs.push(format!(
                        "{path}: {key} kiln {} torch {}",
                        kiln[key], torch[key]
                    ));
                }
            }
            let a: Vec<f32> = kiln["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            let b: Vec<f32> = torch["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            if a.len() != b.len() {
                errs.push(format!("{path}: {} values vs {}", a.len(), b.len()));
            } else {
                worst = rel_err(&a, &b);
                if worst > TRAJ_TOL {
                    errs.push(format!("{path}: values differ by {worst:e} (relative)"));
                }
            }
        }
        "list" | "tuple" | "dict" | "Counter" => {
            let (a, b) = (
                kiln["items"].as_array().unwrap(),
                torch["items"].as_array().unwrap(),
            );
            if a.len() != b.len() {
                errs.push(format!(
                    "{path}: kiln has {} items, torch has {}: kiln {}, torch {}",
                    a.len(),
                    b.len(),
                    short(kiln),
                    short(torch)
                ));
                return worst;
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if tt == "list" || tt == "tuple" {
                    worst = worst.max(compare(&format!("{path}[{i}]"), x, y, float_tol, errs));
                } else {
                    let key = key_text(&y[0]);
                    compare(&format!("{path}.<key {i}>"), &x[0], &y[0], 0.0, errs);
                    worst = worst.max(compare(
                        &format!("{path}.{key}"),
                        &x[1],
                        &y[1],
                        float_tol,
                        errs,
                    ));
                }
            }
        }
        _ => {
            if kiln != torch {
                errs.push(format!("{path}: kiln {kiln}, torch {torch}"));
            }
        }
    }
    worst
}

fn key_text(k: &J) -> String {
    match &k["value"] {
        J::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn short(j: &J) -> String {
    let keys: Vec<String> = j["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|kv| {
                    if kv.is_array() {
                        key_text(&kv[0])
                    } else {
                        kv["type"].to_string()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    format!("[{}]", keys.join(", "))
}

// ------------------------------------------------------------------ optimizer tests

fn cases() -> Vec<J> {
    json("optimizers.json")["cases"]
        .as_array()
        .unwrap()
        .to_vec()
}

#[test]
fn fixtures_record_the_torch_version() {
    let v = json("optimizers.json");
    assert!(v["torch_version"].as_str().unwrap().starts_with("2.15"));
    assert_eq!(v["steps"], 20);
}

/// The full pipeline (candle autograd + kiln's update rule) against PyTorch. Gradients from
/// candle's matmul/sum differ from PyTorch's in the last bits, and SGD integrates them, so
/// this bound is tensor-relative (max |diff| / max |value|); elements that pass near zero
/// carry an absolute error of ~1e-8 that element-wise relative error would magnify.
#[test]
fn trajectories_match_pytorch() {
    let data = tensors("problem.safetensors");
    let traj = tensors("trajectories.safetensors");
    let mut report = vec![];
    let mut failures = vec![];
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let mut run = build_run(&case, &data);
        let (mut norm, mut elem): (f64, f64) = (0.0, 0.0);
        for step in 1..=20 {
            train_step(&mut run, &data);
            for p in NAMES {
                let (a, b) = (param_values(&run, p), expected_at(&traj, name, p, step));
                norm = norm.max(norm_err(&a, &b));
                elem = elem.max(rel_err(&a, &b));
            }
        }
        report.push(format!(
            "{name:<28} tensor-relative {norm:.3e}  element-wise {elem:.3e}"
        ));
        if norm > TRAJ_TOL {
            failures.push(name.to_string());
        }
    }
    println!("autograd + update rule:\n{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "trajectories differ: {failures:?}\n{}",
        report.join("\n")
    );
}

/// kiln's update rule fed PyTorch's gradients: element-wise relative error over 20 steps.
#[test]
fn update_rule_matches_pytorch_given_its_gradients() {
    let data = tensors("problem.safetensors");
    let traj = tensors("trajectories.safetensors");
    let mut report = vec![];
    let mut failures = vec![];
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let mut run = build_run(&case, &data);
        let (mut elem, mut exact, mut total): (f64, usize, usize) = (0.0, 0, 0);
        for step in 1..=20 {
            torch_grad_step(&mut run, &traj, name, step);
            for p in NAMES {
                let (a, b) = (param_values(&run, p), expected_at(&traj, name, p, step));
                elem = elem.max(rel_err(&a, &b));
                exact += a
                    .iter()
                    .zip(&b)
                    .filter(|(x, y)| x.to_bits() == y.to_bits())
                    .count();
                total += a.len();
            }
        }
        report.push(format!(
            "{name:<28} element-wise {elem:.3e}  bit-exact {exact}/{total}"
        ));
        if elem > TRAJ_TOL {
            failures.push(name.to_string());
        }
    }
    println!("update rule alone:\n{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "trajectories differ: {failures:?}\n{}",
        report.join("\n")
    );
}

#[test]
fn frozen_and_zero_lr_parameters_stay_bit_identical() {
    let data = tensors("problem.safetensors");
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        if !(name.ends_with("lr0_group") || name.ends_with("frozen")) {
            continue;
        }
        let mut run = build_run(&case, &data);
        let before = param_values(&run, "C");
        for _ in 0..20 {
            train_step(&mut run, &data);
        }
        let after = param_values(&run, "C");
        assert!(
            before
                .iter()
                .zip(&after)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: C changed"
        );
    }
}

/// Keys, order, Python types and values of `state_dict()` after 3 steps (driven by PyTorch's
/// gradients, so the state tensors can be compared value for value).
#[test]
fn state_dicts_match_pytorch() {
    let data = tensors("problem.safetensors");
    let traj = tensors("trajectories.safetensors");
    let mut errs = vec![];
    let mut report = vec![];
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let mut run = build_run(&case, &data);
        for step in 1..=case["state_at"].as_u64().unwrap() as usize {
            torch_grad_step(&mut run, &traj, name, step);
        }
        let sd = describe(&run.opt.state_dict().unwrap());
        let worst = compare(name, &sd, &case["state_dict"], 0.0, &mut errs);
        report.push(format!(
            "{name:<28} state tensors max relative error {worst:.3e}"
        ));
        if let Some(s) = &run.sched {
            compare(
                &format!("{name}.scheduler"),
                &describe(&s.state_dict()),
                &case["scheduler_state_dict"],
                1e-12,
                &mut errs,
            );
        }
    }
    println!("{}", report.join("\n"));
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

#[test]
fn pytorch_state_dicts_load_and_training_continues() {
    let data = tensors("problem.safetensors");
    let traj = tensors("trajectories.safetensors");
    let mut failures = vec![];
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let at = case["state_at"].as_u64().unwrap() as usize;
        let mut init = data.clone();
        for n in NAMES {
            init.insert(n.to_string(), traj[&format!("{name}.{n}")].get(at).unwrap());
        }
        let mut run = build_run(&case, &init);
        run.opt
            .load_state_dict(&to_value(&case["state_dict"]))
            .unwrap();
        if let Some(s) = &mut run.sched {
            s.load_state_dict(&to_value(&case["scheduler_state_dict"]))
                .unwrap();
        }
        let mut worst: f64 = 0.0;
        for step in at + 1..=20 {
            torch_grad_step(&mut run, &traj, name, step);
            for p in NAMES {
                worst = worst.max(rel_err(
                    &param_values(&run, p),
                    &expected_at(&traj, name, p, step),
                ));
            }
        }
        if worst > TRAJ_TOL {
            failures.push(format!("{name}: {worst:e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn kiln_state_dict_round_trip_continues_bit_identically() {
    let data = tensors("problem.safetensors");
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let mut a = build_run(&case, &data);
        for _ in 0..10 {
            train_step(&mut a, &data);
        }
        let sd = a.opt.state_dict().unwrap();
        let ssd = a.sched.as_ref().map(|s| s.state_dict());
        let mut init = data.clone();
        for n in NAMES {
            init.insert(n.to_string(), param_values_tensor(&a, n));
        }
        let mut b = build_run(&case, &init);
        b.opt.load_state_dict(&sd).unwrap();
        if let (Some(s), Some(ssd)) = (&mut b.sched, &ssd) {
            s.load_state_dict(ssd).unwrap();
        }
        assert_eq!(
            b.opt.state_dict().unwrap(),
            sd,
            "{name}: reloaded state differs"
        );
        for _ in 0..10 {
            train_step(&mut a, &data);
            train_step(&mut b, &data);
        }
        for n in NAMES {
            let (x, y) = (param_values(&a, n), param_values(&b, n));
            assert!(
                x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{name}.{n}: resumed run differs"
            );
        }
        assert_eq!(a.opt.state_dict().unwrap(), b.opt.state_dict().unwrap());
    }
}

fn param_values_tensor(run: &Run, name: &str) -> Tensor {
    run.params
        .iter()
        .find(|(n, _)| n == name)
        .unwrap()
        .1
        .detached()
        .copy()
        .unwrap()
}

// ------------------------------------------------------------------ scheduler tests

fn sched_cases() -> Vec<J> {
    json("schedulers.json")["cases"]
        .as_array()
        .unwrap()
        .to_vec()
}

fn sched_opt(case: &J) -> Sgd {
    let lrs: Vec<f64> = case["group_lrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(f64_of)
        .collect();
    let p = || Param::new(&Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap(), true).unwrap();
    Sgd::with_groups(
        vec![
            GroupSpec::new(vec![("w".into(), p())]),
            GroupSpec::new(vec![("v".into(), p())]).lr(lrs[1]),
        ],
        SgdConfig::lr(lrs[0]),
    )
    .unwrap()
}

fn build_sched(case: &J, opt: &mut Sgd) -> Box<dyn LrScheduler> {
    let name = case["scheduler"].as_str().unwrap();
    build(name, &scheduler_args(name, &case["kwargs"]), opt).unwrap()
}

fn expected_lrs(case: &J) -> Vec<Vec<f64>> {
    case["lrs_bits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|b| f64::from_bits(b.as_u64().unwrap()))
                .collect()
        })
        .collect()
}

#[test]
fn lr_sequences_match_pytorch() {
    let mut report = vec![];
    let mut errs = vec![];
    for case in sched_cases() {
        let name = case["name"].as_str().unwrap();
        let mut opt = sched_opt(&case);
        let mut s = build_sched(&case, &mut opt);
        let expected = expected_lrs(&case);
        let mut got = vec![s.get_last_lr().to_vec()];
        for epoch in 1..expected.len() {
            s.step(&mut opt).unwrap();
            got.push(s.get_last_lr().to_vec());
            if epoch == 10 {
                compare(
                    &format!("{name}@10"),
                    &describe(&s.state_dict()),
                    &case["state_dict_at_10"],
                    1e-12,
                    &mut errs,
                );
            }
        }
        let mut worst: f64 = 0.0;
        let mut exact = 0;
        for (row_g, row_e) in got.iter().zip(&expected) {
            assert_eq!(row_g.len(), row_e.len());
            for (g, e) in row_g.iter().zip(row_e) {
                worst = worst.max((g - e).abs() / e.abs().max(1e-300));
                exact += (g.to_bits() == e.to_bits()) as usize;
            }
        }
        report.push(format!(
            "{name:<18} max relative error {worst:.3e}, {exact}/{} bit-exact",
            2 * expected.len()
        ));
        if worst > 1e-12 {
            errs.push(format!("{name}: LR sequence differs by {worst:e}"));
        }
        compare(
            name,
            &describe(&s.state_dict()),
            &case["state_dict"],
            1e-12,
            &mut errs,
        );
        let groups = describe(
            &opt.state_dict()
                .unwrap()
                .get("param_groups")
                .unwrap()
                .clone(),
        );
        compare(
            &format!("{name}.param_groups"),
            &groups,
            &case["optimizer_param_groups"],
            1e-12,
            &mut errs,
        );
    }
    println!("{}", report.join("\n"));
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

#[test]
fn scheduler_state_round_trip_continues_the_sequence() {
    for case in sched_cases() {
        let name = case["name"].as_str().unwrap();
        let expected = expected_lrs(&case);
        // PyTorch's state at epoch 10, loaded into a fresh kiln scheduler
        let mut opt = sched_opt(&case);
        let mut s = build_sched(&case, &mut opt);
        s.load_state_dict(&to_value(&case["state_dict_at_10"]))
            .unwrap();
        for (i, lr) in expected[10].iter().enumerate() {
            opt.set_lr(i, *lr);
        }
        assert_eq!(s.last_epoch(), 10);
        // and kiln's own state, saved at the same point, into another
        let mut opt2 = sched_opt(&case);
        let mut s2 = build_sched(&case, &mut opt2);
        s2.load_state_dict(&s.state_dict()).unwrap();
        opt2.load_state_dict(&opt.state_dict().unwrap()).unwrap();
        for row in &expected[11..] {
            s.step(&mut opt).unwrap();
            s2.step(&mut opt2).unwrap();
            for (g, e) in s.get_last_lr().iter().zip(row) {
                assert!((g - e).abs() <= 1e-12 * e.abs(), "{name}: {g} vs {e}");
            }
            assert_eq!(s.get_last_lr(), s2.get_last_lr(), "{name}");
        }
    }
}
