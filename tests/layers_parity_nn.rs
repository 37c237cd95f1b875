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
    MaxPool2d, ModuleDict, RMSNorm, ReLU, Sequential, SiLU, Unflatten, Upsample, UpsampleMode,
    registry,
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
            Box::new(if same {
                m.with_padding_same().unwrap()
            } else {
                m
            })
        }
        "conv1d" => {
            let m = Conv1d::new(cin, cout, k, conv_cfg(&c)).unwrap();
            Box::new(if same {
                m.with_padding_same().unwrap()
            } else {
                m
            })
        }
        "convt1d" => Box::new(ConvTranspose1d::new(cin, cout, k, convt_cfg(&c)).unwrap()),
        "convt2d" => Box::new(ConvTranspose2d::new(cin, cout, k, convt_cfg(&c)).unwrap()),
        "maxpool1d" => Box::new(
            MaxPool1d::with(k, u(&c, "stride"), u(&c, "padding"), u(&c, "dilation")).unwrap(),
        ),
        "maxpool2d" => {
            Box::new(MaxPool2d::with(k, u(&c, "stride"), u(&c, "padding")).ceil_mode(true))
        }
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
            GroupNorm::with(
                u(&c, "groups"),
                u(&c, "channels"),
                f(&c, "eps"),
                c["affine"] == true,
            )
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
    run_prefix("maxpool2d_ceil");
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
    assert_eq!(
        d.insert("a.b", Box::new(ReLU)).err().unwrap().code(),
        "K0003"
    );
}

#[test]
fn channel_dropout_zeroes_whole_channels_in_training_only() {
    let x = Tensor::ones((4, 8, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let d2 = Dropout2d::new(0.5).unwrap();
    assert_eq!(d2.repr(), "Dropout2d(p=0.5, inplace=False)");
    kiln::rng::manual_seed(5);
    let y = d2.forward(&x).unwrap();
    kiln::rng::manual_seed(5);
    let again = d2.forward(&x).unwrap();
    assert_eq!(values(&y), values(&again), "seeded masks repeat");
    let per_channel = values(&y.flatten_from(2).unwrap());
    let mut dropped = 0;
    for ch in per_channel.chunks(9) {
        assert!(
            ch.iter().all(|&v| v == ch[0]),
            "a channel is all kept or all dropped"
        );
        assert!(
            ch[0] == 0.0 || ch[0] == 2.0,
            "kept channels scale by 1/(1-p)"
        );
        dropped += (ch[0] == 0.0) as usize;
    }
    assert!(
        (4..=28).contains(&dropped),
        "{dropped} of 32 channels dropped"
    );
    d2.eval();
    assert_eq!(values(&d2.forward(&x).unwrap()), values(&x));

    let d1 = Dropout1d::with_inplace(0.25, true).unwrap();
    assert_eq!(d1.repr(), "Dropout1d(p=0.25, inplace=True)");
    let x = Tensor::ones((6, 5), DType::F32, &Device::Cpu).unwrap(); // unbatched [C, L]
    let y = values(&d1.forward(&x).unwrap());
    for ch in y.chunks(5) {
        assert!(
            ch.iter().all(|&v| v == ch[0]) && (ch[0] == 0.0 || (ch[0] - 4.0 / 3.0).abs() < 1e-6)
        );
    }
    let e = d1
        .forward(&Tensor::ones(5, DType::F32, &Device::Cpu).unwrap())
        .unwrap_err();
    assert_eq!(e.code(), "K0203");
    assert!(e.to_string().starts_with("Dropout1d(p=0.25"), "{e}");
    assert_eq!(Dropout2d::new(1.5).err().unwrap().code(), "K0003");
}

#[test]
fn wrong_inputs_are_coded_errors_naming_the_layer() {
    let dev = Device::Cpu;
    let z = |d: &[usize]| Tensor::zeros(d, DType::F32, &dev).unwrap();
    let c1 = Conv1d::new(4, 6, 3, Conv2dConfig::default()).unwrap();
    let e = c1.forward(&z(&[2, 3, 10])).unwrap_err();
    assert_eq!(e.code(), "K0201");
    assert!(
        e.to_string().contains("Conv1d(4, 6, kernel_size=(3,)"),
        "{e}"
    );
    assert_eq!(c1.forward(&z(&[2, 4, 3, 3])).unwrap_err().code(), "K0203");
    assert_eq!(c1.forward(&z(&[2, 4, 2])).unwrap_err().code(), "K0203");
    let f64x = Tensor::zeros((2, 4, 10), DType::F64, &dev).unwrap();
    assert_eq!(c1.forward(&f64x).unwrap_err().code(), "K0302");
    assert_eq!(
        Conv2d::new(
            4,
            4,
            3,
            Conv2dConfig {
                stride: 2,
                ..Default::default()
            }
        )
        .unwrap()
        .with_padding_same()
        .err()
        .unwrap()
        .code(),
        "K0003"
    );
    assert_eq!(
        Conv2d::new(
            4,
            6,
            3,
            Conv2dConfig {
                groups: 4,
                ..Default::default()
            }
        )
        .err()
        .unwrap()
        .code(),
        "K0003"
    );
    let ct = ConvTranspose2d::new(4, 2, 3, ConvTransposeConfig::default()).unwrap();
    let e = ct.forward(&z(&[1, 3, 4, 4])).unwrap_err();
    assert_eq!(e.code(), "K0201");
    assert!(e.to_string().contains("ConvTranspose2d(4, 2"), "{e}");
    let bad_op = ConvTransposeConfig {
        output_padding: 1,
        ..Default::default()
    };
    assert_eq!(
        ConvTranspose1d::new(2, 2, 3, bad_op).err().unwrap().code(),
        "K0003"
    );
    let gn = GroupNorm::new(2, 6).unwrap();
    let e = gn.forward(&z(&[2, 4, 3])).unwrap_err();
    assert_eq!(e.code(), "K0203");
    assert!(e.to_string().starts_with("GroupNorm(2, 6"), "{e}");
    assert_eq!(GroupNorm::new(4, 6).err().unwrap().code(), "K0003");
    let rms = RMSNorm::new(&[4], None, true).unwrap();
    let e = rms.forward(&z(&[2, 5])).unwrap_err();
    assert_eq!(e.code(), "K0208");
    assert!(e.to_string().starts_with("RMSNorm((4,)"), "{e}");
    let inorm = InstanceNorm2d::new(3).unwrap();
    assert_eq!(inorm.forward(&z(&[2, 3])).unwrap_err().code(), "K0203");
    let ids = Tensor::zeros((1, 3, 4, 4), DType::I64, &dev).unwrap();
    assert_eq!(inorm.forward(&ids).unwrap_err().code(), "K0003");
    assert_eq!(MaxPool1d::with(2, 1, 2, 1).err().unwrap().code(), "K0003");
    let e = MaxPool1d::new(5)
        .unwrap()
        .forward(&z(&[1, 2, 3]))
        .unwrap_err();
    assert_eq!(e.code(), "K0203");
    assert!(e.to_string().starts_with("MaxPool1d(kernel_size=5"), "{e}");
    let up = Upsample::scale(2.0, UpsampleMode::Bilinear, None).unwrap();
    let e = up.forward(&z(&[2, 3, 4])).unwrap_err();
    assert_eq!(e.code(), "K0203");
    assert!(
        e.to_string()
            .contains("Upsample(scale_factor=2.0, mode='bilinear')"),
        "{e}"
    );
    let un = Unflatten::new(1, &[4, 2]);
    let e = un.forward(&z(&[3, 6])).unwrap_err();
    assert_eq!(e.code(), "K0203");
    assert!(
        e.to_string()
            .starts_with("Unflatten(dim=1, unflattened_size=(4, 2))"),
        "{e}"
    );
}

#[test]
fn new_layers_default_init_matches_pytorchs_distributions() {
    kiln::rng::manual_seed(0);
    let c = Conv1d::new(4, 8, 3, Conv2dConfig::default()).unwrap();
    let bound = 1.0 / ((4 * 3) as f64).sqrt();
    let w = values(&c.weight().tensor());
    assert!(w.iter().all(|v| v.abs() <= bound) && w.iter().any(|v| v.abs() > 0.8 * bound));
    // ConvTranspose: fan_in = weight.size(1) * k*k = (out/groups) * k*k, as PyTorch computes.
    let cfg = ConvTransposeConfig {
        groups: 2,
        ..Default::default()
    };
    let t = ConvTranspose2d::new(4, 6, 3, cfg).unwrap();
    assert_eq!(t.weight().dims(), vec![4, 3, 3, 3]);
    let bound = 1.0 / ((3 * 9) as f64).sqrt();
    let b = values(&t.bias().unwrap().tensor());
    assert!(b.iter().all(|v| v.abs() <= bound));
    let g = GroupNorm::new(2, 4).unwrap();
    assert_eq!(values(&g.weight().unwrap().tensor()), vec![1.0; 4]);
    assert_eq!(values(&g.bias().unwrap().tensor()), vec![0.0; 4]);
    let inorm = InstanceNorm2d::with(
        3,
        InstanceNormConfig {
            track_running_stats: true,
            ..Default::default()
        },
    )
    .unwrap();
    let keys: Vec<String> = inorm.state_dict().keys().map(|k| k.to_string()).collect();
    assert_eq!(keys, ["running_mean", "running_var", "num_batches_tracked"]);
}

#[test]
fn new_layers_are_plain_send_sync_fields() {
    fn assert_field<T: Module + Send + Sync + 'static>() {}
    assert_field::<Conv1d>();
    assert_field::<ConvTranspose1d>();
    assert_field::<ConvTranspose2d>();
    assert_field::<MaxPool1d>();
    assert_field::<AvgPool1d>();
    assert_field::<AdaptiveAvgPool1d>();
    assert_field::<AdaptiveMaxPool2d>();
    assert_field::<Upsample>();
    assert_field::<GroupNorm>();
    assert_field::<InstanceNorm2d>();
    assert_field::<RMSNorm>();
    assert_field::<Dropout1d>();
    assert_field::<Dropout2d>();
    assert_field::<Unflatten>();
    assert_field::<ModuleDict>();
}

#[test]
fn oversized_outputs_are_refused_not_aborted() {
    let x = Tensor::zeros((1, 1, 2, 2), DType::F32, &Device::Cpu).unwrap();
    let up = Upsample::size(&[1 << 31, 1 << 31], UpsampleMode::Nearest, None).unwrap();
    assert_eq!(up.forward(&x).unwrap_err().code(), "K0004");
    let cfg = ConvTransposeConfig {
        stride: 1 << 40,
        ..Default::default()
    };
    let ct = ConvTranspose2d::new(1, 1, 1, cfg).unwrap();
    assert_eq!(ct.forward(&x).unwrap_err().code(), "K0004");
}
