//! Helpers shared by the parity tests: fixture loading and error measures.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub mod layers;
pub mod runs;

/// `tests/fixtures/nn`.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nn")
}

/// All tensors of a safetensors file.
pub fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A tensor of a fixture, by name.
pub fn get<'a>(t: &'a HashMap<String, Tensor>, key: &str) -> &'a Tensor {
    t.get(key)
        .unwrap_or_else(|| panic!("fixture has no tensor '{key}'"))
}

/// The tensors whose names start with `prefix`, with the prefix removed, as a kiln state dict
/// in sorted key order (loading matches by name, so the order does not matter).
pub fn state_dict(t: &HashMap<String, Tensor>, prefix: &str) -> kiln::StateDict {
    let mut keys: Vec<&String> = t.keys().filter(|k| k.starts_with(prefix)).collect();
    keys.sort();
    keys.into_iter()
        .map(|k| (k[prefix.len()..].to_string(), t[k].clone()))
        .collect()
}

/// Every element of `t` as f64, flattened.
pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .unwrap()
}

/// `max |a − b| / max |b|`: the error relative to the reference tensor's scale. Panics on a
/// shape mismatch.
pub fn rel_err(what: &str, kiln: &Tensor, torch: &Tensor) -> f64 {
    assert_eq!(kiln.dims(), torch.dims(), "{what}: shapes differ");
    let (a, b) = (values(kiln), values(torch));
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    if a.iter().any(|v| v.is_nan()) != b.iter().any(|v| v.is_nan()) {
        return f64::INFINITY;
    }
    diff / scale
}

/// Collects named errors, prints them and checks them against a tolerance.
#[derive(Default)]
pub struct Errors {
    items: Vec<(String, f64)>,
}

impl Errors {
    /// Compares and records.
    pub fn check(&mut self, what: impl Into<String>, kiln: &Tensor, torch: &Tensor) {
        let what = what.into();
        let e = rel_err(&what, kiln, torch);
        self.items.push((what, e));
    }

    /// Prints every error and the maximum; panics if any exceeds `tol`.
    pub fn assert_below(&self, case: &str, tol: f64) -> f64 {
        let max = self.items.iter().fold(0f64, |m, (_, e)| m.max(*e));
        println!(
            "{case}: max relative error {max:.3e} over {} tensors",
            self.items.len()
        );
        for (w, e) in &self.items {
            println!("  {w}: {e:.3e}");
        }
        let bad: Vec<&(String, f64)> = self
            .items
            .iter()
            .filter(|(_, e)| e.is_nan() || *e > tol)
            .collect();
        assert!(bad.is_empty(), "{case}: above {tol:e}: {bad:?}");
        max
    }
}

/// Checks the gradient of the input (`grad.input`) and of every named parameter
/// (`grad.<name>`) in `store` against the fixture.
pub fn check_grads(
    errs: &mut Errors,
    t: &HashMap<String, Tensor>,
    store: &candle_core::backprop::GradStore,
    input: &Tensor,
    module: &dyn kiln::Module,
) {
    let gi = store.get(input).expect("the input has no gradient");
    errs.check("grad.input", gi, get(t, "grad.input"));
    for (name, p) in module.named_parameters() {
        let g = p
            .grad(store)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        errs.check(format!("grad.{name}"), &g, get(t, &format!("grad.{name}")));
    }
}

/// Checks the module's whole state dict against the fixture's `after.<key>` tensors; integer
/// tensors (`num_batches_tracked`) must be equal.
pub fn check_state_after(
    errs: &mut Errors,
    t: &HashMap<String, Tensor>,
    module: &dyn kiln::Module,
) {
    for (k, v) in module.state_dict().iter() {
        let want = get(t, &format!("after.{k}"));
        if v.dtype() == DType::I64 {
            let (a, b): (i64, i64) = (v.to_scalar().unwrap(), want.to_scalar().unwrap());
            assert_eq!(a, b, "after.{k}");
        } else {
            errs.check(format!("after.{k}"), v, want);
        }
    }
}
