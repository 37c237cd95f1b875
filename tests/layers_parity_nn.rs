//! Parity with real PyTorch for the layers of issue 14 items 1, 2 and 5: Conv1d, grouped /
//! depthwise / dilated Conv2d with `padding='same'`, ConvTranspose1d/2d, MaxPool1d,
//! AvgPool1d, AdaptiveAvgPool1d, AdaptiveMaxPool2d, AdaptiveAvgPool2d, Upsample (nearest,
//! bilinear with and without `align_corners`), GroupNorm, InstanceNorm2d, RMSNorm, Unflatten,
//! a named Sequential and a ModuleDict, against fixtures made by
//! `scripts/gen_layer_fixtures.py` (torch version in `tests/fixtures/layers/manifest.json`).
//!
//! Same initial state and input → output, input gradient and every parameter gradient of
//! `sum(output * upstream)`, the buffers after the forward and the eval-mode output
//! (InstanceNorm2d) agree element by element within `|kiln − torch| ≤ 1e-5 + 1e-5·|torch|`
//! (f32); the state-dict keys, order, shapes and dtypes and the printed form equal PyTorch's,
//! and the spec rebuilds an equal module. Run with `--nocapture` to see the measured errors.

mod common;

use candle_core::{DType, Device, Tensor};
use common::layers::*;
use kiln::Module;
use kiln::nn::{
    AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool1d, Conv1d, Conv2d,
    Conv2dConfig, ConvTranspose1d, ConvTranspose2d, ConvTransposeConfig, Dropout1d, Dropout2d,
    Flatten, GroupNorm, InstanceNorm2d, InstanceNormConfig, LayerNorm, Linear, MaxPool1d,
    ModuleDict, RMSNorm, ReLU, SiLU, Sequential, Unflatten, Upsample, UpsampleMode, registry,
};
use serde_json::Value;

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn conv_cfg(c: &Value) -> Conv2dConfig {
    Conv2dConfig {
        padding: c["padding"].as_u64().unwrap_or(0) as usize,
        stride: u(c, "stride"),
        dilation: u(c, "dilation"),
        groups: u(c, "groups"),
        bias: c["bias"] == true,
    }
}

fn convt_cfg(c: &Value) -> ConvTransposeConfig {
    ConvTransposeConfig {
        stride: u(c, "stride"),
        padding: u(c, "padding"),
        output_padding: u(c, "output_padding"),
        dilation: u(c, "dilation"),
        groups: u(c, "groups"),
        bias: c["bias"] == true,
    }
}

/// The kiln module for a case, built with the public constructors from the manifest.
fn build(case: &str) -> Box<dyn Module> {
    let c = config(case);
    let same = c["padding"] == "same";
    let (cin, cout, k) = (
        c["cin"].as_u64().unwrap_or(0) as usize,
        c["cout"].as_u64().unwrap_or(0) as usize,
        c["k"].as_u64().unwrap_or(0) as usize,
    );
    match c["kind"].as_str().unwrap() {
        "conv2d" => {
            let m = Conv2d::new(cin, cout, k, conv_cfg(&c)).unwrap();
            Box::new(if same { m.with_padding_same().unwrap() } else { m })
        }
        "conv1d" => {
            let m = Conv1d::new(cin, cout, k, conv_cfg(&c)).unwrap();
            Box::new(if same { m.with_padding_same().unwrap() } else { m })
        }
        "convt1d" => Box::new(ConvTranspose1d::new(cin, cout, k, convt_cfg(&c)).unwrap()),
        "convt2d" => Box::new(ConvTranspose2d::new(cin, cout, k, convt_cfg(&c)).unwrap()),
        "maxpool1d" => Box::new(
            MaxPool1d::with(k, u(&c, "stride"), u(&c, "padding"), u(&c, "dilation")).unwrap(),
        ),
        "avgpool1d" => Box::new(AvgPool1d::with(k, u(&c, "stride"), u(&c, "padding")).unwrap()),
        "adaptive_avgpool1d" => Box::new(AdaptiveAvgPool1d::new(usizes(&c["out"])[0]).unwrap()),
        "adaptive_maxpool2d" => {
            let o = usizes(&c["out"]);
            Box::new(AdaptiveMaxPool2d::new(o[0], o[1]).unwrap())
        }
        "adaptive_avgpool2d" => {
            let o = usizes(&c["out"]);
            Box::new(AdaptiveAvgPool2d::new(o[0], o[1]))
        }
        "upsample" => {
            let mode = UpsampleMode::parse(c["mode"].as_str().unwrap()).unwrap();
            let ac = c["align_corners"].as_bool();
            Box::new(match c["scale_factor"].as_f64() {
                Some(s) => Upsample::scale(s, mode, ac).unwrap(),
                None => Upsample::size(&usizes(&c["size"]), mode, ac).unwrap(),
            })
        }
        "groupnorm" => Box::new(
            GroupNorm::with(u(&c, "groups"), u(&c, "channels"), f(&c, "eps"), c["affine"] == true)
                .unwrap(),
        ),
        "instancenorm2d" => Box::new(
            InstanceNorm2d::with(
                u(&c, "features"),
                InstanceNormConfig {
                    eps: f(&c, "eps"),
                    momentum: c["momentum"].as_f64(),
                    affine: c["affine"] == true,
                    track_running_stats: c["track_running_stats"] == true,
                    bias: true,
                },
            )
            .unwrap(),
        ),
        "rmsnorm" => Box::new(
            RMSNorm::new(&usizes(&c["shape"]), c["eps"].as_f64(), c["affine"] == true).unwrap(),
        ),
        "unflatten" => {
            let sizes: Vec<i64> = c["sizes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            Box::new(Unflatten::new(c["dim"].as_i64().unwrap() as isize, &sizes))
        }
        "sequential_named" => Box::new(
            Sequential::from_named([
                (
                    "conv",
                    Box::new(
                        Conv2d::new(
                            2,
                            4,
                            3,
                            Conv2dConfig {
                                padding: 1,
                                ..Default::default()
                            },
                        )
                        .unwrap(),
                    ) as Box<dyn Module>,
                ),
                ("norm", Box::new(GroupNorm::new(2, 4).unwrap())),
                ("act", Box::new(SiLU::new())),
                ("pool", Box::new(AdaptiveAvgPool2d::new(2, 2))),
                ("flat", Box::new(Flatten::default())),
                ("fc", Box::new(Linear::new(16, 3, true).unwrap())),
            ])
            .unwrap(),
        ),
        other => panic!("{case}: unknown kind {other}"),
    }
}

fn run(case: &str) {
    let m = build(case);
    check_layer(case, m.as_ref());
    let rebuilt = registry::build(&m.spec()).unwrap();
    assert_eq!(rebuilt.type_name(), m.type_name(), "{case}: rebuilt type");
    assert_eq!(rebuilt.repr(), m.repr(), "{case}: rebuilt repr");
    check_state_keys(case, rebuilt.as_ref());
}

fn run_prefix(prefix: &str) {
    for case in cases_with_prefix(prefix) {
        run(&case);
    }
}

#[test]
fn conv2d_grouped_depthwise_dilated_and_same_padding() {
    run_prefix("conv2d_");
}

#[test]
fn conv1d_grouped_dilated_and_same_padding() {
    run_prefix("conv1d_");
}

#[test]
fn conv_transpose_1d_2d_output_padding_groups_dilation_cropping() {
    run_prefix("convt1d_");
    run_prefix("convt2d_");
}

#[test]
fn pooling_1d_and_adaptive() {
    run_prefix("maxpool1d");
    run_prefix("avgpool1d");
    run_prefix("adaptive_");
}

#[test]
fn upsample_nearest_and_bilinear() {
    run_prefix("upsample_");
}

#[test]
fn group_instance_and_rms_norm() {
    run_prefix("groupnorm");
    run_prefix("instancenorm2d");
    run_prefix("rmsnorm");
}

#[test]
fn unflatten_and_named_sequential() {
    run_prefix("unflatten");
    run("sequential_named");
}

#[test]
fn module_dict_keys_are_pytorchs() {
    let mut d = ModuleDict::new();
    d.insert("proj", Box::new(Linear::new(4, 3, true).unwrap()))
        .unwrap();
    d.insert("act", Box::new(ReLU)).unwrap();
    d.insert("norm", Box::new(LayerNorm::new(&[3]).unwrap()))
        .unwrap();
    let up = ConvTranspose1d::new(3, 2, 2, ConvTransposeConfig::default()).unwrap();
    d.insert("up", Box::new(up)).unwrap();
    check_state_keys("module_dict", &d);
    check_repr("module_dict", &d);
    let sd = common::state_dict(&fixture("module_dict"), "param.");
    d.load_state_dict(&sd, true).unwrap();
    let rebuilt = registry::build(&d.spec()).unwrap();
    check_state_keys("module_dict", rebuilt.as_ref());
    let x = Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap();
    let e = d.forward(&x).unwrap_err();
    assert!(e.to_string().contains("ModuleDict"), "{e}");
    assert_eq!(d.keys().collect::<Vec<_>>(), ["proj", "act", "norm", "up"]);
    assert_eq!(d.insert("a.b", Box::new(ReLU)).err().unwrap().code(), "K0003");
}
