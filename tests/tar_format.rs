//! PyTorch's pre-0.4 tar checkpoints (issue 16 item 3): the fixtures of
//! `tests/fixtures/io/tar` (written by `scripts/gen_tar_fixtures.py` as torch 0.3 wrote them,
//! each loaded back by the real `torch.load`) load in kiln bit for bit as torch.load returns
//! them; `kiln inspect` and `kiln convert` read them; damaged files give coded errors.

#[path = "io_common/mod.rs"]
mod common;

use common::{describe, first_difference};
use kiln::io::{Format, LoadOptions, Value, detect_format, load, load_state_dict_file};
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/io/tar")
}

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn check(name: &str) {
    let m = manifest();
    let expected = &m["files"][name];
    assert!(!expected.is_null(), "{name} missing from manifest");
    let path = dir().join(name);
    assert_eq!(detect_format(&path).unwrap(), Format::TorchTar, "{name}");
    for opts in [LoadOptions::new(), LoadOptions::new().mmap(true)] {
        let v = load(&path, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(d) = first_difference(&describe(&v), expected, name) {
            panic!("{name} differs from torch.load: {d}");
        }
    }
}

#[test]
fn state_dict_matches_torch_load() {
    check("state_dict.tar");
}

#[test]
fn gnu_and_pax_tar_formats_read_alike() {
    check("state_dict_gnu.tar");
    check("state_dict_pax.tar");
}

#[test]
fn strided_views_sharing_one_storage_match_torch_load() {
    check("views.tar");
}

#[test]
fn every_legacy_dtype_and_scalars_match_torch_load() {
    check("dtypes.tar");
}

#[test]
fn storage_views_at_an_offset_match_torch_load() {
    check("storage_view.tar");
}

#[test]
fn load_state_dict_file_reads_a_tar_checkpoint() {
    let sd = load_state_dict_file(dir().join("state_dict.tar"), &LoadOptions::new()).unwrap();
    let w = sd.get("fc.weight").unwrap();
    assert_eq!(w.dims(), &[3, 4]);
}

fn hex_f32(h: &str) -> Vec<f32> {
    let b: Vec<u8> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect();
    b.chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn whole_module_tar_is_read_structurally_and_runs_like_pytorch() {
    use kiln::io::module_file::module_tree;
    let path = dir().join("sequential.tar");
    let m = manifest();
    let case = &m["files"]["sequential.tar"];
    // Weights-only mode refuses the module classes, as for zip and legacy files.
    let e = load(&path, &LoadOptions::new()).unwrap_err();
    assert_eq!(e.code(), "K0504", "{e}");
    let v = load(
        &path,
        &LoadOptions {
            structural: true,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let tree = module_tree(&v, "sequential.tar").unwrap();
    let sd = describe(&tree.state_dict());
    let got: Vec<(String, String)> = sd["OrderedDict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            (
                kv[0]["str"].as_str().unwrap().to_string(),
                kv[1]["tensor"]["hex"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = case["module_state_dict"]["OrderedDict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            (
                kv[0]["str"].as_str().unwrap().to_string(),
                kv[1]["tensor"]["hex"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want, "state_dict() keys and bytes");

    let net = kiln::io::load_torch_module(&path).unwrap();
    let x = hex_f32(case["input"]["tensor"]["hex"].as_str().unwrap());
    let x = candle_core::Tensor::from_vec(x, (2, 4), &candle_core::Device::Cpu).unwrap();
    let y: Vec<f32> = net
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let want = hex_f32(case["output"]["tensor"]["hex"].as_str().unwrap());
    assert_eq!(y.len(), want.len());
    for (a, b) in y.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{y:?} vs {want:?}");
    }
    let globals = kiln::io::list_globals(&path).unwrap();
    let names: Vec<String> = globals
        .iter()
        .map(|g| format!("{}.{}", g.module, g.name))
        .collect();
    assert!(
        names.contains(&"torch.nn.modules.linear.Linear".to_string())
            && names.contains(&"torch.FloatStorage".to_string()),
        "{names:?}"
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

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn cli_inspect_and_convert_read_tar_checkpoints() {
    let f = s(&dir().join("state_dict.tar"));
    let (code, out, err) = kiln(&["inspect", "--json", &f]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["format"], "pytorch-tar");
    assert_eq!(j["tensors"], 4);
    let (code, out, err) = kiln(&["inspect", &f]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pytorch-tar"), "{out}");
    assert!(
        out.contains("conv.weight: Tensor f32 [2, 1, 3, 3]"),
        "{out}"
    );

    let want = load(dir().join("views.tar"), &LoadOptions::new()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for out in ["views.safetensors", "views.pt"] {
        let o = tmp.path().join(out);
        let (code, _, err) = kiln(&["convert", &s(&dir().join("views.tar")), &s(&o)]);
        assert_eq!(code, 0, "{out}: {err}");
        let got = load(&o, &LoadOptions::new()).unwrap();
        for (k, t) in want.as_dict().unwrap().entries.iter() {
            let k = k.as_str().unwrap();
            let g = got.get(k).unwrap().as_tensor().unwrap();
            let t = t.as_tensor().unwrap();
            assert_eq!(g.shape, t.shape, "{out} {k}");
            assert_eq!(
                g.contiguous_bytes().unwrap(),
                t.contiguous_bytes().unwrap(),
                "{out} {k}"
            );
        }
    }
    let (code, _, _) = kiln(&["inspect", "--globals", &f]);
    assert_eq!(code, 0);
}

#[test]
fn saving_in_the_tar_format_is_refused() {
    let v = Value::dict([("a", Value::Int(1))]);
    let tmp = tempfile::tempdir().unwrap();
    let e = kiln::io::save_as(&v, &tmp.path().join("x.tar"), Format::TorchTar).unwrap_err();
    assert_eq!(e.code(), "K0005");
    assert!(e.to_string().contains("tar"), "{e}");
}

fn load_bytes(bytes: &[u8]) -> kiln::Result<Value> {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.tar");
    std::fs::write(&p, bytes).unwrap();
    load(&p, &LoadOptions::new())
}

/// The offset of member `name`'s data, and the offset of its header.
fn member(data: &[u8], name: &str) -> (usize, usize) {
    let mut pos = 0;
    loop {
        let h = &data[pos..pos + 512];
        let n = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&h[124..135]).trim_matches(|c| c == '\0' || c == ' '),
            8,
        )
        .unwrap();
        if n == name {
            return (pos + 512, pos);
        }
        pos += 512 + size.div_ceil(512) * 512;
    }
}

fn reseal(h: &mut [u8]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

#[test]
fn truncated_files_are_k0501_and_never_panic() {
    let data = std::fs::read(dir().join("dtypes.tar")).unwrap();
    let (storages, _) = member(&data, "storages");
    for cut in [100, 600, 1500, storages + 5, storages + 100] {
        let e = load_bytes(&data[..cut]).unwrap_err();
        assert!(
            ["K0501", "K0503"].contains(&e.code()),
            "cut at {cut}: {} {e}",
            e.code()
        );
    }
    let e = load_bytes(&data[..storages + 100]).unwrap_err();
    assert_eq!(e.code(), "K0501", "{e}");
    assert!(e.to_string().contains("storages"), "{e}");
}

#[test]
fn a_bit_flip_in_a_header_is_k0502() {
    let mut data = std::fs::read(dir().join("state_dict.tar")).unwrap();
    let (_, header) = member(&data, "tensors");
    data[header + 3] ^= 0x20;
    let e = load_bytes(&data).unwrap_err();
    assert_eq!(e.code(), "K0502", "{e}");
    assert!(e.to_string().contains("checksum"), "{e}");
}

#[test]
fn a_duplicate_member_is_k0502_and_a_missing_one_k0503() {
    let mut data = std::fs::read(dir().join("state_dict.tar")).unwrap();
    let (_, header) = member(&data, "tensors");
    data[header..header + 8].copy_from_slice(b"pickle\0\0");
    reseal(&mut data[header..header + 512]);
    let e = load_bytes(&data).unwrap_err();
    assert_eq!(e.code(), "K0502", "{e}");
    assert!(e.to_string().contains("member 'pickle' twice"), "{e}");

    let mut data = std::fs::read(dir().join("state_dict.tar")).unwrap();
    let (_, header) = member(&data, "tensors");
    data[header..header + 8].copy_from_slice(b"tensorz\0");
    reseal(&mut data[header..header + 512]);
    let e = load_bytes(&data).unwrap_err();
    assert_eq!(e.code(), "K0503", "{e}");
    assert!(e.to_string().contains("'tensors'"), "{e}");
}

#[test]
fn an_oversize_member_is_k0501() {
    let mut data = std::fs::read(dir().join("state_dict.tar")).unwrap();
    let (_, header) = member(&data, "storages");
    data[header + 124..header + 136].copy_from_slice(b"77777777777\0");
    reseal(&mut data[header..header + 512]);
    let e = load_bytes(&data).unwrap_err();
    assert_eq!(e.code(), "K0501", "{e}");
}

#[test]
fn a_storage_count_past_the_records_is_k0502() {
    let mut data = std::fs::read(dir().join("state_dict.tar")).unwrap();
    let (start, _) = member(&data, "storages");
    // The count pickle is `\x80\x02K\x04.`: claim 200 storages.
    assert_eq!(&data[start..start + 3], b"\x80\x02K");
    data[start + 3] = 200;
    let e = load_bytes(&data).unwrap_err();
    assert_eq!(e.code(), "K0502", "{e}");
    assert!(
        e.to_string().contains("record 4 of member 'storages'"),
        "{e}"
    );
}

#[test]
fn a_plain_tar_is_not_a_model_file() {
    let mut h = vec![0u8; 512];
    h[..5].copy_from_slice(b"notes");
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(b"00000000003\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    reseal(&mut h);
    let mut data = h;
    data.extend_from_slice(b"abc");
    data.resize(512 * 4, 0);
    let e = load_bytes(&data).unwrap_err();
    assert_eq!(e.code(), "K0503", "{e}");
    assert!(e.to_string().contains("notes"), "{e}");
}

#[test]
fn a_tiny_read_budget_is_k0508() {
    let e = load(
        dir().join("dtypes.tar"),
        &LoadOptions::new().max_expanded_bytes(100),
    )
    .unwrap_err();
    assert_eq!(e.code(), "K0508", "{e}");
}

mod mutations {
    use super::dir;
    use proptest::prelude::*;

    fn seeds() -> Vec<Vec<u8>> {
        [
            "state_dict.tar",
            "views.tar",
            "storage_view.tar",
            "sequential.tar",
        ]
        .iter()
        .map(|f| std::fs::read(dir().join(f)).unwrap())
        .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random byte pokes, a cut and a header resealed after the pokes: the reader returns
        /// (a value or a coded error) and never panics.
        #[test]
        fn random_mutations_never_panic(
            which in 0usize..4,
            pokes in proptest::collection::vec((0usize..6000, any::<u8>()), 1..12),
            cut in proptest::option::of(0usize..10240),
            reseal in proptest::option::of(0usize..8),
        ) {
            let mut d = seeds().swap_remove(which);
            for (i, b) in pokes {
                if let Some(x) = d.get_mut(i) {
                    *x = b;
                }
            }
            if let Some(h) = reseal {
                // Fix one header's checksum so the poke reaches the member parsers.
                let at = h * 1024;
                if at + 512 <= d.len() {
                    super::reseal(&mut d[at..at + 512]);
                }
            }
            if let Some(c) = cut {
                d.truncate(c);
            }
            let r = std::panic::catch_unwind(|| kiln::io::fuzz::torch_tar_reader(&d).map(drop));
            prop_assert!(r.is_ok(), "panicked");
            if let Ok(Err(e)) = r {
                prop_assert!(e.code().starts_with('K'), "{e}");
            }
        }
    }
}
