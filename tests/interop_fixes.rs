//! Issue 16 item 3, interop fixes found by probing, against fixtures written by real torch
//! (`scripts/gen_interop_fixtures.py`): deflated zip records, `--rename` of `_metadata`
//! module keys, Hugging Face sharded checkpoints read and written.

use kiln::io::{LoadOptions, Value, load};
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/interop")
        .join(name)
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

/// (key, dtype, shape, bytes) in order.
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

fn sorted(v: &Value) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let mut e = entries(v);
    e.sort();
    e
}

#[test]
fn deflated_records_are_read() {
    let got = load(fixture("deflate.pt"), &LoadOptions::new()).unwrap();
    let want = load(fixture("deflate.ref.safetensors"), &LoadOptions::new()).unwrap();
    assert_eq!(sorted(&got), sorted(&want));
    let v = kiln::io::torch_zip::verify_file(&fixture("deflate.pt")).unwrap();
    assert!(v.records > 0);
    // The same with the file memory-mapped (records cannot be windows of the map).
    let mapped = load(fixture("deflate.pt"), &LoadOptions::new().mmap(true)).unwrap();
    assert_eq!(sorted(&mapped), sorted(&want));
}

#[test]
fn rename_renames_metadata_module_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("renamed.pt");
    let (code, _, err) = kiln(&[
        "convert",
        fixture("resnet_sd.pt").to_str().unwrap(),
        out.to_str().unwrap(),
        "--rename",
        r"^layer(\d)=stage$1",
    ]);
    assert_eq!(code, 0, "{err}");
    let v = load(&out, &LoadOptions::new()).unwrap();
    let d = v.as_dict().unwrap();
    let keys: Vec<String> = d
        .entries
        .iter()
        .map(|(k, _)| k.as_str().unwrap().into())
        .collect();
    assert!(
        keys.contains(&"stage1.0.conv.weight".to_string()),
        "{keys:?}"
    );
    let meta = d.metadata.as_deref().unwrap().as_dict().unwrap();
    let mkeys: Vec<&str> = meta
        .entries
        .iter()
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    assert!(!mkeys.iter().any(|k| k.starts_with("layer")), "{mkeys:?}");
    for k in [
        "",
        "stage1",
        "stage1.0",
        "stage1.0.conv",
        "stage2.0.bn",
        "fc",
    ] {
        assert!(mkeys.contains(&k), "{k} missing from {mkeys:?}");
    }
    // The versions moved with their modules (BatchNorm keeps version 2).
    let ver = meta.get("stage2.0.bn").unwrap().get("version").unwrap();
    assert_eq!(ver.as_i64(), Some(2));
}

#[test]
fn sharded_checkpoints_read_as_one_state_dict() {
    let want = load(fixture("sharded.ref.safetensors"), &LoadOptions::new()).unwrap();
    for p in [
        fixture("sharded_st"),
        fixture("sharded_st/model.safetensors.index.json"),
        fixture("sharded_bin"),
        fixture("sharded_bin/pytorch_model.bin.index.json"),
    ] {
        let got = load(&p, &LoadOptions::new()).unwrap();
        assert_eq!(sorted(&got), sorted(&want), "{}", p.display());
        let keys: Vec<String> = entries(&got).into_iter().map(|e| e.0).collect();
        if !p.to_str().unwrap().contains("bin") {
            continue; // safetensors shards hold their tensors sorted
        }
        assert_eq!(
            keys,
            [
                "layers.0.weight",
                "layers.1.weight",
                "layers.2.weight",
                "head.bias"
            ],
            "shard order, then file order"
        );
    }
}

#[test]
fn hostile_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("model.safetensors.index.json");
    for bad in [
        r#"{"weight_map": {"w": "../secret.safetensors"}}"#,
        r#"{"weight_map": {"w": "model.safetensors.index.json"}}"#,
        r#"{"weight_map": {"w": 3}}"#,
        r#"{"metadata": {}}"#,
        "not json",
    ] {
        std::fs::write(&idx, bad).unwrap();
        let e = load(dir.path(), &LoadOptions::new()).unwrap_err();
        assert_eq!(e.code(), "K0507", "{bad}: {e}");
    }
}

#[test]
fn convert_max_shard_size_writes_shards_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hf");
    // 3 × 64-byte weights + a 16-byte bias, at most 150 bytes a shard: [w0 w1] [w2 bias].
    let (code, _, err) = kiln(&[
        "convert",
        fixture("sharded.ref.safetensors").to_str().unwrap(),
        out.to_str().unwrap(),
        "--max-shard-size",
        "150B",
    ]);
    assert_eq!(code, 0, "{err}");
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(index["metadata"]["total_size"], 208);
    let map = index["weight_map"].as_object().unwrap();
    assert_eq!(map.len(), 4);
    let files: std::collections::BTreeSet<&str> =
        map.values().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(
        files.into_iter().collect::<Vec<_>>(),
        [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors"
        ]
    );
    let back = load(&out, &LoadOptions::new()).unwrap();
    let want = load(fixture("sharded.ref.safetensors"), &LoadOptions::new()).unwrap();
    assert_eq!(sorted(&back), sorted(&want));
    assert_eq!(kiln::io::sharded::parse_size("5GB").unwrap(), 5_000_000_000);
    assert_eq!(kiln::io::sharded::parse_size("2GiB").unwrap(), 2 << 30);
    assert!(kiln::io::sharded::parse_size("lots").is_err());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn float8_and_complex_are_read_and_written_bit_exactly() {
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("exotic.json")).unwrap()).unwrap();
    let v = load(fixture("exotic.pt"), &LoadOptions::new()).unwrap();
    let check = |v: &Value, keys: &[&str]| {
        for k in keys {
            let t = v.get(k).unwrap().as_tensor().unwrap();
            let want = &info[*k];
            assert_eq!(
                t.dtype().torch_name(),
                want["dtype"].as_str().unwrap(),
                "{k}"
            );
            let shape: Vec<usize> = want["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(t.shape, shape, "{k}");
            assert_eq!(
                hex(&t.contiguous_bytes().unwrap()),
                want["hex"].as_str().unwrap(),
                "{k}"
            );
        }
    };
    let all = [
        "f8_e4m3fn",
        "f8_e5m2",
        "f8_e4m3fnuz",
        "f8_e5m2fnuz",
        "c64",
        "c128",
    ];
    check(&v, &all);
    let dir = tempfile::tempdir().unwrap();
    // .pt round trip (complex as ComplexFloatStorage, float8 as UntypedStorage + v3).
    let pt = dir.path().join("exotic.pt");
    kiln::io::save(&v, &pt).unwrap();
    check(&load(&pt, &LoadOptions::new()).unwrap(), &all);
    // safetensors has float8 and complex64 but no complex128.
    let st = dir.path().join("exotic.safetensors");
    let mut d = v.as_dict().unwrap().clone();
    d.entries.retain(|(k, _)| k.as_str() != Some("c128"));
    kiln::io::save(&Value::Dict(d), &st).unwrap();
    check(&load(&st, &LoadOptions::new()).unwrap(), &all[..5]);
    let e = kiln::io::save(&v, dir.path().join("c128.safetensors")).unwrap_err();
    assert_eq!(e.code(), "K0005", "{e}");
    // Computing needs a candle type: e4m3fn has one, complex does not.
    let t = v.get("f8_e4m3fn").unwrap().as_tensor().unwrap();
    assert!(t.to_tensor(&candle_core::Device::Cpu).is_ok());
    let c = v.get("c64").unwrap().as_tensor().unwrap();
    assert_eq!(
        c.to_tensor(&candle_core::Device::Cpu).unwrap_err().code(),
        "K0005"
    );
    // A dtype cast leaves them as they are.
    let cast = load(
        fixture("exotic.pt"),
        &LoadOptions::new().dtype(kiln::io::Dtype::F16),
    )
    .unwrap();
    check(&cast, &all);
}
