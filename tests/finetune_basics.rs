//! Freezing, head replacement and pretrained loading through the public API.

use candle_core::{DType, Device, Tensor};
use kiln::finetune::{
    Selector, freeze, frozen_batchnorm_to_eval, load_pretrained, replace_linear_head, unfreeze,
};
use kiln::models::{LeNet, LeNetConfig, ResNet, ResNetConfig};
use kiln::nn::Module;
use kiln::optim::Grads;

#[test]
fn frozen_parameters_get_no_gradient() {
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    let frozen = freeze(&m, &Selector::new(&["conv*", "fc1", "fc2"]).unwrap()).unwrap();
    assert_eq!(frozen.len(), 8);
    let x = Tensor::ones((2, 1, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let loss = m.forward(&x).unwrap().sum_all().unwrap();
    let params = m.named_parameters();
    let ps: Vec<_> = params.iter().map(|(_, p)| p.clone()).collect();
    let g = Grads::backward(&loss, &ps).unwrap();
    for (n, p) in &params {
        assert_eq!(g.get(p).is_some(), n.starts_with("fc."), "{n}");
    }
    unfreeze(&m, &Selector::new(&["fc2"]).unwrap()).unwrap();
    assert_eq!(m.trainable_parameters().len(), 4);
}

#[test]
fn everything_frozen_backward_is_k0207() {
    let m = LeNet::new(LeNetConfig::default()).unwrap();
    freeze(&m, &Selector::new(&["*"]).unwrap()).unwrap();
    let x = Tensor::ones((2, 1, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let loss = m.forward(&x).unwrap().sum_all().unwrap();
    assert_eq!(
        Grads::backward(&loss, &m.parameters()).unwrap_err().code(),
        "K0207"
    );
}

#[test]
fn new_head_and_non_strict_pretrained_load() {
    kiln::rng::manual_seed(1);
    let pre = LeNet::new(LeNetConfig::default()).unwrap();
    let mut m = LeNet::new(LeNetConfig::default()).unwrap();
    replace_linear_head(&mut m, "fc", 5).unwrap();
    assert_eq!(m.state_dict().get("fc.weight").unwrap().dims(), &[5, 84]);
    let strict = m.load_state_dict(&pre.state_dict(), true).unwrap_err();
    assert!(strict.to_string().contains(
        "size mismatch for fc.weight: copying a param with shape [10, 84] from checkpoint, the shape in current model is [5, 84]"
    ), "{strict}");
    let r = load_pretrained(&m, &pre.state_dict(), None).unwrap();
    assert_eq!(r.report.mismatched.len(), 2);
    assert!(r.describe()[0].contains("fc.weight"));
    let a = m.state_dict();
    let b = pre.state_dict();
    let w = |sd: &kiln::StateDict, k: &str| {
        sd.get(k)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(w(&a, "conv1.weight"), w(&b, "conv1.weight"));
    assert_ne!(w(&a, "fc.bias").len(), w(&b, "fc.bias").len());
    let r = load_pretrained(
        &m,
        &pre.state_dict(),
        Some(&Selector::new(&["fc"]).unwrap()),
    )
    .unwrap();
    assert_eq!(r.skipped, ["fc.weight", "fc.bias"]);
    assert!(r.report.is_clean(), "{:?}", r.report);
}

#[test]
fn frozen_batchnorm_stays_in_eval() {
    let m = ResNet::resnet18(ResNetConfig {
        num_classes: 3,
        in_channels: 1,
    })
    .unwrap();
    freeze(&m, &Selector::new(&["layer1"]).unwrap()).unwrap();
    m.train(true);
    let switched = frozen_batchnorm_to_eval(&m);
    assert_eq!(switched.len(), 4);
    let before = m
        .state_dict()
        .get("layer1.0.bn1.running_mean")
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let x = Tensor::ones((2, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
    m.forward(&x).unwrap();
    let sd = m.state_dict();
    assert_eq!(
        sd.get("layer1.0.bn1.running_mean")
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        before
    );
    assert_eq!(
        sd.get("layer1.0.bn1.num_batches_tracked")
            .unwrap()
            .to_scalar::<i64>()
            .unwrap(),
        0
    );
    assert_eq!(
        sd.get("bn1.num_batches_tracked")
            .unwrap()
            .to_scalar::<i64>()
            .unwrap(),
        1
    );
}
