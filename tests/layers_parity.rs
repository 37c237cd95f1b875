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

use candle_core::{DType, Device, Tensor};
use common::layers::*;
use common::{get, state_dict};
use kiln::Module;
use kiln::nn::{
    BatchNorm1d, BatchNorm2d, BatchNormConfig, Elu, Embedding, Gelu, Hardsigmoid, Hardswish,
    LayerNorm, LayerNormConfig, LeakyReLU, LogSoftmax, Mish, ReLU6, SiLU, Sigmoid, Softmax,
    Softplus, Tanh, registry,
};
use serde_json::Value;

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
