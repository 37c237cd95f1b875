//! The persistence subcommands end to end: `kiln inspect`, `convert`, `diff`, `forward`,
//! `bench io`, one test per flag.

use kiln::io::{LoadOptions, TensorValue, Value, load, save, save_model};
use kiln::models::{LeNet, LeNetConfig};
use std::path::{Path, PathBuf};
use std::process::Command;

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

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/io")
        .join(name)
        .display()
        .to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn inspect_text_tree_with_devices_and_totals() {
    let (code, out, err) = kiln(&["inspect", &fixture("checkpoint.pt")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("model_state_dict: OrderedDict (9 entries)"),
        "{out}"
    );
    assert!(
        out.contains("conv.weight: Tensor f32 [2, 1, 3, 3] cpu (18 elements)"),
        "{out}"
    );
    assert!(out.contains("momentum_buffer"), "{out}");
    assert!(out.lines().last().unwrap().starts_with("total: "), "{out}");
    let (code, out, _) = kiln(&["inspect", &fixture("cuda.pt")]);
    assert_eq!(code, 0);
    assert!(out.contains("cuda:0"), "inspect needs no GPU: {out}");
}

#[test]
fn inspect_json() {
    let (code, out, err) = kiln(&["inspect", "--json", &fixture("dataparallel.pt")]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["format"], "pytorch-zip");
    assert_eq!(j["tensors"], 9);
    assert_eq!(j["tree"]["entries"][0]["key"], "module.conv.weight");
    assert_eq!(
        j["tree"]["entries"][0]["value"]["shape"],
        serde_json::json!([2, 1, 3, 3])
    );
    let legacy: serde_json::Value =
        serde_json::from_str(&kiln(&["inspect", "--json", &fixture("legacy.pt")]).1).unwrap();
    assert_eq!(legacy["format"], "pytorch-legacy");
}

#[test]
fn inspect_bad_file_is_coded_error() {
    let (code, _, err) = kiln(&["inspect", &fixture("manifest.json")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("error[K0503]") && err.contains("text file"),
        "{err}"
    );
}

#[test]
fn convert_strip_prefix_to_safetensors_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("dp.safetensors");
    let (code, _, err) = kiln(&[
        "convert",
        &fixture("dataparallel.pt"),
        &s(&st),
        "--strip-prefix",
        "module.",
    ]);
    assert_eq!(code, 0, "{err}");
    let v = load(&st, &LoadOptions::new()).unwrap();
    assert!(v.get("conv.weight").is_some());
    let pt = dir.path().join("back.pt");
    assert_eq!(
        kiln(&["convert", &s(&st), &s(&pt), "--add-prefix", "module."]).0,
        0
    );
    let (code, out, _) = kiln(&["diff", &fixture("dataparallel.pt"), &s(&pt)]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn convert_checkpoint_keeps_everything_and_edits_its_state_dict() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ck.pt");
    let (code, _, err) = kiln(&[
        "convert",
        &fixture("checkpoint.pt"),
        &s(&out),
        "--rename",
        r"^fc\.=head.",
    ]);
    assert_eq!(code, 0, "{err}");
    let v = load(&out, &LoadOptions::new()).unwrap();
    let sd = v.get("model_state_dict").unwrap();
    assert!(sd.get("head.weight").is_some() && sd.get("fc.weight").is_none());
    assert!(v.get("optimizer_state_dict").is_some() && v.get("epoch").is_some());
    let (code, _, err) = kiln(&[
        "convert",
        &fixture("checkpoint.pt"),
        &s(&out),
        "--rename",
        "(=x",
    ]);
    assert_eq!(code, 2, "bad regex is a usage error: {err}");
}

#[test]
fn convert_dtype_and_map_location() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("half.pt");
    assert_eq!(
        kiln(&[
            "convert",
            &fixture("cuda.pt"),
            &s(&out),
            "--dtype",
            "f16",
            "--map-location",
            "cpu"
        ])
        .0,
        0
    );
    let v = load(&out, &LoadOptions::new()).unwrap();
    let w = v.get("weight").and_then(Value::as_tensor).unwrap();
    assert_eq!(
        (w.dtype(), w.storage.location.as_str()),
        (kiln::io::Dtype::F16, "cpu")
    );
    let (code, _, err) = kiln(&["convert", &fixture("cuda.pt"), &s(&out), "--dtype", "i64"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = kiln(&[
        "convert",
        &fixture("cuda.pt"),
        &s(&out),
        "--map-location",
        "cuda:0=cuda:1",
    ]);
    assert_eq!(code, 0, "{err}");
    let v = load(
        &out,
        &LoadOptions {
            raw_locations: true,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        v.get("weight")
            .and_then(Value::as_tensor)
            .unwrap()
            .storage
            .location,
        "cuda:1"
    );
}

#[test]
fn diff_exit_codes_and_atol() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.pt");
    let b = dir.path().join("b.pt");
    let t = |x: f32| {
        Value::Tensor(
            TensorValue::from_bytes(
                kiln::io::Dtype::F32,
                vec![1],
                x.to_le_bytes().to_vec(),
                "cpu",
            )
            .unwrap(),
        )
    };
    save(&Value::dict([("w", t(1.0)), ("n", Value::Int(1))]), &a).unwrap();
    save(&Value::dict([("w", t(1.001)), ("n", Value::Int(1))]), &b).unwrap();
    let (code, out, _) = kiln(&["diff", &s(&a), &s(&b)]);
    assert_eq!(code, 1);
    assert!(out.contains("w: 1 of 1 values differ"), "{out}");
    assert_eq!(kiln(&["diff", &s(&a), &s(&b), "--atol", "0.01"]).0, 0);
    assert_eq!(kiln(&["diff", &s(&a), &s(&a)]).0, 0);
    save(&Value::dict([("w", t(1.0))]), &b).unwrap();
    let (code, out, _) = kiln(&["diff", &s(&a), &s(&b), "--max-lines", "1"]);
    assert_eq!(code, 1);
    assert!(out.contains("only in A: n"), "{out}");
}

fn write_input(path: &Path) {
    let x = candle_core::Tensor::ones(
        (2, 1, 8, 8),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    save(
        &Value::dict([("input", Value::from_tensor(&x).unwrap())]),
        path,
    )
    .unwrap();
}

#[test]
fn forward_with_arch_and_weights_and_with_whole_model() {
    let dir = tempfile::tempdir().unwrap();
    let m = LeNet::new(LeNetConfig {
        in_channels: 1,
        image_size: 8,
        num_classes: 7,
    })
    .unwrap();
    let w = dir.path().join("w.safetensors");
    kiln::io::save_state_dict(&kiln::nn::Module::state_dict(&m), &w).unwrap();
    let x = dir.path().join("x.safetensors");
    write_input(&x);
    let y = dir.path().join("y.safetensors");
    let (ws, xs) = (s(&w), s(&x));
    // `kiln forward --model lenet --weights w --input x --output OUT EXTRA…`
    let forward_lenet = |out: &Path, extra: &[&str]| {
        let out = s(out);
        let mut args = vec![
            "forward",
            "--model",
            "lenet",
            "--weights",
            &ws,
            "--input",
            &xs,
            "--output",
            &out,
        ];
        args.extend_from_slice(extra);
        kiln(&args)
    };
    let (code, _, err) = forward_lenet(&y, &[]);
    assert_eq!(code, 0, "{err}");
    let out = load(&y, &LoadOptions::new()).unwrap();
    assert_eq!(
        out.get("output").and_then(Value::as_tensor).unwrap().shape,
        [2, 7]
    );
    let whole = dir.path().join("m.pt");
    save_model(&m, &whole).unwrap();
    let y2 = dir.path().join("y2.safetensors");
    let (code, _, err) = kiln(&[
        "forward",
        "--weights",
        &s(&whole),
        "--input",
        &s(&x),
        "--output",
        &s(&y2),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(kiln(&["diff", &s(&y), &s(&y2)]).0, 0);
    // --device: cpu gives the same output; cuda without CUDA is K0303 with the reason.
    let y3 = dir.path().join("y3.safetensors");
    let (code, _, err) = forward_lenet(&y3, &["--device", "cpu"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(kiln(&["diff", &s(&y), &s(&y3)]).0, 0);
    if !kiln::device::cuda::is_available() {
        let (code, _, err) = forward_lenet(&y3, &["--device", "cuda:0"]);
        assert_eq!(code, 1);
        assert!(err.contains("K0303"), "{err}");
    }
    // Explicit --num-classes that does not fit the weights: strict load error.
    let (code, _, err) = forward_lenet(&y, &["--num-classes", "3"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("K0401") && err.contains("size mismatch for fc.weight"),
        "{err}"
    );
    let (code, _, err) = forward_lenet(&y, &["--in-channels", "3", "--image-size", "8"]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn bench_io_small_without_python() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = kiln(&[
        "bench",
        "io",
        "--size-mib",
        "2",
        "--repeat",
        "1",
        "--dir",
        &s(&dir.path().join("b")),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kiln save .pt") && out.contains("ceiling"),
        "{out}"
    );
}
