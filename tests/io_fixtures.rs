//! Files written by real PyTorch (tests/fixtures/io, made by scripts/gen_io_fixtures.py)
//! load in kiln bit-exactly: same nesting, container types, scalars, dtypes, shapes,
//! strides, offsets, storage sharing and element bytes as `torch.load` returns.

#[path = "io_common/mod.rs"]
mod common;

use common::{describe, first_difference, fixtures, manifest};
use kiln::io::{LoadOptions, MapLocation, Value, load};
use std::sync::{Arc, Mutex};

fn check(name: &str, opts: &LoadOptions) {
    let m = manifest();
    let expected = &m["files"][name];
    assert!(!expected.is_null(), "{name} missing from manifest");
    let v = load(fixtures().join(name), opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    let got = describe(&v);
    if let Some(d) = first_difference(&got, expected, name) {
        panic!("{name} differs from torch.load: {d}");
    }
}

macro_rules! fixture_tests {
    ($($test:ident => $file:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            check($file, &LoadOptions::new());
            check($file, &LoadOptions::new().mmap(true));
        }
    )*};
}

fixture_tests! {
    all_dtypes => "dtypes.pt",
    views_and_shared_storages => "views.pt",
    parameters_and_requires_grad => "params.pt",
    checkpoint_with_optimizers_and_scheduler => "checkpoint.pt",
    dataparallel_state_dict => "dataparallel.pt",
    legacy_format => "legacy.pt",
    pickle_protocol_4 => "proto4.pt",
    pickle_protocol_5 => "proto5.pt",
}

#[test]
fn cuda_tagged_file_needs_map_location() {
    let path = fixtures().join("cuda.pt");
    let e = load(&path, &LoadOptions::new()).unwrap_err();
    assert_eq!(e.code(), "K0506");
    let msg = e.to_string();
    assert!(
        msg.contains("cuda:0") && msg.contains("map_location"),
        "{msg}"
    );
    check("cuda.pt", &LoadOptions::new().map_location("cpu"));
    let mut map = std::collections::BTreeMap::new();
    map.insert("cuda:0".to_string(), "cpu".to_string());
    check("cuda.pt", &LoadOptions::new().map_location(map));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let f = MapLocation::func(move |tag| {
        s2.lock().unwrap().push(tag.to_string());
        "cpu".to_string()
    });
    let v = load(&path, &LoadOptions::new().map_location(f)).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["cuda:0", "cuda:0"],
        "each storage once, tag as saved"
    );
    let mut locs = Vec::new();
    v.visit_tensors(&mut |_, t| locs.push(t.storage.location.clone()));
    assert_eq!(locs, ["cpu", "cpu"]);
}

#[test]
fn checkpoint_state_dict_is_picked() {
    let sd = kiln::io::load_state_dict_file(fixtures().join("checkpoint.pt"), &LoadOptions::new())
        .unwrap();
    assert_eq!(sd.keys().next(), Some("conv.weight"));
    assert!(sd.metadata.as_ref().is_some_and(|m| m.contains_key("bn")));
    let dp =
        kiln::io::load_state_dict_file(fixtures().join("dataparallel.pt"), &LoadOptions::new())
            .unwrap();
    assert!(dp.all_have_prefix("module."));
    let stripped = dp.strip_prefix("module.");
    assert_eq!(
        stripped.keys().collect::<Vec<_>>(),
        sd.keys().collect::<Vec<_>>()
    );
}

#[test]
fn dtype_cast_on_load() {
    let v = load(
        fixtures().join("dtypes.pt"),
        &LoadOptions::new().dtype(kiln::io::Dtype::F16),
    )
    .unwrap();
    let d = v.as_dict().unwrap();
    for (k, x) in &d.entries {
        let t = x.as_tensor().unwrap();
        let was_float = ["f64", "f32", "f16", "bf16", "scalar", "empty", "randn"]
            .contains(&k.as_str().unwrap());
        assert_eq!(t.dtype() == kiln::io::Dtype::F16, was_float, "{k:?}");
    }
    let _ = Value::None;
}
