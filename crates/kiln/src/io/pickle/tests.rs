//! Pickle reader/writer tests: round trips and one negative test per failure kind, with
//! hand-made bytes.

use super::*;
use crate::error::Result;
use crate::io::value::{Dict, Dtype, Storage, TensorValue, Value};
use std::sync::Arc;

/// Serves the storages a writer produced, by key.
pub(crate) struct MemSource(pub Vec<Arc<Storage>>);

impl StorageSource for MemSource {
    fn storage(
        &mut self,
        key: &str,
        dtype: Dtype,
        location: &str,
        numel: usize,
        _view: Option<(usize, usize)>,
    ) -> Result<Arc<Storage>> {
        let i: usize = key.parse().map_err(|_| crate::Error::Schema {
            path: String::new(),
            detail: format!("bad key {key}"),
        })?;
        let s = self.0.get(i).ok_or_else(|| crate::Error::Schema {
            path: String::new(),
            detail: format!("no storage {key}"),
        })?;
        assert_eq!(dtype.size() * numel, s.data.len());
        Ok(Arc::new(Storage {
            dtype,
            location: location.to_string(),
            data: s.data.clone(),
        }))
    }
}

fn round_trip(v: &Value) -> Value {
    let p = pickle(v).unwrap();
    unpickle(&p.bytes, &mut MemSource(p.storages), "mem")
        .unwrap()
        .value
}

fn none() -> MemSource {
    MemSource(Vec::new())
}

fn err(bytes: &[u8]) -> crate::Error {
    unpickle(bytes, &mut none(), "bad.pkl").unwrap_err()
}

#[test]
fn scalars_and_containers_round_trip() {
    let v = Value::dict([
        ("none", Value::None),
        ("t", Value::Bool(true)),
        (
            "ints",
            Value::List(
                [
                    0i64,
                    1,
                    255,
                    256,
                    65535,
                    65536,
                    -1,
                    -129,
                    i32::MAX as i64,
                    i32::MIN as i64,
                    i64::MAX,
                    i64::MIN,
                    1 << 40,
                ]
                .into_iter()
                .map(Value::Int)
                .collect(),
            ),
        ),
        ("f", Value::Float(-0.1)),
        ("nan", Value::Float(f64::NAN)),
        ("s", Value::Str("héllo ✓".into())),
        ("b", Value::Bytes(vec![0, 200, 255])),
        ("empty_b", Value::Bytes(vec![])),
        (
            "tup",
            Value::Tuple(vec![
                Value::Int(1),
                Value::Float(0.9),
                Value::Float(0.999),
                Value::None,
            ]),
        ),
        ("t1", Value::Tuple(vec![Value::Int(1)])),
        ("dtype", Value::DtypeObj(Dtype::BF16)),
        ("dev", Value::DeviceObj("cuda:1".into())),
        ("cpu", Value::DeviceObj("cpu".into())),
        ("big", Value::List((0..2500).map(Value::Int).collect())),
    ]);
    let mut d = v.as_dict().unwrap().clone();
    d.entries
        .push((Value::Int(7), Value::Str("int key".into())));
    let v = Value::Dict(d);
    assert_eq!(round_trip(&v), v);
}

#[test]
fn ordered_dict_keeps_metadata() {
    let meta = Value::Dict(Dict {
        entries: vec![(
            Value::Str(String::new()),
            Value::dict([("version", Value::Int(1))]),
        )],
        ordered: true,
        metadata: None,
    });
    let v = Value::Dict(Dict {
        entries: vec![(Value::Str("a".into()), Value::Int(1))],
        ordered: true,
        metadata: Some(Box::new(meta)),
    });
    let back = round_trip(&v);
    assert_eq!(back, v);
    assert!(back.as_dict().unwrap().metadata.is_some());
}

#[test]
fn tensors_all_dtypes_views_and_sharing() {
    let mut entries = Vec::new();
    for d in Dtype::ALL {
        let data: Vec<u8> = (0..6 * d.size()).map(|i| (i * 7 % 256) as u8).collect();
        let t = TensorValue::from_bytes(d, vec![2, 3], data, "cpu").unwrap();
        let view = TensorValue {
            offset: 1,
            shape: vec![2],
            stride: vec![3],
            ..t.clone()
        };
        entries.push((d.name().to_string(), Value::Tensor(t)));
        entries.push((format!("{}_view", d.name()), Value::Tensor(view)));
    }
    let scalar =
        TensorValue::from_bytes(Dtype::F32, vec![], 1f32.to_le_bytes().to_vec(), "cuda:0").unwrap();
    let mut param = scalar.clone();
    param.is_parameter = true;
    param.requires_grad = true;
    entries.push(("scalar".into(), Value::Tensor(scalar)));
    entries.push(("param".into(), Value::Tensor(param)));
    let v = Value::dict(entries);
    let p = pickle(&v).unwrap();
    // Every dtype + one scalar storage shared with the parameter.
    assert_eq!(p.storages.len(), Dtype::ALL.len() + 1);
    let back = unpickle(&p.bytes, &mut MemSource(p.storages), "mem")
        .unwrap()
        .value;
    assert_eq!(back, v);
    let d = back.as_dict().unwrap();
    let a = d.get("f32").and_then(Value::as_tensor).unwrap();
    let b = d.get("f32_view").and_then(Value::as_tensor).unwrap();
    assert!(
        Arc::ptr_eq(&a.storage, &b.storage),
        "views share their storage"
    );
    assert_eq!((b.offset, b.stride.clone()), (1, vec![3]));
    let s = d.get("param").and_then(Value::as_tensor).unwrap();
    assert!(s.is_parameter && s.requires_grad);
    assert_eq!(s.storage.location, "cuda:0");
}

#[test]
fn writer_is_deterministic_and_weights_only_safe() {
    let v = Value::dict([(
        "x",
        Value::Tensor(TensorValue::from_bytes(Dtype::F32, vec![1], vec![0; 4], "cpu").unwrap()),
    )]);
    let a = pickle(&v).unwrap().bytes;
    assert_eq!(a, pickle(&v).unwrap().bytes);
    // Only opcodes of the weights_only allow-list.
    let allowed = [
        ops::PROTO,
        ops::STOP,
        ops::GLOBAL,
        ops::REDUCE,
        ops::BUILD,
        ops::MARK,
        ops::TUPLE,
        ops::TUPLE1,
        ops::TUPLE2,
        ops::TUPLE3,
        ops::EMPTY_TUPLE,
        ops::EMPTY_LIST,
        ops::EMPTY_DICT,
        ops::APPEND,
        ops::APPENDS,
        ops::SETITEM,
        ops::SETITEMS,
        ops::NONE,
        ops::NEWTRUE,
        ops::NEWFALSE,
        ops::BININT,
        ops::BININT1,
        ops::BININT2,
        ops::LONG1,
        ops::BINFLOAT,
        ops::BINUNICODE,
        ops::BINPERSID,
        ops::BINGET,
        ops::LONG_BINGET,
        ops::BINPUT,
        ops::LONG_BINPUT,
    ];
    assert!(allowed.contains(&a[0]));
}

#[test]
fn reads_torch_save_pickle() {
    // data.pkl of torch.save(OrderedDict(a=arange(6).reshape(2,3).float(), b=tensor(3))).
    let hex = "80026363 6f6c6c65 6374696f 6e730a4f 72646572 65644469 63740a71 00295271 01285801 00000061 71026374 6f726368 2e5f7574 696c730a 5f726562 75696c64 5f74656e 736f725f 76320a71 03282858 07000000 73746f72 61676571 0463746f 7263680a 466c6f61 7453746f 72616765 0a710558 01000000 30710658 03000000 63707571 074b0674 7108514b 004b024b 03867109 4b034b01 86710a89 68002952 710b7471 0c52710d 58010000 0062710e 68032828 68046374 6f726368 0a4c6f6e 6753746f 72616765 0a710f58 01000000 31711068 074b0174 7111514b 00292989 68002952 71127471 13527114 752e";
    let bytes: Vec<u8> = hex
        .split_whitespace()
        .flat_map(|w| {
            (0..w.len())
                .step_by(2)
                .map(move |i| u8::from_str_radix(&w[i..i + 2], 16).unwrap())
        })
        .collect();
    let f: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let s0 = Arc::new(Storage {
        dtype: Dtype::F32,
        location: "cpu".into(),
        data: crate::io::Bytes::Owned(Arc::new(f)),
    });
    let s1 = Arc::new(Storage {
        dtype: Dtype::I64,
        location: "cpu".into(),
        data: crate::io::Bytes::Owned(Arc::new(3i64.to_le_bytes().to_vec())),
    });
    let u = unpickle(&bytes, &mut MemSource(vec![s0, s1]), "t1.pt").unwrap();
    assert_eq!(u.end, bytes.len());
    let d = u.value.as_dict().unwrap();
    assert!(d.ordered);
    let a = d.get("a").and_then(Value::as_tensor).unwrap();
    assert_eq!(
        (a.shape.clone(), a.stride.clone()),
        (vec![2, 3], vec![3, 1])
    );
    let b = d.get("b").and_then(Value::as_tensor).unwrap();
    assert!(b.shape.is_empty() && b.dtype() == Dtype::I64);
    // The writer produces the same structure.
    let again = round_trip(&u.value);
    assert_eq!(again, u.value);
}

#[test]
fn protocol_4_opcodes() {
    // pickle.dumps({'a': [1, b'xy', frozenset()], 'k': ('s',)}, protocol=4) equivalent by hand.
    let mut b = vec![0x80, 4, ops::FRAME];
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&[
        ops::EMPTY_DICT,
        ops::MEMOIZE,
        ops::MARK,
        ops::SHORT_BINUNICODE,
        1,
        b'a',
        ops::MEMOIZE,
    ]);
    b.extend_from_slice(&[
        ops::EMPTY_LIST,
        ops::MEMOIZE,
        ops::MARK,
        ops::BININT1,
        1,
        ops::SHORT_BINBYTES,
        2,
        b'x',
        b'y',
    ]);
    b.extend_from_slice(&[ops::SHORT_BINUNICODE, 8]);
    b.extend_from_slice(b"builtins");
    b.extend_from_slice(&[ops::SHORT_BINUNICODE, 9]);
    b.extend_from_slice(b"frozenset");
    b.extend_from_slice(&[
        ops::STACK_GLOBAL,
        ops::EMPTY_TUPLE,
        ops::REDUCE,
        ops::APPENDS,
    ]);
    b.extend_from_slice(&[
        ops::SHORT_BINUNICODE,
        1,
        b'k',
        ops::SHORT_BINUNICODE,
        1,
        b's',
        ops::TUPLE1,
        ops::SETITEMS,
        ops::STOP,
    ]);
    let v = unpickle(&b, &mut none(), "p4").unwrap().value;
    let a = v.get("a").and_then(Value::as_seq).unwrap();
    assert_eq!(a[0], Value::Int(1));
    assert_eq!(a[1], Value::Bytes(b"xy".to_vec()));
    assert_eq!(
        v.get("k"),
        Some(&Value::Tuple(vec![Value::Str("s".into())]))
    );
}

#[test]
fn memo_aliasing_sees_later_mutation() {
    // d = {}; memo 0 = d; x = [d, d] ; then setitem on d through the memo.
    let b = [
        0x80,
        2,
        ops::EMPTY_LIST,
        ops::EMPTY_DICT,
        ops::BINPUT,
        0,
        ops::APPEND,
        ops::BINGET,
        0,
        ops::APPEND,
        ops::BINGET,
        0,
        ops::BININT1,
        1,
        ops::BININT1,
        2,
        ops::SETITEM,
        ops::POP,
        ops::STOP,
    ];
    let v = unpickle(&b, &mut none(), "m").unwrap().value;
    let items = v.as_seq().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], items[1]);
    assert_eq!(items[0].as_dict().unwrap().entries.len(), 1);
}

#[test]
fn legacy_python2_strings_fall_back_to_latin1() {
    let b = [0x80, 2, ops::SHORT_BINSTRING, 2, 0xe9, b'a', ops::STOP];
    assert_eq!(
        unpickle(&b, &mut none(), "py2").unwrap().value,
        Value::Str("éa".into())
    );
}

// ---------------------------------------------------------------- negative tests

#[test]
fn refuses_unsafe_global_k0504() {
    let b = b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00lsq\x00\x85R.";
    let e = err(b);
    assert_eq!(e.code(), "K0504");
    assert!(e.to_string().contains("posix.system"), "{e}");
    let mut s = vec![0x80, 4, ops::SHORT_BINUNICODE, 8];
    s.extend_from_slice(b"builtins");
    s.extend_from_slice(&[ops::SHORT_BINUNICODE, 4]);
    s.extend_from_slice(b"eval");
    s.extend_from_slice(&[ops::STACK_GLOBAL, ops::STOP]);
    assert_eq!(err(&s).code(), "K0504");
}

#[test]
fn truncated_k0501() {
    let p = pickle(&Value::Str("hello".into())).unwrap().bytes;
    for cut in 0..p.len() {
        let e = err(&p[..cut]);
        assert!(matches!(e.code(), "K0501" | "K0505"), "cut {cut}: {e}");
    }
    assert_eq!(err(&p[..5]).code(), "K0501");
}

#[test]
fn malformed_k0505() {
    for (bytes, what) in [
        (&[0x80, 2, 0xff, b'.'][..], "unknown opcode"),
        (&[0x80, 9, b'N', b'.'][..], "protocol"),
        (&[0x80, 2, b'.'][..], "underflow"),
        (&[0x80, 2, ops::BINGET, 3, b'.'][..], "never stored"),
        (
            &[0x80, 2, ops::BININT1, 1, ops::BININT1, 2, ops::APPEND, b'.'][..],
            "append",
        ),
        (&[0x80, 2, ops::TUPLE, b'.'][..], "MARK"),
        (
            &[0x80, 2, ops::NONE, ops::NONE, ops::REDUCE, b'.'][..],
            "call",
        ),
        (
            &[0x80, 2, ops::NONE, ops::BINPERSID, b'.'][..],
            "persistent id",
        ),
    ] {
        let e = err(bytes);
        assert_eq!(e.code(), "K0505", "{what}: {e}");
        assert!(
            e.to_string().to_lowercase().contains(&what.to_lowercase()),
            "{what}: {e}"
        );
    }
}

#[test]
fn self_reference_and_depth_limits() {
    // l = []; l.append(l)
    let b = [
        0x80,
        2,
        ops::EMPTY_LIST,
        ops::BINPUT,
        0,
        ops::BINGET,
        0,
        ops::APPEND,
        ops::STOP,
    ];
    assert!(err(&b).to_string().contains("MAX_DEPTH"));
    // 100k nested lists via MARK
    let mut deep = vec![0x80, 2];
    deep.extend(std::iter::repeat_n(ops::MARK, 20_000));
    assert!(err(&deep).to_string().contains("MAX_MARK_DEPTH"));
    // billion laughs: each level a list of the previous one twice.
    let mut bl = vec![0x80, 2, ops::EMPTY_LIST, ops::BINPUT, 0];
    for i in 1..=60u8 {
        bl.extend_from_slice(&[
            ops::MARK,
            ops::BINGET,
            i - 1,
            ops::BINGET,
            i - 1,
            ops::LIST,
            ops::BINPUT,
            i,
            ops::POP,
        ]);
    }
    bl.extend_from_slice(&[ops::POP, ops::BINGET, 60, ops::STOP]);
    // The read budget (bytes of copies) stops it before MAX_OUTPUT_NODES does.
    let e = err(&bl);
    assert_eq!(e.code(), "K0508", "{e}");
    assert!(e.to_string().contains("read budget"), "{e}");
}

#[test]
fn tensor_outside_storage_is_refused() {
    let t = TensorValue::from_bytes(Dtype::F32, vec![2], vec![0; 8], "cpu").unwrap();
    let mut bad = t.clone();
    bad.offset = 5;
    let p = pickle(&Value::Tensor(bad)).unwrap();
    let e = unpickle(&p.bytes, &mut MemSource(p.storages), "oob.pt").unwrap_err();
    assert_eq!(e.code(), "K0505");
    assert!(e.to_string().contains("outside its storage"), "{e}");
}

/// Regression: duplicate-key handling was a linear search per entry, so a dict of a few
/// hundred thousand keys (hostile or a huge checkpoint) took quadratic time.
#[test]
fn large_dicts_stay_linear() {
    let n = 300_000;
    let v = Value::dict((0..n).map(|i| (format!("k{i}"), Value::Int(i))));
    let start = std::time::Instant::now();
    let back = round_trip(&v);
    assert_eq!(back.as_dict().unwrap().entries.len(), n as usize);
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
    // Repeated keys: the last value wins, at the first key's position (Python semantics).
    let b = [
        0x80,
        2,
        ops::EMPTY_DICT,
        ops::MARK,
        ops::BININT1,
        1,
        ops::BININT1,
        10,
        ops::BININT1,
        2,
        ops::BININT1,
        20,
        ops::NEWTRUE,
        ops::BININT1,
        30,
        ops::SETITEMS,
        ops::STOP,
    ];
    let d = unpickle(&b, &mut none(), "dup").unwrap().value;
    let d = d.as_dict().unwrap();
    assert_eq!(d.entries.len(), 2);
    assert_eq!(d.entries[0], (Value::Int(1), Value::Int(30)));
}

#[test]
fn pre_0_4_tensor_class_with_build() {
    // torch.FloatTensor() then BUILD (storage, offset, size, stride), as PyTorch < 0.4 pickled.
    let mut b = vec![0x80, 2];
    b.extend_from_slice(b"ctorch\nFloatTensor\n");
    b.extend_from_slice(&[ops::EMPTY_TUPLE, ops::REDUCE, ops::MARK, ops::MARK]);
    b.extend_from_slice(&[ops::BINUNICODE, 7, 0, 0, 0]);
    b.extend_from_slice(b"storage");
    b.extend_from_slice(b"ctorch\nFloatStorage\n");
    b.extend_from_slice(&[
        ops::BINUNICODE,
        1,
        0,
        0,
        0,
        b'0',
        ops::BINUNICODE,
        3,
        0,
        0,
        0,
    ]);
    b.extend_from_slice(b"cpu");
    b.extend_from_slice(&[ops::BININT1, 4, ops::TUPLE, ops::BINPERSID]);
    b.extend_from_slice(&[
        ops::BININT1,
        1,
        ops::BININT1,
        3,
        ops::TUPLE1,
        ops::BININT1,
        1,
        ops::TUPLE1,
    ]);
    b.extend_from_slice(&[ops::TUPLE, ops::BUILD, ops::STOP]);
    let data: Vec<u8> = (0..4).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let s = Arc::new(Storage {
        dtype: Dtype::F32,
        location: "cpu".into(),
        data: crate::io::Bytes::Owned(Arc::new(data)),
    });
    let v = unpickle(&b, &mut MemSource(vec![s]), "old.pt")
        .unwrap()
        .value;
    let t = v.as_tensor().unwrap();
    assert_eq!(
        (t.offset, t.shape.clone(), t.stride.clone()),
        (1, vec![3], vec![1])
    );
    assert_eq!(t.contiguous_bytes().unwrap().len(), 12);
    assert_eq!(err(b"\x80\x02ctorch\nFancyTensor\n.").code(), "K0504");
}

#[test]
fn memo_far_key_survives_the_dense_table_growing_over_it() {
    // memo[1500] = 7 (far: a map entry), then memo[0..1600] = 0,1,… (the dense table grows
    // over 1500, whose slot stays free), memo[1500] = 9 again; [memo[1500], memo[3]].
    let mut b = vec![0x80, 2, ops::BININT1, 7, ops::LONG_BINPUT];
    b.extend_from_slice(&1500u32.to_le_bytes());
    b.push(ops::POP);
    for k in 0..1600u32 {
        if k == 1500 {
            continue;
        }
        b.extend_from_slice(&[ops::BININT1, (k % 200) as u8, ops::LONG_BINPUT]);
        b.extend_from_slice(&k.to_le_bytes());
        b.push(ops::POP);
    }
    b.extend_from_slice(&[ops::BININT1, 9, ops::LONG_BINPUT]);
    b.extend_from_slice(&1500u32.to_le_bytes());
    b.extend_from_slice(&[ops::POP, ops::MARK, ops::LONG_BINGET]);
    b.extend_from_slice(&1500u32.to_le_bytes());
    b.extend_from_slice(&[ops::BINGET, 3, ops::LIST, ops::STOP]);
    let v = unpickle(&b, &mut none(), "memo.pkl").unwrap().value;
    assert_eq!(v, Value::List(vec![Value::Int(9), Value::Int(3)]));
}
