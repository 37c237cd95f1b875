//! The torchvision zoo's structure against torchvision itself: for every architecture, the
//! state-dict keys, their order, shapes and dtypes and the parameter count equal those of
//! `torchvision.models.<arch>(weights=None)` (recorded in tests/fixtures/zoo/keys.json by
//! `scripts/gen_zoo_fixtures.py --keys`), and the head torchvision users replace is there
//! and can be swapped by name.

use kiln::models::torchvision::{ZOO, build, head};
use serde_json::Value;
use std::sync::OnceLock;

fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/zoo/keys.json");
        serde_json::from_slice(&std::fs::read(p).expect("keys.json")).expect("keys.json parses")
    })
}

fn check(arch: &str) {
    let want = &fixture()["models"][arch];
    assert!(want.is_object(), "keys.json has no {arch}");
    let m = build(arch, 1000, 3).unwrap();
    let sd = m.state_dict();
    let got: Vec<(String, Vec<usize>, String)> = sd
        .iter()
        .map(|(k, t)| {
            let dtype = match t.dtype() {
                candle_core::DType::I64 => "int64",
                candle_core::DType::F32 => "float32",
                other => panic!("{arch}.{k}: unexpected dtype {other:?}"),
            };
            (k.to_string(), t.dims().to_vec(), dtype.to_string())
        })
        .collect();
    let expected: Vec<(String, Vec<usize>, String)> = want["keys"]
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
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(
            g, e,
            "{arch}: state-dict entry {i} differs from torchvision's"
        );
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "{arch}: number of state-dict entries"
    );
    assert_eq!(
        m.num_parameters() as u64,
        want["num_parameters"].as_u64().unwrap(),
        "{arch}: parameter count"
    );
    // The head exists and takes a module of another width.
    let h = head(arch).unwrap();
    let mut m = m;
    let kind = m.get_submodule(h).unwrap().type_name();
    assert!(
        ["Linear", "Conv2d"].contains(&kind),
        "{arch}: head {h} is a {kind}"
    );
    if kind == "Linear" {
        let n_in = m.state_dict().get(&format!("{h}.weight")).unwrap().dims()[1];
        kiln::finetune::replace_linear_head(m.as_mut(), h, 7).unwrap();
        let w = m.state_dict().get(&format!("{h}.weight")).unwrap().clone();
        assert_eq!(w.dims(), &[7, n_in], "{arch}: new head");
    }
}

macro_rules! zoo_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*

        /// The list above is the whole zoo.
        #[test]
        fn every_zoo_architecture_has_a_key_test() {
            let tested = [$(stringify!($name)),*];
            // vit_b_16 is checked against its own torchvision fixture (tests/zoo_vit.rs).
            let zoo: Vec<&str> = ZOO.iter().map(|(a, _)| *a).filter(|a| *a != "vit_b_16").collect();
            assert_eq!(tested.as_slice(), zoo.as_slice());
        }
    };
}

zoo_tests!(
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    resnext50_32x4d,
    wide_resnet50_2,
    vgg11,
    vgg11_bn,
    vgg13,
    vgg13_bn,
    vgg16,
    vgg16_bn,
    vgg19,
    vgg19_bn,
    alexnet,
    squeezenet1_1,
    densenet121,
    mobilenet_v2,
    mobilenet_v3_small,
    mobilenet_v3_large,
    efficientnet_b0,
    efficientnet_b1,
    efficientnet_b2,
    efficientnet_b3,
    convnext_tiny,
    convnext_small,
);

/// `kiln train --help` lists the zoo (the CLI's `--model` values are the library's list).
#[test]
fn architectures_list_the_zoo() {
    for (a, _) in ZOO {
        assert!(kiln::models::ARCHITECTURES.contains(&a), "{a}");
    }
    assert_eq!(kiln::models::default_head("vgg16"), "classifier.6");
    assert_eq!(kiln::models::default_head("lenet"), "fc");
}

/// Fine-tuning a zoo model from a 1000-class file: `prepare` with the model's default head
/// (a Conv2d for SqueezeNet, `classifier.3` for MobileNetV3, `classifier.1` otherwise) loads
/// everything but the head, whose shape differs, and the new head has the run's classes;
/// freezing `features` leaves the classifier trainable.
#[test]
fn finetune_replaces_each_kind_of_head_by_name() {
    use kiln::finetune::{FinetuneConfig, prepare};
    let dir = tempfile::tempdir().unwrap();
    for arch in ["squeezenet1_1", "mobilenet_v3_small", "efficientnet_b0"] {
        let path = dir.path().join(format!("{arch}.safetensors"));
        let pretrained = build(arch, 1000, 3).unwrap();
        kiln::io::save_state_dict(&pretrained.state_dict(), &path).unwrap();
        let m = build(arch, 5, 3).unwrap();
        let head = kiln::models::default_head(arch);
        let cfg = FinetuneConfig {
            from: Some(path),
            head: head.to_string(),
            freeze: vec!["features".to_string()],
            ..Default::default()
        };
        let p = prepare(m.as_ref(), &cfg, 0.01).unwrap();
        let r = p.report.unwrap();
        let total = pretrained.state_dict().len();
        assert_eq!(
            r.report.loaded.len(),
            total - 2,
            "{arch}: all but the head loaded"
        );
        let left_out: Vec<&String> = r
            .skipped
            .iter()
            .chain(r.report.mismatched.iter().map(|x| &x.key))
            .collect();
        assert!(
            left_out.iter().all(|k| k.starts_with(&format!("{head}."))) && left_out.len() == 2,
            "{arch}: left out {left_out:?}"
        );
        let sd = m.state_dict();
        assert_eq!(
            sd.get(&format!("{head}.weight")).unwrap().dims()[0],
            5,
            "{arch}"
        );
        let trainable: Vec<String> = m
            .trainable_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(
            trainable.iter().all(|n| n.starts_with("classifier.")),
            "{arch}: {trainable:?}"
        );
        assert!(trainable.contains(&format!("{head}.weight")), "{arch}");
    }
}
