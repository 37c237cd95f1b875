//! Parity of kiln's LinearLR, ConstantLR, PolynomialLR, CosineAnnealingWarmRestarts,
//! ReduceLROnPlateau, OneCycleLR, SequentialLR and ChainedScheduler with real PyTorch.
//!
//! `tests/fixtures/optim/sched2.json` comes from `scripts/gen_sched_fixtures.py` (torch
//! 2.15): every group's rate (and momentum / beta1) after construction and after each of 40
//! steps as f64 bits, and the scheduler's `state_dict()` after 12 steps and at the end.
//! Everything is compared bit for bit: kiln evaluates PyTorch's formulas in the same order
//! with the same IEEE operations (`cos` and `pow` from the platform's libm, as CPython's
//! `math.cos` and `**`).

use candle_core::{DType, Device, Tensor};
use kiln::Param;
use kiln::io::{Value, value::Dict};
use kiln::optim::scheduler::{
    AnnealStrategy, ChainedScheduler, ConstantLr, CosineAnnealingLr, CosineAnnealingWarmRestarts,
    ExponentialLr, LinearLr, LrScheduler, MinLr, MultiStepLr, OneCycleConfig, OneCycleLr,
    PlateauConfig, PlateauMode, PolynomialLr, ReduceLrOnPlateau, SequentialLr, StepLr,
    ThresholdMode,
};
use kiln::optim::{Adam, AdamConfig, GroupSpec, Optimizer, Sgd, SgdConfig};
use serde_json::Value as J;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/optim/sched2.json"
);

fn fixture() -> J {
    serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap()
}

fn cases() -> Vec<J> {
    fixture()["cases"].as_array().unwrap().to_vec()
}

fn f(j: &J, key: &str, default: f64) -> f64 {
    j.get(key).map_or(default, |v| v.as_f64().unwrap())
}

fn u(j: &J, key: &str, default: usize) -> usize {
    j.get(key).map_or(default, |v| v.as_u64().unwrap() as usize)
}

fn floats(j: &J) -> Vec<f64> {
    match j {
        J::Array(a) => a.iter().map(|x| x.as_f64().unwrap()).collect(),
        x => vec![x.as_f64().unwrap()],
    }
}

fn make_opt(case: &J) -> Box<dyn Optimizer> {
    let lrs = floats(&case["group_lrs"]);
    let p = || Param::new(&Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap(), true).unwrap();
    let groups: Vec<GroupSpec> = lrs
        .iter()
        .enumerate()
        .map(|(i, lr)| GroupSpec::new(vec![(format!("p{i}"), p())]).lr(*lr))
        .collect();
    match case["optimizer"].as_str().unwrap() {
        "SGD" => Box::new(
            Sgd::with_groups(
                groups,
                SgdConfig {
                    lr: lrs[0],
                    momentum: 0.9,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        "Adam" => Box::new(
            Adam::with_groups(
                groups,
                AdamConfig {
                    lr: lrs[0],
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        other => panic!("optimizer {other}"),
    }
}

/// A kiln scheduler like `torch.optim.lr_scheduler.<cls>(opt, **kw)`.
fn make(cls: &str, kw: &J, children: &J, opt: &mut dyn Optimizer) -> Box<dyn LrScheduler> {
    match cls {
        "ConstantLR" => Box::new(
            ConstantLr::new(opt, f(kw, "factor", 1.0 / 3.0), u(kw, "total_iters", 5)).unwrap(),
        ),
        "LinearLR" => Box::new(
            LinearLr::new(
                opt,
                f(kw, "start_factor", 1.0 / 3.0),
                f(kw, "end_factor", 1.0),
                u(kw, "total_iters", 5),
            )
            .unwrap(),
        ),
        "PolynomialLR" => {
            Box::new(PolynomialLr::new(opt, u(kw, "total_iters", 5), f(kw, "power", 1.0)).unwrap())
        }
        "CosineAnnealingWarmRestarts" => Box::new(
            CosineAnnealingWarmRestarts::new(
                opt,
                u(kw, "T_0", 0),
                u(kw, "T_mult", 1),
                f(kw, "eta_min", 0.0),
            )
            .unwrap(),
        ),
        "ReduceLROnPlateau" => {
            let mut c = PlateauConfig::default();
            for (k, v) in kw.as_object().unwrap() {
                match k.as_str() {
                    "mode" => {
                        c.mode = match v.as_str().unwrap() {
                            "min" => PlateauMode::Min,
                            _ => PlateauMode::Max,
                        }
                    }
                    "threshold_mode" => {
                        c.threshold_mode = match v.as_str().unwrap() {
                            "rel" => ThresholdMode::Rel,
                            _ => ThresholdMode::Abs,
                        }
                    }
                    "factor" => c.factor = v.as_f64().unwrap(),
                    "patience" => c.patience = v.as_u64().unwrap() as usize,
                    "threshold" => c.threshold = v.as_f64().unwrap(),
                    "cooldown" => c.cooldown = v.as_u64().unwrap() as usize,
                    "eps" => c.eps = v.as_f64().unwrap(),
                    "min_lr" => {
                        c.min_lr = match v {
                            J::Array(_) => MinLr::PerGroup(floats(v)),
                            _ => MinLr::All(v.as_f64().unwrap()),
                        }
                    }
                    other => panic!("plateau argument {other}"),
                }
            }
            Box::new(ReduceLrOnPlateau::new(opt, c).unwrap())
        }
        "OneCycleLR" => {
            let mut c = OneCycleConfig::new(0.0, 1);
            c.total_steps = None;
            for (k, v) in kw.as_object().unwrap() {
                match k.as_str() {
                    "max_lr" => c.max_lr = floats(v),
                    "total_steps" => c.total_steps = Some(v.as_u64().unwrap() as usize),
                    "epochs" => c.epochs = Some(v.as_u64().unwrap() as usize),
                    "steps_per_epoch" => c.steps_per_epoch = Some(v.as_u64().unwrap() as usize),
                    "pct_start" => c.pct_start = v.as_f64().unwrap(),
                    "anneal_strategy" => {
                        c.anneal_strategy = match v.as_str().unwrap() {
                            "cos" => AnnealStrategy::Cos,
                            _ => AnnealStrategy::Linear,
                        }
                    }
                    "cycle_momentum" => c.cycle_momentum = v.as_bool().unwrap(),
                    "base_momentum" => c.base_momentum = floats(v),
                    "max_momentum" => c.max_momentum = floats(v),
                    "div_factor" => c.div_factor = v.as_f64().unwrap(),
                    "final_div_factor" => c.final_div_factor = v.as_f64().unwrap(),
                    "three_phase" => c.three_phase = v.as_bool().unwrap(),
                    other => panic!("onecycle argument {other}"),
                }
            }
            Box::new(OneCycleLr::new(opt, &c).unwrap())
        }
        "StepLR" => Box::new(StepLr::new(opt, u(kw, "step_size", 0), f(kw, "gamma", 0.1)).unwrap()),
        "MultiStepLR" => {
            let ms: Vec<usize> = floats(&kw["milestones"])
                .iter()
                .map(|m| *m as usize)
                .collect();
            Box::new(MultiStepLr::new(opt, &ms, f(kw, "gamma", 0.1)).unwrap())
        }
        "ExponentialLR" => Box::new(ExponentialLr::new(opt, f(kw, "gamma", 0.0)).unwrap()),
        "CosineAnnealingLR" => {
            Box::new(CosineAnnealingLr::new(opt, u(kw, "T_max", 0), f(kw, "eta_min", 0.0)).unwrap())
        }
        "SequentialLR" | "ChainedScheduler" => {
            let kids: Vec<Box<dyn LrScheduler>> = children
                .as_array()
                .unwrap()
                .iter()
                .map(|c| make(c[0].as_str().unwrap(), &c[1], &J::Null, opt))
                .collect();
            if cls == "SequentialLR" {
                let ms: Vec<usize> = floats(&kw["milestones"])
                    .iter()
                    .map(|m| *m as usize)
                    .collect();
                Box::new(SequentialLr::new(opt, kids, &ms).unwrap())
            } else {
                Box::new(ChainedScheduler::new(opt, kids).unwrap())
            }
        }
        other => panic!("scheduler {other}"),
    }
}

fn make_case(case: &J) -> (Box<dyn Optimizer>, Box<dyn LrScheduler>) {
    let mut opt = make_opt(case);
    let s = make(
        case["scheduler"].as_str().unwrap(),
        &case["kwargs"],
        &case["children"],
        opt.as_mut(),
    );
    (opt, s)
}

fn step(case: &J, s: &mut dyn LrScheduler, opt: &mut dyn Optimizer, i: usize) {
    match case["metrics"].as_array() {
        Some(m) => s.step_with_metric(opt, m[i - 1].as_f64().unwrap()),
        None => s.step(opt),
    }
    .unwrap()
}

fn bit_rows(j: &J) -> Vec<Vec<u64>> {
    j.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap())
                .collect()
        })
        .collect()
}

/// Every group's momentum (SGD) or beta1 (Adam), read from the optimizer's state dict.
fn momenta(opt: &dyn Optimizer) -> Vec<u64> {
    let sd = opt.state_dict().unwrap();
    sd.get("param_groups")
        .unwrap()
        .as_seq()
        .unwrap()
        .iter()
        .map(|g| {
            let m = match g.get("betas") {
                Some(b) => b.as_seq().unwrap()[0].as_f64().unwrap(),
                None => g.get("momentum").unwrap().as_f64().unwrap(),
            };
            m.to_bits()
        })
        .collect()
}

/// kiln's `Value` in the generator's description format.
fn describe(v: &Value) -> J {
    use serde_json::json;
    match v {
        Value::None => json!({"type": "None"}),
        Value::Bool(b) => json!({"type": "bool", "value": b}),
        Value::Int(i) => json!({"type": "int", "value": i}),
        Value::Float(x) => json!({"type": "float", "bits": x.to_bits()}),
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
        other => panic!("cannot describe {}", other.type_name()),
    }
}

/// The generator's description without the float values (kept: their bits).
fn strip(j: &J) -> J {
    match j {
        J::Object(m) => {
            let mut m = m.clone();
            if m["type"] == "float" {
                m.remove("value");
            }
            J::Object(m.into_iter().map(|(k, v)| (k, strip(&v))).collect())
        }
        J::Array(a) => J::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

/// A PyTorch value from its description.
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
        "float" => Value::Float(f64::from_bits(j["bits"].as_u64().unwrap())),
        "str" => Value::Str(j["value"].as_str().unwrap().to_string()),
        "list" => Value::List(items(j)),
        "tuple" => Value::Tuple(items(j)),
        "dict" => Value::Dict(Dict {
            entries: j["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|kv| (to_value(&kv[0]), to_value(&kv[1])))
                .collect(),
            ordered: false,
            metadata: None,
        }),
        other => panic!("unknown type {other}"),
    }
}

/// The first difference between two descriptions (keys, order, types, values, float bits).
fn diff(path: &str, kiln: &J, torch: &J) -> Option<String> {
    if kiln["type"] != torch["type"] {
        return Some(format!(
            "{path}: kiln {} torch {}",
            kiln["type"], torch["type"]
        ));
    }
    match (kiln.get("items"), torch.get("items")) {
        (Some(J::Array(a)), Some(J::Array(b))) => {
            if a.len() != b.len() {
                return Some(format!("{path}: kiln {} items, torch {}", a.len(), b.len()));
            }
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| {
                if x.is_array() {
                    let key = y[0]["value"].to_string();
                    diff(&format!("{path}.<key {i}>"), &x[0], &y[0])
                        .or_else(|| diff(&format!("{path}.{key}"), &x[1], &y[1]))
                } else {
                    diff(&format!("{path}[{i}]"), x, y)
                }
            })
        }
        _ => (kiln != torch).then(|| format!("{path}: kiln {kiln}, torch {torch}")),
    }
}

fn check_state(what: &str, s: &dyn LrScheduler, torch: &J, errs: &mut Vec<String>) {
    if let Some(d) = diff(what, &describe(&s.state_dict()), &strip(torch)) {
        errs.push(d);
    }
}

#[test]
fn fixture_records_the_torch_version() {
    let j = fixture();
    assert!(j["torch_version"].as_str().unwrap().starts_with("2.15"));
    assert_eq!(cases().len(), 28);
}

/// Rates and momenta after every step, bit for bit, and the state dicts after 12 and 40
/// steps (keys, order, Python types, float bits).
#[test]
fn lr_sequences_and_state_dicts_match_pytorch() {
    let mut errs = vec![];
    let mut report = vec![];
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let (mut opt, mut s) = make_case(&case);
        let lrs = bit_rows(&case["lrs_bits"]);
        let moms = bit_rows(&case["momentum_bits"]);
        let at = case["state_at"].as_u64().unwrap() as usize;
        let mut worst: f64 = 0.0;
        let mut exact = 0;
        let mut total = 0;
        for (i, (want, want_m)) in lrs.iter().zip(&moms).enumerate() {
            if i > 0 {
                step(&case, s.as_mut(), opt.as_mut(), i);
            }
            let got: Vec<u64> = s.get_last_lr().iter().map(|x| x.to_bits()).collect();
            for (g, w) in got.iter().zip(want) {
                let (g, w) = (f64::from_bits(*g), f64::from_bits(*w));
                worst = worst.max((g - w).abs() / w.abs().max(f64::MIN_POSITIVE));
                exact += (g.to_bits() == w.to_bits()) as usize;
                total += 1;
            }
            if got.len() != want.len() {
                errs.push(format!(
                    "{name}@{i}: {} rates, torch {}",
                    got.len(),
                    want.len()
                ));
            }
            if momenta(opt.as_ref()) != *want_m {
                errs.push(format!("{name}@{i}: momentum/beta1 differs from torch"));
            }
            if i == at {
                check_state(
                    &format!("{name}@{at}"),
                    s.as_ref(),
                    &case["state_dict_at"],
                    &mut errs,
                );
            }
        }
        check_state(name, s.as_ref(), &case["state_dict"], &mut errs);
        if exact != total {
            errs.push(format!(
                "{name}: {exact}/{total} rates bit-exact, max relative error {worst:e}"
            ));
        }
        report.push(format!(
            "{name:<28} {exact}/{total} bit-exact, max rel err {worst:.1e}"
        ));
    }
    println!("{}", report.join("\n"));
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

/// PyTorch's state after 12 steps loaded into a fresh kiln scheduler (the optimizer's rates
/// set to PyTorch's at that point, as its own state dict would) continues PyTorch's
/// sequence bit for bit; so does kiln's own state dict loaded into a third.
#[test]
fn pytorch_state_dicts_load_and_continue_the_sequence() {
    let mut errs = vec![];
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let lrs = bit_rows(&case["lrs_bits"]);
        let at = case["state_at"].as_u64().unwrap() as usize;
        let (mut opt, mut s) = make_case(&case);
        s.load_state_dict(&to_value(&case["state_dict_at"]))
            .unwrap();
        for (i, b) in lrs[at].iter().enumerate() {
            opt.set_lr(i, f64::from_bits(*b));
        }
        let (mut opt2, mut s2) = make_case(&case);
        s2.load_state_dict(&s.state_dict()).unwrap();
        opt2.load_state_dict(&opt.state_dict().unwrap()).unwrap();
        assert_eq!(
            describe(&s.state_dict()),
            describe(&s2.state_dict()),
            "{name}"
        );
        for (i, want) in lrs.iter().enumerate().skip(at + 1) {
            step(&case, s.as_mut(), opt.as_mut(), i);
            step(&case, s2.as_mut(), opt2.as_mut(), i);
            let got: Vec<u64> = s.get_last_lr().iter().map(|x| x.to_bits()).collect();
            let got2: Vec<u64> = s2.get_last_lr().iter().map(|x| x.to_bits()).collect();
            if got != *want || got2 != *want {
                errs.push(format!("{name}@{i}: resumed sequence differs from torch"));
                break;
            }
        }
        check_state(
            &format!("{name} resumed"),
            s.as_ref(),
            &case["state_dict"],
            &mut errs,
        );
    }
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

#[test]
fn plateau_refuses_a_plain_step_and_composites_refuse_plateau() {
    let case = &cases()[0];
    let mut opt = make_opt(case);
    let mut p = ReduceLrOnPlateau::new(opt.as_mut(), PlateauConfig::default()).unwrap();
    assert!(p.needs_metric());
    assert_eq!(p.step(opt.as_mut()).unwrap_err().code(), "K0003");
    let kids: Vec<Box<dyn LrScheduler>> = vec![Box::new(p)];
    assert_eq!(
        ChainedScheduler::new(opt.as_ref(), kids)
            .unwrap_err()
            .code(),
        "K0003"
    );
}

#[test]
fn onecycle_refuses_a_step_past_total_steps() {
    let case = &cases()[0];
    let mut opt = make_opt(case);
    let mut s = OneCycleLr::new(opt.as_mut(), &OneCycleConfig::new(0.1, 3)).unwrap();
    for _ in 0..3 {
        s.step(opt.as_mut()).unwrap();
    }
    assert_eq!(s.step(opt.as_mut()).unwrap_err().code(), "K0003");
}
