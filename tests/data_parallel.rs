//! DataParallel over CPU replicas: outputs and gradients equal the plain model's.

use candle_core::{Device, Tensor};
use kiln::models::{LeNet, LeNetConfig};
use kiln::nn::Module;
use kiln::optim::Grads;
use kiln::parallel::DataParallel;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn input(batch: usize) -> Tensor {
    kiln::rng::manual_seed(99);
    let v = kiln::rng::with(|g| g.uniform_vec(batch * 64, 0.0, 1.0));
    Tensor::from_vec(v, (batch, 1, 8, 8), &Device::Cpu).unwrap()
}

fn loss_of(y: &Tensor) -> Tensor {
    // A loss that weighs every output differently, so misplaced rows would show.
    let w = Tensor::arange(0f32, y.elem_count() as f32, &Device::Cpu)
        .unwrap()
        .reshape(y.dims())
        .unwrap();
    (y * ((w / 100.0).unwrap().sin().unwrap()))
        .unwrap()
        .sum_all()
        .unwrap()
}

#[test]
fn outputs_and_gradients_match_the_plain_model() {
    for replicas in [2usize, 3, 4] {
        for batch in [12usize, 10, 7, 3] {
            kiln::rng::manual_seed(1);
            let model = LeNet::new(LeNetConfig::default()).unwrap();
            let x = input(batch);
            let y = model.forward(&x).unwrap();
            let params = model.parameters();
            let g = Grads::backward(&loss_of(&y), &params).unwrap();
            let plain: Vec<Tensor> = params.iter().map(|p| g.get(p).unwrap().clone()).collect();

            let ids = vec!["cpu"; replicas];
            let dp = DataParallel::new(Box::new(model), &ids, None).unwrap();
            let y2 = dp.forward(&x).unwrap();
            assert_eq!(y2.dims(), y.dims());
            assert!(max_abs_diff(&y, &y2) < 1e-6, "outputs {replicas} {batch}");
            let params2 = dp.parameters();
            let g2 = Grads::backward(&loss_of(&y2), &params2).unwrap();
            for (p, want) in params2.iter().zip(&plain) {
                let got = g2.get(p).expect("gradient on the original parameter");
                assert!(max_abs_diff(got, want) < 1e-6, "grads {replicas} {batch}");
            }
        }
    }
}

#[test]
fn state_dict_has_module_prefix_and_loads_both_ways() {
    kiln::rng::manual_seed(2);
    let dp = DataParallel::new(
        Box::new(LeNet::new(LeNetConfig::default()).unwrap()),
        &["cpu", "cpu"],
        None,
    )
    .unwrap();
    let sd = dp.state_dict();
    assert!(sd.keys().all(|k| k.starts_with("module.")));
    let plain = LeNet::new(LeNetConfig::default()).unwrap();
    let err = plain.load_state_dict(&sd, true).unwrap_err();
    assert_eq!(err.code(), "K0401");
    assert!(err.to_string().contains("DataParallel prefix"), "{err}");
    assert!(err.hint().contains("strip"), "{}", err.hint());
    plain
        .load_state_dict(&sd.clone().strip_prefix("module."), true)
        .unwrap();
    let back = plain.state_dict().add_prefix("module.");
    let report = dp.load_state_dict(&back, true).unwrap();
    assert!(report.is_clean());
    let err = dp.load_state_dict(&plain.state_dict(), true).unwrap_err();
    assert!(err.to_string().contains("wrapped in DataParallel"), "{err}");
}

#[test]
fn reaching_into_the_wrapper_points_to_module() {
    let dp = DataParallel::new(
        Box::new(LeNet::new(LeNetConfig::default()).unwrap()),
        &["cpu"],
        None,
    )
    .unwrap();
    let e = dp.get_submodule("fc").err().unwrap();
    assert_eq!(e.code(), "K0306");
    assert!(
        e.to_string()
            .contains("'DataParallel' object has no attribute 'fc'")
    );
    assert!(e.hint().contains(".module()"));
    assert_eq!(dp.get_submodule("module.fc").unwrap().type_name(), "Linear");
    assert_eq!(dp.module().type_name(), "LeNet");
}

#[test]
fn empty_device_list_and_unknown_device_are_errors() {
    let m = || Box::new(LeNet::new(LeNetConfig::default()).unwrap());
    assert_eq!(
        DataParallel::new(m(), &[], None).err().unwrap().code(),
        "K0003"
    );
    assert_eq!(
        DataParallel::new(m(), &["tpu"], None).err().unwrap().code(),
        "K0305"
    );
}
