//! Parity with real PyTorch for the losses of issue 14 (cross-entropy with weight,
//! ignore_index, label smoothing and probability targets; NLL; binary cross-entropy on
//! probabilities and logits; MSE, L1, smooth L1, Huber, KL divergence), against fixtures made
//! by `scripts/gen_layer_fixtures.py` (torch version in `tests/fixtures/layers/manifest.json`).
//!
//! For each case: the loss for the manifest's configuration and the gradient of
//! `sum(loss * upstream)` w.r.t. the input must agree element by element within
//! `|kiln − torch| ≤ 1e-5 + 1e-5·|torch|` (f32). The embedding/ranking losses (cosine
//! embedding, margin ranking, triplet margin) compare the gradient of every input.

mod common;

use candle_core::{DType, Tensor, Var};
use common::{get, load};
use kiln::nn::loss::{
    CosineEmbeddingLoss, CrossEntropyLoss, MarginRankingLoss, NllLoss, Reduction,
    TripletMarginLoss, binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,
    huber_loss, kl_div, l1_loss, mse_loss_with, smooth_l1_loss,
};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-5;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layers")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .unwrap()
}

fn close(case: &str, what: &str, kiln: &Tensor, torch: &Tensor) -> f64 {
    assert_eq!(kiln.dims(), torch.dims(), "{case} {what}: shapes differ");
    let mut worst = 0f64;
    for (i, (a, b)) in values(kiln).iter().zip(values(torch)).enumerate() {
        let d = (a - b).abs();
        worst = worst.max(d);
        assert!(
            d <= ATOL + RTOL * b.abs(),
            "{case} {what}[{i}]: kiln {a} torch {b} (|Δ| {d:e})"
        );
    }
    worst
}

/// Computes the loss the manifest describes with kiln's public API.
fn kiln_loss(c: &Value, t: &HashMap<String, Tensor>, x: &Tensor) -> Tensor {
    let target = get(t, "target");
    let reduction = Reduction::parse(c["reduction"].as_str().unwrap()).unwrap();
    let weight = t.get("weight");
    match c["kind"].as_str().unwrap() {
        "cross_entropy" => {
            let mut l = CrossEntropyLoss::new().reduction(reduction);
            if let Some(w) = weight {
                l = l.weight(w.clone());
            }
            if let Some(i) = c["ignore_index"].as_i64() {
                l = l.ignore_index(i);
            }
            if let Some(e) = c["label_smoothing"].as_f64() {
                l = l.label_smoothing(e);
            }
            l.forward(x, target).unwrap()
        }
        "nll_loss" => NllLoss {
            weight: weight.cloned(),
            ignore_index: c["ignore_index"].as_i64().unwrap_or(-100),
            reduction,
        }
        .forward(x, target)
        .unwrap(),
        "binary_cross_entropy" => binary_cross_entropy(x, target, weight, reduction).unwrap(),
        "binary_cross_entropy_with_logits" => {
            binary_cross_entropy_with_logits(x, target, weight, t.get("pos_weight"), reduction)
                .unwrap()
        }
        "mse_loss" => mse_loss_with(x, target, reduction).unwrap(),
        "l1_loss" => l1_loss(x, target, reduction).unwrap(),
        "smooth_l1_loss" => {
            smooth_l1_loss(x, target, c["beta"].as_f64().unwrap(), reduction).unwrap()
        }
        "huber_loss" => huber_loss(x, target, c["delta"].as_f64().unwrap(), reduction).unwrap(),
        "kl_div" => kl_div(x, target, reduction, c["log_target"] == true).unwrap(),
        other => panic!("unknown loss kind {other}"),
    }
}

fn run(prefix: &str) {
    let m = manifest();
    let mut n = 0;
    for (case, c) in m["cases"].as_object().unwrap() {
        if !case.starts_with(prefix) {
            continue;
        }
        n += 1;
        let t = load(&dir().join(format!("{case}.safetensors")));
        let x = Var::from_tensor(get(&t, "input")).unwrap();
        let out = kiln_loss(c, &t, x.as_tensor());
        let e1 = close(case, "output", &out, get(&t, "output"));
        let loss = (&out * get(&t, "upstream")).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let gx = g.get(x.as_tensor()).expect("no input gradient");
        let e2 = close(case, "grad.input", gx, get(&t, "grad.input"));
        println!("{case}: output |Δ| {e1:.2e}, grad.input |Δ| {e2:.2e}");
    }
    assert!(n > 0, "no case starts with {prefix}");
}

#[test]
fn cross_entropy_reductions_weight_ignore_index_smoothing_and_probabilities() {
    run("ce_");
}

#[test]
fn nll_loss_with_weight_and_ignore_index() {
    run("nll_");
}

#[test]
fn binary_cross_entropy_on_probabilities_and_logits() {
    run("bce_");
}

#[test]
fn regression_losses() {
    run("mse_");
    run("l1_");
    run("smooth_l1_");
    run("huber_");
}

#[test]
fn kl_div_reductions_and_log_target() {
    run("kl_div_");
}

#[test]
fn the_old_cross_entropy_function_agrees_with_the_options_struct() {
    let t = load(&dir().join("ce_mean.safetensors"));
    let (x, y) = (get(&t, "input"), get(&t, "target"));
    let a = cross_entropy(x, y).unwrap();
    let b = CrossEntropyLoss::new().forward(x, y).unwrap();
    close("ce_mean", "old vs new", &a, &b);
    close("ce_mean", "old vs torch", &a, get(&t, "output"));
}

#[test]
fn loss_errors_are_coded() {
    let dev = candle_core::Device::Cpu;
    let x = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
    let bad = Tensor::new(&[0i64, 3], &dev).unwrap();
    let e = CrossEntropyLoss::new().forward(&x, &bad).unwrap_err();
    assert_eq!(e.code(), "K0205");
    let ignored = Tensor::new(&[0i64, -100], &dev).unwrap();
    assert!(CrossEntropyLoss::new().forward(&x, &ignored).is_ok());
    let w = Tensor::ones(4, DType::F32, &dev).unwrap();
    let e = CrossEntropyLoss::new()
        .weight(w)
        .forward(&x, &ignored)
        .unwrap_err();
    assert_eq!(e.code(), "K0206");
    let e = CrossEntropyLoss::new()
        .label_smoothing(1.5)
        .forward(&x, &ignored)
        .unwrap_err();
    assert_eq!(e.code(), "K0003");
    let y = Tensor::zeros((2, 4), DType::F32, &dev).unwrap();
    assert_eq!(
        mse_loss_with(&x, &y, Reduction::Mean).unwrap_err().code(),
        "K0206"
    );
    assert_eq!(
        l1_loss(&x, &x, Reduction::BatchMean).unwrap_err().code(),
        "K0003"
    );
    assert_eq!(Reduction::parse("avg").unwrap_err().code(), "K0003");
}

/// The embedding/ranking losses through their option structs (as `nn.*Loss` modules).
fn kiln_multi_loss(c: &Value, t: &HashMap<String, Tensor>, xs: &[Tensor]) -> Tensor {
    let reduction = Reduction::parse(c["reduction"].as_str().unwrap()).unwrap();
    let margin = c["margin"].as_f64().unwrap();
    match c["kind"].as_str().unwrap() {
        "cosine_embedding_loss" => CosineEmbeddingLoss::new(margin)
            .reduction(reduction)
            .forward(&xs[0], &xs[1], get(t, "target"))
            .unwrap(),
        "margin_ranking_loss" => MarginRankingLoss::new(margin)
            .reduction(reduction)
            .forward(&xs[0], &xs[1], get(t, "target"))
            .unwrap(),
        "triplet_margin_loss" => TripletMarginLoss {
            margin,
            p: c["p"].as_f64().unwrap(),
            eps: c["eps"].as_f64().unwrap(),
            swap: c["swap"] == true,
            reduction,
        }
        .forward(&xs[0], &xs[1], &xs[2])
        .unwrap(),
        other => panic!("unknown loss kind {other}"),
    }
}

fn run_multi(prefix: &str) {
    let m = manifest();
    let mut n = 0;
    for (case, c) in m["cases"].as_object().unwrap() {
        if !case.starts_with(prefix) {
            continue;
        }
        n += 1;
        let t = load(&dir().join(format!("{case}.safetensors")));
        let names: Vec<&str> = c["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let vars: Vec<Var> = names
            .iter()
            .map(|k| Var::from_tensor(get(&t, k)).unwrap())
            .collect();
        let xs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = kiln_multi_loss(c, &t, &xs);
        let mut report = format!(
            "output |Δ| {:.2e}",
            close(case, "output", &out, get(&t, "output"))
        );
        let loss = (&out * get(&t, "upstream")).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        for (k, v) in names.iter().zip(&vars) {
            let gk = g.get(v.as_tensor()).expect("no input gradient");
            let e = close(
                case,
                &format!("grad.{k}"),
                gk,
                get(&t, &format!("grad.{k}")),
            );
            report.push_str(&format!(", grad.{k} |Δ| {e:.2e}"));
        }
        println!("{case}: {report}");
    }
    assert!(n > 0, "no case starts with {prefix}");
}

#[test]
fn cosine_embedding_loss_reductions_margin_and_1d() {
    run_multi("cosine_embedding_");
}

#[test]
fn margin_ranking_loss_reductions() {
    run_multi("margin_ranking_");
}

#[test]
fn triplet_margin_loss_reductions_swap_and_p() {
    run_multi("triplet_");
}

#[test]
fn ranking_loss_shape_errors_are_coded() {
    let dev = candle_core::Device::Cpu;
    let a = Tensor::zeros((3, 4), DType::F32, &dev).unwrap();
    let b = Tensor::zeros((3, 5), DType::F32, &dev).unwrap();
    let y = Tensor::ones(3, DType::F32, &dev).unwrap();
    let e = CosineEmbeddingLoss::default()
        .forward(&a, &b, &y)
        .unwrap_err();
    assert_eq!(e.code(), "K0206");
    let e = MarginRankingLoss::default()
        .forward(&a, &a, &y)
        .unwrap_err();
    assert_eq!(e.code(), "K0206");
    let e = TripletMarginLoss::default()
        .forward(&a, &a, &b)
        .unwrap_err();
    assert!(e.to_string().contains("[3, 5]"), "{e}");
}
