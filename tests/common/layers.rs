//! The harness of the layer parity tests (`tests/layers_parity*.rs`): fixtures made by
//! `scripts/gen_layer_fixtures.py` in `tests/fixtures/layers`, element-wise comparison within
//! `ATOL + RTOL·|torch|`, state-dict key and printed-form checks.

use super::{get, state_dict};
use candle_core::{DType, Tensor, Var};
use kiln::Module;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// Absolute tolerance (f32 fixtures).
pub const ATOL: f64 = 1e-5;
/// Relative tolerance, on top of [`ATOL`].
pub const RTOL: f64 = 1e-5;

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layers")
}

pub fn manifest() -> Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn config(case: &str) -> Value {
    let c = manifest()["cases"][case].clone();
    assert!(!c.is_null(), "manifest has no case {case}");
    c
}

pub fn fixture(case: &str) -> HashMap<String, Tensor> {
    super::load(&dir().join(format!("{case}.safetensors")))
}

pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .unwrap()
}

/// Element-wise comparisons of one case: the worst `|Δ|` of each tensor and whether every
/// element is within `ATOL + RTOL·|torch|`.
#[derive(Default)]
pub struct Cmp {
    pub items: Vec<(String, f64, bool)>,
}

impl Cmp {
    pub fn check(&mut self, what: impl Into<String>, kiln: &Tensor, torch: &Tensor) {
        let what = what.into();
        assert_eq!(kiln.dims(), torch.dims(), "{what}: shapes differ");
        let (a, b) = (values(kiln), values(torch));
        let mut worst = 0f64;
        let mut ok = true;
        for (x, y) in a.iter().zip(&b) {
            if x.is_nan() || y.is_nan() {
                ok &= x.is_nan() && y.is_nan();
                continue;
            }
            if x == y {
                continue; // equal infinities
            }
            let d = (x - y).abs();
            worst = worst.max(d);
            ok &= d <= ATOL + RTOL * y.abs();
        }
        self.items.push((what, worst, ok));
    }

    pub fn finish(&self, case: &str) {
        println!("{case}:");
        for (w, e, ok) in &self.items {
            println!("  {w}: max |Δ| {e:.3e}{}", if *ok { "" } else { "  FAIL" });
        }
        let bad: Vec<&String> = self
            .items
            .iter()
            .filter(|(_, _, ok)| !ok)
            .map(|(w, _, _)| w)
            .collect();
        assert!(
            bad.is_empty(),
            "{case}: beyond {ATOL:e} + {RTOL:e}·|torch|: {bad:?}"
        );
    }
}

/// The module's state-dict keys, shapes and dtypes must be PyTorch's, in PyTorch's order.
pub fn check_state_keys(case: &str, module: &dyn Module) {
    let want: Vec<(String, Vec<usize>, String)> = config(case)["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let shape = e[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (
                e[0].as_str().unwrap().to_string(),
                shape,
                e[2].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let sd = module.state_dict();
    let got: Vec<(String, Vec<usize>, String)> = sd
        .iter()
        .map(|(k, v)| {
            let dt = match v.dtype() {
                DType::F32 => "f32",
                DType::F64 => "f64",
                DType::I64 => "i64",
                other => panic!("{k}: unexpected dtype {other:?}"),
            };
            (k.to_string(), v.dims().to_vec(), dt.to_string())
        })
        .collect();
    assert_eq!(
        got, want,
        "{case}: state_dict keys/shapes/dtypes differ from PyTorch's"
    );
}

/// The printed form must be PyTorch's. torch ≥ 2.6 prints BatchNorm's keyword-only `bias`
/// option, which kiln does not have (it is always the same as `affine`).
pub fn check_repr(case: &str, module: &dyn Module) {
    let want = config(case)["repr"].as_str().unwrap().to_string();
    let want = if module.type_name().starts_with("BatchNorm") {
        want.replace(", bias=True", "").replace(", bias=False", "")
    } else {
        want
    };
    assert_eq!(module.repr(), want, "{case}: printed form");
}

/// Runs the case on `module` (initial state loaded from the fixture) and compares everything.
pub fn check_layer(case: &str, module: &dyn Module) {
    let t = fixture(case);
    let c = config(case);
    let sd = state_dict(&t, "param.");
    if !sd.is_empty() {
        module.load_state_dict(&sd, true).unwrap();
    }
    check_state_keys(case, module);
    check_repr(case, module);
    module.train(c["mode"] == "train");
    let mut cmp = Cmp::default();
    let input = t.get("input").map(|x| Var::from_tensor(x).unwrap());
    let x = match &input {
        Some(v) => v.as_tensor().clone(),
        None => get(&t, "ids").clone(),
    };
    let out = module.forward(&x).unwrap();
    cmp.check("output", &out, get(&t, "output"));
    let loss = (&out * get(&t, "upstream")).unwrap().sum_all().unwrap();
    let store = loss.backward().unwrap();
    if let Some(v) = &input {
        let g = store.get(v.as_tensor()).expect("the input has no gradient");
        cmp.check("grad.input", g, get(&t, "grad.input"));
    }
    for (name, p) in module.named_parameters() {
        let g = p
            .grad(&store)
            .unwrap_or_else(|| panic!("{case}: no gradient for {name}"));
        cmp.check(format!("grad.{name}"), &g, get(&t, &format!("grad.{name}")));
    }
    for (k, v) in module.state_dict().iter() {
        let want = get(&t, &format!("after.{k}"));
        if v.dtype() == DType::I64 {
            assert_eq!(values(v), values(want), "{case}: after.{k}");
        } else {
            cmp.check(format!("after.{k}"), v, want);
        }
    }
    if let Some(want) = t.get("eval_output") {
        module.eval();
        cmp.check("eval_output", &module.forward(&x).unwrap(), want);
    }
    cmp.finish(case);
}

pub fn f(c: &Value, key: &str) -> f64 {
    c[key]
        .as_f64()
        .unwrap_or_else(|| panic!("manifest: {key} missing"))
}

pub fn u(c: &Value, key: &str) -> usize {
    c[key]
        .as_u64()
        .unwrap_or_else(|| panic!("manifest: {key} missing")) as usize
}

pub fn cases_with_prefix(prefix: &str) -> Vec<String> {
    let m = manifest();
    let cases = m["cases"].as_object().unwrap();
    let v: Vec<String> = cases
        .keys()
        .filter(|k| k.starts_with(prefix))
        .cloned()
        .collect();
    assert!(!v.is_empty(), "no fixture case starts with {prefix}");
    v
}
