//! The persistence API through real files: state dicts and key edits, whole-model files for
//! built-in and registered user architectures, and the coded errors for bad files.

use candle_core::{Device, Tensor};
use kiln::io::{
    LoadOptions, Value, load, load_model, load_state_dict_file, save, save_model, save_state_dict,
};
use kiln::models::{LeNet, LeNetConfig};
use kiln::nn::registry::{self, take_child};
use kiln::nn::{Dropout, Linear, Module, ModuleSpec, ReLU, Sequential};
use std::any::Any;
use std::sync::Arc;

fn lenet() -> LeNet {
    LeNet::new(LeNetConfig {
        in_channels: 1,
        image_size: 8,
        num_classes: 10,
    })
    .unwrap()
}

fn same_weights(a: &dyn Module, b: &dyn Module) {
    let (sa, sb) = (a.state_dict(), b.state_dict());
    assert_eq!(sa.keys().collect::<Vec<_>>(), sb.keys().collect::<Vec<_>>());
    for (k, t) in sa.iter() {
        let u = sb.get(k).unwrap();
        let d = (t.to_dtype(candle_core::DType::F64).unwrap()
            - u.to_dtype(candle_core::DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
        assert_eq!(d, 0.0, "{k}");
    }
}

#[test]
fn state_dict_file_round_trip_pt_and_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let m = lenet();
    for name in ["sd.pt", "sd.pth", "sd.bin", "sd.safetensors"] {
        let p = dir.path().join(name);
        save_state_dict(&m.state_dict(), &p).unwrap();
        let sd = load_state_dict_file(&p, &LoadOptions::new()).unwrap();
        let other = lenet();
        assert!(
            other.load_state_dict(&sd, true).unwrap().is_clean(),
            "{name}"
        );
        same_weights(&m, &other);
    }
    // _metadata survives the .pt round trip.
    let sd = load_state_dict_file(dir.path().join("sd.pt"), &LoadOptions::new()).unwrap();
    assert_eq!(sd.metadata, m.state_dict().metadata);
}

#[test]
fn dataparallel_prefix_is_detected_and_stripped_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dp.pt");
    save_state_dict(&lenet().state_dict().add_prefix("module."), &p).unwrap();
    let sd = load_state_dict_file(&p, &LoadOptions::new()).unwrap();
    let m = lenet();
    let e = m.load_state_dict(&sd, true).unwrap_err();
    assert_eq!(e.code(), "K0401");
    let msg = e.to_string();
    assert!(
        msg.contains("Missing key(s) in state_dict: \"conv1.weight\""),
        "{msg}"
    );
    assert!(
        msg.contains("Unexpected key(s) in state_dict: \"module.conv1.weight\""),
        "{msg}"
    );
    assert!(msg.contains("DataParallel prefix 'module.'"), "{msg}");
    // Non-strict: the report, nothing loaded.
    let r = m.load_state_dict(&sd, false).unwrap();
    assert_eq!(r.missing_keys.len(), sd.len());
    assert!(r.loaded.is_empty());
    // Stripped: clean.
    assert!(
        m.load_state_dict(&sd.clone().strip_prefix("module."), true)
            .unwrap()
            .is_clean()
    );
    // Regex rename through a file.
    let renamed = sd
        .strip_prefix("module.")
        .rename_regex(r"^fc\.", "head.")
        .unwrap();
    save_state_dict(&renamed, &p).unwrap();
    let back = load_state_dict_file(&p, &LoadOptions::new()).unwrap();
    assert!(back.contains_key("head.weight") && !back.contains_key("fc.weight"));
    let r = m.load_state_dict(&back, false).unwrap();
    assert_eq!(r.missing_keys, ["fc.weight", "fc.bias"]);
    assert_eq!(r.unexpected_keys, ["head.weight", "head.bias"]);
}

#[test]
fn checkpoint_dict_picks_its_state_dict() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ckpt.pt");
    let m = lenet();
    let v = Value::dict([
        ("epoch", Value::Int(4)),
        (
            "model_state_dict",
            kiln::io::value::state_dict_to_value(&m.state_dict()).unwrap(),
        ),
        ("loss", Value::Float(0.5)),
    ]);
    save(&v, &p).unwrap();
    let sd = load_state_dict_file(&p, &LoadOptions::new()).unwrap();
    assert_eq!(sd.len(), m.state_dict().len());
    // Two candidate state dicts: ambiguous, named.
    let v = Value::dict([
        (
            "model",
            kiln::io::value::state_dict_to_value(&m.state_dict()).unwrap(),
        ),
        (
            "state_dict",
            kiln::io::value::state_dict_to_value(&m.state_dict()).unwrap(),
        ),
    ]);
    save(&v, &p).unwrap();
    let e = load_state_dict_file(&p, &LoadOptions::new()).unwrap_err();
    assert_eq!(e.code(), "K0507");
    assert!(e.to_string().contains("several"), "{e}");
}

#[test]
fn whole_model_builtin_round_trip_pt_and_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let m = lenet();
    m.eval();
    let x = Tensor::ones((2, 1, 8, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
    let y = m.forward(&x).unwrap();
    for name in ["whole.pt", "whole.safetensors"] {
        let p = dir.path().join(name);
        save_model(&m, &p).unwrap();
        let back = load_model(&p, &LoadOptions::new()).unwrap();
        assert_eq!(back.type_name(), "LeNet");
        assert_eq!(
            back.is_training(),
            m.is_training(),
            "training flag restored"
        );
        same_weights(&m, back.as_ref());
        let yb = back.forward(&x).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), yb.to_vec2::<f32>().unwrap());
    }
}

/// A user architecture, registered by name.
struct TinyNet {
    width: usize,
    body: Box<dyn Module>,
}

impl Module for TinyNet {
    fn type_name(&self) -> &'static str {
        "TinyNet"
    }
    fn forward(&self, xs: &Tensor) -> kiln::Result<Tensor> {
        self.body.forward(xs)
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![("body".into(), self.body.as_ref())]
    }
    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("TinyNet")
            .with("width", self.width)
            .child("body", self.body.spec())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[test]
fn whole_model_user_architecture_registered_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.pt");
    let body = Sequential::new()
        .with(Linear::new(3, 5, true).unwrap())
        .with(ReLU)
        .with(Dropout::new(0.25).unwrap())
        .with(Linear::new(5, 2, true).unwrap());
    let m = TinyNet {
        width: 5,
        body: Box::new(body),
    };
    save_model(&m, &p).unwrap();
    // Not registered yet: K0403 naming it and the registered ones.
    let e = load_model(&p, &LoadOptions::new()).err().unwrap();
    assert_eq!(e.code(), "K0403");
    assert!(
        e.to_string().contains("TinyNet") && e.to_string().contains("ResNet"),
        "{e}"
    );
    registry::register(
        "TinyNet",
        Arc::new(|spec, mut children| {
            Ok(Box::new(TinyNet {
                width: spec.usize("width")?,
                body: take_child(&mut children, "TinyNet", "body")?,
            }) as Box<dyn Module>)
        }),
    );
    let back = load_model(&p, &LoadOptions::new()).unwrap();
    assert_eq!(back.type_name(), "TinyNet");
    same_weights(&m, back.as_ref());
    // Python-readable: a plain dict with the spec as JSON.
    let v = load(&p, &LoadOptions::new()).unwrap();
    assert_eq!(
        v.get("kiln_format").and_then(Value::as_str),
        Some("whole-model")
    );
    let spec: serde_json::Value =
        serde_json::from_str(v.get("spec").and_then(Value::as_str).unwrap()).unwrap();
    assert_eq!(spec["type"], "TinyNet");
}

#[test]
fn bad_files_get_coded_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str, &str); 6] = [
        ("notes.pt", b"epoch 3, loss 0.25\n", "K0503", "text file"),
        ("image.pt", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "K0503", "PNG"),
        ("empty.pt", b"", "K0501", "empty"),
        (
            "pickle.pt",
            b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.",
            "K0503",
            "plain Python pickle",
        ),
        (
            "legacy_cut.pt",
            b"\x80\x02\x8a\x0a\x6c\xfc\x9c",
            "K0501",
            "legacy",
        ),
        (
            "zip_cut.pt",
            b"PK\x03\x04\x00\x00\x08\x08\x00\x00",
            "K0501",
            "central directory",
        ),
    ];
    for (name, bytes, code, words) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = load(&p, &LoadOptions::new()).unwrap_err();
        assert_eq!(e.code(), code, "{name}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(name) && msg.contains(words), "{name}: {msg}");
    }
    let e = load(dir.path().join("missing.pt"), &LoadOptions::new()).unwrap_err();
    assert_eq!(e.code(), "K0002");
    // A legacy file cut in its storage section.
    let legacy = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/io/legacy.pt"
    ))
    .unwrap();
    let p = dir.path().join("legacy_short.pt");
    std::fs::write(&p, &legacy[..legacy.len() - 10]).unwrap();
    assert_eq!(load(&p, &LoadOptions::new()).unwrap_err().code(), "K0501");
}

#[test]
fn crash_mid_save_keeps_previous_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.pt");
    save_state_dict(&lenet().state_dict(), &p).unwrap();
    let before = std::fs::read(&p).unwrap();
    // A value too deep to pickle fails during the write, after the temporary file exists.
    let mut v = Value::None;
    for _ in 0..300 {
        v = Value::List(vec![v]);
    }
    assert!(save(&v, &p).is_err());
    assert_eq!(std::fs::read(&p).unwrap(), before);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary file removed"
    );
}
