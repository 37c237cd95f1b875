//! Parity with real PyTorch: kiln's layers, losses and models against fixtures made by
//! `scripts/gen_nn_fixtures.py` with torch (the version is in `tests/fixtures/nn/manifest.json`).
//! Same initial weights, same inputs → outputs, gradients of every parameter and of the input,
//! and buffers after a training step must agree within 1e-5 relative (`max|Δ| / max|torch|`).
//! Run with `--nocapture` to see the measured errors.

mod common;

use candle_core::{DType, Tensor, Var};
use common::{Errors, check_grads, check_state_after, fixture_dir, get, load, state_dict};
use kiln::Module;
use kiln::models::{LeNet, LeNetConfig, Mlp, MlpConfig, ResNet, ResNetConfig};
use kiln::nn::layers::{BatchNormKind, Conv2dConfig};
use kiln::nn::loss::{cross_entropy, mse_loss};
use kiln::nn::{AdaptiveAvgPool2d, AvgPool2d, BatchNorm, Conv2d, MaxPool2d};
use std::collections::HashMap;

const TOL: f64 = 1e-5;

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture_dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn config(case: &str) -> serde_json::Value {
    manifest()["cases"][case].clone()
}

fn usize_of(v: &serde_json::Value, key: &str) -> usize {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("manifest: {key} missing")) as usize
}

fn fixture(case: &str) -> HashMap<String, Tensor> {
    load(&fixture_dir().join(format!("{case}.safetensors")))
}

/// Runs `module` on the fixture's input in the fixture's mode, backpropagates
/// `sum(out * upstream)`, and compares output, every gradient, buffers after and (for
/// BatchNorm) the eval-mode output.
fn check_layer(case: &str, module: &dyn Module) -> f64 {
    let t = fixture(case);
    let sd = state_dict(&t, "param.");
    if !sd.is_empty() {
        module.load_state_dict(&sd, true).unwrap();
    }
    let train = config(case)["mode"] == "train";
    module.train(train);
    let x = Var::from_tensor(get(&t, "input")).unwrap();
    let out = module.forward(x.as_tensor()).unwrap();
    let mut errs = Errors::default();
    errs.check("output", &out, get(&t, "output"));
    let loss = (&out * get(&t, "upstream")).unwrap().sum_all().unwrap();
    let store = loss.backward().unwrap();
    check_grads(&mut errs, &t, &store, x.as_tensor(), module);
    check_state_after(&mut errs, &t, module);
    if let Some(want) = t.get("eval_output") {
        module.eval();
        let y = module.forward(get(&t, "input")).unwrap();
        errs.check("eval_output", &y, want);
    }
    errs.assert_below(case, TOL)
}

fn conv(case: &str) -> f64 {
    let c = config(case);
    let t = fixture(case);
    let cfg = Conv2dConfig {
        padding: usize_of(&c, "padding"),
        stride: usize_of(&c, "stride"),
        dilation: usize_of(&c, "dilation"),
        groups: usize_of(&c, "groups"),
        bias: c["bias"] == true,
    };
    let bias = cfg.bias.then(|| get(&t, "param.bias").clone());
    let m = Conv2d::from_tensors(get(&t, "param.weight").clone(), bias, cfg).unwrap();
    check_layer(case, &m)
}

#[test]
fn conv2d_stride_padding() {
    conv("conv_stride2_pad1");
}

#[test]
fn conv2d_groups_without_bias() {
    conv("conv_groups2_nobias");
}

#[test]
fn conv2d_depthwise_stride() {
    conv("conv_depthwise_stride2");
}

#[test]
fn conv2d_dilation() {
    conv("conv_dilation2_pad2");
}

#[test]
fn conv2d_pointwise_stride_without_bias() {
    conv("conv_1x1_stride2_nobias");
}

#[test]
fn conv2d_stride_on_even_input_leaves_uncovered_pixels_without_gradient() {
    conv("conv_stride2_pad1_even_input");
    conv("conv_1x1_stride2_even_input");
}

fn batchnorm(case: &str, kind: BatchNormKind) -> f64 {
    let c = config(case);
    let m = BatchNorm::new(
        kind,
        usize_of(&c, "num_features"),
        1e-5,
        c["momentum"].as_f64(),
        true,
        true,
    )
    .unwrap();
    check_layer(case, &m)
}

#[test]
fn batchnorm2d_train_output_grads_and_running_stats() {
    batchnorm("bn2d_train", BatchNormKind::TwoD);
}

#[test]
fn batchnorm2d_eval_uses_running_stats() {
    batchnorm("bn2d_eval", BatchNormKind::TwoD);
}

#[test]
fn batchnorm1d_train_on_2d_input() {
    batchnorm("bn1d_train_2d", BatchNormKind::OneD);
}

#[test]
fn batchnorm1d_train_on_3d_input_with_momentum() {
    batchnorm("bn1d_train_3d", BatchNormKind::OneD);
}

#[test]
fn batchnorm_momentum_none_is_a_cumulative_average() {
    let case = "bn2d_cumulative";
    let t = fixture(case);
    let m = BatchNorm::new(BatchNormKind::TwoD, 2, 1e-5, None, true, true).unwrap();
    m.load_state_dict(&state_dict(&t, "param."), true).unwrap();
    for i in 0..usize_of(&config(case), "steps") {
        m.forward(get(&t, &format!("input{i}"))).unwrap();
    }
    let mut errs = Errors::default();
    check_state_after(&mut errs, &t, &m);
    errs.assert_below(case, TOL);
}

#[test]
fn maxpool_3_2_1_with_ties_gives_the_gradient_to_the_first_max() {
    check_layer("maxpool_3_2_1_ties", &MaxPool2d::with(3, 2, 1));
}

#[test]
fn maxpool_2x2() {
    check_layer("maxpool_2_2_0", &MaxPool2d::new(2));
}

#[test]
fn avgpool_overlapping_with_padding() {
    check_layer("avgpool_3_2_1", &AvgPool2d::with(3, 2, 1));
}

#[test]
fn avgpool_with_padding() {
    check_layer("avgpool_2_2_1", &AvgPool2d::with(2, 2, 1));
}

#[test]
fn adaptive_avgpool_to_non_divisible_size() {
    check_layer("adaptive_avgpool_3x2", &AdaptiveAvgPool2d::new(3, 2));
}

#[test]
fn adaptive_avgpool_global() {
    check_layer("adaptive_avgpool_1x1", &AdaptiveAvgPool2d::new(1, 1));
}

fn loss_case(case: &str, f: impl Fn(&Tensor, &Tensor) -> kiln::Result<Tensor>) {
    let t = fixture(case);
    let x = Var::from_tensor(get(&t, "input")).unwrap();
    let loss = f(x.as_tensor(), get(&t, "target")).unwrap();
    let store = loss.backward().unwrap();
    let mut errs = Errors::default();
    errs.check("loss", &loss, get(&t, "loss"));
    errs.check(
        "grad.input",
        store.get(x.as_tensor()).unwrap(),
        get(&t, "grad.input"),
    );
    errs.assert_below(case, TOL);
}

#[test]
fn cross_entropy_value_and_gradient() {
    loss_case("cross_entropy", cross_entropy);
}

#[test]
fn mse_value_and_gradient() {
    loss_case("mse", mse_loss);
}

/// Loads the fixture's weights strictly (so the state-dict keys equal PyTorch's), runs
/// forward + cross-entropy + backward and compares logits, loss and every gradient.
fn check_model(case: &str, model: &dyn Module) {
    let t = fixture(case);
    model
        .load_state_dict(&state_dict(&t, "param."), true)
        .unwrap();
    model.train(config(case)["mode"] == "train");
    let x = Var::from_tensor(get(&t, "input")).unwrap();
    let out = model.forward(x.as_tensor()).unwrap();
    let loss = cross_entropy(&out, get(&t, "target")).unwrap();
    let store = loss.backward().unwrap();
    let mut errs = Errors::default();
    errs.check("output", &out, get(&t, "output"));
    errs.check("loss", &loss, get(&t, "loss"));
    check_grads(&mut errs, &t, &store, x.as_tensor(), model);
    errs.assert_below(case, TOL);
}

#[test]
fn lenet_forward_and_gradients_match_pytorch() {
    check_model("lenet", &LeNet::new(LeNetConfig::default()).unwrap());
}

#[test]
fn mlp_eval_forward_and_gradients_match_pytorch() {
    check_model("mlp_eval", &Mlp::new(&MlpConfig::default()).unwrap());
}

/// 20 SGD steps (momentum, weight decay) of LeNet on digits batches: kiln's data, model,
/// loss, backward and optimizer together against PyTorch's.
#[test]
fn lenet_sgd_trajectory_on_digits_matches_pytorch() {
    use kiln::data::Dataset;
    use kiln::optim::{Grads, Optimizer, Sgd, SgdConfig};
    let case = "lenet_sgd_trajectory";
    let t = fixture(case);
    let c = config(case);
    let model = LeNet::new(LeNetConfig::default()).unwrap();
    model
        .load_state_dict(&state_dict(&t, "param."), true)
        .unwrap();
    let digits = kiln::data::digits::Digits::embedded().unwrap();
    let all: Vec<usize> = (0..digits.len()).collect();
    let data = digits.to_dataset("digits", &all).unwrap();
    let mut opt = Sgd::new(
        model.named_parameters(),
        SgdConfig {
            lr: c["lr"].as_f64().unwrap(),
            momentum: c["momentum"].as_f64().unwrap(),
            weight_decay: c["weight_decay"].as_f64().unwrap(),
            ..Default::default()
        },
    )
    .unwrap();
    let indices: Vec<Vec<i64>> = get(&t, "indices").to_vec2().unwrap();
    let mut losses = Vec::new();
    for batch in &indices {
        let idx: Vec<usize> = batch.iter().map(|&i| i as usize).collect();
        let (x, y) = data.get_batch(&idx).unwrap();
        let loss = cross_entropy(&model.forward(&x).unwrap(), &y).unwrap();
        let grads = Grads::backward(&loss, &model.parameters()).unwrap();
        opt.step(&grads).unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
    }
    assert_eq!(losses.len(), usize_of(&c, "steps"));
    let mut errs = Errors::default();
    errs.check(
        "losses",
        &Tensor::new(losses.as_slice(), &candle_core::Device::Cpu).unwrap(),
        get(&t, "losses"),
    );
    check_state_after(&mut errs, &t, &model);
    errs.assert_below(case, TOL);
}

#[test]
fn state_dict_keys_of_the_twins_match_pytorch_order() {
    for (case, model) in [
        (
            "lenet",
            Box::new(LeNet::new(LeNetConfig::default()).unwrap()) as Box<dyn Module>,
        ),
        (
            "mlp_eval",
            Box::new(Mlp::new(&MlpConfig::default()).unwrap()),
        ),
    ] {
        let t = fixture(case);
        let mut want: Vec<String> = t
            .keys()
            .filter_map(|k| k.strip_prefix("param.").map(str::to_string))
            .collect();
        want.sort();
        let mut got: Vec<String> = model.state_dict().keys().map(str::to_string).collect();
        got.sort();
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn resnet18_state_dict_keys_order_and_shapes_equal_torchvision() {
    let text = std::fs::read_to_string(fixture_dir().join("resnet18_keys.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let want: Vec<(String, Vec<usize>, String)> = v["keys"]
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
    let m = ResNet::resnet18(ResNetConfig::default()).unwrap();
    let got: Vec<(String, Vec<usize>, String)> = m
        .state_dict()
        .iter()
        .map(|(k, t)| {
            let dt = match t.dtype() {
                DType::F32 => "float32",
                DType::I64 => "int64",
                other => panic!("unexpected dtype {other:?}"),
            };
            (k.to_string(), t.dims().to_vec(), dt.to_string())
        })
        .collect();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "entry {i}");
    }
}
