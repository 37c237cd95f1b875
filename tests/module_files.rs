//! Whole-module PyTorch files (issue 16): `torch.save(net)` (zip and legacy) and
//! `torch.jit.save` archives read without running anything, against the fixtures of
//! `scripts/gen_module_fixtures.py` (real torch 2.15 / torchvision 0.29 files).
//!
//! - the state dict equals `net.state_dict()` bit for bit (keys, order, bytes);
//! - the module tree prints like `print(net)`;
//! - Sequential and a torchvision ResNet are rebuilt as kiln modules whose eval outputs
//!   match PyTorch's;
//! - malicious files are refused by name (`K0509`) and their payload never runs.

use candle_core::Device;
use kiln::io::module_file::{
    GlobalKind, globals::exit_code, module_repr, module_state_dict, module_tree, read_module_file,
    unrebuildable,
};
use kiln::io::{LoadOptions, Value, list_globals, load, load_torch_module};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/modules")
        .join(name)
}

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn case(name: &str) -> serde_json::Value {
    manifest()["cases"][name].clone()
}

fn raw() -> LoadOptions {
    LoadOptions {
        raw_locations: true,
        ..LoadOptions::default()
    }
}

/// Keys, dtypes, shapes and element bytes of a dict of tensors, in order.
fn entries(v: &Value) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    v.as_dict()
        .unwrap()
        .entries
        .iter()
        .map(|(k, t)| {
            let t = t.as_tensor().unwrap();
            (
                k.as_str().unwrap().to_string(),
                t.dtype().name().to_string(),
                t.shape.clone(),
                t.contiguous_bytes().unwrap().into_owned(),
            )
        })
        .collect()
}

fn assert_bit_exact(sd: &Value, reference: &Path, keys: &serde_json::Value) {
    let got = entries(sd);
    let want: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let got_keys: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(got_keys, want, "keys and order of state_dict()");
    let reference = load(reference, &LoadOptions::new()).unwrap();
    let mut want = entries(&reference);
    want.sort();
    let mut got = got;
    got.sort();
    assert_eq!(got, want, "values bit for bit");
}

fn io_pair(name: &str) -> (candle_core::Tensor, Vec<f32>, Vec<usize>) {
    let v = load(
        fixture(&format!("{name}.io.safetensors")),
        &LoadOptions::new(),
    )
    .unwrap();
    let x = v.get("input").unwrap().as_tensor().unwrap();
    let y = v.get("output").unwrap().as_tensor().unwrap();
    let yt = y.to_tensor(&Device::Cpu).unwrap();
    (
        x.to_tensor(&Device::Cpu).unwrap(),
        yt.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        y.shape.clone(),
    )
}

/// Largest |a − b| relative to max |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn forward_matches(file: &str, io: &str, tol: f32) {
    let m = load_torch_module(fixture(file)).unwrap();
    assert!(!m.is_training(), "saved in eval mode");
    let (x, want, shape) = io_pair(io);
    let y = m.forward(&x).unwrap();
    assert_eq!(y.dims(), shape.as_slice());
    let got = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let e = rel_err(&got, &want);
    assert!(e < tol, "{file}: relative error {e:e} ≥ {tol:e}");
}

#[test]
fn sequential_forward_matches_pytorch() {
    forward_matches("sequential.pt", "sequential", 1e-5);
}

#[test]
fn legacy_sequential_forward_matches_pytorch() {
    forward_matches("legacy_sequential.pt", "sequential", 1e-5);
}

/// Conv1d (`padding='same'`, stride) in a whole-module Sequential, rebuilt and run.
#[test]
fn conv1d_sequential_forward_matches_pytorch() {
    forward_matches("seq1d.pt", "seq1d", 1e-5);
}

/// A whole-module ModuleDict is rebuilt as kiln's ModuleDict: torch's keys, order and print.
#[test]
fn module_dict_is_rebuilt_with_torchs_keys() {
    let m = load_torch_module(fixture("moduledict.pt")).unwrap();
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("conv1d_cases.json")).unwrap())
            .unwrap();
    let want: Vec<String> = cases["moduledict"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let got: Vec<String> = m.state_dict().iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(got, want);
    assert_eq!(m.type_name(), "ModuleDict");
}

#[test]
fn torchvision_resnet_forward_matches_pytorch() {
    forward_matches("resnet_tiny.pt", "resnet_tiny", 1e-4);
}

#[test]
fn module_tree_prints_like_print_net() {
    for name in [
        "sequential",
        "legacy_sequential",
        "resnet_tiny",
        "mynet",
        "scripted",
    ] {
        let f = read_module_file(fixture(&format!("{name}.pt")), &raw()).unwrap();
        let tree = module_tree(f.module().unwrap(), name).unwrap();
        assert_eq!(
            module_repr(&tree),
            case(name)["repr"].as_str().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn state_dicts_equal_pytorch_bit_for_bit() {
    for name in ["sequential", "legacy_sequential", "resnet_tiny"] {
        let sd = module_state_dict(fixture(&format!("{name}.pt")), &raw()).unwrap();
        let keys: Vec<String> = entries(&sd).into_iter().map(|e| e.0).collect();
        let want: Vec<String> = case(name)["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        assert_eq!(keys, want, "{name}");
    }
    let sd = module_state_dict(fixture("mynet.pt"), &raw()).unwrap();
    assert_bit_exact(
        &sd,
        &fixture("mynet.state.safetensors"),
        &case("mynet")["keys"],
    );
    let sd = module_state_dict(fixture("scripted.pt"), &raw()).unwrap();
    assert_bit_exact(
        &sd,
        &fixture("scripted.state.safetensors"),
        &case("scripted")["keys"],
    );
}

#[test]
fn custom_class_is_named_as_not_rebuildable() {
    let f = read_module_file(fixture("mynet.pt"), &raw()).unwrap();
    let tree = module_tree(f.module().unwrap(), "mynet").unwrap();
    assert_eq!(tree.class_path(), "__main__.MyNet");
    assert_eq!(unrebuildable(&tree), ["__main__.MyNet"]);
    assert!(tree.training);
    let Err(e) = load_torch_module(fixture("mynet.pt")) else {
        panic!("MyNet rebuilt")
    };
    assert_eq!(e.code(), "K0005", "{e}");
    assert!(e.to_string().contains("__main__.MyNet"), "{e}");
}

#[test]
fn torchscript_is_recognised() {
    let f = read_module_file(fixture("scripted.pt"), &raw()).unwrap();
    assert!(f.torchscript);
    assert_eq!(f.format_name(), "torchscript");
    let e = load(fixture("scripted.pt"), &raw()).unwrap_err();
    assert_eq!(e.code(), "K0503");
    assert!(e.to_string().contains("TorchScript"), "{e}");
    let seq = read_module_file(fixture("sequential.pt"), &raw()).unwrap();
    assert!(!seq.torchscript);
}

#[test]
fn weights_only_mode_still_refuses_whole_modules() {
    let e = load(fixture("sequential.pt"), &raw()).unwrap_err();
    assert_eq!(e.code(), "K0504");
    assert!(
        e.to_string()
            .contains("torch.nn.modules.container.Sequential"),
        "{e}"
    );
}

fn marker() -> PathBuf {
    PathBuf::from(manifest()["marker"].as_str().unwrap())
}

#[test]
fn malicious_files_are_refused_by_name_and_never_run() {
    let _ = std::fs::remove_file(marker());
    for name in ["evil_os", "evil_eval", "evil_getattr"] {
        let file = fixture(&format!("{name}.pt"));
        let global = case(name)["global"].as_str().unwrap().to_string();
        let e = read_module_file(&file, &raw()).unwrap_err();
        assert_eq!(e.code(), "K0509", "{name}: {e}");
        assert!(e.to_string().contains(&global), "{name}: {e}");
        let Err(e) = load_torch_module(&file) else {
            panic!("{name} loaded")
        };
        assert_eq!(e.code(), "K0509", "{name}: {e}");
        let e = module_state_dict(&file, &raw()).unwrap_err();
        assert_eq!(e.code(), "K0509", "{name}: {e}");
        let e = load(&file, &raw()).unwrap_err();
        assert_eq!(e.code(), "K0504", "{name}: {e}");
        let uses = list_globals(&file).unwrap();
        assert!(
            uses.iter()
                .any(|u| format!("{}.{}", u.module, u.name) == global
                    && u.kind == GlobalKind::Dangerous),
            "{name}: {uses:?}"
        );
        assert_eq!(exit_code(&uses), 2, "{name}");
        for args in [
            vec!["inspect", file.to_str().unwrap()],
            vec![
                "convert",
                file.to_str().unwrap(),
                "/tmp/kiln-evil-out.safetensors",
            ],
        ] {
            let (code, _, err) = kiln(&args);
            assert_ne!(code, 0, "{args:?}");
            assert!(
                err.contains("K0509") || err.contains("K0504"),
                "{args:?}: {err}"
            );
        }
        let (code, out, _) = kiln(&["inspect", "--globals", file.to_str().unwrap()]);
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("dangerous") && out.contains(&global), "{out}");
    }
    assert!(
        !marker().exists(),
        "a payload ran: {} exists",
        marker().display()
    );
}

#[test]
fn list_globals_marks_kinds() {
    let uses = list_globals(fixture("sequential.pt")).unwrap();
    let kind = |n: &str| {
        uses.iter()
            .find(|u| format!("{}.{}", u.module, u.name) == n)
            .map(|u| u.kind)
    };
    assert_eq!(
        kind("torch.nn.modules.container.Sequential"),
        Some(GlobalKind::Rebuildable)
    );
    assert_eq!(
        kind("torch._utils._rebuild_tensor_v2"),
        Some(GlobalKind::Safe)
    );
    assert_eq!(kind("collections.OrderedDict"), Some(GlobalKind::Safe));
    assert_eq!(exit_code(&uses), 0, "{uses:?}");
    let legacy = list_globals(fixture("legacy_sequential.pt")).unwrap();
    assert_eq!(exit_code(&legacy), 0, "{legacy:?}");
    let mynet = list_globals(fixture("mynet.pt")).unwrap();
    assert!(
        mynet
            .iter()
            .any(|u| u.name == "MyNet" && u.kind == GlobalKind::Unknown)
    );
    assert_eq!(exit_code(&mynet), 1);
    let ts = list_globals(fixture("scripted.pt")).unwrap();
    assert!(
        ts.iter()
            .any(|u| u.module == "__torch__" && u.name == "MyScripted")
    );
}

fn kiln(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_convert_inspect_forward_on_whole_module_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mynet.safetensors");
    let (code, _, err) = kiln(&[
        "convert",
        fixture("mynet.pt").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    // safetensors orders its header by name: compare as sets, bit for bit.
    let mut got = entries(&load(&out, &LoadOptions::new()).unwrap());
    let mut want = entries(&load(fixture("mynet.state.safetensors"), &LoadOptions::new()).unwrap());
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let (code, text, err) = kiln(&["inspect", fixture("mynet.pt").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains(case("mynet")["repr"].as_str().unwrap()),
        "{text}"
    );
    assert!(text.contains("cannot rebuild __main__.MyNet"), "{text}");
    let (code, text, err) = kiln(&["inspect", fixture("scripted.pt").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("torchscript"), "{text}");

    let (code, text, _) = kiln(&[
        "inspect",
        "--globals",
        fixture("sequential.pt").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    let (code, _, _) = kiln(&[
        "inspect",
        "--globals",
        fixture("mynet.pt").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);

    let y = dir.path().join("y.safetensors");
    let (code, _, err) = kiln(&[
        "forward",
        "--weights",
        fixture("sequential.pt").to_str().unwrap(),
        "--input",
        fixture("sequential.io.safetensors").to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let got = load(&y, &LoadOptions::new()).unwrap();
    let got: Vec<f32> = got
        .as_dict()
        .unwrap()
        .entries
        .first()
        .unwrap()
        .1
        .as_tensor()
        .unwrap()
        .to_tensor(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let (_, want, _) = io_pair("sequential");
    assert!(rel_err(&got, &want) < 1e-5);
}

/// Full torchvision resnet18 (`torch.save(model)`, ~45 MB): generated by scripts/test.sh
/// with `scripts/gen_module_fixtures.py --big target/module-fixtures`.
#[test]
#[ignore = "needs target/module-fixtures from scripts/gen_module_fixtures.py --big"]
fn torchvision_resnet18_whole_module_matches_pytorch() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/module-fixtures");
    let m = load_torch_module(dir.join("resnet18.pt")).unwrap();
    let v = load(dir.join("resnet18.io.safetensors"), &LoadOptions::new()).unwrap();
    let x = v
        .get("input")
        .unwrap()
        .as_tensor()
        .unwrap()
        .to_tensor(&Device::Cpu)
        .unwrap();
    let want: Vec<f32> = v
        .get("output")
        .unwrap()
        .as_tensor()
        .unwrap()
        .to_tensor(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let got: Vec<f32> = m
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let e = rel_err(&got, &want);
    assert!(e < 1e-4, "relative error {e:e}");
}

/// torchvision models of other classes, saved with `torch.save(model)`, rebuilt as the zoo
/// architecture whose keys and shapes match the file (mobilenet_v3_small, not large; the
/// class count from the head): eval-mode logits within 1e-4 of PyTorch's.
#[test]
#[ignore = "needs target/module-fixtures from scripts/gen_module_fixtures.py --big"]
fn torchvision_zoo_whole_modules_match_pytorch() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/module-fixtures");
    for name in ["mobilenet_v3_small", "efficientnet_b0", "squeezenet1_1"] {
        let m = load_torch_module(dir.join(format!("{name}.pt"))).unwrap();
        assert!(!m.is_training(), "{name}: saved in eval mode");
        let v = load(
            dir.join(format!("{name}.io.safetensors")),
            &LoadOptions::new(),
        )
        .unwrap();
        let get = |k: &str| {
            v.get(k)
                .unwrap()
                .as_tensor()
                .unwrap()
                .to_tensor(&Device::Cpu)
                .unwrap()
        };
        let want: Vec<f32> = get("output").flatten_all().unwrap().to_vec1().unwrap();
        let got: Vec<f32> = m
            .forward(&get("input"))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let e = rel_err(&got, &want);
        println!("{name}: relative error {e:e}");
        assert!(e < 1e-4, "{name}: relative error {e:e}");
    }
}
