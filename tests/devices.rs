//! Device and dtype moves, and the mismatch errors, through the public API.

use candle_core::{DType, Device, Tensor};
use kiln::models::{LeNet, LeNetConfig, ResNet, ResNetConfig};
use kiln::nn::Module;

#[test]
fn to_dtype_round_trip_keeps_values_and_integer_buffers() {
    kiln::rng::manual_seed(5);
    let m = ResNet::resnet18(ResNetConfig {
        num_classes: 4,
        in_channels: 1,
    })
    .unwrap();
    let before = m.state_dict();
    m.to_dtype(DType::F64).unwrap();
    for (k, t) in m.state_dict().iter() {
        if k.ends_with("num_batches_tracked") {
            assert_eq!(t.dtype(), DType::I64, "{k}");
        } else {
            assert_eq!(t.dtype(), DType::F64, "{k}");
        }
    }
    m.to_dtype(DType::F32).unwrap();
    for (k, t) in m.state_dict().iter() {
        let b = before.get(k).unwrap();
        assert_eq!(t.dtype(), b.dtype(), "{k}");
        let same = t
            .eq(b)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .min_all()
            .unwrap();
        assert_eq!(same.to_scalar::<f32>().unwrap(), 1.0, "{k}");
    }
    assert!(m.to_dtype(DType::I64).is_err());
}

#[test]
fn parameters_keep_identity_through_moves() {
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    let before = m.parameters();
    m.to_dtype(DType::F64).unwrap();
    m.to_device(&Device::Cpu).unwrap();
    for (a, b) in before.iter().zip(m.parameters()) {
        assert!(a.same(&b) && b.requires_grad());
        assert_eq!(b.dtype(), DType::F64);
    }
}

#[test]
fn f64_data_into_f32_model_is_k0302() {
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    let x = Tensor::zeros((2, 1, 8, 8), DType::F64, &Device::Cpu).unwrap();
    let e = m.forward(&x).unwrap_err();
    assert_eq!(e.code(), "K0302");
    let msg = e.to_string();
    assert!(msg.starts_with("conv1: Conv2d(1, 6"), "{msg}");
    assert!(
        msg.contains("Found dtype Double (f64) but expected Float (f32)"),
        "{msg}"
    );
}

#[cfg(feature = "cuda")]
#[test]
fn input_on_cpu_model_on_cuda_is_k0301() {
    if !kiln::device::cuda::is_available() {
        return;
    }
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    let gpu = kiln::device::cuda::device(0).unwrap();
    m.to_device(&gpu).unwrap();
    let x = Tensor::zeros((2, 1, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let e = m.forward(&x).unwrap_err();
    assert_eq!(e.code(), "K0301");
    assert!(e.to_string().contains("cuda:0") && e.to_string().contains("cpu"));
}
