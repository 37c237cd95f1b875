//! Interoperability with real PyTorch, both ways.
//!
//! The plain tests run everywhere: every PyTorch-made fixture survives a kiln load → save →
//! load round trip unchanged (bit-exact, views and sharing kept).
//!
//! The `#[ignore]`d tests are driven by `scripts/interop_check.py`, which sets
//! `KILN_IO_INTEROP_DIR`, generates large PyTorch files there (a torchvision ResNet-18 state
//! dict in zip, legacy, DataParallel and safetensors forms), runs
//! `cargo test --test io_interop -- --include-ignored`, then checks with real `torch.load`
//! everything kiln wrote to `KILN_IO_INTEROP_DIR/kiln_out`.

#[path = "io_common/mod.rs"]
mod common;

use common::{describe, describe_with, first_difference, fixtures, manifest};
use kiln::io::{
    Dict, Dtype, LoadOptions, TensorValue, Value, load, load_model, load_state_dict_file, save,
    save_model, save_state_dict,
};
use kiln::models::{LeNet, LeNetConfig, ResNet, ResNetConfig};
use kiln::nn::Module;
use std::path::PathBuf;

const FIXTURES: [&str; 9] = [
    "dtypes.pt",
    "views.pt",
    "params.pt",
    "checkpoint.pt",
    "dataparallel.pt",
    "legacy.pt",
    "proto4.pt",
    "proto5.pt",
    "cuda.pt",
];

fn raw() -> LoadOptions {
    LoadOptions {
        raw_locations: true,
        ..LoadOptions::default()
    }
}

#[test]
fn pytorch_fixtures_survive_kiln_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest();
    for name in FIXTURES {
        let v = load(fixtures().join(name), &raw()).unwrap();
        let out = dir.path().join(name);
        save(&v, &out).unwrap();
        let back = load(&out, &raw().mmap(true)).unwrap();
        if let Some(d) = first_difference(&describe(&back), &m["files"][name], name) {
            panic!("{name} changed through kiln: {d}");
        }
        let mut tags = Vec::new();
        back.visit_tensors(&mut |_, t| tags.push(t.storage.location.clone()));
        let want = if name == "cuda.pt" { "cuda:0" } else { "cpu" };
        assert!(tags.iter().all(|t| t == want), "{name}: {tags:?}");
    }
}

fn tensor(d: Dtype, shape: Vec<usize>, seed: u8) -> TensorValue {
    let n: usize = shape.iter().product();
    let mut bytes: Vec<u8> = (0..n * d.size())
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    if d == Dtype::Bool {
        bytes.iter_mut().for_each(|b| *b &= 1);
    }
    if d.is_float() {
        // Keep floats finite and non-NaN patterns deterministic: clear the top exponent bit.
        for c in bytes.chunks_mut(d.size()) {
            if let Some(last) = c.last_mut() {
                *last &= 0x3f;
            }
        }
    }
    TensorValue::from_bytes(d, shape, bytes, "cpu").unwrap()
}

/// A value exercising everything kiln writes: all dtypes, views, shared storages,
/// parameters, nested containers, scalars of every kind.
pub fn kiln_values() -> Value {
    let mut entries: Vec<(Value, Value)> = Vec::new();
    for (i, d) in Dtype::ALL.iter().enumerate() {
        entries.push((
            Value::Str(d.name().into()),
            Value::Tensor(tensor(*d, vec![2, 3], i as u8)),
        ));
    }
    let base = tensor(Dtype::F32, vec![4, 6], 9);
    let views = vec![
        Value::Tensor(base.clone()),
        Value::Tensor(TensorValue {
            offset: 6,
            shape: vec![6],
            stride: vec![1],
            ..base.clone()
        }),
        Value::Tensor(TensorValue {
            shape: vec![6, 4],
            stride: vec![1, 6],
            ..base.clone()
        }),
        Value::Tensor(TensorValue {
            offset: 1,
            shape: vec![2, 2],
            stride: vec![12, 3],
            ..base.clone()
        }),
        Value::Tensor(base.clone()),
    ];
    entries.push((Value::Str("views".into()), Value::List(views)));
    let mut p = tensor(Dtype::F32, vec![3], 1);
    p.is_parameter = true;
    p.requires_grad = true;
    let mut frozen = tensor(Dtype::F16, vec![2], 2);
    frozen.is_parameter = true;
    let mut rg = tensor(Dtype::F64, vec![], 3);
    rg.requires_grad = true;
    entries.push((Value::Str("param".into()), Value::Tensor(p)));
    entries.push((Value::Str("frozen_param".into()), Value::Tensor(frozen)));
    entries.push((Value::Str("requires_grad".into()), Value::Tensor(rg)));
    entries.push((
        Value::Str("empty".into()),
        Value::Tensor(tensor(Dtype::I64, vec![0, 3], 0)),
    ));
    let nested = Value::Dict(Dict {
        entries: vec![
            (
                Value::Int(0),
                Value::Tuple(vec![Value::Float(0.9), Value::Float(0.999)]),
            ),
            (
                Value::Int(-5),
                Value::List(vec![Value::None, Value::Bool(true), Value::Bool(false)]),
            ),
            (
                Value::Str("ints".into()),
                Value::List(
                    [
                        0i64,
                        255,
                        256,
                        65535,
                        65536,
                        -1,
                        i64::MAX,
                        i64::MIN,
                        1 << 40,
                    ]
                    .into_iter()
                    .map(Value::Int)
                    .collect(),
                ),
            ),
            (
                Value::Str("floats".into()),
                Value::List(
                    [0.0, -0.0, 1e-310, f64::INFINITY, f64::NAN, 0.1]
                        .into_iter()
                        .map(Value::Float)
                        .collect(),
                ),
            ),
            (
                Value::Str("bytes".into()),
                Value::Bytes(vec![0, 1, 127, 128, 255]),
            ),
            (Value::Str("text".into()), Value::Str("ünïcödé ✓ \n".into())),
            (Value::Str("dtype".into()), Value::DtypeObj(Dtype::BF16)),
            (
                Value::Str("device".into()),
                Value::DeviceObj("cuda:1".into()),
            ),
            (Value::Str("cpu".into()), Value::DeviceObj("cpu".into())),
            (Value::Str("empty_tuple".into()), Value::Tuple(vec![])),
            (
                Value::Str("big_tuple".into()),
                Value::Tuple((0..5).map(Value::Int).collect()),
            ),
        ],
        ordered: false,
        metadata: None,
    });
    entries.push((Value::Str("nested".into()), nested));
    Value::Dict(Dict {
        entries,
        ordered: true,
        metadata: None,
    })
}

#[test]
fn kiln_values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let v = kiln_values();
    let p = dir.path().join("values.pt");
    save(&v, &p).unwrap();
    let back = load(&p, &LoadOptions::new()).unwrap();
    assert_eq!(describe(&back), describe(&v));
}

/// The directory `scripts/interop_check.py` prepared, or `None` (the test then says it was
/// skipped: these tests only make sense after the script has written PyTorch's files).
/// The folder of the generated PyTorch files. These tests are `#[ignore]`d (a plain
/// `cargo test` reports them as ignored, not as passed) and run by `scripts/interop_check.py`, which
/// generates the files and sets `KILN_IO_INTEROP_DIR`; run without it, they fail loudly.
fn interop_dir() -> PathBuf {
    match std::env::var_os("KILN_IO_INTEROP_DIR") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "KILN_IO_INTEROP_DIR is not set: run scripts/interop_check.py, which generates the PyTorch files"
        ),
    }
}

fn write_json(path: PathBuf, j: &serde_json::Value) {
    std::fs::write(path, serde_json::to_vec(j).unwrap()).unwrap();
}

fn resnet() -> ResNet {
    ResNet::resnet18(ResNetConfig {
        num_classes: 1000,
        in_channels: 3,
    })
    .unwrap()
}

#[test]
#[ignore = "run by scripts/interop_check.py (needs KILN_IO_INTEROP_DIR)"]
fn write_files_for_pytorch() {
    let dir = interop_dir();
    let out = dir.join("kiln_out");
    std::fs::create_dir_all(&out).unwrap();
    // 1. PyTorch fixtures re-saved by kiln (compared with the manifest by Python).
    for name in FIXTURES {
        let v = load(fixtures().join(name), &raw()).unwrap();
        save(&v, out.join(name)).unwrap();
    }
    // 2. kiln-made values, with kiln's own description.
    let v = kiln_values();
    save(&v, out.join("kiln_values.pt")).unwrap();
    write_json(out.join("kiln_values.json"), &describe(&v));
    // 3. A kiln ResNet-18 state dict, .pt and .safetensors.
    let sd = resnet().state_dict();
    save_state_dict(&sd, out.join("kiln_resnet18.pt")).unwrap();
    save_state_dict(&sd, out.join("kiln_resnet18.safetensors")).unwrap();
    let sdv = load(out.join("kiln_resnet18.pt"), &LoadOptions::new()).unwrap();
    write_json(
        out.join("kiln_resnet18.json"),
        &describe_with(&sdv, Some(4096)),
    );
    // 4. A whole-model file.
    let lenet = LeNet::new(LeNetConfig {
        in_channels: 1,
        image_size: 8,
        num_classes: 10,
    })
    .unwrap();
    save_model(&lenet, out.join("kiln_whole_model.pt")).unwrap();
    let back = load_model(out.join("kiln_whole_model.pt"), &LoadOptions::new()).unwrap();
    assert_eq!(back.type_name(), "LeNet");
    // 5. A file whose storages say cuda:1.
    let gpu = TensorValue::from_bytes(
        Dtype::F32,
        vec![2],
        vec![0, 0, 128, 63, 0, 0, 0, 64],
        "cuda:1",
    )
    .unwrap();
    save(
        &Value::dict([("w", Value::Tensor(gpu))]),
        out.join("kiln_cuda.pt"),
    )
    .unwrap();
}

#[test]
#[ignore = "run by scripts/interop_check.py (needs KILN_IO_INTEROP_DIR)"]
fn read_large_files_from_pytorch() {
    let dir = interop_dir();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("resnet18.json")).unwrap()).unwrap();
    for (file, opts) in [
        ("resnet18.pt", LoadOptions::new()),
        ("resnet18.pt", LoadOptions::new().mmap(true)),
        ("resnet18_legacy.pt", LoadOptions::new()),
    ] {
        let v = load(dir.join(file), &opts).unwrap();
        if let Some(d) = first_difference(&describe_with(&v, Some(4096)), &expected, file) {
            panic!("{file} differs from torch.load: {d}");
        }
    }
    // safetensors (written by the Python package): same tensors, each its own storage.
    let st = load(
        dir.join("resnet18.safetensors"),
        &LoadOptions::new().mmap(true),
    )
    .unwrap();
    let pt = load(dir.join("resnet18.pt"), &LoadOptions::new()).unwrap();
    let (st, pt) = (st.as_dict().unwrap(), pt.as_dict().unwrap());
    assert_eq!(st.entries.len(), pt.entries.len());
    for (k, x) in &pt.entries {
        let a = x.as_tensor().unwrap();
        let b = st
            .get(k.as_str().unwrap())
            .and_then(Value::as_tensor)
            .unwrap();
        assert_eq!((a.dtype(), &a.shape), (b.dtype(), &b.shape), "{k:?}");
        assert_eq!(
            a.contiguous_bytes().unwrap(),
            b.contiguous_bytes().unwrap(),
            "{k:?}"
        );
    }
    // The torchvision state dict loads strictly into kiln's ResNet-18.
    let model = resnet();
    let sd = load_state_dict_file(dir.join("resnet18.pt"), &LoadOptions::new()).unwrap();
    let report = model.load_state_dict(&sd, true).unwrap();
    assert!(report.is_clean());
    // The DataParallel copy fails strictly, naming the prefix, and loads once stripped.
    let dp = load_state_dict_file(dir.join("resnet18_dp.pt"), &LoadOptions::new()).unwrap();
    let e = model.load_state_dict(&dp, true).unwrap_err();
    assert_eq!(e.code(), "K0401");
    assert!(e.to_string().contains("DataParallel"), "{e}");
    assert!(
        model
            .load_state_dict(&dp.strip_prefix("module."), true)
            .unwrap()
            .is_clean()
    );
}
