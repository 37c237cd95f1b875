//! Parity with real PyTorch for the layers of issue 13 (BatchNorm1d/2d, LayerNorm, Embedding,
//! GELU) and the activations of issue 14, against fixtures made by
//! `scripts/gen_layer_fixtures.py` (the torch version is in
//! `tests/fixtures/layers/manifest.json`).
//!
//! Same initial state, same input → the output, the gradient of `sum(output * upstream)`
//! w.r.t. the input and every parameter, the state after the forward (BatchNorm running
//! statistics, `num_batches_tracked`) and BatchNorm's eval-mode output must agree element by
//! element within `|kiln − torch| ≤ ATOL + RTOL·|torch|` (f32: 1e-5 + 1e-5·|torch|); the
//! state-dict keys, shapes and dtypes and the printed form must equal PyTorch's.
//! Run with `--nocapture` to see the measured errors.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::{get, load, state_dict};
use kiln::Module;
use kiln::nn::{
    BatchNorm1d, BatchNorm2d, BatchNormConfig, Elu, Embedding, Gelu, Hardsigmoid, Hardswish,
    LayerNorm, LayerNormConfig, LeakyReLU, LogSoftmax, Mish, ReLU6, SiLU, Sigmoid, Softmax,
    Softplus, Tanh, registry,
};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// Absolute tolerance (f32 fixtures).
const ATOL: f64 = 1e-5;
/// Relative tolerance, on top of [`ATOL`].
const RTOL: f64 = 1e-5;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layers")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn config(case: &str) -> Value {
    let c = manifest()["cases"][case].clone();
    assert!(!c.is_null(), "manifest has no case {case}");
    c
}

fn fixture(case: &str) -> HashMap<String, Tensor> {
    load(&dir().join(format!("{case}.safetensors")))
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .unwrap()
}

/// Element-wise comparisons of one case: the worst `|Δ|` of each tensor and whether every
/// element is within `ATOL + RTOL·|torch|`.
#[derive(Default)]
struct Cmp {
    items: Vec<(String, f64, bool)>,
}

impl Cmp {
    fn check(&mut self, what: impl Into<String>, kiln: &Tensor, torch: &Tensor) {
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

    fn finish(&self, case: &str) {
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
fn check_state_keys(case: &str, module: &dyn Module) {
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
fn check_repr(case: &str, module: &dyn Module) {
    let want = config(case)["repr"].as_str().unwrap().to_string();
    let want = if module.type_name().starts_with("BatchNorm") {
        want.replace(", bias=True", "").replace(", bias=False", "")
    } else {
        want
    };
    assert_eq!(module.repr(), want, "{case}: printed form");
}

/// Runs the case on `module` (initial state loaded from the fixture) and compares everything.
fn check_layer(case: &str, module: &dyn Module) {
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

fn f(c: &Value, key: &str) -> f64 {
    c[key]
        .as_f64()
        .unwrap_or_else(|| panic!("manifest: {key} missing"))
}

fn u(c: &Value, key: &str) -> usize {
    c[key]
        .as_u64()
        .unwrap_or_else(|| panic!("manifest: {key} missing")) as usize
}

fn bn_config(c: &Value) -> BatchNormConfig {
    BatchNormConfig {
        eps: f(c, "eps"),
        momentum: c["momentum"].as_f64(),
        affine: c["affine"] == true,
        track_running_stats: c["track_running_stats"] == true,
    }
}

/// The kiln module for a case, built with the public constructors from the manifest.
fn build(case: &str) -> Box<dyn Module> {
    let c = config(case);
    let kind = c["kind"].as_str().unwrap();
    match kind {
        "batchnorm1d" => Box::new(BatchNorm1d::with(u(&c, "num_features"), bn_config(&c)).unwrap()),
        "batchnorm2d" => Box::new(BatchNorm2d::with(u(&c, "num_features"), bn_config(&c)).unwrap()),
        "layernorm" => {
            let shape: Vec<usize> = c["normalized_shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let cfg = LayerNormConfig {
                eps: f(&c, "eps"),
                elementwise_affine: c["elementwise_affine"] == true,
                bias: c["bias"] == true,
            };
            Box::new(LayerNorm::with(&shape, cfg).unwrap())
        }
        "embedding" => Box::new(
            Embedding::with_padding(
                u(&c, "num_embeddings"),
                u(&c, "embedding_dim"),
                c["padding_idx"].as_i64(),
            )
            .unwrap(),
        ),
        "gelu" => Box::new(Gelu::new(c["approximate"].as_str().unwrap()).unwrap()),
        "SiLU" => Box::new(SiLU::new()),
        "Sigmoid" => Box::new(Sigmoid),
        "Tanh" => Box::new(Tanh),
        "LeakyReLU" => Box::new(LeakyReLU {
            negative_slope: f(&c, "negative_slope"),
            inplace: c["inplace"] == true,
        }),
        "ELU" => Box::new(Elu::new(f(&c, "alpha"))),
        "Hardswish" => Box::new(Hardswish::new()),
        "Hardsigmoid" => Box::new(Hardsigmoid::new()),
        "Mish" => Box::new(Mish::new()),
        "Softplus" => Box::new(Softplus::new(f(&c, "beta"), f(&c, "threshold")).unwrap()),
        "ReLU6" => Box::new(ReLU6::new()),
        "Softmax" => Box::new(Softmax::new(c["dim"].as_i64().unwrap() as isize)),
        "LogSoftmax" => Box::new(LogSoftmax::new(c["dim"].as_i64().unwrap() as isize)),
        other => panic!("{case}: unknown kind {other}"),
    }
}

fn run(case: &str) {
    let m = build(case);
    check_layer(case, m.as_ref());
    // The spec rebuilds an equal module (same type, printed form and state-dict layout).
    let rebuilt = registry::build(&m.spec()).unwrap();
    assert_eq!(rebuilt.type_name(), m.type_name(), "{case}: rebuilt type");
    assert_eq!(rebuilt.repr(), m.repr(), "{case}: rebuilt repr");
    check_state_keys(case, rebuilt.as_ref());
}

fn cases_with_prefix(prefix: &str) -> Vec<String> {
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

// ------------------------------------------------------------------------------ BatchNorm

#[test]
fn batchnorm2d_train_updates_running_stats_like_torch() {
    run("bn2d_train");
}

#[test]
fn batchnorm2d_eval_uses_running_stats() {
    run("bn2d_eval");
}

#[test]
fn batchnorm2d_cumulative_average_without_affine() {
    run("bn2d_momentum_none_no_affine");
}

#[test]
fn batchnorm1d_train_on_2d_and_3d_inputs() {
    run("bn1d_train_2d");
    run("bn1d_train_3d");
}

#[test]
fn batchnorm1d_eval_on_3d_input() {
    run("bn1d_eval_3d");
}

#[test]
fn batchnorm1d_without_running_stats_uses_batch_stats_in_eval() {
    run("bn1d_no_running_stats");
}

#[test]
fn batchnorm_named_types_init_and_errors() {
    let bn = BatchNorm2d::new(3).unwrap();
    let sd = bn.state_dict();
    assert_eq!(values(sd.get("weight").unwrap()), vec![1.0; 3]);
    assert_eq!(values(sd.get("bias").unwrap()), vec![0.0; 3]);
    assert_eq!(values(sd.get("running_var").unwrap()), vec![1.0; 3]);
    let x = Tensor::zeros((2, 4, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let e = bn.forward(&x).unwrap_err();
    assert_eq!(e.code(), "K0201");
    assert!(
        e.to_string()
            .starts_with("BatchNorm2d(3, eps=1e-05, momentum=0.1"),
        "{e}"
    );
    let x = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(bn.forward(&x).unwrap_err().code(), "K0203");
    let x = Tensor::zeros((2, 3, 2, 2), DType::F64, &Device::Cpu).unwrap();
    assert_eq!(bn.forward(&x).unwrap_err().code(), "K0302");
    let one = Tensor::zeros((1, 3), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        BatchNorm1d::new(3)
            .unwrap()
            .forward(&one)
            .unwrap_err()
            .code(),
        "K0204"
    );
}

// ------------------------------------------------------------------------------ LayerNorm

#[test]
fn layernorm_over_last_dim() {
    run("layernorm_last_dim");
}

#[test]
fn layernorm_over_two_trailing_dims() {
    run("layernorm_two_dims");
}

#[test]
fn layernorm_without_bias_and_custom_eps() {
    run("layernorm_no_bias_eps");
}

#[test]
fn layernorm_without_affine() {
    run("layernorm_no_affine");
}

#[test]
fn layernorm_init_and_wrong_trailing_shape() {
    let ln = LayerNorm::new(&[4, 6]).unwrap();
    let sd = ln.state_dict();
    assert_eq!(values(sd.get("weight").unwrap()), vec![1.0; 24]);
    assert_eq!(values(sd.get("bias").unwrap()), vec![0.0; 24]);
    let x = Tensor::zeros((3, 4, 5), DType::F32, &Device::Cpu).unwrap();
    let e = ln.forward(&x).unwrap_err();
    assert_eq!(e.code(), "K0208");
    let m = e.to_string();
    assert!(
        m.starts_with("LayerNorm((4, 6), eps=1e-05")
            && m.contains("normalized_shape=[4, 6]")
            && m.contains("[*, 4, 6]")
            && m.contains("[3, 4, 5]"),
        "{m}"
    );
    let x = Tensor::zeros(6, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(ln.forward(&x).unwrap_err().code(), "K0208");
    let x = Tensor::zeros((2, 4, 6), DType::F64, &Device::Cpu).unwrap();
    assert_eq!(ln.forward(&x).unwrap_err().code(), "K0302");
    assert_eq!(LayerNorm::new(&[]).err().unwrap().code(), "K0003");
}

// ------------------------------------------------------------------------------ Embedding

#[test]
fn embedding_padding_idx_row_gets_no_gradient() {
    run("embedding_padding_idx");
    // Beyond parity: the padding row's gradient is exactly zero although id 2 occurs.
    let t = fixture("embedding_padding_idx");
    let emb = Embedding::with_padding(10, 4, Some(2)).unwrap();
    emb.load_state_dict(&state_dict(&t, "param."), true)
        .unwrap();
    let out = emb.forward(get(&t, "ids")).unwrap();
    let loss = (&out * get(&t, "upstream")).unwrap().sum_all().unwrap();
    let g = emb.weight().grad(&loss.backward().unwrap()).unwrap();
    assert_eq!(values(&g.get(2).unwrap()), vec![0.0; 4]);
    assert!(values(&g.get(1).unwrap()).iter().any(|v| *v != 0.0));
}

#[test]
fn embedding_1d_ids() {
    run("embedding_1d_ids");
}

#[test]
fn embedding_negative_padding_idx_counts_from_the_end() {
    run("embedding_negative_padding_idx");
    assert_eq!(
        Embedding::with_padding(6, 2, Some(-1))
            .unwrap()
            .padding_idx(),
        Some(5)
    );
}

#[test]
fn embedding_accepts_every_integer_id_dtype() {
    let t = fixture("embedding_1d_ids");
    let emb = Embedding::new(7, 3).unwrap();
    emb.load_state_dict(&state_dict(&t, "param."), true)
        .unwrap();
    let ids = get(&t, "ids");
    let want = values(get(&t, "output"));
    for dt in [DType::I64, DType::U32, DType::I32, DType::U8] {
        let got = emb.forward(&ids.to_dtype(dt).unwrap()).unwrap();
        assert_eq!(values(&got), want, "{dt:?}");
    }
}

#[test]
fn embedding_out_of_range_and_float_ids_are_coded_errors() {
    let emb = Embedding::new(5, 2).unwrap();
    let ids = Tensor::new(&[[0i64, 4], [5, 1]], &Device::Cpu).unwrap();
    let e = emb.forward(&ids).unwrap_err();
    assert_eq!(e.code(), "K0209");
    let m = e.to_string();
    assert!(
        m.starts_with("Embedding(5, 2)")
            && m.contains("id 5")
            && m.contains("num_embeddings=5")
            && m.contains("position 2"),
        "{m}"
    );
    let neg = Tensor::new(&[-1i64, 0], &Device::Cpu).unwrap();
    let e = emb.forward(&neg).unwrap_err();
    assert_eq!(e.code(), "K0209");
    assert!(e.to_string().contains("id -1"), "{e}");
    let ids = Tensor::new(&[0f32, 1.], &Device::Cpu).unwrap();
    assert_eq!(emb.forward(&ids).unwrap_err().code(), "K0210");
    assert_eq!(
        Embedding::with_padding(5, 2, Some(5)).err().unwrap().code(),
        "K0003"
    );
}

#[test]
fn embedding_init_is_seeded_standard_normal_with_zero_padding_row() {
    kiln::rng::manual_seed(11);
    let a = Embedding::with_padding(200, 50, Some(3)).unwrap();
    kiln::rng::manual_seed(11);
    let b = Embedding::with_padding(200, 50, Some(3)).unwrap();
    let (wa, wb) = (a.weight().detached(), b.weight().detached());
    assert_eq!(values(&wa), values(&wb));
    assert_eq!(values(&wa.get(3).unwrap()), vec![0.0; 50]);
    let v = values(&wa);
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    assert!(
        mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
        "{mean} {var}"
    );
}

// ------------------------------------------------------------------------------ GELU

#[test]
fn gelu_exact_erf() {
    run("gelu_none");
}

#[test]
fn gelu_tanh_approximation() {
    run("gelu_tanh");
}

#[test]
fn functional_gelu_matches_the_module() {
    let t = fixture("gelu_tanh");
    let y = kiln::nn::functional::gelu(
        get(&t, "input"),
        kiln::nn::functional::GeluApproximate::Tanh,
    )
    .unwrap();
    let mut cmp = Cmp::default();
    cmp.check("output", &y, get(&t, "output"));
    cmp.finish("functional gelu tanh");
}

// ------------------------------------------------------------------------------ activations

#[test]
fn activations_forward_and_input_gradient() {
    for case in cases_with_prefix("act_") {
        run(&case);
    }
}

#[test]
fn layers_are_plain_send_sync_fields() {
    fn assert_field<T: Module + Send + Sync + 'static>() {}
    assert_field::<BatchNorm1d>();
    assert_field::<BatchNorm2d>();
    assert_field::<LayerNorm>();
    assert_field::<Embedding>();
    assert_field::<Gelu>();
    assert_field::<SiLU>();
    assert_field::<Softmax>();
}
